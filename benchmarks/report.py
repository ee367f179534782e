"""Text report of the inference benchmark: checks, the table, gradient costs, ratios, agreement."""

from __future__ import annotations

import numpy as np
from routes import RouteResult
from summary import agreement, fmt, ratio, table

US = 1e6  # microseconds per second


def _by_name(results: list[RouteResult], prefix: str) -> RouteResult | None:
    return next((r for r in results if r.name.startswith(prefix)), None)


def _consistency(extra: dict) -> list[str]:
    c = extra["cartfit_gradient"]
    lines = [
        "Same log density at one point (posterior median of cartfit, unconstrained):",
        f"  cartfit logp {c['logp']:.6f}",
    ]
    for key, label in (("stan", "Stan   "), ("pmode_gradient", "pm.ode ")):
        other = extra.get(key)
        if other and "grad" in other:
            lp = other.get("log_prob", other.get("logp"))
            dg = np.max(np.abs(np.subtract(c["grad"], other["grad"])))
            scale = np.max(np.abs(c["grad"]))
            lines.append(
                f"  {label}logp {lp:.6f} (diff {lp - c['logp']:+.2e}); "
                f"max |grad diff| {dg:.2e} (max |grad| {scale:.2e})"
            )
            if abs(lp - c["logp"]) > 1e-3 or dg > 1e-2 * max(scale, 1.0):
                lines.append(f"  WARNING: {label.strip()} is NOT the same model as cartfit's")
    return lines


def _row(label: str, seconds: float, detail: str = "") -> str:
    return f"  {label:<52}{seconds * US:9.1f} us{'  ' + detail if detail else ''}"


def _gradients(results: list[RouteResult], extra: dict) -> list[str]:
    c = extra["cartfit_gradient"]
    lines = [
        "Cost of one log density + gradient (same point):",
        _row(
            "cartfit: compiled numba logp_dlogp, numba loop, CPU",
            c["loop_cpu_s"],
            f"(wall {c['loop_s'] * US:.1f} us; solver rtol {c['rtol']:g}, atol {c['atol']:g})",
        ),
        _row("cartfit: the same called from Python", c["call_s"]),
    ]
    s = extra.get("stan")
    if s:
        lines += [
            _row(
                "Stan: sampling CPU time / leapfrog steps",
                s["sampling_cpu_per_gradient_s"],
                f"({s['n_leapfrog_total']} steps, warm-up included)",
            ),
            _row(
                "Stan: httpstan extension log_prob_grad",
                s["extension_log_prob_grad_s"],
                f"(rebuilds the model each call; log_prob alone "
                f"{s['extension_log_prob_s'] * US:.0f} us)",
            ),
            _row("Stan: pystan grad_log_prob (HTTP round trip)", s["pystan_grad_log_prob_s"]),
        ]
        firsts = [ch["first_gradient_s"] for ch in s["chain_times"] if "first_gradient_s" in ch]
        if firsts:
            each = ", ".join(f"{f * US:.0f}" for f in firsts)
            lines.append(f"  Stan: its own 'Gradient evaluation took' per chain: {each} us")
    p = _by_name(results, "PyMC")
    if p:
        g = extra["pmode_gradient"]
        lines.append(
            _row(
                "pm.ode: PyTensor function logp + dlogp, CPU",
                g["grad_cpu_s"],
                f"(wall {g['grad_s'] * US:.0f} us)",
            )
        )
        if p.n_gradients:
            per = p.sampling_s / p.n_gradients
            lines.append(_row("pm.ode: sampling time / leapfrog steps", per, f"({p.n_gradients})"))
    return lines


