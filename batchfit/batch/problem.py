"""The batch engine's problem: residuals, costs and Jacobians of a chunk of curves.

:class:`Problem` is what :func:`batchfit.batch.fit.fit_batch` hands to the
kernel (:func:`batchfit.batch.lm.solve`) as its ``evaluate``: model values of
the active curves in external units (the kernel handles bounds), weighted
residuals, the per-curve cost (sum of squares, or the Poisson deviance through
the kernel's cost hook), and Jacobian columns, analytic with the chain rule
through tied parameters, or forward differences for models without partials.
"""

from __future__ import annotations

import numpy as np

from batchfit.core import poisson
from batchfit.core.fdiff import forward_columns


def unit_weights(w) -> bool:
    """True for the read-only all-ones weights of data without sigma or NaN."""
    return w.ndim == 2 and w.strides == (0, 0)


class Problem:
    """Residuals and Jacobians of the active curves (external values: the kernel does bounds).

    The residual is ``(model - data) * w``, the negative of the core's
    ``(data - model) * w``: the sum of squares, ``J^T J`` and ``J^T r`` (hence
    every step) are the same, and the Jacobian is then the model's partials
    themselves, with no sign pass over it.
    """

    def __init__(self, model, layout, x, y, w, cost="chisqr"):
        self.model, self.layout, self.x, self.y, self.w = model, layout, x, y, w
        self.unit_w = unit_weights(w) or bool(np.all(w == 1.0))
        # Poisson: w is 0/1 (point used); the weights 1/sqrt(f) change with f.
        self.kind = cost
        self.poisson = cost == "poisson"
        self.data_term = poisson.data_term(y, w) if self.poisson else None
        self.has_jac = model.jacobian(x, **_probe_values(model, layout)) is not None

    def model_values(self, theta):
        """The model's parameter values (``{name: (m, 1) array}``) at ``theta``."""
        vals = self.layout.values(theta)
        return {p: vals[p] for p in self.model.param_names}

    def _model(self, theta, with_jac):
        """Model values (m, npts) and, if asked, partials (None if the model failed)."""
        vals = self.model_values(theta)
        shape = (theta.shape[0], self.x.size)
        try:
            with np.errstate(all="ignore"):
                if with_jac:
                    f, d = self.model.value_and_jacobian(self.x, **vals)
                else:
                    f, d = self.model(self.x, **vals), None
                if f.shape != shape:
                    f = np.broadcast_to(f, shape)
        except Exception:
            return self._rowwise(vals, shape[0]), None
        return f, d

    def _rowwise(self, vals, m):
        """Model values curve by curve, so that one failing curve fails alone."""
        out = np.full((m, self.x.size), np.nan)
        for i in range(m):
            one = {k: (v[i : i + 1] if np.ndim(v) else v) for k, v in vals.items()}
            try:
                with np.errstate(all="ignore"):
                    out[i] = np.asarray(self.model(self.x, **one), dtype=float).reshape(-1)
            except Exception:
                pass
        return out

    def _weigh(self, r, rows, wt=None):
        # A non-finite model value makes the residual non-finite even where the
        # weight is zero (nan * 0 is nan), so a failing model is never hidden.
        if wt is not None:
            return np.multiply(r, wt, out=r)
        return r if self.unit_w else np.multiply(r, self.w[rows], out=r)

    def _residuals(self, f, rows):
        """Weighted residuals of model values ``f`` and the Poisson weights (or None)."""
        y = self.y[rows]
        with np.errstate(all="ignore"):
            if not self.poisson:
                return self._weigh(np.subtract(f, y), rows), None
            return poisson.linearize(f, y, None if self.unit_w else self.w[rows])

    def cost(self, f, rows):
        """Per-curve cost of model values ``f``: deviance, or sum of squares."""
        if self.poisson:
            with np.errstate(all="ignore"):
                data = None if self.data_term is None else self.data_term[rows]
                return poisson.deviance(f, self.y[rows], None if self.unit_w else self.w[rows],
                                        data)
        r = self._residuals(f, rows)[0]
        return np.where(np.isfinite(r).all(axis=1), np.vecdot(r, r), np.nan)

    def resid(self, theta, rows):
        """Weighted residuals ``(m, npts)`` at ``theta`` of the curves ``rows``."""
        f, _ = self._model(theta, False)
        return self._residuals(f, rows)[0]

    def cost_at(self, theta, rows):
        """Per-curve cost at ``theta``."""
        return self.cost(self._model(theta, False)[0], rows)

    def evaluate(self, theta, rows):
        """The kernel's ``evaluate``: residuals, their Jacobian on demand, and the cost.

        The cost (third item, the kernel's cost hook) is returned only for
        ``cost='poisson'``; otherwise the kernel uses ``sum(r**2)``.
        """
        f, d = self._model(theta, self.has_jac)
        if self.poisson:
            with np.errstate(all="ignore"):
                data = None if self.data_term is None else self.data_term[rows]
                r, wt, cost = poisson.fisher_terms(
                    f, self.y[rows], None if self.unit_w else self.w[rows], data)
        else:
            (r, wt), cost = self._residuals(f, rows), None

        def columns(sel, rel_step):
            ws = None if wt is None else wt[sel]
            if not self.has_jac:
                return self._fd_columns(theta[sel], rows[sel], f[sel], rel_step, ws), len(
                    self.layout.var_names)
            return self._columns(theta, rows, d, sel, ws), 0

        return (r, columns) if cost is None else (r, columns, cost)

    def _fd_columns(self, theta, rows, f0, rel_step, wt=None):
        """Forward differences of the model (:mod:`batchfit.core.fdiff`), weighed."""
        cols = forward_columns(lambda t: self._model(t, False)[0], theta, f0, rel_step)
        return [self._weigh(col, rows, wt) for col in cols]

    def _columns(self, theta, rows, d, sel, wt=None):
        """Analytic columns of ``d r / d theta`` for the rows ``sel`` of an evaluation."""
        layout, npts = self.layout, self.x.size
        m = sel.size
        if d is None:  # the model failed: the kernel flags these curves
            return [np.full((m, npts), np.nan)] * layout.nvar
        full = m == theta.shape[0]
        th = theta if full else theta[sel]
        ties = layout.tie_gradients(th)
        w = None if self.unit_w else self.w[rows if full else rows[sel]]
        w = w if wt is None else wt
        cols = []
        with np.errstate(all="ignore"):
            for j, name in enumerate(layout.var_names):
                # a tie that does not depend on this parameter adds nothing (most of them)
                terms = [_take(d[q], sel, full, npts) * g[:, j : j + 1]
                         for q, g in ties.items() if q in d and g[:, j].any()]
                if name in d:
                    terms.append(_take(d[name], sel, full, npts))
                col = sum(terms[1:], terms[0]) if terms else np.zeros(npts)
                if w is not None:
                    col = col * w
                cols.append(col)
        return cols


def _take(part, sel, full, npts):
    """Rows ``sel`` of a model partial; a partial equal for all rows stays 1-D."""
    part = np.asarray(part, dtype=float)
    if part.ndim < 2:
        return np.broadcast_to(part, (npts,))
    if part.shape[0] == 1 or part.strides[0] == 0:
        return np.broadcast_to(part[0], (npts,))
    part = np.broadcast_to(part, (part.shape[0], npts))
    return part if full else part[sel]


def _probe_values(model, layout):
    vals = layout.values(layout.start[None, :])
    return {p: vals[p] for p in model.param_names}
