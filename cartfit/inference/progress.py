"""Sampling progress as plain lines, for runs whose output is not a terminal.

nutpie draws its progress bar only on a terminal; a fit run by Snakemake, a cluster job or a
pipe writes to a log file and would say nothing until it ends (half an hour for a multi-fate
population). :func:`progress_lines` returns a nutpie ``progress_callback`` that writes one line
every ``every_s`` seconds instead, e.g.::

    sampling: 1,310 of 2,400 iterations (55 %), 2 of 4 chains tuning, 3 divergences,
    118 leapfrog steps per iteration, 6 min 12 s
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import TextIO

#: seconds between two progress lines
PROGRESS_EVERY_S = 30.0


def _clock(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec} s" if minutes else f"{sec} s"


def progress_line(chains, elapsed_s: float) -> str:
    """One line on the state of ``chains`` (nutpie ``ChainProgress`` objects)."""
    done = sum(c.finished_draws for c in chains)
    total = sum(c.total_draws for c in chains)
    tuning = sum(1 for c in chains if c.started and c.tuning and c.finished_draws < c.total_draws)
    divergences = sum(c.divergences for c in chains)
    steps = sum(c.total_num_steps for c in chains)
    per = f"{steps / done:.0f} leapfrog steps per iteration, " if done else ""
    return (
        f"sampling: {done:,} of {total:,} iterations ({100 * done / max(total, 1):.0f} %), "
        f"{tuning} of {len(chains)} chains tuning, {divergences} divergences, {per}"
        f"{_clock(elapsed_s)}"
    )


def progress_lines(stream: TextIO | None = None, every_s: float | None = None):
    """A nutpie ``progress_callback`` writing :func:`progress_line` to ``stream`` (standard
    error) at most every ``every_s`` seconds (:data:`PROGRESS_EVERY_S`). nutpie calls it from
    a background thread."""
    every_s = PROGRESS_EVERY_S if every_s is None else every_s
    lock = threading.Lock()
    start = time.monotonic()
    last = -math.inf

    def callback(chains) -> None:
        nonlocal last
        now = time.monotonic()
        with lock:
            if now - last < every_s:
                return
            last = now
        print(progress_line(chains, now - start), file=stream or sys.stderr, flush=True)

    return callback
