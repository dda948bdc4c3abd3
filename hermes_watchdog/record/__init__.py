"""What the watchdog leaves for people: incidents, reports, status, events, metrics."""
