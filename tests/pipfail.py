"""What a failed pip said, classified honestly (issue 23): only a proven network failure -- the index could not
be reached -- lets a test skip. "No matching distribution" / "Could not find a version" alone are not that:
pip says them too when the version does not exist or the Python is outside the release's Requires-Python."""

from __future__ import annotations

# Said by pip (urllib3/requests underneath) only when it could not talk to the index at all.
NETWORK = ("Failed to establish a new connection", "Temporary failure in name resolution",
           "Name or service not known", "nodename nor servname provided", "Network is unreachable",
           "Connection refused", "ConnectTimeoutError", "ReadTimeoutError", "ProxyError",
           "No route to host", "Could not fetch URL")
OTHER_PYTHON = "require a different python version"


def network_failure(stderr: str) -> bool:
    return any(sign in stderr for sign in NETWORK)


def last_lines(stderr: str, n: int = 12) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-n:]) or "(pip said nothing on stderr)"


def explain(what: str, stderr: str) -> str:
    """The failure message: what failed, why if pip's words show it, and pip's own last lines."""
    why = (" (this Python is outside the release's Requires-Python)" if OTHER_PYTHON in stderr else "")
    return f"{what} failed{why}; pip's last lines:\n{last_lines(stderr)}"
