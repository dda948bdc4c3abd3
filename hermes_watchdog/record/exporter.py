"""Serving the metrics: ``/metrics`` over HTTP (prometheus-client's server, its own thread) and a
node_exporter textfile (prometheus-client writes a temp file beside it and renames it: atomic).

The daemon hands over a new ``metrics.Snapshot`` after each tick; a scrape renders whichever snapshot is
current, so a scrape never waits for a tick and never sees half of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import Metric

from hermes_watchdog.errors import UserError
from hermes_watchdog.record import metrics


class _SnapshotCollector:
    def __init__(self) -> None:
        self.snapshot: metrics.Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot  # one reference read: the daemon swaps whole snapshots
        if snap is not None:
            yield from metrics.families(snap)


class Exporter:
    def __init__(self, port: int | None, host: str, textfile: Path | None) -> None:
        self.port, self.host, self.textfile = port, host, textfile
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _SnapshotCollector()
        self.registry.register(self._collector)  # type: ignore[arg-type]
        self._server = None
        self.url: str | None = None

    @property
    def enabled(self) -> bool:
        return self.port is not None or self.textfile is not None

    def start(self) -> None:
        if self.port is None:
            return
        try:
            self._server, _ = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise UserError(f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror or exc}") from None
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self._server.server_port}/metrics"

    def update(self, snap: metrics.Snapshot) -> str | None:
        """Publish a snapshot; returns a problem with the textfile, if any (the caller says it once)."""
        self._collector.snapshot = snap
        if self.textfile is None:
            return None
        try:
            write_to_textfile(str(self.textfile), self.registry)
        except OSError as exc:
            return f"cannot write metrics textfile {self.textfile}: {exc.strerror or exc}"
        return None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
