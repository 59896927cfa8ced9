"""Built-in model factories, lookup by name, and rebuilding from references."""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Mapping
from typing import Any

from batchfit.errors import ModelError
from batchfit.models import guess as g
from batchfit.models import lineshapes as ls
from batchfit.models import shape_guess as sg
from batchfit.models import shapes as sh
from batchfit.models.algebra import OPERATORS, CompositeModel, OperatorModel
from batchfit.models.derived import DERIVED
from batchfit.models.kernel import Kernel
from batchfit.models.model import Model, expression_model
from batchfit.models.user import function_kernel

MAX_DEGREE = 10


def _v(value, **extra):
    return {"value": value, **extra}


PEAK_DEFAULTS = {"amplitude": _v(1.0), "center": _v(0.0), "sigma": _v(1.0)}

_KERNELS: dict[str, Kernel] = {
    "gaussian": Kernel("builtin", "gaussian", ("amplitude", "center", "sigma"),
                       ls.gaussian, ls.d_gaussian, g.guess_gaussian, PEAK_DEFAULTS, role="peak",
                       derived=DERIVED["gaussian"]),
    "lorentzian": Kernel("builtin", "lorentzian", ("amplitude", "center", "sigma"),
                         ls.lorentzian, ls.d_lorentzian, g.guess_lorentzian, PEAK_DEFAULTS,
                         role="peak", derived=DERIVED["lorentzian"]),
    "voigt": Kernel("builtin", "voigt", ("amplitude", "center", "sigma", "gamma"),
                    ls.voigt, ls.d_voigt, g.guess_voigt,
                    {**PEAK_DEFAULTS, "gamma": _v(1.0)}, role="peak", derived=DERIVED["voigt"]),
    "pseudo_voigt": Kernel("builtin", "pseudo_voigt", ("amplitude", "center", "sigma", "fraction"),
                           ls.pseudo_voigt, ls.d_pseudo_voigt, g.guess_pseudo_voigt,
                           {**PEAK_DEFAULTS, "fraction": _v(0.5, min=0.0, max=1.0)}, role="peak",
                           derived=DERIVED["pseudo_voigt"]),
    "step": Kernel("builtin", "step", ("amplitude", "center", "sigma"),
                   ls.step, ls.d_step, g.guess_step, PEAK_DEFAULTS),
    "exponential": Kernel("builtin", "exponential", ("amplitude", "decay"),
                          ls.exponential, ls.d_exponential, g.guess_exponential,
                          {"amplitude": _v(1.0), "decay": _v(1.0)}),
    "damped_sine": Kernel("builtin", "damped_sine", ("amp", "omega", "shift", "decay"),
                          ls.damped_sine, ls.d_damped_sine, g.guess_damped_sine,
                          {"amp": _v(1.0), "omega": _v(1.0), "shift": _v(0.0), "decay": _v(0.0)}),
    "linear": Kernel("builtin", "linear", ("slope", "intercept"),
                     ls.linear, ls.d_linear, g.guess_linear,
                     {"slope": _v(0.0), "intercept": _v(0.0)}, role="background"),
    "quadratic": Kernel("builtin", "quadratic", ("a", "b", "c"),
                        ls.quadratic, ls.d_quadratic, g.guess_quadratic,
                        {"a": _v(0.0), "b": _v(0.0), "c": _v(0.0)}, role="background"),
    "constant": Kernel("builtin", "constant", ("c",), ls.constant, ls.d_constant,
                       g.guess_constant, {"c": _v(0.0)}, role="background"),
    "skewed_gaussian": Kernel("builtin", "skewed_gaussian",
                              ("amplitude", "center", "sigma", "gamma"),
                              sh.skewed_gaussian, sh.d_skewed_gaussian, sg.guess_skewed_gaussian,
                              {**PEAK_DEFAULTS, "sigma": _v(1.0, min=0.0), "gamma": _v(0.0)},
                              role="peak"),
    "exponential_gaussian": Kernel("builtin", "exponential_gaussian",
                                   ("amplitude", "center", "sigma", "gamma"),
                                   sh.exponential_gaussian, sh.d_exponential_gaussian,
                                   sg.guess_exponential_gaussian,
                                   {**PEAK_DEFAULTS, "sigma": _v(1.0, min=0.0),
                                    "gamma": _v(1.0, min=0.0, max=20.0)}, role="peak"),
    "moffat": Kernel("builtin", "moffat", ("amplitude", "center", "sigma", "beta"),
                     sh.moffat, sh.d_moffat, sg.guess_moffat,
                     {**PEAK_DEFAULTS, "sigma": _v(1.0, min=0.0), "beta": _v(1.0)}, role="peak",
                     derived=DERIVED["moffat"]),
}  # fmt: skip


