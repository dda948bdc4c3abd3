"""The locks a daemon holds for its whole life: one per state dir, and one per Hermes home, since two
daemons with different state dirs must not both restart the same gateway on separate budgets."""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from hermes_watchdog.daemon import locks
from hermes_watchdog.errors import UserError
from hermes_watchdog.record import private

HOME_LOCK = "watchdog.home.lock"  # in HERMES_HOME: one watchdog acts on a home, whatever its state dir


class LockSet:
    def __init__(self, state_dir: Path, warn: Callable[[str], None], problem: Callable[[str], None]) -> None:
        self.state_dir = state_dir
        self.warn = warn  # an event line
        self.problem = problem  # a write problem, said once until it changes
        self.family = ""  # ties pending.json to this state dir's daemons: see take_state_dir
        self._state: locks.Lock | None = None
        self._homes: dict[Path, locks.Lock] = {}
        self._refused: set[Path] = set()  # homes another watchdog holds, said once

    def take_state_dir(self) -> Path:
        """The state dir's lock lives in the state dir or, when that cannot be written, in a per-user
        runtime folder keyed by the state dir's path."""
        candidates = [self.state_dir / "watchdog.lock"]
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:16]
        runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"hermes-watchdog-{os.getuid()}"
        candidates.append(runtime / f"{digest}.lock")
        last_error = ""
        for path in candidates:
            try:
                private.make_dir(path.parent)
                lock = locks.take(path, 0o600)
            except locks.Held as held:
                raise UserError(f"another hermes-watchdog (PID {held.holder}) is already running for state dir "
                                f"{self.state_dir}") from None
            except locks.LockError as exc:
                raise UserError(str(exc)) from None
            except OSError as exc:
                last_error = f"{path}: {exc.strerror or exc}"
                continue
            # Kept from the previous run's lock (when that file is ours), so only a restart this family
            # started is ever resumed.
            self.family = locks.family_of(lock.previous) or secrets.token_hex(16)
            written = lock.write(f"{os.getpid()} {self.family}\n")
            if written:  # the PID in the lock is for messages; a full disk may refuse it
                self.problem(written)
            self._state = lock
            if path != candidates[0]:
                self.problem(f"state dir {self.state_dir} is not writable; lock kept in {path}")
            return path
        raise UserError(f"cannot create a lock file for state dir {self.state_dir}: {last_error}")

    def hold_home(self, home: Path, at_start: bool = False) -> bool:
        """Hold this home's lock (taken once, kept). False, said once, when another watchdog holds it; at
        start that is an error."""
        key = home.expanduser()
        if key in self._homes:
            return True
        path = key / HOME_LOCK
        try:
            # 0644: a watchdog of another user (root, or the home's owner) must be able to open it to lock.
            lock = locks.take(path, 0o644)
        except FileNotFoundError:
            return False  # no home (yet): nothing to watch there
        except locks.Held as held:
            why = f"another hermes-watchdog (PID {held.holder}) is already watching {key}"
        except locks.LockError as exc:
            why = str(exc)
        except OSError as exc:
            why, at_start = f"cannot lock {path}: {exc.strerror or exc}", False
        else:
            lock.write(f"{os.getpid()}\n")
            self._homes[key] = lock
            self._refused.discard(key)
            return True
        if at_start:
            raise UserError(why)
        if key not in self._refused:
            self._refused.add(key)
            self.warn(f"{why}; not acting on it here")
        return False

    def release(self) -> None:
        for lock in [*self._homes.values(), *([self._state] if self._state else [])]:
            lock.close()
        self._homes.clear()
        self._state = None
