"""batchfit: fit a model to every pixel of an image stack.

The core follows lmfit's classic interface (:class:`Parameters`,
:func:`minimize`); :func:`fit_batch` fits a whole chunk of curves at once;
:func:`fit` does it over an xarray DataArray; :func:`submit` runs a job config.
"""

from batchfit.core import Minimizer, Parameter, Parameters, fit_report, minimize
from batchfit.errors import (
    BatchfitError,
    ConfigError,
    ExpressionError,
    FitError,
    InputError,
    ModelError,
    ParameterError,
    StoreError,
)
from batchfit.status import Status

__version__ = "0.1.0"

__all__ = [
    "BatchfitError", "ConfigError", "ExpressionError", "FitError", "InputError",
    "Minimizer", "ModelError", "Parameter", "ParameterError", "Parameters", "Status",
    "StoreError", "__version__", "fit_report", "minimize",
]
