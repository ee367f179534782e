r"""The measurement model of virtual patients: log-normal assay noise and a lower limit of
quantification.

For an analyte with true level :math:`x(t)` (measured units, from the model's observable in
scaled units times the analyte's scale) the assay reports

.. math::

    y = x(t)\, e^{\sigma \varepsilon}, \quad \varepsilon \sim \mathcal N(0, 1), \qquad
    \text{BLQ} \iff y < \mathrm{LLOQ}

rounded to ``significant`` digits; a BLQ result is reported as ``blq = 1`` with an empty value
(Beal's M3 setting: the censoring acts on the noisy result). An absent state (true level 0)
is always BLQ.

A share (a phenotype fraction, ``upper`` = the whole) takes its noise on the log-odds scale
instead, :math:`y = \operatorname{expit}(\operatorname{logit}(x) + \sigma\varepsilon)`, so that
it stays below the whole, as a fraction of counted cells does: its relative error is about
:math:`\sigma (1 - x)`, close to :math:`\sigma` for a rare phenotype and small for a dominant
one, and its median is the true share. (Log-normal noise cut off at the whole would bias a
dominant share downwards.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class Assay:
    """How one analyte is measured.

    Attributes
    ----------
    analyte
        Analyte name of the data contract (``car_t``, ``tumor``, ``tumor_antigen_neg``).
    unit
        Unit written in ``observations.csv``.
    scale
        Measured units per scaled model unit.
    log_sd
        :math:`\\sigma`, SD of the natural log of the result.
    lloq
        Lower limit of quantification (measured units).
    significant
        Significant digits of a reported value.
    upper
        The whole, for a share (1 for a fraction): noise on the log-odds scale; or None.
    """

    analyte: str
    unit: str
    scale: float
    log_sd: float
    lloq: float
    significant: int = 4
    upper: float | None = None

    def __post_init__(self) -> None:
        if not (self.scale > 0 and self.log_sd >= 0 and self.lloq > 0 and self.significant > 0):
            raise ValueError(f"assay {self.analyte}: scale, lloq > 0, log_sd >= 0 required")


def round_significant(values: ArrayLike, digits: int) -> NDArray[np.float64]:
    """Round positive numbers to ``digits`` significant digits (NaN stays NaN)."""
    x = np.asarray(values, float)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & (x > 0)
    exponent = np.floor(np.log10(x[ok]))
    factor = 10.0 ** (digits - 1 - exponent)
    out[ok] = np.round(x[ok] * factor) / factor
    return out


def measure(
    assay: Assay, log_scaled: ArrayLike, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Noisy, censored results of ``assay`` for true log levels in scaled units.

    Parameters
    ----------
    assay
        The analyte's assay.
    log_scaled
        Natural log of the true level in scaled model units (``-inf`` = absent).
    rng
        Random generator; one normal draw per result, also for BLQ results.

    Returns
    -------
    values, blq
        Reported values in measured units (NaN where BLQ) and the BLQ flags.
    """
    log_true = np.asarray(log_scaled, float)
    eps = rng.standard_normal(log_true.shape)
    with np.errstate(under="ignore", divide="ignore"):
        if assay.upper is None:
            raw = assay.scale * np.exp(log_true + assay.log_sd * eps)
        else:  # logit(x) + sigma eps, x the share of the whole
            share = assay.scale * np.exp(log_true) / assay.upper
            log_odds = np.log(share) - np.log1p(-share) + assay.log_sd * eps
            raw = assay.upper / (1.0 + np.exp(-log_odds))
    value = round_significant(raw, assay.significant)
    blq = ~(value >= assay.lloq)
    value[blq] = np.nan
    return value, blq
