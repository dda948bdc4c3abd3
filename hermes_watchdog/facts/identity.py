"""Who a process is: PID, create time, command line, user. The identity every signal is checked
against (observe/processes.py reads it; act/ and record/ carry it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    pid: int
    create_time: float
    cmdline: tuple[str, ...]
    start_ticks: int | None  # what Hermes records as start_time (see start_ticks())
    exe: str | None = None
    username: str | None = None
    uid: int | None = None  # real uid: "same user" is part of the identity a signal is checked against

    @property
    def command(self) -> str:
        return " ".join(self.cmdline)

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "create_time": self.create_time,
            "start_ticks": self.start_ticks,
            "cmdline": list(self.cmdline),
            "exe": self.exe,
            "username": self.username,
            "uid": self.uid,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Identity:
        cmd = data.get("cmdline")
        ticks = data.get("start_ticks")
        uid = data.get("uid")
        return cls(
            pid=int(data["pid"]),  # type: ignore[arg-type]
            create_time=float(data["create_time"]),  # type: ignore[arg-type]
            cmdline=tuple(str(c) for c in cmd) if isinstance(cmd, list) else (),
            start_ticks=int(ticks) if isinstance(ticks, int) else None,
            exe=str(data["exe"]) if data.get("exe") else None,
            username=str(data["username"]) if data.get("username") else None,
            uid=uid if isinstance(uid, int) and not isinstance(uid, bool) else None,
        )
