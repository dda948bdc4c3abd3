"""Hermes release families: what each release's own files and signals mean, as plain data.

Pure: no I/O. ``observe/release.py`` reads what a home shows (the heartbeat's payload flags first, the
installed or checked-out version second, release-specific files third) and ``recognise`` picks the family
here; the rules then ask the family ("does this heartbeat witness the loop?", "what would SIGUSR2 do to it?",
"which storm rule?") instead of testing version numbers themselves.

Sources: ../shared/HERMES.md (read from the installed 0.14.0-0.19.0 packages and from upstream's git source
and PRs for the git releases 0.19.1-0.23.4, which need a newer Python than ours and so cannot run here).
Upstream, read through the code corpus (NousResearch/hermes-agent; nothing copied):
- gateway/shutdown_watchdog.py @056590cb: ``loop_heartbeat_forever`` writes the heartbeat through
  ``asyncio.to_thread`` and puts ``loop_tick_socket`` (bool) and ``loop_tick_tcp_port`` in every payload;
  ``_tick_socket_handler`` runs on the loop; ``start_loop_liveness_watchdog`` probes every 30 s (10 s
  timeout) and after 3 misses stamps ``degraded`` + ``exit_reason`` + ``restart_requested`` and exits with
  ``GATEWAY_SERVICE_RESTART_EXIT_CODE`` (75). Its docstring: off-loop, file freshness no longer proves the
  loop schedulable; probes must require the tick socket to agree.
- PR #92315 (merged 2026-08-22, inside 0.20.x): the write left the loop and the tick socket arrived in the
  same change; "legacy payloads (no witness flag) keep the old single-witness contract". So a heartbeat
  without the ``loop_tick_socket`` key was written by a task on the loop (0.19.0 up to that PR).
- gateway/lifecycle_ledger.py @00067189: ``state/gateway.lifecycle.json`` ``{phase, pid, start_time,
  create_time?, exit_code?, exit_reason?}``; ``sample_memory`` is the heartbeat's ``mem``.
- gateway/run_startup.py ``_start_install_faulthandler``: SIGUSR2 registered with ``chain=True`` until PR
  #111435 (merged 2026-09-15; hermes_cli/__init__.py @00067189 says 0.21.3 is 2026.9.14, 0.21.4 is
  2026.9.21), i.e. the dump then fell through to SIGUSR2's default action (#84373).
- gateway/systemd_notify.py @194c8ce7: ``SystemdWatchdog`` sends ``WATCHDOG=1`` from a task on the loop every
  half ``WATCHDOG_USEC`` when the unit sets ``WatchdogSec`` (and ``NOTIFY_SOCKET``): a loop witness systemd enforces.
- PR #82574 (merged 2026-08-09): the restart-loop breaker chains boots whose gap is under 300 s and trips
  at 3; 0.19.0 counted more than 5 starts in 120 s in gateway-starts.log. A family's storm rule is the one
  its newest release has (the change fell inside 0.20.x).
"""

from __future__ import annotations

from dataclasses import dataclass

from hermes_watchdog.facts.readings import STORM_CRASH_CYCLES, STORM_STARTS, ReleaseClues, StormRule

Version = tuple[int, int, int]

# Who writes state/gateway.heartbeat.
HB_NONE = "none"  # no heartbeat file
HB_LOOP = "loop"  # a task on the event loop: a fresh beat proves the loop turned
HB_THREAD = "thread"  # a thread (#92315): fresh while the loop is frozen; never a loop witness

# What SIGUSR2 does to the gateway.
USR2_FATAL = "fatal"  # nothing handles it: the default action terminates the gateway
USR2_CHAINS = "dump-then-fatal"  # Hermes' faulthandler dumps, then chains to the default action (#84373)
USR2_DUMPS = "dumps"  # Hermes' faulthandler dumps and the gateway lives on (chain=False, #111435)


# What a heartbeat may say about the loop (``heartbeat_role``).
ROLE_WITNESS = "witness"  # written by the loop: stale is a frozen witness, a beat during a stretch a veto
ROLE_SECOND = "second-witness"  # on-loop format, release not recognised: counts only beside another witness
ROLE_REPORT = "report-only"  # written off the loop: says the process runs, nothing about its loop


