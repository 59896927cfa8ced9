"""How a Parameters template maps onto arrays of a batch of curves.

A :class:`Layout` is built once per template: the varied parameters become
the columns of ``theta`` (internal, unbounded coordinates), fixed ones stay
scalars, and tied ones are evaluated from the others on whole arrays.
"""

from __future__ import annotations

import numpy as np

from batchfit.core.bounds import Bounds
from batchfit.core.expr import TieSet
from batchfit.core.parameter import Parameters, check_parameter
from batchfit.errors import ParameterError


class Layout:
    """Arrays view of a Parameters template for ``n`` curves.

    Parameters
    ----------
    params : Parameters
        The template: values, vary, bounds and expressions.
    symtable : mapping, optional
        User functions/constants the expressions may use.

    Raises
    ------
    ParameterError, ExpressionError
        Invalid template (checked once here, never per curve).
    """

    def __init__(self, params: Parameters, symtable=None):
        if not isinstance(params, Parameters):
            raise ParameterError(
                f"expected a Parameters template, got {type(params).__name__}; "
                "use model.make_params()"
            )
        self.params = params
        self.symtable = symtable
        self.ties = TieSet(params, symtable)
        for name, par in params.items():
            check_parameter(name, par)
        self.names = list(params)
        self.var_names = [n for n, p in params.items() if p.varies]
        self.fixed = {n: p.value for n, p in params.items()
                      if not p.varies and p.expr is None}
        pars = [params[n] for n in self.var_names]
        self.bounds = Bounds([p.lo for p in pars], [p.hi for p in pars])
        self.start = np.array([p.value for p in pars], dtype=float)
        self.nvar = len(pars)

    def starting_values(self, n: int, overrides=()) -> np.ndarray:
        """External starting values ``(n, nvar)``: the template, then each override.

        ``overrides`` is a sequence of mappings name -> ``(n,)`` arrays; later
        ones win, and a non-finite entry keeps the earlier value.
        """
        start = np.broadcast_to(self.start, (n, self.nvar)).copy()
        for mapping in overrides:
            for j, name in enumerate(self.var_names):
                if name in mapping:
                    v = np.broadcast_to(np.asarray(mapping[name], dtype=float), (n,))
                    start[:, j] = np.where(np.isfinite(v), v, start[:, j])
        return self.bounds.clip(start)

    def values(self, ext: np.ndarray) -> dict:
        """All parameter values for external varied values ``ext`` ``(m, nvar)``.

        Varied and tied values are ``(m, 1)`` columns; fixed ones are floats.
        """
        vals = dict(self.fixed)
        for j, name in enumerate(self.var_names):
            vals[name] = ext[:, j : j + 1]
        return self.ties.apply(vals) if self.ties else vals

    def tie_gradients(self, ext: np.ndarray) -> dict:
        """d(tied)/d(varied) (:meth:`TieSet.gradients`): name -> ``(m, nvar)``.

        Only the (cheap) expressions are evaluated, never the model.
        """
        if not self.ties:
            return {}
        m = ext.shape[0]
        grads = self.ties.gradients(self.values(ext), self.var_names,
                                    np.maximum(np.abs(ext), 1e-12))
        return {name: g.reshape(m, self.nvar) for name, g in grads.items()}
