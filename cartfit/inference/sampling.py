r"""Run nutpie on a built model: one compilation, multi-start optimisation, Laplace whitening,
sampling.

The model is compiled once by nutpie (numba backend), in whitened coordinates with the identity
map (see :mod:`cartfit.inference.whiten`). Its compiled log density serves the multi-start
optimisation and the Hessian at the best optimum; in a large population (see
:func:`large_cohort_geometry`) the best start is carried on to its optimum by damped Newton
steps, the Hessian there sets the subject effects' centring weights (see
:mod:`cartfit.inference.centring`) and the Newton steps are repeated in the new coordinates;
the whitening is then set and each chain starts at
a corner of a cube around the optimum, :math:`w \in \{-r, r\}^d` with :math:`r = 1` unless
the density there is implausibly low (see :func:`corner_start`). The returned tree has the
original model's free variables and deterministics in ``posterior`` (not ``w``), and nutpie's
divergence positions mapped back to the original unconstrained coordinates.

A small population's starts are optimised twice (:func:`both_forms_start`): with the subject
effects as the model writes them and with every one non-centred (weights 0, see
:mod:`cartfit.inference.centring`); the optima of both are ranked by their non-centred density
and the best is written in the model's weights. The joint mode of a centred effect is
degenerate: with every subject at the population mean its density grows without bound as the
population SD shrinks, and L-BFGS heads there. On data/example's logistic population (4 x
1000/1000, target accept 0.98, depth 6) the best of six centred starts had the SD of CAR T
death at 0.0002 (truth 0.35), the whitening was set at that funnel neck and every chain stayed
near it (SD 0.0002-0.005 by chain, max R-hat 2.23, 165 divergent transitions); the best
non-centred start (SD 0.60; non-centred log density -418.0 against -618.4) reached R-hat 1.30
with 9 (seed 1: 1.30 and 74 against 1.17 and 13). Gompertz fits of data/example, where the
non-centred optimum also ranks first, were unaffected (three seeds: max R-hat 1.007 each
against 1.004-1.005; 0, 3, 5 divergences against 5, 0, 1). Newton steps from the mapped point
to the centred optimum made it worse (logistic 1.43, exponential 1.64 against 1.30 and 1.21).
Large cohorts keep their centred starts and Newton steps (see :func:`large_cohort_geometry`).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pymc as pm
import xarray as xr
from pymc.blocking import DictToArrayBijection

from cartfit.inference.centring import WEIGHTS, recentre, reweight
from cartfit.inference.compiled import check_against_reference, compile_model
from cartfit.inference.init import StartReport, multistart
from cartfit.inference.progress import progress_lines
from cartfit.inference.stored import stored_function
from cartfit.inference.whiten import Factors, Whitened, whitened_model

#: nutpie's divergence positions in the sampler's coordinates w, mapped to x = x̂ + L w
_POSITIONS = ("divergence_start", "divergence_end")
_DIRECTIONS = ("divergence_start_gradient", "divergence_momentum")


@dataclass
class Sampled:
    """The sampled tree and, when the chains started at an optimum, the multi-start report."""

    idata: xr.DataTree
    start: StartReport | None
    seconds: dict[str, float]  # compile, optimise (multi-start and Hessian), sample
    #: the compiled log density and gradient in the original unconstrained coordinates
    logp_dlogp: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None
    #: the draws in those coordinates, (chain, draw, coordinate)
    x_draws: np.ndarray | None = None


def _raveled(pm_model: pm.Model, point: dict, info) -> np.ndarray:
    """A point given by value-variable name (unconstrained) or RV name (constrained), raveled;
    a variable it lacks takes the model's initial point."""
    values = dict(pm_model.initial_point())
    for rv in pm_model.free_RVs:
        value = pm_model.rvs_to_values[rv]
        if value.name in point:
            values[value.name] = np.asarray(point[value.name], float)
        elif rv.name in point:
            transform = pm_model.rvs_to_transforms.get(rv)
            v = np.asarray(point[rv.name], float)
            values[value.name] = (
                transform.forward(v, *rv.owner.inputs).eval() if transform is not None else v
            )
    return DictToArrayBijection.map({name: values[name] for name, *_ in info}).data


#: radii tried for a chain's start, w = r s with s in {-1, 1}^d (0: the optimum itself)
START_RADII = (1.0, 0.5, 0.25, 0.125, 0.0)


