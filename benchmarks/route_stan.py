"""The Stan route: pystan 3 in its own environment (``benchmarks/.stan-env``), run as a child.

Set the environment up once with::

    python3.12 -m venv benchmarks/.stan-env
    benchmarks/.stan-env/bin/pip install pystan

The Stan program ``predator_prey_gompertz.stan`` is written from the model's equations with
cartfit's priors; data go to the child as JSON and the draws come back as JSON.
"""

from __future__ import annotations

import json

import numpy as np
from problem import HERE, OUT, Problem, write_json
from routes import RouteResult, draws_from, run_timed

STAN_PYTHON = HERE / ".stan-env" / "bin" / "python"
PROGRAM = HERE / "predator_prey_gompertz.stan"
RTOL = ATOL = 1e-6


def stan_unavailable() -> str | None:
    """Why the Stan route cannot run here, or ``None``."""
    if not STAN_PYTHON.exists():
        return f"no pystan environment at {STAN_PYTHON.parent.parent} (see route_stan.py)"
    return None


def run_stan(
    prob: Problem,
    chains: int,
    warmup: int,
    draws: int,
    seed: int,
    cpus: set[int],
    point: np.ndarray | None,
    fresh: bool = True,
    centre: np.ndarray | None = None,
) -> tuple[RouteResult, dict]:
    """Sample with Stan's NUTS (diagonal mass matrix, ``ode_rk45_tol``); time a gradient.

    ``fresh`` removes the compiled model from httpstan's cache first, so the compile time is
    that of a first run. ``centre`` (unconstrained z, z0, log sigma) starts each chain where
    nutpie starts: there, jittered by U(-1, 1) on the unconstrained scale (Stan's default is
    U(-2, 2) around 0)."""
    rng = np.random.default_rng(seed)
    init = []
    if centre is not None:
        for u in np.asarray(centre) + rng.uniform(-1.0, 1.0, (chains, 9)):
            init.append(
                {"z": u[:5].tolist(), "z0": u[5:7].tolist(), "sigma": np.exp(u[7:]).tolist()}
            )
    req = {
        "program": str(PROGRAM),
        "data": prob.stan_data(RTOL, ATOL),
        "seed": seed,
        "cpus": sorted(cpus),
        "chains": chains,
        "warmup": warmup,
        "draws": draws,
        "point": None if point is None else np.asarray(point).tolist(),
        "n_grad": 200,
        "fresh": fresh,
        "init": init,
    }
    req_path, res_path = OUT / "stan_request.json", OUT / "stan_result.json"
    write_json(req_path, req)
    res_path.unlink(missing_ok=True)
    proc, wall, _ = run_timed(
        [str(STAN_PYTHON), str(HERE / "stan_run.py"), str(req_path), str(res_path)], cpus
    )
    if proc.returncode != 0 or not res_path.exists():
        raise RuntimeError(f"Stan route failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(res_path.read_text())
    d = {k: np.asarray(v, float) for k, v in out["draws"].items()}
    result = RouteResult(
        name="Stan (pystan 3)",
        compile_s=out["compile_s"],
        sampling_s=out["sampling_s"],
        sampling_cpu_s=out["sampling_cpu_s"],
        draws=draws_from(d["theta"], d["log_y0"], d["sigma"]),
        divergences=out["divergent"],
        n_gradients=out["n_leapfrog_total"],
        whole_s=wall,
        settings=f"ode_rk45_tol rtol {RTOL:g} atol {ATOL:g}, pystan {out['stan_version']}",
    )
    if "extension_log_prob_grad_s" in out:
        result.grad_s = out["extension_log_prob_grad_s"]
    per_grad = out["sampling_cpu_s"] / max(out["n_leapfrog_total"], 1)
    out["sampling_cpu_per_gradient_s"] = per_grad
    result.notes.append(
        "compiled from scratch (cache entry removed)"
        if fresh
        else "compile time with httpstan's cache (load only if cached)"
    )
    return result, out
