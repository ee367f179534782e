"""Atomic writing: a failed write leaves nothing behind, a good one replaces the old output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cartfit.data import load_cohort
from cartfit.errors import CartfitError, ValidationError
from cartfit.io import atomic_path, copy_file, read_yaml, write_cohort, write_table, write_yaml

OBS = pd.DataFrame(
    {
        "subject": ["P01", "P01", "P02"],
        "time": [0.0, 7.0, 7.0],
        "analyte": ["car_t"] * 3,
        "value": [float("nan"), 1.2e4, 800.0],
        "unit": ["copies/ug"] * 3,
        "lloq": [5.0] * 3,
        "blq": [True, False, False],
    }
)
SUBJ = pd.DataFrame({"subject": ["P01", "P02"], "dose": [1e8, 5e7], "costim": ["CD28", "4-1BB"]})


def test_atomic_path_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert not target.exists() and list((tmp_path / "out").iterdir()) == []


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_write_table_and_yaml_round_trip(tmp_path: Path) -> None:
    write_table(SUBJ, tmp_path / "s.csv")
    assert pd.read_csv(tmp_path / "s.csv").equals(SUBJ)
    write_yaml({"name": "ü", "n": 3}, tmp_path / "m.yaml")
    assert read_yaml(tmp_path / "m.yaml") == {"name": "ü", "n": 3}
    copy_file(tmp_path / "m.yaml", tmp_path / "copy.yaml")
    assert (tmp_path / "copy.yaml").read_bytes() == (tmp_path / "m.yaml").read_bytes()


def test_read_yaml_errors_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(CartfitError, match=r"bad.yaml:2: invalid YAML"):
        read_yaml(tmp_path / "bad.yaml")
    with pytest.raises(CartfitError, match="no such file"):
        read_yaml(tmp_path / "none.yaml")
    with pytest.raises(CartfitError, match="is a folder"):
        read_yaml(tmp_path)


def test_write_cohort_writes_a_valid_cohort(tmp_path: Path) -> None:
    out = write_cohort(tmp_path / "c", OBS, SUBJ.set_index("subject"), {"notes": "x"})
    cohort = load_cohort(out)
    assert cohort.subject_ids == ("P01", "P02") and cohort.meta["notes"] == "x"
    assert cohort.observations["blq"].tolist() == [True, False, False]
    assert (out / "observations.csv").read_text().splitlines()[
        1
    ] == "P01,0.0,car_t,,copies/ug,5.0,1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_write_cohort_replaces_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "stale.csv").write_text("old")
    write_cohort(tmp_path / "c", OBS, SUBJ)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "observations.csv",
        "subjects.csv",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_invalid_cohort_is_never_written(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.csv").write_text("old")
    bad = OBS.assign(analyte=["car_t", "CAR-T", "car_t"])
    with pytest.raises(ValidationError) as info:
        write_cohort(tmp_path / "c", bad, SUBJ)
    assert [str(p).split(": ")[0] for p in info.value.problems] == [
        f"{tmp_path / 'c' / 'observations.csv'}:3:analyte"
    ]
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["keep.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    with pytest.raises(ValidationError):
        write_cohort(tmp_path / "new", bad, SUBJ)
    assert not (tmp_path / "new").exists()


def test_unwritable_targets_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CartfitError, match="exists and is a file"):
        write_cohort(tmp_path / "afile", OBS, SUBJ)
    with pytest.raises(CartfitError, match="cannot write here"):
        write_table(SUBJ, tmp_path / "afile" / "t.csv")
    assert (tmp_path / "afile").read_text() == "x"
