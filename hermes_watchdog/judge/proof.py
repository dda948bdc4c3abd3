"""The error of a busy-loop proof from stack samples alone (no loop-turn counter, no loop-tick socket).

The limit of sampling, and the error the proof states. A callback that computes for tens of ms between
yields visits the selector (and asyncio's bookkeeping, the ``turning`` frames) for only tens of µs per turn.
Take the slowest loop the proof must never call starved: one that turns every ``TURN_EVERY`` (50 ms) and
spends ``VISIT`` (30 µs) per turn in those frames, i.e. a share p = 30 µs / 50 ms = 6e-4 of its time. A
sample taken at a random phase misses every visit with probability 1 - p, and n samples miss them all
with probability (1 - p)^n ~ exp(-n p). At most ``MAX_MISS`` (0.001) needs n >= ln(1000) / p, so
``PROOF_SAMPLES`` = 11,510 samples: 115 s at 100 Hz, 11.5 s at ``UNCOUNTED_RATE`` (1000 Hz), which is why a
gateway without the loop-turn counter is sampled at 1000 Hz while suspect (py-spy then costs about 0.2 of
a core, for those seconds only). The verdict prints n and (1 - p)^n. Measured, a loop computing 20 ms
slices showed a turning sample in 1 of 120 samples (a visit of ~170 µs as py-spy sees it), so the figure
is an upper bound on an idle machine. On a loaded one the random-phase assumption fails: py-spy wakes
when the loop thread has been preempted, inside its computation, and a sample taken while the thread waits
for a CPU shows where it stopped, as the one before did (bench/turns.py saw a loop turning 35 times a second
give 4,485 samples in a row without one in its selector). So only the samples taken while the thread ran
count (``independent_samples``: samples x its share of CPU over the stretch, from its CPU time), and the
proof takes longer the more the machine is loaded. The proof also needs ``proof`` seconds (8).

What each path can and cannot prove:
- the loop-turn counter (fix pack installed, judge/turns.py): exact, both ways, in seconds; it cannot say
  which call the loop is in (the stack samples do);
- the loop-tick socket (git releases 0.19.1+): a byte is proof the loop turned; a probe in the stretch that
  stayed silent (3 x 1 s) stands in for the sample count. Probed every 10 s while suspect;
- stack samples alone (0.14 to 0.19.0 without the fix pack): a sample in the selector proves a turn; none
  proves starvation only up to the error above, and only with py-spy (the hook's stack thread, at 10 Hz, never
  reaches 11,510 samples in a useful time: where it is armed, the counter is too);
- syscalls (Linux, where ptrace is allowed: judge/syscalls.py): a ptrace watch of the loop thread sees it
  enter ``epoll_wait`` (a turn, however short the visit: a veto) or run half a second on a CPU without it (no
  turn in that time: with the stretch's --loop-proof seconds in one callback, the second witness in place of
  the 11,510 samples, whatever the load). It stops the thread only at its system calls, and only until the
  first selector call: a spinning thread makes none and is never stopped. It cannot name the call (the
  samples do) and does not run where ``--stack-with`` is ``hook`` or ``none``, nor on macOS.
"""

from __future__ import annotations

import math

# The slowest turning loop the proof must never take for starved, and the error it accepts.
TURN_EVERY = 0.05  # seconds between two turns
VISIT = 30e-6  # seconds per turn in the selector or asyncio's own frames
MAX_MISS = 0.001  # the largest chance of a false "never reached its selector" the proof accepts
PROOF_SAMPLES = math.ceil(math.log(MAX_MISS) / math.log(1 - VISIT / TURN_EVERY))  # 11,510
UNCOUNTED_RATE = 1000  # Hz of dense py-spy bursts where no loop-turn counter exists


def miss_probability(samples: int) -> float:
    """The chance that ``samples`` samples all missed the visits of a loop turning every TURN_EVERY."""
    return (1 - VISIT / TURN_EVERY) ** max(0, samples)


def independent_samples(samples: int, on_cpu: float | None) -> int:
    """How many of a stretch's samples count for the miss probability. A sample taken while the loop
    thread waits for a CPU shows where it was preempted, as the samples before it did: only the share
    taken while it ran are independent looks (on a loaded machine, most are not)."""
    if on_cpu is None:
        return 0
    return int(samples * max(0.0, min(1.0, on_cpu)))
