"""Hermes release families: what each release's own files and signals mean, as plain data.

Pure: no I/O. ``observe/release.py`` reads what a home shows (the heartbeat's payload flags first, the
installed or checked-out version second) and ``recognise`` picks the family here; the rules then ask the
family ("does this heartbeat witness the loop?", "may SIGUSR2 be sent?", "which storm rule?") instead of
testing version numbers themselves.

Sources: ../shared/HERMES.md (read from the installed 0.14.0-0.19.0 packages and from upstream's git source
and PRs for the git releases 0.19.1-0.23.4, which need a newer Python than ours and so cannot run here).
"""

from __future__ import annotations

from dataclasses import dataclass

Version = tuple[int, int, int]

# Who writes state/gateway.heartbeat.
HB_NONE = "none"  # no heartbeat file
HB_LOOP = "loop"  # a task on the event loop: a fresh beat proves the loop turned
HB_THREAD = "thread"  # a thread (#92315): fresh while the loop is frozen; never a loop witness

# What SIGUSR2 does to the gateway.
USR2_FATAL = "fatal"  # nothing handles it: the default action terminates the gateway
USR2_CHAINS = "dump-then-fatal"  # Hermes' faulthandler dumps, then chains to the default action (#84373)
USR2_DUMPS = "dumps"  # Hermes' faulthandler dumps and the gateway lives on (chain=False, #111435)

# The respawn-storm breaker.
STORM_STARTS = "starts"  # more than N starts within W s (gateway-starts.log)
STORM_CRASH_CYCLES = "crash-cycles"  # N crash cycles chained within W s (#82574)


@dataclass(frozen=True)
class StormRule:
    kind: str  # STORM_STARTS / STORM_CRASH_CYCLES
    count: int  # more than this many starts (STORM_STARTS), or this many chained cycles (STORM_CRASH_CYCLES)
    window: float  # seconds

    def describe(self) -> str:
        if self.kind == STORM_STARTS:
            return f"more than {self.count} starts in {self.window:.0f} s"
        return f"{self.count} crash cycles chained within {self.window:.0f} s"


@dataclass(frozen=True)
class Family:
    name: str  # "0.14-0.18", "0.19.0", "0.19.1-0.21.3", "0.21.4+", "unknown"
    first: Version | None  # first release of the family (None: unknown family)
    last: Version | None  # last release (None: open-ended)
    heartbeat: str  # HB_* (a payload flag overrides it: see heartbeat_writer)
    tick_socket: bool  # state/gateway.loop-tick.<pid>.sock, served by the loop
    lifecycle: bool  # state/gateway.lifecycle.json
    sigusr2: str  # USR2_*
    storm: StormRule | None  # None: no breaker of its own
    loop_watchdog: bool  # the in-process loop watchdog (exit 75 after 3 missed 30 s probes), on by default
    exit_restart: int | None  # the exit code with which Hermes asks its manager for a restart
    systemd_watchdog: bool  # WATCHDOG=1 from the loop when the unit sets WatchdogSec

    def contains(self, v: Version) -> bool:
        return self.first is not None and v >= self.first and (self.last is None or v <= self.last)


FAMILIES: tuple[Family, ...] = (
    Family("0.14-0.18", (0, 14, 0), (0, 18, 99), HB_NONE, False, False, USR2_FATAL, None, False, None, False),
    Family("0.19.0", (0, 19, 0), (0, 19, 0), HB_LOOP, False, False, USR2_FATAL,
           StormRule(STORM_STARTS, 5, 120.0), False, None, True),
    Family("0.19.1-0.21.3", (0, 19, 1), (0, 21, 3), HB_LOOP, True, True, USR2_CHAINS,
           StormRule(STORM_CRASH_CYCLES, 3, 300.0), True, 75, True),
    Family("0.21.4+", (0, 21, 4), None, HB_THREAD, True, True, USR2_DUMPS,
           StormRule(STORM_CRASH_CYCLES, 3, 300.0), True, 75, True),
)
# Nothing known: no file is trusted further than it proves itself; SIGUSR2 is taken as fatal.
UNKNOWN = Family("unknown", None, None, HB_NONE, False, False, USR2_FATAL, None, False, None, False)


@dataclass(frozen=True)
class Recognised:
    family: Family
    source: str  # what it was recognised from, for status, diagnose and reports

    def to_dict(self) -> dict[str, object]:
        return {"family": self.family.name, "from": self.source}


def family_of(version: Version | None) -> Family:
    if version is None:
        return UNKNOWN
    return next((f for f in FAMILIES if f.contains(version)), UNKNOWN)


def heartbeat_writer(family: Family, payload_keys: frozenset[str] | None) -> str:
    """Who wrote this heartbeat: the payload's own flags first (``loop_tick_socket`` is written only by the
    off-loop writer of #92315), the family second. A file in the on-loop format from an unknown release
    counts as the loop's (it can be one witness of two, never a restart on its own)."""
    if payload_keys is None:
        return HB_NONE
    if "loop_tick_socket" in payload_keys:
        return HB_THREAD
    if family is UNKNOWN:
        return HB_LOOP
    return family.heartbeat


def recognise(version: Version | None, version_source: str | None, payload_keys: frozenset[str] | None,
              tick_socket: bool, lifecycle: bool) -> Recognised:
    """The family, from what the home's files show first and the version second. TODO(fam helper):
    files-only recognition (a flagged heartbeat, a tick socket or a lifecycle ledger mean a git release
    0.19.1+) and the wording of ``source``."""
    fam = family_of(version)
    if fam is not UNKNOWN:
        return Recognised(fam, version_source or "its version")
    return Recognised(UNKNOWN, "no version and no release-specific file")
