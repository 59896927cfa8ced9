"""Words shared by the config, the engines and the job layer, each defined once.

A leaf module (it imports nothing of batchfit), so the config, the core, the
batch engine and the cluster code all take these names from here instead of
writing their own copies.

- :data:`Engine` / :data:`ENGINES`: how each curve is fitted;
  :data:`CURVE_ENGINES` are the core's per-curve (scipy) engines.
- :data:`ClusterKind` / :data:`CLUSTER_KINDS` and :data:`JobQueueKind` /
  :data:`JOB_QUEUE_KINDS`: where the chunks run; :data:`JOB_QUEUE_CLASSES`
  names the ``dask_jobqueue`` class of each job queue.
- :data:`Cost` / :data:`COSTS`: what a fit minimizes (``chisqr``: the sum of
  squares; ``poisson``: the Poisson deviance of counts).
- :func:`parse_function_ref`: the ``package.module:function`` grammar of
  ``model.function`` and :func:`batchfit.models.function_model`.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

Engine = Literal["lm", "leastsq", "lbfgsb", "anneal"]
"""``lm``: the vectorized Levenberg-Marquardt; the others fit one curve at a time."""
ENGINES: tuple[str, ...] = get_args(Engine)
CURVE_ENGINES: tuple[str, ...] = ENGINES[1:]
"""The core's engines (``minimize``): scipy's leastsq, L-BFGS-B and dual annealing."""

Cost = Literal["chisqr", "poisson"]
"""``chisqr``: (weighted) least squares; ``poisson``: the Poisson deviance of counts."""
COSTS: tuple[str, ...] = get_args(Cost)

JobQueueKind = Literal["slurm", "pbs", "sge", "lsf"]
JOB_QUEUE_KINDS: tuple[str, ...] = get_args(JobQueueKind)
JOB_QUEUE_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
                     "lsf": "LSFCluster"}
"""The ``dask_jobqueue`` cluster class of each job queue."""
ClusterKind = Literal["local", "address", JobQueueKind]
CLUSTER_KINDS: tuple[str, ...] = get_args(ClusterKind)

_NAME = r"[A-Za-z_]\w*"
FUNCTION_REF = re.compile(rf"({_NAME}(?:\.{_NAME})*):({_NAME}(?:\.{_NAME})*)")
"""``package.module:function``: dotted identifiers, one colon (the attribute may be dotted)."""


def parse_function_ref(ref: object) -> tuple[str, str] | None:
    """Split ``"package.module:function"`` into ``(module, attribute)``.

    Returns
    -------
    tuple of str or None
        ``(module, attribute)``, or None when ``ref`` is not a string of that
        form (the callers word the error for their context).
    """
    match = FUNCTION_REF.fullmatch(ref) if isinstance(ref, str) else None
    return (match.group(1), match.group(2)) if match else None
