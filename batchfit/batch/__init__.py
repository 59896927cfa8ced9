"""The batch engine: fit a whole chunk of curves in one vectorized solve."""

from batchfit.batch.fit import ENGINES, fit_batch
from batchfit.batch.result import BatchResult

__all__ = ["ENGINES", "BatchResult", "fit_batch"]
