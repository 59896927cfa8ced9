"""BatchResult: the struct of arrays returned by fit_batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batchfit.status import MESSAGES, Status


@dataclass
class BatchResult:
    """Results of ``n`` fits, one entry per curve.

    Attributes
    ----------
    names : list of str
        Every parameter of the template, in template order.
    var_names : list of str
        The varied parameters (columns of ``covar``).
    values, stderr : dict of str -> ndarray, shape (n,), float64
        Best-fit value and standard error of every parameter; NaN where the
        curve was not fitted successfully (values) or not estimated (stderr).
    chisqr, redchi : ndarray, shape (n,), float64
    nfev : ndarray, shape (n,), int32
    ndata : ndarray, shape (n,), int32
        Points each curve was fitted on (finite, with positive weight); 0 for
        masked curves.
    nfree : ndarray, shape (n,), int32
        Degrees of freedom, ``ndata - nvarys``; 0 for masked curves.
    aic, bic : ndarray, shape (n,), float64
        Akaike and Bayesian information criteria (see
        :func:`batchfit.core.stats.information_criteria`); NaN where the fit
        did not succeed.
    success : ndarray, shape (n,), bool
    status : ndarray, shape (n,), int8
        :class:`batchfit.status.Status` codes.
    covar : ndarray, shape (n, nvar, nvar), or None
        Covariance of the varied parameters, scaled by redchi.
    """

    names: list
    var_names: list
    values: dict
    stderr: dict
    chisqr: np.ndarray
    redchi: np.ndarray
    nfev: np.ndarray
    ndata: np.ndarray
    success: np.ndarray
    status: np.ndarray
    covar: np.ndarray | None = None
    nfree: np.ndarray | None = None
    aic: np.ndarray | None = None
    bic: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.status.shape[0]
        if self.nfree is None:
            self.nfree = np.zeros(n, np.int32)
        if self.aic is None:
            self.aic = np.full(n, np.nan)
        if self.bic is None:
            self.bic = np.full(n, np.nan)

    def __len__(self) -> int:
        return self.status.shape[0]

    def counts(self) -> dict:
        """Number of curves per status name."""
        codes, counts = np.unique(self.status, return_counts=True)
        return {Status(int(c)).name.lower(): int(k) for c, k in zip(codes, counts, strict=False)}

    def message(self, i: int) -> str:
        """Why curve ``i`` ended, in words."""
        return MESSAGES[Status(int(self.status[i]))]

    @classmethod
    def empty(cls, names, var_names, n, covar=False, status=Status.NOT_RUN):
        """A result of ``n`` unfitted curves (NaN values, the given status)."""
        nan = np.full(n, np.nan)
        k = len(var_names)
        return cls(
            names=list(names), var_names=list(var_names),
            values={p: nan.copy() for p in names}, stderr={p: nan.copy() for p in names},
            chisqr=nan.copy(), redchi=nan.copy(), nfev=np.zeros(n, np.int32),
            ndata=np.zeros(n, np.int32), success=np.zeros(n, bool),
            status=np.full(n, int(status), np.int8),
            covar=np.full((n, k, k), np.nan) if covar else None,
        )
