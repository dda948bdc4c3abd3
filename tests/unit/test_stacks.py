from __future__ import annotations

from hermes_watchdog.observe.stacks import ADAPTER_READ_LOOP, UNKNOWN, analyse, parse_dump, render_text


def thread(tid: int, *frames: tuple[str, str, int], name: str = "MainThread", gil: bool = True) -> dict:
    return {"os_thread_id": tid, "thread_name": name, "active": gil, "owns_gil": gil,
            "frames": [{"name": n, "filename": f, "line": ln} for n, f, ln in frames]}


ADAPTER = "/v/lib/python3.11/site-packages/gateway/platforms/qqbot/adapter.py"
LISTEN = ("QQAdapter._listen_loop", ADAPTER, 492)
READ = ("QQAdapter._read_events", ADAPTER, 656)
RUN = ("Handle._run", "/usr/lib/python3.11/asyncio/events.py", 80)


def test_parse_py_spy_json_innermost_first() -> None:
    d = parse_dump([thread(7, READ, LISTEN, RUN), "junk", {"frames": None}])
    assert len(d.threads) == 2
    assert d.threads[0].frames[0].function == "QQAdapter._read_events"
    assert parse_dump({"not": "a list"}).threads == ()


def test_loop_in_most_dumps_is_adapter_read_loop_and_read_events_stack_is_reported() -> None:
    dumps = [parse_dump([thread(7, LISTEN, RUN), thread(8, ("wait", "t.py", 1), name="w", gil=False)]),
             parse_dump([thread(7, READ, LISTEN, RUN)]),
             parse_dump([thread(7, ("BaseEventLoop._run_once", "base_events.py", 1), RUN)])]
    a = analyse(dumps, hot_tid=7)
    assert a.classification == ADAPTER_READ_LOOP and a.loop_seen == 2
    assert [f.function for f in a.frames][:2] == ["QQAdapter._read_events", "QQAdapter._listen_loop"]
    assert a.matched_by.startswith("native thread id")
    assert "<- hot thread" in render_text(a)


def test_loop_rarely_seen_is_unknown() -> None:
    dumps = [parse_dump([thread(7, LISTEN)])] + [parse_dump([thread(7, ("crunch", "w.py", 3))])] * 3
    assert analyse(dumps, hot_tid=7).classification == UNKNOWN


def test_other_platform_loop_under_gateway_platforms() -> None:
    f = ("WeComAdapter._read_loop", "/v/site-packages/gateway/platforms/wecom/adapter.py", 300)
    assert analyse([parse_dump([thread(3, f)])], hot_tid=3).classification == ADAPTER_READ_LOOP
    g = ("Worker._read_loop", "/v/site-packages/other/thing.py", 300)
    assert analyse([parse_dump([thread(3, g)])], hot_tid=3).classification == UNKNOWN


def test_hot_thread_falls_back_to_gil_holder_when_ids_do_not_match() -> None:
    d = parse_dump([thread(1, ("idle", "a.py", 1), gil=False), thread(2, LISTEN, name="loop")])
    a = analyse([d], hot_tid=999)
    assert a.hot_tid == 2 and a.matched_by == "thread holding the GIL"
    assert analyse([], hot_tid=None).frames == ()


def test_gateway_command_lines() -> None:
    from hermes_watchdog.observe.processes import looks_like_gateway

    yes = [
        ["/v/bin/python", "-m", "hermes_cli.main", "gateway", "run", "--replace"],
        ["/v/bin/python", "-m", "hermes_cli.main", "--profile", "coder", "gateway", "run"],
        ["/v/bin/python", "/v/bin/hermes", "gateway", "run"],
        ["/usr/bin/python3", "-m", "hermes_watchdog.sim.gateway", "--mode", "spin"],
        ["/usr/bin/hermes-gateway"],
        ["/usr/bin/python3", "/opt/hermes/gateway/run.py"],
    ]
    no = [
        ["/v/bin/python", "/v/bin/hermes", "gateway", "status"],
        ["/v/bin/python", "-m", "hermes_cli.main", "gateway", "stop"],
        ["python", "-m", "http.server"],
        ["/v/bin/python", "/v/bin/hermes", "chat", "run"],
        ["/v/bin/python", "-m", "hermes_watchdog.sim.supervisor", "--", "--marker", "/tmp/spun-hermes-gateway.service"],
        ["/v/bin/python", "-m", "hermes_watchdog.sim.supervisor", "--", "-m", "hermes_watchdog.sim.gateway"],
    ]
    assert all(looks_like_gateway(c) for c in yes)
    assert not any(looks_like_gateway(c) for c in no)
