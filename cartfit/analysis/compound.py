r"""Tail probability of a sum of independent branching lineages (Laplace inversion / saddlepoint).

The tumour present at time :math:`t` is a sum of independent lineages of two kinds:

* ``founders``: :math:`n` cells present at the start, each surviving with probability
  :math:`S` (binomial number of survivors);
* a ``stream``: lineages that arise as a Poisson process; with thinning, the survivors from
  one quadrature node form a Poisson number with mean :math:`w`.

A surviving lineage's size is geometric with mean :math:`M` (Kendall), approximated here by an
exponential with mean :math:`M` (exact to :math:`O(1/M)`; thresholds are large cell counts).
The cumulant generating function of the total :math:`Z` is

.. math::

    K(\theta) = \sum_f n_f \ln\!\Big(1 - S_f + \frac{S_f}{1 - \theta M_f}\Big)
              + \sum_j w_j\, \frac{\theta M_j}{1 - \theta M_j},

with an atom :math:`P(Z=0) = p_0 = \prod_f (1-S_f)^{n_f}\, e^{-\sum_j w_j}`. Two evaluations of
the tail :math:`P(Z \ge N)` complement each other:

* fixed-Talbot inversion of the Laplace transform :math:`E[e^{-sZ}]/s` (32 nodes; exact to
  ~1e-10 when the contour is well conditioned, and indifferent to sizes spread over many
  orders of magnitude — old, large clones next to many young, small ones);
* where the contour is ill conditioned (sums of very many lineages, i.e. nearly deterministic
  totals), :math:`(1-p_0)` times the Lugannani–Rice saddlepoint approximation of the
  conditional law of :math:`Z \mid Z>0` (CGF :math:`K_c = \ln[(e^{K} - p_0)/(1-p_0)]`, which
  removes the atom); against the exact Poisson–exponential compound (Skellam form) its
  absolute error is below 0.003 for every mean number of lineages from 0.001 to 1000.

References: Abate, J. & Valkó, P. P. (2004) Int. J. Numer. Meth. Engng 60:979–993 (fixed
Talbot); Lugannani, R. & Rice, S. (1980) Adv. Appl. Prob. 12:475–490.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

_NEGLIGIBLE = 1e-13
"""Components whose expected number of surviving lineages is below this are dropped."""
TALBOT_NODES = 32
_TALBOT_MAX_EXPONENT = 20.0
"""Largest real exponent on the contour for which Talbot's sum is trusted (rounding x e^20)."""


@numba.njit(cache=True, error_model="numpy")
def _log_laplace(s, n, sf, m_f, w, m_s):  # pragma: no cover - compiled
    """``log E[exp(-s Z)]`` at complex ``s`` (shape ``(L, nodes)``; components ``(L, ·)``).

    Founders: ``n log(1 - S sM/(1 + sM))`` with an accurate complex ``log1p``; stream:
    ``-w sM/(1 + sM)``.
    """
    n_l, n_q = s.shape
    out = np.zeros((n_l, n_q), dtype=np.complex128)
    for i in range(n_l):
        for q in range(n_q):
            acc = 0.0 + 0.0j
            for j in range(n.shape[1]):
                if n[i, j] > 0.0:
                    a = s[i, q] * m_f[i, j]
                    z = -sf[i, j] * a / (1.0 + a)
                    x, y = z.real, z.imag
                    acc += n[i, j] * complex(
                        0.5 * np.log1p(2.0 * x + x * x + y * y), np.arctan2(y, 1.0 + x)
                    )
            for j in range(w.shape[1]):
                if w[i, j] > 0.0:
                    b = s[i, q] * m_s[i, j]
                    acc -= w[i, j] * b / (1.0 + b)
            out[i, q] = acc
    return out


