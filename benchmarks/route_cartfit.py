"""The cartfit route: the real ``cartfit fit`` command, and the compiled log density + gradient.

The command runs as a child process pinned to the benchmark's CPUs, so its wall time is the
whole command a user waits for (imports, model build, numba compilation, sampling, posterior
predictive draws, pointwise log-likelihood and the NetCDF file). The sampling-only time is
the ``sampling_time`` nutpie stamps on the posterior; compilation is the rest of the
phases the command reports before ``predictive+write``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
from problem import GROWTH, MODEL, OUT, Problem, cartfit_command
from routes import RouteResult, compiled_gradient, draws_from, run_timed, time_gradient

TIMINGS = re.compile(r"^wrote .* \((.*)\)$", re.MULTILINE)
PHASE = re.compile(r"([\w+ -]+?) ([\d.]+) s")


def run_cartfit(
    prob: Problem,
    chains: int,
    tune: int,
    draws: int,
    seed: int,
    cpus: set[int],
    out: Path,
    cold: bool = False,
) -> RouteResult:
    """Fit with ``cartfit fit`` and read the draws and timings back from its file.

    ``cold`` points numba's and PyTensor's caches at an empty folder, so everything is compiled
    as on a user's first run; otherwise the caches of earlier runs are used.
    """
    import xarray as xr

    env = None
    if cold:
        cache = OUT / "cold_cache"
        shutil.rmtree(cache, ignore_errors=True)
        env = os.environ | {
            "NUMBA_CACHE_DIR": str(cache / "numba"),
            "PYTENSOR_FLAGS": f"base_compiledir={cache / 'pytensor'}",
        }

    cmd = cartfit_command(
        "fit",
        prob.cohort,
        model=MODEL,
        growth=GROWTH,
        subject=prob.subject,
        out=out,
        chains=chains,
        tune=tune,
        draws=draws,
        seed=seed,
        cores=len(cpus),
    )
    proc, wall, cpu = run_timed(cmd, cpus, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"cartfit fit failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    m = TIMINGS.search(proc.stdout)
    if m is None:
        raise RuntimeError(f"cannot read the timings of cartfit fit from:\n{proc.stdout[-2000:]}")
    phases = {k.strip(): float(v) for k, v in PHASE.findall(m.group(1))}
    before_sampling = sum(v for k, v in phases.items() if not k.startswith("predictive"))
    tree = xr.open_datatree(out)
    post = tree["posterior"]
    sampling_s = float(post.attrs["sampling_time"])
    settings = tree.attrs.get("settings", "")
    result = RouteResult(
        name="cartfit, cold cache" if cold else "cartfit (nutpie)",
        compile_s=before_sampling - sampling_s,
        sampling_s=sampling_s,
        draws=draws_from(
            post["theta"].values[:, :, 0, :],
            post["log_y0"].values[:, :, 0, :],
            post["sigma"].values,
        ),
        divergences=int(tree["sample_stats"]["diverging"].values.sum()),
        whole_s=wall,
        settings=settings,
    )
    result.notes.append(f"whole command: {wall:.1f} s wall, {cpu:.1f} s CPU; phases {phases}")
    return result


def unconstrained_point(prob: Problem, res: RouteResult) -> np.ndarray:
    """Posterior-median point in the shared unconstrained space (z, z0, log sigma)."""
    med = {q: float(np.median(v)) for q, v in res.draws.items()}
    theta = np.array([med[n] for n in prob.parameter_names])
    z = (np.log(theta) - prob.log_m) / prob.tau
    z0 = (np.array([med["log_tumor0"], med["log_car_t0"]]) - prob.y0_mean) / prob.y0_sd
    log_sigma = np.log([med["sigma_car_t"], med["sigma_tumor"]])
    return np.concatenate([z, z0, log_sigma])


def cartfit_gradient(prob: Problem, point: np.ndarray, n_evals: int = 20_000) -> dict:
    """Seconds per compiled log density + gradient, and their values at ``point``.

    The function is the one nutpie samples with (PyTensor's numba build of the model's
    ``logp_dlogp``). ``loop_s`` times it in a numba loop (no Python between calls; wall clock,
    and ``loop_cpu_s`` in CPU time of this thread, which other processes on a shared CPU do not
    inflate), ``call_s`` from Python (adds the call overhead).
    """
    from cartfit.data import load_cohort
    from cartfit.inference import FitSettings, build_model, prepare
    from cartfit.inference.compiled import compile_model
    from cartfit.models import get_model

    ode = get_model(MODEL, GROWTH)
    data = prepare(load_cohort(prob.cohort), ode, [prob.subject])
    s = FitSettings()
    pm_model = build_model(ode, data, rtol=s.rtol, atol=s.atol)
    compiled = compile_model(pm_model)
    names, slices, _ = compiled.shape_info
    if list(names[:3]) != ["z", "z0", "sigma_log__"] or compiled.n_dim != 9:
        raise RuntimeError(f"unexpected unconstrained layout {names[:3]} ({compiled.n_dim})")
    start = pm_model.initial_point()
    centre = np.concatenate([np.ravel(start[n]) for n in ("z", "z0", "sigma_log__")])
    fn, shared = compiled_gradient(compiled)
    x = np.ascontiguousarray(point, dtype=float)
    logp, grad = fn(x, *shared)
    loop_s, loop_cpu_s = time_gradient(fn, shared, x, n_evals)
    t0 = time.perf_counter()
    for _ in range(n_evals // 4):
        fn(x, *shared)
    call_s = (time.perf_counter() - t0) / (n_evals // 4)
    return {
        "logp": float(logp),
        "grad": np.asarray(grad, float).tolist(),
        "loop_s": loop_s,
        "loop_cpu_s": loop_cpu_s,
        "call_s": call_s,
        "rtol": s.rtol,
        "atol": s.atol,
        "initial_point": centre.tolist(),
    }
