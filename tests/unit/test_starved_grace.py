"""Issue 24 item 4: the starved loop gets the starved grace whichever rule fired first, and `run --check`
explains a --window shorter than --loop-proof."""

from __future__ import annotations

from hermes_watchdog import config
from hermes_watchdog.commands.run import describe
from hermes_watchdog.judge.verdict import BUSY_LOOP, BY_CPU_STATE, BY_STACK, CPU_PEGGED, Verdict


def v(sig: str, proof: str = "", off: float | None = None) -> Verdict:
    loop = None if off is None else {"off_selector_seconds": off, "usable_bursts": 3}
    return Verdict(sig, 0.7, ("r",), proof=proof, loop=loop)


def test_a_cpu_proven_busy_loop_already_seen_off_its_selector_gets_the_short_grace() -> None:
    assert v(BUSY_LOOP, BY_STACK).sigterm_unhandled
    assert v(BUSY_LOOP, BY_CPU_STATE, off=7.7).sigterm_unhandled  # the case: 7.7 s off, the CPU rule first
    assert not v(BUSY_LOOP, BY_CPU_STATE, off=1.0).sigterm_unhandled  # too little seen to say
    assert not v(BUSY_LOOP, BY_CPU_STATE).sigterm_unhandled  # no stack at all: the full grace
    assert not v(CPU_PEGGED, off=30.0).sigterm_unhandled  # not a restart verdict of a starved loop


def test_run_check_explains_a_window_shorter_than_the_proof() -> None:
    short = config.Config(window=3.0, interval=1.0)
    assert any("shorter than --loop-proof" in line for line in describe(short))
    assert not any("shorter than --loop-proof" in line for line in describe(config.Config()))
