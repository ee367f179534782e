"""Where a fit's posterior is stiff: the curvature measure and its attribution to readings."""

import numpy as np
import pandas as pd
import pytest
from pymc.blocking import DictToArrayBijection

from cartfit.data import load_cohort
from cartfit.inference import build_model, prepare
from cartfit.inference.stiffness import largest_curvature, locate_stiffness, stiffness_note
from cartfit.io import write_cohort
from cartfit.models import get_model


def test_largest_curvature_of_a_gaussian():
    """-log p = x'Ax/2: in the units of its own covariance every curvature is 1; in the units
    of the identity the largest is A's largest eigenvalue, along its eigenvector."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    a = q @ np.diag([1.0, 3.0, 40.0, 900.0]) @ q.T

    def grad(x):
        return -a @ x

    x = rng.standard_normal(4)
    lam, u = largest_curvature(grad, x, np.eye(4))
    assert lam == pytest.approx(900.0, rel=1e-6)
    assert abs(u @ q[:, 3]) == pytest.approx(1.0, rel=1e-6)
    own = np.linalg.cholesky(np.linalg.inv(a))
    assert largest_curvature(grad, x, own)[0] == pytest.approx(1.0, rel=1e-6)
    # a failed solve next to the draw (a gradient of NaN) leaves the draw out
    assert largest_curvature(lambda z: np.full(4, np.nan), x, np.eye(4)) is None


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """One subject with a pre-infusion, a post-infusion tumour and two CAR T rows (one BLQ)."""
    out = tmp_path_factory.mktemp("stiff") / "cohort"
    obs = pd.DataFrame({
        "subject": ["P1"] * 4, "time": [-7.0, 7.0, 7.0, 60.0],
        "analyte": ["tumor", "tumor", "car_t", "car_t"], "value": [50.0, 20.0, 3000.0, np.nan],
        "unit": ["mm2", "mm2", "copies/ug", "copies/ug"], "lloq": [1.0, 1.0, 5.0, 5.0],
        "blq": [0, 0, 0, 1],
    })  # fmt: skip
    write_cohort(out, obs, pd.DataFrame({"subject": ["P1"], "dose": [2e8], "costim": ["CD28"]}))
    return load_cohort(out)


def test_locate_stiffness_names_the_reading_and_the_curvature(cohort):
    """At each examined draw: the largest eigenvalue of -L'HL (H from a dense finite-difference
    Hessian, L the Cholesky factor of the draws' covariance) and the reading whose term has the
    largest second difference along L u; the note counts them."""
    model = get_model("predator_prey", "gompertz")
    data = prepare(cohort, model)
    pm_model = build_model(model, data)
    ip = pm_model.initial_point()
    x0 = DictToArrayBijection.map({v.name: ip[v.name] for v in pm_model.value_vars}).data
    fn = pm_model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})

    def logp_dlogp(x):
        logp, grad = fn(np.asarray(x, float))
        return float(logp), np.asarray(grad, float)

    rng = np.random.default_rng(0)
    draws = x0 + 0.3 * rng.standard_normal((2, 30, x0.size))
    located = locate_stiffness(pm_model, draws, data.obs, logp_dlogp, n_points=3)
    assert len(located) == 3 and located[["chain", "draw"]].values.tolist()[0] == [0, 0]
    factor = np.linalg.cholesky(np.cov(draws.reshape(-1, x0.size), rowvar=False))
    x = draws[0, 0]
    h = 1e-4
    hess = np.array([(logp_dlogp(x + h * e)[1] - logp_dlogp(x - h * e)[1]) / (2 * h)
                     for e in np.eye(x0.size)])  # fmt: skip
    hess = -(hess + hess.T) / 2
    lam, vec = np.linalg.eigh(factor.T @ hess @ factor)
    assert located.loc[0, "curvature"] == pytest.approx(lam[-1], rel=1e-3)
    terms = pm_model.compile_fn(pm_model.logp(vars=[pm_model["y"]], sum=False)[0],
                                inputs=pm_model.value_vars, on_unused_input="ignore")  # fmt: skip
    info = DictToArrayBijection.map({v.name: ip[v.name] for v in pm_model.value_vars})

    def term(z):
        return terms(DictToArrayBijection.rmap(info._replace(data=z)))

    v = factor @ vec[:, -1]
    step = 0.02
    second = -(term(x + step * v) - 2 * term(x) + term(x - step * v)) / step**2
    j = int(np.argmax(second))
    assert located.loc[0, "time"] == data.obs["time"].iloc[j]
    assert located.loc[0, "analyte"] == data.obs["analyte"].iloc[j]
    assert located.loc[0, "share"] == pytest.approx(second[j] / second[second > 0].sum(), rel=1e-3)
    assert located.loc[0, "data_share"] == pytest.approx(second.sum() / lam[-1], rel=1e-2)
    note = stiffness_note(located, 50, 60)
    assert note.startswith("depth cap located (50 of 60 transitions at the cap): at 3 posterior")
    assert stiffness_note(located.iloc[:0], 50, 60) is None


def test_stiffness_note_separates_readings_from_the_population_model():
    """Draws where one reading makes most of the data's curvature are named by it; the others
    by the coordinate along which the data, spread over many readings, or the priors and the
    population model curve."""
    rows = [
        ("S01", "car_t", 272.1, False, 0.9, 0.95, "eta[S01, growth_rate]", 40),
        ("S01", "car_t", 272.1, False, 0.8, 0.7, "eta[S01, growth_rate]", 60),
        ("S09", "car_t", 373.61, True, 0.6, 0.9, "z0[S09, log_tumor]", 30),
        ("S05", "tumor", 90.2, False, 0.1, 0.8, "mu[kill_rate]", 12),
        ("S12", "car_t", 7.18, False, 0.1, 0.05, "omega_free_log__[kill_rate]", 8),
    ]
    located = pd.DataFrame(
        [dict(chain=0, draw=i, curvature=c, subject=s, analyte=a, time=t, blq=b, share=sh,
              data_share=ds, coordinate=k)
         for i, (s, a, t, b, sh, ds, k, c) in enumerate(rows)]
    )  # fmt: skip
    note = stiffness_note(located, 3000, 4000)
    assert "curves 30 times (median; up to 60)" in note
    assert "at 3 of them one reading makes most of it (median share 80% of the data's part): " \
        "S01 car_t day 272.1 ×2, S09 car_t day 373.61 (BLQ) ×1" in note  # fmt: skip
    assert "S05" not in note and "S12" not in note
    assert "at 1 the data make most of it, spread over many readings, along mu[kill_rate] ×1" \
        in note  # fmt: skip
    assert "at 1 the priors and the population model make most of it" in note
    assert note.endswith("along omega_free_log__[kill_rate] ×1")
    assert "priors" not in stiffness_note(located.iloc[:3], 3000, 4000)
    assert "reading" not in stiffness_note(located.iloc[4:], 3000, 4000)
