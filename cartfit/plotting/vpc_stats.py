r"""Statistics of a visual predictive check with censored (BLQ) data; numpy and pandas only.

For every analyte and time bin :math:`b` the observed data give

.. math::

    f_b^{obs} = \frac{\#\{i \in b : \text{BLQ}_i\}}{n_b}, \qquad
    P_{q,b}^{obs} = Q_q\{y_i : i \in b,\ \text{not BLQ}_i\},

the fraction below the LLOQ and the ``q``-quantiles (5, 50, 95 %) of the quantified
measurements (natural units). Each posterior predictive replicate :math:`s` of the same rows gives
:math:`f_b^{(s)}` and :math:`P_{q,b}^{(s)}` by the same rule, a replicated value below its row's
LLOQ counting as BLQ (Bergstrand & Karlsson, AAPS J 11:371, 2009, censored VPC). The check
compares each observed statistic with the central ``interval`` (default 90 %) of its replicates.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cartfit.errors import CartfitError

DEFAULT_QUANTILES = (0.05, 0.5, 0.95)
DEFAULT_MAX_BINS = 10


def _qname(q: float) -> str:
    return f"p{round(q * 100):02d}"


def visit_bins(times: np.ndarray, max_bins: int = DEFAULT_MAX_BINS) -> np.ndarray:
    """Bin index (0, 1, ...) per time, by the visit schedule.

    Each distinct time (visit) is its own bin when there are at most ``max_bins`` of them;
    otherwise consecutive visits are grouped into ``max_bins`` bins holding about equal numbers of
    observations (quantile bins whose edges fall between visits, never inside one).
    """
    if max_bins < 1:
        raise CartfitError(f"VPC bins: need at least one bin (got {max_bins})")
    visits, inverse, counts = np.unique(times, return_inverse=True, return_counts=True)
    if len(visits) <= max_bins:
        return inverse
    share = (np.cumsum(counts) - counts / 2) / counts.sum()  # mid cumulative share of each visit
    group = np.minimum((share * max_bins).astype(int), max_bins - 1)
    return np.unique(group, return_inverse=True)[1][inverse]


def edge_bins(times: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index per time for explicit edges ``[e0, e1), [e1, e2), ..., [e_{n-1}, e_n]``;
    -1 for times outside ``[e0, e_n]``."""
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
        raise CartfitError(f"VPC bins: edges must be at least two increasing numbers (got {edges})")
    idx = np.searchsorted(e, times, side="right") - 1
    idx[times == e[-1]] = len(e) - 2
    idx[(times < e[0]) | (times > e[-1])] = -1
    return idx


def _nanquantile(a: np.ndarray, q: Sequence[float], axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as intended
        return np.nanquantile(a, q, axis=axis)


def _bin_row(
    rows: pd.DataFrame,
    rep: np.ndarray,
    quantiles: Sequence[float],
    outer: tuple[float, float, float],
) -> dict:
    lloq = rows["lloq"].to_numpy(float)
    blq = rows["blq"].to_numpy(bool)
    values = rows["value"].to_numpy(float)
    times = rows["time"].to_numpy(float)
    out: dict = {
        "time_lo": times.min(),
        "time_hi": times.max(),
        "time_mid": float(np.median(times)),
        "n_obs": len(rows),
        "n_blq": int(blq.sum()),
        "obs_frac_blq": float(blq.mean()),
    }
    finite = np.isfinite(rep)
    rep_blq = finite & (rep < np.where(np.isnan(lloq), -np.inf, lloq))
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = rep_blq.sum(axis=1) / finite.sum(axis=1)
    lo, med, hi = _nanquantile(frac, outer, axis=0)
    out |= {"sim_frac_blq_lo": lo, "sim_frac_blq_med": med, "sim_frac_blq_hi": hi}
    quantified = values[~blq]
    obs_q = (
        np.quantile(quantified, quantiles) if len(quantified) else np.full(len(quantiles), np.nan)
    )
    sim_q = _nanquantile(np.where(finite & ~rep_blq, rep, np.nan), quantiles, axis=1)  # (q, sim)
    for k, q in enumerate(quantiles):
        name = _qname(q)
        lo, med, hi = _nanquantile(sim_q[k], outer, axis=0)
        out |= {
            f"obs_{name}": float(obs_q[k]),
            f"sim_{name}_lo": lo,
            f"sim_{name}_med": med,
            f"sim_{name}_hi": hi,
        }
    return out


def vpc_statistics(
    observations: pd.DataFrame,
    replicated: np.ndarray,
    bins: int | Sequence[float] | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    interval: float = 0.9,
) -> pd.DataFrame:
    """Observed and simulated VPC statistics per analyte and time bin.

    Parameters
    ----------
    observations
        One row per measurement with ``time`` (days), ``analyte``, ``value`` (natural units; the
        LLOQ on BLQ rows), ``lloq`` (NaN when none) and ``blq`` (bool).
    replicated
        ``(n_sim, n_obs)`` replicated measurements of the same rows, in the same order (natural
        units); NaN marks a failed replicate and is ignored.
    bins
        ``None``: by the visit schedule, at most 10 bins per analyte (:func:`visit_bins`); an
        integer: the same with that many bins at most; a sequence: explicit time edges in days.
    quantiles
        Percentiles of the quantified data to compare.
    interval
        Central probability of the prediction intervals of the simulated statistics.

    Returns
    -------
    pandas.DataFrame
        One row per (analyte, bin): ``analyte, bin, time_lo, time_hi, time_mid`` (median time in
        the bin), ``n_obs, n_blq, obs_frac_blq, sim_frac_blq_lo/_med/_hi`` and, per quantile
        (``p05`` for 0.05), ``obs_p05, sim_p05_lo, sim_p05_med, sim_p05_hi``. ``obs_pXX`` is NaN
        when the bin holds no quantified observation.
    """
    rep = np.asarray(replicated, dtype=float)
    if rep.ndim != 2 or rep.shape[1] != len(observations):
        raise CartfitError(
            f"VPC: replicated draws have shape {rep.shape}, expected "
            f"(n_sim, {len(observations)}) to match the observations"
        )
    if not 0 < interval < 1:
        raise CartfitError(f"VPC: interval must lie in (0, 1) (got {interval})")
    outer = ((1 - interval) / 2, 0.5, (1 + interval) / 2)
    obs = observations.reset_index(drop=True)
    records = []
    for analyte in pd.unique(obs["analyte"]):
        rows = np.flatnonzero(obs["analyte"].to_numpy() == analyte)
        times = obs["time"].to_numpy(float)[rows]
        if bins is None or isinstance(bins, int | np.integer):
            idx = visit_bins(times, DEFAULT_MAX_BINS if bins is None else int(bins))
        else:
            idx = edge_bins(times, bins)
        for b in np.unique(idx[idx >= 0]):
            sel = rows[idx == b]
            stats = _bin_row(obs.iloc[sel], rep[:, sel], quantiles, outer)
            records.append({"analyte": str(analyte), "bin": int(b)} | stats)
    return pd.DataFrame.from_records(records)
