"""xarray in, chunks on Dask, zarr out: per-pixel fits of whole image stacks."""

from batchfit.stack.accessor import BatchfitAccessor  # registers ds.batchfit
from batchfit.stack.apply import fit
from batchfit.stack.cluster import job_script, make_client
from batchfit.stack.layout import ResultLayout
from batchfit.stack.store import open_results

__all__ = ["BatchfitAccessor", "ResultLayout", "fit", "job_script", "make_client", "open_results"]
