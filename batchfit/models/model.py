"""Model and CompositeModel: named, vectorized, picklable model functions.

A :class:`Model` wraps one :class:`Kernel` (a built-in lineshape, a user
function or an expression) under a name prefix. Adding models gives a
:class:`CompositeModel` (their sum). Models travel to workers as their
:attr:`Model.reference`, a JSON-able dict; pickling goes through it too, so
no closure is ever pickled.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchfit.errors import ModelError

HINT_KEYS = ("value", "min", "max", "vary", "expr")


@dataclass(frozen=True)
class Kernel:
    """One model function and what belongs to it.

    Attributes
    ----------
    kind : str
        ``"builtin"``, ``"function"`` or ``"expression"``.
    name : str
        Built-in type name, ``"pkg.mod:func"`` or the expression text.
    param_names : tuple of str
        Unprefixed parameter names, in the order ``func`` takes them.
    func : callable
        ``func(x, *params)`` -> array broadcast to ``(n, nx)``.
    deriv : callable or None
        ``deriv(x, *params)`` -> tuple of partials, one per parameter.
    guess : callable or None
        ``guess(y, x)`` -> dict unprefixed name -> ``(n,)`` array.
    both : callable or None
        ``both(x, *params)`` -> ``(value, partials)``: ``func`` and ``deriv``
        at the same values in one pass, sharing intermediate results. Taken
        from ``func.value_and_partials`` when not given.
    defaults : dict
        Unprefixed name -> dict of ``make_params`` settings.
    options : dict
        Extra factory keywords recorded in the reference (e.g. ``degree``).
    """

    kind: str
    name: str
    param_names: tuple[str, ...]
    func: Callable[..., Any]
    deriv: Callable[..., Any] | None = None
    guess: Callable[..., Any] | None = None
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    role: str = "other"  # "peak", "background" or "other": guides composite guesses
    both: Callable[..., Any] | None = None

    def __post_init__(self):
        if self.both is None and self.deriv is not None:
            object.__setattr__(self, "both", getattr(self.func, "value_and_partials", None))


def _as_float(value):
    return np.asarray(value, dtype=float)


def _param_array(model: Model, name: str, value: Any) -> np.ndarray:
    """A parameter value as a float array, refusing shapes that would mis-broadcast."""
    if type(value) is np.ndarray and value.dtype == np.float64 and value.ndim != 1:
        return value  # the common case, checked without building messages
    model = model.name
    try:
        if value is None:  # np.asarray(None, float) would quietly give nan
            raise TypeError
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ModelError(f"{model}: parameter {name!r} = {value!r} is not a number") from None
    if arr.ndim == 1 and arr.size > 1:
        raise ModelError(
            f"{model}: parameter {name!r} has shape {arr.shape}; give a float or an "
            f"array of shape (n, 1) so that it broadcasts against x (use value[:, None])"
        )
    return arr


class Model:
    """A vectorized model ``f(x, p1, p2, ...)`` with prefixed parameter names.

    Build models with the factories of :mod:`batchfit.models` (``gaussian()``,
    ``function_model(...)``, ...), not with this constructor.

    Parameters
    ----------
    kernel : Kernel
        The function, its derivatives, guess and defaults.
    prefix : str, optional
        Prepended to every parameter name.
    """

    def __init__(self, kernel: Kernel, prefix: str = ""):
        if not isinstance(prefix, str) or (prefix and not prefix.isidentifier()):
            raise ModelError(
                f"model prefix {prefix!r} is not usable; use an identifier such as 'p1_'"
            )
        self.kernel = kernel
        self.prefix = prefix

    # ------------------------------------------------------------ structure
    @property
    def components(self) -> list[Model]:
        """The single-kernel models this model sums (``[self]`` for a plain model)."""
        return [self]

    @property
    def name(self) -> str:
        """Readable name, e.g. ``gaussian(prefix='p1_')``."""
        k = self.kernel
        opts = "".join(f", {key}={val!r}" for key, val in k.options.items())
        if k.kind == "builtin":
            return f"{k.name}(prefix={self.prefix!r}{opts})"
        prefix = f", prefix={self.prefix!r}" if self.prefix else ""
        return f"{k.kind}_model({k.name!r}{prefix})"

    @property
    def param_names(self) -> list[str]:
        """Prefixed parameter names, in order."""
        return [self.prefix + n for n in self.kernel.param_names]

    @property
    def reference(self) -> dict[str, Any]:
        """JSON-able dict that :func:`batchfit.models.from_reference` rebuilds this model from."""
        k = self.kernel
        if k.kind == "builtin":
            return {"components": [self._component_ref()]}
        ref = {k.kind: k.name}
        if self.prefix:
            ref["prefix"] = self.prefix
        return ref

    def _component_ref(self) -> dict[str, Any]:
        k = self.kernel
        if k.kind == "builtin":
            return {"type": k.name, "prefix": self.prefix, **k.options}
        return {k.kind: k.name, "prefix": self.prefix}

    # ---------------------------------------------------------- evaluation
    def _args(self, values: Mapping[str, Any]) -> list[np.ndarray]:
        missing = [n for n in self.param_names if n not in values]
        if missing:
            raise ModelError(
                f"{self.name}: no value given for parameter(s) {missing}; "
                f"the model needs {self.param_names}"
            )
        return [_param_array(self, n, values[n]) for n in self.param_names]

    def __call__(self, x, **values) -> np.ndarray:
        """Evaluate the model.

        Parameters
        ----------
        x : array_like, shape (nx,)
            Independent variable.
        **values : float or ndarray of shape (n, 1)
            One value per parameter name; names the model does not use are ignored.

        Returns
        -------
        ndarray, shape (nx,) or (n, nx)

        Raises
        ------
        ModelError
            If a parameter value is missing.
        """
        x = _as_float(x)
        args = self._args(values)
        return _full_shape(self.kernel.func(x, *args), x, args)

    def eval(self, params, x) -> np.ndarray:
        """Evaluate with the values of a :class:`~batchfit.Parameters` (or a plain mapping)."""
        if hasattr(params, "valuesdict"):
            params = params.valuesdict()
        return self(x, **params)

    def jacobian(self, x, **values) -> dict[str, np.ndarray] | None:
        """Analytic partial derivatives, or None when the model has none.

        Returns
        -------
        dict or None
            Prefixed name -> array of the output's shape ``(nx,)`` or ``(n, nx)``.
        """
        if self.kernel.deriv is None:
            return None
        x = _as_float(x)
        parts = self.kernel.deriv(x, *self._args(values))
        return dict(zip(self.param_names, parts, strict=True))

    def value_and_jacobian(self, x, **values):
        """The model value and its analytic partials at the same values.

        Same results as ``(model(x, **values), model.jacobian(x, **values))``
        up to rounding, but built-in lineshapes share the work (e.g. one
        ``exp`` for a Gaussian and its three partials).

        Returns
        -------
        value : ndarray, shape (nx,) or (n, nx)
        partials : dict or None
            As :meth:`jacobian`; None when the model has no analytic derivatives.
        """
        k = self.kernel
        if k.deriv is None:
            return self(x, **values), None
        x = _as_float(x)
        args = self._args(values)
        if k.both is None:
            value, parts = k.func(x, *args), k.deriv(x, *args)
        else:
            value, parts = k.both(x, *args)
        return _full_shape(value, x, args), dict(zip(self.param_names, parts, strict=True))

    # ---------------------------------------------------------- parameters
    def make_params(self, **hints):
        """Template :class:`~batchfit.Parameters` with defaults and ``hints`` applied.

        Parameters
        ----------
        **hints : float or dict
            Per prefixed name: a number sets ``value``; a dict may set any of
            ``value, min, max, vary, expr``.

        Raises
        ------
        ModelError
            For a hint naming no parameter of the model, or a bad hint key.
        """
        from batchfit.core.parameter import Parameters

        settings = self._default_settings()
        for name, hint in hints.items():
            if name not in settings:
                raise ModelError(_unknown_name_message(name, list(settings), "parameter"))
            settings[name].update(_hint_settings(name, hint))
        params = Parameters()
        for name, spec in settings.items():
            params.add(name, **spec)
        return params

    def _default_settings(self) -> dict[str, dict[str, Any]]:
        out = {}
        for comp in self.components:
            for raw in comp.kernel.param_names:
                out[comp.prefix + raw] = dict(comp.kernel.defaults.get(raw, {"value": 1.0}))
        return out

    def guess(self, y, x) -> dict[str, np.ndarray]:
        """Per-row starting values: prefixed name -> ``(n,)`` array for ``y (n, nx)``.

        Raises
        ------
        ModelError
            If the model has no guess (user functions and expressions).
        """
        if self.kernel.guess is None:
            raise ModelError(
                f"{self.name} cannot guess starting values; give them in the "
                "parameters (value=...) and set guess to false"
            )
        y = np.atleast_2d(np.asarray(y, dtype=float))
        raw = self.kernel.guess(y, x)
        empty = ~np.isfinite(y).any(axis=1)  # no data: no guess, the engine flags bad_data
        return {
            self.prefix + k: np.where(empty, np.nan, np.asarray(v, dtype=float))
            for k, v in raw.items()
        }

    # ------------------------------------------------------------- algebra
    def __add__(self, other: Model) -> CompositeModel:
        if not isinstance(other, Model):
            return NotImplemented
        return CompositeModel(self.components + other.components)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Model):
            return NotImplemented
        return self.reference == other.reference

    def __hash__(self) -> int:
        return hash(json.dumps(self.reference, sort_keys=True))

    def __reduce__(self):
        from batchfit.models.registry import from_reference

        return (from_reference, (self.reference,))


class CompositeModel(Model):
    """Sum of models; parameter names of the parts must not clash.

    Parameters
    ----------
    components : list of Model
        Single-kernel models (composites are flattened).

    Raises
    ------
    ModelError
        If two components share a parameter name.
    """

    def __init__(self, components: list[Model]):
        flat = [c for m in components for c in m.components]
        _check_clashes(flat)
        self._components = flat

    @property
    def components(self) -> list[Model]:
        """The single-kernel models summed, in order."""
        return list(self._components)

    @property
    def name(self) -> str:
        """Readable name: the components joined by ``+``."""
        return " + ".join(c.name for c in self._components)

    @property
    def prefix(self) -> str:
        """Composites have no prefix of their own."""
        return ""

    @property
    def param_names(self) -> list[str]:
        """Prefixed parameter names of all components, in order."""
        return [n for c in self._components for n in c.param_names]

    @property
    def reference(self) -> dict[str, Any]:
        """``{"components": [...]}`` with one entry per component."""
        return {"components": [c._component_ref() for c in self._components]}

    def __call__(self, x, **values) -> np.ndarray:
        """Evaluate the sum of the components (see :meth:`Model.__call__`)."""
        return _sum([c(x, **values) for c in self._components])

    def value_and_jacobian(self, x, **values):
        """Sum of the values, union of the partials (see :meth:`Model.value_and_jacobian`)."""
        parts, jac = [], {}
        for c in self._components:
            value, part = c.value_and_jacobian(x, **values)
            parts.append(value)
            if part is None:
                jac = None
            elif jac is not None:
                jac.update(part)
        return _sum(parts), jac

    def jacobian(self, x, **values) -> dict[str, np.ndarray] | None:
        """Union of the components' partials, or None if any component has none."""
        out: dict[str, np.ndarray] = {}
        for c in self._components:
            part = c.jacobian(x, **values)
            if part is None:
                return None
            out.update(part)
        return out

    def guess(self, y, x) -> dict[str, np.ndarray]:
        """Guess component by component on what the earlier ones leave.

        Strategy: background components (constant, linear, quadratic,
        polynomial) are guessed from the points at both edges (10% each);
        then the other non-peak components (step, exponential, damped sine) on
        the whole residual; then the peaks one after the other, each on the
        residual of the ones before, so successive peaks take successive maxima.
        Each guessed component is subtracted before the next.
        """
        from batchfit.models.guess import edge_mask, prepare

        y, x = prepare(y, x)
        resid = y.copy()
        edges = edge_mask(x.size)
        out: dict[str, np.ndarray] = {}
        for comp in _guess_order(self._components):
            data = np.where(edges, resid, np.nan) if comp.kernel.role == "background" else resid
            values = comp.guess(data, x)
            out.update(values)
            with np.errstate(all="ignore"):
                resid = resid - comp(x, **{k: v[:, None] for k, v in values.items()})
        return {n: out[n] for n in self.param_names}


