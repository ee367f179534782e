r"""Exposure metrics of CAR T and tumour trajectories on a time grid (pure numpy).

Every function takes ``times`` (shape ``(n_t,)``, days since infusion, increasing, starting at
day 0) and values whose **last** axis is time; any leading axes (posterior draws, subjects)
are kept, so one call evaluates all draws at once. Values are in whatever units the caller
passes (the fit's trajectories are multiplied back to measured units before this module sees
them), and the metrics carry those units.

Integrals use the trapezoid rule in linear space on the grid; :func:`metric_grid` gives a grid
(0.05 day up to ``max(window, 30)`` days) fine enough that the rule is accurate to well under
0.1 % for CAR T kinetics with doubling/halving times of a day or more.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FINE_STEP = 0.05
"""Grid step (days) from day 0 to ``max(window, 30)``."""
COARSE_STEP = 0.5
"""Grid step (days) after that, up to ``t_end``."""
C_AT_DAY = 28.0
"""Day of the ``c_day28`` metric."""

_TINY = 1e-300


def metric_grid(t_end: float, window: float = 28.0) -> NDArray[np.float64]:
    """Time grid (days) for exposure metrics: fine early, coarser later.

    The grid runs from day 0 to ``max(t_end, window, 28)`` with step 0.05 day up to
    ``max(window, 30)`` and 0.5 day after that, and contains day 0, ``window``, day 28 and
    the end point exactly.
    """
    if not window > 0:
        raise ValueError(f"window must be > 0 days, got {window}")
    end = max(float(t_end), float(window), C_AT_DAY)
    fine_end = min(max(float(window), 30.0), end)
    n_fine = max(int(np.ceil(fine_end / FINE_STEP - 1e-9)), 1)
    parts = [np.linspace(0.0, fine_end, n_fine + 1)]
    if end > fine_end:
        n_coarse = max(int(np.ceil((end - fine_end) / COARSE_STEP - 1e-9)), 1)
        parts.append(np.linspace(fine_end, end, n_coarse + 1))
    parts.append(np.array([float(window), C_AT_DAY]))
    return np.unique(np.concatenate(parts))


def _interp_last(times: NDArray, values: NDArray, at: float) -> NDArray:
    """Linear interpolation of ``values`` along the last axis at one time (clamped)."""
    at = float(np.clip(at, times[0], times[-1]))
    j = int(np.clip(np.searchsorted(times, at, side="right") - 1, 0, len(times) - 2))
    w = (at - times[j]) / (times[j + 1] - times[j])
    return (1.0 - w) * values[..., j] + w * values[..., j + 1]


def integral(times: ArrayLike, values: ArrayLike, start: float, stop: float) -> NDArray:
    r"""Trapezoid integral :math:`\int_{start}^{stop} y(t)\,dt` of gridded values.

    End points that fall between grid points are linearly interpolated; the interval is
    clipped to the grid.
    """
    t = np.asarray(times, dtype=float)
    y = np.asarray(values, dtype=float)
    lo, hi = max(start, t[0]), min(stop, t[-1])
    if hi <= lo:
        return np.zeros(y.shape[:-1])
    inside = (t > lo) & (t < hi)
    tt = np.concatenate([[lo], t[inside], [hi]])
    yy = np.concatenate(
        [_interp_last(t, y, lo)[..., None], y[..., inside], _interp_last(t, y, hi)[..., None]],
        axis=-1,
    )
    return np.trapezoid(yy, tt, axis=-1)


def c_at(times: ArrayLike, values: ArrayLike, day: float) -> NDArray:
    """Value at ``day`` (linear interpolation between grid points), e.g. ``c_day28``."""
    return _interp_last(np.asarray(times, float), np.asarray(values, float), day)


def _vertex(times: NDArray, y: NDArray, idx: NDArray) -> NDArray:
    """Abscissa of the parabola through the grid points around ``idx`` (refined extremum)."""
    n = len(times)
    i = np.clip(idx, 1, n - 2)
    t0, t1, t2 = times[i - 1], times[i], times[i + 1]
    y0 = np.take_along_axis(y, (i - 1)[..., None], -1)[..., 0]
    y1 = np.take_along_axis(y, i[..., None], -1)[..., 0]
    y2 = np.take_along_axis(y, (i + 1)[..., None], -1)[..., 0]
    num = (t1 - t0) ** 2 * (y1 - y2) - (t1 - t2) ** 2 * (y1 - y0)
    den = (t1 - t0) * (y1 - y2) - (t1 - t2) * (y1 - y0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tv = t1 - 0.5 * num / den
    ok = (idx > 0) & (idx < n - 1) & np.isfinite(tv) & (tv >= t0) & (tv <= t2)
    return np.where(ok, tv, times[idx])


def cmax(times: ArrayLike, values: ArrayLike) -> NDArray:
    """Maximum level on the grid, :math:`C_{max} = \\max_t C(t)`."""
    return np.max(np.asarray(values, float), axis=-1)


def tmax(times: ArrayLike, values: ArrayLike) -> NDArray:
    """Time of the maximum (days), refined by a parabola through the three grid points at the
    peak of :math:`\\ln C` (exact for a log-quadratic peak, accurate to ~1e-4 day otherwise)."""
    t = np.asarray(times, float)
    y = np.log(np.maximum(np.asarray(values, float), _TINY))
    return _vertex(t, y, np.argmax(y, axis=-1))


def auc(times: ArrayLike, values: ArrayLike, window: float) -> NDArray:
    r"""Area under the curve over ``[0, window]`` (units × day).

    .. math:: \mathrm{AUC}_{0-w} = \int_0^{w} C(t)\,dt
    """
    return integral(times, values, 0.0, window)


def persistence_days(times: ArrayLike, values: ArrayLike, lloq: float | ArrayLike) -> NDArray:
    r"""Persistence: the last time (days since infusion) at which the level is at or above LLOQ.

    .. math:: t_{pers} = \sup\{t \ge 0 : C(t) \ge \mathrm{LLOQ}\}

    The crossing is interpolated linearly in :math:`\ln C` (exact for exponential decline).
    0 if the level is never above LLOQ; the grid end if it is still above at the end
    (right-censored). ``lloq`` broadcasts against the leading axes.
    """
    t = np.asarray(times, float)
    y = np.log(np.maximum(np.asarray(values, float), _TINY))
    ll = np.log(np.asarray(lloq, float))[..., None] * np.ones_like(y[..., :1])
    above = y >= ll
    n = len(t)
    # last index at or above LLOQ (-1 if none)
    last = n - 1 - np.argmax(above[..., ::-1], axis=-1)
    last = np.where(above.any(axis=-1), last, -1)
    j = np.clip(last, 0, n - 2)
    ya = np.take_along_axis(y, j[..., None], -1)[..., 0]
    yb = np.take_along_axis(y, (j + 1)[..., None], -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip((ll[..., 0] - ya) / (yb - ya), 0.0, 1.0)
    crossing = t[j] + np.nan_to_num(frac) * (t[j + 1] - t[j])
    return np.where(last < 0, 0.0, np.where(last == n - 1, t[-1], crossing))


def killing_exposure(
    times: ArrayLike, kill_rate: ArrayLike, car_t: ArrayLike, window: float | None = None
) -> NDArray:
    r"""Mechanism-based killing exposure: e-folds of tumour killed by CAR T.

    .. math:: E_{kill} = \int_0^{w} k_{kill}(A(t))\, C(t)\, dt

    ``kill_rate`` is :math:`k_{kill}` in 1/(CAR T unit · day), per time point or
    broadcastable (a constant); ``car_t`` is :math:`C` in the same CAR T unit, so the result is
    dimensionless. ``window`` ``None`` integrates over the whole grid.
    """
    t = np.asarray(times, float)
    rate = np.asarray(kill_rate, float) * np.asarray(car_t, float)
    return integral(t, rate, 0.0, t[-1] if window is None else window)


def tumor_nadir_log10_reduction(times: ArrayLike, tumor: ArrayLike) -> NDArray:
    r"""Depth of response: :math:`\log_{10} B(0) - \log_{10} \min_{t \ge 0} B(t)` (≥ 0)."""
    b = np.maximum(np.asarray(tumor, float), _TINY)
    return np.log10(b[..., 0]) - np.log10(np.min(b, axis=-1))


def time_to_nadir(times: ArrayLike, tumor: ArrayLike) -> NDArray:
    """Time (days) of the tumour minimum, refined by a parabola in ln B; the grid end when the
    tumour is still shrinking there, 0 when it never shrinks."""
    t = np.asarray(times, float)
    y = np.log(np.maximum(np.asarray(tumor, float), _TINY))
    return _vertex(t, y, np.argmin(y, axis=-1))


def exposure_metrics(
    times: ArrayLike,
    car_t: ArrayLike,
    tumor: ArrayLike,
    kill_rate: ArrayLike,
    lloq: float | ArrayLike,
    window: float,
    control_level: ArrayLike,
) -> dict[str, NDArray]:
    """All exposure metrics of DESIGN.md section 5 for trajectories on one grid.

    Parameters
    ----------
    times
        Grid (days), from :func:`metric_grid`.
    car_t, tumor
        Noise-free CAR T level and total tumour burden, shape ``(..., n_t)``, measured units.
    kill_rate
        Kill rate per CAR T unit (1/(CAR T unit · day)), ``(..., n_t)`` or broadcastable.
    lloq
        CAR T lower limit of quantification (CAR T unit), broadcastable to the leading axes.
    window
        AUC window (days); the key is ``auc_0_<window>``.
    control_level
        ``C_ctrl = r/k`` per leading index, CAR T unit (computed by the caller from parameters).

    Returns
    -------
    dict
        ``cmax``, ``tmax``, ``auc_0_<window>``, ``c_day28``, ``persistence_days``,
        ``killing_exposure`` (whole grid), ``tumor_nadir_log10_reduction``, ``time_to_nadir``,
        ``c_ctrl``; each an array of the leading shape.
    """
    t = np.asarray(times, float)
    c = np.asarray(car_t, float)
    b = np.asarray(tumor, float)
    lead = np.broadcast_shapes(c.shape[:-1], b.shape[:-1])
    c = np.broadcast_to(c, (*lead, len(t)))
    b = np.broadcast_to(b, (*lead, len(t)))
    return {
        "cmax": cmax(t, c),
        "tmax": tmax(t, c),
        f"auc_0_{window:g}": auc(t, c, window),
        "c_day28": c_at(t, c, C_AT_DAY),
        "persistence_days": persistence_days(t, c, lloq),
        "killing_exposure": killing_exposure(t, kill_rate, c),
        "tumor_nadir_log10_reduction": tumor_nadir_log10_reduction(t, b),
        "time_to_nadir": time_to_nadir(t, b),
        "c_ctrl": np.broadcast_to(np.asarray(control_level, float), lead).copy(),
    }