@dataclass(frozen=True)
class Family:
    name: str  # "0.14-0.18", "0.19.0", "0.19.1-0.21.3", "0.21.4+", a files-only family, "unknown"
    first: Version | None  # first release of the family (None: unknown family)
    last: Version | None  # last release (None: open-ended)
    heartbeat: str  # HB_* (a payload flag overrides it: see heartbeat_writer)
    tick_socket: bool  # state/gateway.loop-tick.<pid>.sock, served by the loop (may exist: not every release)
    lifecycle: bool  # state/gateway.lifecycle.json
    sigusr2: str  # USR2_*
    storm: StormRule | None  # None: no breaker of its own
    loop_watchdog: bool  # the in-process loop watchdog (exit 75 after 3 missed 30 s probes), on by default
    exit_restart: int | None  # the exit code with which Hermes asks its manager for a restart
    systemd_watchdog: bool  # WATCHDOG=1 from the loop when the unit sets WatchdogSec
    # What gateway_state.json's exit_reason / restart_requested / "degraded" mean in this family.
    state_meaning: str = ""

    def contains(self, v: Version) -> bool:
        return self.first is not None and v >= self.first and (self.last is None or v <= self.last)


# How long Hermes' own watchdog may take, once it has said it is restarting the gateway (degraded +
# exit_reason + restart_requested), before the watchdog stops deferring to it (issue 20): its probe interval
# x strikes, plus the manager's restart delay (systemd RestartSec, launchd's ThrottleInterval).
LOOP_PROBE_EVERY, LOOP_STRIKES, MANAGER_DELAY = 30.0, 3, 10.0
UPSTREAM_BUDGET = LOOP_PROBE_EVERY * LOOP_STRIKES + MANAGER_DELAY

_STARTS_RULE = StormRule(STORM_STARTS, 5, 120.0)
_CYCLES_RULE = StormRule(STORM_CRASH_CYCLES, 3, 300.0)
_OWN_EXIT = ("degraded + exit_reason 'loop_liveness_watchdog' or 'shutdown_watchdog' + restart_requested: "
             "Hermes' own watchdog is exiting 75 for its manager to restart it")

FAMILIES: tuple[Family, ...] = (
    Family("0.14-0.18", (0, 14, 0), (0, 18, 99), HB_NONE, False, False, USR2_FATAL, None, False, None, False,
           "no watchdog of its own: exit_reason is set on clean stops only"),
    Family("0.19.0", (0, 19, 0), (0, 19, 0), HB_LOOP, False, False, USR2_FATAL, _STARTS_RULE, False, None, True,
           "exit_reason 'shutdown_watchdog': a stalled stop was hard-exited; 'running' is left after a SIGTERM"),
    # The heartbeat's writer changed inside this family (#92315): the payload flag says which one wrote it.
    Family("0.19.1-0.21.3", (0, 19, 1), (0, 21, 3), HB_LOOP, True, True, USR2_CHAINS, _CYCLES_RULE, True, 75, True,
           _OWN_EXIT),
    Family("0.21.4+", (0, 21, 4), None, HB_THREAD, True, True, USR2_DUMPS, _CYCLES_RULE, True, 75, True, _OWN_EXIT),
)
# Files-only families: the version was not read, but the home's files show the release's shape. Each takes
# the worst SIGUSR2 of the releases it may be (nobody sends a signal on a guess) and the heartbeat writer
# its payload proves.
GIT_RELEASE = Family("0.19.1+ (git, version not read)", (0, 19, 1), None, HB_LOOP, True, True, USR2_CHAINS,
                     _CYCLES_RULE, True, 75, True, _OWN_EXIT)
LOOP_HEARTBEAT = Family("0.19.0-0.20.x (heartbeat on the loop, version not read)", (0, 19, 0), None, HB_LOOP,
                        False, False, USR2_CHAINS, _STARTS_RULE, False, None, True,
                        "as 0.19.0; a git release of this shape may also exit 75 with restart_requested")
# Nothing known: no file is trusted further than it proves itself; SIGUSR2 is taken as fatal.
UNKNOWN = Family("unknown", None, None, HB_NONE, False, False, USR2_FATAL, None, False, None, False,
                 "not known: read as the newest releases mean it")
FILES_ONLY = (GIT_RELEASE, LOOP_HEARTBEAT)


