r"""Clinical visit schedules: nominal days, jitter, missed visits and pre-infusion assessments.

A subject's visit :math:`i` (nominal day :math:`n_i`, previous nominal day :math:`n_{i-1}`)
takes place at

.. math::

    t_i = \max\!\left(n_i + u_i\, h\,(n_i - n_{i-1}),\; t_{i-1} + \epsilon\right),
    \qquad u_i \sim \mathcal U(-1, 1)

with :math:`h` the jitter fraction (0.1: ± 10 % of the gap) and :math:`\epsilon` the time
resolution, so visits never swap order; day 0 (infusion) is exact. Pre-infusion visits jitter by
the same fraction of the gap to the next visit and stay before day 0. Each post-infusion visit
after day 0 is missed independently with a fixed probability; pre-infusion visits (screening,
baseline) are never missed. Times are days since infusion rounded to ``decimals``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_DAYS = (0, 1, 4, 7, 10, 14, 21, 28, 56, 90, 180, 270, 365)
DEFAULT_PRE_INFUSION = (-28, -7)
DEFAULT_TUMOR_DAYS = (7, 14, 21, 28, 56, 90, 180, 270, 365)


@dataclass(frozen=True)
class VisitSchedule:
    """The protocol's visits and which analytes are measured at them.

    Attributes
    ----------
    days
        Nominal post-infusion visit days; must start with 0 and increase. CAR T is measured at
        every one of them.
    pre_infusion_days
        Nominal tumour assessments before infusion (negative, increasing).
    tumor_days
        Post-infusion visit days with a tumour assessment (a subset of ``days``).
    phenotype_days
        Post-infusion visit days at which blood CAR T cells are phenotyped by flow cytometry
        (memory and exhausted fractions; a subset of ``days``, none by default). Only a
        multi-fate model has these observables.
    jitter_fraction
        Half-width of the uniform jitter as a fraction of the gap to the previous visit.
    missed_probability
        Probability that a post-infusion visit after day 0 does not take place.
    decimals
        Time resolution: visit times are rounded to this many decimals of a day.
    """

    days: tuple[float, ...] = DEFAULT_DAYS
    pre_infusion_days: tuple[float, ...] = DEFAULT_PRE_INFUSION
    tumor_days: tuple[float, ...] = DEFAULT_TUMOR_DAYS
    phenotype_days: tuple[float, ...] = ()
    jitter_fraction: float = 0.1
    missed_probability: float = 0.1
    decimals: int = 2

    def __post_init__(self) -> None:
        days = np.asarray(self.days, float)
        pre = np.asarray(self.pre_infusion_days, float)
        if days.size == 0 or days[0] != 0 or np.any(np.diff(days) <= 0):
            raise ValueError(f"visit days must start at 0 and increase, got {self.days}")
        if pre.size and (np.any(pre >= 0) or np.any(np.diff(pre) <= 0)):
            raise ValueError(f"pre-infusion days must be negative and increase, got {pre}")
        for what, subset in (("tumour", self.tumor_days), ("phenotype", self.phenotype_days)):
            if not set(subset) <= set(self.days):
                raise ValueError(f"{what} days {subset} are not all visit days {self.days}")
        if not 0 <= self.jitter_fraction < 0.5 or not 0 <= self.missed_probability < 1:
            raise ValueError("need 0 <= jitter_fraction < 0.5 and 0 <= missed_probability < 1")

    @property
    def last_day(self) -> float:
        """Latest possible visit time (days): the last nominal day plus its maximal jitter."""
        gap = self.days[-1] - self.days[-2] if len(self.days) > 1 else 0.0
        return float(self.days[-1] + self.jitter_fraction * gap)


def draw_visits(schedule: VisitSchedule, rng: np.random.Generator) -> pd.DataFrame:
    """One subject's visits.

    Returns
    -------
    pandas.DataFrame
        One row per visit that took place, in time order, with columns ``nominal`` (day),
        ``time`` (actual day since infusion), ``car_t``, ``tumor`` and ``phenotype`` (whether
        CAR T, tumour and CAR T phenotypes are measured at this visit).
    """
    eps = 10.0**-schedule.decimals
    days = np.asarray(schedule.days, float)
    pre = np.asarray(schedule.pre_infusion_days, float)
    # Draw every random number up front so the stream does not depend on the schedule's outcome.
    u_post = rng.uniform(-1.0, 1.0, days.size)
    u_pre = rng.uniform(-1.0, 1.0, pre.size)
    missed = rng.uniform(0.0, 1.0, days.size) < schedule.missed_probability
    missed[0] = False

    times = np.zeros(days.size)
    for i in range(1, days.size):
        t = days[i] + u_post[i] * schedule.jitter_fraction * (days[i] - days[i - 1])
        times[i] = max(round(t, schedule.decimals), times[i - 1] + eps)
    pre_times = np.zeros(pre.size)
    upper = 0.0
    for i in range(pre.size - 1, -1, -1):
        nxt = pre[i + 1] if i + 1 < pre.size else 0.0
        t = pre[i] + u_pre[i] * schedule.jitter_fraction * (nxt - pre[i])
        pre_times[i] = min(round(t, schedule.decimals), upper - eps)
        upper = pre_times[i]

    tumor_days, phenotype_days = set(schedule.tumor_days), set(schedule.phenotype_days)
    rows = [(d, t, False, True, False) for d, t in zip(pre, pre_times, strict=True)]
    rows += [
        (d, t, True, d in tumor_days, d in phenotype_days)
        for d, t, m in zip(days, times, missed, strict=True)
        if not m
    ]
    out = pd.DataFrame(rows, columns=["nominal", "time", "car_t", "tumor", "phenotype"])
    out["time"] = out["time"].round(schedule.decimals)
    return out
