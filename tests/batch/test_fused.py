"""The fast paths of the batch engine against their plain counterparts."""

import numpy as np
import pytest

from batchfit.batch.linalg import gram, gram_columns
from batchfit.batch.lm import solve
from batchfit.models import function_model, gaussian, linear, lorentzian

from .test_lm import GaussLine, make


@pytest.mark.parametrize("extra", [0, 10])  # k = 4 (dot products) and 14 (stacked)
def test_gram_columns_matches_dense_gram_with_shared_columns(extra):
    rng = np.random.default_rng(11)
    n, npts = 97, 64
    x = np.linspace(-1, 1, npts)
    cols = [rng.standard_normal((n, npts)), x, rng.standard_normal((n, npts)), np.ones(npts)]
    cols += [rng.standard_normal((n, npts)) for _ in range(extra)]
    r = rng.standard_normal((n, npts))
    dense = np.stack([np.broadcast_to(c, (n, npts)) for c in cols], axis=-1)
    a, g = gram_columns(cols, r)
    a_ref, g_ref = gram(dense, r)
    np.testing.assert_allclose(a, a_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-12)
    for i in (0, 13, 96):  # a row's numbers never depend on the other rows
        one = [c[i : i + 1] if c.ndim == 2 else c for c in cols]
        a1, g1 = gram_columns(one, r[i : i + 1])
        np.testing.assert_array_equal(a1[0], a[i])
        np.testing.assert_array_equal(g1[0], g[i])


@pytest.mark.parametrize("model", [gaussian() + linear(), lorentzian(prefix="l_"), linear()])
def test_value_and_jacobian_match_call_and_jacobian(model):
    rng = np.random.default_rng(12)
    x = np.linspace(-5, 5, 41)
    values = {p: rng.uniform(0.5, 2.0, (6, 1)) for p in model.param_names}
    f, d = model.value_and_jacobian(x, **values)
    np.testing.assert_allclose(f, model(x, **values), rtol=1e-14, atol=1e-14)
    ref = model.jacobian(x, **values)
    assert sorted(d) == sorted(ref)
    for name in ref:
        np.testing.assert_allclose(np.broadcast_to(d[name], f.shape), ref[name], rtol=1e-13,
                                   atol=1e-13)
    scalar = {p: 1.5 for p in model.param_names}  # plain floats work too
    np.testing.assert_allclose(model.value_and_jacobian(x, **scalar)[0], model(x, **scalar))


@pytest.mark.usefixtures("bad_models_path")
def test_value_and_jacobian_of_user_function_has_no_partials():
    model = function_model("bad_models:decay_nan")
    x = np.linspace(0.1, 2, 5)
    f, d = model.value_and_jacobian(x, amp=2.0, tau=0.5)
    assert d is None
    np.testing.assert_array_equal(f, model(x, amp=2.0, tau=0.5))


@pytest.mark.parametrize("analytic", [True, False])
@pytest.mark.parametrize("n", [1, 9])
def test_gram_at_solution_is_gram_of_fresh_jacobian(analytic, n):
    """Also for a single curve, whose state must not be scaled in place by a step."""
    prob, start = make(GaussLine, n, seed=13)
    res = solve(prob.resid, start, jac=prob.jac if analytic else None, return_gram=True)
    a_ref = gram(res.jac_at_solution)
    np.testing.assert_allclose(res.gram_at_solution, a_ref, rtol=1e-9,
                               atol=1e-12 * np.abs(a_ref).max())
