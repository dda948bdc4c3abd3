"""The marker proof before any SIGUSR2: the pure checks with plain data, and ``signal_marker`` against this
very test process with a real faulthandler registration (registered, then unregistered)."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from hermes_watchdog.observe import hook_marker, processes
from hermes_watchdog.observe.hook_marker import caught_mask_proof, chain_proof, read_marker, signal_marker

USR2 = signal.SIGUSR2


def test_only_an_explicit_chain_false_proves_a_handler_that_does_not_chain() -> None:
    assert chain_proof({"chain": False}) is None
    assert "older hook" in (chain_proof({}) or "")
    for value in (True, None, 0, "false", "False"):
        why = chain_proof({"chain": value})
        assert why is not None and "default action" in why, value


def test_sigcgt_objects_only_when_it_shows_sigusr2_not_caught() -> None:
    bit = 1 << (int(USR2) - 1)
    caught = f"Name:\tpython\nSigIgn:\t0000000000000000\nSigCgt:\t{bit | 0x4002:016x}\n"
    not_caught = f"SigCgt:\t{0x180004002 & ~bit:016x}\n"
    assert caught_mask_proof(caught, USR2) is None
    assert "does not catch SIGUSR2" in (caught_mask_proof(not_caught, USR2) or "")
    assert caught_mask_proof(None, USR2) is None and caught_mask_proof("Name:\tx\n", USR2) is None
    assert caught_mask_proof("SigCgt:\tzz\n", USR2) is None


def _home(tmp_path: Path, **fields: object) -> Path:
    home = tmp_path / "hermes"
    (home / "state").mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    stacks = home / "logs" / "hermes-watchdog-stacks.log"
    stacks.touch(mode=0o600)
    me = processes.identity(os.getpid())
    data = {"pid": me.pid, "start_time": me.start_ticks, "signal": "SIGUSR2", "file": str(stacks),
            "owner": "hermes-watchdog", "main_thread": 1, "fatal_handler": True} | fields
    marker = home / "state" / hook_marker.MARKER
    marker.write_text(json.dumps({k: v for k, v in data.items() if v is not ...}))
    marker.chmod(0o600)
    return home


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SigCgt is read from Linux's /proc")
def test_signal_marker_wants_chain_false_and_a_caught_signal_in_this_very_process(tmp_path: Path) -> None:
    me = processes.identity(os.getpid())
    log = open(tmp_path / "dump.log", "w")  # noqa: SIM115 - faulthandler keeps the descriptor
    faulthandler.register(USR2, file=log, all_threads=True, chain=False)
    try:
        home = _home(tmp_path, chain=False, chain_requested=True)
        marker, why = signal_marker(me, home)
        assert marker is not None and marker.chain is False, why
        assert marker.registration() == "chain=False (Hermes asked for chain=True; the hook turned it)"
        for fields, said in (({"chain": ...}, "older hook"), ({"chain": True}, "chain=True")):
            home = _home(tmp_path, **fields)
            assert read_marker(me, home)[0] is not None  # armed here, all the same
            marker, why = signal_marker(me, home)
            assert marker is None and said in why and why.startswith("no SIGUSR2 sent"), why
    finally:
        faulthandler.unregister(USR2)
        log.close()
    # The marker says chain=False, but nothing catches SIGUSR2 any more: the default action would kill.
    marker, why = signal_marker(me, _home(tmp_path, chain=False))
    assert marker is None and "does not catch SIGUSR2" in why, why
