"""Tests for batchfit.batch.linalg against numpy.linalg."""

import numpy as np
import pytest

from batchfit.batch.linalg import (
    cho_solve,
    cholesky,
    covariance_from_gram,
    gram,
    solve_spd,
)


def random_spd(rng, n, k, cond=1e3):
    q, _ = np.linalg.qr(rng.standard_normal((n, k, k)))
    eig = np.exp(rng.uniform(0.0, np.log(cond), (n, k)))
    scale = np.exp(rng.uniform(-5, 5, (n, k)))
    a = np.matmul(q * eig[:, None, :], q.transpose(0, 2, 1))
    return a * scale[:, :, None] * scale[:, None, :]


@pytest.mark.parametrize("k", [1, 2, 5, 12])
def test_cholesky_matches_numpy(k):
    rng = np.random.default_rng(k)
    a = random_spd(rng, 50, k)
    low, ok = cholesky(a)
    assert ok.all()
    np.testing.assert_allclose(low, np.linalg.cholesky(a), rtol=1e-10, atol=0)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_solve_spd_matches_numpy(k):
    rng = np.random.default_rng(10 + k)
    a = random_spd(rng, 40, k)
    b = rng.standard_normal((40, k))
    x, ok = solve_spd(a, b)
    assert ok.all()
    np.testing.assert_allclose(x, np.linalg.solve(a, b[..., None])[..., 0], rtol=1e-9)
    low, _ = cholesky(a)
    np.testing.assert_allclose(np.matmul(a, cho_solve(low, b)[..., None])[..., 0], b,
                               rtol=1e-9, atol=1e-9 * np.abs(b).max())


def test_bad_rows_flagged_without_touching_good_rows():
    rng = np.random.default_rng(3)
    a = random_spd(rng, 6, 4)
    b = rng.standard_normal((6, 4))
    ref, _ = solve_spd(a, b)
    bad = a.copy()
    bad[1] = 0.0  # singular
    bad[2, 0, 0] = np.nan
    bad[3, 2, 2] = -1.0  # indefinite
    v = rng.standard_normal(4)
    bad[4] = np.outer(v, v)  # rank one
    x, ok = solve_spd(bad, b)
    np.testing.assert_array_equal(ok, [True, False, False, False, False, True])
    assert np.isnan(x[~ok]).all()
    np.testing.assert_array_equal(x[ok], ref[ok])


def test_gram_rows_do_not_depend_on_the_batch():
    rng = np.random.default_rng(4)
    jac = rng.standard_normal((301, 128, 5)) * rng.uniform(0.1, 1e3, (301, 1, 5))
    r = rng.standard_normal((301, 128))
    a_all, g_all = gram(jac, r)
    ref = np.einsum("npk,npl->nkl", jac, jac)
    np.testing.assert_allclose(a_all, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(g_all, np.einsum("npk,np->nk", jac, r), rtol=1e-10, atol=1e-9)
    buf = np.empty(128 * 5 + 1)
    for i in range(0, 301, 13):
        shifted = buf[1:].reshape(1, 128, 5)  # another alignment
        shifted[...] = jac[i]
        for sub in (jac[i : i + 1], shifted, jac[i : i + 7][:1]):
            a1, g1 = gram(sub, r[i : i + 1])
            np.testing.assert_array_equal(a1[0], a_all[i])
            np.testing.assert_array_equal(g1[0], g_all[i])


@pytest.mark.parametrize("k", [1, 3, 6])
def test_covariance_matches_numpy_inverse(k):
    rng = np.random.default_rng(20 + k)
    jac = rng.standard_normal((30, 64, k)) * np.exp(rng.uniform(-4, 4, (30, 1, k)))
    cov = covariance_from_gram(gram(jac))
    ref = np.linalg.inv(np.einsum("npk,npl->nkl", jac, jac))
    np.testing.assert_allclose(cov, ref, rtol=1e-9, atol=0)


def test_covariance_singular_rows_are_nan():
    rng = np.random.default_rng(5)
    jac = rng.standard_normal((5, 40, 3))
    jac[1, :, 2] = 2.0 * jac[1, :, 0]  # exactly collinear columns
    jac[2, :, 1] = 0.0  # parameter without effect
    jac[3, 4, 0] = np.inf
    jac[4, :, 2] = jac[4, :, 0] + 1e-9 * rng.standard_normal(40)  # numerically collinear
    cov = covariance_from_gram(gram(jac))
    assert np.isnan(cov[1:]).all()
    ref = np.linalg.inv(jac[0].T @ jac[0])
    np.testing.assert_allclose(cov[0], ref, rtol=1e-10)
    # a loose tolerance accepts the nearly collinear row
    assert np.isfinite(covariance_from_gram(gram(jac[4:]), rtol=1e-20)).all()


def test_covariance_has_no_dense_point_by_point_arrays():
    jac = np.ones((2, 100_000, 2))
    jac[:, ::2, 1] = -1.0
    cov = covariance_from_gram(gram(jac))  # would need 160 GB if (npts, npts) were formed
    np.testing.assert_allclose(cov[0], np.eye(2) / 100_000, rtol=1e-12, atol=1e-20)
