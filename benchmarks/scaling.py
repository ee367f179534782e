"""Population fits of growing simulated cohorts with cartfit: wall time, peak memory, cost per
gradient per subject.

For each size N, ``cartfit simulate --subjects N`` (predator–prey, Gompertz) and then
``cartfit fit --population`` run as child processes pinned to ``--cores`` CPUs. Wall time is the
whole command; peak memory is the child's maximum resident set size (``os.wait4`` rusage);
sampling time is nutpie's ``sampling_time``. The cost of one log density + gradient is timed
on the compiled numba function at the last posterior draw (CPU time of the timing thread)
and divided by N. Convergence is
summarised over the population parameters (``mu``, ``omega_free``, covariate effects).

Usage::

    .venv/bin/python benchmarks/scaling.py --sizes 20,50,200 --chains 4 --tune 1000 --draws 1000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import arviz as az
import numpy as np
from problem import GROWTH, MODEL, OUT, cartfit_command, write_json
from routes import compiled_gradient, pick_cpus, time_gradient


def run_measured(cmd: list[str], cpus: set[int]) -> tuple[int, float, float, float, str]:
    """Run ``cmd`` pinned to ``cpus``: exit status, wall s, CPU s, peak RSS (MiB), output."""
    t0 = time.perf_counter()
    log = OUT / "scaling_child.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return proc.returncode, wall, cpu, usage.ru_maxrss / 1024, log.read_text()


def gradient_seconds(cohort: Path, fit: Path | None, n_evals: int) -> tuple[float, float]:
    """Seconds per compiled log density + gradient of the population model at the last draw of
    ``fit`` (or at the prior median if ``fit`` is None): wall clock and CPU time of this thread
    (not inflated by other processes on the CPU)."""
    import xarray as xr

    from cartfit.data import load_cohort
    from cartfit.inference import FitSettings, build_model, prepare
    from cartfit.inference.compiled import compile_model
    from cartfit.models import get_model

    ode = get_model(MODEL, GROWTH)
    s = FitSettings()
    pm_model = build_model(
        ode, prepare(load_cohort(cohort), ode), population=True, rtol=s.rtol, atol=s.atol
    )
    point = pm_model.initial_point()
    tree = xr.open_datatree(fit) if fit is not None else None
    post = tree["posterior"] if tree is not None else None
    if tree is not None and "centring" in tree["constant_data"]:  # eta's coordinates
        pm_model.cartfit_centring.weights.set_value(tree["constant_data"]["centring"].values)
    for rv in pm_model.free_RVs if post is not None else []:
        value = post[rv.name].isel(chain=0, draw=-1).values
        transform = pm_model.rvs_to_transforms.get(rv)
        if transform is not None:
            value = transform.forward(value, *rv.owner.inputs).eval()
        point[pm_model.rvs_to_values[rv].name] = value
    compiled = compile_model(pm_model)
    names, slices, _ = compiled.shape_info
    x = np.empty(compiled.n_dim)
    for name, sl in zip(names, slices, strict=False):
        if name in point:
            x[sl] = np.ravel(point[name])
    fn, shared = compiled_gradient(compiled)
    if not np.isfinite(fn(x, *shared)[0]):
        raise RuntimeError("log density not finite at the timing point")
    return time_gradient(fn, shared, x, n_evals)


def population_convergence(fit: Path) -> dict[str, float]:
    import xarray as xr

    tree = xr.open_datatree(fit)
    post = tree["posterior"].to_dataset()
    names = ["mu", "omega_free"] + [
        str(v) for v in post.data_vars if str(v).startswith("beta_") and str(v).endswith("_free")
    ]
    summ = az.summary(post[names], kind="diagnostics")
    ss = tree["sample_stats"]
    return {
        "pop_max_rhat": float(summ["r_hat"].max()),
        "pop_min_ess_bulk": float(summ["ess_bulk"].min()),
        "divergences": int(ss["diverging"].values.sum()),
        "mean_leapfrog_per_draw": float(ss["n_steps"].values.mean()),
        "sampling_s": float(tree["posterior"].attrs["sampling_time"]),
        "n_parameters": int(
            sum(
                np.prod(post[v].shape[2:])
                for v in post.data_vars
                if v in ("mu", "omega_free", "eta", "log_theta_centred", "z0", "sigma")
                or str(v).endswith("_free")
            )
        ),
    }


def simulate(n: int, seed: int) -> Path:
    """``cartfit simulate`` a cohort of ``n`` subjects into ``out/scaling_N``."""
    cohort = OUT / f"scaling_{n}"
    cmd = cartfit_command("simulate", model=MODEL, growth=GROWTH, subjects=n, seed=seed, out=cohort)
    subprocess.run(cmd, check=True, capture_output=True)
    return cohort


def gradient_only(n: int, a: argparse.Namespace) -> dict:
    """Cost per gradient at the prior median, without sampling."""
    wall, cpu = gradient_seconds(simulate(n, a.cohort_seed), None, a.n_grad)
    return {
        "subjects": n,
        "grad_us": cpu * 1e6,
        "grad_us_per_subject": cpu * 1e6 / n,
        "grad_wall_us": wall * 1e6,
    }


def run_size(n: int, a: argparse.Namespace, cpus: set[int]) -> dict:
    cohort, fit = simulate(n, a.cohort_seed), OUT / f"scaling_{n}.nc"
    cmd = cartfit_command(
        "fit",
        cohort,
        model=MODEL,
        growth=GROWTH,
        population=True,
        out=fit,
        chains=a.chains,
        tune=a.tune,
        draws=a.draws,
        seed=a.seed,
        cores=len(cpus),
    )
    rc, wall, cpu, rss, text = run_measured(cmd, cpus)
    row = {"subjects": n, "exit": rc, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss}
    if rc != 0 or not fit.exists():
        row["error"] = text[-2000:]
        return row
    row |= population_convergence(fit)
    wall, cpu = gradient_seconds(cohort, fit, a.n_grad)
    row |= {"grad_us": cpu * 1e6, "grad_us_per_subject": cpu * 1e6 / n, "grad_wall_us": wall * 1e6}
    return row


def render(rows: list[dict], a: argparse.Namespace, cpus: set[int]) -> str:
    head = (
        f"{'N':>4}{'wall s':>9}{'CPU s':>9}{'sampl. s':>9}{'peak MiB':>9}{'params':>7}"
        f"{'CPU us/grad':>12}{'/subject':>9}{'steps/draw':>11}{'max R-hat':>10}"
        f"{'min ESS':>8}{'diverg.':>8}"
    )
    lines = [
        f"Population scaling: predator-prey with Gompertz growth, {a.chains} chains x "
        f"{a.tune}/{a.draws}, CPUs {sorted(cpus)} (R-hat and ESS over mu, omega, covariate "
        "effects)",
        head,
        "-" * len(head),
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['subjects']:>4} failed (exit {r['exit']}): {r['error'][-300:]}")
            continue
        lines.append(
            f"{r['subjects']:>4}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}{r['sampling_s']:>9.1f}"
            f"{r['peak_rss_mib']:>9.0f}{r['n_parameters']:>7d}{r['grad_us']:>12.0f}"
            f"{r['grad_us_per_subject']:>9.1f}{r['mean_leapfrog_per_draw']:>11.1f}"
            f"{r['pop_max_rhat']:>10.3f}{r['pop_min_ess_bulk']:>8.0f}{r['divergences']:>8d}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20,50,200", help="comma-separated cohort sizes")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--cohort-seed", type=int, default=11)
    p.add_argument("--n-grad", type=int, default=2000, help="evaluations timed per size")
    p.add_argument("--gradient-only", action="store_true", help="no sampling: cost per gradient")
    a = p.parse_args(argv)
    cpus = pick_cpus(a.cores)
    os.sched_setaffinity(0, cpus)
    if a.gradient_only:
        for n in (int(s) for s in a.sizes.split(",")):
            r = gradient_only(n, a)
            print(
                f"{n:>4} subjects: {r['grad_us']:.0f} us CPU per gradient at the prior median, "
                f"{r['grad_us_per_subject']:.1f} us per subject",
                flush=True,
            )
        return 0
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        print(f"{n} subjects ...", flush=True)
        rows.append(run_size(n, a, cpus))
        text = render(rows, a, cpus)
        (OUT / f"scaling_{a.chains}x{a.draws}.txt").write_text(text + "\n")
        write_json(OUT / f"scaling_{a.chains}x{a.draws}.json", {"settings": vars(a), "rows": rows})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
