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

# The batch engine and the xarray/Dask layer import heavier libraries: load
# them on first use so that ``from batchfit import minimize`` stays light.
_LAZY = {
    "fit_batch": ("batchfit.batch", "fit_batch"),
    "BatchResult": ("batchfit.batch", "BatchResult"),
    "fit": ("batchfit.stack", "fit"),
    "open_results": ("batchfit.stack", "open_results"),
    "submit": ("batchfit.pipeline", "submit"),
    "models": ("batchfit.models", None),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'batchfit' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    mod = importlib.import_module(module)
    return mod if attr is None else getattr(mod, attr)

__all__ = [
    "BatchResult", "BatchfitError", "ConfigError", "ExpressionError", "FitError", "InputError",
    "Minimizer", "ModelError", "Parameter", "ParameterError", "Parameters", "Status",
    "StoreError", "__version__", "fit", "fit_batch", "fit_report", "minimize", "models",
    "open_results", "submit",
]