def _stan_ratios(c: RouteResult, s: RouteResult, conv: dict, extra: dict, cold) -> list[str]:
    cc, cs = conv[c.name], conv[s.name]
    per_grad = ratio(extra["stan"]["sampling_cpu_per_gradient_s"], c.grad_s)
    lines = [
        f"  cartfit / Stan, sampling ESS/s: {fmt(ratio(cc['ess_per_s'], cs['ess_per_s']))}"
        f"  ({cc['ess_per_s']:.1f} vs {cs['ess_per_s']:.1f})",
        f"  the same against Stan's ESS per sampling CPU-second (a lower bound on a shared "
        f"machine): {fmt(ratio(cc['ess_per_s'], cs.get('ess_per_cpu_s')))}  "
        f"(Stan {fmt(cs.get('ess_per_cpu_s'), '.1f')} ESS per CPU-s)",
        f"  cartfit / Stan, cost per gradient: {fmt(per_grad)}x cheaper (Stan's in-sampler cost"
        " per leapfrog step vs cartfit's compiled function)",
    ]
    for r in [c] + ([cold] if cold else []):
        whole, caches = conv[r.name]["ess_per_whole_s"], "cold" if r is cold else "warm"
        lines.append(
            f"  whole `cartfit fit` ({caches} compile caches) ESS/s vs Stan"
            f" sampling-only ESS/s: {fmt(ratio(whole, cs['ess_per_s']))}  ({whole:.1f} vs "
            f"{cs['ess_per_s']:.1f}; whole command {r.whole_s:.1f} s)"
        )
    return lines


def _pmode_ratios(c: RouteResult, s: RouteResult | None, p: RouteResult, conv: dict) -> list[str]:
    cc, cp = conv[c.name], conv[p.name]
    lines = [
        f"  cartfit / pm.ode, sampling ESS/s measured on the reduced run: "
        f"{fmt(ratio(cc['ess_per_s'], cp['ess_per_s']))}  (pm.ode {cp['ess_per_s']:.3g} ESS/s "
        f"from {cp['n_chains']} x {cp['n_draws']} draws: a noisy ESS estimate)"
    ]
    ref = s or p
    if ref.n_gradients:
        per_grad = conv[ref.name]["min_ess_bulk"] / ref.n_gradients
        ext = per_grad / p.grad_s
        lines.append(
            f"  cartfit / pm.ode, extrapolated: {fmt(ratio(cc['ess_per_s'], ext))}  (pm.ode "
            f"{ext:.3g} ESS/s = {ref.name}'s {per_grad:.2e} ESS per gradient / {p.grad_s:.3f} s "
            "per pm.ode gradient: assumes PyMC's NUTS needs as many gradients per effective "
            "draw on this posterior)"
        )
    return lines


def render(
    results: list[RouteResult], conv: dict, extra: dict, cold: RouteResult | None = None
) -> str:
    """The whole report; ``results`` starts with the (warm-cache) cartfit route."""
    a = extra["settings"]
    c, s, p = (_by_name(results, k) for k in ("cartfit", "Stan", "PyMC"))
    rows = results[:1] + ([cold] if cold else []) + results[1:]
    lines = [
        "Inference benchmark: one simulated subject, predator-prey with Gompertz growth "
        f"(cartfit simulate --seed {a['cohort_seed']}), {a['chains']} chains x "
        f"{a['tune']}/{a['draws']}, CPUs {extra['cpus']}, load average "
        f"{extra['load_avg_start'][0]:.2f} at start, {extra['load_avg_end'][0]:.2f} at end",
        "",
        *_consistency(extra),
        "",
        table(rows, conv),
        "",
        *_gradients(results, extra),
        "",
        "Ratios (ESS/s = min bulk ESS over the 9 quantities / sampling wall seconds):",
    ]
    if s:
        lines += _stan_ratios(c, s, conv, extra, cold)
    else:
        lines.append(f"  Stan: not run ({extra.get('stan_unavailable')})")
    if p:
        lines += _pmode_ratios(c, s, p, conv)
    lines += [
        "",
        "Agreement of posterior means (log scale for positive quantities): max over the 9",
        "quantities of |difference of means| / cartfit's posterior SD:",
    ]
    for r in results[1:]:
        g = agreement(c, r)
        lines.append(
            f"  cartfit vs {r.name}: {g['max_abs_dmean_over_sd']:.3f} ({g['quantity']}; "
            f"MCSE of the difference {g['mcse_of_difference']:.3f} SD)"
        )
    lines += ["", "Notes:"] + [f"  {r.name}: {n}" for r in rows for n in r.notes]
    lines += [f"  {r.name} settings: {r.settings}" for r in rows if r.settings]
    if extra.get("stan_unavailable"):
        lines.append(f"  Stan route not run: {extra['stan_unavailable']}")
    return "\n".join(lines)
