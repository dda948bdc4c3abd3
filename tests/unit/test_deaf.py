"""The deaf signatures as plain data: descriptors, half-closed sockets, memory growth; their place among the
other rules, and what the policy does with them."""

from __future__ import annotations

import json

from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.facts.deaf import DeafSeen, DeafThresholds, Descriptors, HalfClosed, Sockets, track
from hermes_watchdog.judge import descriptors, growth, halfclosed, policy
from hermes_watchdog.judge.cpu import usage
from hermes_watchdog.judge.deaf import FD_EXHAUSTION, MEMORY_GROWTH, SOCKETS_HALF_CLOSED
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import BUSY_LOOP, HEALTHY, MEMORY_HIGH, Seen, StateSeen, Thresholds
from hermes_watchdog.observe.statefile import parse_state

DTH = DeafThresholds()
GiB = 1 << 30
RULES = policy.Rules(window=60, interval=5, min_confidence=0.5, pegged_after=600, stuck_after=900,
                     stuck_action="alert")


def cpu(cores: float = 0.02):
    return usage([CpuSnapshot(0, 0, (ThreadTimes(11, 0),)), CpuSnapshot(5, cores * 5, (ThreadTimes(11, cores * 5),))])


def state(**platforms: str) -> StateSeen:
    data = {"pid": 1, "gateway_state": "running", "platforms": {k: {"state": v} for k, v in platforms.items()}}
    return StateSeen(parse_state("s", json.dumps(data).encode()), True)


TH = Thresholds()


def verdict(deaf: DeafSeen, th: Thresholds = TH, cores: float = 0.02, **platforms: str):
    return judge(cpu(cores), [state(**(platforms or {"discord": "connected"}))], None, th, seen=Seen(deaf=deaf))


# -- fd-exhaustion

def test_descriptors_below_the_alert_level_say_nothing() -> None:
    assert descriptors.rule(Descriptors(799, 1000), DTH) is None
    assert descriptors.rule(Descriptors(5000, None), DTH) is None  # limit unknown (macOS) or unlimited: no verdict
    assert descriptors.rule(None, DTH) is None


def test_descriptors_alert_from_80_and_restart_from_95_percent() -> None:
    alert = descriptors.rule(Descriptors(800, 1000), DTH)
    assert alert is not None and alert.signature == FD_EXHAUSTION and alert.evidence["level"] == "alert"
    full = descriptors.rule(Descriptors(950, 1000, {"sockets": 10, "files": 930, "pipes": 4, "other": 6},
                                        (("/h/state.db", 750), ("/h/log", 3))), DTH)
    assert full is not None and full.evidence["level"] == "restart" and full.confidence > alert.confidence
    text = " ".join(full.reasons)
    assert "950 of 1000" in text and "files 930" in text and "/h/state.db x750" in text
    assert full.evidence["top_paths"][0] == {"path": "/h/state.db", "count": 750}


def test_fd_policy_waits_a_tick_then_restarts_only_past_the_restart_level() -> None:
    v = verdict(DeafSeen(fds=Descriptors(960, 1000)))
    assert v.signature == FD_EXHAUSTION and v.evidence and v.evidence["level"] == "restart"
    assert policy.decide(v, 0.0, RULES).kind == policy.WAIT
    assert policy.decide(v, 5.0, RULES).kind == policy.RESTART
    from dataclasses import replace
    assert policy.decide(v, 5.0, replace(RULES, fd_action="alert")).kind == policy.ALERT
    low = verdict(DeafSeen(fds=Descriptors(850, 1000)))
    assert policy.decide(low, 5.0, RULES).kind == policy.ALERT


def test_a_busy_loop_wins_over_descriptors() -> None:
    v = verdict(DeafSeen(fds=Descriptors(960, 1000)), cores=1.0, qqbot="disconnected")
    assert v.signature == BUSY_LOOP


# -- sockets-half-closed

def hc(seconds: float, port: int = 443) -> HalfClosed:
    return HalfClosed("10.0.0.2:5000", f"162.159.1.1:{port}", seconds)


