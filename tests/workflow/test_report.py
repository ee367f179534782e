"""cartfit.report: the self-contained HTML report and its methods page, on synthetic results.

Fit files here hold only the root attributes that the report reads (no MCMC); the figures are
tiny PNG files made fresh, so the report embeds them without drawing.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import pytest
import xarray as xr
from PIL import Image

from cartfit.errors import CartfitError
from cartfit.report import build_report, methods_html
from cartfit.report.html import rst_block, table

SOFTWARE = {"python": "3.12.1", "pymc": "6.4.0", "nutpie": "0.16.0"}


def _fit(path: Path, model="predator_prey", growth="gompertz", mode="population",
         problems=(), kill_median=0.5, **extra: str) -> Path:
    attrs = {
        "model": model, "growth": growth, "mode": mode, "subjects": json.dumps(["S01", "S02"]),
        "cartfit_version": "0.1.0", "data_sha256": "ab" * 32, "cohort": "data/none",
        "seed": "5", "sampler": "nutpie NUTS (numba backend)",
        "settings": json.dumps({"chains": 2, "tune": 40, "draws": 30, "seed": 5,
                                "likelihood": "lognormal", "target_accept": 0.9}),
        "priors": json.dumps({"kill_rate": {"symbol": "k", "unit": "1/day",
                                            "median": kill_median, "log_sd": 1.0}}),
        "units": json.dumps({"car_t": "copies/ug"}),
        "cohort_meta": json.dumps({"name": "synthetic", "license": "CC0"}),
        "diagnostics": json.dumps({"problems": list(problems)}),
        "software": json.dumps(SOFTWARE),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    xr.DataTree(xr.Dataset(attrs=attrs)).to_netcdf(path, engine="netcdf4")
    return path


def _png(path: Path, colour=(0, 114, 178)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 4), colour).save(path)
    return path


def _results(root: Path, problems=()) -> Path:
    fit = _fit(root / "fits" / "predator_prey_gompertz_population.nc", problems=problems)
    for kind in ("bands", "vpc", "diagnostics"):
        _png(root / "figures" / f"{kind}_predator_prey_gompertz_population.png")
    (root / "validation.txt").write_text("cohort synthetic\n  subjects 2\n")
    os.utime(fit, (1, 1))  # the figures are newer than their source: embedded as they are
    return root


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_embeds_every_figure_and_puts_failures_first(tmp_path: Path):
    root = _results(tmp_path / "res", problems=["R-hat > 1.01 for 3 quantities (worst 1.2)"])
    html = build_report(root).read_text()
    figures = [i for i in _images(html) if i.startswith(b"\x89PNG")]
    assert sum(1 for i in figures if Image.open(io.BytesIO(i)).size == (6, 4)) == 3
    first_figure = html.index("<figure")
    assert html.index('class="problems"') < first_figure
    assert html.index("R-hat &gt; 1.01 for 3 quantities") < first_figure
    assert 'href="#diagnostics-predator-prey-gompertz-population"' in html
    assert 'id="diagnostics-predator-prey-gompertz-population"' in html
    assert "2 chains × 30 draws after 40 tuning" in html  # captions state the settings
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing loaded from outside


def test_model_comparison_and_located_divergences_are_shown(tmp_path: Path):
    """compare/models_<unit>.csv gets its own figure item naming every fitted model, and a fit's
    located divergences are printed next to its problems."""
    root = _results(tmp_path / "res", problems=["4 divergent transitions"])
    _fit(root / "fits" / "multifate_gompertz_population.nc", model="multifate")
    fit = root / "fits" / "predator_prey_gompertz_population.nc"
    tree = xr.open_datatree(fit, engine="netcdf4")
    attrs = dict(tree.attrs)
    tree.close()
    note = "divergences located (4 of 4): S12 car_t day 356.74 (BLQ) ×4"
    attrs["diagnostics"] = json.dumps({"problems": ["4 divergent transitions"], "notes": [note]})
    xr.DataTree(xr.Dataset(attrs=attrs)).to_netcdf(fit, engine="netcdf4")
    (root / "compare").mkdir()
    (root / "compare" / "models_population.csv").write_text(
        "model,growth,elpd_loo,se,elpd_diff,dse,weight,n_bad_pareto_k\n"
        "predator_prey,gompertz,-200,10,0,0,0.9,3\nmultifate,gompertz,-210,11,-10,4,0.1,5\n"
    )
    _png(root / "figures" / "compare_models_population.png")
    for kind in ("bands", "vpc", "diagnostics"):
        _png(root / "figures" / f"{kind}_multifate_gompertz_population.png")
    html = build_report(root).read_text()
    assert "all models: all subjects (population fit)" in html
    assert "multifate/gompertz, predator_prey/gompertz" in html
    assert "S12 car_t day 356.74 (BLQ) ×4" in html[: html.index("<figure")]


def test_misfit_in_the_comparison_is_a_warning_before_the_figures(tmp_path: Path):
    """A growth law the comparison marks as a misfit (residual SD against the best fit's) is
    named in the warnings at the top, with what that means for its convergence, and so is
    whether its place in the ranking holds chain by chain."""
    root = _results(tmp_path / "res")
    (root / "compare").mkdir()
    (root / "compare" / "population.csv").write_text(
        "model,growth,elpd_loo,se,elpd_diff,dse,weight,n_bad_pareto_k,warning\n"
        "predator_prey,gompertz,-200,10,0,0,0.9,0,\n"
        "predator_prey,logistic,-390,12,-190,20,0.1,0,"
        "fit not converged: R-hat > 1.01; chains alone give elpd_diff -195.0 to -185.2: its "
        "place in the ranking holds in every chain; misfit: residual SD of tumor 2.19 against "
        "0.59 in the best fit\n"
    )
    html = build_report(root).read_text()
    top = html[: html.index("<figure")]
    assert "predator_prey/logistic does not describe these data (residual SD of tumor 2.19 " in top
    assert "predator_prey/gompertz does not" not in top
    assert (
        "predator_prey/logistic did not converge; scored chain by chain (PSIS-LOO of each chain "
        "alone), elpd_diff -195.0 to -185.2: its place in the ranking holds in every chain" in top
    )


def test_report_says_so_when_all_fits_passed(tmp_path: Path):
    html = build_report(_results(tmp_path / "res")).read_text()
    assert 'class="problems"' not in html and "All 1 fit(s) passed" in html


def test_figure_that_cannot_be_drawn_is_reported_not_hidden(tmp_path: Path):
    root = _results(tmp_path / "res")
    (root / "figures" / "bands_predator_prey_gompertz_population.png").unlink()
    html = build_report(root).read_text()
    assert 'class="problems"' in html
    assert html.index("bands figure bands_predator_prey_gompertz_population.png could not be "
                      "drawn") < html.index("<figure")


def test_report_keeps_to_the_given_files(tmp_path: Path):
    root = _results(tmp_path / "res")
    stale = _fit(root / "fits" / "escape_logistic_population.nc", model="escape",
                 growth="logistic", problems=["left over from another configuration"])
    keep = [root / "fits" / "predator_prey_gompertz_population.nc", root / "validation.txt"]
    html = build_report(root, files=keep).read_text()
    assert "left over" not in html and "escape" not in html
    assert "left over" in build_report(root).read_text()  # without a list, everything found
    assert stale.exists()


def test_report_of_a_folder_without_fits_is_an_error(tmp_path: Path):
    with pytest.raises(CartfitError, match="no fit file"):
        build_report(tmp_path)


def test_methods_page_states_equations_priors_software_and_data(tmp_path: Path):
    fits = [_fit(tmp_path / "fits" / "predator_prey_gompertz_population.nc", kill_median=0.25),
            _fit(tmp_path / "fits" / "predator_prey_logistic_population.nc", growth="logistic")]
    html = methods_html(fits)
    assert html.count('class="equation"') >= 6  # two models, two equations and a growth law each
    assert 'alt="\\frac{dB}{dt} = r B \\ln\\frac{K}{B}"' in html  # Gompertz, from the model
    assert "<td>0.25</td>" in html  # the prior stored in the fit, not the code default 0.5
    assert "ab" * 32 in html and "6.4.0" in html and "CC0" in html
    assert "Beal M3" in html
    others = html[html.index("Other priors"):html.index("Sampler and settings")]
    assert others.count("<tr>") >= 4  # header and the inference-level prior settings
    sampler = html[html.index("Sampler and settings"):html.index("<h3>Software")]
    for heading in ("max tree depth", "mass matrix", "optimiser starts", "large-cohort geometry"):
        assert f">{heading}</th>" in sampler, heading
    assert "Laplace approximation" in sampler and "non-centred density" in sampler


def test_html_helpers_escape_and_render_math():
    import pandas as pd

    cell = table(pd.DataFrame({"name": ["<b>x</b>"], "value": [0.123456]}))
    assert "&lt;b&gt;x&lt;/b&gt;" in cell and "<td>0.1235</td>" in cell
    block = rst_block("Text with ``code``.\n\n.. math::\n\n    a = b \\qquad c = d\n\n* one\n* two")
    assert block.count('class="equation"') == 2 and "<code>code</code>" in block
    assert "<li>one</li><li>two</li>" in block


def test_costim_section_shows_the_figure_and_all_three_tables(tmp_path: Path):
    """A multifate population fit's costim/ tables: one section with the forest figure and the
    contrast, homeostatic-share and rechallenge tables under it."""
    root = tmp_path / "res"
    fit = _fit(root / "fits" / "multifate_gompertz_population.nc", model="multifate")
    for kind in ("bands", "vpc", "diagnostics"):
        _png(root / "figures" / f"{kind}_multifate_gompertz_population.png")
    _png(root / "figures" / "costim_multifate_gompertz.png", colour=(1, 2, 3))
    (root / "costim").mkdir()
    for suffix, metric in (("", "cmax"), ("_homeostatic", "homeostatic_share"),
                           ("_rechallenge", "fold_reexpansion")):  # fmt: skip
        table_path = root / "costim" / f"multifate_gompertz{suffix}.csv"
        table_path.write_text(f"metric,median\n{metric},1.5\n")
        os.utime(table_path, (1, 1))  # older than the figure: embedded as it is
    os.utime(fit, (1, 1))
    html = build_report(root).read_text()
    assert 'id="cd28-versus-4-1bb-multi-fate"' in html
    section = html[html.index('id="cd28-versus-4-1bb-multi-fate"'):]
    assert "2 chains × 30 draws after 40 tuning" in section.split("</section>")[0]
    for name in ("multifate_gompertz.csv", "multifate_gompertz_homeostatic.csv",
                 "multifate_gompertz_rechallenge.csv"):  # fmt: skip
        assert f"table {name}" in section.split("</section>")[0]
    assert any(Image.open(io.BytesIO(i)).getpixel((0, 0)) == (1, 2, 3) for i in _images(html))


def test_methods_page_names_the_parameters_a_population_fit_holds_fixed(tmp_path: Path):
    fixed = json.dumps(["cytokine_half_saturation", "lymphodepletion"])
    fit = _fit(tmp_path / "fits" / "multifate_gompertz_population.nc", model="multifate",
               fixed_parameters=fixed)  # fmt: skip
    html = methods_html([fit])
    assert "Held at the prior median in the population fit" in html
    assert "cytokine_half_saturation, lymphodepletion" in html

