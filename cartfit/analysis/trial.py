r"""Virtual trials from a population posterior (the ``cartfit trial`` table).

Each virtual subject :math:`i` takes a random posterior draw :math:`d_i` (one per block of
``per_draw`` subjects) and a random template subject :math:`j_i` of the fitted cohort, and gets

.. math::

    \ln\theta_i = \mu_{d_i} + X_i \beta_{d_i} + \omega_{d_i} \eta_i, \qquad
    \eta_i \sim \mathcal N(0, I),

(the population model of :mod:`cartfit.inference.builder`) with covariates :math:`X_i` set by the
arm (co-stimulation, lymphodepletion) or, where the arm leaves them open, the template's; the
initial states are the template's posterior initial states at :math:`d_i`, with the CAR T
states scaled by dose / template dose when the arm sets a dose. A model whose parameters include
``lymphodepletion`` (the depth, e.g. multifate) has it set directly.

Reported per rate (response, relapse, antigen-negative relapse, cure by each horizon):
``mean`` — the predictive rate, the mean of the virtual subjects' probabilities; ``median``,
``q05``, ``q95`` — of the proportion a trial of ``n_subjects`` would observe, with the
uncertainty of the population parameters as well as the spread between subjects and chance.
``n_draws`` posterior draws :math:`d` each get ``per_draw`` virtual subjects with outcome
probabilities :math:`p_{di}`. Given :math:`d` a trial's subjects are independent and alike, so
its count is exactly :math:`\mathrm{Binomial}(n, m_d)` with :math:`m_d = E[p \mid d]`. The
draw's mean :math:`\hat m_d` carries Monte Carlo variance :math:`s_d^2/M` (:math:`s_d^2` the
variance of :math:`p_{di}` within the draw, :math:`M` = ``per_draw``), which is taken out of
the spread between draws: with :math:`V = \mathrm{var}_d\,\hat m_d`,
:math:`\tau^2 = \max(0, V - \overline{s_d^2}/M)` and
:math:`\tilde m_d = \bar m + \sqrt{\tau^2/V}\,(\hat m_d - \bar m)`; the quantiles are those of
:data:`REPLICATES` trials, each a random draw :math:`d` and a count
:math:`\sim \mathrm{Binomial}(n, \tilde m_d)`. Exposure metrics give the mean, median and
5–95 % range across all virtual subjects (the predictive distribution of a new subject).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cartfit.analysis.exposure import metric_units
from cartfit.analysis.fitview import FitView, control_level, killing_rate, open_fit
from cartfit.analysis.metrics import exposure_metrics, metric_grid
from cartfit.analysis.relapse import relapse_grid, relapse_probabilities
from cartfit.analysis.relapse_table import subject_inputs
from cartfit.errors import CartfitError

HORIZONS = (90.0, 180.0, 365.0)
WINDOW = 28.0
#: posterior draws of a virtual trial and virtual subjects per draw (2,000 in all)
TRIAL_DRAWS, PER_DRAW = 50, 40
#: simulated trials behind the 5-95 % range of a rate
REPLICATES = 4000
#: the rates reported at each horizon, after the response rate
RATES = ("p_relapse", "p_relapse_antigen_neg", "p_cure")
COLUMNS = ("quantity", "mean", "median", "q05", "q95", "unit", "dose", "costim",
           "lymphodepletion", "n_subjects")  # fmt: skip


def _flat(da) -> np.ndarray:
    return da.stack(sample=("chain", "draw")).transpose("sample", ...).values


def _cohort_lymphodepletion(view: FitView) -> pd.Series:
    from cartfit.data import load_cohort

    try:
        subjects = load_cohort(view.tree.attrs["cohort"]).subjects
    except (KeyError, CartfitError, OSError) as err:
        raise CartfitError(f"{view.path}: the fitted cohort is needed for lymphodepletion "
                           f"({err})") from None  # fmt: skip
    return pd.to_numeric(subjects.loc[view.subjects, "lymphodepletion"], errors="coerce")


def _covariates(view, post, template, costim, lymphodepletion) -> dict[str, np.ndarray]:
    """Covariate values per virtual subject for every ``beta_<name>`` in the posterior."""
    out = {}
    names = [v[5:] for v in post.data_vars if v.startswith("beta_") and not v.endswith("_free")]
    for name in names:
        if name == "costim_cd28":
            own = np.asarray(view.tree["constant_data"]["subject_costim"].values).astype(str)
            arm = own[template] if costim is None else np.full(len(template), costim)
            out[name] = (arm == "CD28").astype(float)
        elif name == "lymphodepletion":
            ld = _cohort_lymphodepletion(view).to_numpy(float)
            arm = (
                ld[template] if lymphodepletion is None else np.full(len(template), lymphodepletion)
            )
            out[name] = arm - np.nanmean(ld)
    if costim is not None and "costim_cd28" not in out:
        own = set(np.asarray(view.tree["constant_data"]["subject_costim"].values).astype(str))
        if own != {costim}:
            raise CartfitError(f"trial: the fit has no co-stimulation effect (cohort: "
                               f"{sorted(own)}); cannot predict a {costim} arm")  # fmt: skip
    return out


def virtual_subjects(view: FitView, n_subjects: int, seed: int, dose=None, costim=None,
                     lymphodepletion=None, typical: bool = False, per_draw: int = 1,
                     with_index: bool = False) -> tuple[np.ndarray, ...]:  # fmt: skip
    """``theta`` (n, parameter) and ``log_y0`` (n, state) of new subjects of the population,
    and with ``with_index`` each one's posterior draw and template subject (indices).

    With ``typical`` the subject effects are zero (eta = 0): the draws then describe
    the posterior of the population-typical subject rather than the predictive spread.
    Consecutive blocks of ``per_draw`` subjects share one posterior draw.
    """
    post = view.tree["posterior"]
    if not view.population or "mu" not in post.data_vars:
        raise CartfitError(f"{view.path}: a virtual trial needs a population fit "
                           "(cartfit fit --population)")  # fmt: skip
    rng = np.random.default_rng(seed)
    mu, omega = _flat(post["mu"]), _flat(post["omega"])
    d = np.repeat(rng.integers(0, len(mu), -(-n_subjects // per_draw)), per_draw)[:n_subjects]
    template = rng.integers(0, len(view.subjects), n_subjects)
    eta = rng.standard_normal((n_subjects, mu.shape[1]))
    log_theta = mu[d] + (0.0 if typical else omega[d] * eta)
    for name, x in _covariates(view, post, template, costim, lymphodepletion).items():
        log_theta += x[:, None] * _flat(post[f"beta_{name}"])[d]
    theta = np.exp(log_theta)
    names = view.model.parameter_names
    if "lymphodepletion" in names:
        j = names.index("lymphodepletion")
        if lymphodepletion is not None:
            theta[:, j] = lymphodepletion
        else:  # the depth is a subject covariate (set, not estimated): the template subject's
            theta[:, j] = _flat(post["theta"])[d, template, j]
    log_y0 = _flat(post["log_y0"])[d, template].copy()
    if dose is not None:
        own = np.asarray(view.tree["constant_data"]["subject_dose"].values, float)[template]
        car_t = list(view.model.extras.get("car_t_states", ()))
        log_y0[:, car_t] += np.log(dose / own)[:, None]
    return (theta, log_y0, d, template) if with_index else (theta, log_y0)


def _trajectories(view: FitView, theta, log_y0, times) -> dict:
    from cartfit.inference.predict import solve_draws

    ys, ok = solve_draws(view.model, theta[:, None], log_y0[:, None], times)
    obs = {a: np.exp(f(ys, np)) * view.scales.get(a, view.scales.get("tumor", 1.0))
           for a, f in view.model.observables.items()}  # fmt: skip
    return {"times": times, "log_states": ys, "observables": obs, "ok": ok, "theta": theta[:, None]}


def draw_means(p: np.ndarray, per_draw: int) -> np.ndarray:
    r"""Per posterior draw, the mean :math:`\tilde m_d` of ``p`` over its block of ``per_draw``
    virtual subjects with the blocks' Monte Carlo noise taken out of the spread between draws
    (see the module); NaN entries (a failed solve) are left out of their block."""
    by_draw = np.asarray(p, float).reshape(-1, per_draw)
    count = np.sum(np.isfinite(by_draw), axis=1)
    keep = count >= 2
    m_hat = np.nanmean(by_draw[keep], axis=1)
    m_bar = np.nanmean(by_draw[keep])
    spread = m_hat.var(ddof=1) if len(m_hat) > 1 else 0.0
    noise = np.mean(np.nanvar(by_draw[keep], axis=1, ddof=1) / count[keep])
    shrink = np.sqrt(max(0.0, spread - noise) / spread) if spread > 0 else 0.0
    return m_bar + shrink * (m_hat - m_bar)


def _rate_row(name: str, p: np.ndarray, per_draw: int, n: int, rng) -> dict:
    """The row of one rate from the probabilities ``p`` of virtual subjects in consecutive
    blocks of ``per_draw`` per posterior draw, for trials of ``n`` subjects (see the module)."""
    m = np.clip(draw_means(p, per_draw), 0.0, 1.0)
    trials = rng.binomial(n, m[rng.integers(0, len(m), REPLICATES)]) / n
    q05, med, q95 = np.quantile(trials, [0.05, 0.5, 0.95])
    return {"quantity": name, "mean": float(np.mean(p)), "median": float(med),
            "q05": float(q05), "q95": float(q95), "unit": "fraction"}  # fmt: skip


def metric_names(subjects: pd.DataFrame) -> list[str]:
    """The exposure metrics among the columns of a :func:`trial_subjects` table."""
    skip = {"block", "draw", "subject", "fit", *rate_names()}
    return [c for c in subjects.columns if c not in skip]


def rate_names() -> list[str]:
    """The rates of a trial, in the order of its table."""
    return ["response_rate"] + [f"{key}_{h:g}d" for key in RATES for h in HORIZONS]


def trial_subjects(
    fit_path: str | Path,
    dose: float | None = None,
    costim: str | None = None,
    lymphodepletion: float | None = None,
    seed: int = 1,
    n_draws: int | None = None,
    per_draw: int | None = None,
) -> pd.DataFrame:
    """The virtual subjects of an arm, one row each: ``block`` (consecutive blocks of
    ``per_draw`` share a posterior draw), ``draw`` (that draw's index), ``subject`` (the
    template subject), the outcome probabilities of :func:`rate_names` and the exposure
    metrics (NaN where the solve failed); ``fit`` identifies the fitted posterior. Two arms
    with the same fit, seed, ``n_draws`` and ``per_draw`` have the same virtual subjects,
    differing only in the arms' settings (paired; see :mod:`cartfit.analysis.trial_contrast`).
    """
    n_draws = TRIAL_DRAWS if n_draws is None else n_draws
    per_draw = PER_DRAW if per_draw is None else per_draw
    if n_draws < 2 or per_draw < 2:
        raise CartfitError("trial: --draws and --per-draw must be at least 2")
    view = open_fit(fit_path)
    n = n_draws * per_draw
    theta, log_y0, draw, template = virtual_subjects(
        view, n, seed, dose, costim, lymphodepletion, per_draw=per_draw, with_index=True
    )
    times = relapse_grid(max(HORIZONS))
    traj = _trajectories(view, theta, log_y0, times)
    probs = relapse_probabilities(times, horizons=HORIZONS, **subject_inputs(view, traj, 0))
    out = {"block": np.arange(n) // per_draw, "draw": draw,
           "subject": np.asarray(view.subjects)[template],
           "response_rate": probs["p_response"][:, 0]}  # fmt: skip
    for key in RATES:
        for j, h in enumerate(HORIZONS):
            out[f"{key}_{h:g}d"] = probs[key][:, j]
    grid = metric_grid(float(np.max(view.obs_times(), initial=0.0)), WINDOW)
    traj = _trajectories(view, theta, log_y0, grid)
    car_t = traj["observables"]["car_t"][:, 0]
    kill = killing_rate(view.model, traj["log_states"][:, 0], theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        metrics = exposure_metrics(
            grid, car_t, traj["observables"]["tumor"][:, 0], kill / car_t,
            lloq=np.nanmedian([view.lloq(s) for s in view.subjects]), window=WINDOW,
            control_level=control_level(view.model, theta, view.scales["car_t"]),
        )  # fmt: skip
    for name, values in metrics.items():
        out[name] = np.where(traj["ok"][:, 0] & np.isfinite(values), values, np.nan)
    table = pd.DataFrame(out)
    attrs = view.tree.attrs
    data = str(attrs.get("data_sha256"))[:12]
    table["fit"] = f"{attrs.get('model')}/{attrs.get('growth')} data {data} {attrs.get('created')}"
    table.attrs["units"] = metric_units(view.units.get("car_t", ""), WINDOW)
    return table


def _summarise(subjects: pd.DataFrame, n_subjects: int, seed: int) -> pd.DataFrame:
    """The trial table (:data:`COLUMNS` without the arm's settings) of the virtual subjects of
    :func:`trial_subjects`, for trials of ``n_subjects`` (checked by :func:`virtual_trial`)."""
    per_draw = int(np.sum(subjects["block"] == 0))
    rng = np.random.default_rng(seed + 1)
    rows = [_rate_row(name, subjects[name].to_numpy(), per_draw, n_subjects, rng)
            for name in rate_names()]  # fmt: skip
    units = subjects.attrs.get("units", {})
    for name in metric_names(subjects):
        v = subjects[name].to_numpy()
        v = v[np.isfinite(v)]
        q05, med, q95 = np.quantile(v, [0.05, 0.5, 0.95]) if len(v) else (np.nan,) * 3
        mean = float(np.mean(v)) if len(v) else np.nan
        rows.append({"quantity": name, "mean": mean, "median": med, "q05": q05, "q95": q95,
                     "unit": units.get(name, "")})  # fmt: skip
    return pd.DataFrame(rows)


def virtual_trial(
    fit_path: str | Path,
    dose: float | None = None,
    costim: str | None = None,
    lymphodepletion: float | None = None,
    n_subjects: int = 200,
    seed: int = 1,
    n_draws: int | None = None,
    per_draw: int | None = None,
    subjects_out: str | Path | None = None,
) -> pd.DataFrame:
    """Response, relapse, antigen-negative relapse and cure rates and exposure of a virtual arm.

    Rows: ``response_rate`` (mean tumour below the relapse threshold by day 90),
    ``p_relapse_<h>d``, ``p_relapse_antigen_neg_<h>d``, ``p_cure_<h>d`` for h in 90, 180, 365,
    then every exposure metric; columns in :data:`COLUMNS` (the arm's settings repeated).
    ``n_subjects`` is the size of the trial; ``n_draws`` x ``per_draw`` virtual subjects are
    simulated (by default :data:`TRIAL_DRAWS` x :data:`PER_DRAW`); ``subjects_out`` writes
    them, one row each (:func:`trial_subjects`), for paired contrasts between arms.
    """
    if n_subjects < 1:
        raise CartfitError("trial: --subjects must be at least 1")
    subjects = trial_subjects(fit_path, dose, costim, lymphodepletion, seed, n_draws, per_draw)
    table = _summarise(subjects, n_subjects, seed)
    table["dose"], table["costim"] = dose, costim
    table["lymphodepletion"], table["n_subjects"] = lymphodepletion, n_subjects
    if subjects_out is not None:
        from cartfit.io import write_table

        write_table(subjects, subjects_out)
    return table[list(COLUMNS)]
