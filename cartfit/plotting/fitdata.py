"""What the figures read from a fit file (see :mod:`cartfit.inference.fitfile`); no matplotlib."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from cartfit.errors import CartfitError


def check_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise :class:`CartfitError` naming the missing columns, or an empty table."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CartfitError(f"{what}: table lacks column(s) {missing} (expected {list(columns)})")
    if df.empty:
        raise CartfitError(f"{what}: table is empty")


def _attr_json(tree: xr.DataTree, key: str, default: object) -> object:
    text = tree.attrs.get(key)
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def fit_units(tree: xr.DataTree) -> dict[str, str]:
    """Analyte -> measurement unit (``units`` attribute; empty when absent)."""
    units = _attr_json(tree, "units", {})
    return {str(k): str(v) for k, v in units.items()} if isinstance(units, dict) else {}


def fit_settings(tree: xr.DataTree) -> dict:
    """Sampler settings of the fit (``settings`` attribute)."""
    settings = _attr_json(tree, "settings", {})
    return settings if isinstance(settings, dict) else {}


def fit_caption(tree: xr.DataTree) -> str:
    """One line naming the model, growth law, fit mode and sampler settings."""
    a = tree.attrs
    s = fit_settings(tree)
    line = f"{a.get('model', '?')} / {a.get('growth', '?')} growth, {a.get('mode', '?')} fit"
    if {"chains", "draws"} <= s.keys():
        line += f", {s['chains']} chains × {s['draws']} draws"
        if "tune" in s:
            line += f" (tune {s['tune']})"
    if s.get("likelihood"):
        line += f", {s['likelihood']} errors"
    return line


def observation_table(tree: xr.DataTree) -> pd.DataFrame:
    """The fitted observations: ``subject, time, analyte, value, lloq, blq`` (one row per obs).

    ``value`` is the measurement in natural units, or the LLOQ on censored (BLQ) rows.
    """
    if "constant_data" not in tree or "observed_data" not in tree:
        raise CartfitError("fit file has no observed_data/constant_data group (not a cartfit fit)")
    const = tree["constant_data"]
    return pd.DataFrame(
        {
            "subject": const["obs_subject"].values.astype(str),
            "time": const["obs_time"].values.astype(float),
            "analyte": const["obs_analyte"].values.astype(str),
            "value": tree["observed_data"]["y"].values.astype(float),
            "lloq": const["obs_lloq"].values.astype(float),
            "blq": const["obs_blq"].values.astype(bool),
        }
    )


def replicated_draws(tree: xr.DataTree, n_sim: int | None = None, seed: int = 0) -> np.ndarray:
    """Replicated measurements ``(n_sim, n_obs)`` from the ``posterior_predictive`` group.

    Draws are pooled over chains and thinned at random (seeded) to ``n_sim`` when given.
    """
    if "posterior_predictive" not in tree or "y" not in tree["posterior_predictive"]:
        raise CartfitError("fit file has no posterior_predictive/y (replicated measurements)")
    y = tree["posterior_predictive"]["y"]
    flat = y.stack(sample=("chain", "draw")).transpose("sample", "obs").values
    if n_sim is not None and n_sim < flat.shape[0]:
        idx = np.sort(np.random.default_rng(seed).choice(flat.shape[0], n_sim, replace=False))
        flat = flat[idx]
    return np.asarray(flat, dtype=float)
