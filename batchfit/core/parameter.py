"""Parameter and Parameters: named fit variables that can be fixed, bounded or tied."""

from __future__ import annotations

import json
import math
import numbers

from batchfit.core.expr import check_name
from batchfit.errors import ParameterError


def _number(name, what, value, allow_none=True):
    """Return ``value`` as a float (or None), or raise naming the parameter."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        try:
            import numpy as np

            if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
                return float(value)
        except ImportError:  # pragma: no cover
            pass
        raise ParameterError(
            f"parameter {name!r}: {what} must be a real number, got {value!r} "
            f"({type(value).__name__})"
        )
    return float(value)


class Parameter:
    """A named fit variable.

    Parameters
    ----------
    value : float, optional
        Starting value (best-fit value after a fit).
    vary : bool
        Whether the fit varies it.
    min, max : float, optional
        Bounds; None means unbounded.
    name : str, optional
        Set by :class:`Parameters` when added.
    expr : str, optional
        Constraint expression of other parameters; the value is computed from it.

    Raises
    ------
    ParameterError
        Non-numeric value or bound, or ``min > max``.
    """

    def __init__(self, value=None, vary=True, min=None, max=None, name=None, expr=None):
        label = name if name is not None else "<unnamed>"
        self.name = name
        self.value = _number(label, "value", value)
        self.vary = bool(vary)
        self.min = _number(label, "min", min)
        self.max = _number(label, "max", max)
        self.expr = expr
        if expr is not None and not isinstance(expr, str):
            raise ParameterError(f"parameter {label!r}: expr must be a string, got {expr!r}")
        self.check_bounds()
        self.stderr = None
        self.correl = None
        self.init_value = self.value

    def check_bounds(self) -> None:
        """Raise ParameterError if ``min > max``."""
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ParameterError(
                f"parameter {self.name!r}: min={self.min!r} is not below max={self.max!r}; "
                "use min < max, or vary=False to hold it fixed"
            )

    @property
    def varies(self) -> bool:
        """Whether a fit varies it: ``vary``, no ``expr``, and not pinned by ``min == max``."""
        return self.vary and self.expr is None and not (
            self.min is not None and self.min == self.max)

    @property
    def lo(self) -> float:
        """Lower bound as a float (``-inf`` when unbounded)."""
        return -math.inf if self.min is None else self.min

    @property
    def hi(self) -> float:
        """Upper bound as a float (``inf`` when unbounded)."""
        return math.inf if self.max is None else self.max

    def to_dict(self) -> dict:
        """JSON-able dict of the definition and results."""
        return {
            "name": self.name, "value": _enc(self.value), "vary": self.vary,
            "min": _enc(self.min), "max": _enc(self.max), "expr": self.expr,
            "stderr": _enc(self.stderr), "init_value": _enc(self.init_value),
        }

    def __repr__(self):
        parts = [f"value={self.value!r}"]
        if self.expr is not None:
            parts.append(f"expr={self.expr!r}")
        elif not self.vary:
            parts.append("fixed")
        if self.stderr is not None:
            parts.append(f"+/- {self.stderr:.3g}")
        if self.min is not None or self.max is not None:
            parts.append(f"bounds=[{self.lo}:{self.hi}]")
        return f"<Parameter {self.name!r}, {', '.join(parts)}>"


def _enc(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _dec(v):
    return float(v) if isinstance(v, str) else v


class Parameters(dict):
    """An ordered mapping of names to :class:`Parameter` objects.

    Keys must be Python identifiers that are not keywords (they are used in
    expressions); values must be :class:`Parameter` instances.
    """

    def __setitem__(self, name, par):
        check_name(name)
        if not isinstance(par, Parameter):
            raise ParameterError(
                f"parameter {name!r}: expected a Parameter, got {type(par).__name__}; "
                "use params.add(name, value=...)"
            )
        par.name = name
        par.check_bounds()
        super().__setitem__(name, par)

    def add(self, name, value=None, vary=True, min=None, max=None, expr=None):
        """Add a parameter: ``params.add('amp', value=10, min=0)``."""
        check_name(name)
        self[name] = Parameter(value=value, vary=vary, min=min, max=max, name=name, expr=expr)

    def add_many(self, *parlist):
        """Add parameters from tuples ``(name, value, vary, min, max, expr)``."""
        for entry in parlist:
            if len(entry) != 6:
                raise ParameterError(
                    f"add_many: entry {entry!r} must be (name, value, vary, min, max, expr)"
                )
            self.add(*entry)

    def update(self, *args, **kws):
        """Set parameters from a mapping or ``name=Parameter`` keywords (as ``dict.update``)."""
        for name, par in dict(*args, **kws).items():
            self[name] = par

    def valuesdict(self) -> dict:
        """``{name: value}`` for every parameter."""
        return {name: par.value for name, par in self.items()}

    def copy(self):
        """A deep copy: parameters, their ties and results."""
        import copy

        return copy.deepcopy(self)

    def dumps(self, **kws) -> str:
        """JSON text of every parameter's definition (and results), in order."""
        return json.dumps([p.to_dict() for p in self.values()], **kws)

    def loads(self, text: str) -> Parameters:
        """Replace the contents with the parameters in JSON ``text``; return self."""
        try:
            entries = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"Parameters.loads: not valid JSON ({exc})") from None
        self.clear()
        for d in entries:
            self.add(d["name"], _dec(d.get("value")), d.get("vary", True),
                     _dec(d.get("min")), _dec(d.get("max")), d.get("expr"))
            par = self[d["name"]]
            par.stderr = _dec(d.get("stderr"))
            if "init_value" in d:
                par.init_value = _dec(d["init_value"])
        return self

    def __reduce__(self):
        return (Parameters, (), None, None, iter(self.items()))

    def __repr__(self):
        return "Parameters({" + ", ".join(f"{k!r}: {v!r}" for k, v in self.items()) + "})"

    def pretty_print(self) -> None:
        """Print one line per parameter."""
        for par in self.values():
            print(par)


def check_parameter(name: str, par: Parameter) -> None:
    """Make ``par`` ready to fit under ``name``, or raise naming it.

    Sets its name, checks its bounds, turns value, min and max into floats
    and holds a parameter whose bounds are equal at that value. Tied
    parameters (``expr``) need no value.

    Raises
    ------
    ParameterError
        No value, a NaN value, a non-number, or min above max.
    """
    par.name = name
    par.check_bounds()
    if par.expr is not None:
        return
    if par.value is None:
        raise ParameterError(f"parameter {name!r} has no value; give value=... or expr=...")
    par.value = _number(name, "value", par.value, allow_none=False)
    if math.isnan(par.value):
        raise ParameterError(f"parameter {name!r}: value is NaN; give a finite starting value")
    par.min = _number(name, "min", par.min)
    par.max = _number(name, "max", par.max)
    if par.min is not None and par.min == par.max:
        par.value = par.min  # pinned by its bounds: held fixed there
