"""Acting on a verdict: the service managers and the restart state machine."""
