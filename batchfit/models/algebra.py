"""Combined models: sums (``a + b``), and products and differences (``a * b``, ``a - b``).

Parameter names of the parts must not clash. The partial derivatives of a
combination follow from its parts' analytic partials (sum, product and
difference rules); if any part has none, the combination has none and the
batch engine differentiates numerically.

References: a sum is ``{"components": [term, ...]}`` (as before), a product or
difference ``{"op": "*", "left": ref, "right": ref}``; a term of a sum may be
such an operator entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batchfit.errors import ModelError
from batchfit.models.kernel import check_clashes, sum_arrays
from batchfit.models.model import Model

OPERATORS = ("*", "-")


class CombinedModel(Model):
    """A model made of other models: no role or prefix of its own, parameters in order."""

    @property
    def role(self) -> str:
        """Combinations have no role of their own."""
        return "other"

    @property
    def prefix(self) -> str:
        """Combinations have no prefix of their own (their parts have)."""
        return ""

    @property
    def param_names(self) -> list[str]:
        """Parameter names of the parts, in order."""
        return [n for c in self.components for n in c.param_names]


class CompositeModel(CombinedModel):
    """Sum of models.

    Parameters
    ----------
    components : list of Model
        The terms of the sum (sums among them are flattened).

    Raises
    ------
    ModelError
        If two components share a parameter name.
    """

    def __init__(self, components: list[Model]):
        terms = [t for m in components for t in m.terms]
        check_clashes([c for t in terms for c in t.components])
        self._terms = terms

    @property
    def terms(self) -> list[Model]:
        """The models summed, in order."""
        return list(self._terms)

    @property
    def components(self) -> list[Model]:
        """The single-kernel models the sum is made of, in order."""
        return [c for t in self._terms for c in t.components]

    @property
    def name(self) -> str:
        """Readable name: the terms joined by ``+``."""
        return " + ".join(t.name for t in self._terms)

    @property
    def reference(self) -> dict[str, Any]:
        """``{"components": [...]}`` with one entry per term."""
        return {"components": [t.term_reference() for t in self._terms]}

    def term_reference(self) -> dict[str, Any]:
        """A sum inside a product is referenced by its own reference."""
        return self.reference

    def __call__(self, x, **values) -> np.ndarray:
        """Evaluate the sum of the terms (see :meth:`Model.__call__`)."""
        return sum_arrays([t(x, **values) for t in self._terms])

    def value_and_jacobian(self, x, **values):
        """Sum of the values, union of the partials (see :meth:`Model.value_and_jacobian`)."""
        parts: list = []
        jac: dict | None = {}
        for t in self._terms:
            value, part = t.value_and_jacobian(x, **values)
            parts.append(value)
            if part is None:
                jac = None
            elif jac is not None:
                jac.update(part)
        return sum_arrays(parts), jac

    def jacobian(self, x, **values) -> dict[str, np.ndarray] | None:
        """Union of the terms' partials, or None if any term has none."""
        out: dict[str, np.ndarray] = {}
        for t in self._terms:
            part = t.jacobian(x, **values)
            if part is None:
                return None
            out.update(part)
        return out

    def guess(self, y, x) -> dict[str, np.ndarray]:
        """Guess term by term on what the earlier ones leave.

        Strategy: background terms (constant, linear, quadratic, polynomial)
        are guessed from the points at both edges (10% each); then the other
        non-peak terms (step, exponential, damped sine) on the whole residual;
        then the peaks one after the other, each on the residual of the ones
        before, so successive peaks take successive maxima. Each guessed term
        is subtracted before the next.

        Raises
        ------
        ModelError
            If a term cannot guess (a product, a difference, a user function).
        """
        from batchfit.models.guess import edge_mask, prepare

        y, x = prepare(y, x)
        resid = y.copy()
        edges = edge_mask(x.size)
        out: dict[str, np.ndarray] = {}
        for term in guess_order(self._terms):
            data = np.where(edges, resid, np.nan) if term.role == "background" else resid
            values = term.guess(data, x)
            out.update(values)
            with np.errstate(all="ignore"):
                resid = resid - term(x, **{k: v[:, None] for k, v in values.items()})
        return {n: out[n] for n in self.param_names}


def guess_order(terms: list[Model]) -> list[Model]:
    """Terms in guessing order: backgrounds, then others, then peaks (stable)."""
    rank = {"background": 0, "other": 1, "peak": 2}
    return sorted(terms, key=lambda t: rank.get(t.role, 1))


class OperatorModel(CombinedModel):
    """``left * right`` or ``left - right``, evaluated on the same ``x``.

    Parameters
    ----------
    left, right : Model
    op : {'*', '-'}

    Raises
    ------
    ModelError
        For another operator or clashing parameter names.
    """

    def __init__(self, left: Model, right: Model, op: str):
        if op not in OPERATORS:
            raise ModelError(f"model operator {op!r} is not supported; use one of {OPERATORS}")
        check_clashes(left.components + right.components)
        self.left, self.right, self.op = left, right, op

    @property
    def components(self) -> list[Model]:
        """The single-kernel models of both sides, in order."""
        return self.left.components + self.right.components

    @property
    def name(self) -> str:
        """Readable name, e.g. ``(gaussian(prefix='g_')) * (step(prefix='s_'))``."""
        return f"({self.left.name}) {self.op} ({self.right.name})"

    @property
    def reference(self) -> dict[str, Any]:
        """``{"op": op, "left": left reference, "right": right reference}``."""
        return {"op": self.op, "left": self.left.reference, "right": self.right.reference}

    def term_reference(self) -> dict[str, Any]:
        """Inside a sum, an operator model is referenced by its own reference."""
        return self.reference

    def __call__(self, x, **values) -> np.ndarray:
        """Evaluate both sides and combine them (see :meth:`Model.__call__`)."""
        a, b = self.left(x, **values), self.right(x, **values)
        with np.errstate(all="ignore"):
            return a * b if self.op == "*" else a - b

    def value_and_jacobian(self, x, **values):
        """Value and partials by the product or difference rule."""
        a, da = self.left.value_and_jacobian(x, **values)
        b, db = self.right.value_and_jacobian(x, **values)
        with np.errstate(all="ignore"):
            value = a * b if self.op == "*" else a - b
            if da is None or db is None:
                return value, None
            if self.op == "*":
                jac = {n: d * b for n, d in da.items()}
                jac.update({n: a * d for n, d in db.items()})
            else:
                jac = dict(da)
                jac.update({n: -d for n, d in db.items()})
        return value, jac

    def jacobian(self, x, **values) -> dict[str, np.ndarray] | None:
        """Partials by the product or difference rule, or None if a side has none."""
        return self.value_and_jacobian(x, **values)[1]

    def guess(self, y, x) -> dict[str, np.ndarray]:
        """Products and differences cannot guess; ModelError says what to do."""
        raise ModelError(
            f"{self.name} cannot guess starting values (a product or difference of "
            "models); give them in the parameters (value=...) and set guess to false"
        )
