"""hermes-watchdog: CPU-liveness watchdog and diagnostics for the Hermes Agent gateway."""

__version__ = "0.1.0"