@dataclass(frozen=True)
class Recognised:
    family: Family
    source: str  # what it was recognised from, for status, diagnose and reports
    version: str | None = None  # the version read, if any
    loop_watchdog: bool | None = None  # config.yaml gateway.loop_watchdog as read (None: not set / not read)

    @property
    def loop_watchdog_on(self) -> bool:
        """Hermes' own loop watchdog runs in this gateway: the family has it and the config does not turn it off."""
        return self.family.loop_watchdog and self.loop_watchdog is not False

    def describe(self) -> str:
        return f"{self.family.name} (recognised from: {self.source})"

    def to_dict(self) -> dict[str, object]:
        f = self.family
        return {"family": f.name, "from": self.source, "version": self.version,
                "heartbeat_writer": f.heartbeat, "tick_socket": f.tick_socket, "lifecycle": f.lifecycle,
                "sigusr2": f.sigusr2, "storm": f.storm.describe() if f.storm else None,
                "loop_watchdog": self.loop_watchdog_on, "exit_restart": f.exit_restart,
                "systemd_watchdog": f.systemd_watchdog}


def parse_version(text: str | None) -> Version | None:
    """"0.21.3" -> (0, 21, 3); suffixes such as "0.20.0rc1" or "+g1234" are dropped; None if not a version."""
    if not text:
        return None
    parts: list[int] = []
    for piece in text.strip().split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    if len(parts) < 2:
        return None
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


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


def heartbeat_role(release: Recognised | None, payload_keys: frozenset[str] | None) -> str:
    """What the rules may take from this heartbeat: ROLE_WITNESS (the loop wrote it, the release is
    recognised), ROLE_SECOND (on-loop format but the release is not: never alone, never a veto), or
    ROLE_REPORT (written off the loop, or a family without a loop heartbeat: reported, never judged on)."""
    family = release.family if release is not None else UNKNOWN
    writer = heartbeat_writer(family, payload_keys if payload_keys is not None else frozenset())
    if writer != HB_LOOP:
        return ROLE_REPORT
    return ROLE_SECOND if family is UNKNOWN else ROLE_WITNESS


def recognise(version: Version | None, version_source: str | None, payload_keys: frozenset[str] | None,
              tick_socket: bool, lifecycle: bool, version_text: str | None = None,
              loop_watchdog: bool | None = None) -> Recognised:
    """The family, from what the home's files show first and the version second.

    ``payload_keys``: the keys of this gateway's heartbeat payload (None: no usable heartbeat of its own);
    ``tick_socket``: a loop-tick socket for its PID exists; ``lifecycle``: state/gateway.lifecycle.json
    exists. The files decide where they contradict the version (a wheel left behind while a git checkout
    runs), and the version picks among the families the files allow."""
    flagged = payload_keys is not None and "loop_tick_socket" in payload_keys
    seen = []  # the release-specific files, in plain words
    if flagged:
        seen.append("heartbeat payload flag loop_tick_socket")
    if tick_socket:
        seen.append("a loop-tick socket for its PID")
    if lifecycle:
        seen.append("state/gateway.lifecycle.json")
    vtext = version_text or (".".join(map(str, version)) if version else None)
    by_version = family_of(version)
    with_version = [f"version {vtext} from {version_source or 'its install'}"] if vtext else []
    if seen:  # a git release 0.19.1+: the version may narrow it, never contradict it
        if by_version.first is not None and by_version.first >= (0, 19, 1):
            return Recognised(by_version, "; ".join([*seen, *with_version]), vtext, loop_watchdog)
        note = [f"version {vtext} ignored: its files are a 0.19.1+ release's"] if vtext else []
        return Recognised(GIT_RELEASE, "; ".join([*seen, *note]), vtext, loop_watchdog)
    has_beat = by_version.heartbeat != HB_NONE
    if by_version is not UNKNOWN and (has_beat or payload_keys is None):
        return Recognised(by_version, "; ".join(with_version), vtext, loop_watchdog)
    if payload_keys is not None:
        # A heartbeat without the flag: written by a task on the loop (0.19.0 up to #92315).
        note = [f"version {vtext} ignored: releases before 0.19.0 write no heartbeat"] if vtext else []
        return Recognised(LOOP_HEARTBEAT, "; ".join(["heartbeat payload without the loop_tick_socket flag", *note]),
                          vtext, loop_watchdog)
    why = f"version {vtext} not a known release" if vtext else "no version and no release-specific file"
    return Recognised(UNKNOWN, why, vtext, loop_watchdog)


def recognise_clues(clues: ReleaseClues) -> Recognised:
    """The family from what observe/release.py read."""
    return recognise(parse_version(clues.version), clues.version_source, clues.heartbeat_keys, clues.tick_socket,
                     clues.lifecycle, version_text=clues.version, loop_watchdog=clues.loop_watchdog)
