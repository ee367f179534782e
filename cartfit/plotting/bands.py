r"""Data with posterior predictive bands, one panel per subject and analyte group.

For posterior draw :math:`s` the noise-free trajectory is :math:`\hat y_s(t)` (the model
observable, natural units); after infusion it is the ODE solution, before infusion (:math:`t<0`)
the growth law's closed form from the tumour burden at day 0. A replicated measurement adds the
residual error of the fit,

.. math::

    y^{rep}_s(t) = \hat y_s(t)\, e^{\sigma_{s,a} \varepsilon}, \qquad
    \varepsilon \sim N(0, 1) \ \text{(or Student-}t_\nu\text{ for Student-}t\text{ fits)},

with :math:`\sigma_{s,a}` the draw's residual SD of analyte :math:`a` on the log scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from cartfit.errors import CartfitError
from cartfit.plotting import style
from cartfit.plotting.fitdata import fit_caption, fit_settings, fit_units, observation_table
from cartfit.plotting.trajectory_panel import TrajectoryBands, draw_panel, legend_handles

if TYPE_CHECKING:
    from matplotlib.figure import Figure

N_GRID = 301
N_PRE = 61
#: residual-error replicates per posterior draw for the prediction interval
N_NOISE = 20


def _group(analyte: str) -> str:
    """Analytes drawn on the same axes: the tumour analytes share one (same unit)."""
    return "tumor" if analyte.startswith("tumor") else analyte


def _quantile_bands(values: np.ndarray, noisy: np.ndarray) -> TrajectoryBands:
    """Median, 50 % and 90 % bands over draws (axis 0) and the 90 % prediction interval."""
    q = np.nanquantile(values, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    pi = np.nanquantile(noisy, [0.05, 0.95], axis=0)
    return TrajectoryBands(q[2], q[1], q[3], q[0], q[4], pi[0], pi[1])


def _replicate(mean: np.ndarray, sigma: np.ndarray, likelihood: str, seed: int) -> np.ndarray:
    """Replicated measurements ``mean * exp(sigma * eps)`` (draw × time), ``N_NOISE`` per draw.

    Each replicate keeps its ``eps`` over the time grid (common random numbers): every time point
    still has the right marginal distribution, and the interval's edges come out smooth.
    """
    rng = np.random.default_rng(seed)
    shape = (mean.shape[0], N_NOISE, 1)
    if likelihood == "student_t":
        from cartfit.inference.priors import STUDENT_T_NU

        eps = rng.standard_t(STUDENT_T_NU, size=shape)
    else:
        eps = rng.standard_normal(shape)
    noisy = mean[:, None, :] * np.exp(sigma[:, None, None] * eps)
    return noisy.reshape(-1, mean.shape[1])


def _pre_infusion(model, traj: dict, times: np.ndarray) -> np.ndarray:
    """Untreated tumour burden before day 0 by the growth law's closed form (draw, subject, t)."""
    growth = model.extras["growth_law"]
    log_b0 = model.observables["tumor"](traj["log_y0"], np)[..., None]
    params = [traj["theta"][..., k, None] for k in range(growth.n_params)]
    log_b = growth.log_solution(times[None, None, :], log_b0, params, np)
    return np.exp(log_b) * traj["scales"].get("tumor", 1.0)


