"""Convergence summaries and the side-by-side comparison table of the inference benchmark."""

from __future__ import annotations

import arviz as az
import numpy as np
from problem import QUANTITIES
from routes import RouteResult

#: positive quantities compared on the log scale (the scale the samplers see)
LOG_SCALE = {
    "growth_rate",
    "carrying_capacity",
    "kill_rate",
    "proliferation_rate",
    "death_rate",
    "sigma_car_t",
    "sigma_tumor",
}


def on_sampler_scale(res: RouteResult) -> dict[str, np.ndarray]:
    return {q: np.log(v) if q in LOG_SCALE else v for q, v in res.draws.items()}


def convergence(res: RouteResult) -> dict[str, float]:
    """Min bulk ESS and max R-hat over QUANTITIES, ESS per second of sampling."""
    ess = {q: float(az.ess(v)) for q, v in res.draws.items()}
    rhat = {q: float(az.rhat(v)) for q, v in res.draws.items()}
    min_ess = min(ess.values())
    out = {
        "min_ess_bulk": min_ess,
        "worst_ess": min(ess, key=ess.get),
        "max_rhat": max(rhat.values()),
        "ess_per_s": min_ess / res.sampling_s,
        "n_chains": int(next(iter(res.draws.values())).shape[0]),
        "n_draws": int(next(iter(res.draws.values())).shape[1]),
    }
    if res.sampling_cpu_s:
        out["ess_per_cpu_s"] = min_ess / res.sampling_cpu_s
    if res.whole_s:
        out["ess_per_whole_s"] = min_ess / res.whole_s
    return out


def agreement(a: RouteResult, b: RouteResult) -> dict[str, float | str]:
    """max over QUANTITIES of |mean_a - mean_b| / posterior SD (SD of ``a``), with the MCSE of
    the difference in the same units for scale (log scale for positive quantities)."""
    da, db = on_sampler_scale(a), on_sampler_scale(b)
    worst, worst_q, noise = -1.0, "", 0.0
    for q in QUANTITIES:
        sd = float(np.std(da[q]))
        diff = abs(float(np.mean(da[q]) - np.mean(db[q]))) / sd
        if diff > worst:
            mcse = np.hypot(float(az.mcse(da[q])), float(az.mcse(db[q]))) / sd
            worst, worst_q, noise = diff, q, float(mcse)
    return {"max_abs_dmean_over_sd": worst, "quantity": worst_q, "mcse_of_difference": noise}


def table(results: list[RouteResult], conv: dict[str, dict]) -> str:
    """One row per route: compile s, sampling s, min bulk ESS, ESS/s, divergences, max R-hat."""
    head = (
        f"{'route':<20}{'compile s':>10}{'sampling s':>11}{'chains x draws':>15}"
        f"{'min ESS':>9}{'ESS/s':>10}{'diverg.':>8}{'max R-hat':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        c = conv[r.name]
        lines.append(
            f"{r.name:<20}{r.compile_s:>10.1f}{r.sampling_s:>11.1f}"
            f"{c['n_chains']:>6d} x {c['n_draws']:<6d}{c['min_ess_bulk']:>9.0f}"
            f"{c['ess_per_s']:>10.3g}{r.divergences:>8d}{c['max_rhat']:>10.3f}"
        )
    return "\n".join(lines)


def ratio(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None or y == 0 else x / y


def fmt(x: float | None, spec: str = ".3g") -> str:
    return "n/a" if x is None else format(x, spec)
