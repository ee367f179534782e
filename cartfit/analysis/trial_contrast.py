r"""Paired contrast of two virtual-trial arms (the ``cartfit trial-contrast`` table).

Arms simulated from one population fit with the same seed and sizes have the same virtual
subjects — the same posterior draw :math:`d`, template subject and subject effects
:math:`\eta_i` — and differ only in the arms' settings (co-stimulation, dose,
lymphodepletion). So the difference between arms is estimated subject by subject, with common
random numbers, and the difference in a rate between the arm (A) and the reference (B) at a
posterior draw, :math:`\delta_d = E[p^A - p^B \mid d]`, is far less noisy than either rate.

Per rate (response, relapse, antigen-negative relapse, cure by each horizon):

* ``mean``: the predictive difference :math:`\overline{p^A - p^B}` over all virtual subjects;
* ``median``, ``q05``, ``q95``: of the difference in observed proportions a two-arm trial of
  ``n_subjects`` per arm would see: a random draw :math:`d`, then independent counts
  :math:`\mathrm{Binomial}(n, \tilde m^B_d)` and :math:`\mathrm{Binomial}(n, \tilde m^B_d +
  \tilde\delta_d)`, with :math:`\tilde m^B_d` and :math:`\tilde\delta_d` the per-draw means with
  their Monte Carlo noise taken out (:func:`cartfit.analysis.trial.draw_means`);
* ``p_population_higher``: the posterior probability that the arm's population rate exceeds
  the reference's, the share of draws with :math:`\tilde\delta_d > 0` (resolution 1/number
  of draws);
* ``p_trial_higher``: the probability that such a trial observes a higher rate in the arm
  (ties count one half).

Per exposure metric that is positive (``cmax``, ``auc_0_28``, ``c_day28``,
``killing_exposure``): the geometric mean ratio A/B — ``mean`` over all virtual subjects,
``median``, ``q05``, ``q95`` of the per-draw ratio :math:`\exp \tilde\ell_d` with
:math:`\ell = \ln(x^A / x^B)` (the population ratio's posterior), and
``p_population_higher`` the share of draws with :math:`\tilde\ell_d > 0`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cartfit.analysis.trial import REPLICATES, draw_means, rate_names
from cartfit.errors import CartfitError

#: exposure metrics compared as geometric mean ratios
RATIO_METRICS = ("cmax", "auc_0_28", "c_day28", "killing_exposure")
COLUMNS = ("quantity", "mean", "median", "q05", "q95", "unit", "p_population_higher",
           "p_trial_higher", "arm", "reference", "n_subjects")  # fmt: skip
_PAIRING = ("block", "draw", "subject", "fit")


def _read_arm(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise CartfitError(f"{path}: cannot read the virtual subjects of an arm ({err})") from None
    missing = [c for c in (*_PAIRING, *rate_names()) if c not in table.columns]
    if missing:
        raise CartfitError(f"{path}: not a virtual-subject table of `cartfit trial "
                           f"--subjects-out` (no column {', '.join(missing)})")  # fmt: skip
    return table


def _paired(arm: pd.DataFrame, ref: pd.DataFrame, arm_path: Path, ref_path: Path) -> int:
    """Check that the arms hold the same virtual subjects; return subjects per draw."""
    if len(arm) != len(ref):
        raise CartfitError(f"{arm_path} has {len(arm)} virtual subjects, {ref_path} {len(ref)}: "
                           "simulate both arms with the same --draws and --per-draw")  # fmt: skip
    for col in _PAIRING:
        differ = np.flatnonzero(arm[col].astype(str).to_numpy() != ref[col].astype(str).to_numpy())
        if len(differ):
            row = int(differ[0]) + 2  # the header is line 1
            hint = "the same fit" if col == "fit" else "the same fit, --seed and sizes"
            raise CartfitError(f"{arm_path} and {ref_path} differ at row {row}, column {col!r} "
                               f"({arm[col].iloc[differ[0]]} against {ref[col].iloc[differ[0]]}):"
                               f" the arms are not paired; simulate both from {hint}")  # fmt: skip
    per_draw = int(np.sum(arm["block"].to_numpy() == 0))
    if per_draw < 2 or len(arm) % per_draw:
        raise CartfitError(f"{arm_path}: blocks of unequal size; not a table of `cartfit trial`")
    return per_draw


def _rate_row(name, a, b, per_draw, n, rng) -> dict:
    m_ref = np.clip(draw_means(b, per_draw), 0.0, 1.0)
    delta = draw_means(a - b, per_draw)
    m_arm = np.clip(m_ref + delta, 0.0, 1.0)
    d = rng.integers(0, len(m_ref), REPLICATES)
    diff = (rng.binomial(n, m_arm[d]) - rng.binomial(n, m_ref[d])) / n
    q05, med, q95 = np.quantile(diff, [0.05, 0.5, 0.95])
    return {"quantity": name, "mean": float(np.mean(a - b)), "median": float(med),
            "q05": float(q05), "q95": float(q95), "unit": "difference (fraction)",
            "p_population_higher": float(np.mean(delta > 0)),
            "p_trial_higher": float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))}  # fmt: skip


def _ratio_row(name, a, b, per_draw) -> dict | None:
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where((a > 0) & (b > 0), np.log(a) - np.log(b), np.nan)
    if np.sum(np.isfinite(log_ratio)) < 2:
        return None
    ell = draw_means(log_ratio, per_draw)
    q05, med, q95 = np.exp(np.quantile(ell, [0.05, 0.5, 0.95]))
    return {"quantity": f"{name}_ratio", "mean": float(np.exp(np.nanmean(log_ratio))),
            "median": float(med), "q05": float(q05), "q95": float(q95),
            "unit": "geometric mean ratio", "p_population_higher": float(np.mean(ell > 0)),
            "p_trial_higher": np.nan}  # fmt: skip


def trial_contrast(
    arm_path: str | Path,
    reference_path: str | Path,
    n_subjects: int = 200,
    seed: int = 1,
    arm: str | None = None,
    reference: str | None = None,
) -> pd.DataFrame:
    """The paired contrast (arm − reference) of two arms' virtual subjects (files written by
    ``cartfit trial --subjects-out``), for a trial of ``n_subjects`` per arm; columns
    :data:`COLUMNS` (see the module), ``arm`` and ``reference`` naming the arms (by default the
    files' names)."""
    if n_subjects < 1:
        raise CartfitError("trial-contrast: --subjects must be at least 1")
    arm_path, reference_path = Path(arm_path), Path(reference_path)
    a_tab, b_tab = _read_arm(arm_path), _read_arm(reference_path)
    per_draw = _paired(a_tab, b_tab, arm_path, reference_path)
    rng = np.random.default_rng(seed + 2)
    rows = [_rate_row(q, a_tab[q].to_numpy(float), b_tab[q].to_numpy(float), per_draw,
                      n_subjects, rng) for q in rate_names()]  # fmt: skip
    for name in RATIO_METRICS:
        if name in a_tab.columns and name in b_tab.columns:
            row = _ratio_row(name, a_tab[name].to_numpy(float), b_tab[name].to_numpy(float),
                             per_draw)  # fmt: skip
            if row is not None:
                rows.append(row)
    table = pd.DataFrame(rows)
    table["arm"] = arm or arm_path.stem
    table["reference"] = reference or reference_path.stem
    table["n_subjects"] = n_subjects
    return table[list(COLUMNS)]
