"""``import_nonmem``: NONMEM-style tables to cohort folders, errors located in the table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartfit.data import import_nonmem, load_cohort
from cartfit.errors import ValidationError
from cartfit.io import write_cohort

DVID = {1: "car_t", 2: "tumor"}


def to_nonmem(cohort_dir: Path, path: Path, dose_time: dict[str, float]) -> None:
    """Write a cohort as a NONMEM table (the inverse of the import), one dose record each."""
    cohort = load_cohort(cohort_dir)
    code = {v: k for k, v in DVID.items()}
    rows = []
    for subject, info in cohort.subjects.iterrows():
        t0 = dose_time[subject]
        rows.append(
            {
                "ID": subject,
                "TIME": t0,
                "DV": ".",
                "MDV": 1,
                "EVID": 1,
                "AMT": info["dose"],
                "DVID": ".",
                "BLQ": 0,
                "LLOQ": ".",
                "WT": info["weight"],
            }
        )
        for r in cohort.observations[cohort.observations["subject"] == subject].itertuples():
            rows.append(
                {
                    "ID": subject,
                    "TIME": r.time + t0,
                    "DV": r.lloq if r.blq else r.value,
                    "MDV": 0,
                    "EVID": 0,
                    "AMT": ".",
                    "DVID": code[r.analyte],
                    "BLQ": int(r.blq),
                    "LLOQ": "." if math.isnan(r.lloq) else r.lloq,
                    "WT": info["weight"],
                }
            )
    pd.DataFrame(rows).sort_values(["ID", "TIME"], kind="stable").to_csv(path, index=False)


def test_round_trip(tmp_path: Path) -> None:
    obs = pd.DataFrame(
        {
            "subject": ["1", "1", "1", "1", "2", "2"],
            "time": [-3.0, 1.0, 7.0, 28.0, 4.0, 4.0],
            "analyte": ["tumor", "car_t", "car_t", "car_t", "car_t", "tumor"],
            "value": [50.0, 120.0, 2.5e4, np.nan, 900.0, 12.0],
            "unit": ["unspecified"] * 6,
            "lloq": [np.nan, 10.0, 10.0, 10.0, 10.0, np.nan],
            "blq": [0, 0, 0, 1, 0, 0],
        }
    )
    subjects = pd.DataFrame({"subject": ["1", "2"], "dose": [5e7, 2e8], "weight": [70.5, 82.0]})
    original = load_cohort(write_cohort(tmp_path / "original", obs, subjects))
    to_nonmem(tmp_path / "original", tmp_path / "nm.csv", {"1": 0.0, "2": 10.0})
    imported = import_nonmem(tmp_path / "nm.csv", tmp_path / "imported", dvid=DVID)
    cols = ["subject", "time", "analyte", "value", "unit", "lloq", "blq"]
    pd.testing.assert_frame_equal(imported.observations[cols], original.observations[cols])
    assert imported.subjects["dose"].tolist() == [5e7, 2e8]
    assert imported.subjects["wt"].tolist() == [70.5, 82.0]
    assert load_cohort(tmp_path / "imported").sha256 == imported.sha256


def test_nonmem_conventions(tmp_path: Path) -> None:
    """'#' header and comment rows, '.' as missing, CENS alias, LLOQ taken from DV on censored
    rows, censored MDV=1 rows kept, doses summed, EVID and MDV derived when absent, 1.0 -> 1."""
    table = tmp_path / "nm.csv"
    table.write_text(
        "#id,time,dv,amt,cmt,cens,site,visit\n"
        "1.0,0,.,4e7,.,0,Lyon,a\n"
        "1.0,0.5,.,1e7,.,0,Lyon,a\n"
        "# excluded by IGNORE=#\n"
        "1.0,7,300,.,1,0,Lyon,b\n"
        "1.0,60,8,.,1,1,Lyon,c\n"
        "1.0,70,12,.,3,0,Lyon,c\n"
    )
    cohort = import_nonmem(
        table, tmp_path / "out", dvid={1: "car_t", 3: "tumor"}, units={"car_t": "copies/ug"}
    )
    obs = cohort.observations
    assert obs["time"].tolist() == [7.0, 60.0, 70.0]
    assert obs["analyte"].tolist() == ["car_t", "car_t", "tumor"]
    assert obs["value"].tolist()[0] == 300.0 and math.isnan(obs["value"].tolist()[1])
    assert obs["lloq"].tolist()[1] == 8.0 and obs["blq"].tolist() == [False, True, False]
    assert obs["visit"].tolist() == ["b", "c", "c"]
    assert cohort.units == {"car_t": "copies/ug", "tumor": "unspecified"}
    assert cohort.subjects.loc["1", "dose"] == 5e7 and cohort.subjects.loc["1", "site"] == "Lyon"


def test_time_is_shifted_to_the_first_dose(tmp_path: Path) -> None:
    table = tmp_path / "nm.csv"
    table.write_text(
        "ID,TIME,DV,MDV,EVID,AMT,DVID\nA,5,.,1,1,1e8,.\nA,2,40,0,0,.,2\nA,12,9,0,0,.,1\n"
    )
    obs = import_nonmem(table, tmp_path / "out", dvid=DVID).observations
    assert obs["time"].tolist() == [7.0, -3.0] and obs["analyte"].tolist() == ["car_t", "tumor"]


def test_errors_are_located_in_the_nonmem_file(tmp_path: Path) -> None:
    table = tmp_path / "nm.csv"
    table.write_text(
        "ID,TIME,DV,MDV,EVID,AMT,DVID,CENS\n"
        "1,0,.,1,1,0,.,0\n"
        "1,2,x,0,0,.,3,0\n"
        "1,3,5,0,0,.,1,-1\n"
        "a b,3,5,0,0,.,1,0\n"
        "3,3,5,0,0,.,1,0\n"
        "4,0,.,1,1,1e6,.,.\n"
        "4,1,-5,0,0,.,1,0\n"
        "4,1,6,0,0,.,1,0\n"
        "4,2,6,0,7,.,1,0\n"
    )
    with pytest.raises(ValidationError) as info:
        import_nonmem(table, tmp_path / "out", dvid=DVID)
    assert [str(p).replace(f"{table}:", "") for p in info.value.problems] == [
        "2:AMT: no positive dose on a dose record (CAR T cells infused, > 0)",
        "3:DV: 'x' is not a number (a number)",
        "3:DVID: '3' is not mapped to an analyte (one of 1=car_t, 2=tumor; pass --dvid 3=analyte)",
        "4:CENS: -1 is not supported (0, or 1 = below LLOQ; upper censoring is not supported)",
        "5:ID: unsafe id 'a b' (a safe id: letters, digits, '_', '.', '-', starting with a letter "
        "or digit, ≤ 64 characters)",
        "6:ID: ID 3 has no dose record (an EVID=1 record with AMT = CAR T cells infused)",
        "10:EVID: 7 is not supported (EVID 0 (observation), 1 or 4 (dose), 2 or 3 (other))",
    ]
    assert not (tmp_path / "out").exists()


def test_contract_errors_are_mapped_back_to_nonmem_lines(tmp_path: Path) -> None:
    table = tmp_path / "nm.csv"
    table.write_text("ID,TIME,DV,EVID,AMT,DVID\n1,0,.,1,1e6,.\n1,1,-5,0,.,1\n1,1,5,0,.,1\n")
    with pytest.raises(ValidationError) as info:
        import_nonmem(table, tmp_path / "out", dvid=DVID)
    assert [str(p).replace(f"{table}:", "") for p in info.value.problems] == [
        "3:DV: -5.0 is negative (a number >= 0, or empty only with blq=1)",
        "4:: duplicate of line 3 (subject 1, time 1, analyte car_t) "
        "(one measurement per subject, time and analyte)",
    ]


def test_missing_dv_on_an_observation_record(tmp_path: Path) -> None:
    table = tmp_path / "nm.csv"
    table.write_text("ID,TIME,DV,AMT,DVID\n1,0,.,1e6,.\n1,2,.,.,1\n1,3,4,.,1\n")
    with pytest.raises(ValidationError) as info:
        import_nonmem(table, tmp_path / "out", dvid=DVID)
    assert [str(p) for p in info.value.problems] == [
        f"{table}:3:DV: empty on an observation record (a number, or MDV=1)"
    ]


def test_missing_columns_and_single_analyte_map(tmp_path: Path) -> None:
    table = tmp_path / "nm.csv"
    table.write_text("ID,TIM,DV,AMT\n1,0,.,1e6\n")
    with pytest.raises(ValidationError, match=r"nm.csv:1:TIME: required column is missing"):
        import_nonmem(table, tmp_path / "out", dvid=DVID)
    table.write_text("ID,TIME,DV,AMT\n1,0,.,1e6\n1,2,30,.\n")
    with pytest.raises(ValidationError, match=r"nm.csv:1:DVID: no DVID or CMT column"):
        import_nonmem(table, tmp_path / "out", dvid=DVID)
    cohort = import_nonmem(table, tmp_path / "out", dvid={1: "tumor"})
    assert cohort.analytes == ("tumor",)
