"""Progress lines for fits whose output is a log file, not a terminal."""

from __future__ import annotations

import io
from types import SimpleNamespace

from cartfit.inference.progress import progress_line, progress_lines


def _chain(done, total=600, tuning=True, divergences=0, steps=0, started=True):
    return SimpleNamespace(
        finished_draws=done,
        total_draws=total,
        tuning=tuning,
        divergences=divergences,
        total_num_steps=steps,
        started=started,
    )


def test_progress_line_sums_the_chains():
    chains = [_chain(600, tuning=False, divergences=2, steps=60_000), _chain(300, steps=30_000),
              _chain(150, divergences=1, steps=15_000), _chain(0, started=False)]  # fmt: skip
    line = progress_line(chains, 372.4)
    assert line == (
        "sampling: 1,050 of 2,400 iterations (44 %), 2 of 4 chains tuning, 3 divergences, "
        "100 leapfrog steps per iteration, 6 min 12 s"
    )


def test_progress_lines_are_throttled():
    out = io.StringIO()
    callback = progress_lines(out, every_s=3600.0)
    callback([_chain(0)])
    callback([_chain(10, steps=50)])  # within the interval: nothing written
    assert out.getvalue().splitlines() == [
        "sampling: 0 of 600 iterations (0 %), 1 of 1 chains tuning, 0 divergences, 0 s"
    ]
