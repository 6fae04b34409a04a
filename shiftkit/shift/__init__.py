"""Measuring distribution shift between a source and a target domain."""

from shiftkit.shift.features import FeatureSpace, feature_space
from shiftkit.shift.kernels import gaussian_kernel, median_heuristic
from shiftkit.shift.mmd import DEFAULT_MEMORY_BUDGET, MMDTestResult, mmd2, mmd_test

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "FeatureSpace",
    "MMDTestResult",
    "feature_space",
    "gaussian_kernel",
    "median_heuristic",
    "mmd2",
    "mmd_test",
]
