"""Issue 24 item 11: the gateway unit's loop watchdog drop-in, from plain data."""

from __future__ import annotations

from hermes_watchdog.installers.gateway_watchdog import refusal, render
from hermes_watchdog.judge.families import FAMILIES, UNKNOWN, Recognised

BY_NAME = {f.name: f for f in FAMILIES}


def test_only_releases_that_ping_from_their_loop_get_a_watchdogsec() -> None:
    assert refusal(Recognised(BY_NAME["0.19.0"], "version")) is None
    assert refusal(Recognised(BY_NAME["0.21.4+"], "version")) is None
    why = refusal(Recognised(BY_NAME["0.14-0.18"], "version"))
    assert why is not None and "does not send WATCHDOG=1" in why and "0.14-0.18" in why
    assert refusal(Recognised(UNKNOWN, "nothing")) is not None


def test_the_dropin_keeps_the_units_own_restart_and_adds_one_only_where_there_is_none() -> None:
    rec = Recognised(BY_NAME["0.21.4+"], "version")
    kept = render("hermes-gateway.service", "always", rec)
    assert "[Service]\nNotifyAccess=main\nWatchdogSec=120\n" in kept and "Restart=" not in kept
    assert render("hermes-gateway.service", "no", rec).endswith("Restart=on-watchdog\n")
