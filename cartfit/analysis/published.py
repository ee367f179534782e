r"""Our per-well posterior estimates next to published least-squares estimates (``data/carrgo``).

Brummer et al. fitted a modified CARRGO model to the mean of duplicate xCELLigence wells, time
:math:`\tau` in hours, tumour :math:`x` in cell index, CAR T :math:`c` in units of
:math:`10^4` cells:

.. math::

    \frac{dx}{d\tau} = \rho x (1 - \kappa^{-1} x) - c_0 e^{-\lambda(\tau-\tau_s)} x
        - \kappa_1 x c, \qquad
    \frac{dc}{d\tau} = \kappa_2 x c - (\theta + c_3 e^{-\lambda(\tau-\tau_s)}) c

cartfit's predator–prey model with logistic growth, time :math:`t = \tau / 24` in days, tumour
:math:`B = x / s` in units of the fit's tumour scale :math:`s` (cell index), CAR T :math:`C` in
arbitrary units (it is unobserved; only :math:`k C` is identified), is

.. math::

    \frac{dB}{dt} = r B (1 - B/K) - k B C, \qquad \frac{dC}{dt} = p B C - d C .

Matching the per-capita rates term by term, draw by draw:

.. math::

    \rho = \frac{r}{24}, \quad \kappa^{-1} = \frac{1}{s K}, \quad
    \kappa_1 = \frac{k\, C(t_s)}{24\, c(\tau_s)}, \quad \kappa_2 = \frac{p}{24\, s}, \quad
    \theta = \frac{d}{24}

with :math:`\rho, \theta` in 1/h, :math:`\kappa^{-1}` in 1/cell index, :math:`\kappa_1` in
1/(10⁴ cells · h) and :math:`\kappa_2` in 1/(cell index · h). Both CAR T trajectories obey the
same linear equation, so :math:`C(t)/c(t)` is constant; it is taken at the authors' fit start
:math:`t_s` (their ``t_start`` row; row 100 is the first reading kept in ``data/carrgo``, rows
are 15 minutes apart), where their :math:`c(\tau_s)` is ``t_cell_start.ci.`` (dose / 10⁴) and
our :math:`C(t_s)` comes from solving the ODE for each draw. The dexamethasone terms
:math:`c_0, c_3` (0 in every dexamethasone-free row) have no counterpart in cartfit; a matched
row where they are not 0 gets a note.

Reference: Brummer et al., *Destabilization of CAR T-cell treatment efficacy in the presence
of dexamethasone*, github.com/alexbbrummer/CARRGODEX (``fit_parameters.csv``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.errors import CartfitError, Problem, ValidationError
from cartfit.inference.fitfile import NOT_CONVERGED_NOTE, stored_problems

if TYPE_CHECKING:
    import xarray as xr

#: (cartfit name, published column stem, label in the table, unit in the authors' terms)
PARAMETERS = (
    ("growth_rate", "rho", "growth rate ρ", "1/h"),
    ("carrying_capacity", "kappainv", "inverse carrying capacity κ⁻¹", "1/cell index"),
    ("kill_rate", "kappac1", "kill rate κ1", "1/(10⁴ cells · h)"),
    ("proliferation_rate", "kappac2", "proliferation κ2", "1/(cell index · h)"),
    ("death_rate", "theta", "CAR T death θ", "1/h"),
)
KEYS = ("tumor_line", "data_column", "t_start_.hr.", "dex_.ug.ml.", "t_cell_start.ci.")
NUMERIC = (
    *KEYS[2:],
    "c0_val",
    "c3_val",
    *(f"{c}_{s}" for _, c, _, _ in PARAMETERS for s in ("val", "stderr")),
)
FIRST_ROW, ROW_HOURS, Z95 = 100, 0.25, 1.959964
COLUMNS = tuple("parameter source group subject estimate lower upper unit agree note".split())
SOURCE = "published (least squares, pair mean ± 1.96 SE)"
PathLike = str | os.PathLike[str]


def read_published(path: PathLike) -> pd.DataFrame:
    """The dexamethasone-free rows of a published ``fit_parameters.csv``, one per well pair.

    Raises
    ------
    CartfitError
        Listing every missing column, non-numeric cell (``FILE:ROW:COLUMN``) and pair with two
        different rows.
    """
    from cartfit.io import read_text

    read_text(path)  # a located error for a missing or unreadable file
    df = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in NUMERIC + KEYS[:2] if c not in df.columns]
    if missing:
        raise ValidationError([Problem(str(path), 1, c, "missing column") for c in missing])
    problems = []
    for col in NUMERIC:
        raw = df[col].str.strip()
        num = pd.to_numeric(raw, errors="coerce")
        for i in np.flatnonzero(raw.notna() & num.isna()):
            problems.append(Problem(str(path), int(i) + 2, col, f"not a number: {raw[i]!r}"))
        df[col] = num
    df["line"] = np.arange(len(df)) + 2
    df = df[df["dex_.ug.ml."].fillna(0).eq(0)].drop_duplicates(subset=list(NUMERIC + KEYS[:2]))
    for _, rows in df.groupby(["tumor_line", "data_column"]):
        if len(rows) > 1:
            lines, last = ", ".join(str(n) for n in rows["line"]), int(rows["line"].iloc[-1])
            what = f"{rows['data_column'].iloc[0]} has rows {lines} that differ"
            problems.append(Problem(str(path), last, "data_column", what, "one fit per pair"))
    if problems:
        raise ValidationError(problems)
    return df.set_index(["tumor_line", "data_column"])


def published_row(published: pd.DataFrame, subject: pd.Series, path: PathLike) -> pd.Series:
    """The published row of a well: ``line_code`` = ``tumor_line`` and ``"Y(" + well_pair +
    ")"`` = ``data_column``."""
    key = (str(subject["line_code"]), f"Y({subject['well_pair']})")
    if key not in published.index:
        raise CartfitError(
            f"{path}:0:data_column: no dexamethasone-free row for {key[0]} "
            f"{key[1]} (well {subject.name})"
        )
    return published.loc[key]


def converted_draws(tree: xr.DataTree, c_start: float, t_start: float) -> dict[str, np.ndarray]:
    """Posterior draws of one subject fit converted to the authors' parameters (module
    equations); ``c_start`` is their CAR T level at ``t_start`` (days, our time axis)."""
    from cartfit.inference.predict import fit_model, posterior_draws, solve_draws

    model = fit_model(tree)
    if list(model.parameter_names) != [name for name, *_ in PARAMETERS]:
        raise CartfitError(
            f"fit of {model.name}/{model.growth}: the published comparison "
            "needs predator_prey with logistic growth"
        )
    draws = posterior_draws(tree)
    theta = dict(zip(model.parameter_names, np.moveaxis(draws["theta"][:, 0], -1, 0), strict=True))
    const = tree["constant_data"]
    s = float(const["scale"].sel(analyte="tumor"))
    ys, _ = solve_draws(model, draws["theta"], draws["log_y0"], np.array([0.0, t_start]))
    c_ours = np.exp(ys[:, 0, -1, model.extras["car_t_states"][0]])
    return {
        "growth_rate": theta["growth_rate"] / 24,
        "carrying_capacity": 1 / (s * theta["carrying_capacity"]),
        "kill_rate": theta["kill_rate"] * c_ours / (24 * c_start),
        "proliferation_rate": theta["proliferation_rate"] / (24 * s),
        "death_rate": theta["death_rate"] / 24,
    }


def published_comparison_table(
    fits: Sequence[PathLike], published_csv: PathLike, subjects_csv: PathLike | None = None
) -> pd.DataFrame:
    """Per well and parameter: our posterior median and 5–95 % interval, and the published
    estimate ± 1.96 SE of the well's pair, in the authors' units (module equations).

    Parameters
    ----------
    fits
        Subject fits (one well each) of ``predator_prey`` with ``logistic`` growth.
    published_csv
        The authors' ``fit_parameters.csv`` (``published_fit_parameters.csv`` of the cohort).
    subjects_csv
        ``subjects.csv`` with ``line_code`` and ``well_pair``; default: next to
        ``published_csv``.

    Returns
    -------
    pandas.DataFrame
        ``parameter, source, group, subject, estimate, lower, upper, unit, agree, note``; one
        cartfit row per well and one published row per pair (``group`` = cell line and pair);
        ``agree``: the intervals overlap (a published row: with every well of its pair).
    """
    from cartfit.inference.predict import load_fit

    subjects_csv = subjects_csv or Path(published_csv).parent / "subjects.csv"
    subjects = pd.read_csv(subjects_csv, dtype=str).set_index("subject")
    for column in ("line_code", "well_pair", "cell_line"):
        if column not in subjects.columns:
            raise CartfitError(f"{subjects_csv}:1:{column}: missing column")
    published = read_published(published_csv)
    wells = {}
    for path in fits:
        tree = load_fit(path)
        const = tree["constant_data"]
        if const.sizes.get("subject") != 1:
            raise CartfitError(f"{path}: not a subject fit (the comparison is per well)")
        sid = str(const["subject"].values[0])
        if sid not in subjects.index:
            raise CartfitError(f"{subjects_csv}: no subject {sid!r} (fit {path})")
        pub = published_row(published, subjects.loc[sid], published_csv)
        t_start = (
            float(const["obs_time"].min()) + (pub["t_start_.hr."] - FIRST_ROW) * ROW_HOURS / 24
        )
        group = f"{subjects.loc[sid, 'cell_line']} {subjects.loc[sid, 'well_pair']}"
        draws = converted_draws(tree, float(pub["t_cell_start.ci."]), t_start)
        wells[sid] = (group, pub, draws, _convergence_note(tree.attrs))
    if not wells:
        raise CartfitError("published comparison: no fit file given")
    rows = []
    for sid in sorted(wells):
        group, pub, draws, note = wells[sid]
        rank = sorted(s for s, w in wells.items() if w[0] == group).index(sid) + 1
        source = f"cartfit, well {rank} (median, 5–95 %)"
        for name, _, label, unit in PARAMETERS:
            lo, med, hi = np.nanquantile(draws[name], [0.05, 0.5, 0.95])
            rows.append((label, source, group, sid, med, lo, hi, unit, note))
    for group in dict.fromkeys(w[0] for w in wells.values()):
        sids = sorted(s for s, w in wells.items() if w[0] == group)
        pub = wells[sids[0]][1]
        dex = f"dexamethasone terms c0={pub['c0_val']:.3g}, c3={pub['c3_val']:.3g} not in cartfit"
        dex = dex if pub["c0_val"] != 0 or pub["c3_val"] != 0 else ""
        for _, stem, label, unit in PARAMETERS:
            v, se = pub[f"{stem}_val"], pub[f"{stem}_stderr"]
            no_se = "no standard error published" if np.isnan(se) else ""
            note = "; ".join(n for n in (no_se, dex) if n)
            se = 0.0 if np.isnan(se) else se
            lo, hi = v - Z95 * se, v + Z95 * se
            rows.append((label, SOURCE, group, ",".join(sids), v, lo, hi, unit, note))
    return _agreement(pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "agree"]))


def _convergence_note(attrs: dict) -> str:
    problems = stored_problems(attrs)
    return NOT_CONVERGED_NOTE + "; ".join(problems) if problems else ""


def _agreement(df: pd.DataFrame) -> pd.DataFrame:
    """``agree``: a cartfit interval overlaps the published one of its pair and parameter."""
    pub = df["source"] == SOURCE
    ref = df[pub].set_index(["group", "parameter"])[["lower", "upper"]]
    other = ref.reindex(pd.MultiIndex.from_frame(df[["group", "parameter"]])).to_numpy()
    overlap = (df["lower"].to_numpy() <= other[:, 1]) & (other[:, 0] <= df["upper"].to_numpy())
    df["agree"] = overlap
    ours = df[~pub].groupby(["group", "parameter"])["agree"].all()
    df.loc[pub, "agree"] = ours.reindex(
        pd.MultiIndex.from_frame(df.loc[pub, ["group", "parameter"]])
    ).to_numpy()
    return df[list(COLUMNS)]
