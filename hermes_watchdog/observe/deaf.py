"""One gateway's deaf readings between ticks: its descriptors, its CLOSE_WAIT sockets (how long each has
been so) and a long, thinned RSS history. It schedules the reads so the daemon stays cheap:

  descriptor count   every tick            one listdir of /proc/<pid>/fd
  soft RLIMIT_NOFILE every LIMIT_EVERY s   one prlimit(2)
  classification     near the limit only   one readlink per descriptor, at most every CLASSIFY_EVERY s
  CLOSE_WAIT sockets every sockets_every() sock_diag netlink, CLOSE_WAIT only (observe/sockets.py: the
                                           kernel walks its TCP hash, ~1.5 ms a family here): every 100 s
                                           at defaults

Measured: about 0.00006 core per gateway at defaults in-process, +0.00010 in the daemon A/B
(bench/deaf_cost.py, bench/overhead.py; BENCHMARKS.md).
  RSS history        from the tick's own sample, kept one point per growth_for/60 s; free memory with it

I/O through observe/descriptors.py and observe/sockets.py; the ages are facts/deaf.track (pure).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psutil

from hermes_watchdog.facts.deaf import (
    GROWTH_SPAN,
    DeafSeen,
    DeafThresholds,
    Descriptors,
    HalfClosed,
    Key,
    Sockets,
    slope,
    track,
)
from hermes_watchdog.observe import descriptors, sockets

LIMIT_EVERY = 60.0
CLASSIFY_EVERY = 30.0
# Seconds between socket reads at most, and at most a third of --half-closed-after: a socket half-closed
# for --half-closed-after is seen so within a third more (300 s: by 400 s). Each read is two walks of the
# kernel's TCP hash (about 3 ms of CPU here), so this is most of the deaf readings' cost.
SOCKETS_MAX_EVERY = 120.0
RSS_POINTS = 60  # points kept over growth_for


def sockets_every(th: DeafThresholds, interval: float) -> float:
    return max(interval, min(SOCKETS_MAX_EVERY, th.half_closed_after / 3))


@dataclass
class DeafTracker:
    first_seen: dict[Key, float] = field(default_factory=dict)
    counts: deque[tuple[float, int]] = field(default_factory=deque)
    rss: deque[tuple[float, int]] = field(default_factory=deque)
    limit: int | None = None
    limit_at: float | None = None
    kinds: tuple[dict[str, int], tuple[tuple[str, int], ...]] | None = None
    kinds_at: float | None = None
    kinds_open: int = 0  # the count when classified: again once it moved 5 % of the limit
    sockets_at: float | None = None
    tcp: sockets.TcpSeen | None = None
    mem: tuple[int | None, int | None] = (None, None)
    fds: Descriptors | None = None

    def observe(self, pid: int, now: float, rss: int | None, th: DeafThresholds, interval: float,
                force: bool = False) -> DeafSeen:
        """One tick's reads (``now`` monotonic), each skipped until it is due (``force``: the sockets now,
        as ``diagnose`` does after its sample); never raises for a read."""
        self._fds(pid, now, th)
        if force:
            self.sockets_at = None
        self._sockets(pid, now, th, interval)
        self._rss(now, rss, th, interval)
        return self.seen(now)

    def classify_now(self, pid: int) -> None:
        """Counts by kind and the paths held most, whatever the ratio (``diagnose``, once)."""
        if self.fds is not None:
            self.kinds, self.kinds_at = descriptors.classify(pid), self.kinds_at
            k = self.kinds
            self.fds = Descriptors(self.fds.open, self.fds.soft_limit, k[0] if k else None, k[1] if k else ())

    def seen(self, now: float) -> DeafSeen:
        sock = None
        if self.tcp is not None:
            # Ages as of the newest read: what was seen, not what may have changed since.
            at = self.sockets_at if self.sockets_at is not None else now
            sock = Sockets(tuple(HalfClosed(lo, re, at - self.first_seen.get((lo, re), at))
                                 for lo, re in self.tcp.close_wait), tuple(self.counts), self.tcp.established)
        return DeafSeen(fds=self.fds, sockets=sock, rss=tuple(self.rss), mem_available=self.mem[0],
                        mem_total=self.mem[1])

    def _fds(self, pid: int, now: float, th: DeafThresholds) -> None:
        n = descriptors.count(pid)
        if self.limit_at is None or now - self.limit_at >= LIMIT_EVERY:
            self.limit, self.limit_at = descriptors.soft_limit(pid), now
        if n is None:
            self.fds = None
            return
        near = self.limit is not None and n >= th.fd_alert * self.limit
        if not near:
            self.kinds = self.kinds_at = None
        elif self.kinds_at is None or now - self.kinds_at >= CLASSIFY_EVERY or \
                abs(n - self.kinds_open) >= 0.05 * (self.limit or 0):
            self.kinds, self.kinds_at, self.kinds_open = descriptors.classify(pid), now, n
        k = self.kinds
        self.fds = Descriptors(n, self.limit, k[0] if k else None, k[1] if k else ())

    def _sockets(self, pid: int, now: float, th: DeafThresholds, interval: float) -> None:
        # A quarter interval of slack: ticks jitter.
        if self.sockets_at is not None and now - self.sockets_at < sockets_every(th, interval) - 0.25 * interval:
            return
        self.sockets_at = now
        self.tcp = sockets.read(pid)
        if self.tcp is None:
            self.first_seen.clear()
            self.counts.clear()
            return
        self.first_seen = track(self.first_seen, self.tcp.close_wait, now)
        self.counts.append((now, len(self.tcp.close_wait)))
        keep = 1.5 * min(GROWTH_SPAN, th.half_closed_after) + sockets_every(th, interval)
        while len(self.counts) > 3 and self.counts[1][0] <= now - keep:
            self.counts.popleft()

    def _rss(self, now: float, rss: int | None, th: DeafThresholds, interval: float) -> None:
        if rss is None:
            return
        step = max(interval * 0.75, th.growth_for / RSS_POINTS)
        if self.rss and now - self.rss[-1][0] < step:
            return
        self.rss.append((now, rss))
        while len(self.rss) > 2 and self.rss[1][0] <= now - th.growth_for - 2 * step:
            self.rss.popleft()
        try:
            vm = psutil.virtual_memory()
            self.mem = (int(vm.available), int(vm.total))
        except (OSError, psutil.Error):
            self.mem = (None, None)

    def summary(self) -> dict[str, Any]:
        """For state.json (`status`) and the metrics."""
        rate = slope(list(self.rss)[-12:]) if len(self.rss) >= 3 else None
        oldest = None
        if self.tcp is not None and self.tcp.close_wait and self.sockets_at is not None:
            oldest = max(self.sockets_at - self.first_seen.get(k, self.sockets_at) for k in self.tcp.close_wait)
        return {"fds_open": self.fds.open if self.fds else None, "fd_limit": self.limit,
                "close_wait": len(self.tcp.close_wait) if self.tcp else None,
                "close_wait_oldest_seconds": None if oldest is None else round(oldest, 1),
                "established": self.tcp.established if self.tcp else None,
                "rss_growth_bytes_per_hour": None if rate is None else round(rate * 3600)}
