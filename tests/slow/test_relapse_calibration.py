"""Relapse closed form against exact simulation on a larger grid (one year, 40 000 replicates)."""

from __future__ import annotations

import numpy as np
import pytest

from cartfit.analysis.relapse import branching_rates, branching_relapse, relapse_grid
from cartfit.simulate.branching import outcome_frequencies, simulate_lineages

pytestmark = [pytest.mark.slow, pytest.mark.ci]

HORIZONS = (90.0, 180.0, 365.0)
KEYS = ("p_relapse", "p_relapse_antigen_pos", "p_relapse_antigen_neg", "p_cure")

# (n0 cells, r, k, mu, r_neg, kappa_off, neg0, birth b, threshold / n0, CAR T peak day)
CASES = [
    (1e6, 0.05, 1.1, 0.0, 0.05, 0.0, 0, 0.5, 0.1, 7.0),
    (1e6, 0.06, 1.2, 0.0, 0.05, 0.0, 0, 0.5, 0.01, 7.0),
    (1e6, 0.03, 1.3, 2e-6, 0.06, 0.0, 0, 0.5, 0.1, 7.0),
    (1e6, 0.03, 1.3, 2e-5, 0.08, 0.3, 0, 0.5, 0.1, 7.0),
    (1e6, 0.04, 1.05, 5e-6, 0.06, 0.1, 0, 0.5, 0.1, 7.0),
    (1e6, 0.02, 1.3, 0.0, 0.05, 0.5, 50, 0.5, 0.1, 7.0),
    (1e8, 0.04, 1.2, 3e-8, 0.045, 0.0, 0, 0.5, 0.1, 7.0),
    (1e6, 0.05, 0.9, 1e-5, 0.06, 0.2, 0, 1.0, 0.1, 10.0),
    (1e7, 0.04, 1.3, 1e-6, 0.03, 0.0, 5, 1.0, 0.05, 5.0),
    (1e5, 0.04, 1.0, 5e-5, 0.05, 0.0, 0, 0.3, 0.2, 7.0),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_closed_form_matches_exact_simulation_over_one_year(case):
    """|closed form - simulation| <= 0.02 on every probability; 40 000 replicates give a Monte
    Carlo SE <= 0.0025, so the bound is 8 SE and tests the closed form's own error."""
    n0, r, k, mu, r_neg, k_off, neg0, birth, frac, peak = CASES[case]
    t = relapse_grid(365.0)
    car_t = (t / peak) ** 2 * np.exp(2.0 * (1.0 - t / peak))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (car_t[1:] + car_t[:-1]) * np.diff(t))])
    rates = branching_rates(t, n0 * np.exp(r * t - k * cum), mu, r_neg - k_off * car_t, neg0, birth)
    closed = branching_relapse(rates, frac * n0, HORIZONS)
    rng = np.random.default_rng(7000 + case)
    chunks = []
    for _ in range(4):  # 4 x 10 000 replicates, in chunks to bound memory
        pos, neg = simulate_lineages(
            t, int(n0), rates.pos_birth, rates.pos_death, int(neg0), rates.neg_birth,
            rates.neg_death, rates.immigration, 10_000, rng,
        )  # fmt: skip
        chunks.append(outcome_frequencies(t, pos, neg, frac * n0, HORIZONS))
    sim = {key: np.mean([c[key] for c in chunks], axis=0) for key in KEYS}
    for key in KEYS:
        np.testing.assert_allclose(closed[key], sim[key], atol=0.02, err_msg=key)
