"""Convert the CARRGODEX xCELLigence killing assays into the cartfit cohort in this folder.

Usage (from the repository root; needs ``openpyxl`` to read the instrument exports)::

    python data/carrgo/convert.py SOURCE_DIR

SOURCE_DIR is a checkout of https://github.com/alexbbrummer/CARRGODEX (commit a21bace) or a
copy of it with the exports in ``raw_xcelligence_exports/``. See README.md for what is kept.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cartfit.data import load_cohort
from cartfit.io import copy_file, write_cohort, write_table

HERE = Path(__file__).resolve().parent
PLATES = {"2009011552P1R_Export.xlsx": "P1R", "2009011553P2R_Export.xlsx": "P2R"}
# (plate, layout label, cell line, rows of the plate: control, 2500, 1250, 500 CAR T cells)
LINES = (
    ("P1R", "PBT1", "PBT030", {"A": 0, "B": 2500, "C": 1250, "D": 500}),
    ("P1R", "PBT2", "PBT128", {"H": 0, "G": 2500, "F": 1250, "E": 500}),
    ("P2R", "PBT4", "PBT138 high antigen", {"H": 0, "G": 2500, "F": 1250, "E": 500}),
)
WELLS = (1, 2)  # plate columns 1-2: no dexamethasone, duplicate wells
EFFECTOR_TO_TARGET = {2500: "1:5", 1250: "1:10", 500: "1:25"}  # as in the cytometry file names
SETTLE_HOURS = (
    1.5  # readings this soon after the plate came back are dropped (the authors' row 100)
)
EVERY = 10  # keep every 10th 15-minute reading: one per 2.5 h, at most 57 per well
LLOQ = 0.1  # cell index; see README.md
UNIT = "cell index"
CYTOMETRY = "cytometry_results.xlsx"  # end-point flow cytometry, one row per well
# cytometry's name of each cell line (column PBT)
CYTOMETRY_LINE = {"PBT030": "PBT030", "PBT128": "PBT128+", "PBT138 high antigen": "PBT138 high"}
CAR_T_LLOQ = 50.0  # cells; above every untreated well's count (0-38), see README.md
CAR_T_UNIT = "cells"
# Priors for the in-vitro kinetics, written into cohort.yaml with this comment above them.
PRIORS = {
    "growth_rate": {"median": 1.0, "log_sd": 1.5},
    "death_rate": {"median": 0.05, "log_sd": 1.5},
    "initial_car_t": {"median": 1.0, "log_sd": 0.5},
}
PRIORS_COMMENT = """\
# In-vitro kinetics are faster than the clinical defaults the model priors are written for:
# the cell lines double in about a day (the authors' rho ~ 0.05-0.3 per hour) and CAR T cells
# die slowly over a six-day assay. The plated CAR T cells are counted in the same unit as
# the end-point count (cells), so the initial level is centred on the plated number.
"""


def read_plate(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Times (hours since the start of the run) and the cell index of every well."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(book["Cell Index"].iter_rows(values_only=True))
    hours: list[float] = []
    wells: dict[str, list[float]] = {}
    for i, row in enumerate(rows):
        if isinstance(row[0], str) and row[0].startswith("Cell Index at:"):
            h, m, s = (int(x) for x in row[0].split(": ")[1].split(":"))
            hours.append(h + m / 60 + s / 3600)
            for letter, *values in rows[i + 2 : i + 10]:
                for col, value in enumerate(values, start=1):
                    wells.setdefault(f"{letter}{col}", []).append(float(value))
    return np.array(hours), {w: np.array(v) for w, v in wells.items()}


def read_cytometry(path: Path) -> dict[tuple[str, str], dict]:
    """End-point flow cytometry per (export file without ``.xlsx``, well): the row's fields."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    header, *rows = book[book.sheetnames[0]].iter_rows(values_only=True)
    records = [dict(zip(header, row, strict=True)) for row in rows if row[0] is not None]
    return {(str(r["Paired Xcelligence Filename"]), str(r["Well ID"])): r for r in records}


def car_t_row(subject: str, day: float, record: dict, line: str, dose: float) -> pd.DataFrame:
    """The end-point CAR T count of a well as one ``car_t`` observation at ``day``."""
    if record["PBT"] != CYTOMETRY_LINE[line] or float(record["Plated Effector"]) != dose:
        raise ValueError(f"{subject}: cytometry row {record} does not match {line}, dose {dose}")
    count = float(record["Residual Effector Count"])
    blq = count < CAR_T_LLOQ
    return pd.DataFrame(
        {
            "subject": [subject],
            "time": [round(day, 5)],
            "analyte": ["car_t"],
            "value": [np.nan if blq else count],
            "unit": [CAR_T_UNIT],
            "lloq": [CAR_T_LLOQ],
            "blq": [int(blq)],
        }
    )


