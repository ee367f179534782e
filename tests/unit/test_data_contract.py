"""Every kind of bad cohort input is rejected with its exact FILE:ROW:COLUMN and message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartfit.data import load_cohort
from cartfit.errors import ValidationError

OBS = """subject,time,analyte,value,unit,lloq,blq
P01,-2,tumor,40,SPD mm2,,
P01,0,car_t,,copies/ug,5,1
P01,7,car_t,12000,copies/ug,5,0
P01,28,tumor,10,SPD mm2,,
P02,7,car_t,800,copies/ug,5,0
"""
SUBJ = """subject,dose,costim
P01,1e8,CD28
P02,5e7,4-1BB
"""
ID_RULE = (
    "a safe id: letters, digits, '_', '.', '-', starting with a letter or digit, ≤ 64 characters"
)


def write(
    folder: Path,
    obs: str | bytes | None = OBS,
    subj: str | bytes | None = SUBJ,
    meta: str | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("observations.csv", obs), ("subjects.csv", subj), ("cohort.yaml", meta)):
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        elif content is not None:
            (folder / name).write_text(content, encoding="utf-8")
    return folder


def problems(folder: Path) -> list[str]:
    with pytest.raises(ValidationError) as info:
        load_cohort(folder)
    return [str(p).replace(f"{folder}/", "") for p in info.value.problems]


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


CASES = {
    # --- files and folders -------------------------------------------------------------------
    "observations missing": (
        dict(obs=None),
        ["observations.csv:0:: file is missing (a CSV file observations.csv)"],
    ),
    "observations empty": (
        dict(obs=""),
        ["observations.csv:0:: file is empty (a header line subject,time,analyte,value,unit)"],
    ),
    "observations blank lines only": (
        dict(obs="\n\n  \n"),
        ["observations.csv:0:: file is empty (a header line subject,time,analyte,value,unit)"],
    ),
    "subjects header only": (
        dict(subj="subject,dose\n"),
        ["subjects.csv:0:: no data rows after the header (one row per record)"],
    ),
    "semicolons": (
        dict(obs=OBS.replace(",", ";")),
        [
            "observations.csv:1:: fields are separated by semicolons "
            "(comma-separated values: export the sheet as CSV with ',' and '.')"
        ],
    ),
    "tabs": (
        dict(subj=SUBJ.replace(",", "\t")),
        [
            "subjects.csv:1:: fields are separated by tabs "
            "(comma-separated values: export the sheet as CSV with ',' and '.')"
        ],
    ),
    "binary": (
        dict(obs=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ["observations.csv:3:: binary content (NUL byte) (a UTF-8 CSV text file)"],
    ),
    "latin-1": (
        dict(subj=(SUBJ + "P03,1e6,CD28\n").replace("P03", "Pé").encode("latin-1")),
        ["subjects.csv:4:: not UTF-8 text (byte 0xe9) (a file saved as UTF-8)"],
    ),
    # --- header -----------------------------------------------------------------------------
    "missing column": (
        dict(obs=OBS.replace(",unit,", ",").replace(",SPD mm2,", ",").replace(",copies/ug,", ",")),
        ["observations.csv:1:unit: required column is missing (unit of `value`, one per analyte)"],
    ),
    "misspelt column": (
        dict(obs=replace(OBS, "value", "valeu")),
        [
            "observations.csv:1:value: required column is missing "
            "(measured value >= 0 in the row's unit, empty only when blq=1; rename 'valeu' to"
            " 'value'?)"
        ],
    ),
    "wrong case": (
        dict(subj=replace(SUBJ, "dose", "Dose")),
        [
            "subjects.csv:1:dose: required column is missing "
            "(CAR T cells infused, > 0; rename 'Dose' to 'dose'?)"
        ],
    ),
    "optional column misspelt": (
        dict(obs=replace(OBS, "lloq", "LLOQ")),
        [
            "observations.csv:1:LLOQ: column name looks like a misspelt 'lloq' "
            "(exactly 'lloq'; a covariate needs a name less close to it)",
            "observations.csv:3:lloq: blq=1 but lloq is empty "
            "(the lower limit of quantification of a BLQ row)",
        ],
    ),
    "column twice": (
        dict(subj="subject,dose,dose\nP01,1,1\nP02,1,1\n"),
        ["subjects.csv:1:dose: column appears twice (fields 2 and 3) (each column once)"],
    ),
    "unnamed column with values": (
        dict(subj="subject,dose,\nP01,1,x\nP02,1,\n"),
        ["subjects.csv:1:#3: column without a name holds values (a header name)"],
    ),
    "ragged row": (
        dict(obs=replace(OBS, "P02,7,car_t,800,copies/ug,5,0", "P02,7,car_t,800")),
        ["observations.csv:6:: row has 4 fields (7 fields, as in the header)"],
    ),
    # --- observation cells ------------------------------------------------------------------
    "unknown analyte": (
        dict(obs=replace(OBS, "P01,7,car_t", "P01,7,CAR-T")),
        [
            "observations.csv:4:analyte: unknown analyte 'CAR-T' "
            "(one of car_t, tumor, tumor_antigen_neg, il6, car_t_memory_fraction, "
            "car_t_exhausted_fraction; did you mean 'car_t'?)"
        ],
    ),
    "phenotype fraction in a count unit and above the whole": (
        dict(obs=OBS + "P01,14,car_t_memory_fraction,0.2,cells,,\n"
             "P02,14,car_t_exhausted_fraction,140,%,,\n"),
        [
            "observations.csv:7:unit: 'cells' for car_t_memory_fraction "
            "(one of fraction, % for a phenotype fraction)",
            "observations.csv:8:value: 140 % for car_t_exhausted_fraction "
            "(a share of the CAR T cells, at most 100 %)",
        ],
    ),
    "negative value": (
        dict(obs=replace(OBS, ",12000,", ",-3,")),
        ["observations.csv:4:value: -3 is negative (a number >= 0, or empty only with blq=1)"],
    ),
    "non-numeric value": (
        dict(obs=replace(OBS, ",12000,", ",12k,")),
        [
            "observations.csv:4:value: '12k' is not a number (a number >= 0, or empty only"
            " with blq=1)"
        ],
    ),
    "decimal comma": (
        dict(obs=replace(OBS, ",12000,", ',"1,5",')),
        [
            "observations.csv:4:value: '1,5' uses a decimal comma "
            "(a number >= 0, or empty only with blq=1)"
        ],
    ),
    "empty value without blq": (
        dict(obs=replace(OBS, ",12000,copies/ug,5,0", ",,copies/ug,5,0")),
        ["observations.csv:4:value: empty (a number >= 0, or empty only with blq=1)"],
    ),
    "non-finite and empty times": (
        dict(
            obs=OBS.replace("P01,7,", "P01,nan,")
            .replace("P01,28,", "P01,-inf,")
            .replace("P02,7,", "P02,,")
        ),
        [
            "observations.csv:4:time: 'nan' is not a finite number "
            "(days since CAR T infusion, a finite number)",
            "observations.csv:5:time: '-inf' is not a finite number "
            "(days since CAR T infusion, a finite number)",
            "observations.csv:6:time: empty (days since CAR T infusion, a finite number)",
        ],
    ),
    "duplicate": (
        dict(obs=OBS + "P01,7.0,car_t,13000,copies/ug,5,0\n"),
        [
            "observations.csv:7:: duplicate of line 4 (subject P01, time 7, analyte car_t) "
            "(one measurement per subject, time and analyte)"
        ],
    ),
    "mixed units": (
        dict(obs=replace(OBS, "800,copies/ug", "800,cells/uL")),
        [
            "observations.csv:6:unit: unit 'cells/uL' differs from 'copies/ug' used on 2 car_t"
            " rows "
            "(one unit per analyte in a cohort)"
        ],
    ),
    "empty unit": (
        dict(obs=replace(OBS, "800,copies/ug", "800,")),
        ["observations.csv:6:unit: empty (the unit of the value)"],
    ),
    "unsafe ids": (
        dict(
            obs=OBS + '../x,1,tumor,1,SPD mm2,,\n"a;b",1,tumor,1,SPD mm2,,\n'
            "a b,1,tumor,1,SPD mm2,,\n,1,tumor,1,SPD mm2,,\n"
        ),
        [
            f"observations.csv:7:subject: unsafe id '../x' ({ID_RULE})",
            f"observations.csv:8:subject: unsafe id 'a;b' ({ID_RULE})",
            f"observations.csv:9:subject: unsafe id 'a b' ({ID_RULE})",
            f"observations.csv:10:subject: empty id ({ID_RULE})",
        ],
    ),
    "blq above lloq": (
        dict(obs=replace(OBS, "P01,0,car_t,,copies/ug,5,1", "P01,0,car_t,9,copies/ug,5,1")),
        [
            "observations.csv:3:value: 9 is above lloq 5 with blq=1 (value <= lloq, or empty,"
            " on a BLQ row)"
        ],
    ),
    "blq without lloq": (
        dict(obs=replace(OBS, "P01,0,car_t,,copies/ug,5,1", "P01,0,car_t,,copies/ug,,1")),
        [
            "observations.csv:3:lloq: blq=1 but lloq is empty (the lower limit of"
            " quantification of a BLQ row)"
        ],
    ),
    "blq not a flag": (
        dict(obs=replace(OBS, "12000,copies/ug,5,0", "12000,copies/ug,5,yes")),
        [
            "observations.csv:4:blq: 'yes' is not a flag "
            "(1 = below LLOQ, 0 = quantified, or empty to derive it from value < lloq)"
        ],
    ),
    "negative lloq": (
        dict(obs=replace(OBS, "12000,copies/ug,5,0", "12000,copies/ug,-5,0")),
        [
            "observations.csv:4:lloq: -5 is negative (a positive number, or empty when there"
            " is none)"
        ],
    ),
    "zero lloq": (
        dict(obs=replace(OBS, "12000,copies/ug,5,0", "12000,copies/ug,0,0")),
        [
            "observations.csv:4:lloq: 0 is not positive (a positive number, or empty when"
            " there is none)"
        ],
    ),
    # --- subjects ---------------------------------------------------------------------------
    "dose empty, zero, negative, text": (
        dict(
            subj="subject,dose\nP01,\nP02,0\nP03,-1\nP04,many\n",
            obs=OBS + "P03,1,tumor,1,SPD mm2,,\nP04,1,tumor,1,SPD mm2,,\n",
        ),
        [
            "subjects.csv:2:dose: empty (CAR T cells infused, a positive number)",
            "subjects.csv:3:dose: 0 is not positive (CAR T cells infused, a positive number)",
            "subjects.csv:4:dose: -1 is negative (CAR T cells infused, a positive number)",
            "subjects.csv:5:dose: 'many' is not a number (CAR T cells infused, a positive number)",
        ],
    ),
    "costim": (
        dict(subj=replace(SUBJ, "4-1BB", "41BB")),
        [
            "subjects.csv:3:costim: unknown co-stimulatory domain '41BB' "
            "(one of CD28, 4-1BB, other; did you mean '4-1BB'?)"
        ],
    ),
    "relapse antigen": (
        dict(subj="subject,dose,relapse_antigen,relapse_day\nP01,1,CD19-,x\nP02,1,neg,30\n"),
        [
            "subjects.csv:2:relapse_day: 'x' is not a number (day of relapse, a number >= 0,"
            " or empty)",
            "subjects.csv:2:relapse_antigen: unknown relapse antigen status 'CD19-' (one of"
            " pos, neg)",
        ],
    ),
    "subject listed twice": (
        dict(subj=SUBJ + "P01,2e8,CD28\n"),
        [
            "subjects.csv:4:subject: subject P01 is listed again (first on line 2) (one row"
            " per subject)"
        ],
    ),
    # --- across files -----------------------------------------------------------------------
    "subject only in observations": (
        dict(obs=OBS + "P09,1,tumor,1,SPD mm2,,\nP09,2,tumor,1,SPD mm2,,\n"),
        [
            "observations.csv:7:subject: subject P09 is not in subjects.csv "
            "(every subject to have a row in subjects.csv)"
        ],
    ),
    "subject without observation": (
        dict(subj=SUBJ + "P03,1e8,\n"),
        [
            "subjects.csv:4:subject: subject P03 has no row in observations.csv "
            "(at least one quantified measurement per subject)"
        ],
    ),
    "subject with only blq rows": (
        dict(obs=replace(OBS, "P02,7,car_t,800,copies/ug,5,0", "P02,7,car_t,3,copies/ug,5,")),
        [
            "subjects.csv:3:subject: subject P02 has no usable observation (all 1 are below LLOQ) "
            "(at least one quantified measurement per subject)"
        ],
    ),
    # --- cohort.yaml ------------------------------------------------------------------------
    "yaml not a mapping": (
        dict(meta="- a\n- b\n"),
        [
            "cohort.yaml:1:: is not a mapping (key: value lines, keys among name, description, "
            "source, license, notes, car_t_cells_per_unit, tumor_cells_per_unit, "
            "relapse_threshold, priors)"
        ],
    ),
    "yaml unknown key and bad factor": (
        dict(
            meta="name: x\ncar_t_cells_per_unit: -2\nrelapse_treshold: 3\n"
            "tumor_cells_per_unit: many\n"
        ),
        [
            "cohort.yaml:2:car_t_cells_per_unit: -2 is not a positive number (a number > 0:"
            " CAR T cells "
            "per unit of the car_t measurement, used only to report in cells)",
            "cohort.yaml:3:relapse_treshold: unknown key (one of name, description, source,"
            " license, "
            "notes, car_t_cells_per_unit, tumor_cells_per_unit, relapse_threshold, priors; "
            "did you mean 'relapse_threshold'?)",
            "cohort.yaml:4:tumor_cells_per_unit: 'many' is not a positive number (a number >"
            " 0: tumour "
            "cells per unit of the tumor measurement, used only to report in cells)",
        ],
    ),
    "yaml syntax": (
        dict(meta="name: [x\nnotes: y\n"),
        ["cohort.yaml:2:: invalid YAML: expected ',' or ']', but got ':' (key: value lines)"],
    ),
    "yaml repeated key": (
        dict(meta="notes: a\nnotes: b\n"),
        ["cohort.yaml:2:notes: key appears twice (each key once)"],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_located(tmp_path: Path, case: str) -> None:
    files, expected = CASES[case]
    folder = write(tmp_path / "cohort", **files)
    assert problems(folder) == expected


def test_random_corruption_never_escapes_as_a_crash(tmp_path: Path) -> None:
    """Seeded byte-level corruption of a valid cohort: loading either succeeds or raises
    ValidationError whose problems all name a file and a row >= 0."""
    rng = np.random.default_rng(20261127)
    alphabet = list(b',;."\n\r\t-+e019aN #') + [0x00, 0xE9, 0xFF]
    for k in range(60):
        files = {}
        for name, text in (("obs", OBS), ("subj", SUBJ)):
            data = bytearray(text.encode())
            for _ in range(int(rng.integers(1, 5))):
                pos = int(rng.integers(0, len(data) + 1))
                op, byte = rng.random(), int(rng.choice(alphabet))
                if op < 0.4:
                    data[pos:pos] = bytes([byte])
                elif op < 0.8:
                    del data[pos : pos + int(rng.integers(1, 4))]
                else:
                    data[pos : pos + 1] = bytes([byte])
            files[name] = bytes(data)
        folder = write(tmp_path / f"c{k}", obs=files["obs"], subj=files["subj"])
        try:
            load_cohort(folder)
        except ValidationError as err:
            assert err.problems and all(p.row >= 0 and p.file for p in err.problems)
