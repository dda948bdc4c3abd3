"""The real whole Hermes gateway for tests: ``real_gateway(version, ...)`` (the fixture in conftest.py)
starts ``python -m hermes_cli.main gateway run`` from the cached hermes-agent==version venv, in a scratch
HERMES_HOME, against its own loopback fake QQ server, waits until it runs with qqbot connected (and, on
0.19+, its heartbeat exists), and kills it all after the test. See tests/realhermes/gateway_harness.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from tests.realhermes.gateway_harness import FakeServer, Gateway, start_fake_qq, start_fake_telegram, start_gateway
from tests.realhermes.venvs import hermes_venv


class StartGateway(Protocol):
    def __call__(self, version: str, *, supervised: bool = False, extra_env: dict[str, str] | None = None,
                 pth: dict[str, str] | None = None, wait: bool = True, telegram: bool = False) -> Gateway: ...


def real_gateways(tmp_path: Path) -> Iterator[StartGateway]:
    gateways: list[Gateway] = []
    fakes: list[FakeServer] = []

    def start(version: str, *, supervised: bool = False, extra_env: dict[str, str] | None = None,
              pth: dict[str, str] | None = None, wait: bool = True, telegram: bool = False) -> Gateway:
        python = hermes_venv(version, telegram=telegram)
        fake = start_fake_qq(python)
        fakes.append(fake)
        home = tmp_path / f"hermes-{len(gateways)}"
        # The cached venv is shared: a fix pack or hook some other run left in it is switched off, unless the
        # test asks otherwise (install into a private overlay for that: tests/realhermes/overlay.py).
        env = {"HERMES_WATCHDOG_PATCHES": "0", **(extra_env or {})}
        tg = start_fake_telegram(python) if telegram else None  # the real Telegram adapter too, against it
        if tg is not None:
            fakes.append(tg)
        gw = start_gateway(python, version, home, fake, extra_env=env, pth=pth, supervised=supervised, telegram=tg)
        gateways.append(gw)
        if wait:
            gw.wait_ready()
        return gw

    try:
        yield start
    finally:
        for gw in gateways:
            gw.stop()
        for fake in fakes:
            fake.stop()