def corner_start(log_density: Callable[[np.ndarray], float], n_dim: int, peak: float):
    r"""Per-chain start points in whitened coordinates, a function of nutpie's per-chain seed:
    :math:`w = r s` with random signs :math:`s_i = \pm 1` and the largest ``r`` of
    :data:`START_RADII` at which ``log_density(w)`` has dropped from ``peak`` (its value at
    the optimum, ``w = 0``) by at most :math:`r^2 d + 10`, twice the drop :math:`r^2 d / 2` of a
    standard normal.

    In whitened coordinates the posterior is close to a standard normal, whose typical set lies
    at :math:`|w| \approx \sqrt d`, and the gradient at ``w`` is about ``-w``. nutpie sets its
    first mass matrix from the start point's gradient, variance :math:`1/|\partial_i \log p|`
    clamped to [1e-20, 1e20]: at a corner (``r = 1``) that is the identity, the right answer,
    whereas at the optimum itself (gradient near 0) it is up to 1e20, and the first warm-up
    window is spent undoing it. Distinct corners also make the chains' agreement (R-hat) a
    test rather than a given. Where the Laplace approximation is poor (a wall in the posterior,
    floored Hessian eigenvalues), a unit corner can land where the density is astronomically
    small and the chain never leaves it (seen with the logistic law on data/example: step size
    3e-13, log-likelihood -1.9e23); the radius is halved until the drop is plausible."""
    lock = threading.Lock()  # nutpie asks from its worker threads

    def start(seed) -> np.ndarray:
        rng = np.random.default_rng(np.asarray(seed, dtype=np.uint64).ravel().tolist())
        signs = rng.choice(np.array([-1.0, 1.0]), size=n_dim)
        with lock:
            for r in START_RADII:
                drop = peak - log_density(r * signs)
                if np.isfinite(drop) and drop <= r * r * n_dim + 10.0:
                    return r * signs
        return np.zeros(n_dim)

    return start


def _map_positions(stats: xr.Dataset, whitened: Whitened, factors: Factors) -> xr.Dataset:
    """Divergence positions (chain, draw, coordinate; NaN where none) from w to x = x̂ + L w;
    gradient and momentum, in the sampler's coordinates, are dropped."""
    stats = stats.drop_vars([v for v in _DIRECTIONS if v in stats])
    for name in _POSITIONS:
        if name in stats:
            w = np.asarray(stats[name].values, float)
            stats[name] = (stats[name].dims, whitened.x_of(w, factors))
    return stats


#: population fits of at least this many subjects use the large-cohort geometry by default
LARGE_COHORT = 50


def large_cohort_geometry(pm_model: pm.Model, settings) -> bool:
    """Whether to carry the best start on by Newton steps and set per-subject centring weights
    (``settings.large_cohort``; None: a population of at least :data:`LARGE_COHORT` subjects).

    At 200 subjects (1,214 coordinates, 4 x 300/300) these took a fit from 266 to 111 leapfrog
    steps per draw, the smallest ESS of a population SD from 20 to 406, and removed a chain
    stuck in a local mode of one subject (none of six L-BFGS starts reaches an optimum there).
    At 16-20 subjects they raised the population ESS (20 subjects: 926 -> 2,426-2,588), but
    data/example's Gompertz fit went from 0 to 13 divergences (S16's day-1 CAR T reading, with
    the spread of CAR T death: a funnel; diagonal mass matrix) and its exponential fit from
    R-hat 1.008 to 2.0-3.4 (low-rank or diagonal mass matrix; chains settling on different
    orbits of the Lotka–Volterra system around the sharper optimum): small cohorts keep
    the best L-BFGS start of both forms (:func:`both_forms_start`) and 0/1 centring.
    Models differ, so ``large_cohort=True`` (``cartfit
    fit --large-cohort``) asks for it at any size: data/example's escape/Gompertz population
    (16 subjects, 4 x 1000/1000, target accept 0.98, depth 6) went from max R-hat 1.095 and min
    bulk ESS 36 to 1.021 and 268 with it (the centring weights did it: the Newton steps alone
    gave 1.078 and 41), and at depth 7 reached 1.010 and 706; its multifate/Gompertz population
    got worse (R-hat 3.02, one chain stuck)."""
    if settings.large_cohort is not None:
        return bool(settings.large_cohort)
    centring = getattr(pm_model, "cartfit_centring", None)
    return centring is not None and len(pm_model.coords["subject"]) >= LARGE_COHORT


