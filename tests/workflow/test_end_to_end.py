"""The tiny workflow run end to end: killed and resumed, report checked in a real browser.

One test on purpose: the run takes minutes, and every check below needs its results. Steps:
simulate a 3-subject cohort; start the workflow and kill it (SIGKILL, whole process group)
while the fits run; rerun the same command, which must complete; check the report's figures
in headless chromium; build Snakemake's own report; refit one fit with the same seed and
require the same numbers. The run starts with empty compile caches (PyTensor's and numba's), so
the refit, which loads the compiled log density from them, is compared with a fit that compiled
it afresh.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from base64 import b64decode
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image
from wfhelpers import REPO, TEST_CONFIG, cartfit, snakemake

#: figures of the tiny config: 1 comparison; per fit (2) bands, VPC, diagnostics; per model and
#: growth law (2) exposure, relapse, trial summaries and paired trial contrasts
N_FIGURES = 1 + 2 * 3 + 2 * 4
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--enable-logging=stderr", "--v=0"]
ARGS = ["--profile", "workflow/profiles/default", "--configfile", str(TEST_CONFIG)]


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed, and this test opens the report in it. Install "
                    "Debian's chromium with .ci/install-chromium.sh (apt-get install chromium).")
    return path


def _kill_during_fits(work: Path) -> None:
    """Start the workflow and SIGKILL it and its jobs a few seconds into the fits."""
    with open(work / "killed-run.log", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", *ARGS], cwd=work, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    fit_logs = work / "results" / "tiny" / "logs" / "fit"
    deadline = time.monotonic() + 240
    while not (fit_logs.is_dir() and any(fit_logs.iterdir())):
        assert proc.poll() is None, (work / "killed-run.log").read_text()
        assert time.monotonic() < deadline, "the fits did not start within 4 minutes"
        time.sleep(0.5)
    time.sleep(8)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _posterior(path: Path) -> np.ndarray:
    with xr.open_datatree(path, engine="netcdf4") as tree:
        return tree["posterior"]["theta"].values.copy()


def _settings(path: Path) -> str:
    with xr.open_datatree(path, engine="netcdf4") as tree:
        return tree.attrs["settings"]


def _browser_check(chromium: str, report: Path, tmp: Path) -> None:
    flags = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=180, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]  # no script error on the page
    assert "<h1>cartfit report: tiny</h1>" in dom.stdout
    figures = re.findall(r"<figure[^>]*><img[^>]*src=\"data:image/png;base64,([^\"]+)\"",
                         dom.stdout)
    assert len(figures) == N_FIGURES
    for data in figures:
        width, height = Image.open(io.BytesIO(b64decode(data))).size
        assert width > 300 and height > 200  # a real figure, not a placeholder
    shot = tmp / "report.png"
    run = subprocess.run([*flags, "--window-size=1200,2400", f"--screenshot={shot}",
                          report.as_uri()], capture_output=True, text=True, timeout=180,
                         check=False)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # the page rendered text and figures, not a blank canvas


@pytest.mark.workflow
def test_tiny_workflow_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    chromium = _chromium()
    caches = tmp_path / "caches"
    flags = [os.environ.get("PYTENSOR_FLAGS", ""), f"base_compiledir={caches / 'pytensor'}"]
    monkeypatch.setenv("PYTENSOR_FLAGS", ",".join(f for f in flags if f))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(caches / "numba"))
    work = tmp_path / "run"
    work.mkdir()
    shutil.copy(REPO / "Snakefile", work / "Snakefile")
    shutil.copytree(REPO / "workflow", work / "workflow")
    sim = cartfit("simulate", "--model", "predator_prey", "--growth", "gompertz", "--subjects",
                  "3", "--seed", "3", "--out", str(work / "data" / "tiny"))
    assert sim.returncode == 0, sim.stderr

    _kill_during_fits(work)
    results = work / "results" / "tiny"
    for fit in (results / "fits").glob("*.nc"):  # only complete fits may carry the final name
        assert _posterior(fit).size > 0

    run = snakemake(work, *ARGS, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    report = results / "report.html"
    html = report.read_text()
    assert ('class="problems"' in html) or ("passed the convergence checks" in html)
    for name in ("Growth-law comparison", "Visual predictive checks", "Exposure metrics",
                 "Relapse probabilities", "Virtual trials",
                 "Virtual trials: paired contrasts between arms", "Sampler diagnostics",
                 "Methods"):
        assert f">{name}</h2>" in html
    _browser_check(chromium, report, tmp_path)

    smk = snakemake(work, *ARGS, "--report", "snakemake-report.zip", timeout=300)
    assert smk.returncode == 0, smk.stderr[-4000:]
    names = zipfile.ZipFile(work / "snakemake-report.zip").namelist()
    assert sum(n.endswith(".png") for n in names) == N_FIGURES
    assert any(n.endswith("methods.html") for n in names)

    # Same seed and settings, same numbers: the fit of the (resumed) run compiled its log
    # density into empty caches, the refit loads it from them.
    fit = results / "fits" / "predator_prey_gompertz_population.nc"
    settings, first = _settings(fit), _posterior(fit)
    again = snakemake(work, *ARGS, "--force", str(fit.relative_to(work)), timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert _settings(fit) == settings
    assert np.array_equal(_posterior(fit), first)
