"""Configuration for ``run``: defaults, then a TOML file, then flags -> one frozen Config.

Unknown keys and bad values stop the start with a one-line message naming the key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hermes_watchdog.errors import UserError
from hermes_watchdog.observe.statefile import hermes_home_default

RESTART_WITH = ("auto", "launchd", "systemd", "s6", "command", "signal", "none")
STUCK_ACTIONS = ("alert", "restart")


@dataclass(frozen=True)
class Config:
    hermes_home: tuple[Path, ...] = ()
    all_profiles: bool = False
    interval: float = 5.0
    window: float = 60.0
    cpu_threshold: float = 0.9
    restart_with: str = "auto"
    restart_command: tuple[str, ...] = ()
    s6_scandir: tuple[Path, ...] = ()  # searched before s6-overlay's /run/service and /var/run/s6/services
    command_timeout: float = 60.0
    grace: float = 20.0
    max_restarts: int = 3
    restart_window: float = 1800.0
    cooldown: float = 60.0  # seconds after the first restart; doubles with each restart in the window
    start_timeout: float = 90.0
    min_confidence: float = 0.5
    pegged_after: float = 600.0  # cpu-pegged must last this long before an alert
    stuck_after: float = 900.0  # a platform down this long, CPU idle, is stuck-disconnected
    stuck_action: str = "alert"
    state_dir: Path | None = None
    keep_incidents: int = 50
    dry_run: bool = False
    once: bool = False
    stack_dumps: int = 5
    stack_with: str = "auto"  # auto | py-spy | hook | none (observe/stack_capture.py)
    frozen_after: float = 60.0  # seconds the event loop must not turn for loop-frozen (was heartbeat_stale)
    frozen_action: str = "alert"  # loop-frozen: alert | restart (a restart also needs two witnesses)
    loop_proof: float = 8.0  # seconds of dense stack samples, loop never in its selector, that prove starvation
    starved_grace: float = 3.0  # seconds before SIGKILL when starvation is proven (its SIGTERM handler cannot run)
    stack_every: float = 120.0  # seconds between background loop-stack bursts (0: only when suspect)
    memory_limit: int | None = None  # bytes of RSS; None: no memory-high verdict
    memory_action: str = "restart"  # memory-high: alert | restart
    # Alive but deaf (judge/deaf.py)
    fd_alert: float = 0.8  # open descriptors / soft RLIMIT_NOFILE: fd-exhaustion alert from here
    fd_restart: float = 0.95  # ... and restart from here (with fd_action restart)
    fd_action: str = "restart"  # fd-exhaustion past fd_restart: alert | restart
    half_closed_after: float = 300.0  # seconds a TCP socket may sit in CLOSE_WAIT
    deaf_action: str = "alert"  # sockets-half-closed: alert | restart
    memory_growth: int = 1 << 30  # bytes of RSS per hour, sustained, that is memory-growth
    memory_growth_for: float = 600.0  # seconds it must be sustained
    workers_busy_after: float = 180.0  # seconds every agent worker may be busy, with no room, before saying so
    metrics_port: int | None = None  # 0 = any free port (said in the log and state.json)
    metrics_host: str = "127.0.0.1"
    metrics_textfile: Path | None = None
    notify_command: tuple[str, ...] = ()
    notify_webhook: str | None = None
    notify_timeout: float = 5.0
    notify_retries: int = 3
    notify_desktop: bool = False  # macOS: osascript
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def homes(self) -> tuple[Path, ...]:
        return self.hermes_home or (hermes_home_default(),)

    @property
    def resolved_state_dir(self) -> Path:
        return self.state_dir or self.homes[0] / "watchdog"

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            out[f.name] = value
        out["state_dir"] = str(self.resolved_state_dir)
        return out


_TYPES: dict[str, type] = {f.name: f.type for f in fields(Config)}  # type: ignore[misc]
_KNOWN = {f.name for f in fields(Config)} - {"extra"}
_HOUR, _DAY = 3600.0, 86400.0
# Seconds: each must be more than 0 (cooldown: 0 or more) and at most this. The caps catch a typo or an
# overflow (1e308 s is as good as never) without limiting any real setup.
_SECONDS_MAX = {"interval": _HOUR, "window": _DAY, "grace": _HOUR, "restart_window": 30 * _DAY,
                "start_timeout": _DAY, "cooldown": _DAY, "command_timeout": _HOUR, "notify_timeout": _HOUR,
                "pegged_after": 30 * _DAY, "stuck_after": 30 * _DAY, "frozen_after": _DAY,
                "loop_proof": _HOUR, "starved_grace": _HOUR, "half_closed_after": 30 * _DAY,
                "memory_growth_for": 30 * _DAY, "workers_busy_after": 30 * _DAY}
_ALIASES = {"heartbeat_stale": "frozen_after"}  # old names still accepted in files and flags
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 1000**2, "mb": 1000**2, "mib": 1 << 20,
               "g": 1000**3, "gb": 1000**3, "gib": 1 << 30, "t": 1000**4, "tb": 1000**4, "tib": 1 << 40}


def parse_size(text: str) -> int | None:
    """'2GiB', '400MiB', '1.5GB', '123456' (bytes) -> bytes; None when it is not a size."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m[2].lower() not in _SIZE_UNITS:
        return None
    value = float(m[1]) * _SIZE_UNITS[m[2].lower()]
    return int(value) if math.isfinite(value) and 1 <= value < 2**63 else None


