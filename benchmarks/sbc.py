r"""Simulation-based calibration (Talts et al. 2018) of the one-subject predator–prey fit.

For simulation :math:`i` (own seed): draw every free quantity from the prior the model builder
declares — :math:`\ln\theta = \ln m + \tau z`, :math:`z \sim \mathcal N(0, I)`; initial log
states from :func:`cartfit.inference.priors.initial_state_prior`; residual SDs
:math:`\ln\sigma_a \sim \mathcal N(\ln 0.3, 0.6)` (``SIGMA_MEDIAN``, ``SIGMA_LOG_SD``) —
compute the noise-free :math:`\ln(y/s)` at the template subject's visit times
(:func:`cartfit.inference.predict.observation_means`, tight tolerances), add
:math:`\mathcal N(0, \sigma_a)` noise and censor every value below its LLOQ (reported as BLQ,
the M3 likelihood's generative process). The template (visit times, analyte scales, dose,
baseline) is one ``cartfit simulate`` subject and stays fixed, so the prior does not depend on
the simulated data. Each data set is fitted by cartfit's own builder and sampler (nutpie,
short chains, started by the multi-start optimisation as ``cartfit fit`` does); the rank of
the true value among thinned posterior draws is recorded. If the fits are calibrated the
ranks are uniform; a chi-square test on ``--bins`` bins gives a p-value per quantity.

Writes ``benchmarks/out/sbc_ranks.csv`` (one row per simulation and quantity) and
``benchmarks/out/sbc_summary.txt``.

``--workers N`` fits N simulations side by side, each in its own process on its own CPU; a
simulation's numbers depend only on ``--seed`` and its index, not on the worker that ran it.

Usage::

    .venv/bin/python benchmarks/sbc.py --n-sims 30 --chains 2 --tune 200 --draws 200
    .venv/bin/python benchmarks/sbc.py --n-sims 200 --workers 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import arviz as az
import numpy as np
import pandas as pd
from problem import GROWTH, MODEL, OUT, QUANTITIES, simulate_subject_cohort
from routes import pick_cpus
from scipy import stats

MAX_REDRAWS = 20


def draw_truth(template, ode, rng: np.random.Generator) -> tuple[dict, int]:
    """Prior draw of (theta, log_y0, sigma) whose ODE solve succeeds, and the redraws needed."""
    from cartfit.inference import priors as P
    from cartfit.inference.predict import observation_means

    log_m = np.log([p.median for p in ode.parameters])
    tau = np.array([p.log_sd for p in ode.parameters])
    mean, sd = P.initial_state_prior(ode, template)
    obs = template.obs
    for redraw in range(MAX_REDRAWS):
        theta = np.exp(log_m + tau * rng.standard_normal(ode.n_params))
        log_y0 = mean[0] + sd[0] * rng.standard_normal(ode.n_states)
        n_a = len(template.analytes)
        sigma = np.exp(np.log(P.SIGMA_MEDIAN) + P.SIGMA_LOG_SD * rng.standard_normal(n_a))
        mu = observation_means(
            ode,
            theta[None, None],
            log_y0[None, None],
            obs["subject_idx"].to_numpy(),
            obs["time"].to_numpy(float),
            obs["analyte"].to_numpy(),
            1e-8,
            1e-8,
        )[0]
        if np.all(np.isfinite(mu)):
            return {"theta": theta, "log_y0": log_y0, "sigma": sigma, "mu": mu}, redraw
    raise RuntimeError(f"no solvable prior draw in {MAX_REDRAWS} tries")


def simulate_data(template, truth: dict, rng: np.random.Generator):
    """The template's FitData with simulated, censored log values."""
    obs = template.obs.copy()
    sigma = truth["sigma"][obs["analyte_idx"].to_numpy()]
    y = truth["mu"] + sigma * rng.standard_normal(len(obs))
    blq = y < obs["log_lloq"].to_numpy()
    obs["blq"] = blq
    obs["log_value"] = np.where(blq, obs["log_lloq"].to_numpy(), y)
    return dataclasses.replace(template, obs=obs)


def truth_vector(truth: dict) -> dict[str, float]:
    vals = [*truth["theta"], *truth["log_y0"], *truth["sigma"]]
    return dict(zip(QUANTITIES, map(float, vals), strict=True))


def posterior_matrix(idata) -> dict[str, np.ndarray]:
    post = idata["posterior"]
    theta, log_y0 = post["theta"].values[:, :, 0, :], post["log_y0"].values[:, :, 0, :]
    sigma = post["sigma"].values
    cols = [theta[..., i] for i in range(5)] + [log_y0[..., 0], log_y0[..., 1]]
    cols += [sigma[..., 0], sigma[..., 1]]
    return dict(zip(QUANTITIES, cols, strict=True))


