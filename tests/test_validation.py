"""shiftkit._validation.check_real: the one declarative range check of real-number arguments."""

import math

import numpy as np
import pytest

from shiftkit._validation import check_real


@pytest.mark.parametrize(
    "kwargs, good, bad, words",
    [
        ({}, [-1e300, 0, 2.5], [], "a number"),
        ({"low": 0, "low_open": True}, [1e-12, 3], [0, -1], "a positive number"),
        ({"low": 0}, [0, 3], [-1e-12], "a non-negative number"),
        ({"low": 1}, [1, 7], [0.999], "a number >= 1"),
        ({"low": 0, "high": 1, "low_open": True, "high_open": True}, [0.5], [0, 1], "a number strictly between 0 and 1"),
        ({"low": 0, "high": 1}, [0, 1], [-0.1, 1.1], "a number between 0 and 1"),
        ({"low": 0, "high": 1, "high_open": True}, [0, 0.99], [1], r"a number in \[0, 1\)"),
        ({"high": 2, "high_open": True}, [1.99], [2], "a number < 2"),
    ],
)
def test_ranges_accept_inside_refuse_outside_and_say_the_range(kwargs, good, bad, words):
    for value in good:
        out = check_real(value, "v", **kwargs)
        assert out == float(value) and type(out) is float
    for value in bad:
        with pytest.raises(ValueError, match=rf"^v must be {words}.*; got {value}\.$"):
            check_real(value, "v", **kwargs)


def test_numpy_scalars_are_numbers_and_the_example_is_shown():
    assert check_real(np.float32(0.25), "p", low=0) == 0.25
    assert check_real(np.int64(3), "p", low=1) == 3.0
    with pytest.raises(ValueError, match=r"tol must be a positive number, e.g. 1e-8; got 0\."):
        check_real(0, "tol", low=0, low_open=True, example="1e-8")


@pytest.mark.parametrize("value", [True, np.bool_(False), "0.5", None, [0.5], 1j])
def test_non_numbers_are_type_errors_naming_the_argument(value):
    with pytest.raises(TypeError, match="strength must be a number, e.g. 1.0; got"):
        check_real(value, "strength", example=1.0)


def test_nan_always_and_inf_unless_allowed_are_refused():
    with pytest.raises(ValueError, match="must be a finite number; got nan"):
        check_real(math.nan, "s")
    with pytest.raises(ValueError, match="must be a positive finite number"):
        check_real(math.inf, "s", low=0, low_open=True)
    with pytest.raises(ValueError, match="finite"):
        check_real(math.nan, "s", low=1, allow_inf=True)
    assert check_real(math.inf, "s", low=1, allow_inf=True) == math.inf
    with pytest.raises(ValueError, match=">= 1"):
        check_real(-math.inf, "s", low=1, allow_inf=True)
