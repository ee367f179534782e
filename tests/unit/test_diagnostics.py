"""Sampler diagnostics: the problems found and the note on which chain disagrees where."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cartfit.inference.diagnostics import diagnose
from cartfit.inference.fitfile import CHAIN_NOTE, STIFFNESS_NOTE
from cartfit.report.build import fit_problems

N_CHAINS, N_DRAWS = 4, 400
SUBJECTS, PARAMETERS = ["S1", "S2"], ["growth_rate", "kill_rate"]


def _posterior(rng, shift: float, stuck: int = 2):
    """iid N(0, 1) draws per chain; chain ``stuck`` of theta[S2, growth_rate] moved by
    ``shift``. Log densities N(-100, 10) per draw, that chain's ``3 * shift`` lower."""
    theta = rng.standard_normal((N_CHAINS, N_DRAWS, 2, 2))
    theta[stuck, :, 1, 0] += shift
    sigma = rng.standard_normal((N_CHAINS, N_DRAWS))
    coords = {"chain": np.arange(N_CHAINS), "draw": np.arange(N_DRAWS)}
    post = xr.Dataset(
        {
            "theta": (("chain", "draw", "subject", "parameter"), theta),
            "sigma": (("chain", "draw"), sigma),
        },
        coords=coords | {"subject": SUBJECTS, "parameter": PARAMETERS},
    )
    logp = -100.0 + 10.0 * rng.standard_normal((N_CHAINS, N_DRAWS))
    logp[stuck] -= 3.0 * shift
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((N_CHAINS, N_DRAWS), bool)),
            "logp": (("chain", "draw"), logp),
            "energy": (("chain", "draw"), -logp),
        },
        coords=coords,
    )
    return post, stats


def test_chain_note_names_the_chain_that_disagrees_and_its_lower_log_density():
    post, stats = _posterior(np.random.default_rng(0), shift=10.0)
    diag = diagnose(post, stats, ["theta", "sigma"])
    assert any(p.startswith("R-hat > 1.01 for 1 quantities") for p in diag.problems)
    (note,) = diag.notes
    assert note.startswith(f"{CHAIN_NOTE} (chains 0, 1, 2, 3): theta[S2, growth_rate] (R-hat ")
    values = [float(v) for v in note.split(" per chain ")[1].split(". Mean")[0].split(", ")]
    assert len(values) == N_CHAINS and 9.8 < values[2] < 10.2
    assert max(abs(v) for i, v in enumerate(values) if i != 2) < 0.2
    assert "Mean log density per chain" in note
    assert "chain 2 lies more than 2 within-chain SDs below the best" in note


def test_chain_note_with_similar_log_densities_names_no_chain_as_lower():
    post, stats = _posterior(np.random.default_rng(1), shift=1.0)
    (note,) = diagnose(post, stats, ["theta", "sigma"]).notes
    assert "theta[S2, growth_rate]" in note and "below the best" not in note


def test_chain_note_names_stuck_chains_with_their_step_sizes():
    """A chain whose log density hardly moves (step size shrunk to 1e-6) is stuck, not in a
    mode: the note says so, and it is not counted when chains are compared by log density (else
    the median within-chain SD would be tiny and every chain would look lower)."""
    post, stats = _posterior(np.random.default_rng(3), shift=10.0, stuck=1)
    logp = stats["logp"].values.copy()
    logp[1] = -90.0 + 0.01 * np.random.default_rng(4).standard_normal(N_DRAWS)
    post["theta"].values[1] = post["theta"].values[1, :1] + 0.001 * post["theta"].values[1]
    step = np.full((N_CHAINS, N_DRAWS), 0.3)
    step[1] = 1.4e-6
    stats = stats.assign(logp=(("chain", "draw"), logp), step_size=(("chain", "draw"), step))
    (note,) = diagnose(post, stats, ["theta", "sigma"]).notes
    assert "chain 1 is stuck: its log density barely varies (final step size 1.4e-06, " in note
    assert "against 0.3 in the others)" in note
    assert "below the best" not in note


def test_no_chain_note_when_the_chains_agree():
    post, stats = _posterior(np.random.default_rng(2), shift=0.0)
    diag = diagnose(post, stats, ["theta", "sigma"])
    assert diag.notes == [] and not any("R-hat" in p for p in diag.problems)


def test_entries_held_fixed_are_left_out_of_the_table_without_warnings():
    """A parameter a population fit holds at a constant (the multi-fate cytokine constants) is
    the same in every draw: it has no R-hat (0/0) and is not listed, and ArviZ's division
    warnings for it are not printed."""
    post, stats = _posterior(np.random.default_rng(2), shift=0.0)
    post["theta"].values[..., 1] = 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diag = diagnose(post, stats, ["theta", "sigma"])
    assert list(diag.table["variable"]) == ["theta[S1, growth_rate]", "theta[S2, growth_rate]",
                                            "sigma"]  # fmt: skip
    assert diag.table["r_hat"].notna().all() and diag.problems == []


@pytest.mark.parametrize("shown", [True, False])
@pytest.mark.parametrize("opening", [CHAIN_NOTE, STIFFNESS_NOTE])
def test_report_problems_box_shows_the_chain_and_depth_cap_notes(shown, opening):
    note = f"{opening} (chains 0, 1): theta[S2, growth_rate] (R-hat 1.500) per chain 0, 10"
    other = "multi-start optimisation found 2 distinct optima"
    diag = {"problems": ["R-hat > 1.01 for 1 quantities (worst 1.500)"],
            "notes": [note if shown else other]}  # fmt: skip
    attrs = {Path("predator_prey_gompertz_population.nc"): {"diagnostics": json.dumps(diag)}}
    (line,) = fit_problems(attrs)
    assert ("per chain 0, 10" in line) is shown
