"""Job configs: YAML file -> frozen, validated objects (README "Config reference").

:func:`load_config` reads a YAML job file into a :class:`JobConfig`. Every
problem is a :class:`~batchfit.errors.ConfigError` whose message names the
file, the line when known, and the dotted key::

    cube.yaml:14: fit.max_nfev: expected an integer, got 'lots'
    cube.yaml:13: fit: unknown key 'max_nfv'; did you mean 'max_nfev'?

Where the code lives:

- :mod:`~batchfit.config.sections`: the pydantic models of each section (types, shapes).
- :mod:`~batchfit.config.job`: :class:`JobConfig`, the second pass of checks, the fingerprint.
- :mod:`~batchfit.config.checks`: checks that need the outside world (paths, model, names).
- :mod:`~batchfit.config.load`: YAML reading, and the file and line of each problem.
- :mod:`~batchfit.config.problems`: problem lists and their wording.
"""

from batchfit.config.checks import use_python_path
from batchfit.config.job import RESULT_SECTIONS, JobConfig
from batchfit.config.load import MAX_CONFIG_BYTES, load_config
from batchfit.config.problems import MAX_PROBLEMS
from batchfit.config.sections import (
    JOB_QUEUES,
    ClusterConfig,
    ComponentConfig,
    FitConfig,
    InputConfig,
    ModelConfig,
    OutputConfig,
    ParameterConfig,
)

__all__ = [
    "JOB_QUEUES",
    "MAX_CONFIG_BYTES",
    "MAX_PROBLEMS",
    "RESULT_SECTIONS",
    "ClusterConfig",
    "ComponentConfig",
    "FitConfig",
    "InputConfig",
    "JobConfig",
    "ModelConfig",
    "OutputConfig",
    "ParameterConfig",
    "load_config",
    "use_python_path",
]