@style.styled
def posterior_predictive_bands(
    tree: xr.DataTree,
    subjects: Sequence[str] | None = None,
    n_draws: int = 200,
    seed: int = 0,
    subjects_per_row: int | None = None,
) -> Figure:
    """Observed data with the posterior median, 50 %/90 % bands and 90 % prediction interval.

    Parameters
    ----------
    tree
        A fit file's DataTree (:func:`cartfit.inference.predict.load_fit`).
    subjects
        Subjects to draw (default: all of the fit).
    n_draws
        Posterior draws used for the bands (thinned at random with ``seed``).
    seed
        Seed of the thinning and of the residual-error draws.
    subjects_per_row
        Subjects side by side (default: 4 panels per row).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per subject and analyte group (CAR T; tumour with its antigen-negative part),
        log y axis, time in days since infusion (negative = before infusion). BLQ measurements are
        open down-triangles at their LLOQ; the LLOQ is the dotted line.
    """
    from cartfit.inference.predict import posterior_draws, trajectories

    obs = observation_table(tree)
    all_subjects = [str(s) for s in tree["posterior"]["subject"].values]
    subjects = list(all_subjects if subjects is None else subjects)
    missing = [s for s in subjects if s not in all_subjects]
    if missing:
        raise CartfitError(
            f"posterior_predictive_bands: no subject {missing[0]!r} in the fit "
            f"(subjects: {all_subjects[:10]})"
        )
    t_end = max(float(obs["time"].max()), 1.0) * 1.02
    t_post = np.linspace(0.0, t_end, N_GRID)
    traj = trajectories(tree, t_post, n_draws=n_draws, seed=seed)
    model = traj["model"]
    sigma = posterior_draws(tree, n_draws, seed)["sigma"]
    sigma_names = [str(a) for a in tree["posterior"]["analyte"].values]
    likelihood = str(fit_settings(tree).get("likelihood", "lognormal"))
    t_min = float(obs["time"].min())
    t_pre = np.linspace(t_min * 1.02, 0.0, N_PRE) if t_min < 0 else np.empty(0)
    pre = _pre_infusion(model, traj, t_pre) if len(t_pre) else None

    observed_groups = {_group(a) for a in obs["analyte"]}
    analytes = sorted(
        (a for a in model.observables if _group(a) in observed_groups), key=style.analyte_order
    )
    groups = sorted(dict.fromkeys(_group(a) for a in analytes), key=style.analyte_order)
    units = fit_units(tree)
    per_row = subjects_per_row or max(1, 4 // len(groups))
    nrows, nsub_cols = style.grid_shape(len(subjects), per_row)
    ncols = nsub_cols * len(groups)
    fig, axes = style.new_figure(
        nrows, ncols, max(3.3 * ncols, 8.0), 2.5 * nrows + 1.6, sharex=True
    )
    for ax in axes.ravel():
        ax.set_visible(False)
    limits = {g: [np.inf, -np.inf] for g in groups}
    panels = []
    for k, subject in enumerate(subjects):
        i = all_subjects.index(subject)
        for j, group in enumerate(groups):
            ax = axes[k // nsub_cols, (k % nsub_cols) * len(groups) + j]
            ax.set_visible(True)
            for a_idx, analyte in enumerate(a for a in analytes if _group(a) == group):
                mean = traj["observables"][analyte][:, i]
                times = t_post
                if analyte == "tumor" and pre is not None:
                    mean = np.concatenate([pre[:, i, :-1], mean], axis=1)
                    times = np.concatenate([t_pre[:-1], t_post])
                s_a = sigma[:, sigma_names.index(analyte)] if analyte in sigma_names else None
                noisy = _replicate(mean, s_a, likelihood, seed + 1 + i) if s_a is not None else mean
                bands = _quantile_bands(mean, noisy)
                rows = obs[(obs["subject"] == subject) & (obs["analyte"] == analyte)]
                lo, hi = draw_panel(
                    ax,
                    times,
                    bands,
                    rows,
                    style.analyte_colour(analyte),
                    draw_pi=s_a is not None,
                    zorder=2 + a_idx,
                )
                limits[group] = [min(limits[group][0], lo), max(limits[group][1], hi)]
            unit = units.get("tumor" if group == "tumor" else group, "")
            ax.set_title(f"{subject}: {style.ANALYTE_NAMES.get(group, group)}")
            ax.set_ylabel(style.analyte_label(group, unit))
            panels.append((ax, group))
    for ax, group in panels:
        ax.set_yscale("log")
        lo, hi = limits[group]
        if np.isfinite(lo) and np.isfinite(hi):
            ax.set_ylim(lo, hi)
        ax.axvline(0.0, color="0.6", lw=0.7, zorder=0)
        ax.tick_params(labelbottom=True)
        ax.set_xlabel("days since CAR T infusion")
    fig.legend(
        handles=legend_handles(analytes),
        loc="outside lower center",
        ncol=style.legend_columns(fig),
        frameon=False,
    )
    style.title(
        fig,
        f"Posterior predictive bands: {fit_caption(tree)}\n"
        f"line: posterior median; shaded: 50 % and 90 % credible bands of the noise-free "
        f"trajectory ({traj['theta'].shape[0]} draws); dashed: 90 % prediction interval "
        f"with residual error",
    )
    return fig
