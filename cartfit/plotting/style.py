"""Shared look of every cartfit figure: palette, labels, figure creation and saving.

Figures are built on :class:`matplotlib.figure.Figure` with an explicit Agg canvas rather than
through ``pyplot``: no global backend is switched, no figure registry grows, and the functions are
safe in a notebook, a Snakemake script or a thread. matplotlib is imported inside the functions so
that importing :mod:`cartfit.plotting` costs nothing.

The palette is Okabe & Ito's (2008) colour-blind-safe set; every series that colour separates is
also separated by marker or line style, so the figures survive grey-scale printing.
"""

from __future__ import annotations

import functools
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cartfit.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Okabe–Ito colour-blind-safe palette (black first).
OKABE_ITO = (
    "#000000",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
)
#: palette for categorical series, without black and the hard-to-see yellow
CATEGORICAL = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARKERS = ("o", "s", "D", "^", "v", "P", "X")
LINESTYLES = ("-", "--", ":", "-.")
FAIL_RED = "#C00000"

ANALYTE_COLOURS = {
    "car_t": "#0072B2",
    "tumor": "#D55E00",
    "tumor_antigen_neg": "#CC79A7",
    "il6": "#009E73",
    "car_t_memory_fraction": "#56B4E9",
    "car_t_exhausted_fraction": "#E69F00",
}
ANALYTE_NAMES = {
    "car_t": "CAR T in blood",
    "tumor": "tumour burden",
    "tumor_antigen_neg": "antigen-negative tumour",
    "il6": "IL-6",
    "car_t_memory_fraction": "memory share of CAR T",
    "car_t_exhausted_fraction": "exhausted share of CAR T",
}
FONT = {"font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8}


def analyte_order(analyte: str) -> tuple[int, str]:
    """Sort key: CAR T first, then the tumour analytes, then the rest alphabetically."""
    order = tuple(ANALYTE_COLOURS)
    return (order.index(analyte) if analyte in order else len(order), analyte)


def analyte_colour(analyte: str) -> str:
    """Colour of an analyte, the same in every figure."""
    return ANALYTE_COLOURS.get(analyte, "#555555")


def analyte_label(analyte: str, unit: str | None = None) -> str:
    """Axis label ``"CAR T in blood (copies/ug)"``."""
    name = ANALYTE_NAMES.get(analyte, analyte)
    return f"{name} ({unit})" if unit else name


def new_figure(
    nrows: int, ncols: int, width: float, height: float, **kwargs: Any
) -> tuple[Figure, np.ndarray]:
    """A Figure on an Agg canvas with a 2-D array of axes (``squeeze=False``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def styled[**P, R](func: Callable[P, R]) -> Callable[P, R]:
    """Run a figure function with cartfit's font sizes (a local rc context, nothing global)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib as mpl

        with mpl.rc_context(FONT):
            return func(*args, **kwargs)

    return wrapper


def grid_shape(n_panels: int, max_cols: int) -> tuple[int, int]:
    """Rows and columns for ``n_panels`` panels, at most ``max_cols`` wide."""
    ncols = max(1, min(max_cols, n_panels))
    return int(np.ceil(n_panels / ncols)), ncols


def hide_unused(axes: np.ndarray, n_used: int) -> None:
    """Switch off the panels beyond the first ``n_used`` (row-major)."""
    for ax in axes.ravel()[n_used:]:
        ax.set_visible(False)


def spans_decades(values: Sequence[float] | np.ndarray, decades: float = 1.0) -> bool:
    """True when all finite values are > 0 and max/min exceeds ``10**decades``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size and np.all(v > 0) and v.max() / v.min() > 10**decades)


def log_axis(ax: Axes, values: Sequence[float] | np.ndarray, axis: str = "x") -> None:
    """Log scale on ``axis`` with readable ticks: plain 1-2-5 (or 1-3) labels over a decade or
    two of moderate numbers, powers of ten otherwise, never crowded minor labels."""
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    decades = np.log10(v.max() / v.min()) if v.size else 3.0
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    moderate = v.size and 1e-3 <= v.min() and v.max() < 1e4
    if moderate and decades < 2.5:
        subs = (1.0, 2.0, 5.0) if decades < 1.5 else (1.0, 3.0)
        target.set_major_locator(LogLocator(base=10, subs=subs))
        target.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    else:
        target.set_major_locator(LogLocator(base=10))
        target.set_major_formatter(LogFormatterSciNotation())
    target.set_minor_formatter(NullFormatter())


def log_if_spanning(ax: Axes, values: Sequence[float] | np.ndarray, axis: str = "x") -> bool:
    """Use a log scale on ``axis`` when the values are positive and span more than a decade."""
    use = spans_decades(values)
    if use:
        log_axis(ax, values, axis)
    return use


def wrap(text: str, width_in: float, fontsize: float = 10, char_em: float = 0.55) -> str:
    """Wrap each line of ``text`` to fit ``width_in`` inches at ``fontsize`` points, for
    characters ``char_em`` font sizes wide on average."""
    chars = max(20, int(width_in * 72 / (char_em * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.splitlines())


def title(fig: Figure, text: str, failed: bool = False) -> None:
    """Figure title wrapped to the figure width; bold red when something failed (bold
    capitals run wider: a 10-inch figure cut "CONVERGENCE PROBLEMS: ..." at both edges when it
    was wrapped for regular type)."""
    fig.suptitle(
        wrap(text, fig.get_figwidth(), char_em=0.68 if failed else 0.55),
        color=FAIL_RED if failed else "black",
        fontweight="bold" if failed else "normal",
        fontsize=10,
    )


def legend_columns(fig: Figure, entry_width_in: float = 2.4) -> int:
    """How many legend entries fit side by side under the figure."""
    return max(1, int(fig.get_figwidth() / entry_width_in))


_NO_DATES = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "ps": {"CreationDate": None}}


def save(fig: Figure, path: str | os.PathLike[str], dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix) and close it.

    Dates are left out of PDF/SVG metadata so that the same figure gives the same bytes.
    """
    final = Path(path)
    fmt = final.suffix.lstrip(".").lower() or "png"
    with atomic_path(final) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_NO_DATES.get(fmt))
    if "matplotlib.pyplot" in sys.modules:  # a pyplot-made figure is also registered there
        sys.modules["matplotlib.pyplot"].close(fig)
    return final