def test_track_keeps_first_seen_while_the_socket_stays_and_forgets_it_after() -> None:
    a, b = ("l", "r1"), ("l", "r2")
    first = track({}, [a], 10.0)
    assert first == {a: 10.0}
    second = track(first, [a, b], 40.0)
    assert second == {a: 10.0, b: 40.0}
    assert track(second, [b], 70.0) == {b: 40.0}  # a closed: forgotten
    assert track(second, [a], 99.0) == {a: 10.0}


def test_half_closed_young_sockets_are_not_a_verdict() -> None:
    assert halfclosed.rule(Sockets((hc(299),)), DTH) is None
    assert halfclosed.rule(Sockets(()), DTH) is None


def test_half_closed_past_the_limit_names_endpoints_ages_and_connected_platforms() -> None:
    f = halfclosed.rule(Sockets((hc(30, 1), hc(4000, 2)), established=0), DTH, ("discord",))
    assert f is not None and f.signature == SOCKETS_HALF_CLOSED and f.evidence["held_long"] == 1
    text = " ".join(f.reasons)
    assert "162.159.1.1:2 (67 min)" in text and "discord" in text and "0 TCP connection(s) established" in text
    assert f.evidence["half_closed"][0]["seconds"] == 4000  # oldest first


def test_half_closed_growth_needs_a_never_falling_count_over_the_span() -> None:
    young = tuple(hc(5, p) for p in range(8))
    rising = tuple((t * 30.0, n) for t, n in enumerate((1, 2, 4, 6, 8)))
    f = halfclosed.rule(Sockets(young, rising), DTH)
    assert f is not None and f.evidence["growing"] and f.confidence < 0.85
    bursts = tuple((t * 30.0, n) for t, n in enumerate((1, 6, 2, 7, 8)))  # short-lived ones come and go
    assert halfclosed.rule(Sockets(young, bursts), DTH) is None
    short = tuple((t * 10.0, n) for t, n in enumerate((1, 2, 4, 6, 8)))  # 40 s: not long enough
    assert halfclosed.rule(Sockets(young, short), DTH) is None


def test_half_closed_policy_alerts_by_default_and_restarts_on_request() -> None:
    v = verdict(DeafSeen(sockets=Sockets((hc(600),))))
    assert v.signature == SOCKETS_HALF_CLOSED
    assert "discord" in " ".join(v.reasons)
    assert policy.decide(v, 0.0, RULES).kind == policy.ALERT
    from dataclasses import replace
    assert policy.decide(v, 0.0, replace(RULES, deaf_action="restart")).kind == policy.RESTART


# -- memory-growth

def series(rate_per_h: float, seconds: float, step: float = 10.0, start: int = GiB) -> tuple[tuple[float, int], ...]:
    n = int(seconds / step) + 1
    return tuple((i * step, int(start + rate_per_h / 3600 * i * step)) for i in range(n))


def test_memory_growth_sustained_over_the_rate_alerts_with_time_to_exhaustion() -> None:
    seen = DeafSeen(rss=series(2 * GiB, 600), mem_available=8 * GiB, mem_total=16 * GiB)
    f = growth.rule(seen, DTH, limit=4 * GiB)
    assert f is not None and f.signature == MEMORY_GROWTH
    assert abs(f.evidence["bytes_per_hour"] - 2 * GiB) < GiB / 100
    assert abs(f.evidence["exhausts_machine_in_seconds"] - 4 * 3600) < 60
    assert "4.0 h" in " ".join(f.reasons) and "--memory-limit" in " ".join(f.reasons)


def test_memory_growth_needs_the_rate_the_span_and_both_halves() -> None:
    assert growth.rule(DeafSeen(rss=series(0.5 * GiB, 600)), DTH) is None  # too slow
    assert growth.rule(DeafSeen(rss=series(2 * GiB, 300)), DTH) is None  # not yet 10 min
    step = tuple((t, GiB if t < 300 else 3 * GiB) for t, _ in series(0, 600))  # one jump (a model loaded)
    assert growth.rule(DeafSeen(rss=step), DTH) is None
    flat_then_up = tuple((t, GiB + (0 if t < 400 else int((t - 400) * 2e6))) for t, _ in series(0, 600))
    assert growth.rule(DeafSeen(rss=flat_then_up), DTH) is None


