"""Plain data shared by every room: who a gateway is, what its CPU and its loop's stacks looked like, when
to sample them, what Hermes' files said. Observe makes these, judge reads them, act and record carry
them; none of those rooms imports another for a type (tests/unit/test_import_graph.py). Nothing here does
I/O or imports a room."""
