r"""CD28 versus 4-1BB contrasts, homeostatic share and antigen rechallenge of multi-fate fits.

All three analyses solve the multi-fate model (:mod:`cartfit.models.multifate`) for posterior
draws with the fit's own solver (:func:`cartfit.inference.predict.solve_draws`); CAR T levels are
reported in the data's measured units, times in days since infusion.

The population model (:mod:`cartfit.inference.builder`) writes the co-stimulation covariate as

.. math:: \ln\theta_{ij} = \mu_j + \beta_j\, x_i + \dots + \omega_j \eta_{ij}, \qquad
    x_i = 1 \text{ for CD28, } 0 \text{ for 4-1BB},

so :math:`e^{\beta_j}` is the CD28 / 4-1BB ratio of parameter :math:`j` of a typical subject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cartfit.analysis.exposure import summarize_draws
from cartfit.analysis.fitview import FitView, open_fit
from cartfit.analysis.metrics import c_at, cmax, integral, metric_grid, persistence_days, tmax
from cartfit.errors import CartfitError

COVARIATE = "costim_cd28"
DEFAULT_DRAWS = 400
COLUMNS = ("metric", "contrast", "mean", "median", "q05", "q95", "unit", "p_gt_0")
SUBJECT_COLUMNS = ("subject", "metric", "mean", "median", "q05", "q95", "unit")
STEP = 0.05
"""Grid step (days) of the homeostatic-share integrals and the rechallenge follow-up."""


def _flat(da) -> np.ndarray:
    return da.stack(sample=("chain", "draw")).transpose("sample", ...).values


def open_multifate(fit_path: str | Path) -> FitView:
    """Open a fit (:func:`cartfit.analysis.fitview.open_fit`); refuse one of another model."""
    view = open_fit(fit_path)
    if view.model.name != "multifate":
        raise CartfitError(f"{fit_path}: a {view.model.name} fit; these analyses need a multifate "
                           "fit (cartfit fit --model multifate)")  # fmt: skip
    return view


def draw_indices(view: FitView, n_draws: int | None, seed: int) -> np.ndarray:
    """Indices of the flattened draws used (chosen at random with ``seed`` if thinned)."""
    post = view.tree["posterior"]
    n = post.sizes["chain"] * post.sizes["draw"]
    if n_draws is None or n_draws >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, n_draws, replace=False))


def _fixed(view: FitView, theta: np.ndarray) -> list[int]:
    """Parameters set per subject from a covariate column (the lymphodepletion depth ``D``)."""
    names = view.model.parameter_names
    return [names.index(n) for n in view.model.extras.get("covariates", {})
            if np.all(np.ptp(theta[..., names.index(n)], axis=0) == 0)]  # fmt: skip


def _metrics(view: FitView, ys: np.ndarray, times: np.ndarray, horizon: float, lloq) -> dict:
    """cmax, tmax, memory fraction M/(E+M+X) at ``horizon`` and persistence of log states."""
    log_car_t = view.model.observables["car_t"](ys, np)
    car_t = np.exp(log_car_t) * view.scales["car_t"]
    out = {
        "cmax": cmax(times, car_t),
        "tmax": tmax(times, car_t),
        f"memory_fraction_day{horizon:g}": c_at(times, np.exp(ys[..., 1] - log_car_t), horizon),
    }
    if np.all(np.isfinite(lloq)):
        out["persistence_days"] = persistence_days(times, car_t, lloq)
    return out  # fmt: skip


def _rows(cd28: dict, bb: dict, contrast: str, units: dict) -> list[dict]:
    """CD28 − 4-1BB (and CD28 / 4-1BB for cmax and memory fraction) per metric."""
    rows = []
    for name in cd28:
        pairs = [("difference", cd28[name] - bb[name], 0.0, units[name])]
        if not name.endswith(("tmax", "persistence_days")):
            with np.errstate(divide="ignore", invalid="ignore"):
                pairs.append(("ratio", cd28[name] / bb[name], 1.0, "ratio"))
        for kind, v, null, unit in pairs:
            v = v[np.isfinite(v)]
            p = float(np.mean(v > null)) if len(v) else np.nan
            rows.append({"metric": name, "contrast": f"{contrast}_{kind}", **summarize_draws(v),
                         "unit": unit, "p_gt_0": p})  # fmt: skip
    return rows


def costim_contrast(
    fit_path: str | Path, horizon: float = 90.0, n_draws: int | None = DEFAULT_DRAWS, seed: int = 0
) -> pd.DataFrame:
    r"""Posterior CD28 − 4-1BB differences in expansion, memory and persistence.

    Metrics (as in :mod:`cartfit.analysis.metrics`): ``cmax`` (CAR T unit), ``tmax`` (day),
    ``memory_fraction_day<horizon>`` :math:`= M/(E + M + X)` at ``horizon`` (fraction) and
    ``persistence_days`` (last day above the cohort's CAR T LLOQ, left out without an LLOQ), on
    a grid to ``max(horizon, last observation)``. Contrasts, per posterior draw :math:`d`:

    .. math::

        \Delta^{typ}_d = m\big(e^{\mu_d + \beta_d}\big) - m\big(e^{\mu_d}\big), \qquad
        \Delta^{coh}_d = \overline{m(\theta_{id})}_{i \in CD28}
                         - \overline{m(\theta_{id})}_{i \in 4\text{-}1BB}

    ``typical`` is the population-typical CD28 against the typical 4-1BB subject with the same
    initial states (the cohort mean of :math:`\ln y_0`, i.e. geometric-mean dose and baseline)
    and the cohort-mean lymphodepletion; ``cohort_mean`` compares the fitted subjects' means.
    ``cmax`` and the memory fraction also get the ratio (CD28 / 4-1BB, ``p_gt_0`` then is
    P(ratio > 1)). Rows ``covariate_effect`` give :math:`e^{\beta_j}` (ratio CD28 / 4-1BB) for
    every parameter the covariate acts on, with ``p_gt_0`` = P(:math:`\beta_j > 0`).

    Returns
    -------
    DataFrame
        Columns :data:`COLUMNS`.

    Raises
    ------
    CartfitError
        For a fit that is not a multifate population fit with a co-stimulation covariate.
    """
    from cartfit.inference.predict import solve_draws

    if not horizon > 0:
        raise CartfitError(f"costim: --horizon must be > 0 days, got {horizon}")
    view = open_multifate(fit_path)
    post = view.tree["posterior"]
    if not view.population:
        raise CartfitError(f"{fit_path}: a single-subject fit; the CD28 - 4-1BB contrast needs "
                           "a population fit (cartfit fit --population)")  # fmt: skip
    if f"beta_{COVARIATE}" not in post.data_vars:
        own = sorted(set(np.asarray(view.tree["constant_data"]["subject_costim"]).astype(str)))
        raise CartfitError(f"{fit_path}: no co-stimulation covariate in the fit (cohort costim: "
                           f"{own}); needs both CD28 and 4-1BB subjects")  # fmt: skip
    idx = draw_indices(view, n_draws, seed)
    mu, beta = _flat(post["mu"])[idx], _flat(post[f"beta_{COVARIATE}"])[idx]
    theta, log_y0 = _flat(post["theta"])[idx], _flat(post["log_y0"])[idx]
    fixed = _fixed(view, theta)
    grid = metric_grid(max(float(np.max(view.obs_times(), initial=0.0)), horizon), 28.0)
    unit = view.units.get("car_t", "")
    units = {"cmax": unit, "tmax": "day", f"memory_fraction_day{horizon:g}": "fraction",
             "persistence_days": "day"}  # fmt: skip
    # population-typical subjects: 4-1BB (x = 0) and CD28 (x = 1)
    arms = np.exp(np.stack([mu, mu + beta], axis=1))
    for j in fixed:
        arms[:, :, j] = theta[:, :, j].mean(axis=1)[:, None]
    y0 = np.repeat(log_y0.mean(axis=1)[:, None], 2, axis=1)
    lloq = np.nanmedian([view.lloq(s) for s in view.subjects])
    ys, _ = solve_draws(view.model, arms, y0, grid)
    m = _metrics(view, ys, grid, horizon, lloq)
    rows = _rows({k: v[:, 1] for k, v in m.items()}, {k: v[:, 0] for k, v in m.items()},
                 "typical", units)  # fmt: skip
    # the fitted subjects, one at a time (memory)
    costim = np.asarray(view.tree["constant_data"]["subject_costim"].values).astype(str)
    per = []
    for i, subject in enumerate(view.subjects):
        ys, _ = solve_draws(view.model, theta[:, i : i + 1], log_y0[:, i : i + 1], grid)
        per.append(_metrics(view, ys[:, 0], grid, horizon, view.lloq(subject)))
    cd28, bb = costim == "CD28", costim == "4-1BB"
    stack = {k: np.stack([p[k] for p in per], axis=1) for k in m}
    rows += _rows({k: np.nanmean(v[:, cd28], axis=1) for k, v in stack.items()},
                  {k: np.nanmean(v[:, bb], axis=1) for k, v in stack.items()},
                  "cohort_mean", units)  # fmt: skip
    for j, name in enumerate(view.model.parameter_names):
        if np.any(beta[:, j] != 0) and j not in fixed:
            rows.append({"metric": name, "contrast": "covariate_effect",
                         **summarize_draws(np.exp(beta[:, j])), "unit": "ratio",
                         "p_gt_0": float(np.mean(beta[:, j] > 0))})  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _relative_cytokine(t: np.ndarray, depth, ratio, recovery_time) -> np.ndarray:
    """:func:`cartfit.models.cytokine.relative_cytokine` elementwise (no derivatives)."""
    depth = np.clip(depth, 0.0, 1.0)
    return (1.0 + ratio) / (1.0 + ratio * (1.0 - depth * np.exp(-np.maximum(t, 0) / recovery_time)))


def homeostatic_share(
    fit_path: str | Path,
    window: tuple[float, float] = (0.0, 14.0),
    n_draws: int | None = DEFAULT_DRAWS,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Per subject, the share of early CAR T expansion that is homeostatic.

    .. math::

        s_i = \frac{\int_{t_0}^{t_1} h(t)\, M(t)\, dt}
                   {\int_{t_0}^{t_1} \big(h(t)\, M(t) + \beta_E\, \phi_{hi}(t)\, E(t)\big)\, dt},
        \quad h(t) = \frac{\alpha_h\, c(t)}{K_C + c(t)}, \quad
        \phi_{hi} = \frac{T}{T + K_A}

    the homeostatic proliferation of memory cells over all proliferation (homeostatic plus
    antigen-driven effector proliferation), both in CAR T cells made per day (scaled units
    cancel); :math:`c(t) = (1 + \rho)/(1 + \rho(1 - D e^{-t/\tau}))` is the relative
    cytokine after lymphodepletion of depth :math:`D` (:mod:`cartfit.models.cytokine`),
    :math:`[t_0, t_1]` = ``window`` (days). Trapezoid rule on a 0.05-day grid.

    Returns
    -------
    DataFrame
        Columns :data:`SUBJECT_COLUMNS`, metric ``homeostatic_share`` (fraction in [0, 1]):
        posterior mean, median and 5 % / 95 % quantiles.
    """
    from cartfit.inference.predict import solve_draws

    lo, hi = (float(w) for w in window)
    if not 0.0 <= lo < hi:
        raise CartfitError(f"homeostatic share: window {window} must satisfy 0 <= start < end")
    view = open_multifate(fit_path)
    post, names = view.tree["posterior"], view.model.parameter_names
    idx = draw_indices(view, n_draws, seed)
    theta, log_y0 = _flat(post["theta"])[idx], _flat(post["log_y0"])[idx]
    times = np.union1d(np.arange(0.0, hi, STEP), [lo, hi])
    ys, ok = solve_draws(view.model, theta, log_y0, times)
    p = {n: theta[:, :, names.index(n)][..., None] for n in names}
    c = _relative_cytokine(times, p["lymphodepletion"], p["cytokine_consumption_ratio"],
                           p["lymphocyte_recovery_time"])  # fmt: skip
    homeostatic = p["homeostatic_rate"] * c / (p["cytokine_half_saturation"] + c)
    homeostatic = homeostatic * np.exp(ys[..., 1])  # h(t) M
    phi_hi = 1.0 / (1.0 + p["antigen_half_saturation"] * np.exp(-ys[..., 3]))
    antigen = p["effector_proliferation"] * phi_hi * np.exp(ys[..., 0])  # beta_E phi_hi E
    num = integral(times, homeostatic, lo, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(ok, num / (num + integral(times, antigen, lo, hi)), np.nan)
    rows = [{"subject": s, "metric": "homeostatic_share", **summarize_draws(share[:, i]),
             "unit": "fraction"} for i, s in enumerate(view.subjects)]  # fmt: skip
    return pd.DataFrame(rows, columns=list(SUBJECT_COLUMNS))