def both_forms_start(
    pm_model: pm.Model, info, logp_dlogp: Callable, x0: np.ndarray, n_starts: int, seed: int
) -> StartReport:
    """:func:`multistart` from ``x0`` with the subject effects written as the model writes them
    and again with every one non-centred; the optima of both are compared by their density in
    the non-centred form, and the best is returned in the model's weights (which stay set).

    The centred joint mode is degenerate (see the module docstring), so it cannot rank the
    optima; L-BFGS, on the other hand, reaches better optima in the model's form where the data
    pin the subjects down: on a simulated 20-subject cohort its best start had a non-centred
    log density of -148.9 against -234.7 from the non-centred starts, and sampling from the
    latter failed (max R-hat 1.44, against at most 1.01 from the former)."""
    weights = np.array(pm_model.cartfit_centring.weights.get_value(), float)
    own = multistart(logp_dlogp, x0, n_starts, seed)
    points = [reweight(pm_model, info, x, 0.0, old=weights) for x in own.points]
    densities = [logp_dlogp(x)[0] for x in points]  # now in the non-centred form
    densities = [d if np.isfinite(d) else -np.inf for d in densities]
    nc = multistart(logp_dlogp, reweight(pm_model, info, x0, 0.0, old=weights), n_starts, seed)
    ranked = sorted(zip(densities + nc.log_densities, points + nc.points, strict=True),
                    key=lambda r: -r[0])  # fmt: skip
    best = reweight(pm_model, info, ranked[0][1], weights, old=0.0)
    return StartReport([d for d, _ in ranked], best, own.n_unconverged + nc.n_unconverged)


#: L-BFGS starts of a one-subject fit and of a population fit (``FitSettings.n_starts=None``)
SUBJECT_STARTS, POPULATION_STARTS = 24, 6


def default_starts(pm_model: pm.Model, settings) -> int:
    """``settings.n_starts``, or by default :data:`SUBJECT_STARTS` for one subject and
    :data:`POPULATION_STARTS` for a population.

    One subject's posterior can have separate modes, e.g. data/example's S01: a tumour residual
    SD of 0.29 (optimum log density -13.3) or of 1.08 (-28.6). Over its 16 subjects and 10
    seeds each (starts at the prior median and around it, N(0, 1) on the unconstrained scale),
    6 starts missed the best of 96 in 15 of 160 cases (S03 in 5 of 10); 24 missed it in none,
    at about 0.3 s more per fit. A population's starts cost 2-26 s each at 16-20 subjects and
    do not converge at 200, so it keeps 6."""
    if settings.n_starts is not None:
        return settings.n_starts
    one_subject = len(pm_model.coords.get("subject", ())) == 1
    return SUBJECT_STARTS if one_subject else POPULATION_STARTS


def _posterior(pm_model: pm.Model, stored: Callable, x_draws: np.ndarray, sampled) -> xr.Dataset:
    """The stored quantities (:mod:`cartfit.inference.stored`) at the draws ``x_draws`` (chain,
    draw, coordinate), with the model's dims and coords."""
    n_chain, n_draw = x_draws.shape[:2]
    coords = {"chain": sampled["chain"].values, "draw": sampled["draw"].values}
    data = {}
    for name, value in stored(x_draws.reshape(n_chain * n_draw, -1)).items():
        shape = value.shape[1:]
        dims = pm_model.named_vars_to_dims.get(name)
        dims = dims or [f"{name}_dim_{i}" for i in range(len(shape))]
        coords |= {d: list(pm_model.coords[d]) for d in dims if pm_model.coords.get(d) is not None}
        data[name] = (("chain", "draw", *dims), value.reshape(n_chain, n_draw, *shape))
    return xr.Dataset(data, coords=coords)


def compile_sampler(pm_model: pm.Model, anchored: bool = True) -> tuple:
    """``(whitened, compiled, stored, logp_dlogp)``: the whitened model of ``pm_model``,
    nutpie's compiled model of it, the stored quantities' function and the log density with
    its gradient in the model's coordinates, checked against PyTensor's reference evaluation.

    Everything compiled here (nutpie's numba callbacks, the reference evaluation) is compiled,
    or loaded from the numba and PyTensor compile caches where a process compiled the same
    structure before (``anchored``: the chains will start at an optimum, so nutpie's initial
    points are not jittered)."""
    whitened = whitened_model(pm_model)
    compiled = compile_model(whitened.model, jitter_rvs=set() if anchored else None)
    identity = compiled.logp_func  # x̂ = 0, L = I: the original log density and gradient
    stored = stored_function(pm_model, whitened.point_map_info)

    def logp_dlogp(x):
        # a fresh C-contiguous writable copy: numba compiles (10-20 s) a second version of the
        # whole graph for any other array type, e.g. the read-only divergence positions
        logp, grad = identity(np.array(x, dtype=float, order="C"))
        return float(logp), np.asarray(grad, float)

    check_against_reference(pm_model, logp_dlogp, stored, whitened.x_init,
                            whitened.point_map_info)  # fmt: skip
    return whitened, compiled, stored, logp_dlogp


