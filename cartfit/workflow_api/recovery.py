"""Validation targets: true exposure of simulated cohorts against posterior intervals."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cartfit.errors import CartfitError

if TYPE_CHECKING:
    import pandas as pd


def recovery_table(exposure: str | os.PathLike[str], cohort_dir: str | os.PathLike[str]
                   ) -> pd.DataFrame:
    """True exposure metrics of a simulated cohort against their posterior 5–95 % intervals.

    Parameters
    ----------
    exposure
        A ``cartfit exposure`` table (``subject, metric, mean, median, q05, q95, unit``).
    cohort_dir
        The simulated cohort, whose ``truth.csv`` has one column per metric.

    Returns
    -------
    pandas.DataFrame
        ``subject, metric, truth, median, q05, q95, covered`` for every metric present in both
        (``covered``: ``q05 <= truth <= q95``); rows with a missing true value are left out.
    """
    import pandas as pd

    from cartfit.io import read_text

    truth_path = Path(cohort_dir) / "truth.csv"
    read_text(truth_path)  # a clear error when the cohort has no truth
    truth = pd.read_csv(truth_path)
    table = pd.read_csv(exposure)
    metrics = [m for m in dict.fromkeys(table["metric"]) if m in truth.columns]
    if not metrics:
        raise CartfitError(f"{truth_path}: no column for any metric of {exposure}")
    long = truth.melt(id_vars="subject", value_vars=metrics, var_name="metric",
                      value_name="truth").dropna(subset=["truth"])
    long["subject"] = long["subject"].astype(str)
    table["subject"] = table["subject"].astype(str)
    out = long.merge(table[["subject", "metric", "median", "q05", "q95"]],
                     on=["subject", "metric"], how="inner")
    out["covered"] = (out["q05"] <= out["truth"]) & (out["truth"] <= out["q95"])
    return out[["subject", "metric", "truth", "median", "q05", "q95", "covered"]]


def coverage_summary(tables: list[str | os.PathLike[str]], nominal: float = 0.9
                     ) -> pd.DataFrame:
    r"""Coverage of the posterior intervals per metric, pooled over recovery tables.

    Returns ``metric, n, covered, coverage, lower, upper, nominal`` where ``lower``–``upper``
    is the 95 % Wilson score interval of the coverage,

    .. math::

        \frac{\hat p + z^2/2n \pm z\sqrt{\hat p(1-\hat p)/n + z^2/4n^2}}{1 + z^2/n},
        \qquad z = 1.96,

    which should contain ``nominal`` (0.9 for 5–95 % intervals) when the intervals are
    calibrated. Subjects within one cohort share population parameters, so the pooled count
    is not fully independent and the interval is somewhat too narrow.
    """
    import numpy as np
    import pandas as pd

    frames = [pd.read_csv(t) for t in tables]
    if not frames:
        raise CartfitError("coverage: no recovery table given")
    pooled = pd.concat(frames, ignore_index=True)
    grouped = pooled.groupby("metric", sort=False)["covered"]
    out = pd.DataFrame({"n": grouped.size(), "covered": grouped.sum().astype(int)})
    z = 1.96
    n, p = out["n"].to_numpy(float), (out["covered"] / out["n"]).to_numpy(float)
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    out["coverage"], out["lower"], out["upper"] = p, centre - half, centre + half
    out["nominal"] = nominal
    return out.reset_index()