def test_memory_high_keeps_its_place_before_growth() -> None:
    rss = series(2 * GiB, 600)
    from hermes_watchdog.judge.verdict import Memory
    th = Thresholds(memory_limit=GiB // 2)
    v = judge(cpu(), [state(discord="connected")], None, th,
              seen=Seen(deaf=DeafSeen(rss=rss), memory=Memory(rss[-5:])))
    assert v.signature == MEMORY_HIGH
    plain = verdict(DeafSeen(rss=rss))
    assert plain.signature == MEMORY_GROWTH and policy.decide(plain, 0.0, RULES).kind == policy.ALERT
    assert plain.to_dict()["evidence"]["bytes_per_hour"] > GiB


def test_nothing_deaf_is_healthy() -> None:
    v = verdict(DeafSeen(fds=Descriptors(40, 1024), sockets=Sockets(()), rss=series(0, 600)))
    assert v.signature == HEALTHY and "evidence" not in v.to_dict()


def test_gauges_and_status_line() -> None:
    from hermes_watchdog.record import metrics
    from hermes_watchdog.record.render import deaf_line as _deaf_line

    summary = {"fds_open": 190, "fd_limit": 200, "close_wait": 3, "close_wait_oldest_seconds": 40.0,
               "established": 1, "rss_growth_bytes_per_hour": 50 << 20}
    snap = metrics.Snapshot((metrics.GatewayMetrics("default", True, deaf=summary),
                             metrics.GatewayMetrics("other", True)), 1.0, 0.0)
    got = {f.name: [(s.labels, s.value) for s in f.samples] for f in metrics.families(snap)}
    assert got["hermes_watchdog_gateway_open_fds"] == [({"profile": "default"}, 190.0)]
    assert got["hermes_watchdog_gateway_close_wait_oldest_seconds"] == [({"profile": "default"}, 40.0)]
    assert got["hermes_watchdog_gateway_rss_growth_bytes_per_hour"] == [({"profile": "default"}, float(50 << 20))]
    verdicts = [s.labels["signature"] for f in metrics.families(snap) if f.name == "hermes_watchdog_verdict"
                for s in f.samples]
    assert {FD_EXHAUSTION, SOCKETS_HALF_CLOSED, MEMORY_GROWTH} <= set(verdicts)
    assert _deaf_line(summary) == ("190 descriptors open of 200 (95%); 3 TCP socket(s) in CLOSE_WAIT (oldest 40 s); "
                                   "RSS +50 MiB/h")
    assert _deaf_line({}) == ""


def test_proc_tcp_rows_and_addresses() -> None:
    from hermes_watchdog.observe import sockets

    table = (b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
             b"   0: 0100007F:1F90 0100007F:D2F0 08 00000000:00000000 00:00000000 00000000     0        0 4242 1\n"
             b"   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4243 1\n")
    assert sockets.scan([table]) == [(b"08", b"0100007F:1F90", b"0100007F:D2F0", b"4242")]
    assert sockets.decode(b"0100007F:1F90") == "127.0.0.1:8080"
    assert sockets.decode(b"00000000000000000000000001000000:0050") == "[::1]:80"


def test_unclean_death_needs_a_live_phase_for_the_same_dead_pid() -> None:
    from hermes_watchdog.judge.death import unclean_death

    mem = {"rss_kib": 6 << 20, "mem_available_kib": 100 << 10}
    text = unclean_death("running", 41, 41, alive=False, mem=mem)
    assert text is not None and "'running' for PID 41" in text and "rss 6.0 GiB" in text
    assert "mem_available 100.0 MiB" in text
    assert unclean_death("running", 41, 41, alive=False) is not None
    assert unclean_death("exited", 41, 41, alive=False) is None  # it said goodbye
    assert unclean_death("running", 41, 41, alive=True) is None
    assert unclean_death("running", 42, 41, alive=False) is None  # the ledger is another gateway's
    assert unclean_death(None, None, 41, alive=False) is None  # no ledger (releases before 0.19.1)


def test_config_of_the_deaf_signatures(tmp_path, monkeypatch) -> None:
    import pytest

    from hermes_watchdog import config
    from hermes_watchdog.errors import UserError

    monkeypatch.setenv("HERMES_HOME", str(tmp_path / "nohome"))
    cfg = config.build(None, {})
    assert (cfg.fd_alert, cfg.fd_restart, cfg.fd_action, cfg.half_closed_after, cfg.deaf_action) == \
        (0.8, 0.95, "restart", 300.0, "alert")
    assert cfg.memory_growth == GiB and cfg.memory_growth_for == 600.0
    f = tmp_path / "w.toml"
    f.write_text('memory_growth = "500MiB/h"\nfd_action = "alert"\nhalf_closed_after = 120\n')
    cfg = config.build(f, {"deaf_action": "restart", "fd_alert": 0.7})
    assert (cfg.memory_growth, cfg.fd_action, cfg.half_closed_after, cfg.deaf_action, cfg.fd_alert) == \
        (500 << 20, "alert", 120.0, "restart", 0.7)
    for flags in ({"fd_alert": 1.5}, {"fd_alert": 0.99}, {"memory_growth": "fast"}, {"deaf_action": "kill"},
                  {"half_closed_after": 0}):
        with pytest.raises(UserError):
            config.build(None, flags)


def test_the_tracker_schedules_its_reads_and_ages_the_sockets(monkeypatch) -> None:
    """observe/deaf.py on a fake world: which read runs at which tick, and the ages it derives."""
    from hermes_watchdog.observe import deaf as tracker_mod
    from hermes_watchdog.observe.sockets import TcpSeen

    calls: dict[str, int] = {"count": 0, "limit": 0, "classify": 0, "sockets": 0}
    world = {"open": 100, "wait": (("l:1", "r:1"),)}

    def count(pid):
        calls["count"] += 1
        return world["open"]

    def limit(pid):
        calls["limit"] += 1
        return 1000

    def classify(pid):
        calls["classify"] += 1
        return {"files": world["open"]}, (("/h/state.db", world["open"]),)

    def read(pid):
        calls["sockets"] += 1
        return TcpSeen(world["wait"], None)

    monkeypatch.setattr(tracker_mod.descriptors, "count", count)
    monkeypatch.setattr(tracker_mod.descriptors, "soft_limit", limit)
    monkeypatch.setattr(tracker_mod.descriptors, "classify", classify)
    monkeypatch.setattr(tracker_mod.sockets, "read", read)
    t = tracker_mod.DeafTracker()
    th = DeafThresholds(half_closed_after=300)  # sockets every 100 s
    seen = None
    for i in range(61):  # 300 s of 5 s ticks
        seen = t.observe(1, i * 5.0, GiB + i * 10_000_000, th, 5.0)
    assert calls["count"] == 61 and calls["limit"] == 6 and calls["classify"] == 0  # far from the limit
    assert calls["sockets"] == 4  # at 0, 100, 200, 300 s
    assert seen is not None and seen.sockets is not None and seen.sockets.half_closed[0].seconds == 300.0
    assert seen.fds == Descriptors(100, 1000)
    assert 30 <= len(seen.rss) <= 32 and seen.rss[-1][1] == GiB + 600_000_000  # one point per 10 s
    world["open"] = 900  # near the limit: classified, then again only when it moves 5 % of the limit
    t.observe(1, 305.0, None, th, 5.0)
    t.observe(1, 310.0, None, th, 5.0)
    assert calls["classify"] == 1
    world["open"] = 960
    got = t.observe(1, 315.0, None, th, 5.0)
    assert calls["classify"] == 2 and got.fds is not None and got.fds.kinds == {"files": 960}
    world["wait"] = (("l:2", "r:2"),)  # the old one closed, a new one half-closed
    got = t.observe(1, 400.0, None, th, 5.0)
    assert got.sockets is not None and [h.seconds for h in got.sockets.half_closed] == [0.0]
    assert t.summary()["close_wait"] == 1 and t.summary()["fds_open"] == 960