_ARGV_EXAMPLES = {"restart_command": '["systemctl", "--user", "restart", "x"]',
                  "notify_command": '["/usr/local/bin/page-me", "--json"]'}


def default_config_path() -> Path:
    return hermes_home_default() / "watchdog.toml"


def _span(seconds: float) -> str:
    if seconds >= 2 * _DAY:
        return f"{seconds:.0f} seconds ({seconds / _DAY:g} days)"
    return f"{seconds:.0f} seconds" + (f" ({seconds / _HOUR:g} h)" if seconds >= _HOUR else "")


def _coerce(key: str, value: Any, source: str) -> Any:
    def bad(expected: str) -> UserError:
        where = source if source.startswith("--") else f"{source}: {key}"
        return UserError(f"{where} must be {expected}, not {value!r}")

    if key in {"hermes_home", "s6_scandir"}:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str | Path) for v in items):
            raise bad("a path or a list of paths")
        return tuple(Path(v).expanduser() for v in items)
    if key == "notify_webhook":
        from urllib.parse import urlsplit

        if not isinstance(value, str) or urlsplit(value).scheme not in {"http", "https"} or not urlsplit(value).netloc:
            raise bad("an http:// or https:// URL")
        return value
    if key == "metrics_host":
        if not isinstance(value, str) or not value:
            raise bad("a host name or address to bind")
        return value
    if key == "metrics_port":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise bad("a port number 0-65535 (0: any free port)")
        return value
    if key == "metrics_textfile":
        if not isinstance(value, str | Path):
            raise bad("a path")
        return Path(value).expanduser()
    if key in _ARGV_EXAMPLES:
        # An empty restart_command is caught later with a better message; a notify command must say something.
        empty = not value and key == "notify_command"
        if isinstance(value, str) or not isinstance(value, list | tuple) or empty or \
                not all(isinstance(v, str) for v in value):
            raise bad(f"an argv list such as {_ARGV_EXAMPLES[key]} (no shell)")
        return tuple(value)
    if key == "state_dir":
        if not isinstance(value, str | Path):
            raise bad("a path")
        return Path(value).expanduser()
    if key in {"all_profiles", "dry_run", "once", "notify_desktop"}:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if key in {"max_restarts", "keep_incidents", "stack_dumps", "notify_retries"}:
        least = 0 if key in {"max_restarts", "notify_retries"} else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise bad(f"a whole number >= {least}")
        return value
    if key == "restart_with":
        if value not in RESTART_WITH:
            raise bad("one of " + ", ".join(RESTART_WITH))
        return value
    if key == "stack_with":
        from hermes_watchdog.observe.stack_capture import ALIASES, METHODS

        value = ALIASES.get(value, value)  # faulthandler: the hook's method under its old name
        if value not in METHODS:
            raise bad("one of " + ", ".join(METHODS))
        return value
    if key == "frozen_action":
        if value not in STUCK_ACTIONS:
            raise bad("one of " + ", ".join(STUCK_ACTIONS))
        return value
    if key == "memory_limit":
        size = parse_size(value) if isinstance(value, str) else value if isinstance(value, int) and \
            not isinstance(value, bool) and 0 < value < 2**63 else None
        if size is None:
            raise bad("a size such as 2GiB, 400MiB or a number of bytes")
        return size
    if key == "stack_every":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _DAY:
            raise bad(f"0 (only when suspect) or seconds up to {_span(_DAY)}")
        return float(value)
    if key == "memory_growth":
        size = parse_size(value.removesuffix("/h")) if isinstance(value, str) else value if isinstance(value, int) \
            and not isinstance(value, bool) and 0 < value < 2**63 else None
        if size is None:
            raise bad("a size per hour such as 1GiB, 500MiB/h or a number of bytes")
        return size
    if key in {"fd_alert", "fd_restart"}:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise bad("a fraction of the descriptor limit, more than 0 and at most 1 (0.8 = 80%)")
        return float(value)
    if key in {"stuck_action", "memory_action", "fd_action", "deaf_action"}:
        if value not in STUCK_ACTIONS:
            raise bad("one of " + ", ".join(STUCK_ACTIONS))
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad("a number")
    value = float(value)
    # Written as "not (in range)" so NaN, for which every comparison is false, fails too.
    if key in _SECONDS_MAX:
        low_ok = value >= 0 if key == "cooldown" else value > 0
        if not (low_ok and value <= _SECONDS_MAX[key]):
            raise bad(("0 or more" if key == "cooldown" else "more than 0")
                      + f" and at most {_span(_SECONDS_MAX[key])}")
    if key == "cpu_threshold" and not 0 < value <= 64:
        raise bad("a number of cores between 0 and 64 (0.9 = 90% of one core)")
    if key == "min_confidence" and not 0 <= value <= 1:
        raise bad("between 0 and 1")
    if not math.isfinite(value):
        raise bad("a finite number")
    return value


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    # Accept both a flat file and one with a [watchdog] table.
    if set(data) == {"watchdog"} and isinstance(data["watchdog"], dict):
        data = data["watchdog"]
    return {k.replace("-", "_"): v for k, v in data.items()}