def _builtin(name: str, prefix: str) -> Model:
    return Model(_KERNELS[name], prefix=prefix)


def gaussian(prefix: str = "") -> Model:
    """Gaussian peak: ``amplitude`` (area), ``center``, ``sigma``."""
    return _builtin("gaussian", prefix)


def lorentzian(prefix: str = "") -> Model:
    """Lorentzian peak: ``amplitude`` (area), ``center``, ``sigma`` (HWHM)."""
    return _builtin("lorentzian", prefix)


def voigt(prefix: str = "") -> Model:
    """Voigt peak: ``amplitude`` (area), ``center``, ``sigma`` (Gaussian), ``gamma``."""
    return _builtin("voigt", prefix)


def pseudo_voigt(prefix: str = "") -> Model:
    """Pseudo-Voigt peak: ``amplitude`` (area), ``center``, ``sigma`` (FWHM/2), ``fraction``."""
    return _builtin("pseudo_voigt", prefix)


def step(prefix: str = "", form: str | None = None) -> Model:
    """Step from 0 to ``amplitude`` at ``center`` with width ``sigma``.

    Without ``form``: ``amplitude * (1 + erf((x-center)/(sigma*sqrt(2))))/2``
    (the integral of a Gaussian of width ``sigma``; batchfit's original step).
    ``form='linear' | 'arctan' | 'erf' | 'logistic'`` (``'atan'`` too) gives
    lmfit's step of that form, ``arg = (x-center)/sigma`` (see
    :mod:`batchfit.models.shapes`); note lmfit's ``erf`` has no ``sqrt(2)``.

    Raises
    ------
    ModelError
        For an unknown form.
    """
    if form is None:
        return _builtin("step", prefix)
    form = _form(form, "step")
    call = sh.StepForm(form)
    kernel = Kernel("builtin", "step", ("amplitude", "center", "sigma"), call, call.partials,
                    sg.StepGuess(form), PEAK_DEFAULTS, options={"form": form})
    return Model(kernel, prefix=prefix)


def rectangle(prefix: str = "", form: str = "linear") -> Model:
    """Rectangle: up to ``amplitude`` at ``center1`` (width ``sigma1``), down at ``center2``.

    Parameters ``amplitude, center1, sigma1, center2, sigma2``; ``form`` as
    lmfit's (``'linear'`` default, ``'arctan'``, ``'erf'``, ``'logistic'``).

    Raises
    ------
    ModelError
        For an unknown form.
    """
    form = _form(form, "rectangle")
    call = sh.RectangleForm(form)
    defaults = {"amplitude": _v(1.0), "center1": _v(0.0), "sigma1": _v(1.0),
                "center2": _v(1.0), "sigma2": _v(1.0)}
    kernel = Kernel("builtin", "rectangle", ("amplitude", "center1", "sigma1", "center2", "sigma2"),
                    call, call.partials, sg.RectangleGuess(form), defaults,
                    options={"form": form})
    return Model(kernel, prefix=prefix)


def _form(form: str, model: str) -> str:
    try:
        return sh.form_name(form, model)
    except ValueError as exc:
        raise ModelError(str(exc)) from None


