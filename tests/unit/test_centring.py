"""Partial centring: the weights are the data's share of each subject effect's precision, and
re-weighting moves the subject effects so that every theta, and the density up to the Jacobian
of eta -> ln theta, stay the same."""

import numpy as np
import pandas as pd
from pymc.blocking import DictToArrayBijection, RaveledVars

from cartfit.data import load_cohort
from cartfit.inference import build_model, prepare
from cartfit.inference.centring import ETA, partial_weights, recentre, reweight
from cartfit.inference.whiten import whitened_model
from cartfit.io import write_cohort
from cartfit.models import get_model


def test_weights_are_the_datas_share_of_the_precision():
    """Normal-normal: data precision I, prior SD omega -> a = omega^2 I / (1 + omega^2 I); the
    omega used is the EM step mean((ln theta - m)^2 + V), not the optimiser's."""
    info = np.array([[0.0, 4.0], [1.0, 100.0], [9.0, 0.25]])
    omega_hat = np.array([2.0, 0.5])  # where the optimiser stopped
    var = 1.0 / (info + 1.0 / omega_hat**2)
    loc = np.zeros_like(info)
    spread = np.array([[1.0, -0.3], [-1.0, 0.3], [0.0, 0.0]])
    omega2 = np.mean(spread**2 + var, axis=0)
    expected = omega2 * info / (1.0 + omega2 * info)
    np.testing.assert_allclose(partial_weights(var, omega_hat, spread, loc), expected)
    assert partial_weights(var, omega_hat, spread, loc)[0, 0] == 0.0  # no information: 0
    # a variance above the prior's (curvature from the data negative) also gives 0
    assert partial_weights(np.array([[5.0]]), np.array([1.0]), np.zeros((1, 1)), loc[:1, :1]) == 0


def test_recentring_keeps_theta_and_the_density(tmp_path):
    rows = []
    for s, f in (("P1", 1.0), ("P2", 2.0), ("P3", 0.5)):
        rows += [
            (s, -7.0, "tumor", 40.0 * f, "mm2", 1.0, 0),
            (s, 7.0, "tumor", 20.0 * f, "mm2", 1.0, 0),
            (s, 7.0, "car_t", 3000.0 / f, "copies/ug", 5.0, 0),
            (s, 28.0, "car_t", 300.0 * f, "copies/ug", 5.0, 0),
        ]
    cols = ["subject", "time", "analyte", "value", "unit", "lloq", "blq"]
    subjects = pd.DataFrame({"subject": ["P1", "P2", "P3"], "dose": [1e8, 2e8, 1e8]})
    write_cohort(tmp_path / "c", pd.DataFrame(rows, columns=cols), subjects)
    model = get_model("predator_prey", "gompertz")
    pm_model = build_model(model, prepare(load_cohort(tmp_path / "c"), model), population=True)
    whitened = whitened_model(pm_model)
    info = whitened.point_map_info
    theta_fn = pm_model.compile_fn(
        pm_model.replace_rvs_by_values([pm_model["theta"], pm_model["omega_free"]]),
        inputs=pm_model.value_vars,
        on_unused_input="ignore",
        point_fn=False,
    )
    logp_fn = pm_model.compile_logp()

    def at(x):
        point = DictToArrayBijection.rmap(RaveledVars(x, info))
        theta, omega = theta_fn(**point)
        return theta, omega, float(logp_fn(point))

    rng = np.random.default_rng(3)
    x = whitened.x_init + rng.normal(0.0, 0.3, whitened.n_dim)
    k = whitened.subj_idx.shape[1]
    # subject factors L_i (L_i L_i^T = D_i^-1) of a diagonal precision
    l_subj = np.broadcast_to(np.diag(np.linspace(2.0, 40.0, k) ** -0.5), (3, k, k)).copy()
    old = pm_model.cartfit_centring.weights.get_value().copy()
    theta0, omega, logp0 = at(x)
    new, x_new = recentre(pm_model, info, whitened.subj_idx, l_subj, x)
    assert new.shape == old.shape and np.all((new >= 0) & (new <= 1))
    assert not np.allclose(new, old)
    np.testing.assert_array_equal(pm_model.cartfit_centring.weights.get_value(), new)
    theta1, _, logp1 = at(x_new)
    np.testing.assert_allclose(theta1, theta0, rtol=1e-12)
    # only eta moved; its density carries log|d ln theta / d eta| = (1 - a) ln omega
    changed = np.flatnonzero(x_new != x)
    offset = sum(size for name, _, size, _ in info[: [n for n, *_ in info].index(ETA)])
    assert changed.min() >= offset and changed.max() < offset + old.size
    jacobian = np.log(omega) * ((1.0 - new) - (1.0 - old))
    np.testing.assert_allclose(logp1 - logp0, jacobian.sum(), rtol=1e-9, atol=1e-9)

    # the non-centred start: to weights 0 and back is the identity, theta unchanged throughout
    x_nc = reweight(pm_model, info, x_new, 0.0)
    assert not pm_model.cartfit_centring.weights.get_value().any()
    np.testing.assert_allclose(at(x_nc)[0], theta0, rtol=1e-12)
    np.testing.assert_allclose(reweight(pm_model, info, x_nc, new), x_new, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pm_model.cartfit_centring.weights.get_value(), new)
