r"""Model-free growth-law diagnostic: is :math:`\ln B` linear in time before treatment?

Exponential growth :math:`dB/dt = rB` is the only law under which :math:`\ln B` is a straight
line in :math:`t`; logistic and Gompertz growth bend it downwards (decelerating). For each
subject's pre-infusion tumour measurements (``time < 0``, quantified values only) the
quadratic regression

.. math:: \ln B(t_j) = a + r\,t_j + c\,t_j^2 + \varepsilon_j

is compared with the straight line: :math:`\hat r` (1/day) is the growth rate of the straight
line, :math:`\hat c` (1/day²) the curvature, and the t-test of :math:`c = 0`
(:math:`n - 3` degrees of freedom) its p-value. The cohort row pools the subjects with an
F-test of all curvatures against straight lines,

.. math:: F = \frac{(\mathrm{RSS}_{lin} - \mathrm{RSS}_{quad})/m}{\mathrm{RSS}_{quad}/(N - 3m)},

over the :math:`m` subjects with at least four points (:math:`N` points in all).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
COLUMNS = (
    "subject", "n_points", "t_first", "t_last", "growth_rate", "curvature", "curvature_se",
    "p_value", "verdict",
)  # fmt: skip


def _verdict(c: float, p: float) -> str:
    if not np.isfinite(p):
        return "too few points"
    if p >= ALPHA:
        return "linear (exponential-compatible)"
    return "decelerating" if c < 0 else "accelerating"


def _fit(t: np.ndarray, y: np.ndarray) -> dict:
    n = len(t)
    lin = np.polyfit(t, y, 1)
    out = {"n_points": n, "t_first": t.min(), "t_last": t.max(), "growth_rate": lin[0],
           "curvature": np.nan, "curvature_se": np.nan, "p_value": np.nan,
           "rss_lin": np.sum((y - np.polyval(lin, t)) ** 2), "rss_quad": np.nan}  # fmt: skip
    if n >= 4 and np.ptp(t) > 0:
        x = np.column_stack([np.ones(n), t, t**2])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        rss = float(np.sum((y - x @ coef) ** 2))
        s2 = rss / (n - 3)
        cov = s2 * np.linalg.pinv(x.T @ x)
        se = float(np.sqrt(cov[2, 2]))
        out.update(curvature=coef[2], curvature_se=se, rss_quad=rss)
        out["p_value"] = 2 * stats.t.sf(abs(coef[2]) / se, n - 3) if se > 0 else 0.0
    return out


def log_linearity_diagnostic(cohort) -> pd.DataFrame:
    """Per-subject and cohort test of log-linear pre-infusion tumour growth.

    Parameters
    ----------
    cohort
        A :class:`cartfit.data.Cohort` or a cohort folder.

    Returns
    -------
    DataFrame
        One row per subject with at least two pre-infusion tumour values, then a row with
        subject ``"(cohort)"`` (pooled F-test); columns ``subject``, ``n_points``,
        ``t_first``/``t_last`` (days), ``growth_rate`` (1/day), ``curvature`` (1/day²),
        ``curvature_se``, ``p_value``, ``verdict``. Empty when no subject has pre-infusion data.
    """
    if isinstance(cohort, (str, Path)):
        from cartfit.data import load_cohort

        cohort = load_cohort(cohort)
    obs = cohort.observations
    pre = obs[(obs["analyte"] == "tumor") & (obs["time"] < 0) & ~obs["blq"].astype(bool)]
    pre = pre[np.isfinite(pre["value"]) & (pre["value"] > 0)]
    rows = []
    for subject, grp in pre.groupby("subject", sort=True):
        if len(grp) < 2:
            continue
        fit = _fit(grp["time"].to_numpy(float), np.log(grp["value"].to_numpy(float)))
        rows.append({"subject": str(subject), **fit})
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    table = pd.DataFrame(rows)
    tested = table[np.isfinite(table["rss_quad"])]
    cohort_row = {"subject": "(cohort)", "n_points": int(table["n_points"].sum()),
                  "t_first": table["t_first"].min(), "t_last": table["t_last"].max(),
                  "growth_rate": float(table["growth_rate"].median()),
                  "curvature": float(tested["curvature"].median()) if len(tested) else np.nan,
                  "curvature_se": np.nan, "p_value": np.nan}  # fmt: skip
    if len(tested):
        m, n_pts = len(tested), int(tested["n_points"].sum())
        rss_q = float(tested["rss_quad"].sum())
        gain = float(tested["rss_lin"].sum()) - rss_q
        dof = n_pts - 3 * m
        if dof > 0 and rss_q > 0:
            cohort_row["p_value"] = float(stats.f.sf((gain / m) / (rss_q / dof), m, dof))
    table = pd.concat([table, pd.DataFrame([cohort_row])], ignore_index=True)
    table["verdict"] = [_verdict(c, p) for c, p in zip(table["curvature"], table["p_value"],
                                                      strict=True)]  # fmt: skip
    return table[list(COLUMNS)]
