"""A relaunching supervisor for the real gateway in tests, standing in for launchd KeepAlive / systemd
Restart=always. Standard library only.

    python keepalive.py --state FILE [--heal URL] [--pythonpath DIR] -- <gateway argv>

Relaunches the gateway whenever it exits, first POSTing to URL (the fake QQ server's /control/heal) so the
new gateway can connect. FILE holds {"pid", "child", "launches"}, rewritten atomically. SIGTERM stops the
child (SIGKILL after 30 s) and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

stopping = False


def write_state(path: Path, child: subprocess.Popen[bytes], launches: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keepalive.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump({"pid": os.getpid(), "child": child.pid, "launches": launches}, fh)
    os.replace(tmp, path)


def heal(url: str | None) -> None:
    if url:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(urllib.request.Request(url, data=b"", method="POST"), timeout=30).close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--state", required=True)
    p.add_argument("--heal")
    p.add_argument("--pythonpath")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    args = p.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath

    def on_term(signum: int, frame: object) -> None:
        global stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    launches = 0
    while not stopping:
        if launches:
            heal(args.heal)
        child = subprocess.Popen(argv, env=env)
        launches += 1
        write_state(Path(args.state), child, launches)
        while child.poll() is None and not stopping:
            time.sleep(0.05)
        if stopping and child.poll() is None:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if not stopping:
            time.sleep(0.3)  # RestartSec / launchd's throttle, shortened
    return 0


if __name__ == "__main__":
    sys.exit(main())
