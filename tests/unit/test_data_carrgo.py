"""The bundled real cohort data/carrgo follows the contract and what its README states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartfit.data import load_cohort

CARRGO = Path(__file__).resolve().parents[2] / "data" / "carrgo"


def test_carrgo_cohort_matches_its_readme() -> None:
    cohort = load_cohort(CARRGO)
    obs, subjects = cohort.observations, cohort.subjects
    assert cohort.units == {"tumor": "cell index", "car_t": "cells"}
    assert cohort.n_subjects == 18 and len(obs) == 1032 and int(obs["blq"].sum()) == 296
    assert sorted(subjects["dose"].unique()) == [500.0, 1250.0, 2500.0]
    assert (subjects["dexamethasone_ng_per_ml"] == 0).all()
    assert np.allclose(subjects["car_t_start_ci"], subjects["dose"] / 1e4)
    tumor = obs[obs["analyte"] == "tumor"]
    assert len(tumor) == 1014 and tumor.groupby("subject").size().between(56, 57).all()
    assert tumor["time"].min() > 0 and tumor["time"].max() < 6.0
    assert (tumor["lloq"] == 0.1).all() and (tumor.loc[~tumor["blq"], "value"] >= 0.1).all()
    assert cohort.meta["tumor_cells_per_unit"] == 1e4
    assert cohort.meta["car_t_cells_per_unit"] == 1.0


def test_car_t_is_the_end_point_flow_count() -> None:
    """One car_t row per well at the plate's last reading; the pair means are the authors'
    ``t_cell_end.ci.`` (10⁴-cell units)."""
    cohort = load_cohort(CARRGO)
    car_t = cohort.observations[cohort.observations["analyte"] == "car_t"].set_index("subject")
    assert len(car_t) == 18 and (car_t["lloq"] == 50).all() and not car_t["blq"].any()
    assert set(np.round(car_t["time"], 3)) == {5.809, 5.956}  # P1R, P2R
    published = pd.read_csv(CARRGO / "published_fit_parameters.csv", encoding="utf-8-sig")
    subjects = cohort.subjects.assign(count=car_t["value"])
    for (line, pair), wells in subjects.groupby(["line_code", "well_pair"]):
        row = published[
            (published["tumor_line"] == line) & (published["data_column"] == f"Y({pair})")
        ]
        assert wells["count"].mean() / 1e4 == pytest.approx(row["t_cell_end.ci."].iloc[0], abs=1e-4)


def test_each_subject_has_a_published_fit_row() -> None:
    subjects = load_cohort(CARRGO).subjects
    published = pd.read_csv(CARRGO / "published_fit_parameters.csv", encoding="utf-8-sig")
    keys = set(zip(published["tumor_line"], published["data_column"], strict=True))
    for line, pair in zip(subjects["line_code"], subjects["well_pair"], strict=True):
        assert (line, f"Y({pair})") in keys
    row = published[(published["tumor_line"] == "PBT1") & (published["data_column"] == "Y(B1,B2)")]
    assert row["t_cell_start.ci."].iloc[0] == 0.25


def test_control_wells_are_untreated_growth_curves() -> None:
    controls = pd.read_csv(CARRGO / "control_wells.csv")
    assert controls["subject"].nunique() == 6 and (controls["unit"] == "cell index").all()
    first_last = controls.groupby("subject")["value"].agg(["first", "last"])
    assert (first_last["last"] > 2 * first_last["first"]).all()  # tumour grows without CAR T