def skewed_gaussian(prefix: str = "") -> Model:
    """Skewed Gaussian: ``amplitude`` (area), ``center``, ``sigma``, ``gamma`` (skew)."""
    return _builtin("skewed_gaussian", prefix)


def exponential_gaussian(prefix: str = "") -> Model:
    """Exponentially modified Gaussian: ``amplitude`` (area), ``center``, ``sigma``, ``gamma``."""
    return _builtin("exponential_gaussian", prefix)


def moffat(prefix: str = "") -> Model:
    """Moffat profile: ``amplitude`` (height), ``center``, ``sigma``, ``beta``."""
    return _builtin("moffat", prefix)


def exponential(prefix: str = "") -> Model:
    """Exponential decay ``amplitude*exp(-x/decay)``."""
    return _builtin("exponential", prefix)


def damped_sine(prefix: str = "") -> Model:
    """Damped sine ``amp*sin(x*omega + shift)*exp(-x*x*decay)``."""
    return _builtin("damped_sine", prefix)


def linear(prefix: str = "") -> Model:
    """Straight line ``slope*x + intercept``."""
    return _builtin("linear", prefix)


def quadratic(prefix: str = "") -> Model:
    """Parabola ``a*x**2 + b*x + c``."""
    return _builtin("quadratic", prefix)


def constant(prefix: str = "") -> Model:
    """Constant ``c``."""
    return _builtin("constant", prefix)


def polynomial(degree: int = 2, prefix: str = "") -> Model:
    """Polynomial ``c0 + c1*x + ... + cN*x**N`` of the given ``degree`` (0 to 10).

    Raises
    ------
    ModelError
        If ``degree`` is not an integer from 0 to 10.
    """
    try:
        degree = operator.index(degree)
    except TypeError:
        degree = -1
    if not 0 <= degree <= MAX_DEGREE:
        raise ModelError(
            f"polynomial: degree={degree!r} is not usable; give an integer from 0 to {MAX_DEGREE}"
        )
    names = tuple(f"c{k}" for k in range(degree + 1))
    kernel = Kernel("builtin", "polynomial", names, ls.polynomial, ls.d_polynomial,
                    _PolyGuess(degree), {n: _v(0.0) for n in names},
                    options={"degree": degree}, role="background")  # fmt: skip
    return Model(kernel, prefix=prefix)


class _PolyGuess:
    """Picklable ``guess(y, x)`` for a polynomial of fixed degree."""

    def __init__(self, degree: int):
        self.degree = degree

    def __call__(self, y, x):
        return g.guess_polynomial(y, x, self.degree)


FACTORIES: dict[str, Callable[..., Model]] = {
    "gaussian": gaussian, "lorentzian": lorentzian, "voigt": voigt,
    "pseudo_voigt": pseudo_voigt, "exponential": exponential, "damped_sine": damped_sine,
    "linear": linear, "quadratic": quadratic, "polynomial": polynomial,
    "constant": constant, "step": step, "rectangle": rectangle,
    "skewed_gaussian": skewed_gaussian, "exponential_gaussian": exponential_gaussian,
    "moffat": moffat,
}  # fmt: skip
OPTIONS = {"polynomial": {"degree"}, "step": {"form"}, "rectangle": {"form"}}
"""Factory keywords besides ``prefix``, per built-in."""


