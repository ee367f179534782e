"""The whitening map as one Op: x = x̂ + L w and its gradient Lᵀ x̄, against a dense L."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from cartfit.inference.arrow import ArrowMapOp, arrow_apply, arrow_transpose


def _arrow(rng, n_p, n_s, k):
    """Random blocks laid out at random positions, and the dense L they make."""
    n = n_p + n_s * k
    perm = rng.permutation(n)
    pop_idx, subj_idx = perm[:n_p], perm[n_p:].reshape(n_s, k)
    pop = rng.standard_normal((n_p, n_p))
    subj = rng.standard_normal((n_s, k, k))
    coupling = rng.standard_normal((n_s, k, n_p))
    dense = np.zeros((n, n))
    dense[np.ix_(pop_idx, pop_idx)] = pop
    for s in range(n_s):
        dense[np.ix_(subj_idx[s], subj_idx[s])] = subj[s]
        dense[np.ix_(subj_idx[s], pop_idx)] = coupling[s]
    return (pop, subj, coupling, pop_idx, subj_idx), dense


@pytest.mark.parametrize(("n_p", "n_s", "k"), [(3, 4, 2), (0, 2, 3), (4, 0, 0), (1, 1, 1)])
@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_arrow_map_is_x_hat_plus_l_w_with_gradient_l_transposed(n_p, n_s, k, mode):
    rng = np.random.default_rng(n_p * 10 + n_s)
    blocks, dense = _arrow(rng, n_p, n_s, k)
    n = dense.shape[0]
    loc, w, g = (rng.standard_normal(n) for _ in range(3))
    np.testing.assert_allclose(arrow_apply(w, loc, *blocks), loc + dense @ w, atol=1e-12)
    np.testing.assert_allclose(arrow_transpose(g, *blocks), dense.T @ g, atol=1e-12)
    wv = pt.dvector("w")
    x = ArrowMapOp()(wv, loc, *blocks)
    fn = pytensor.function([wv], [x, pytensor.grad((x * g).sum(), wv)], mode=mode)
    value, grad = fn(w)
    np.testing.assert_allclose(value, loc + dense @ w, atol=1e-12)
    np.testing.assert_allclose(grad, dense.T @ g, atol=1e-12)
