"""The package's import graph, read from the source (ast): no cycle among its modules, counting imports
made only for type checking and inside functions (a cycle hidden there is still two modules that need each
other), no room below the daemon reaching up into it, and no module of daemon/ but its loop knowing the
Daemon."""

from __future__ import annotations

import ast
from pathlib import Path

import hermes_watchdog

ROOT = Path(hermes_watchdog.__file__).parent
PACKAGE = ROOT.name


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package() -> None:
    graph = _graph()
    assert len(graph) > 100  # the whole package was read
    assert _cycles(graph) == []


def test_no_room_below_the_daemon_imports_it() -> None:
    graph = _graph()
    rooms = ("observe", "judge", "act", "record")
    up = sorted((m, t) for m, ts in graph.items() for t in ts
                if m.split(".")[1:2] and m.split(".")[1] in rooms and t.startswith(f"{PACKAGE}.daemon"))
    assert up == []


def test_no_module_of_daemon_but_the_loop_knows_the_daemon() -> None:
    knowing = sorted(p.name for p in (ROOT / "daemon").glob("*.py")
                     if p.name != "loop.py" and "daemon.loop" in p.read_text())
    assert knowing == []


# What each room may import besides facts/ and the package's top-level helpers (safepath, timefmt, errors...):
# observe reads and judge decides, each on facts alone; act may observe (the identity proof before a
# signal) and ask the judge; record may read both; only the daemon, the commands and diagnosis see them all.
ALLOWED = {
    "facts": set(),
    "observe": set(),
    "judge": set(),
    "act": {"observe", "judge"},
    "record": {"observe", "judge"},
}
ROOMS = {"facts", "observe", "judge", "act", "record", "daemon", "commands", "installers", "patches", "sim"}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else None


def test_each_room_imports_only_facts_and_the_rooms_below_it() -> None:
    wrong = sorted((m, t) for m, ts in _graph().items() for t in ts
                   if _room(m) in ALLOWED and _room(t) not in {None, "facts", _room(m)}
                   and _room(t) not in ALLOWED[_room(m) or ""])
    assert wrong == []
