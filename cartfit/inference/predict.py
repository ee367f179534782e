"""Noise-free trajectories and observation means from posterior draws (numpy, no PyMC graph).

Every downstream analysis (exposure, relapse, trials, figures) and the fit's own pointwise
log-likelihood and posterior predictive go through these functions, which call the same compiled
solver and the same model observables as the sampler.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import special, stats

from cartfit.errors import CartfitError
from cartfit.inference import priors as P
from cartfit.inference.solver import get_batch_solver
from cartfit.models import get_model
from cartfit.models.base import ODEModel


def load_fit(path: str | Path) -> xr.DataTree:
    """Open a fit file fully into memory (the file is closed afterwards)."""
    path = Path(path)
    if not path.is_file():
        raise CartfitError(f"{path}: no such fit file")
    try:
        with xr.open_datatree(path, engine="netcdf4") as tree:
            return tree.load()
    except (OSError, ValueError) as err:
        raise CartfitError(f"{path}: not a readable cartfit fit file ({err})") from None


def fit_model(tree: xr.DataTree) -> ODEModel:
    """The ODE model a fit was made with."""
    return get_model(tree.attrs["model"], tree.attrs["growth"])


def _flat(da: xr.DataArray) -> np.ndarray:
    return da.stack(sample=("chain", "draw")).transpose("sample", ...).values


def posterior_draws(tree: xr.DataTree, n_draws: int | None = None, seed: int = 0) -> dict:
    """Posterior draws flattened over chains: ``theta`` (n, subject, parameter), ``log_y0``
    (n, subject, state), ``sigma`` (n, analyte); thinned at random to ``n_draws`` if given."""
    post = tree["posterior"]
    out = {k: _flat(post[k]) for k in ("theta", "log_y0", "sigma")}
    n = out["theta"].shape[0]
    if n_draws is not None and n_draws < n:
        idx = np.sort(np.random.default_rng(seed).choice(n, n_draws, replace=False))
        out = {k: v[idx] for k, v in out.items()}
    return out


def solve_draws(
    model: ODEModel,
    theta: np.ndarray,
    log_y0: np.ndarray,
    times: np.ndarray,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """Log states for every draw and subject on a common time grid ``times`` (sorted, >= 0).

    Returns ``ys`` (n_draws, n_subjects, n_times, n_states) and ``ok`` (n_draws, n_subjects);
    failed solves are NaN.
    """
    n_d, n_sub, n_p = theta.shape
    solve = get_batch_solver(model, with_sens=False)
    grid = np.broadcast_to(np.asarray(times, dtype=float), (n_d * n_sub, len(times))).copy()
    n_t = np.full(n_d * n_sub, len(times), dtype=np.int64)
    ys, _, status = solve(
        np.log(theta.reshape(-1, n_p)),
        log_y0.reshape(n_d * n_sub, -1).copy(),
        grid,
        n_t,
        rtol,
        atol,
        100_000,
    )
    ys = ys.reshape(n_d, n_sub, len(times), model.n_states)
    ok = (status == 0).reshape(n_d, n_sub)
    ys[~ok] = np.nan
    return ys, ok


def observation_means(
    model: ODEModel,
    theta: np.ndarray,
    log_y0: np.ndarray,
    subject_idx: np.ndarray,
    time: np.ndarray,
    analyte: np.ndarray,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> np.ndarray:
    """Predicted ``ln(y/scale)`` (n_draws, n_obs) for observation rows, pre-infusion rows by the
    growth law's closed form, exactly as in the PyMC model."""
    n_d = theta.shape[0]
    mu = np.full((n_d, len(time)), np.nan)
    growth = model.extras["growth_law"]
    for i in np.unique(subject_idx):
        rows = np.flatnonzero(subject_idx == i)
        t = time[rows]
        post_t = np.unique(t[t >= 0])
        if len(post_t):
            ys, _ = solve_draws(
                model, theta[:, i : i + 1], log_y0[:, i : i + 1], post_t, rtol, atol
            )
            ys = ys[:, 0]
            for r in rows[time[rows] >= 0]:
                k = int(np.searchsorted(post_t, time[r]))
                mu[:, r] = model.observables[str(analyte[r])](ys[:, k], np)
        for r in rows[time[rows] < 0]:
            log_b0 = model.observables["tumor"](log_y0[:, i], np)
            gp = [theta[:, i, k] for k in range(growth.n_params)]
            mu[:, r] = growth.log_solution(time[r], log_b0, gp, np)
    return mu


def pointwise_loglik(
    mu: np.ndarray,
    sigma: np.ndarray,
    log_value: np.ndarray,
    blq: np.ndarray,
    likelihood: str = "lognormal",
) -> np.ndarray:
    """Log-likelihood per draw and row: density of ``ln(y/scale)`` or, for BLQ rows, the M3
    term ``log Phi((ln(LLOQ/scale) - mu)/sigma)`` (``log_value`` holds the LLOQ there)."""
    z = (log_value - mu) / sigma
    if likelihood == "student_t":
        dens = stats.t.logpdf(z, P.STUDENT_T_NU) - np.log(sigma)
        cens = stats.t.logcdf(z, P.STUDENT_T_NU)
    else:
        dens = -0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
        cens = special.log_ndtr(z)
    out = np.where(blq, cens, dens)
    return np.where(np.isfinite(mu), out, -np.inf)


def trajectories(
    tree: xr.DataTree, times: np.ndarray, n_draws: int | None = None, seed: int = 0
) -> dict:
    """Noise-free trajectories of a fit on ``times`` (days >= 0).

    Returns a dict with ``times``, ``subjects``, ``log_states`` (draw, subject, time, state;
    scaled units), ``observables`` (analyte -> natural measured units, draw × subject × time),
    ``ok`` (draw, subject), ``theta`` (draw, subject, parameter), ``parameter_names``,
    ``scales`` (analyte -> reference level) and ``model``.
    """
    model = fit_model(tree)
    draws = posterior_draws(tree, n_draws, seed)
    ys, ok = solve_draws(model, draws["theta"], draws["log_y0"], np.asarray(times, dtype=float))
    const = tree["constant_data"]
    scales = dict(
        zip(const["analyte"].values.tolist(), const["scale"].values.tolist(), strict=True)
    )
    tumor_scale = scales.get("tumor", 1.0)
    obs = {}
    for analyte, f in model.observables.items():
        scale = scales.get(analyte, tumor_scale if analyte.startswith("tumor") else 1.0)
        obs[analyte] = np.exp(f(ys, np)) * scale
    return {
        "times": np.asarray(times, dtype=float),
        "subjects": json.loads(tree.attrs["subjects"]),
        "log_states": ys,
        "observables": obs,
        "ok": ok,
        "theta": draws["theta"],
        "log_y0": draws["log_y0"],
        "parameter_names": list(model.parameter_names),
        "scales": scales,
        "model": model,
    }
