"""Exit codes, named once (as pipx does): every command returns one of these."""

OK = 0  # healthy / done
PROBLEM = 1  # a failure signature was found (diagnose, check), an incident in `run --once`, a failed demo
USAGE = 2  # bad input or an error the user can fix: one line on stderr, never a traceback
INTERRUPTED = 130  # Ctrl-C
CANNOT_TELL = 2  # check: no gateway to judge, or no verdict (a health probe reads any non-zero as unhealthy)