def sample_posterior(pm_model: pm.Model, settings, start_point: dict | None = None) -> Sampled:
    """Sample ``pm_model`` with nutpie under ``settings`` (a :class:`FitSettings`).

    The coordinates are whitened at ``start_point`` (a warm start), else at the best of
    :func:`default_starts` optima, and the chains start at corners of the unit cube there
    (:func:`corner_start`); with neither, they start at the prior median jittered by U(-1, 1),
    unwhitened.

    The mass matrix is nutpie's low-rank modified one unless ``settings.low_rank_mass_matrix``
    is off: on the one-subject benchmark cohort (4 x 1000/1000, whitened) it took 7.0 leapfrog
    steps per draw against 13.6 with the diagonal one (min bulk ESS 2082 against 1503). On a
    20-subject cohort with the large-cohort geometry both took 30.5 steps per draw and the
    diagonal one sampled in 48.5-67.4 s against 76.2-89.3 s; at 200 subjects a 4 x 300/300
    run with the diagonal one had not finished after 25 min, against 11.7 min with low-rank
    (that run also polished every start, not only the best)."""
    import nutpie

    t0 = time.perf_counter()
    n_starts = default_starts(pm_model, settings)
    anchored = start_point is not None or n_starts > 0
    whitened, compiled, stored, logp_dlogp = compile_sampler(pm_model, anchored)
    t1 = time.perf_counter()
    large = large_cohort_geometry(pm_model, settings)
    centring = getattr(pm_model, "cartfit_centring", None)
    info = whitened.point_map_info
    start = None
    loc = whitened.x_init
    if start_point is not None:
        loc = _raveled(pm_model, start_point, info)
    elif n_starts > 0:
        if centring is not None and not large:  # ends with the model's weights set again
            start = both_forms_start(pm_model, info, logp_dlogp, loc, n_starts, settings.seed)
        else:
            start = multistart(logp_dlogp, loc, n_starts, settings.seed)
        loc = start.x
    if anchored and large:
        loc, factors = whitened.newton(logp_dlogp, loc)
        if centring is not None:
            weights, loc = recentre(pm_model, info, whitened.subj_idx, factors.subject, loc)
            compiled = compiled.with_data(**{WEIGHTS: weights})
            loc, factors = whitened.newton(logp_dlogp, loc)
    elif anchored:
        factors = whitened.laplace(logp_dlogp, loc)
    else:
        factors = whitened.identity(loc)
    compiled = compiled.with_data(**factors.data())
    if anchored:

        def log_density(w):
            return logp_dlogp(whitened.x_of(w, factors))[0]

        starts = corner_start(log_density, whitened.n_dim, log_density(np.zeros(whitened.n_dim)))
        compiled = dataclasses.replace(compiled, initial_point_func=starts)
    t2 = time.perf_counter()
    # a terminal shows nutpie's progress bar; a log file gets a line every 30 s instead
    lines = settings.progress and not sys.stderr.isatty()
    tree = nutpie.sample(
        compiled,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        cores=settings.cores,
        seed=settings.seed,
        save_warmup=False,
        progress_bar=settings.progress,
        progress_callback=progress_lines() if lines else None,
        progress_rate=1000 if lines else 100,
        adaptation="low_rank" if settings.low_rank_mass_matrix else "diag",
        target_accept=settings.target_accept,
        maxdepth=settings.max_treedepth,
        # positions of divergent transitions, to say where they happen (see divergences.py)
        store_divergences=True,
    )
    t3 = time.perf_counter()
    x_draws = whitened.x_of(np.asarray(tree["posterior"]["w"].values, float), factors)
    posterior = _posterior(pm_model, stored, x_draws, tree["posterior"])
    posterior.attrs["sampling_time"] = t3 - t2
    posterior.attrs["tuning_steps"] = settings.tune
    posterior.attrs["mass_matrix"] = "low_rank" if settings.low_rank_mass_matrix else "diag"
    stats = _map_positions(tree["sample_stats"].to_dataset(), whitened, factors)
    out = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    seconds = {"compile": t1 - t0, "optimise": t2 - t1, "sample": t3 - t2}
    return Sampled(out, start, seconds, logp_dlogp, x_draws)
