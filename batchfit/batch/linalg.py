"""Batched small dense linear algebra that never raises on a bad row.

Every function works on a stack of ``n`` independent ``k x k`` problems
(``k`` small, up to about 30) and loops over the matrix dimension in Python
while vectorizing over the stack. A singular, indefinite or non-finite row
gives ``ok = False`` (or NaN output) for that row only.

Each row's result is computed by the same sequence of elementwise operations
whatever the stack size, so a row's numbers never depend on its neighbours:
reductions over the short axes are explicit loops, never ``sum``/``einsum``
over an axis whose iteration order numpy may change with the array shape.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "cho_solve",
    "cho_solve_t",
    "cholesky",
    "cholesky_t",
    "covariance_from_gram",
    "gram",
    "gram_columns",
    "solve_spd",
    "solve_stack",
]

STACK_K = 12
"""Above this many columns :func:`gram_columns` stacks them and calls :func:`gram`
(measured: below it, per-column dot products win on thousands of curves)."""
SOLVE_LOOP_K = 6
"""Up to this many unknowns :func:`solve_stack` runs batch-last Cholesky loops; above
it, one LAPACK call per row costs less at any stack size."""
COVAR_RTOL = 1e-10
"""Default relative pivot tolerance of :func:`covariance_from_gram`."""


def gram(jac: np.ndarray, resid: np.ndarray | None = None):
    """Normal-equation pieces ``J^T J`` (and ``J^T r``) row by row.

    Parameters
    ----------
    jac : ndarray, shape (n, npts, k)
        Jacobians, one per row.
    resid : ndarray, shape (n, npts), optional
        Residuals; when given, ``J^T r`` is returned too.

    Returns
    -------
    a : ndarray, shape (n, k, k)
        ``J^T J`` per row.
    g : ndarray, shape (n, k)
        ``J^T r`` per row (only when `resid` is given).

    Notes
    -----
    ``np.matmul`` on a C-contiguous stack calls one BLAS product per row with
    identical shapes and strides, so each row's result does not depend on the
    number of rows (checked by ``tests/batch/test_linalg.py``).
    """
    jac = _blasable(jac)
    jt = jac.transpose(0, 2, 1)
    a = np.matmul(jt, jac)
    if resid is None:
        return a
    r = np.ascontiguousarray(resid, dtype=np.float64)
    g = np.matmul(jt, r[:, :, None])[:, :, 0]
    return a, g


def gram_columns(cols, resid: np.ndarray):
    """``J^T J`` and ``J^T r`` row by row from the columns of ``J``.

    Parameters
    ----------
    cols : sequence of k ndarrays
        Column ``j`` of every row's Jacobian: shape (n, npts), or (npts,) when
        it is the same for all rows (then nothing is broadcast in memory, and
        the products of two such columns are computed once).
    resid : ndarray, shape (n, npts)
        Residuals.

    Returns
    -------
    a : ndarray, shape (n, k, k)
    g : ndarray, shape (n, k)

    Notes
    -----
    Up to ``STACK_K`` columns, every entry is one ``np.vecdot`` of two
    length-``npts`` vectors (a BLAS dot product per row with the same length
    and strides: no copy, shared columns computed once); beyond, the columns
    are stacked and :func:`gram` makes one product per row, so the number of
    Python-level operations stays flat in ``k``. Either way a row's result
    does not depend on the other rows (``tests/batch/test_fused.py``).
    """
    n, k = resid.shape[0], len(cols)
    if k > STACK_K:  # one BLAS product per row: the Python cost does not grow as k**2
        return gram(np.stack([np.broadcast_to(c, resid.shape) for c in cols], axis=-1), resid)
    a = np.empty((n, k, k))
    g = np.empty((n, k))
    for i, ci in enumerate(cols):
        for j in range(i + 1):
            cj = cols[j]
            if ci.ndim == 1 and cj.ndim == 1:
                a[:, i, j] = np.vecdot(ci, cj)
            else:
                np.vecdot(ci, cj, out=a[:, i, j])
            a[:, j, i] = a[:, i, j]
        np.vecdot(ci, resid, out=g[:, i])
    return a, g


def _blasable(jac: np.ndarray) -> np.ndarray:
    """`jac` as float64 with each (npts, k) matrix C- or F-ordered (no copy if so).

    A stack stored as (n, k, npts) and handed over transposed is used as is:
    every row then goes through the same BLAS call with the same layout.
    """
    jac = np.asarray(jac, dtype=np.float64)
    _, npts, k = jac.shape
    if jac.strides[1:] in ((8 * k, 8), (8, 8 * npts)):
        return jac
    return np.ascontiguousarray(jac)


def cholesky(a: np.ndarray, rtol: float = 0.0):
    """Row-wise Cholesky factor ``a = L L^T`` of a stack of symmetric matrices.

    Parameters
    ----------
    a : ndarray, shape (n, k, k)
        Symmetric matrices; only the lower triangle is read.
    rtol : float, optional
        A pivot must exceed ``rtol * a[j, j]`` (and zero) for the row to count
        as positive definite.

    Returns
    -------
    L : ndarray, shape (n, k, k)
        Lower-triangular factors; meaningless where ``ok`` is False.
    ok : ndarray of bool, shape (n,)
        True where every pivot was finite and above the tolerance.
    """
    at = np.ascontiguousarray(np.asarray(a, dtype=np.float64).transpose(1, 2, 0))
    low, ok = cholesky_t(at, rtol)
    return np.ascontiguousarray(low.transpose(2, 0, 1)), ok


def cholesky_t(at: np.ndarray, rtol: float = 0.0):
    """:func:`cholesky` on the batch-last layout: contiguous length-n vectors.

    Parameters
    ----------
    at : ndarray, shape (k, k, n)
        Symmetric matrices, batch last; only the lower triangle is read.
    rtol : float, optional
        Relative pivot tolerance, as in :func:`cholesky`.

    Returns
    -------
    low : ndarray, shape (k, k, n)
    ok : ndarray of bool, shape (n,)
    """
    k, n = at.shape[0], at.shape[-1]
    low = np.zeros_like(at)
    ok = np.ones(n, dtype=bool)
    for j in range(k):
        col = at[j:, j].copy()
        for t in range(j):
            col -= low[j:, t] * low[j, t]
        piv = col[0]
        good = (piv > rtol * at[j, j]) & (piv > 0.0) & (piv < np.inf)
        ok &= good
        d = np.sqrt(np.where(good, piv, 1.0))
        low[j, j] = d
        low[j + 1 :, j] = col[1:] / d
    return low, ok


def cho_solve(low: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``L L^T x = b`` row by row.

    Parameters
    ----------
    low : ndarray, shape (n, k, k)
        Lower Cholesky factors from :func:`cholesky`.
    b : ndarray, shape (n, k)
        Right-hand sides.

    Returns
    -------
    x : ndarray, shape (n, k)
    """
    lt = np.ascontiguousarray(low.transpose(1, 2, 0))
    return cho_solve_t(lt, np.ascontiguousarray(b.T)).T.copy()


