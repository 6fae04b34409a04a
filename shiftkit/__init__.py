"""shiftkit: transfer learning under distribution shift.

Measure how far a target domain is from a source domain, adapt a Keras model, and measure again.
"""

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) hides real messages; keep the
# user's own setting if there is one.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from shiftkit._version import __version__  # noqa: E402
from shiftkit.shift import (  # noqa: E402
    FeatureSpace,
    MMDTestResult,
    feature_space,
    mmd2,
    mmd_test,
)

__all__ = [
    "__version__",
    "FeatureSpace",
    "MMDTestResult",
    "feature_space",
    "mmd2",
    "mmd_test",
]
