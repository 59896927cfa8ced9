"""The classic lmfit interface: Parameters, expressions, bounds, minimize."""

from batchfit.core.engines import ENGINES
from batchfit.core.minimizer import Minimizer, minimize
from batchfit.core.parameter import Parameter, Parameters
from batchfit.core.report import fit_report

__all__ = ["ENGINES", "Minimizer", "Parameter", "Parameters", "fit_report", "minimize"]