def cho_solve_t(lt: np.ndarray, bt: np.ndarray) -> np.ndarray:
    """:func:`cho_solve` on the batch-last layout.

    Parameters
    ----------
    lt : ndarray, shape (k, k, n)
        Lower factors from :func:`cholesky_t`.
    bt : ndarray, shape (k, n)
        Right-hand sides.

    Returns
    -------
    x : ndarray, shape (k, n)
    """
    y = np.array(bt, dtype=np.float64)
    k = y.shape[0]
    for t in range(k):  # forward substitution, column oriented
        y[t] /= lt[t, t]
        y[t + 1 :] -= lt[t + 1 :, t] * y[t]
    for t in range(k - 1, -1, -1):  # back substitution with L^T
        y[t] /= lt[t, t]
        y[:t] -= lt[t, :t] * y[t]
    return y


def solve_spd(a: np.ndarray, b: np.ndarray, rtol: float = 0.0):
    """Solve symmetric positive definite systems ``a x = b`` row by row.

    Parameters
    ----------
    a : ndarray, shape (n, k, k)
    b : ndarray, shape (n, k)
    rtol : float, optional
        Relative pivot tolerance passed to :func:`cholesky`.

    Returns
    -------
    x : ndarray, shape (n, k)
        Solutions; NaN in rows that are not positive definite.
    ok : ndarray of bool, shape (n,)
    """
    low, ok = cholesky(a, rtol)
    x = cho_solve(low, b)
    x[~ok] = np.nan
    return x, ok


def _lower_inverse(low: np.ndarray) -> np.ndarray:
    """Inverse of a stack of lower-triangular matrices (forward substitution)."""
    k = low.shape[-1]
    inv = np.zeros_like(low)
    for i in range(k):
        inv[:, i, i] = 1.0 / low[:, i, i]
        for j in range(i):
            s = low[:, i, j] * inv[:, j, j]
            for t in range(j + 1, i):
                s += low[:, i, t] * inv[:, t, j]
            inv[:, i, j] = -s / low[:, i, i]
    return inv