def build(config_file: Path | None, flags: dict[str, Any]) -> Config:
    """Defaults < the TOML file (given, else ~/.hermes/watchdog.toml if it exists) < flags (None = unset)."""
    values: dict[str, Any] = {}
    path = config_file or default_config_path()
    if config_file is not None or path.is_file():
        data = load_toml(path)
        unknown = sorted(set(data) - _KNOWN - set(_ALIASES))
        if unknown:
            raise UserError(f"config file {path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KNOWN))})")
        for key, value in data.items():
            values[_ALIASES.get(key, key)] = _coerce(_ALIASES.get(key, key), value, f"config file {path}")
    for key, value in flags.items():
        if value is None or (isinstance(value, list | tuple) and not value
                             and key not in {"restart_command", "notify_command"}):
            continue
        name = _ALIASES.get(key, key)
        if name not in _KNOWN:
            raise UserError(f"unknown option {key}")
        values[name] = _coerce(name, value, f"--{key.replace('_', '-')}")
    if values.get("restart_command"):
        # A restart command means "restart with it": ignoring it would leave a gateway that nothing
        # relaunches down after its SIGTERM.
        named = values.get("restart_with", "auto")
        if named not in {"auto", "command"}:
            raise UserError(f"--restart-command is only used with --restart-with command, not --restart-with "
                            f"{named}: drop one of them")
        values["restart_with"] = "command"
    cfg = replace(Config(), **values)
    if cfg.restart_with == "command" and not cfg.restart_command:
        raise UserError("--restart-with command needs --restart-command (an argv, e.g. "
                        "--restart-command 'systemctl --user restart hermes-gateway')")
    if cfg.fd_alert > cfg.fd_restart:
        raise UserError(f"--fd-alert ({cfg.fd_alert:g}) must not be above --fd-restart ({cfg.fd_restart:g})")
    if cfg.interval > cfg.window:
        raise UserError(f"--interval ({cfg.interval:g} s) must not be longer than --window ({cfg.window:g} s)")
    if cfg.all_profiles and cfg.hermes_home and len(cfg.hermes_home) > 1:
        raise UserError("use either --all-profiles or several --hermes-home, not both")
    return cfg
