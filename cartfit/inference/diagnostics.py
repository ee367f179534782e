"""Sampler diagnostics as facts: R-hat, bulk/tail ESS, divergences, tree-depth hits, E-BFMI.

Thresholds (DESIGN.md section 4): R-hat > 1.01, bulk ESS < 400 or any divergence is a problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd

RHAT_MAX = 1.01
ESS_MIN = 400
BFMI_MIN = 0.3


@dataclass
class Diagnostics:
    """Per-variable table and sampler-level counts of one fit."""

    table: pd.DataFrame
    n_divergent: int
    n_max_treedepth: int
    bfmi: list[float]
    n_draws: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    divergences: list[dict] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        worst = self.table.sort_values("r_hat", ascending=False).head(5)
        return json.dumps(
            {
                "max_r_hat": float(self.table["r_hat"].max()),
                "min_ess_bulk": float(self.table["ess_bulk"].min()),
                "min_ess_tail": float(self.table["ess_tail"].min()),
                "n_divergent": self.n_divergent,
                "n_max_treedepth": self.n_max_treedepth,
                "bfmi": self.bfmi,
                "n_draws": self.n_draws,
                "problems": self.problems,
                "notes": self.notes,
                "multistart_log_densities": self.starts,
                "divergences": self.divergences,
                "worst": worst[["variable", "r_hat", "ess_bulk"]].to_dict("records"),
            }
        )

    def text(self) -> str:
        tab = self.table
        bfmi = ", ".join(f"{b:.2f}" for b in self.bfmi)
        head = (
            f"max R-hat {tab['r_hat'].max():.3f}, min bulk ESS {tab['ess_bulk'].min():.0f}, "
            f"min tail ESS {tab['ess_tail'].min():.0f}, divergences {self.n_divergent}, "
            f"max tree depth hits {self.n_max_treedepth}, E-BFMI {bfmi}"
        )
        lines = [head]
        lines += [f"PROBLEM: {p}" for p in self.problems] or ["no convergence problem found"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _bfmi(energy: np.ndarray) -> list[float]:
    out = []
    for e in energy:
        var = np.var(e)
        out.append(float(np.mean(np.diff(e) ** 2) / var) if var > 0 else float("nan"))
    return out


def diagnose(posterior, sample_stats, var_names: list[str]) -> Diagnostics:
    """Compute the diagnostics of ``var_names`` from posterior and sample-stats datasets."""
    if hasattr(posterior, "to_dataset"):
        posterior = posterior.to_dataset()
    ds = posterior[var_names]
    summ = az.summary(ds, kind="all", round_to=6)
    rows = [
        {
            "variable": str(idx),
            "mean": float(r["mean"]),
            "sd": float(r["sd"]),
            "r_hat": float(r["r_hat"]),
            "ess_bulk": float(r["ess_bulk"]),
            "ess_tail": float(r["ess_tail"]),
        }
        for idx, r in summ.iterrows()
    ]
    table = pd.DataFrame(rows)
    n_div = int(np.asarray(sample_stats["diverging"]).sum())
    depth_var = "maxdepth_reached" if "maxdepth_reached" in sample_stats else None
    n_depth = int(np.asarray(sample_stats[depth_var]).sum()) if depth_var else 0
    bfmi = _bfmi(np.asarray(sample_stats["energy"])) if "energy" in sample_stats else []
    problems = []
    bad_rhat = table[table["r_hat"] > RHAT_MAX]
    if len(bad_rhat):
        problems.append(
            f"R-hat > {RHAT_MAX} for {len(bad_rhat)} quantities "
            f"(worst {bad_rhat['r_hat'].max():.3f})"
        )
    low_ess = table[table["ess_bulk"] < ESS_MIN]
    if len(low_ess):
        problems.append(
            f"bulk ESS < {ESS_MIN} for {len(low_ess)} quantities "
            f"(lowest {low_ess['ess_bulk'].min():.0f})"
        )
    if n_div:
        problems.append(f"{n_div} divergent transitions")
    if n_depth:
        problems.append(f"{n_depth} transitions hit the maximum tree depth")
    low_bfmi = [b for b in bfmi if b < BFMI_MIN]
    if low_bfmi:
        problems.append(f"E-BFMI below {BFMI_MIN} in {len(low_bfmi)} chain(s)")
    n_draws = int(np.asarray(sample_stats["diverging"]).size)
    return Diagnostics(table, n_div, n_depth, bfmi, n_draws, problems)
