"""fit_batch's arguments are checked at the entry point (issue 10, class 7)."""

from __future__ import annotations

import numpy as np
import pytest

from batchfit import fit_batch
from batchfit.errors import InputError
from batchfit.models import gaussian
from batchfit.status import Status


@pytest.mark.parametrize("max_nfev", [0, -5, 2.5, True, "100"])
def test_max_nfev_must_be_a_positive_integer(max_nfev):
    model = gaussian()
    x = np.linspace(-3, 3, 20)
    y = model(x, amplitude=2.0, center=0.1, sigma=0.8)[None, :].repeat(3, axis=0)
    with pytest.raises(ValueError, match="max_nfev must be a positive integer") as info:
        fit_batch(model, model.make_params(), x, y, max_nfev=max_nfev)
    assert isinstance(info.value, InputError)


def test_a_positive_max_nfev_is_honoured():
    model = gaussian()
    x = np.linspace(-3, 3, 20)
    y = model(x, amplitude=2.0, center=0.1, sigma=0.8)[None, :].repeat(3, axis=0)
    res = fit_batch(model, model.make_params(center=1.5, sigma=2.0), x, y, max_nfev=np.int64(3))
    np.testing.assert_array_equal(res.nfev, 3)  # converging takes 18 from this start
    np.testing.assert_array_equal(res.status, Status.MAX_NFEV)


@pytest.mark.parametrize("scale_covar", ["no", 0, None])
def test_scale_covar_must_be_a_bool(scale_covar):
    """A string such as 'no' is truthy: taking it would silently scale the stderr."""
    model = gaussian()
    x = np.linspace(-3, 3, 20)
    y = model(x, amplitude=2.0, center=0.1, sigma=0.8)[None, :].repeat(3, axis=0)
    with pytest.raises(InputError, match=rf"scale_covar={scale_covar!r}: use True .* or False"):
        fit_batch(model, model.make_params(), x, y, scale_covar=scale_covar)
    fit_batch(model, model.make_params(), x, y, scale_covar=np.bool_(False))
