"""One subject, predator–prey with Gompertz growth: cartfit vs Stan vs ``pm.ode``, side by side.

All three routes fit the same simulated subject (``cartfit simulate --seed 3``, one subject)
with the same model, priors and censored likelihood, pinned to the same CPUs (``--cores``,
default 1), in one run:

* cartfit — the real ``cartfit fit`` command (nutpie, compiled adaptive Dormand–Prince 5(4)
  with forward sensitivities); sampling-only time from nutpie's ``sampling_time``;
* Stan — pystan 3 in ``benchmarks/.stan-env`` with ``ode_rk45_tol`` (rtol = atol = 1e-6);
* PyMC ``pm.ode.DifferentialEquation`` — a reduced run (one chain, short warm-up, time cap);
  its ESS/s is also extrapolated from its cost per gradient (labelled as such).

The log density and gradient of the three implementations are checked to agree at one point
before anything is timed there. Results go to ``benchmarks/out/inference.{txt,json}``.

Usage::

    .venv/bin/python benchmarks/inference.py            # 4 chains x 1000/1000
    .venv/bin/python benchmarks/inference.py --quick    # 2 chains x 300/300, short pm.ode run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import asdict

import numpy as np
from problem import OUT, load_problem, simulate_subject_cohort, write_json
from report import render
from route_cartfit import cartfit_gradient, run_cartfit, unconstrained_point
from route_pmode import build_pmode_model, pmode_gradient, run_pmode
from route_stan import run_stan, stan_unavailable
from routes import pick_cpus
from summary import convergence


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 chains x 300/300; pm.ode 1 x 30/30")
    p.add_argument("--chains", type=int)
    p.add_argument("--tune", type=int)
    p.add_argument("--draws", type=int)
    p.add_argument("--pmode-tune", type=int)
    p.add_argument("--pmode-draws", type=int)
    p.add_argument("--pmode-cap", type=float, help="seconds of pm.ode sampling at most")
    p.add_argument("--cores", type=int, default=1, help="CPUs every route is pinned to")
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--cohort-seed", type=int, default=3)
    p.add_argument("--skip-stan", action="store_true")
    p.add_argument("--skip-pmode", action="store_true")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-cache cartfit run")
    p.add_argument("--stan-cached", action="store_true", help="reuse httpstan's compiled model")
    a = p.parse_args(argv)
    quick = {
        "chains": 2,
        "tune": 300,
        "draws": 300,
        "pmode_tune": 30,
        "pmode_draws": 30,
        "pmode_cap": 300.0,
    }
    full = {
        "chains": 4,
        "tune": 1000,
        "draws": 1000,
        "pmode_tune": 100,
        "pmode_draws": 100,
        "pmode_cap": 1200.0,
    }
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    cpus = pick_cpus(a.cores)
    os.sched_setaffinity(0, cpus)
    cohort = simulate_subject_cohort(OUT / "inference_cohort", a.cohort_seed)
    prob = load_problem(cohort)
    results: list = []
    extra = {
        "settings": vars(a),
        "cpus": sorted(cpus),
        "host": platform.node(),
        "load_avg_start": os.getloadavg(),
        "python": sys.version.split()[0],
    }
    print(
        f"cartfit fit: {a.chains} chains x {a.tune}/{a.draws} on CPUs {sorted(cpus)} ...",
        flush=True,
    )
    cold = None
    if not a.no_cold:
        cold = run_cartfit(
            prob, a.chains, a.tune, a.draws, a.seed, cpus, OUT / "inference_fit_cold.nc", cold=True
        )
    res_c = run_cartfit(prob, a.chains, a.tune, a.draws, a.seed, cpus, OUT / "inference_fit.nc")
    results.append(res_c)
    if cold is not None:
        same = all(np.array_equal(cold.draws[q], res_c.draws[q]) for q in res_c.draws)
        cold.notes.append(
            "same seed, same draws as the warm-cache run"
            if same
            else "same seed but different draws from the warm-cache run (freshly compiled and "
            "cached numba code differ in the last bits, and the chains diverge from there)"
        )
    point = unconstrained_point(prob, res_c)
    extra["point"] = point.tolist()
    extra["cartfit_gradient"] = cartfit_gradient(prob, point)
    res_c.grad_s = extra["cartfit_gradient"]["loop_cpu_s"]

    why = "skipped (--skip-stan)" if a.skip_stan else stan_unavailable()
    if why is None:
        print("Stan (pystan) ...", flush=True)
        try:
            res_s, extra["stan"] = run_stan(
                prob,
                a.chains,
                a.tune,
                a.draws,
                a.seed,
                cpus,
                point,
                fresh=not a.stan_cached,
                centre=np.asarray(extra["cartfit_gradient"]["initial_point"]),
            )
            extra["stan"].pop("draws")
            results.append(res_s)
        except RuntimeError as err:
            why = f"failed: {err}"
    extra["stan_unavailable"] = why

    if not a.skip_pmode:
        print(
            f"pm.ode: 1 chain x {a.pmode_tune}/{a.pmode_draws}, cap {a.pmode_cap:.0f} s ...",
            flush=True,
        )
        extra["pmode_gradient"] = pmode_gradient(build_pmode_model(prob), point)
        res_p = run_pmode(prob, a.pmode_tune, a.pmode_draws, a.seed, a.pmode_cap)
        res_p.grad_s = extra["pmode_gradient"]["grad_cpu_s"]
        results.append(res_p)

    extra["load_avg_end"] = os.getloadavg()
    conv = {r.name: convergence(r) for r in results + ([cold] if cold else [])}
    text = render(results, conv, extra, cold)
    print(text)
    (OUT / "inference.txt").write_text(text + "\n")
    write_json(
        OUT / "inference.json",
        {
            "routes": [
                {k: v for k, v in asdict(r).items() if k != "draws"}
                | {
                    "convergence": conv[r.name],
                    "posterior_mean": {q: float(np.mean(d)) for q, d in r.draws.items()},
                }
                for r in results + ([cold] if cold else [])
            ],
            **extra,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
