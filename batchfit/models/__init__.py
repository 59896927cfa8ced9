"""Vectorized models: built-in lineshapes, composites, user functions and expressions.

>>> from batchfit.models import gaussian, linear
>>> model = gaussian(prefix="p1_") + linear(prefix="bg_")
>>> model.param_names
['p1_amplitude', 'p1_center', 'p1_sigma', 'bg_slope', 'bg_intercept']
"""

from batchfit.models.algebra import CompositeModel, OperatorModel
from batchfit.models.model import Model, expression_model, function_model
from batchfit.models.registry import (
    FACTORIES,
    constant,
    damped_sine,
    exponential,
    exponential_gaussian,
    from_reference,
    gaussian,
    get,
    linear,
    lorentzian,
    moffat,
    polynomial,
    pseudo_voigt,
    quadratic,
    rectangle,
    skewed_gaussian,
    step,
    voigt,
)

__all__ = [
    "FACTORIES",
    "CompositeModel",
    "Model",
    "OperatorModel",
    "constant",
    "damped_sine",
    "exponential",
    "exponential_gaussian",
    "expression_model",
    "from_reference",
    "function_model",
    "gaussian",
    "get",
    "linear",
    "lorentzian",
    "moffat",
    "polynomial",
    "pseudo_voigt",
    "quadratic",
    "rectangle",
    "skewed_gaussian",
    "step",
    "voigt",
]
