r"""Relapse, antigen escape and cure probabilities from a tumour trajectory (branching theory).

Small numbers of cells decide relapse and cure, so the deterministic ODE is replaced by a
two-type linear branching process whose *mean* is the ODE trajectory:

* antigen-positive cells (:math:`T_A(0)` cells at day 0) divide at rate
  :math:`\lambda_A = \max(b, g_A)` and die at :math:`\lambda_A - g_A(t)`, where
  :math:`g_A = d\ln T_A/dt` is the ODE's per-capita net growth (growth law minus CAR T killing);
* antigen-negative lineages arise as a Poisson stream of rate :math:`\nu(t) = \mu\,T_A(t)`
  (cells/day; :math:`T_A` in cells) and from :math:`T_{A-}(0)` founders, divide at
  :math:`\max(b, g_N)` and die at :math:`\max(b - g_N, 0)`, with :math:`g_N(t)` the ODE's per-capita
  net growth of antigen-negative cells (e.g. :math:`r_{A-} - \kappa_{off} C(t)`).

Kendall's formulas (:mod:`cartfit.analysis.birth_death`) give each lineage's survival
:math:`S(s,t)` and surviving size (geometric, mean :math:`M(s,t)`); by Poisson thinning the
surviving antigen-negative lineages from the stream are Poisson with intensity
:math:`\nu(s) S(s,t)`, which for constant rates and long times is the establishment formula
:math:`\nu(s)(1 - \delta/b)`. The sizes at :math:`t` add up to the tumour :math:`Z(t)`, whose
tail :math:`P(Z(t) \ge N)` comes from Laplace inversion or a saddlepoint approximation
(:mod:`cartfit.analysis.compound`) — this accounts for the detection delay (lineages must
grow to :math:`N` cells) and for several clones adding up.

Definitions (per posterior draw, horizon :math:`h` in days)
-----------------------------------------------------------
* *response*: the mean tumour falls below the relapse threshold :math:`N` (cells) at
  :math:`t_r`; ``cohort.yaml``'s ``relapse_threshold`` (tumour units), else
  :data:`DEFAULT_THRESHOLD_FRACTION` of the day-0 burden.
* ``p_relapse``: :math:`\max_{t_r < t \le h} P(Z_A(t) + Z_N(t) \ge N)` over check times — the
  probability that the tumour is back above :math:`N` by :math:`h` (exact for a tumour that
  regrows monotonically after :math:`t_r`, a lower bound otherwise); 0 without response.
* ``p_relapse_antigen_neg`` / ``_pos``: split of ``p_relapse`` by the part that dominates when
  the total crosses :math:`N`. With monotone regrowth that is the part that first reaches
  :math:`N/2`, so with :math:`G_X(t)` the running maximum of :math:`P(Z_X(t) \ge N/2)` from the
  time the mean tumour is below :math:`N/2` (the two parts are independent), the
  antigen-negative share is

  .. math::

      \frac{\sum \Delta G_N (1 - \bar G_A)}
      {\sum \Delta G_N (1 - \bar G_A) + \sum \Delta G_A (1 - \bar G_N)}

  (the mean antigen-negative share at :math:`h` when neither part gets there).
* ``p_cure``: :math:`P(Z_A(h) = 0,\ Z_N(h) = 0)` — no tumour cell of either kind left at
  :math:`h`.

Checked against the exact simulation of :mod:`cartfit.simulate.branching` (absolute error
<= 0.02, tests/unit/test_relapse.py and tests/slow/test_relapse_calibration.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cartfit.analysis.birth_death import KendallGrid
from cartfit.analysis.compound import compound_tail

DEFAULT_BIRTH_RATE = 0.5
"""Division rate :math:`b` of tumour cells (1/day) when the fit does not say (only the net
growth is identifiable from burden data)."""
DEFAULT_THRESHOLD_FRACTION = 0.1
"""Relapse threshold as a fraction of the day-0 tumour when ``cohort.yaml`` gives none."""
OUTPUTS = ("p_relapse", "p_relapse_antigen_pos", "p_relapse_antigen_neg", "p_cure", "p_response")


def relapse_grid(max_horizon: float, fine_until: float = 30.0) -> NDArray[np.float64]:
    """Grid (days) for relapse: 0.25 day to ``fine_until``, then 1 day, whole days included."""
    fine = np.arange(0.0, min(fine_until, max_horizon) + 1e-9, 0.25)
    coarse = np.arange(np.ceil(fine_until), np.ceil(max_horizon) + 1e-9, 1.0)
    return np.unique(np.concatenate([fine, coarse, [float(max_horizon)]]))


@dataclass(frozen=True)
class BranchingRates:
    """Piecewise-constant rates (1/day) of the two-type branching process on ``times``.

    Founders have the leading shape ``(...)``; rates have shape ``(..., n_t - 1)``.
    """

    times: NDArray
    pos_founders: NDArray
    pos_birth: NDArray
    pos_death: NDArray
    neg_founders: NDArray
    neg_birth: NDArray
    neg_death: NDArray
    immigration: NDArray


def _ratio(a: NDArray, dt: NDArray) -> NDArray:
    small = np.abs(a * dt) < 1e-9
    return np.where(small, dt, np.expm1(a * dt) / np.where(small, 1.0, a))


def branching_rates(
    times: ArrayLike,
    tumor_pos: ArrayLike,
    antigen_loss_rate: ArrayLike = 0.0,
    neg_net_growth: ArrayLike = 0.0,
    tumor_neg0: ArrayLike = 0.0,
    birth_rate: ArrayLike = DEFAULT_BIRTH_RATE,
) -> BranchingRates:
    r"""Branching rates whose mean reproduces a deterministic trajectory.

    Parameters
    ----------
    times
        Grid (days), ``(n_t,)``, from day 0.
    tumor_pos
        Antigen-positive tumour :math:`T_A(t)` in cells, ``(..., n_t)``.
    antigen_loss_rate
        :math:`\mu`, antigen-negative cells arising per antigen-positive cell per day.
    neg_net_growth
        :math:`g_N(t)`, per-capita net growth of antigen-negative cells (1/day), scalar,
        ``(...,)`` or ``(..., n_t)`` (averaged over each interval).
    tumor_neg0
        Antigen-negative cells at day 0.
    birth_rate
        :math:`b`, division rate of tumour cells (1/day).
    """
    t = np.asarray(times, float)
    dt = np.diff(t)
    log_a = np.log(np.maximum(np.asarray(tumor_pos, float), 1e-300))
    g_a = np.diff(log_a, axis=-1) / dt
    lead = log_a.shape[:-1]
    b = np.asarray(birth_rate, float)[..., None]
    g_n = np.asarray(neg_net_growth, float)
    if g_n.ndim and g_n.shape[-1] == len(t):
        g_n = 0.5 * (g_n[..., 1:] + g_n[..., :-1])
    else:
        g_n = g_n[..., None]
    g_n = np.broadcast_to(g_n, (*lead, len(dt)))
    nu = np.asarray(antigen_loss_rate, float)[..., None] * np.exp(log_a[..., :-1])
    return BranchingRates(
        times=t,
        pos_founders=np.exp(log_a[..., 0]),
        pos_birth=np.maximum(b, g_a),
        pos_death=np.maximum(b - g_a, 0.0),
        neg_founders=np.broadcast_to(np.asarray(tumor_neg0, float), lead),
        neg_birth=np.maximum(b, g_n),
        neg_death=np.maximum(b - g_n, 0.0),
        immigration=nu * _ratio(g_a, dt) / dt,
    )


def _refine(t: NDArray, *rates: NDArray) -> tuple[NDArray, ...]:
    """Insert interval midpoints (stream quadrature nodes); rates repeat on both halves."""
    fine = np.empty(2 * len(t) - 1)
    fine[0::2], fine[1::2] = t, 0.5 * (t[1:] + t[:-1])
    return (fine, *(np.repeat(r, 2, axis=-1) for r in rates))


def _mean_neg(rates: BranchingRates) -> NDArray:
    """Mean antigen-negative cells on the grid (midpoint rule for the stream, as the tail)."""
    dt = np.diff(rates.times)
    growth = rates.neg_birth - rates.neg_death
    out = np.empty((*growth.shape[:-1], len(rates.times)))
    out[..., 0] = rates.neg_founders
    for i in range(len(dt)):
        step = np.exp(growth[..., i] * dt[i])
        half = np.exp(growth[..., i] * 0.5 * dt[i])
        out[..., i + 1] = out[..., i] * step + rates.immigration[..., i] * dt[i] * half
    return out


def _tails_at(
    rates: BranchingRates, pos: KendallGrid, neg: KendallGrid, k: int, thr: NDArray
) -> tuple[NDArray, ...]:
    """``P(total >= N)``, ``P(pos >= N/2)``, ``P(neg >= N/2)``, ``P(total = 0)`` at node ``k``."""
    s_a, m_a = pos.to(k)
    s_n, m_n = neg.to(2 * k)  # the negative grid has the interval midpoints inserted
    dt = np.diff(rates.times)[:k]
    stream = (rates.immigration[..., :k] * dt * s_n[..., 1 : 2 * k : 2], m_n[..., 1 : 2 * k : 2])
    pos = (rates.pos_founders[..., None], s_a[..., :1], m_a[..., :1])
    neg = (rates.neg_founders[..., None], s_n[..., :1], m_n[..., :1])
    both = tuple(np.concatenate([p, q], axis=-1) for p, q in zip(pos, neg, strict=True))
    total, p0 = compound_tail(thr, founders=both, stream=stream)
    only_pos, _ = compound_tail(0.5 * thr, founders=pos)
    only_neg, _ = compound_tail(0.5 * thr, founders=neg, stream=stream)
    return total, only_pos, only_neg, p0


def branching_relapse(
    rates: BranchingRates, threshold: ArrayLike, horizons: ArrayLike, check_every: float = 3.0
) -> dict[str, NDArray]:
    """Relapse, escape and cure probabilities per horizon for given branching rates.

    ``threshold`` is the relapse threshold :math:`N` in cells (leading shape or scalar);
    ``horizons`` (days) must lie on the grid. Returns arrays ``(..., n_horizons)`` named in
    :data:`OUTPUTS` (``p_response`` is 1 where the mean tumour fell below :math:`N` by the
    horizon).
    """
    t = rates.times
    hz = np.asarray(horizons, float)
    k_h = np.searchsorted(t, hz)
    if np.any(k_h >= len(t)) or not np.allclose(t[np.minimum(k_h, len(t) - 1)], hz):
        raise ValueError(f"horizons {hz.tolist()} must be grid times (grid ends at {t[-1]:g})")
    lead = rates.pos_founders.shape
    thr = np.broadcast_to(np.asarray(threshold, float), lead)
    mean_neg = _mean_neg(rates)
    growth = np.cumsum((rates.pos_birth - rates.pos_death) * np.diff(t), -1)
    mean_pos = rates.pos_founders[..., None] * np.exp(
        np.concatenate([np.zeros((*lead, 1)), growth], -1)
    )
    mean_total = mean_pos + mean_neg
    below = mean_total < thr[..., None]
    k_resp = np.where(below.any(-1), np.argmax(below, -1), len(t))
    # the race to N/2 starts once the mean tumour is below N/2 after the response
    half = below & (mean_total < 0.5 * thr[..., None])
    k_half = np.where(half.any(-1), np.argmax(half, -1), len(t))
    checks = np.unique(
        np.concatenate(
            [np.searchsorted(t, np.arange(check_every, t[-1] + 1e-9, check_every)), k_h, [0]]
        )
    )
    checks = checks[checks < len(t)]
    pos = KendallGrid(t, rates.pos_birth, rates.pos_death)
    neg = KendallGrid(*_refine(t, rates.neg_birth, rates.neg_death))
    tails = np.stack([np.stack(_tails_at(rates, pos, neg, int(k), thr), -1) for k in checks], -2)
    f_t = np.maximum.accumulate(np.where(checks > k_resp[..., None], tails[..., 0], 0.0), -1)
    racing = checks > k_half[..., None]
    g_a, g_n = (np.maximum.accumulate(np.where(racing, tails[..., i], 0.0), -1) for i in (1, 2))
    prev_a = np.concatenate([np.zeros((*lead, 1)), g_a[..., :-1]], -1)
    prev_n = np.concatenate([np.zeros((*lead, 1)), g_n[..., :-1]], -1)
    race_n = np.cumsum((g_n - prev_n) * (1.0 - 0.5 * (prev_a + g_a)), -1)
    race_a = np.cumsum((g_a - prev_a) * (1.0 - 0.5 * (prev_n + g_n)), -1)
    idx = np.searchsorted(checks, k_h)
    p_rel = f_t[..., idx]
    rn, ra = race_n[..., idx], race_a[..., idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(rn + ra > 0, rn / (rn + ra), mean_neg[..., k_h] / mean_total[..., k_h])
    return {
        "p_relapse": p_rel,
        "p_relapse_antigen_pos": p_rel * (1.0 - share),
        "p_relapse_antigen_neg": p_rel * share,
        "p_cure": tails[..., idx, 3],
        "p_response": (k_resp[..., None] <= k_h).astype(float),
    }


def relapse_probabilities(
    times: ArrayLike,
    tumor_pos: ArrayLike,
    threshold: ArrayLike,
    horizons: ArrayLike,
    antigen_loss_rate: ArrayLike = 0.0,
    neg_net_growth: ArrayLike = 0.0,
    tumor_neg0: ArrayLike = 0.0,
    birth_rate: ArrayLike = DEFAULT_BIRTH_RATE,
    check_every: float = 3.0,
) -> dict[str, NDArray]:
    """Relapse probabilities per posterior draw and horizon from deterministic trajectories.

    ``tumor_pos`` (antigen-positive tumour, cells) is given on ``times`` (days, from day 0,
    e.g. :func:`relapse_grid`), vectorised over leading axes (draws); ``threshold`` is in
    cells. See the module docstring for the model and the definitions, and
    :func:`branching_rates` for the other arguments. Returns ``(..., n_horizons)`` arrays.
    """
    rates = branching_rates(
        times, tumor_pos, antigen_loss_rate, neg_net_growth, tumor_neg0, birth_rate
    )
    return branching_relapse(rates, threshold, horizons, check_every)
