"""CD28 vs 4-1BB contrasts, homeostatic share and rechallenge on point-mass multifate posteriors.

The posteriors are hand-built (every draw identical), so each contrast has one known value that
the SciPy reference solver computes independently of the analysis code.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cartfit.analysis import costim_contrast, homeostatic_share, rechallenge
from cartfit.analysis.metrics import cmax, integral, metric_grid, tmax
from cartfit.cli import main
from cartfit.errors import CartfitError
from cartfit.models import get_model
from cartfit.models.cytokine import relative_cytokine
from cartfit.simulate import population_for, solve_reference

MODEL = get_model("multifate", "gompertz")
NAMES = list(MODEL.parameter_names)
SPEC = population_for(MODEL)
#: typical 4-1BB subject of the simulator (scaled units: CAR T / 1e4 copies/ug, tumour / 40 %)
THETA = np.array([SPEC.typical[n] for n in NAMES])
#: CD28 effects of the simulator: faster proliferation, exhaustion and death, less memory
BETA = np.log([SPEC.costim_effect["CD28"].get(n, 1.0) for n in NAMES])
BETA[:2] = 0.0  # covariates do not act on the growth law
LOG_Y0 = np.asarray(MODEL.extras["initial_state"](0.7, 2e-4))
SCALES = {"car_t": 1e4, "tumor": 40.0}
LLOQ = 50.0


def write_fit(path, theta=None, costims=("4-1BB", "CD28"), model="multifate", mode="population",
              beta=True, threshold=5.0):  # fmt: skip
    """A fit file (cartfit.inference.fitfile layout) whose posterior is a point mass: subject i
    has ``theta[i]``, mu = ln THETA, ``beta_costim_cd28`` = BETA."""
    subjects = [f"S{i + 1}" for i in range(len(costims))]
    n_s, n_p, full = len(subjects), len(NAMES), (1, 2)
    if theta is None:
        theta = [THETA * np.exp(BETA * (c == "CD28")) for c in costims]
    post = {
        "theta": (("chain", "draw", "subject", "parameter"),
                  np.broadcast_to(np.asarray(theta), (*full, n_s, n_p))),
        "log_y0": (("chain", "draw", "subject", "state"), np.broadcast_to(LOG_Y0, (*full, n_s, 4))),
        "sigma": (("chain", "draw", "analyte"), np.full((*full, 2), 0.3)),
        "mu": (("chain", "draw", "parameter"), np.broadcast_to(np.log(THETA), (*full, n_p))),
        "omega": (("chain", "draw", "parameter"), np.full((*full, n_p), 0.3)),
    }  # fmt: skip
    if beta:
        post["beta_costim_cd28"] = (("chain", "draw", "parameter"),
                                    np.broadcast_to(BETA, (*full, n_p)))  # fmt: skip
    times = np.array([1.0, 14.0, 90.0, 365.0])
    n_obs, obs = n_s * len(times), np.arange(n_s * len(times))
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset(post, coords={"subject": subjects, "parameter": NAMES,
                                              "state": list(MODEL.states),
                                              "analyte": ["car_t", "tumor"]}),
        "constant_data": xr.Dataset({
            "obs_subject": ("obs", np.repeat(subjects, len(times))),
            "obs_time": ("obs", np.tile(times, n_s)),
            "obs_analyte": ("obs", np.full(n_obs, "car_t")),
            "obs_lloq": ("obs", np.full(n_obs, LLOQ)),
            "obs_blq": ("obs", np.zeros(n_obs, dtype=np.int64)),
            "scale": ("analyte", [SCALES["car_t"], SCALES["tumor"]]),
            "subject_dose": ("subject", np.full(n_s, 2e8)),
            "subject_costim": ("subject", np.asarray(costims, dtype=str)),
        }, coords={"obs": obs, "analyte": ["car_t", "tumor"], "subject": subjects}),
    })  # fmt: skip
    tree.attrs.update({
        "model": model, "growth": "gompertz", "mode": mode, "subjects": json.dumps(subjects),
        "units": json.dumps({"car_t": "copies/ug", "tumor": "% marrow blasts"}),
        "cohort_meta": json.dumps({"relapse_threshold": threshold}),
    })  # fmt: skip
    tree.to_netcdf(path, engine="netcdf4")
    return path


def reference_metrics(theta: np.ndarray, horizon: float = 90.0) -> dict[str, float]:
    """cmax, tmax, memory fraction and persistence from the SciPy reference solve."""
    grid = metric_grid(365.0, 28.0)
    ly = solve_reference(MODEL, theta, LOG_Y0, grid)
    total = np.exp(ly[:, :3]).sum(axis=1)
    car_t = total * SCALES["car_t"]
    above = grid[car_t >= LLOQ]
    return {
        "cmax": float(cmax(grid, car_t)),
        "tmax": float(tmax(grid, car_t)),
        "memory_fraction_day90": float(np.interp(horizon, grid, np.exp(ly[:, 1]) / total)),
        "persistence_days": float(above.max()),
    }


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    return write_fit(tmp_path_factory.mktemp("costim") / "fit.nc")


@pytest.fixture(scope="module")
def table(fit):
    return costim_contrast(fit)


def test_contrast_is_cd28_minus_41bb(table):
    """Typical and cohort-mean contrasts both equal metric(CD28) - metric(4-1BB) of the known
    parameters (point-mass posterior); tolerance covers the two solvers' 1e-6 vs 1e-10
    tolerances and the 0.05/0.5-day grid of persistence."""
    assert list(table.columns) == ["metric", "contrast", "mean", "median", "q05", "q95", "unit",
                                   "p_gt_0"]  # fmt: skip
    bb, cd28 = reference_metrics(THETA), reference_metrics(THETA * np.exp(BETA))
    rows = table.set_index(["metric", "contrast"])
    for block in ("typical", "cohort_mean"):
        for name in bb:
            diff = rows.loc[(name, f"{block}_difference")]
            assert diff["median"] == pytest.approx(cd28[name] - bb[name], rel=0.02, abs=0.6)
            assert diff["p_gt_0"] == float(cd28[name] > bb[name])
        ratio = rows.loc[("cmax", f"{block}_ratio")]
        assert ratio["median"] == pytest.approx(cd28["cmax"] / bb["cmax"], rel=1e-3)
    # the simulator's CD28 "sprint": higher earlier peak, less memory (persistence ties: above
    # LLOQ 50 through day 365 for both typical subjects, which peak at 53,000 and 10,600)
    assert cd28["cmax"] > bb["cmax"] and cd28["memory_fraction_day90"] < bb["memory_fraction_day90"]
    assert cd28["tmax"] < bb["tmax"]


def test_covariate_effects_are_exp_beta(table):
    rows = table.query("contrast == 'covariate_effect'").set_index("metric")
    expected = {n: np.exp(b) for n, b in zip(NAMES, BETA, strict=True) if b != 0}
    assert set(rows.index) == set(expected)
    for name, value in expected.items():
        assert rows.loc[name, "median"] == pytest.approx(value)
        assert rows.loc[name, "p_gt_0"] == float(value > 1)
        assert rows.loc[name, "unit"] == "ratio"


def test_homeostatic_share_matches_its_equation(tmp_path):
    """One subject, checked against the reference solve and the numba cytokine function."""
    path = write_fit(tmp_path / "f.nc", costims=("4-1BB",), beta=False)
    share = homeostatic_share(path, window=(0.0, 14.0))
    grid = np.linspace(0.0, 14.0, 1401)
    ly = solve_reference(MODEL, THETA, LOG_Y0, grid)
    p = dict(zip(NAMES, THETA, strict=True))
    c = np.array(
        [
            relative_cytokine(
                t,
                p["lymphodepletion"],
                p["cytokine_consumption_ratio"],
                p["lymphocyte_recovery_time"],
                np.empty(3),
            )
            for t in grid
        ]
    )
    h = p["homeostatic_rate"] * c / (p["cytokine_half_saturation"] + c) * np.exp(ly[:, 1])
    phi = np.exp(ly[:, 3]) / (np.exp(ly[:, 3]) + p["antigen_half_saturation"])
    a = p["effector_proliferation"] * phi * np.exp(ly[:, 0])
    expected = integral(grid, h, 0, 14) / integral(grid, h + a, 0, 14)  # fmt: skip
    assert list(share.columns) == ["subject", "metric", "mean", "median", "q05", "q95", "unit"]
    assert 0.0 < expected < 1.0
    assert share.loc[0, "median"] == pytest.approx(expected, rel=1e-3)


def test_homeostatic_share_limits(tmp_path):
    """0 without homeostatic proliferation; near 1 without antigen-driven proliferation."""
    no_h = THETA.copy()
    no_h[NAMES.index("homeostatic_rate")] = 0.0
    no_drive = THETA.copy()
    no_drive[NAMES.index("effector_proliferation")] = 1e-9
    with np.errstate(divide="ignore"):  # ln(alpha_h = 0) = -inf is a valid log parameter
        share = homeostatic_share(write_fit(tmp_path / "f.nc", theta=[no_h, no_drive]))
    assert share.loc[0, "median"] == 0.0
    assert 0.999 < share.loc[1, "median"] <= 1.0


def test_rechallenge_restart_matches_a_reference_solve_from_the_rechallenge_day(fit):
    """The restart (lymphodepletion depth shifted by exp(-day/tau)) must equal a solve that
    really starts at the rechallenge day with the tumour raised by the bolus (5 % blasts)."""
    day, follow_up = 120.0, 40.0
    table = rechallenge(fit, day=day, follow_up=follow_up).set_index(["subject", "metric"])
    for subject, theta in (("S1", THETA), ("S2", THETA * np.exp(BETA))):
        at_day = solve_reference(MODEL, theta, LOG_Y0, [day])[0]
        raised = at_day.copy()
        raised[3] = np.logaddexp(at_day[3], np.log(5.0 / SCALES["tumor"]))
        grid = day + np.linspace(0.0, follow_up, 801)
        after = np.exp(solve_reference(MODEL, theta, raised, grid, t0=day)[:, :3]).sum(axis=1)
        before = np.exp(at_day[:3]).sum()
        fold = table.loc[(subject, "fold_reexpansion"), "median"]
        assert fold == pytest.approx(after.max() / before, rel=1e-3)
        assert table.loc[(subject, "car_t_before"), "median"] == pytest.approx(
            before * SCALES["car_t"], rel=1e-4
        )
        assert fold > 1.5  # both products re-expand on a 5 % blast relapse


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "predator_prey"}, "multifate"),
        ({"mode": "subject"}, "population fit"),
        ({"beta": False, "costims": ("4-1BB", "4-1BB")}, "both CD28 and 4-1BB"),
    ],
)
def test_refusals(tmp_path, kwargs, message, capsys):
    if kwargs.get("model") == "predator_prey":
        path = tmp_path / "pp.nc"
        write_fit(path)
        tree = xr.open_datatree(path).load()
        tree.attrs["model"] = "predator_prey"
        path = tmp_path / "pp2.nc"
        tree.to_netcdf(path, engine="netcdf4")
    else:
        path = write_fit(tmp_path / "f.nc", **kwargs)
    with pytest.raises(CartfitError, match=message):
        costim_contrast(path)
    out = tmp_path / "c.csv"
    assert main(["costim", str(path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_writes_three_tables(fit, tmp_path, capsys):
    out = tmp_path / "costim.csv"
    assert main(["costim", str(fit), "--out", str(out), "--horizon", "60"]) == 0
    table = pd.read_csv(out)
    assert "memory_fraction_day60" in set(table["metric"])
    assert set(pd.read_csv(tmp_path / "costim_homeostatic.csv")["subject"]) == {"S1", "S2"}
    re = pd.read_csv(tmp_path / "costim_rechallenge.csv")
    assert set(re["metric"]) == {"car_t_before", "peak_after", "fold_reexpansion", "time_to_peak"}


def test_forest_has_one_panel_per_metric_and_the_effects(table):
    from cartfit.plotting.costim import costim_forest

    fig = costim_forest(table)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in visible]
    assert titles == ["Cmax (peak CAR T)", "Tmax (time to peak)", "memory fraction at day 90",
                      "persistence (last day above LLOQ)",
                      "co-stimulation effect on parameters"]  # fmt: skip
    assert visible[-1].get_xscale() == "log"
    # the reference line: 0 for differences, 1 for the exp(beta) ratios
    assert [ax.lines[0].get_xdata()[0] for ax in visible] == [0, 0, 0, 0, 1]