def _full_shape(out, x: np.ndarray, args) -> np.ndarray:
    """``out`` as a float array of the broadcast shape of ``x`` and ``args``."""
    out = np.asarray(out, dtype=float)
    shape = np.broadcast_shapes(x.shape, *(a.shape for a in args))
    return out if out.shape == shape else np.broadcast_to(out, shape).copy()


def _sum(parts: list[np.ndarray]) -> np.ndarray:
    """``parts[0] + parts[1] + ...`` left to right, adding in place after the first sum."""
    if len(parts) == 1:
        return parts[0]
    total = parts[0] + parts[1]
    for p in parts[2:]:
        if np.broadcast_shapes(total.shape, p.shape) == total.shape:
            total += p
        else:
            total = total + p
    return total


def _guess_order(components: list[Model]) -> list[Model]:
    rank = {"background": 0, "other": 1, "peak": 2}
    return sorted(components, key=lambda c: rank.get(c.kernel.role, 1))


def _check_clashes(components: list[Model]) -> None:
    seen: dict[str, str] = {}
    for comp in components:
        for name in comp.param_names:
            if name in seen:
                raise ModelError(
                    f"parameter name {name!r} is used by both {seen[name]} and "
                    f"{comp.name}; give the components different prefixes, "
                    "e.g. gaussian(prefix='p1_') + gaussian(prefix='p2_')"
                )
            seen[name] = comp.name


def _hint_settings(name: str, hint: Any) -> dict[str, Any]:
    if isinstance(hint, Mapping):
        bad = [k for k in hint if k not in HINT_KEYS]
        if bad:
            raise ModelError(
                f"hint for {name!r}: unknown key(s) {bad}; use any of {list(HINT_KEYS)}"
            )
        return dict(hint)
    if isinstance(hint, (int, float, np.number)) and not isinstance(hint, bool):
        return {"value": float(hint)}
    raise ModelError(
        f"hint for {name!r}: {hint!r} is neither a number nor a dict of {list(HINT_KEYS)}"
    )


def _unknown_name_message(name: str, valid: list[str], what: str) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}{hint} (valid: {', '.join(valid)})"
