"""The batch engine: fit a whole chunk of curves in one vectorized solve."""

from batchfit.batch.fit import fit_batch
from batchfit.batch.result import BatchResult
from batchfit.vocabulary import ENGINES

__all__ = ["ENGINES", "BatchResult", "fit_batch"]
