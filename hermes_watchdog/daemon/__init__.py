"""The daemon: the tick loop (loop.py) and its rooms: what is kept per gateway (watch.py), observing a
gateway (observer.py), acting on a decision (responder.py, restarts.py), the daemon's files and metrics
(status.py, resume.py), and its locks (lockset.py, locks.py)."""
