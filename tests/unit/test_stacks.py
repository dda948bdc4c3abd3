from __future__ import annotations

from hermes_watchdog.observe.stacks import analyse, describe, parse_dump, render_text


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


def test_the_deepest_stack_of_the_recurring_innermost_frame_is_shown_and_nothing_is_classified() -> None:
    dumps = [parse_dump([thread(7, LISTEN, RUN), thread(8, ("wait", "t.py", 1), name="w", gil=False)]),
             parse_dump([thread(7, READ, LISTEN, RUN)]),
             parse_dump([thread(7, ("BaseEventLoop._run_once", "base_events.py", 1), RUN)])]
    a = analyse(dumps, hot_tid=7)
    # Each innermost frame once: the deepest stack is shown, every function seen is kept.
    assert [f.function for f in a.frames][:2] == ["QQAdapter._read_events", "QQAdapter._listen_loop"]
    assert a.innermost_in == 1 and set(a.functions_seen) >= {"QQAdapter._listen_loop", "BaseEventLoop._run_once"}
    assert a.matched_by.startswith("native thread id")
    text = render_text(a)
    assert "<- hot thread" in text and "classification" not in text and "unknown" not in text
    assert "classification" not in a.to_dict()


def test_a_call_the_thread_keeps_sitting_in_is_the_stack_shown() -> None:
    sleep = ("Ledger._flush_ledger_sync", "/srv/app/ledger.py", 12)
    dumps = [parse_dump([thread(7, LISTEN, RUN)])] + [parse_dump([thread(7, sleep, ("settle", "a.py", 3))])] * 3
    a = analyse(dumps, hot_tid=7)
    assert a.frames[0].function == "Ledger._flush_ledger_sync" and a.innermost_in == 3
    assert "in 3 of them" in describe(a) and "event loop's analysis" in describe(a)


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
