r"""Where the divergent transitions of a fit happened, in terms of the data.

nutpie records, for each divergent transition, the position :math:`x_0` (unconstrained
parameters) from which the leapfrog step diverged and the position :math:`x_1` it reached. For
each one this module names

* the observation :math:`j` whose log-likelihood term changes most across the step,
  :math:`\arg\max_j |\ell_j(x_1) - \ell_j(x_0)|`, and
* the coordinate with the steepest log-density gradient at :math:`x_0`,
  :math:`\arg\max_i |\partial_i \log p(x_0)|`,

so that a divergence is explained by the data and the model rather than left as a count. On
data/example (predator–prey, Gompertz) every divergence sat on a late censored CAR T reading of a
relapsing subject: the model re-expands CAR T when the tumour returns, and whether it does so
before that visit switches within a fraction of a step, leaving a wall of height 10–30 in the
log density that the step size cannot resolve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd
import pymc as pm
from pymc.blocking import DictToArrayBijection, RaveledVars

from cartfit.inference.fitfile import DIVERGENCE_NOTE
from cartfit.inference.op import SolveOp

#: PyTensor mode of the few evaluations made here (see :func:`locate_divergences`)
EVAL_MODE = "FAST_COMPILE"
#: nutpie's per-draw divergence positions (ragged object arrays: not written to the fit file)
POSITION_STATS = (
    "divergence_start",
    "divergence_start_gradient",
    "divergence_end",
    "divergence_momentum",
)


def _coordinate_names(pm_model: pm.Model, info) -> list[str]:
    """Label of every entry of the raveled unconstrained vector, e.g. ``eta[S12, kill_rate]``."""
    names = []
    for var_name, shape, _, _ in info.point_map_info:
        base = var_name.removesuffix("_log__").removesuffix("_logodds__")
        dims = pm_model.named_vars_to_dims.get(base, ())
        labels = [list(pm_model.coords[d]) for d in dims] if dims else []
        for idx in np.ndindex(*shape) if shape else [()]:
            if labels and len(labels) == len(idx):
                inner = ", ".join(str(labels[k][i]) for k, i in enumerate(idx))
            else:
                inner = ", ".join(str(i) for i in idx)
            names.append(f"{var_name}[{inner}]" if idx else var_name)
    return names


def without_sensitivities(output):
    """``output`` (a variable or a list of them) with every ODE solve replaced by one without
    forward sensitivities (for values only: its Python implementation uses the analyses'
    solver, not a second one)."""
    from pytensor.graph.replace import graph_replace
    from pytensor.graph.traversal import ancestors

    replace = {}
    for var in ancestors(output if isinstance(output, list) else [output]):
        node = var.owner
        if node is not None and isinstance(node.op, SolveOp) and node.op.sensitivities:
            op = type(node.op)(node.op.model_name, node.op.growth, node.op.rtol, node.op.atol,
                               node.op.max_steps, sensitivities=False)  # fmt: skip
            replace.update(zip(node.outputs, op(*node.inputs), strict=True))
    return graph_replace(output, replace, strict=False) if replace else output


def pointwise_terms(pm_model: pm.Model) -> tuple[Callable, list[str]]:
    """A function of the raveled unconstrained coordinates returning every observation's
    log-likelihood term and prediction (log, scaled units), and the coordinates' labels.

    A handful of evaluations: PyTensor's Python linker (1.6 s to build, ~20 ms per call on 20
    subjects) instead of numba, whose just-in-time compilation took 20 s in every process."""
    ip = pm_model.initial_point()
    info = DictToArrayBijection.map({v.name: ip[v.name] for v in pm_model.value_vars})
    terms = pm_model.compile_fn(
        without_sensitivities(
            [pm_model.logp(vars=[pm_model["y"]], sum=False)[0], pm_model["mu_obs"]]
        ),
        inputs=pm_model.value_vars,
        on_unused_input="ignore",
        point_fn=False,
        mode=EVAL_MODE,
    )

    def pointwise(x):
        point = DictToArrayBijection.rmap(RaveledVars(np.asarray(x, float), info.point_map_info))
        return tuple(np.asarray(v, float) for v in terms(**{k: point[k] for k in point}))

    return pointwise, _coordinate_names(pm_model, info)


def locate_divergences(
    pm_model: pm.Model, sample_stats, obs: pd.DataFrame, logp_dlogp: Callable | None = None
) -> pd.DataFrame:
    """One row per divergent transition with recorded positions: ``chain, draw, subject,
    analyte, time, blq, delta_loglik`` (of the observation whose term changes most),
    ``below_lloq`` (how far, in log units, the model's prediction for that observation lies
    below its LLOQ where the step began: NaN for a quantified reading) and ``steepest`` (the
    coordinate with the largest gradient at the start). ``logp_dlogp`` is
    the sampler's compiled log density and gradient in the raveled unconstrained coordinates
    (:class:`cartfit.inference.sampling.Sampled`); without it one is built here."""
    cols = ["chain", "draw", "subject", "analyte", "time", "blq", "delta_loglik", "below_lloq",
            "steepest"]  # fmt: skip
    if "divergence_start" not in sample_stats or "divergence_end" not in sample_stats:
        return pd.DataFrame(columns=cols)
    diverging = np.asarray(sample_stats["diverging"]).astype(bool)
    starts = np.asarray(sample_stats["divergence_start"])
    ends = np.asarray(sample_stats["divergence_end"])
    if not diverging.any():
        return pd.DataFrame(columns=cols)
    if logp_dlogp is None:
        fn = pm_model.logp_dlogp_function(ravel_inputs=True, mode=EVAL_MODE)
        fn.set_extra_values({})
        logp_dlogp = fn
    pointwise, labels = pointwise_terms(pm_model)
    n_coords = len(labels)
    rows = []
    for c, d in zip(*np.nonzero(diverging), strict=True):
        x0, x1 = starts[c, d], ends[c, d]
        if x0 is None or x1 is None or np.size(x0) != n_coords:
            continue
        x0, x1 = np.asarray(x0, float), np.asarray(x1, float)
        if not (np.all(np.isfinite(x0)) and np.all(np.isfinite(x1))):
            continue
        (ll0, mu0), (ll1, _) = pointwise(x0), pointwise(x1)
        delta = ll1 - ll0
        delta[~np.isfinite(delta)] = np.inf
        j = int(np.argmax(np.abs(delta)))
        _, grad = logp_dlogp(x0)
        row = obs.iloc[j]
        below = float(row["log_lloq"] - mu0[j]) if row["blq"] else np.nan
        rows.append({
            "chain": int(c), "draw": int(d), "subject": str(row["subject"]),
            "analyte": str(row["analyte"]), "time": float(row["time"]), "blq": bool(row["blq"]),
            "delta_loglik": float(delta[j]), "below_lloq": below,
            "steepest": labels[int(np.argmax(np.abs(grad)))],
        })  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def divergence_note(located: pd.DataFrame, n_divergent: int) -> str | None:
    """One line for the fit's notes: where the divergences sit, most frequent first."""
    if not n_divergent or located.empty:
        return None
    where = Counter(
        f"{r.subject} {r.analyte} day {r.time:g}{' (BLQ)' if r.blq else ''}"
        for r in located.itertuples()
    )
    steep = Counter(located["steepest"])
    note = (
        f"{DIVERGENCE_NOTE} ({len(located)} of {n_divergent}): the observation whose "
        "log-likelihood term changes most across the diverging step: "
        + ", ".join(f"{k} ×{v}" for k, v in where.most_common(5))
        + "; steepest direction: "
        + ", ".join(f"{k} ×{v}" for k, v in steep.most_common(3))
    )
    censored = located[located["below_lloq"].notna()]
    if len(censored):
        below = float(censored["below_lloq"].median())
        side = "below" if below >= 0 else "above"
        note += (
            f". {len(censored)} of them at censored readings: where the step began the "
            f"prediction there lay {abs(below):.3g} log units {side} the LLOQ (median), and the "
            f"step changed that reading's term by {censored['delta_loglik'].median():.3g}: the "
            "censored likelihood is steep where the prediction rises through the LLOQ (e.g. "
            "CAR T re-expanding with a regrowing tumour), not a failed solve"
        )
    return note
