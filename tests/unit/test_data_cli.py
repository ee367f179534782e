"""``cartfit validate`` and ``cartfit import-nonmem``: exit codes, messages, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartfit.cli import main

OBS = "subject,time,analyte,value,unit\nP01,1,car_t,10,copies/ug\nP01,2,tumor,5,mm\n"
SUBJ = "subject,dose\nP01,1e8\n"
REPO = Path(__file__).resolve().parents[2]


def cohort(folder: Path, obs: str | bytes = OBS, subj: str = SUBJ) -> Path:
    folder.mkdir()
    if isinstance(obs, bytes):
        (folder / "observations.csv").write_bytes(obs)
    else:
        (folder / "observations.csv").write_text(obs)
    (folder / "subjects.csv").write_text(subj)
    return folder


def test_validate_valid_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(cohort(tmp_path / "c"))]) == 0
    out = capsys.readouterr().out
    assert "subjects      1" in out and "car_t" in out and "tumor" in out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "missing:0:: no such folder"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "f.txt:0:: is a file"),
        (
            lambda p: cohort(p / "c", obs=OBS.replace("car_t", "cart")),
            "observations.csv:2:analyte: unknown",
        ),
        (
            lambda p: cohort(p / "c", obs=b"\x00\x01\x02binary"),
            "observations.csv:1:: binary content",
        ),
        (
            lambda p: cohort(p / "c", obs=b"subject,time\n\xff\xfe"),
            "observations.csv:2:: not UTF-8",
        ),
    ],
)
def test_validate_bad_input_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str
) -> None:
    assert main(["validate", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.rstrip().endswith("problem(s) found")


def test_validate_observations_folder_instead_of_file(tmp_path: Path, capsys) -> None:
    folder = cohort(tmp_path / "c")
    (folder / "observations.csv").unlink()
    (folder / "observations.csv").mkdir()
    assert main(["validate", str(folder)]) == 2
    assert "observations.csv:0:: is a folder" in capsys.readouterr().err


def test_import_nonmem_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "nm.csv"
    table.write_text("ID,TIME,DV,EVID,AMT,DVID\n1,0,.,1,1e8,.\n1,1,50,0,.,1\n1,1,7,0,.,2\n")
    assert main(["import-nonmem", str(table), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "observations.csv").exists()
    assert (
        main(["import-nonmem", str(table), "--out", str(tmp_path / "o2"), "--dvid", "1=car_t"]) == 2
    )
    err = capsys.readouterr().err
    assert "nm.csv:4:DVID: '2' is not mapped to an analyte" in err and "Traceback" not in err
    assert not (tmp_path / "o2").exists()
    assert main(["import-nonmem", str(tmp_path), "--out", str(tmp_path / "o3")]) == 2
    assert main(["import-nonmem", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o3")]) == 2
    assert not (tmp_path / "o3").exists()


def test_bundled_carrgo_cohort_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "data" / "carrgo")]) == 0
    out = capsys.readouterr().out
    assert "subjects      18" in out and "cell index" in out


@pytest.mark.parametrize(
    ("flag", "value"), [([], None), (["--large-cohort"], True), (["--no-large-cohort"], False)]
)
def test_fit_passes_the_geometry_choice_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], value: bool | None
) -> None:
    """``--large-cohort`` / ``--no-large-cohort`` reach FitSettings; without either the fit
    decides by cohort size (None)."""
    import cartfit.inference as inference

    seen = {}

    class Report:
        converged = True

        def table(self) -> str:
            return ""

    def fake_fit(*args, settings, **kwargs):
        seen["settings"] = settings
        return Report()

    monkeypatch.setattr(inference, "fit_cohort", fake_fit)
    args = ["fit", "data/example", "--model", "escape", "--growth", "gompertz", "--population"]
    assert main([*args, "--out", str(tmp_path / "fit.nc"), *flag]) == 0
    assert seen["settings"].large_cohort is value


@pytest.mark.parametrize("option", [["--tune", "0"], ["--chains", "0"], ["--target-accept", "1.2"]])
def test_fit_refuses_bad_sampler_settings_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    """Settings nutpie cannot run (tune 0 makes it panic) stop with exit 2, a message naming
    the setting, and no output file."""
    out = tmp_path / "fit.nc"
    args = ["fit", "data/example", "--model", "predator_prey", "--growth", "gompertz"]
    code = main([*args, "--population", "--out", str(out), *option])
    assert code == 2
    assert option[0].lstrip("-").replace("-", "_") in capsys.readouterr().err
    assert not out.exists()