def _talbot_tail(thr: NDArray, n, sf, m_f, w, m_s) -> tuple[NDArray, NDArray]:
    """``P(Z >= thr)`` by fixed-Talbot inversion of ``E[e^{-sZ}]/s``, and a trust flag."""
    m = TALBOT_NODES
    th = np.arange(1, m) * np.pi / m
    cot = 1.0 / np.tan(th)
    r = (2.0 * m / (5.0 * thr))[..., None]
    s = np.concatenate([r + 0j, r * th * (cot + 1j)], -1)
    sigma = np.concatenate([[0.0], th + (th * cot - 1.0) * cot])
    expo = _log_laplace(s, n, sf, m_f, w, m_s) + thr[..., None] * s
    ok = np.all(np.isfinite(expo), -1) & (np.max(expo.real, -1) < _TALBOT_MAX_EXPONENT)
    expo = np.where(ok[..., None], expo, 0.0)
    terms = (np.exp(expo) / s * (1.0 + 1j * sigma)).real
    terms[..., 0] *= 0.5
    cdf = r[..., 0] / m * np.sum(terms, -1)
    ok &= (cdf > -1e-6) & (cdf < 1.0 + 1e-6)
    return np.clip(1.0 - cdf, 0.0, 1.0), ok


def _log1mexp(x: NDArray) -> NDArray:
    """``log(1 - exp(x))`` for ``x <= 0`` (``-inf`` at ``x = 0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > -0.693, np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


class _Cgf:
    """Conditional CGF ``K_c`` and its first two derivatives at ``theta`` (leading shape)."""

    def __init__(self, n, s, m_f, w, m_s):
        self.n, self.s, self.m_f, self.w, self.m_s = n, s, m_f, w, m_s
        self.log_p0 = np.sum(n * np.log1p(-s), -1) - np.sum(w, -1)
        self.log_1mp0 = _log1mexp(self.log_p0)

    def __call__(self, theta: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        th = theta[..., None]
        n, s, m_f, w, m_s = self.n, self.s, self.m_f, self.w, self.m_s
        x = 1.0 - th * m_f
        d = (1.0 - s) * x**2 + s * x
        b = np.sum(n * np.log1p(s / ((1.0 - s) * x)), -1)
        k1 = np.sum(n * s * m_f / d, -1)
        k2 = np.sum(n * s * m_f**2 * (2.0 * (1.0 - s) * x + s) / d**2, -1)
        y = 1.0 - th * m_s
        b = b + np.sum(w / y, -1)
        k1 = k1 + np.sum(w * m_s / y**2, -1)
        k2 = k2 + np.sum(2.0 * w * m_s**2 / y**3, -1)
        omq = -np.expm1(-b)
        kc = self.log_p0 + b - self.log_1mp0 + np.log(omq)
        kc1 = k1 / omq
        kc2 = k2 / omq - k1**2 * np.exp(-b) / omq**2
        return kc, kc1, kc2


def _prep(arr, lead, width):
    a = np.zeros((*lead, 0)) if arr is None else np.asarray(arr, float)
    return np.broadcast_to(a, (*lead, a.shape[-1] if width is None else width))


def compound_tail(
    threshold: ArrayLike,
    founders: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None,
    stream: tuple[ArrayLike, ArrayLike] | None = None,
) -> tuple[NDArray, NDArray]:
    """``P(Z >= threshold)`` and ``P(Z = 0)`` for a sum of branching lineages.

    Parameters
    ----------
    threshold
        :math:`N` (cells), shape broadcastable to the leading shape.
    founders
        ``(n, S, M)``: founding cell counts, their survival probabilities and the mean size of
        a surviving lineage; each ``(..., n_founders)``.
    stream
        ``(w, M)``: expected surviving lineages per node and their mean size, ``(..., n_nodes)``.

    Returns
    -------
    tail, p_zero
        Arrays of the leading shape.
    """
    parts = [np.asarray(a, float) for a in (*(founders or ()), *(stream or ()))]
    lead = np.broadcast_shapes(np.shape(threshold), *(p.shape[:-1] for p in parts))
    n, s, m_f = (np.zeros((*lead, 0)),) * 3
    if founders is not None:
        nf = np.broadcast_shapes(*(np.shape(a)[-1:] for a in founders))[0]
        n, s, m_f = (_prep(a, lead, nf) for a in founders)
    w, m_s = np.zeros((*lead, 0)), np.zeros((*lead, 0))
    if stream is not None:
        ns = np.broadcast_shapes(*(np.shape(a)[-1:] for a in stream))[0]
        w, m_s = (_prep(a, lead, ns) for a in stream)
    s = np.clip(s, 0.0, 1.0 - 1e-15)
    keep_f = n * s > _NEGLIGIBLE
    keep_s = w > _NEGLIGIBLE
    # dropped components become inert (no cells, unit size) so they cannot produce NaN
    n, s, m_f = np.where(keep_f, n, 0.0), np.where(keep_f, s, 0.0), np.where(keep_f, m_f, 1.0)
    w, m_s = np.where(keep_s, w, 0.0), np.where(keep_s, m_s, 1.0)
    big = np.maximum(
        np.max(np.where(keep_f, m_f, 0.0), -1, initial=0.0),
        np.max(np.where(keep_s, m_s, 0.0), -1, initial=0.0),
    )
    empty = big <= 0
    p_zero = np.exp(_Cgf(n, s, m_f, w, m_s).log_p0)
    thr = np.broadcast_to(np.asarray(threshold, float), lead)
    tail = np.zeros(lead)
    sel = ~empty
    if np.any(sel):
        tal, ok = _talbot_tail(thr[sel], n[sel], s[sel], m_f[sel], w[sel], m_s[sel])
        tail[sel] = tal
        rest = np.zeros(lead, bool)
        rest[sel] = ~ok
        if np.any(rest):
            cgf = _Cgf(n[rest], s[rest], m_f[rest], w[rest], m_s[rest])
            lr = _lugannani_rice(cgf, thr[rest], big[rest])
            tail[rest] = np.clip(lr, 0.0, 1.0) * (1.0 - p_zero[rest])
    return tail, p_zero


def _solve(cgf: _Cgf, thr: NDArray, big: NDArray) -> NDArray:
    """Saddle point ``K_c'(theta) = thr`` with ``theta = (1 - e^l)/big``, safeguarded Newton."""
    lo, hi = np.full(thr.shape, -60.0), np.full(thr.shape, 60.0)
    ell = np.zeros(thr.shape)
    log_thr = np.log(thr)
    for _ in range(100):
        theta = (1.0 - np.exp(ell)) / big
        _, k1, k2 = cgf(theta)
        f = np.log(k1) - log_thr
        done = np.abs(f) < 1e-11
        if np.all(done):
            break
        lo = np.where(f > 0, ell, lo)
        hi = np.where(f <= 0, ell, hi)
        slope = -(k2 / k1) * np.exp(ell) / big
        with np.errstate(divide="ignore", invalid="ignore"):
            step = ell - f / slope
        bad = ~np.isfinite(step) | (step < lo) | (step > hi)
        ell = np.where(done, ell, np.where(bad, 0.5 * (lo + hi), step))
    return (1.0 - np.exp(ell)) / big


def _lugannani_rice(cgf: _Cgf, thr: NDArray, big: NDArray, nudge: bool = True) -> NDArray:
    theta = _solve(cgf, thr, big)
    kc, _, kc2 = cgf(theta)
    w = np.sign(theta) * np.sqrt(np.maximum(2.0 * (theta * thr - kc), 0.0))
    u = theta * np.sqrt(np.maximum(kc2, 0.0))
    near = np.abs(w) < 1e-4
    with np.errstate(divide="ignore", invalid="ignore"):
        tail = special.ndtr(-w) + np.exp(-0.5 * w**2) / np.sqrt(2 * np.pi) * (1.0 / u - 1.0 / w)
    if nudge and np.any(near):
        # the formula is 0/0 at the mean: average the two sides a little away from it
        up = _lugannani_rice(cgf, thr * 1.002, big, nudge=False)
        down = _lugannani_rice(cgf, thr * 0.998, big, nudge=False)
        tail = np.where(near, 0.5 * (up + down), tail)
    return tail
