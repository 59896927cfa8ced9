"""Reader for the NIST StRD nonlinear regression reference data sets.

The files in ``tests/data/nist`` are the public-domain NIST/ITL StRD ``.dat``
files. Each holds two starting points, certified parameter values and
standard deviations, the certified residual sum of squares and the data.
The model formulas are transcribed from each file's ``Model:`` header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "nist"

TWO_PI = 2.0 * np.pi


def _misra1a(b, x):
    return b[0] * (1.0 - np.exp(-b[1] * x))


def _chwirut(b, x):
    return np.exp(-b[0] * x) / (b[1] + b[2] * x)


def _lanczos(b, x):
    return b[0] * np.exp(-b[1] * x) + b[2] * np.exp(-b[3] * x) + b[4] * np.exp(-b[5] * x)


def _gauss(b, x):
    return (b[0] * np.exp(-b[1] * x)
            + b[2] * np.exp(-((x - b[3]) ** 2) / b[4] ** 2)
            + b[5] * np.exp(-((x - b[6]) ** 2) / b[7] ** 2))


def _danwood(b, x):
    return b[0] * x ** b[1]


def _misra1b(b, x):
    return b[0] * (1.0 - (1.0 + b[1] * x / 2.0) ** (-2.0))


def _kirby2(b, x):
    return (b[0] + b[1] * x + b[2] * x**2) / (1.0 + b[3] * x + b[4] * x**2)


def _cubic_ratio(b, x):
    """Hahn1 and Thurber: cubic over cubic."""
    num = b[0] + b[1] * x + b[2] * x**2 + b[3] * x**3
    return num / (1.0 + b[4] * x + b[5] * x**2 + b[6] * x**3)


def _nelson(b, x):
    """log(y) model; ``x`` has two rows (x1 = time, x2 = temperature)."""
    return b[0] - b[1] * x[0] * np.exp(-b[2] * x[1])


def _mgh17(b, x):
    return b[0] + b[1] * np.exp(-x * b[3]) + b[2] * np.exp(-x * b[4])


def _misra1c(b, x):
    return b[0] * (1.0 - (1.0 + 2.0 * b[1] * x) ** (-0.5))


def _misra1d(b, x):
    return b[0] * b[1] * x / (1.0 + b[1] * x)


def _roszman1(b, x):
    return b[0] - b[1] * x - np.arctan(b[2] / (x - b[3])) / np.pi


def _enso(b, x):
    return (b[0] + b[1] * np.cos(TWO_PI * x / 12) + b[2] * np.sin(TWO_PI * x / 12)
            + b[4] * np.cos(TWO_PI * x / b[3]) + b[5] * np.sin(TWO_PI * x / b[3])
            + b[7] * np.cos(TWO_PI * x / b[6]) + b[8] * np.sin(TWO_PI * x / b[6]))


def _mgh09(b, x):
    return b[0] * (x**2 + x * b[1]) / (x**2 + x * b[2] + b[3])


def _rat42(b, x):
    return b[0] / (1.0 + np.exp(b[1] - b[2] * x))


def _mgh10(b, x):
    return b[0] * np.exp(b[1] / (x + b[2]))


def _eckerle4(b, x):
    return (b[0] / b[1]) * np.exp(-0.5 * ((x - b[2]) / b[1]) ** 2)


def _rat43(b, x):
    return b[0] / (1.0 + np.exp(b[1] - b[2] * x)) ** (1.0 / b[3])


def _bennett5(b, x):
    return b[0] * (b[1] + x) ** (-1.0 / b[2])


#: model y = f(b, x) for every problem, as written in each file's header
MODELS = {
    "Misra1a": _misra1a, "Chwirut2": _chwirut, "Chwirut1": _chwirut,
    "Lanczos3": _lanczos, "Gauss1": _gauss, "Gauss2": _gauss, "DanWood": _danwood,
    "Misra1b": _misra1b, "Kirby2": _kirby2, "Hahn1": _cubic_ratio, "Nelson": _nelson,
    "MGH17": _mgh17, "Lanczos1": _lanczos, "Lanczos2": _lanczos, "Gauss3": _gauss,
    "Misra1c": _misra1c, "Misra1d": _misra1d, "Roszman1": _roszman1, "ENSO": _enso,
    "MGH09": _mgh09, "Thurber": _cubic_ratio, "BoxBOD": _misra1a, "Rat42": _rat42,
    "MGH10": _mgh10, "Eckerle4": _eckerle4, "Rat43": _rat43, "Bennett5": _bennett5,
}

#: problems, in NIST's order (lower, average, higher difficulty)
NAMES = tuple(MODELS)

#: problems whose response is fitted on a log scale (model is for log[y])
LOG_RESPONSE = frozenset({"Nelson"})

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PARAM_LINE = re.compile(rf"^\s*b(\d+)\s*=\s*({_NUM})\s+({_NUM})\s+({_NUM})\s+({_NUM})\s*$")
_LINES_SPEC = re.compile(r"Data\s+\(lines\s+(\d+)\s+to\s+(\d+)\)")


@dataclass(frozen=True)
class NistProblem:
    """One NIST StRD problem.

    ``x`` has shape (n,) or, for several predictors, (n_predictors, n).
    ``y`` is the response as the model predicts it (log(y) for Nelson).
    """

    name: str
    model: object
    start1: np.ndarray
    start2: np.ndarray
    certified: np.ndarray
    certified_stderr: np.ndarray
    certified_rss: float
    nobs: int
    x: np.ndarray
    y: np.ndarray

    @property
    def nparams(self) -> int:
        """Number of parameters b1..bn."""
        return len(self.certified)

    def residual_array(self, b) -> np.ndarray:
        """Data minus model for a parameter vector ``b``."""
        # overflow on the way to the minimum (MGH17, Bennett5) is the solver's business
        with np.errstate(all="ignore"):
            return self.y - self.model(np.asarray(b, dtype=float), self.x)


def _header_value(lines, label) -> float:
    for line in lines:
        if line.strip().startswith(label):
            return float(line.split(":")[1].split()[0])
    raise ValueError(f"no {label!r} line")


def read(name: str) -> NistProblem:
    """Parse ``tests/data/nist/<name>.dat`` into a `NistProblem`."""
    lines = (DATA_DIR / f"{name}.dat").read_text().splitlines()
    first, last = map(int, _LINES_SPEC.search("\n".join(lines[:10])).groups())
    rows = [_PARAM_LINE.match(line) for line in lines[:first + 20]]
    rows = [[float(v) for v in m.groups()[1:]] for m in rows if m]
    table = np.array(rows)
    data = np.array([[float(v) for v in line.split()] for line in lines[first - 1:last]])
    y = data[:, 0]
    x = data[:, 1] if data.shape[1] == 2 else data[:, 1:].T.copy()
    if name in LOG_RESPONSE:
        y = np.log(y)
    return NistProblem(
        name=name, model=MODELS[name], start1=table[:, 0], start2=table[:, 1],
        certified=table[:, 2], certified_stderr=table[:, 3],
        certified_rss=_header_value(lines, "Residual Sum of Squares"),
        nobs=int(_header_value(lines, "Number of Observations")), x=x, y=y)


def log_relative_error(value, certified) -> np.ndarray:
    """Number of matching significant digits, -log10(|value - c| / |c|).

    Capped at 15 (exact agreement); 0 when the relative error exceeds 1 or the
    value is not finite.
    """
    value = np.asarray(value, dtype=float)
    certified = np.asarray(certified, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(value - certified) / np.abs(certified)
        lre = -np.log10(rel)
    lre = np.where(rel == 0, 15.0, lre)
    lre = np.where(np.isfinite(value), lre, 0.0)
    return np.clip(np.nan_to_num(lre, nan=0.0), 0.0, 15.0)
