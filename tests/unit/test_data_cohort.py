"""Valid edge cases are accepted and the Cohort object gives typed, sorted data."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from cartfit.data import load_cohort, summarize
from cartfit.errors import CartfitError, ValidationError

OBS = """subject,time,analyte,value,unit,lloq,blq
P02,7,car_t,800,copies/ug,5,0
P01,28,tumor,10,SPD mm2,,
P01,7,car_t,12000,copies/ug,5,0
P01,0,car_t,,copies/ug,5,1
P01,-2,tumor,40,SPD mm2,,
P01,-7,tumor,44,SPD mm2,,
"""
SUBJ = """subject,dose,costim,site,notes
P01,1e8,CD28,Zürich,réponse complète ✓
P02,5e7,,東京,
"""


def write(
    folder: Path, obs: str = OBS, subj: str = SUBJ, meta: str | None = None, encoding: str = "utf-8"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "observations.csv").write_bytes(obs.encode(encoding))
    (folder / "subjects.csv").write_bytes(subj.encode(encoding))
    if meta is not None:
        (folder / "cohort.yaml").write_text(meta, encoding="utf-8")
    return folder


def test_typed_sorted_observations(tmp_path: Path) -> None:
    cohort = load_cohort(write(tmp_path / "c"))
    obs = cohort.observations
    assert list(obs.columns) == [
        "subject",
        "time",
        "analyte",
        "value",
        "unit",
        "lloq",
        "blq",
        "line",
    ]
    assert list(zip(obs["subject"], obs["analyte"], obs["time"], strict=True)) == [
        ("P01", "car_t", 0.0),
        ("P01", "car_t", 7.0),
        ("P01", "tumor", -7.0),
        ("P01", "tumor", -2.0),
        ("P01", "tumor", 28.0),
        ("P02", "car_t", 7.0),
    ]
    assert obs["line"].tolist() == [5, 4, 7, 6, 3, 2]
    assert obs["blq"].tolist() == [True, False, False, False, False, False]
    assert math.isnan(obs["value"].iloc[0]) and obs["lloq"].iloc[0] == 5.0
    assert math.isnan(obs["lloq"].iloc[2])
    assert obs["time"].dtype == np.float64 and obs["blq"].dtype == bool
    assert cohort.units == {"car_t": "copies/ug", "tumor": "SPD mm2"}
    assert cohort.subject_ids == ("P01", "P02") and cohort.analytes == ("car_t", "tumor")


def test_subjects_keep_covariates_and_unicode(tmp_path: Path) -> None:
    subjects = load_cohort(write(tmp_path / "c")).subjects
    assert subjects.loc["P01", "dose"] == 1e8 and subjects.loc["P02", "dose"] == 5e7
    assert subjects.loc["P01", "costim"] == "CD28" and subjects.loc["P02", "costim"] is None
    assert subjects.loc["P02", "site"] == "東京"
    assert subjects.loc["P01", "notes"] == "réponse complète ✓"


def test_extra_observation_columns_are_kept(tmp_path: Path) -> None:
    obs = OBS.replace("lloq,blq\n", "lloq,blq,visit\n", 1)
    obs = "\n".join(line + ",V" if i else line for i, line in enumerate(obs.splitlines())) + "\n"
    cohort = load_cohort(write(tmp_path / "c", obs=obs))
    assert cohort.observations["visit"].eq("V").all()


def test_bom_crlf_blank_lines_spaces_and_quotes(tmp_path: Path) -> None:
    obs = (
        "\ufeff"
        + OBS.replace("\n", "\r\n").replace("P02,7,", ' "P02" , 7 ,')
        + "\r\n\r\n,,,,,,\r\n"
    )
    cohort = load_cohort(write(tmp_path / "c", obs=obs))
    plain = load_cohort(write(tmp_path / "d"))
    assert cohort.observations.drop(columns="line").equals(plain.observations.drop(columns="line"))


def test_trailing_unnamed_empty_columns_are_ignored(tmp_path: Path) -> None:
    subj = "".join(line + ",," + "\n" for line in SUBJ.splitlines())
    cohort = load_cohort(write(tmp_path / "c", subj=subj))
    assert list(cohort.subjects.columns) == ["dose", "costim", "site", "notes", "line"]


def test_blq_derived_from_value_below_lloq_when_column_absent(tmp_path: Path) -> None:
    obs = (
        "subject,time,analyte,value,unit,lloq\nP01,1,car_t,3,copies/ug,5\n"
        "P01,2,car_t,6,copies/ug,5\n"
    )
    obs += "P02,1,tumor,1,mm,\n"
    cohort = load_cohort(write(tmp_path / "c", obs=obs))
    assert cohort.observations["blq"].tolist() == [True, False, False]
    assert cohort.observations["value"].tolist()[:2] == [3.0, 6.0]


def test_blq_column_with_empty_cells_is_derived(tmp_path: Path) -> None:
    obs = (
        "subject,time,analyte,value,unit,lloq,blq\nP01,1,car_t,3,copies/ug,5,\n"
        "P01,2,car_t,6,copies/ug,5,\n"
    )
    obs += "P02,1,tumor,1,mm,,0\n"
    assert load_cohort(write(tmp_path / "c", obs=obs)).observations["blq"].tolist() == [
        True,
        False,
        False,
    ]


def test_meta_defaults_and_values(tmp_path: Path) -> None:
    cohort = load_cohort(write(tmp_path / "trial-7", meta=""))
    assert cohort.meta["name"] == "trial-7" and cohort.meta["car_t_cells_per_unit"] is None
    meta = "name: demo\ncar_t_cells_per_unit: 2.5e3\nnotes: élan\n"
    cohort = load_cohort(write(tmp_path / "e", meta=meta))
    assert cohort.meta["name"] == "demo" and cohort.meta["car_t_cells_per_unit"] == 2500.0
    assert cohort.meta["notes"] == "élan" and cohort.meta["relapse_threshold"] is None


def test_sha256_is_stable_and_sees_every_byte(tmp_path: Path) -> None:
    a = load_cohort(write(tmp_path / "a")).sha256
    assert load_cohort(write(tmp_path / "b")).sha256 == a
    assert load_cohort(write(tmp_path / "c", obs=OBS.replace("800", "801"))).sha256 != a
    assert load_cohort(write(tmp_path / "d", meta="notes: x\n")).sha256 != a


def test_select_series_and_baseline(tmp_path: Path) -> None:
    cohort = load_cohort(write(tmp_path / "c"))
    one = cohort.select(["P02"])
    assert one.subject_ids == ("P02",) and one.units == {"car_t": "copies/ug"}
    assert one.sha256 == cohort.sha256 and len(one.observations) == 1
    series = cohort.series("P01", "tumor")
    assert series.time.tolist() == [-7.0, -2.0, 28.0] and series.value.tolist() == [
        44.0,
        40.0,
        10.0,
    ]
    assert cohort.baseline("P01", "tumor") == 40.0
    assert math.isnan(cohort.baseline("P02", "tumor"))
    with pytest.raises(CartfitError, match="no subject 'P03'"):
        cohort.select(["P01", "P03"])


def test_summary_counts(tmp_path: Path) -> None:
    text = summarize(load_cohort(write(tmp_path / "c")))
    assert "subjects      2 (costim: CD28 1, unknown 1)" in text
    assert "observations  6 rows, 1 below LLOQ, 2 before infusion" in text
    assert "time span     day -7 to day 28" in text
    assert "car_t              copies/ug             3 rows, 2 subjects, 1 BLQ" in text
    assert len(text.splitlines()) <= 24


def test_every_problem_of_every_file_at_once(tmp_path: Path) -> None:
    obs = OBS.replace("P02,7,car_t,800", "P02,x,car_t,-800").replace(
        "SPD mm2,,\nP01,7", "SPD,,\nP01,7"
    )
    subj = SUBJ.replace("5e7,,", "0,other2,")
    folder = write(tmp_path / "c", obs=obs, subj=subj, meta="factor: 2\n")
    with pytest.raises(ValidationError) as info:
        load_cohort(folder)
    located = [(Path(p.file).name, p.row, p.column) for p in info.value.problems]
    assert located == [
        ("observations.csv", 2, "time"),
        ("observations.csv", 2, "value"),
        ("observations.csv", 3, "unit"),
        ("subjects.csv", 3, "dose"),
        ("subjects.csv", 3, "costim"),
        ("cohort.yaml", 1, "factor"),
    ]
    assert str(info.value).endswith("6 problem(s) found")


def test_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"nowhere:0:: no such folder"):
        load_cohort(tmp_path / "nowhere")
    (tmp_path / "file.csv").write_text("x")
    with pytest.raises(ValidationError, match=r"file.csv:0:: is a file"):
        load_cohort(tmp_path / "file.csv")
    folder = write(tmp_path / "c")
    (folder / "observations.csv").unlink()
    (folder / "observations.csv").mkdir()
    with pytest.raises(ValidationError, match=r"observations.csv:0:: is a folder"):
        load_cohort(folder)
    (folder / "observations.csv").rmdir()
    os.mkfifo(folder / "observations.csv")  # would block a naive reader
    with pytest.raises(ValidationError, match=r"observations.csv:0:: is not a regular file"):
        load_cohort(folder)
    (folder / "cohort.yaml").mkdir()
    with pytest.raises(ValidationError, match=r"cohort.yaml:0:: is a folder \(a YAML file\)"):
        load_cohort(folder)
