"""Delivering notifications without ever holding up the watchdog's tick.

Each channel (a command, a webhook, the macOS desktop) has its own worker thread and a bounded queue:
``send`` only enqueues. A hung webhook delays later webhook messages, never a tick and never another
channel. A full queue drops the newest message and says so once.

- command: argv (no shell), the message as JSON on stdin, killed after the timeout;
- webhook: POST application/json, timeout per attempt, retried with backoff 1, 2, 4 s... on connection
  errors, timeouts and 5xx (not 4xx, which will not get better);
- desktop: ``osascript`` (macOS only) with the text passed as arguments, never spliced into the script.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from hermes_watchdog import __version__

Say = Callable[[str], None]  # reports a delivery problem (the daemon logs it as a WARN)


class Channel:
    name = "channel"

    def __init__(self, say: Say, depth: int = 100) -> None:
        self.say = say
        self.q: queue.Queue[dict[str, Any] | None] = queue.Queue(depth)
        self._full_said = False
        self.sent = 0
        self.failed = 0
        self.thread = threading.Thread(target=self._work, name=f"notify-{self.name}", daemon=True)
        self.thread.start()

    def send(self, msg: dict[str, Any]) -> None:
        try:
            self.q.put_nowait(msg)
        except queue.Full:
            if not self._full_said:
                self._full_said = True
                self.say(f"{self.name} notifications are backed up; dropping new ones until it drains")

    def close(self, wait: float) -> None:
        try:
            self.q.put(None, timeout=max(0.01, wait))
        except queue.Full:
            return
        self.thread.join(wait)

    def _work(self) -> None:
        while True:
            msg = self.q.get()
            if msg is None:
                return
            try:
                problem = self.deliver(msg)
            except Exception as exc:  # a channel must never kill its thread
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                self.failed += 1
                self.say(f"{self.name} notification '{msg.get('event')}' not delivered: {problem}")
            else:
                self.sent += 1
                self._full_said = False

    def deliver(self, msg: dict[str, Any]) -> str | None:
        raise NotImplementedError


class CommandChannel(Channel):
    name = "command"

    def __init__(self, argv: tuple[str, ...], timeout: float, say: Say) -> None:
        self.argv, self.timeout = list(argv), timeout
        super().__init__(say)

    def deliver(self, msg: dict[str, Any]) -> str | None:
        try:
            proc = subprocess.run(self.argv, input=json.dumps(msg) + "\n", text=True, capture_output=True,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            return f"{self.argv[0]} did not finish within {self.timeout:g} s (killed)"
        except OSError as exc:
            return f"cannot run {self.argv[0]}: {exc.strerror or exc}"
        if proc.returncode != 0:
            tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
            return f"{self.argv[0]} exited {proc.returncode} {tail[0][:200]}".strip()
        return None


class WebhookChannel(Channel):
    name = "webhook"

    def __init__(self, url: str, timeout: float, retries: int, say: Say, backoff: float = 1.0) -> None:
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self._stop = threading.Event()
        super().__init__(say)

    def close(self, wait: float) -> None:
        super().close(wait)
        self._stop.set()  # past the wait: no more backoff sleeps for whatever is left

    def _post(self, body: bytes) -> tuple[bool, str]:
        """(retry?, problem); problem '' on success."""
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": f"hermes-watchdog/{__version__}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read(65536)
            return False, ""
        except urllib.error.HTTPError as exc:
            return exc.code >= 500 or exc.code == 429, f"HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return True, f"{reason}"

    def deliver(self, msg: dict[str, Any]) -> str | None:
        body = json.dumps(msg).encode()
        problem = ""
        for attempt in range(self.retries + 1):
            retry, problem = self._post(body)
            if not problem:
                return None
            if not retry or attempt == self.retries or self._stop.wait(self.backoff * 2**attempt):
                break
        return f"{problem} (after {attempt + 1} attempt{'s' if attempt else ''})"


class DesktopChannel(Channel):
    name = "desktop"

    SCRIPT = ("-e", "on run argv", "-e", "display notification (item 1 of argv) with title (item 2 of argv)",
              "-e", "end run")

    def __init__(self, timeout: float, say: Say) -> None:
        self.timeout = timeout
        self.binary = shutil.which("osascript")
        super().__init__(say)

    def deliver(self, msg: dict[str, Any]) -> str | None:
        if self.binary is None:
            return "osascript not found (desktop notifications need macOS)"
        title = f"hermes-watchdog: {msg.get('event')}"
        try:
            subprocess.run([self.binary, *self.SCRIPT, str(msg.get("summary", "")), title], capture_output=True,
                           timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"osascript failed: {exc}"
        return None


class Dispatcher:
    def __init__(self, channels: list[Channel]) -> None:
        self.channels = channels

    @classmethod
    def from_config(cls, command: tuple[str, ...], webhook: str | None, desktop: bool, timeout: float,
                    retries: int, say: Say) -> Dispatcher:
        channels: list[Channel] = []
        if command:
            channels.append(CommandChannel(command, timeout, say))
        if webhook:
            channels.append(WebhookChannel(webhook, timeout, retries, say))
        if desktop:
            if sys.platform != "darwin":
                say("--notify-desktop works on macOS only (osascript); ignored here")
            else:
                channels.append(DesktopChannel(timeout, say))
        return cls(channels)

    def send(self, msg: dict[str, Any]) -> None:
        for c in self.channels:
            c.send(msg)

    def close(self, wait: float = 5.0) -> None:
        """Let queued messages (a recovery at shutdown) go out, within ``wait`` seconds per channel."""
        for c in self.channels:
            c.close(wait)
