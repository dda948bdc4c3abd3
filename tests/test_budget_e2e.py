"""The restart budget end to end, with real processes (the simulated gateway under the relaunching
supervisor, the daemon): it holds across a daemon killed with SIGKILL and started again, and the cooldown
between restarts doubles. The pure rules are in tests/unit/test_budget_policy.py."""

from __future__ import annotations

import itertools
import signal

from tests.helpers import wait_for

# Spins again 2 s after every relaunch: each restart is verified, then the next window fails again.
# --hook: the loop-turn counter proves each spin in seconds; these tests are about the budget, not the stack
# proof (tests/test_run.py and tests/test_loop_verdicts.py keep that path).
SPIN_EVERY_LAUNCH = ("--mode", "spin", "--spin-after", "2", "--hook")
FAST = ("--restart-with", "signal", "--interval", "0.5", "--window", "3", "--grace", "1", "--start-timeout", "30",
        "--loop-proof", "3")  # the proof's default length is tested at defaults elsewhere


def _verified(d, n: int) -> bool:  # type: ignore[no-untyped-def]
    history = d.gateway().get("restart_history") or []
    return len(history) == n and all(h.get("result") == "restarted" for h in history)


def test_budget_holds_across_a_daemon_killed_and_started_again(tmp_path, supervised, daemons) -> None:
    home, state = tmp_path / "hermes", tmp_path / "state"
    # Spinning only 5 s after each launch: a wide gap between a verified restart and the next verdict, in
    # which the first daemon is killed (checked below: no second restart had begun).
    sup = supervised(home, "--mode", "spin", "--spin-after", "5", "--hook")
    sup.wait_running()
    args = ("--hermes-home", str(home), "--max-restarts", "2", "--cooldown", "0", *FAST)
    first = daemons(state, *args)
    wait_for(lambda: _verified(first, 1), what="the first restart, verified, in state.json")
    first.proc.send_signal(signal.SIGKILL)  # mid-budget: one of two restarts used; no chance to clean up
    first.proc.wait(10)
    assert not (state / "pending.json").exists() and sup.launches == 2, "the kill came too late: a restart began"
    assert first.gateway()["budget"]["used"] == 1
    second = daemons(state, *args)
    # The second daemon restarts once (the budget's second) and refuses the third: a daemon that forgot the
    # first restart would allow two more.
    second.wait_event(" GIVE-UP ")
    assert sup.launches == 3
    assert "restart budget used: 2 of 2" in second.events()
    wait_for(lambda: second.gateway().get("budget", {}).get("exhausted") is True, what="the budget in state.json")
    history = second.gateway()["restart_history"]
    assert [h["result"] for h in history] == ["restarted", "restarted"]
    assert second.events().count(" RESTART ") == 1 and second.proc.poll() is None


def test_cooldown_doubles_after_each_restart(tmp_path, supervised, daemons) -> None:
    """By the daemon's own clock (the restart times it keeps in state.json): at least the cooldown (10 s)
    between restarts 1 and 2, at least twice it between 2 and 3. Lower bounds only: a loaded machine makes
    the gaps longer, never shorter. From one restart to the next busy-loop verdict takes about 6 s on an idle
    machine (the relaunch, 2 s to spin, a 3 s window) and 15 s with 24 runnable processes on 2 cores, under
    20 s: a cooldown that did not double lets restart 3 come before 20 s, and this fails."""
    home = tmp_path / "hermes"
    sup = supervised(home, *SPIN_EVERY_LAUNCH)
    sup.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--max-restarts", "3", "--cooldown", "10", *FAST)
    wait_for(lambda: _verified(d, 3), timeout=300, what="three verified restarts")
    restarts = d.gateway()["restarts"]
    assert len(restarts) == 3 and sup.launches == 4
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(restarts)]
    print(f"\ngaps between restarts: {gaps} s (cooldown 10 s, then 20 s)")
    assert gaps[0] >= 10 and gaps[1] >= 20, gaps
