"""Sampler diagnostics as facts: R-hat, bulk/tail ESS, divergences, tree-depth hits, E-BFMI.

Thresholds (DESIGN.md section 4): R-hat > 1.01, bulk ESS < 400 or any divergence is a problem.
Where R-hat flags quantities, :func:`chain_note` says which chain disagrees on them and how
the chains' log densities compare, so that a chain held in another mode is told apart from
chains that all mix slowly.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd

from cartfit.inference.fitfile import CHAIN_NOTE

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
    #: :func:`cartfit.inference.stiffness.locate_stiffness` rows, when trees hit the depth cap
    stiffness: list[dict] = field(default_factory=list)

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
                "stiffness": self.stiffness,
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


#: quantities named in the chain note, worst R-hat first
CHAIN_NOTE_QUANTITIES = 3
#: a chain whose mean log density lies more than this many within-chain SDs below the best
#: chain's is named as lower (a local mode, or a chain that has not arrived)
LOGP_GAP_SDS = 2.0
#: a chain whose log density varies by less than this fraction of the most varied chain's SD
#: is stuck, not sampling a mode (data/example's multi-fate fit: SDs 0.011 and 0.028 at step
#: sizes of 1e-6, against 8.5 in the chain that moved)
STUCK_SD_RATIO = 0.05


def _chain_means(posterior, var_names: list[str]) -> dict[str, np.ndarray]:
    """Per-chain posterior means of every scalar quantity, labelled as ``az.summary`` labels
    them (``name[coord, coord]``)."""
    out = {}
    for name in var_names:
        da = posterior[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        means = da.mean("draw").transpose("chain", *extra).values.reshape(da.sizes["chain"], -1)
        if not extra:
            out[name] = means[:, 0]
            continue
        for k, idx in enumerate(np.ndindex(*(da.sizes[d] for d in extra))):
            label = ", ".join(str(da[d].values[i]) for d, i in zip(extra, idx, strict=True))
            out[f"{name}[{label}]"] = means[:, k]
    return out


def chain_note(posterior, sample_stats, table: pd.DataFrame, var_names: list[str]) -> str | None:
    r"""Where the chains disagree when R-hat exceeds ``RHAT_MAX``, or ``None`` if nowhere.

    The per-chain means of the ``CHAIN_NOTE_QUANTITIES`` worst quantities, then the chains'
    mean log densities :math:`\bar\ell_c`, naming those with
    :math:`\bar\ell_c < \max_c \bar\ell_c - 2\,\mathrm{median}_c\,\mathrm{sd}_c(\ell)`. Chains
    that group on the flagged quantities, one group with a lower log density, sit in a mode the
    others do not visit; similar log densities with scattered chain means point to slow mixing
    or to modes of similar mass. A chain whose log density barely varies
    (:math:`\mathrm{sd}_c(\ell) <` ``STUCK_SD_RATIO`` :math:`\max_c \mathrm{sd}_c(\ell)`) is
    named as stuck, with its final step size, and left out of that comparison."""
    bad = table[table["r_hat"] > RHAT_MAX].nlargest(CHAIN_NOTE_QUANTITIES, "r_hat")
    n_chains = posterior.sizes.get("chain", 1)
    if bad.empty or n_chains < 2:
        return None
    chains = [str(c) for c in posterior["chain"].values]
    means = _chain_means(posterior, var_names)
    parts = [
        f"{row.variable} (R-hat {row.r_hat:.3f}) per chain "
        + ", ".join(f"{v:.3g}" for v in means[row.variable])
        for row in bad.itertuples()
        if row.variable in means
    ]
    text = f"{CHAIN_NOTE} (chains {', '.join(chains)}): " + "; ".join(parts)
    logp_name = next((k for k in ("logp", "lp") if k in sample_stats), None)
    if logp_name is not None:
        logp = np.asarray(sample_stats[logp_name], dtype=float)
        lp_mean, lp_sd = logp.mean(axis=1), logp.std(axis=1)
        stuck = lp_sd < STUCK_SD_RATIO * lp_sd.max()
        moving = np.flatnonzero(~stuck)
        gap = lp_mean[moving].max() - lp_mean
        low = [chains[i] for i in moving if gap[i] > LOGP_GAP_SDS * np.median(lp_sd[moving])]
        text += (
            f". Mean log density per chain {', '.join(f'{v:.1f}' for v in lp_mean)} "
            f"(within-chain SD {', '.join(f'{v:.2g}' for v in lp_sd)})"
        )
        if stuck.any():
            text += _stuck_text([chains[i] for i in np.flatnonzero(stuck)], stuck, sample_stats)
        if low:
            which = f"chain {low[0]} lies" if len(low) == 1 else f"chains {', '.join(low)} lie"
            text += (
                f"; {which} more than {LOGP_GAP_SDS:g} within-chain SDs below the best: the "
                "chains sample different modes (the lower is not necessarily the one with less "
                "mass) and no subset of them is the posterior; rerun with more tuning, more "
                "chains or another seed"
            )
    return text


def _stuck_text(names: list[str], stuck: np.ndarray, sample_stats) -> str:
    """The chain note's sentence on chains that did not move."""
    if len(names) == 1:
        text = f"; chain {names[0]} is stuck: its log density barely varies"
    else:
        text = f"; chains {', '.join(names)} are stuck: their log densities barely vary"
    if "step_size" in sample_stats:
        step = np.asarray(sample_stats["step_size"], dtype=float)[:, -1]
        text += (
            f" (final step size {', '.join(f'{v:.2g}' for v in step[stuck])}, against "
            f"{np.median(step[~stuck]):.2g} in the others)"
        )
    return text + (
        ": adaptation shrank the step size in a region of extreme curvature that the "
        "sampler cannot leave, so those draws are not posterior draws"
    )


def diagnose(posterior, sample_stats, var_names: list[str]) -> Diagnostics:
    """Compute the diagnostics of ``var_names`` from posterior and sample-stats datasets."""
    if hasattr(posterior, "to_dataset"):
        posterior = posterior.to_dataset()
    ds = posterior[var_names]
    with warnings.catch_warnings():  # R-hat of an entry held fixed is 0/0 (dropped below)
        warnings.simplefilter("ignore", RuntimeWarning)
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
    # entries that are constant in every draw (parameters a population fit holds fixed, such as
    # the multi-fate cytokine constants) have no R-hat or ESS to report
    table = table[~(table["r_hat"].isna() & (table["sd"] == 0))].reset_index(drop=True)
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
    note = chain_note(ds, sample_stats, table, var_names)
    return Diagnostics(table, n_div, n_depth, bfmi, n_draws, problems, notes=[note] if note else [])
