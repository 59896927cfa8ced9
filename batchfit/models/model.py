"""Model: a named, vectorized, picklable model function under a parameter prefix.

A :class:`Model` wraps one :class:`~batchfit.models.kernel.Kernel` (a built-in
lineshape, a user function or an expression) under a name prefix. ``+``,
``-`` and ``*`` combine models (:mod:`batchfit.models.algebra`). Models travel
to workers as their :attr:`Model.reference`, a JSON-able dict; pickling goes
through it too, so no closure is pickled except a user function that cannot
be imported (see :mod:`batchfit.models.user`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from batchfit.errors import ModelError
from batchfit.models.kernel import (
    Kernel,
    as_float,
    full_shape,
    hint_settings,
    param_array,
    unknown_name_message,
)
from batchfit.models.user import expression_kernel, function_kernel


class Model:
    """A vectorized model ``f(x, p1, p2, ...)`` with prefixed parameter names.

    ``Model(func)`` works as in lmfit: ``func(x, p1, p2=2.0, ...)`` is a Python
    function whose first argument is the independent variable and the others
    the parameters (numeric defaults become starting values). It must be
    vectorized: parameters arrive as arrays of shape ``(n, 1)``. Built-ins
    come from the factories of :mod:`batchfit.models` (``gaussian()``, ...).

    Parameters
    ----------
    func : function or Kernel
        The model function (see :func:`~batchfit.models.function_model`), or
        a :class:`~batchfit.models.kernel.Kernel`.
    prefix : str, optional
        Prepended to every parameter name.
    independent_vars : list of str, optional
        lmfit's keyword; only ``[name of the first argument]`` is supported.
    param_names : list of str, optional
        lmfit's keyword; must name the function's other arguments, in order.

    Raises
    ------
    ModelError
        A bad prefix, a ``func`` that is not a Python function, or
        ``independent_vars`` / ``param_names`` that do not match its signature.
    """

    def __init__(self, func: Kernel | Callable[..., Any], prefix: str = "",
                 independent_vars: list[str] | None = None,
                 param_names: list[str] | None = None):
        if not isinstance(prefix, str) or (prefix and not prefix.isidentifier()):
            raise ModelError(
                f"model prefix {prefix!r} is not usable; use an identifier such as 'p1_'"
            )
        self.kernel = func if isinstance(func, Kernel) else function_kernel(func)
        self._prefix = prefix
        check_signature_keywords(func, self.kernel, independent_vars, param_names)

    @property
    def prefix(self) -> str:
        """Prepended to every parameter name (fixed when the model is made)."""
        return self._prefix

    # ------------------------------------------------------------ structure
    @property
    def components(self) -> list[Model]:
        """The single-kernel models this model is made of (``[self]`` for a plain model)."""
        return [self]

    @property
    def terms(self) -> list[Model]:
        """The models this model sums (``[self]`` unless it is a sum)."""
        return [self]

    @property
    def role(self) -> str:
        """``"peak"``, ``"background"`` or ``"other"`` (orders composite guesses)."""
        return self.kernel.role

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
            return {"components": [self.term_reference()]}
        ref = {k.kind: k.name, **k.options}
        if self.prefix:
            ref["prefix"] = self.prefix
        return ref

    def term_reference(self) -> dict[str, Any]:
        """The entry of this model in a sum's ``{"components": [...]}`` reference."""
        k = self.kernel
        if k.kind == "builtin":
            return {"type": k.name, "prefix": self.prefix, **k.options}
        return {k.kind: k.name, "prefix": self.prefix, **k.options}

    # ---------------------------------------------------------- evaluation
    def _args(self, values: Mapping[str, Any]) -> list[np.ndarray]:
        missing = [n for n in self.param_names if n not in values]
        if missing:
            raise ModelError(
                f"{self.name}: no value given for parameter(s) {missing}; "
                f"the model needs {self.param_names}"
            )
        return [param_array(self, n, values[n]) for n in self.param_names]

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
        x = as_float(x)
        args = self._args(values)
        return full_shape(self.kernel.func(x, *args), x, args)

    def eval(self, params, x) -> np.ndarray:
        """Evaluate with the values of a :class:`~batchfit.Parameters` (or a plain mapping).

        ``model.eval(params, x=x)`` as in lmfit works too.
        """
        if hasattr(params, "valuesdict"):
            params = params.valuesdict()
        return self(x, **params)

    def eval_components(self, params=None, x=None, **values) -> dict[str, np.ndarray]:
        """Each single-kernel component evaluated alone, keyed by its prefix (as lmfit).

        A component without a prefix is keyed by its kernel's name; ``values``
        may replace ``params`` (name -> float or ``(n, 1)`` array).
        """
        if params is not None:
            values = {**(params.valuesdict() if hasattr(params, "valuesdict") else params),
                      **values}
        return {component_key(c): c(x, **values) for c in self.components}

    def derived_maps(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Derived maps (``<prefix>fwhm``, ``<prefix>height`` of peaks) from best-fit values.

        Works elementwise on floats, numpy, dask or xarray arrays.
        """
        out = {}
        for comp in self.components:
            if not comp.kernel.derived:
                continue
            raw = {n: values[comp.prefix + n] for n in comp.kernel.param_names}
            for name, func in comp.kernel.derived.items():
                out[comp.prefix + name] = func(**raw)
        return out

    @property
    def derived_names(self) -> list[str]:
        """Names of :meth:`derived_maps`, in order."""
        return [c.prefix + n for c in self.components for n in c.kernel.derived]

    def jacobian(self, x, **values) -> dict[str, np.ndarray] | None:
        """Analytic partial derivatives, or None when the model has none.

        Returns
        -------
        dict or None
            Prefixed name -> array of the output's shape ``(nx,)`` or ``(n, nx)``.
        """
        if self.kernel.deriv is None:
            return None
        x = as_float(x)
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
        x = as_float(x)
        args = self._args(values)
        if k.both is None:
            value, parts = k.func(x, *args), k.deriv(x, *args)
        else:
            value, parts = k.both(x, *args)
        return full_shape(value, x, args), dict(zip(self.param_names, parts, strict=True))

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
                raise ModelError(unknown_name_message(name, list(settings), "parameter"))
            settings[name].update(hint_settings(name, hint))
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
    # The combined models live in batchfit.models.algebra, which builds on this class.
    def __add__(self, other: Model) -> Model:
        if not isinstance(other, Model):
            return NotImplemented
        from batchfit.models.algebra import CompositeModel

        return CompositeModel(self.terms + other.terms)

    def __sub__(self, other: Model) -> Model:
        return self._operator(other, "-")

    def __mul__(self, other: Model) -> Model:
        return self._operator(other, "*")

    def _operator(self, other, op: str):
        if not isinstance(other, Model):
            return NotImplemented
        from batchfit.models.algebra import OperatorModel

        return OperatorModel(self, other, op)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Model):
            return NotImplemented
        return self.reference == other.reference

    def __hash__(self) -> int:
        return hash(json.dumps(self.reference, sort_keys=True))

    def __reduce__(self):
        from batchfit.models.registry import from_pickled_reference

        return (from_pickled_reference, (self.reference,))


def component_key(model: Model) -> str:
    """Key of a component in :meth:`Model.eval_components`: its prefix, else its kind's name."""
    if model.prefix:
        return model.prefix
    k = model.kernel
    return k.name if k.kind == "builtin" else k.name.rsplit(":", 1)[-1]


def check_signature_keywords(func, kernel: Kernel, independent_vars, param_names) -> None:
    """Refuse lmfit's ``independent_vars`` / ``param_names`` when they differ from the signature."""
    if independent_vars is not None and kernel.kind == "function":
        import inspect

        first = next(iter(inspect.signature(func).parameters))
        if list(independent_vars) != [first]:
            raise ModelError(
                f"Model: independent_vars={list(independent_vars)!r} is not supported; "
                f"the independent variable is the first argument, {first!r}"
            )
    if param_names is not None and list(param_names) != list(kernel.param_names):
        raise ModelError(
            f"Model: param_names={list(param_names)!r} do not match the function's "
            f"parameters {list(kernel.param_names)!r}"
        )


def function_model(func: str | Callable[..., Any], prefix: str = "") -> Model:
    """Model from a function ``f(x, p1, p2=2.0, ...)``: a reference or the function itself.

    Parameters
    ----------
    func : str or function
        ``"package.module:function"`` or the function object (as ``Model(func)``).
        The first argument is the independent variable whatever its name; the
        others are the parameters, and their numeric defaults become the
        starting values (1.0 when absent). A function that a worker cannot
        import (defined in ``__main__``, a notebook or a function) travels
        pickled by cloudpickle.
    prefix : str, optional
        Prepended to the parameter names.

    Raises
    ------
    ModelError
        See :func:`batchfit.models.user.resolve_function`; also for
        ``*args``/``**kwargs`` and non-numeric defaults.
    """
    return Model(function_kernel(func), prefix=prefix)


def expression_model(text: str, prefix: str = "") -> Model:
    """Model from an expression in ``x``, e.g. ``"amp*exp(-x/tau) + c"``.

    See :func:`batchfit.models.user.expression_kernel`.

    Raises
    ------
    ModelError
        If the expression is invalid or unsafe (the message says why).
    """
    return Model(expression_kernel(text), prefix=prefix)
