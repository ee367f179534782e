"""The ``pm.ode`` route: PyMC's built-in ``DifferentialEquation`` on the same model and priors.

The same log-state ODE, non-centred log-normal parameter priors, initial-state priors,
log-normal residual SDs and censored (M3) likelihood as cartfit's builder, with the ODE solved
by ``pm.ode.DifferentialEquation`` (SciPy ``odeint`` of the states and forward sensitivities,
right-hand side and Jacobians evaluated by PyTensor from Python). Its gradient costs about 0.1 s,
so it gets a reduced run (PyMC's NUTS, one chain, short warm-up, wall-clock cap) and its
ESS/s is also extrapolated; both are labelled as such in the output.
"""

from __future__ import annotations

import time

import numpy as np
from problem import Problem
from routes import RouteResult, draws_from


def build_pmode_model(prob: Problem):
    """The PyMC model with ``pm.ode.DifferentialEquation`` (value variables z, z0, sigma)."""
    import pymc as pm
    import pytensor.tensor as pt
    from pymc.ode import DifferentialEquation

    def log_rhs(y, t, p):
        # du/dt = r (ln K - u) - k e^v ;  dv/dt = p e^u - d
        r, cap, k, prolif, d = p[0], p[1], p[2], p[3], p[4]
        return [r * (pt.log(cap) - y[0]) - k * pt.exp(y[1]), prolif * pt.exp(y[0]) - d]

    ode = DifferentialEquation(func=log_rhs, times=prob.ts, n_states=2, n_theta=5, t0=0)
    with pm.Model() as model:
        z = pm.Normal("z", 0.0, 1.0, shape=5)
        z0 = pm.Normal("z0", 0.0, 1.0, shape=2)
        sigma = pm.LogNormal("sigma", np.log(prob.sigma_median), prob.sigma_log_sd, shape=2)
        theta = pm.Deterministic("theta", pt.exp(prob.log_m + prob.tau * z))
        log_y0 = pm.Deterministic("log_y0", prob.y0_mean + prob.y0_sd * z0)
        ys = ode(y0=log_y0, theta=theta)  # (n_t, 2)
        grid = pt.concatenate([log_y0[None, :], ys], axis=0)  # row 0 = day 0
        post = grid[np.maximum(prob.t_idx + 1, 0), prob.state]
        log_k = pt.log(theta[1])
        pre = log_k + (log_y0[0] - log_k) * pt.exp(-theta[0] * prob.time)  # Gompertz closed form
        mu = pt.switch(prob.pre, pre, post)
        lower = np.where(prob.blq, prob.log_value, -np.inf)
        pm.Censored(
            "y",
            pm.Normal.dist(mu, sigma[prob.analyte]),
            lower=lower,
            upper=None,
            observed=prob.log_value,
        )
    return model


def pmode_gradient(model, point: np.ndarray, n_evals: int = 10) -> dict:
    """Seconds per log density + gradient of the ``pm.ode`` model, and their values."""
    import pytensor

    fn = pytensor.function(model.value_vars, [model.logp(), model.dlogp()])
    args = [point[:5], point[5:7], point[7:9]]
    logp, grad = fn(*args)
    t0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(n_evals):
        fn(*args)
    return {
        "logp": float(logp),
        "grad": np.asarray(grad).tolist(),
        "grad_s": (time.perf_counter() - t0) / n_evals,
        "grad_cpu_s": (time.thread_time() - c0) / n_evals,
    }


def run_pmode(prob: Problem, tune: int, draws: int, seed: int, cap_s: float) -> RouteResult:
    """One chain of PyMC's NUTS, stopped at ``cap_s`` seconds of sampling if not done."""
    import pymc as pm

    t0 = time.perf_counter()
    model = build_pmode_model(prob)
    state = {"start": None, "stopped": False}

    def cap(trace, draw):
        if state["start"] is None:
            state["start"] = time.perf_counter()
        if time.perf_counter() - state["start"] > cap_s:
            state["stopped"] = True
            raise KeyboardInterrupt

    with model:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=1,
            cores=1,
            random_seed=seed,
            nuts_sampler="pymc",
            discard_tuned_samples=False,
            progressbar=False,
            compute_convergence_checks=False,
            callback=cap,
        )
    total = time.perf_counter() - t0
    post = idata["posterior"]
    sampling_s = float(post.attrs.get("sampling_time", total))
    steps = int(idata["sample_stats"]["n_steps"].values.sum())
    if "warmup_sample_stats" in idata.children:
        steps += int(idata["warmup_sample_stats"]["n_steps"].values.sum())
    n_post = int(post.sizes["draw"])
    result = RouteResult(
        name="PyMC pm.ode",
        compile_s=total - sampling_s,
        sampling_s=sampling_s,
        draws=draws_from(post["theta"].values, post["log_y0"].values, post["sigma"].values),
        divergences=int(idata["sample_stats"]["diverging"].values.sum()),
        n_gradients=steps,
        settings=f"1 chain, {tune} warm-up + {draws} draws requested, cap {cap_s:.0f} s",
    )
    result.notes.append(
        f"reduced run: 1 chain x {tune}/{draws}; got {n_post} post-warm-up draws"
        + (" (stopped at the time cap)" if state["stopped"] else "")
    )
    return result