def covariance_from_gram(a: np.ndarray, rtol: float = COVAR_RTOL,
                         exclude: np.ndarray | None = None) -> np.ndarray:
    """Inverse of ``J^T J`` per row, NaN where the row is rank deficient.

    The batched counterpart of :func:`batchfit.core.stats.covariance_from_jacobian`
    (which works on one fit's Jacobian by SVD); from Jacobians ``jac`` of
    shape (n, npts, k) it is ``covariance_from_gram(gram(jac))``.

    Parameters
    ----------
    a : ndarray, shape (n, k, k)
        ``J^T J`` of each row (:func:`gram`).
    rtol : float, optional
        Relative pivot tolerance. ``J^T J`` is first scaled to unit diagonal;
        a Cholesky pivot at or below `rtol` (one minus the squared multiple
        correlation of that column with the previous ones) marks the row as
        singular. Columns that are all zero are singular too.
    exclude : ndarray of bool, shape (n, k), optional
        Parameters held fixed (at a bound, or with a zero column): the
        covariance is that of the other parameters alone, and the rows and
        columns of the excluded ones are NaN.

    Returns
    -------
    covar : ndarray, shape (n, k, k)
        ``(J^T J)^-1``; every entry NaN for singular or non-finite rows. Scale
        by the reduced chi-square to get the parameter covariance.

    Notes
    -----
    From Jacobians, memory is linear in ``n * npts * k``; no ``(npts, npts)``
    array is formed.
    """
    if exclude is not None and exclude.any():
        keep = ~np.asarray(exclude, dtype=bool)
        both = keep[:, :, None] & keep[:, None, :]
        eye = np.broadcast_to(np.eye(a.shape[-1], dtype=bool), a.shape)
        cov = covariance_from_gram(np.where(both, a, np.where(eye, 1.0, 0.0)), rtol)
        return np.where(both, cov, np.nan)
    k = a.shape[-1]
    diag = np.diagonal(a, axis1=1, axis2=2)
    good = np.all(np.isfinite(diag) & (diag > 0.0), axis=1)
    scale = 1.0 / np.sqrt(np.where(good[:, None], diag, 1.0))
    scaled = a * scale[:, :, None] * scale[:, None, :]
    low, ok = cholesky(scaled, rtol)
    ok &= good
    linv = _lower_inverse(low)
    cov = np.empty_like(a)
    for i in range(k):  # (L^-1)^T L^-1, lower triangle then mirrored
        for j in range(i + 1):
            s = linv[:, i, i] * linv[:, i, j]
            for t in range(i + 1, k):
                s += linv[:, t, i] * linv[:, t, j]
            cov[:, i, j] = s
            cov[:, j, i] = s
    cov *= scale[:, :, None] * scale[:, None, :]
    cov[~(ok & np.all(np.isfinite(cov), axis=(1, 2)))] = np.nan
    return cov


def solve_stack(a: np.ndarray, b: np.ndarray):
    """Solve symmetric positive definite systems ``a x = b`` for a stack of small ones.

    Up to ``SOLVE_LOOP_K`` unknowns by a Cholesky factorization in batch-last loops
    (fastest for thousands of rows); beyond, one LAPACK call per matrix, so
    the Python cost stays flat in ``k``. Each row's result never depends on
    the other rows of the stack.

    Parameters
    ----------
    a : ndarray, shape (n, k, k)
    b : ndarray, shape (n, k)

    Returns
    -------
    x : ndarray, shape (n, k)
        NaN in rows that are not finite or are singular.
    ok : ndarray of bool, shape (n,)
    """
    if a.shape[-1] <= SOLVE_LOOP_K:  # small k: batch-last loops beat a LAPACK call per row
        return _solve_small(a, b)
    ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=1)
    if not ok.all():  # stand-ins, so that one bad row cannot fail the stack
        a = np.where(ok[:, None, None], a, np.eye(a.shape[-1]))
        b = np.where(ok[:, None], b, 0.0)
    try:
        x = np.linalg.solve(a, b[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:  # an exactly singular row: solve row by row
        x = np.array([_solve_one(ai, bi) for ai, bi in zip(a, b, strict=True)])
        x = x.reshape(b.shape)
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(x).all(axis=1)
    x[~ok] = np.nan
    return x, ok


def _solve_small(a: np.ndarray, b: np.ndarray):
    """Cholesky on the batch-last layout: O(k**2) vector operations, for k <= SOLVE_LOOP_K."""
    low, ok = cholesky_t(np.ascontiguousarray(a.transpose(1, 2, 0)))
    # C order: a strided row would take another BLAS path in np.vecdot than a
    # contiguous one (a single row), and round differently.
    x = np.ascontiguousarray(cho_solve_t(low, np.ascontiguousarray(b.T)).T)
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(x).all(axis=1)
    x[~ok] = np.nan
    return x, ok


def _solve_one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(a[None], b[None, :, None])[0, :, 0]
    except np.linalg.LinAlgError:
        return np.full(b.shape, np.nan)
