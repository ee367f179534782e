r"""Response and relapse of a virtual patient, from its true trajectory and from its visits.

With relapse threshold :math:`B^*` (measured units) a subject is in *remission* once the total
tumour :math:`B(t) < B^*` and *relapses* at the first later time with :math:`B(t) \ge B^*`.
The relapse is antigen-negative when :math:`T_{A-}/B \ge f` at that time (:math:`f = 1/2`:
most blasts lack the antigen). The *true* outcome uses the noise-free trajectory (crossing
interpolated in :math:`\ln B`); the *observed* outcome applies the same rules to the noisy
results of the scheduled tumour assessments, as a clinic would: a BLQ result counts as below
the threshold, remission must be seen by the response day, and a subject leaves the study at
the relapse visit (relapse) or after the response day (non-response).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Outcome:
    """Response and relapse of one subject.

    Attributes
    ----------
    responder
        Whether the tumour fell below the threshold (by the response day, if observed).
    remission_day
        First day below the threshold (NaN if never).
    relapse_day
        Day of relapse (NaN if none).
    relapse_antigen
        ``"pos"``, ``"neg"``, or ``""`` without relapse.
    """

    responder: bool
    remission_day: float
    relapse_day: float
    relapse_antigen: str


def _crossing(t: np.ndarray, y: np.ndarray, level: float, j: int) -> float:
    """Time in ``[t[j-1], t[j]]`` where ``y`` (log) crosses ``level`` (linear interpolation)."""
    if j == 0 or y[j] == y[j - 1]:
        return float(t[j])
    w = (level - y[j - 1]) / (y[j] - y[j - 1])
    return float(t[j - 1] + np.clip(w, 0.0, 1.0) * (t[j] - t[j - 1]))


def true_outcome(
    times: ArrayLike,
    tumor: ArrayLike,
    antigen_neg: ArrayLike | None,
    threshold: float,
    antigen_neg_fraction: float = 0.5,
) -> Outcome:
    """Remission and relapse of a noise-free trajectory (measured units, days >= 0)."""
    t = np.asarray(times, float)
    log_b = np.log(np.maximum(np.asarray(tumor, float), 1e-300))
    level = np.log(threshold)
    below = np.flatnonzero(log_b < level)
    if below.size == 0:
        return Outcome(False, float("nan"), float("nan"), "")
    first = int(below[0])
    remission = _crossing(t, log_b, level, first)
    above = np.flatnonzero(log_b[first:] >= level)
    if above.size == 0:
        return Outcome(True, remission, float("nan"), "")
    j = first + int(above[0])
    day = _crossing(t, log_b, level, j)
    neg = 0.0 if antigen_neg is None else float(np.asarray(antigen_neg, float)[j])
    share = neg / np.exp(log_b[j])
    return Outcome(True, remission, day, "neg" if share >= antigen_neg_fraction else "pos")


def observed_outcome(
    times: ArrayLike,
    nominal: ArrayLike,
    tumor: ArrayLike,
    antigen_neg: ArrayLike | None,
    threshold: float,
    response_day: float,
    antigen_neg_fraction: float = 0.5,
) -> Outcome:
    """Remission and relapse seen at post-infusion tumour visits.

    Parameters
    ----------
    times, nominal
        Actual and nominal days of the tumour assessments after infusion, in time order.
    tumor, antigen_neg
        Reported total and antigen-negative tumour (NaN = BLQ, which counts as 0).
    threshold
        Relapse threshold (measured units).
    response_day
        Remission must be seen at a visit with nominal day <= this.
    antigen_neg_fraction
        Antigen-negative share that makes a relapse antigen-negative.
    """
    t = np.asarray(times, float)
    nom = np.asarray(nominal, float)
    b = np.nan_to_num(np.asarray(tumor, float), nan=0.0)
    neg = (
        np.zeros_like(b)
        if antigen_neg is None
        else np.nan_to_num(np.asarray(antigen_neg, float), nan=0.0)
    )
    remit = np.flatnonzero((b < threshold) & (nom <= response_day))
    if remit.size == 0:
        return Outcome(False, float("nan"), float("nan"), "")
    first = int(remit[0])
    back = np.flatnonzero(b[first:] >= threshold)
    if back.size == 0:
        return Outcome(True, float(t[first]), float("nan"), "")
    j = first + int(back[0])
    antigen = "neg" if neg[j] >= antigen_neg_fraction * b[j] else "pos"
    return Outcome(True, float(t[first]), float(t[j]), antigen)