def get(name: str, prefix: str = "", **kw: Any) -> Model:
    """Built-in model by name, e.g. ``get('gaussian', prefix='p1_')``.

    Raises
    ------
    ModelError
        For an unknown name (suggesting a close one) or a keyword the factory
        does not take.
    """
    if name not in FACTORIES:
        close = difflib.get_close_matches(str(name), FACTORIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ModelError(
            f"unknown model type {name!r}{hint} (valid: {', '.join(sorted(FACTORIES))})"
        )
    extra = set(kw) - OPTIONS.get(name, set())
    if extra:
        takes = "; ".join(f"{k} takes {', '.join(sorted(v))}" for k, v in OPTIONS.items())
        raise ModelError(
            f"model type {name!r} takes no option(s) {sorted(extra)} ({takes})"
        )
    return FACTORIES[name](prefix=prefix, **kw)


def _component(entry: Any, allow_pickle: bool) -> Model:
    if not isinstance(entry, Mapping):
        raise ModelError(f"model component {entry!r} is not a mapping like {{'type': 'gaussian'}}")
    entry = dict(entry)
    if "op" in entry:
        return _operator(entry, allow_pickle)
    prefix = entry.pop("prefix", "") or ""
    if "expression" in entry and len(entry) == 1:
        return expression_model(entry["expression"], prefix=prefix)
    if "function" in entry and set(entry) <= {"function", "pickle"}:
        return Model(_function_kernel(entry, allow_pickle), prefix=prefix)
    if "type" not in entry:
        raise ModelError(
            f"model component {entry!r} needs 'type' (a built-in name), "
            "'expression' or 'function'"
        )
    return get(entry.pop("type"), prefix=prefix, **entry)


def _function_kernel(entry: dict, allow_pickle: bool) -> Kernel:
    payload = entry.get("pickle")
    if payload is not None and not allow_pickle:
        raise ModelError(
            f"model {entry['function']!r} is a function pickled by value (it was defined "
            "in __main__ or a notebook); unpickling runs code, so it is loaded only when "
            "asked: from_reference(ref, allow_pickle=True), or give the model explicitly "
            "(e.g. ds.batchfit.best_fit(model=Model(func)))"
        )
    return function_kernel(entry["function"], payload=payload)


def _operator(entry: dict, allow_pickle: bool) -> Model:
    if set(entry) != {"op", "left", "right"} or entry["op"] not in OPERATORS:
        raise ModelError(
            f"model reference {entry!r}: an operator entry is {{'op': one of {OPERATORS}, "
            "'left': reference, 'right': reference}"
        )
    left = from_reference(entry["left"], allow_pickle)
    return OperatorModel(left, from_reference(entry["right"], allow_pickle), entry["op"])


def from_reference(ref: Mapping[str, Any], allow_pickle: bool = False) -> Model:
    """Rebuild a model from its :attr:`~batchfit.models.Model.reference`.

    Accepts ``{"components": [{"type": "gaussian", "prefix": "p1_"}, ...]}``,
    ``{"expression": "a*exp(-x/tau) + c"}``, ``{"function": "pkg.mod:func"}``
    (optionally with ``"prefix"``) or ``{"op": "*", "left": ref, "right": ref}``.
    Components may also be expression, function or operator entries.

    Parameters
    ----------
    ref : Mapping
        The reference.
    allow_pickle : bool
        Load functions pickled by value (``"pickle"`` entries); this runs code
        from the reference, so only for references you made.

    Raises
    ------
    ModelError
        If the reference is malformed, names an unknown model, or holds a
        pickled function and ``allow_pickle`` is false.
    """
    if not isinstance(ref, Mapping):
        raise ModelError(f"model reference {ref!r} is not a mapping")
    keys = set(ref) - {"prefix"}
    if keys == {"components"} and "prefix" not in ref:
        comps = ref["components"]
        if isinstance(comps, (str, bytes)) or not comps:
            raise ModelError("model reference: 'components' must be a non-empty list")
        models = [_component(c, allow_pickle) for c in comps]
        return models[0] if len(models) == 1 else CompositeModel(models)
    if keys in ({"expression"}, {"function"}, {"function", "pickle"}, {"op", "left", "right"}):
        return _component(ref, allow_pickle)
    raise ModelError(
        f"model reference {dict(ref)!r} needs exactly one of 'components', "
        "'expression', 'function' or 'op'"
    )


def from_pickled_reference(ref: Mapping[str, Any]) -> Model:
    """:func:`from_reference` with ``allow_pickle=True``: how a pickled Model is rebuilt."""
    return from_reference(ref, allow_pickle=True)