def addition_index(hours: np.ndarray) -> int:
    """First reading after the effector cells were added: the longest pause in the first day
    and a half (the plate is taken out of the reader to add the cells)."""
    early = np.diff(hours[hours < 36.0])
    return int(np.argmax(early)) + 1


def well_rows(plate: str, hours: np.ndarray, ci: np.ndarray, subject: str) -> pd.DataFrame:
    start = addition_index(hours)
    days = (hours - hours[start]) / 24.0
    keep = np.flatnonzero(days >= SETTLE_HOURS / 24.0 - 1e-9)[::EVERY]
    value = ci[keep]
    blq = value < LLOQ
    return pd.DataFrame(
        {
            "subject": subject,
            "time": np.round(days[keep], 5),
            "analyte": "tumor",
            "value": np.where(blq, np.nan, value),
            "unit": UNIT,
            "lloq": LLOQ,
            "blq": blq.astype(int),
        }
    )


def convert(source: Path, out: Path) -> None:
    raw = source / "raw_xcelligence_exports"
    raw = raw if raw.is_dir() else source
    plates = {code: read_plate(raw / name) for name, code in PLATES.items()}
    cytometry = read_cytometry(source / CYTOMETRY)
    exports = {code: name.removesuffix(".xlsx") for name, code in PLATES.items()}
    treated, controls, subjects = [], [], []
    for plate, code, line, rows in LINES:
        hours, wells = plates[plate]
        for letter, dose in rows.items():
            for col in WELLS:
                well = f"{letter}{col}"
                subject = f"{line.split()[0]}{'high' if 'high' in line else ''}_{well}"
                table = well_rows(plate, hours, wells[well], subject)
                if dose == 0:
                    controls.append(table.assign(cell_line=line, plate=plate, well=well))
                    continue
                # flow cytometry was done at the end of the assay: the plate's last reading
                end_day = (hours[-1] - hours[addition_index(hours)]) / 24.0
                record = cytometry[(exports[plate], well)]
                treated += [table, car_t_row(subject, end_day, record, line, float(dose))]
                subjects.append(
                    {
                        "subject": subject,
                        "dose": float(dose),
                        "product": "IL13Rα2-targeted CAR T",
                        "cell_line": line,
                        "line_code": code,
                        "plate": plate,
                        "well": well,
                        "well_pair": f"{letter}1,{letter}2",
                        "effector_to_target": EFFECTOR_TO_TARGET[dose],
                        "car_t_start_ci": dose / 1e4,
                        "dexamethasone_ng_per_ml": 0.0,
                    }
                )
    meta = {
        "name": "carrgo",
        "description": "IL13Rα2 CAR T cells killing patient-derived glioblastoma lines in vitro "
        "(xCELLigence cell index, one subject per well, no dexamethasone).",
        "source": "Brummer et al., CARRGODEX, github.com/alexbbrummer/CARRGODEX commit a21bace",
        "license": "MIT, Copyright (c) 2021 Alex Brummer",
        "car_t_cells_per_unit": 1.0,
        "tumor_cells_per_unit": 1.0e4,
        "relapse_threshold": LLOQ,
        "notes": "time 0 = first reading after the CAR T cells were added; car_t = end-point "
        "flow-cytometry count (cells) at the last reading; see README.md",
        "priors": PRIORS,
    }
    # The cohort files live next to this script and README.md, so the cohort is validated in a
    # staging folder and its files are then copied in one by one (each atomically).
    with tempfile.TemporaryDirectory(dir=out.parent) as staging:
        staged = write_cohort(
            Path(staging) / "cohort",
            pd.concat(treated, ignore_index=True),
            pd.DataFrame(subjects),
            meta,
        )
        meta_file = staged / "cohort.yaml"
        text = meta_file.read_text(encoding="utf-8")
        meta_file.write_text(text.replace("\npriors:", "\n" + PRIORS_COMMENT + "priors:"), "utf-8")
        for name in ("observations.csv", "subjects.csv", "cohort.yaml"):
            copy_file(staged / name, out / name)
    write_table(pd.concat(controls, ignore_index=True), out / "control_wells.csv")
    copy_file(source / "fit_parameters.csv", out / "published_fit_parameters.csv")
    load_cohort(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="CARRGODEX checkout or copy")
    parser.add_argument("--out", type=Path, default=HERE, help="cohort folder (default: here)")
    args = parser.parse_args()
    convert(args.source, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
