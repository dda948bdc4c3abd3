"""Known upstream issues, offline: a verdict matched to the hermes-agent issue it looks like, with the release
that fixed it and the fix-pack entry that works around it. Pure: plain values in, matches out.

An entry matches a verdict by its signature, and where it says so by a frame the stack showed (function
names, ``Class.method``), by a platform that was down, and by the gateway's version. A version outside the
affected range rules an entry out; an unknown version leaves it a possible match, said as such.
Sources: ../shared/HERMES.md (failure classes with their upstream issues) and patches/fixes.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from hermes_watchdog.judge.families import Version, parse_version

BUSY, FROZEN, PEGGED, MEMORY = "busy-loop", "loop-frozen", "cpu-pegged", "memory-high"


@dataclass(frozen=True)
class KnownIssue:
    key: str
    title: str
    upstream: str  # hermes-agent issue number(s)
    signatures: tuple[str, ...]
    frames: tuple[str, ...] = ()  # function names (``Class.method``) one of which the stack must show
    platform: str | None = None  # a platform that must be down (or named in a frame)
    first: Version | None = None  # first affected release
    last: Version | None = None  # last affected release (None: still open, or unknown)
    fixed_in: str | None = None
    fix_pack: str | None = None  # `hermes-watchdog patch install` fixes it (the fix's name)

    def affects(self, version: Version | None) -> bool | None:
        """True/False when the version is known, None when it is not."""
        if version is None:
            return None
        return (self.first is None or version >= self.first) and (self.last is None or version <= self.last)


KNOWN: tuple[KnownIssue, ...] = (
    KnownIssue("qqbot-closed-socket", "QQBot adapter spins on a closed WebSocket", "#17703", (BUSY, PEGGED),
               ("QQAdapter._read_events", "QQAdapter._listen_loop"), "qqbot", (0, 14, 0), (0, 16, 99),
               "0.17.0", "qqbot"),
    KnownIssue("wecom-closed-socket", "WeCom adapter spins on a closed socket", "#49918, #55487", (BUSY, PEGGED),
               ("WeComAdapter._read_events",), "wecom", (0, 14, 0), None, None, "wecom"),
    KnownIssue("telegram-deaf-spin", "Telegram deaf and burning a core while every platform says connected",
               "#111727", (BUSY, PEGGED), (), "telegram"),
    KnownIssue("memory-runaway", "the gateway's memory grows by tens of GB", "#81625, #78993", (MEMORY,),
               first=(0, 20, 0)),
)


@dataclass(frozen=True)
class Match:
    issue: KnownIssue
    sure: bool  # every condition held with a known version; else a possible match
    why: str

    def text(self, version: Version | None) -> str:
        i = self.issue
        head = f"{'matches' if self.sure else 'may match'} hermes-agent {i.upstream} ({i.title})"
        fixed = f", fixed in {i.fixed_in}" if i.fixed_in else ", not fixed upstream yet"
        runs = f"; this gateway runs {'.'.join(map(str, version))}" if version else ""
        advice = []
        if i.fixed_in:
            advice.append("upgrade")
        if i.fix_pack:
            advice.append(f"`hermes-watchdog patch install` (fix '{i.fix_pack}')")
        return head + fixed + runs + (": " + ", or ".join(advice) if advice else "") + f" [{self.why}]"

    def to_dict(self, version: Version | None) -> dict[str, object]:
        i = self.issue
        return {"id": i.key, "upstream": i.upstream, "title": i.title, "fixed_in": i.fixed_in,
                "fix_pack": i.fix_pack, "sure": self.sure, "text": self.text(version)}


def _short(frame: str) -> str:
    """``QQAdapter._read_events (adapter.py:654)`` -> ``QQAdapter._read_events``."""
    return frame.split(" (", 1)[0].strip()


def match(signature: str, frames: Iterable[str], platforms_down: Iterable[str],
          version: Version | None) -> list[Match]:
    seen = {_short(f) for f in frames if f}
    down = {p.lower() for p in platforms_down}
    out = []
    for issue in KNOWN:
        if signature not in issue.signatures or issue.affects(version) is False:
            continue
        why = [signature]
        if issue.frames:
            hit = next((f for f in issue.frames if any(s == f or s.endswith("." + f) for s in seen)), None)
            if hit is None:
                continue
            why.append(f"frame {hit}")
        elif issue.platform is not None and issue.platform not in down and not any(
                re.search(rf"\b{re.escape(issue.platform)}\b", s, re.I) for s in seen):
            continue
        if issue.platform is not None and issue.platform in down:
            why.append(f"{issue.platform} down")
        sure = version is not None and (bool(issue.frames) or issue.platform is None or issue.platform in down)
        if version is not None:
            why.append(f"version {'.'.join(map(str, version))} affected")
        out.append(Match(issue, sure, ", ".join(why)))
    return out


def from_record(rec: dict[str, object]) -> list[dict[str, object]]:
    """The matches for a diagnosis or incident record (plain JSON data): its verdict's signature, the frames
    its stack and loop analysis name, the platforms down and the Hermes version it reports."""
    v = rec.get("verdict") if isinstance(rec.get("verdict"), dict) else {}
    assert isinstance(v, dict)
    frames: list[str] = []
    loop = v.get("loop") if isinstance(v.get("loop"), dict) else {}
    assert isinstance(loop, dict)
    frames += [str(x) for x in (v.get("blocking_frame"), loop.get("top_frame"), loop.get("entry_frame"),
                                loop.get("same_call")) if x]
    stack = rec.get("stack") if isinstance(rec.get("stack"), dict) else {}
    assert isinstance(stack, dict)
    hot = stack.get("hot_thread") if isinstance(stack.get("hot_thread"), dict) else {}
    assert isinstance(hot, dict)
    for f in hot.get("frames") or []:
        if isinstance(f, dict) and f.get("function"):
            frames.append(str(f["function"]))
    down = [str(p) for p in v.get("platforms_down") or []]
    vers = rec.get("versions") if isinstance(rec.get("versions"), dict) else {}
    assert isinstance(vers, dict)
    found = re.search(r"\d+\.\d+\.\d+", str(vers.get("hermes") or ""))  # "0.14.0", "git 0.21.3 (abc1234)"
    version = parse_version(found.group()) if found else None
    return [m.to_dict(version) for m in match(str(v.get("signature") or ""), frames, down, version)]
