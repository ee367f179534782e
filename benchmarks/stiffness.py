"""How stiff a finished fit's posterior is, and why its trees are as long as they are.

Runs the depth-cap locator of ``cartfit fit`` (:mod:`cartfit.inference.stiffness`) on any fit
file, whatever share of its transitions reached the cap, and prints next to it the sampler's
step sizes and leapfrog steps per draw. The model is rebuilt from the fit's attributes and
settings on the cohort it was fitted to (checked against the fit's data hash), with the centring
weights the fit sampled under, and compiled (a structure compiled before loads from the cache);
the posterior draws are mapped back to the unconstrained coordinates.

Usage::

    .venv/bin/python benchmarks/stiffness.py FIT.nc COHORT_DIR [--points 8]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("fit")
    p.add_argument("cohort")
    p.add_argument("--points", type=int, default=8)
    a = p.parse_args(argv)

    from cartfit.analysis.refit import refit_settings, source_cohort
    from cartfit.inference.compiled import compile_model
    from cartfit.inference.data import prepare
    from cartfit.inference.fit import build_with_settings
    from cartfit.inference.predict import fit_model, load_fit
    from cartfit.inference.stiffness import locate_stiffness, stiffness_note, unconstrained_draws
    from cartfit.inference.whiten import whitened_model

    tree = load_fit(a.fit)
    cohort = source_cohort(tree, a.cohort)
    population = tree.attrs.get("mode") == "population"
    model = fit_model(tree)
    subjects = [str(s) for s in tree["posterior"].coords["subject"].values]
    data = prepare(cohort, model, subjects)
    pm_model = build_with_settings(model, data, population, refit_settings(tree))
    if "centring" in tree["constant_data"]:  # before compiling: the compiled data are copies
        pm_model.cartfit_centring.weights.set_value(tree["constant_data"]["centring"].values)
    compiled = compile_model(whitened_model(pm_model).model, jitter_rvs=set())

    def logp_dlogp(x):
        logp, grad = compiled.logp_func(np.array(x, dtype=float, order="C"))
        return float(logp), np.asarray(grad, float)

    x = unconstrained_draws(pm_model, tree["posterior"])
    stats = tree["sample_stats"]
    n_cap = int(np.asarray(stats["maxdepth_reached"]).sum())
    steps = np.asarray(stats["n_steps"], float)
    step = np.asarray(stats["step_size"], float)
    print(f"{a.fit}: {x.shape[0]} chains x {x.shape[1]} draws, {x.shape[2]} coordinates, "
          f"{len(subjects)} subjects")  # fmt: skip
    print(
        f"leapfrog steps per draw {steps.mean():.1f} (by chain "
        + ", ".join(f"{s:.1f}" for s in steps.mean(axis=1))
        + "); step size by chain "
        + ", ".join(f"{s:.3g}" for s in step.mean(axis=1))
        + f"; {n_cap} at the depth cap"
    )
    located = locate_stiffness(pm_model, x, data.obs, logp_dlogp, n_points=a.points)
    print(located.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(stiffness_note(located, n_cap, steps.size) or "no draw could be examined")
    return 0


if __name__ == "__main__":
    sys.exit(main())
