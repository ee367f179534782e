"""The comparison with published least-squares fits: unit conversions, well-pair mapping, errors.

Fits are hand-made point-mass posteriors (every draw equal), so each converted value is known
exactly; no sampling.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_ivp

from cartfit.analysis import published_comparison_table
from cartfit.analysis.published import SOURCE, read_published
from cartfit.errors import CartfitError

# r (1/day), K (scaled), k, p, d; initial scaled tumour and CAR T; tumour scale (cell index)
THETA = {"B1": [6.0, 2.0, 3.0, 1.5, 0.2], "B2": [4.8, 2.5, 2.0, 1.2, 0.48]}
Y0 = {"B1": [0.4, 0.01], "B2": [0.5, 0.02]}
SCALE = 1.25
C_START = 0.25  # the authors' CAR T level at their fit start, 10^4 cells
HEADER = (
    "tumor_line,data_column,t_start_.hr.,t_end_.hr.,dex_.ug.ml.,t_cell_start.ci.,rho_val,"
    "rho_stderr,kappainv_val,kappainv_stderr,c0_val,c0_stderr,kappac1_val,kappac1_stderr,"
    "kappac2_val,kappac2_stderr,theta_val,theta_stderr,c3_val,c3_stderr"
)
# B1,B2 pair: rho 0.25 +- 1.96*0.001 (= r/24 of B1 exactly, so B1 agrees and B2 does not)
PAIR_B = 'PBT1,"Y(B1,B2)",{row},400,0,0.25,0.25,0.001,0.3,0.01,0,0,0.5,0.02,0.02,0.001,0.01,,0,0'
PAIR_C = 'PBT1,"Y(C1,C2)",100,652,0,0.125,9.0,0.1,9.0,0.1,0,0,9.0,0.1,9.0,0.1,9.0,0.1,0,0'


def _fit(path: Path, well: str, first_time: float = 0.0) -> Path:
    n_chain, n_draw = 2, 3
    theta = np.broadcast_to(THETA[well], (n_chain, n_draw, 1, 5))
    log_y0 = np.broadcast_to(np.log(Y0[well]), (n_chain, n_draw, 1, 2))
    sid = f"PBT030_{well}"
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(
                {
                    "theta": (("chain", "draw", "subject", "parameter"), theta),
                    "log_y0": (("chain", "draw", "subject", "state"), log_y0),
                    "sigma": (("chain", "draw", "analyte"), np.full((n_chain, n_draw, 1), 0.1)),
                },
                coords={
                    "subject": [sid],
                    "parameter": [
                        "growth_rate",
                        "carrying_capacity",
                        "kill_rate",
                        "proliferation_rate",
                        "death_rate",
                    ],
                    "state": ["log_tumor", "log_car_t"],
                    "analyte": ["tumor"],
                },
            ),
            "constant_data": xr.Dataset(
                {"obs_time": ("obs", [first_time, 0.5]), "scale": ("analyte", [SCALE])},
                coords={"subject": [sid], "analyte": ["tumor"], "obs": [0, 1]},
            ),
        }
    )
    tree.attrs.update(model="predator_prey", growth="logistic", diagnostics=json.dumps({}))
    out = path / f"{sid}.nc"
    tree.to_netcdf(out, engine="netcdf4")
    return out


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    (tmp_path / "subjects.csv").write_text(
        "subject,dose,cell_line,line_code,well_pair\n"
        'PBT030_B1,2500,PBT030,PBT1,"B1,B2"\nPBT030_B2,2500,PBT030,PBT1,"B1,B2"\n'
        'PBT030_C1,1250,PBT030,PBT1,"C1,C2"\n'
    )
    return tmp_path


def _published(folder: Path, *rows: str) -> Path:
    path = folder / "published_fit_parameters.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8-sig")
    return path


def _value(df, subject: str, parameter: str, column: str = "estimate") -> float:
    ours = df[df["source"] != SOURCE]
    rows = ours[(ours["subject"] == subject) & ours["parameter"].str.contains(parameter)]
    assert len(rows) == 1
    return float(rows[column].iloc[0])


def test_conversions_are_exact_at_the_start(cohort: Path) -> None:
    """Fit start row 100 at day 0: C(t_s) is the initial CAR T level, every value closed form."""
    pub = _published(cohort, PAIR_B.format(row=100), PAIR_C)
    df = published_comparison_table([_fit(cohort, "B1")], pub)
    r, K, k, p, d = THETA["B1"]
    expected = {
        "ρ": r / 24,
        "κ⁻¹": 1 / (SCALE * K),
        "κ1": k * Y0["B1"][1] / (24 * C_START),
        "κ2": p / (24 * SCALE),
        "θ": d / 24,
    }
    for symbol, value in expected.items():
        for column in ("estimate", "lower", "upper"):  # point mass: interval collapses
            assert _value(df, "PBT030_B1", symbol, column) == pytest.approx(value, rel=1e-12)


def test_kill_rate_uses_car_t_at_the_authors_start(cohort: Path) -> None:
    """Fit start 40 rows (10 h) after day 0.1: kC = κ1 c there, C from an independent solve."""
    pub = _published(cohort, PAIR_B.format(row=140), PAIR_C)
    df = published_comparison_table([_fit(cohort, "B1", first_time=0.1)], pub)
    r, K, k, p, d = THETA["B1"]
    t_s = 0.1 + 10 / 24

    def rhs(t, y):
        return [r * y[0] * (1 - y[0] / K) - k * y[0] * y[1], p * y[0] * y[1] - d * y[1]]

    c_ts = solve_ivp(rhs, (0, t_s), Y0["B1"], rtol=1e-10, atol=1e-12).y[1, -1]
    # 1e-4: the fit's solver runs at rtol/atol 1e-6
    assert _value(df, "PBT030_B1", "κ1") == pytest.approx(k * c_ts / (24 * C_START), rel=1e-4)
    assert c_ts > 1.5 * Y0["B1"][1]  # the start time matters: C has grown by half


def test_wells_map_to_their_pair_and_agreement(cohort: Path) -> None:
    pub = _published(cohort, PAIR_C, PAIR_B.format(row=100))
    df = published_comparison_table([_fit(cohort, "B2"), _fit(cohort, "B1")], pub)
    published = df[df["source"] == SOURCE]
    assert list(published["group"].unique()) == ["PBT030 B1,B2"]  # C1,C2 has no fit
    assert published["subject"].iloc[0] == "PBT030_B1,PBT030_B2"
    rho = published[published["parameter"].str.contains("ρ")].iloc[0]
    assert rho["estimate"] == 0.25
    assert rho["lower"] == pytest.approx(0.25 - 1.959964 * 0.001)
    assert not rho["agree"]  # B2 (0.2/h) lies outside, B1 (0.25/h) inside
    assert _value(df, "PBT030_B1", "ρ", "agree") == 1
    assert _value(df, "PBT030_B2", "ρ", "agree") == 0
    theta = published[published["parameter"].str.contains("θ")].iloc[0]
    assert theta["note"] == "no standard error published"
    assert theta["lower"] == theta["upper"] == 0.01
    wells = df[df["source"] != SOURCE]
    assert set(wells.loc[wells["subject"] == "PBT030_B2", "source"]) == {
        "cartfit, well 2 (median, 5–95 %)"
    }


def test_bad_published_file_is_located(cohort: Path) -> None:
    pub = _published(cohort, PAIR_B.format(row=100).replace(",0.25,0.001,", ",fast,0.001,"))
    with pytest.raises(CartfitError, match=rf"{pub}:2:rho_val: not a number: 'fast'"):
        read_published(pub)
    pub.write_text(HEADER.replace(",kappac1_val", ",kappa1_val") + "\n")
    with pytest.raises(CartfitError, match=rf"{pub}:1:kappac1_val: missing column"):
        read_published(pub)
    other = PAIR_B.format(row=100).replace("0.25,0.001", "0.26,0.001", 1)
    pub = _published(cohort, PAIR_B.format(row=100), other)
    with pytest.raises(CartfitError, match=rf"{pub}:3:data_column: Y\(B1,B2\) has rows 2, 3"):
        read_published(pub)


def test_well_without_published_row(cohort: Path) -> None:
    pub = _published(cohort, PAIR_C)
    with pytest.raises(CartfitError, match=rf"{pub}:0:data_column: no .* PBT1 Y\(B1,B2\)"):
        published_comparison_table([_fit(cohort, "B1")], pub)


def test_bundled_file_one_row_per_pair() -> None:
    """The authors' file repeats its first two rows; dexamethasone rows are left out."""
    path = Path(__file__).parents[2] / "data" / "carrgo" / "published_fit_parameters.csv"
    df = read_published(path)
    assert df.index.is_unique
    assert ("PBT1", "Y(B1,B2)") in df.index and ("PBT1", "Y(B3,B4)") not in df.index
    assert df.loc[("PBT1", "Y(B1,B2)"), "rho_val"] == pytest.approx(0.302972074)


def test_report_shows_the_comparison_when_the_table_exists(cohort: Path, tmp_path: Path) -> None:
    from cartfit.report import build_report

    results = tmp_path / "results"
    (results / "fits").mkdir(parents=True)
    fit = _fit(cohort, "B1", first_time=0.1)
    (results / "fits" / "predator_prey_logistic_PBT030_B1.nc").write_bytes(fit.read_bytes())
    html = build_report(results).read_text()
    assert "Our fits against the published ones" not in html  # no table: no section
    table = published_comparison_table([fit], _published(cohort, PAIR_B.format(row=100)))
    (results / "published").mkdir()
    table.to_csv(results / "published" / "comparison.csv", index=False)
    html = build_report(results).read_text()
    assert "Our fits against the published ones" in html
    # only ρ of B1 lies inside the published interval (see PAIR_B)
    assert "1 of 5 well × parameter intervals overlap the published one" in html