def one_simulation(i: int, a: argparse.Namespace, template, ode) -> list[dict]:
    from cartfit.inference import FitSettings, build_model
    from cartfit.inference.sampling import sample_posterior

    rng = np.random.default_rng([a.seed, i])
    truth, redraws = draw_truth(template, ode, rng)
    data = simulate_data(template, truth, rng)
    s = FitSettings(
        chains=a.chains, tune=a.tune, draws=a.draws, seed=a.seed + i, cores=1, progress=False
    )
    t0 = time.perf_counter()
    pm_model = build_model(ode, data, rtol=s.rtol, atol=s.atol)
    idata = sample_posterior(pm_model, s).idata
    seconds = time.perf_counter() - t0
    draws = posterior_matrix(idata)
    n_div = int(idata["sample_stats"]["diverging"].values.sum())
    rows = []
    for q, true in truth_vector(truth).items():
        chains = draws[q]
        thinned = chains.reshape(-1)[:: a.thin]
        rows.append(
            {
                "sim": i,
                "quantity": q,
                "truth": true,
                "rank": int(np.sum(thinned < true)),
                "n_draws": len(thinned),
                "ess_bulk": float(az.ess(chains)),
                "r_hat": float(az.rhat(chains)),
                "divergences": n_div,
                "n_blq": int(data.obs["blq"].sum()),
                "redraws": redraws,
                "seconds": seconds,
            }
        )
    return rows


_WORKER: dict = {}


def _init_worker(cohort, free_cpus) -> None:
    """Pin this worker process to a CPU no other worker has and prepare the template once."""
    from cartfit.data import load_cohort
    from cartfit.inference import prepare
    from cartfit.models import get_model

    os.sched_setaffinity(0, {free_cpus.get()})
    ode = get_model(MODEL, GROWTH)
    _WORKER.update(ode=ode, template=prepare(load_cohort(cohort), ode, ["S01"]))


def _run_simulation(i: int, a: argparse.Namespace) -> list[dict]:
    return one_simulation(i, a, _WORKER["template"], _WORKER["ode"])


def summarize(ranks: pd.DataFrame, bins: int) -> pd.DataFrame:
    """Chi-square test of uniform ranks per quantity on ``bins`` equal bins of rank/(L+1)."""
    out = []
    for q in QUANTITIES:
        r = ranks[ranks["quantity"] == q]
        u = r["rank"].to_numpy() / (r["n_draws"].to_numpy() + 1)
        counts = np.bincount(np.minimum((u * bins).astype(int), bins - 1), minlength=bins)
        chi2, p = stats.chisquare(counts)
        out.append(
            {
                "quantity": q,
                "n_sims": len(r),
                "chi2": chi2,
                "p_value": p,
                "mean_rank_fraction": float(u.mean()),
                "counts": " ".join(map(str, counts)),
                "median_ess_bulk": float(r["ess_bulk"].median()),
                "max_r_hat": float(r["r_hat"].max()),
            }
        )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-sims", type=int, default=30)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--tune", type=int, default=200)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--thin", type=int, default=4, help="keep every k-th posterior draw")
    p.add_argument("--bins", type=int, default=5)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--cohort-seed", type=int, default=3)
    p.add_argument("--workers", type=int, default=1, help="simulations fitted side by side")
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error("--workers must be at least 1")
    cpus = sorted(pick_cpus(a.workers))
    if len(cpus) < a.workers:
        p.error(f"--workers {a.workers}: this process may run on {len(cpus)} CPU(s) only")
    from cartfit.data import load_cohort
    from cartfit.inference import prepare
    from cartfit.models import get_model

    cohort = simulate_subject_cohort(OUT / "sbc_template", a.cohort_seed)
    template = prepare(load_cohort(cohort), get_model(MODEL, GROWTH), ["S01"])
    ctx = get_context("spawn")
    free_cpus = ctx.Queue()
    for cpu in cpus:
        free_cpus.put(cpu)
    rows = []
    with ProcessPoolExecutor(a.workers, ctx, _init_worker, (cohort, free_cpus)) as pool:
        futures = [pool.submit(_run_simulation, i, a) for i in range(a.n_sims)]
        for done, fut in enumerate(as_completed(futures), start=1):
            rows += fut.result()
            ranks = pd.DataFrame(rows).sort_values(["sim", "quantity"], kind="stable")
            ranks.to_csv(OUT / "sbc_ranks.csv", index=False)
            print(f"simulation {done}/{a.n_sims}: {rows[-1]['seconds']:.1f} s", flush=True)
    summary = summarize(ranks, a.bins)
    per_sim = ranks.groupby("sim").agg(div=("divergences", "first"), rhat=("r_hat", "max"))
    text = "\n".join(
        [
            f"SBC, predator-prey with Gompertz growth, one subject ({len(template.obs)} rows"
            f" at the visits of cartfit simulate --seed {a.cohort_seed}): {a.n_sims} simulations, "
            f"{a.chains} chains x {a.tune}/{a.draws}, ranks among every {a.thin}th draw "
            f"({ranks['n_draws'].iloc[0]} draws), chi-square on {a.bins} bins",
            summary.to_string(index=False, float_format=lambda x: f"{x:.3g}"),
            f"fits with divergences: {int((per_sim['div'] > 0).sum())}/{a.n_sims}; "
            f"fits with max R-hat > 1.01: {int((per_sim['rhat'] > 1.01).sum())}/{a.n_sims}; "
            f"prior redraws (unsolvable ODE): {int(ranks.groupby('sim')['redraws'].first().sum())}",
        ]
    )
    (OUT / "sbc_summary.txt").write_text(text + "\n")
    summary.to_csv(OUT / "sbc_summary.csv", index=False)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
