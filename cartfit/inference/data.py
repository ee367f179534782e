"""Arrays a model builder needs, prepared from a cohort: scales, padded time grids, index maps.

Measured values are divided by a per-analyte reference level (``scale``) so the ODE states are
O(1); the likelihood works on ``ln(value / scale)``. Post-infusion rows (``t >= 0``) are predicted
by the ODE solve on each subject's own sorted, padded time grid; pre-infusion tumour rows
(``t < 0``) by the growth law's closed form (untreated growth before day 0). Pre-infusion CAR T
and antigen-negative rows carry no information on the model and are left out (listed in
``dropped``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cartfit.data.schema import FRACTION_ANALYTES, FRACTION_UNITS
from cartfit.errors import CartfitError
from cartfit.models.base import ODEModel

#: tumour analytes whose pre-infusion rows are predicted by untreated growth
PRE_INFUSION_ANALYTES = ("tumor",)


@dataclass(frozen=True)
class FitData:
    """Everything numeric the model builder needs, in scaled units."""

    subjects: tuple[str, ...]
    analytes: tuple[str, ...]
    scales: dict[str, float]
    times: np.ndarray  # (n_sub, n_t) padded ODE output times >= 0
    n_times: np.ndarray  # (n_sub,)
    obs: pd.DataFrame  # one row per used observation, with index columns
    baseline_log_tumor: np.ndarray  # (n_sub,) ln(baseline / scale); NaN if unknown
    log_dose_rel: np.ndarray  # (n_sub,) ln(dose / median dose)
    covariates: pd.DataFrame  # indexed by subject: costim, lymphodepletion ...
    dropped: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: cohort.yaml ``priors``: {parameter: {median, log_sd}} replacing the model's defaults
    prior_overrides: dict = field(default_factory=dict)
    dose: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_sub,) as in subjects.csv

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)


def _reference_levels(obs: pd.DataFrame) -> dict[str, float]:
    """Per analyte: median over subjects of each subject's largest measured value; a phenotype
    fraction's scale is the whole in its unit (1 or 100 %), so that it is a share of the
    model's CAR T states."""
    measured = obs[~obs["blq"] & obs["value"].gt(0)]
    scales = {}
    for analyte, rows in obs[obs["analyte"].isin(FRACTION_ANALYTES)].groupby("analyte"):
        scales[str(analyte)] = FRACTION_UNITS[str(rows["unit"].iloc[0])]
    for analyte, rows in measured.groupby("analyte"):
        if analyte in scales:
            continue
        scales[str(analyte)] = float(rows.groupby("subject")["value"].max().median())
    for analyte in obs["analyte"].unique():
        if analyte not in scales:  # all censored: fall back on the LLOQ
            scales[str(analyte)] = float(np.nanmedian(obs.loc[obs["analyte"] == analyte, "lloq"]))
    if "tumor_antigen_neg" in scales and "tumor" in scales:
        scales["tumor_antigen_neg"] = scales["tumor"]  # same unit, same scale: states are shared
    return scales


def _baseline(obs: pd.DataFrame, subjects: pd.DataFrame, sid: str) -> float:
    if "baseline_tumor" in subjects.columns and pd.notna(subjects.loc[sid, "baseline_tumor"]):
        return float(subjects.loc[sid, "baseline_tumor"])
    rows = obs[(obs["subject"] == sid) & (obs["analyte"] == "tumor") & ~obs["blq"]]
    if rows.empty:
        return float("nan")
    near = rows.iloc[(rows["time"].abs()).argsort()]
    return float(near["value"].iloc[0])


def prepare(cohort, model: ODEModel, subject_ids: list[str] | None = None) -> FitData:
    """Build :class:`FitData` for ``model`` from a cohort (optionally a subset of subjects)."""
    obs = cohort.observations.copy()
    subjects = cohort.subjects
    ids = list(subject_ids) if subject_ids is not None else list(cohort.subject_ids)
    unknown = [s for s in ids if s not in set(subjects.index)]
    if unknown:
        raise CartfitError(
            f"{cohort.path}: no subject {unknown[0]!r} (subjects: {list(subjects.index)[:10]}...)"
        )
    obs = obs[obs["subject"].isin(ids)]
    usable = obs["analyte"].isin(list(model.observables))
    pre = obs["time"] < 0
    keep = usable & (~pre | obs["analyte"].isin(PRE_INFUSION_ANALYTES))
    dropped = obs[~keep]
    obs = obs[keep].copy()
    if obs.empty:
        raise CartfitError(
            f"{cohort.path}: no observation the {model.name} model can use "
            f"(it predicts {sorted(model.observables)})"
        )
    scales = _reference_levels(obs)
    sub_index = {s: i for i, s in enumerate(ids)}
    obs["subject_idx"] = obs["subject"].map(sub_index).astype(int)
    obs["pre"] = obs["time"] < 0

    grids = []
    for sid in ids:
        t = obs.loc[(obs["subject"] == sid) & ~obs["pre"], "time"].to_numpy()
        grids.append(np.unique(t))
    n_t = max(1, max(len(g) for g in grids))
    times = np.zeros((len(ids), n_t))
    n_times = np.zeros(len(ids), dtype=np.int64)
    for i, g in enumerate(grids):
        n_times[i] = len(g)
        if len(g):
            times[i, : len(g)] = g
            times[i, len(g) :] = g[-1]
    time_idx = np.zeros(len(obs), dtype=np.int64)
    for k, (i, t, is_pre) in enumerate(
        zip(obs["subject_idx"], obs["time"], obs["pre"], strict=True)
    ):
        if not is_pre:
            time_idx[k] = int(np.searchsorted(grids[i], t))
    obs["time_idx"] = time_idx
    scale = obs["analyte"].map(scales).to_numpy()
    value = np.where(obs["blq"], obs["lloq"], obs["value"]).astype(float)
    obs["log_value"] = np.log(value / scale)
    obs["log_lloq"] = np.log(obs["lloq"].to_numpy(dtype=float) / scale)
    obs["analyte_idx"] = (
        obs["analyte"].map({a: j for j, a in enumerate(sorted(scales))}).astype(int)
    )
    obs = obs.reset_index(drop=True)

    baseline = np.array([_baseline(cohort.observations, subjects, s) for s in ids])
    tumor_scale = scales.get("tumor", np.nan)
    dose = subjects.loc[ids, "dose"].to_numpy(dtype=float)
    covs = subjects.loc[ids].copy()
    return FitData(
        subjects=tuple(ids),
        analytes=tuple(sorted(scales)),
        scales=scales,
        times=times,
        n_times=n_times,
        obs=obs,
        baseline_log_tumor=np.log(baseline / tumor_scale),
        log_dose_rel=np.log(dose / np.median(cohort.subjects["dose"].to_numpy(dtype=float))),
        dose=dose,
        covariates=covs,
        dropped=dropped,
        prior_overrides=dict(cohort.meta.get("priors") or {}),
    )
