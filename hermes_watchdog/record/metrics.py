"""What the daemon knows, as Prometheus metric families. Pure: a plain snapshot in, metric families out.

The daemon builds a ``Snapshot`` after every tick; the HTTP exporter and the textfile writer
(``exporter.py``) render the latest one. Series (labels ``profile``, ``platform``, ``signature``,
``result``; the first home is profile "default", another home outside ~/.hermes/profiles is its path):

  hermes_watchdog_gateway_up                   1 while a verified gateway process is watched
  hermes_watchdog_gateway_cpu_cores            the gateway's CPU over the last interval, in cores
  hermes_watchdog_gateway_hot_thread_cores     its hottest thread, in cores
  hermes_watchdog_gateway_cpu_demand_cores     Linux only: on CPU + waiting on a run queue, summed over threads
  hermes_watchdog_gateway_hot_thread_demand_cores  Linux only: the hottest thread's demand (what "pegged" judges)
  hermes_watchdog_platform_connected           1 connected, 0 anything else (per platform)
  hermes_watchdog_verdict                      1 for the current signature, 0 for the others
  hermes_watchdog_heartbeat_age_seconds        Hermes >= 0.19 only: age of the event-loop heartbeat
  hermes_watchdog_gateway_rss_bytes            the gateway's resident memory
  hermes_watchdog_loop_off_selector_seconds    how long dense stack samples have not seen the loop in its selector
  hermes_watchdog_gateway_open_fds             open file descriptors (deaf signatures: fd-exhaustion)
  hermes_watchdog_gateway_fd_limit             its soft RLIMIT_NOFILE (Linux)
  hermes_watchdog_gateway_close_wait_sockets   its TCP sockets in CLOSE_WAIT (sockets-half-closed)
  hermes_watchdog_gateway_close_wait_oldest_seconds  how long the oldest has been so
  hermes_watchdog_gateway_rss_growth_bytes_per_hour  RSS slope over the last minutes (memory-growth)
  hermes_watchdog_gateway_agent_workers_busy   agent worker threads busy, newest dump (workers-saturated)
  hermes_watchdog_gateway_agent_workers        agent worker threads in its pool
  hermes_watchdog_restarts_total               restarts by signature and result
  hermes_watchdog_incidents_total              incidents opened, by signature
  hermes_watchdog_stack_captures_total         incident stack captures (py-spy or the hook) by result
  hermes_watchdog_restart_budget_remaining     restarts left in the budget window
  hermes_watchdog_last_tick_timestamp_seconds  when the daemon last completed a tick (staleness = hung)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hermes_watchdog.judge.verdict import ALL as SIGNATURES
from hermes_watchdog.record.safetext import one_line

P = "hermes_watchdog_"


@dataclass(frozen=True)
class GatewayMetrics:
    profile: str
    up: bool
    cpu_cores: float | None = None
    hot_thread_cores: float | None = None
    platforms: dict[str, bool] = field(default_factory=dict)  # name -> connected
    verdict: str | None = None
    heartbeat_age: float | None = None
    budget_remaining: int = 0
    restarts: dict[tuple[str, str], int] = field(default_factory=dict)  # (signature, result) -> count
    incidents: dict[str, int] = field(default_factory=dict)  # signature -> count
    stack_captures: dict[str, int] = field(default_factory=dict)  # result -> count
    # Last: callers pass the fields above positionally. None off Linux (the series is then left out).
    cpu_demand: float | None = None  # CpuUsage.demand
    hot_thread_demand: float | None = None  # CpuUsage.hot_demand
    rss_bytes: int | None = None
    loop_off_selector: float | None = None  # seconds; None: no loop stack sampled
    deaf: dict[str, float | int | None] = field(default_factory=dict)  # observe/deaf.py DeafTracker.summary()


@dataclass(frozen=True)
class Snapshot:
    gateways: tuple[GatewayMetrics, ...]
    last_tick: float  # epoch seconds
    started: float


def families(snap: Snapshot) -> Iterator[Metric]:
    up = GaugeMetricFamily(P + "gateway_up", "1 while a verified gateway process is watched", labels=["profile"])
    cpu = GaugeMetricFamily(P + "gateway_cpu_cores", "Gateway CPU over the last sample interval, in cores",
                            labels=["profile"])
    hot = GaugeMetricFamily(P + "gateway_hot_thread_cores", "Gateway's hottest thread CPU, in cores",
                            labels=["profile"])
    demand = GaugeMetricFamily(P + "gateway_cpu_demand_cores",
                               "Gateway CPU demand (on CPU + waiting for a CPU) over the last interval, in cores",
                               labels=["profile"])
    hot_demand = GaugeMetricFamily(P + "gateway_hot_thread_demand_cores",
                                   "Gateway's hottest thread CPU demand (on CPU + waiting for a CPU), in cores",
                                   labels=["profile"])
    plat = GaugeMetricFamily(P + "platform_connected", "1 if the platform is connected per gateway_state.json",
                             labels=["profile", "platform"])
    verdict = GaugeMetricFamily(P + "verdict", "1 for the current verdict signature, 0 for the others",
                                labels=["profile", "signature"])
    rss = GaugeMetricFamily(P + "gateway_rss_bytes", "Gateway resident memory (RSS), in bytes", labels=["profile"])
    off = GaugeMetricFamily(P + "loop_off_selector_seconds",
                            "Seconds the gateway's event-loop thread has been sampled without reaching its selector",
                            labels=["profile"])
    beat = GaugeMetricFamily(P + "heartbeat_age_seconds", "Age of the gateway's event-loop heartbeat (Hermes >= 0.19)",
                             labels=["profile"])
    budget = GaugeMetricFamily(P + "restart_budget_remaining", "Restarts left in the current budget window",
                               labels=["profile"])
    restarts = CounterMetricFamily(P + "restarts", "Gateway restarts by signature and result",
                                   labels=["profile", "signature", "result"])
    incidents = CounterMetricFamily(P + "incidents", "Incidents opened, by signature", labels=["profile", "signature"])
    stacks = CounterMetricFamily(P + "stack_captures", "Incident stack captures (py-spy or the hook's stack thread), "
                                 "by result", labels=["profile", "result"])
    deaf = {key: GaugeMetricFamily(P + name, text, labels=["profile"]) for key, name, text in _DEAF}
    for g in (_named(g) for g in snap.gateways):
        for key, fam in deaf.items():
            if isinstance(g.deaf.get(key), int | float):
                fam.add_metric([g.profile], float(g.deaf[key]))  # type: ignore[arg-type]
        up.add_metric([g.profile], 1.0 if g.up else 0.0)
        if g.cpu_cores is not None:
            cpu.add_metric([g.profile], g.cpu_cores)
        if g.hot_thread_cores is not None:
            hot.add_metric([g.profile], g.hot_thread_cores)
        if g.cpu_demand is not None:
            demand.add_metric([g.profile], g.cpu_demand)
        if g.hot_thread_demand is not None:
            hot_demand.add_metric([g.profile], g.hot_thread_demand)
        for name, connected in sorted(g.platforms.items()):
            plat.add_metric([g.profile, name], 1.0 if connected else 0.0)
        for sig in SIGNATURES:
            verdict.add_metric([g.profile, sig], 1.0 if g.verdict == sig else 0.0)
        if g.heartbeat_age is not None:
            beat.add_metric([g.profile], g.heartbeat_age)
        if g.rss_bytes is not None:
            rss.add_metric([g.profile], float(g.rss_bytes))
        if g.loop_off_selector is not None:
            off.add_metric([g.profile], g.loop_off_selector)
        budget.add_metric([g.profile], float(g.budget_remaining))
        # Zeros for the restarts that matter, so a rate() or increase() has a series from the start.
        for (sig, result), n in sorted({("busy-loop", "restarted"): 0, ("busy-loop", "restart-failed"): 0,
                                        **g.restarts}.items()):
            restarts.add_metric([g.profile, sig, result], float(n))
        for sig, n in sorted(g.incidents.items()):
            incidents.add_metric([g.profile, sig], float(n))
        for result in ("captured", "failed"):
            stacks.add_metric([g.profile, result], float(g.stack_captures.get(result, 0)))
    tick = GaugeMetricFamily(P + "last_tick_timestamp_seconds", "When the watchdog last completed a tick")
    tick.add_metric([], snap.last_tick)
    start = GaugeMetricFamily(P + "start_time_seconds", "When the watchdog started")
    start.add_metric([], snap.started)
    # A family with no series is left out whole: no heartbeat file (Hermes < 0.19) means no word of it.
    yield from (f for f in (up, cpu, hot, demand, hot_demand, rss, off, *deaf.values(), plat, verdict, beat, budget,
                            restarts, incidents, stacks, tick, start) if f.samples)


_DEAF = (  # (DeafTracker.summary() key, metric name, help)
    ("fds_open", "gateway_open_fds", "Gateway open file descriptors"),
    ("fd_limit", "gateway_fd_limit", "Gateway soft RLIMIT_NOFILE"),
    ("close_wait", "gateway_close_wait_sockets", "Gateway TCP sockets in CLOSE_WAIT (the peer closed, it did not)"),
    ("close_wait_oldest_seconds", "gateway_close_wait_oldest_seconds",
     "Seconds the gateway's oldest CLOSE_WAIT socket has been so"),
    ("rss_growth_bytes_per_hour", "gateway_rss_growth_bytes_per_hour", "Gateway RSS slope over the last minutes"),
    ("agent_workers_busy", "gateway_agent_workers_busy",
     "Agent worker threads busy in the newest all-thread dump (workers-saturated)"),
    ("agent_workers", "gateway_agent_workers", "Agent worker threads in the gateway's pool, newest dump"),
)


def _named(g: GatewayMetrics) -> GatewayMetrics:
    """Names come from disk (profile folders, platforms in a user's state file): a lone surrogate or a
    control character must not end the exporter (UTF-8 cannot encode a surrogate), so they are escaped."""
    return replace(g, profile=one_line(g.profile), platforms={one_line(k): v for k, v in g.platforms.items()})
