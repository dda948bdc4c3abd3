"""A simulated Hermes gateway (stdlib only) and a relaunching supervisor, for the demo and the tests."""
