"""shiftkit: transfer learning under distribution shift.

Measure how far a target domain is from a source domain, adapt a Keras model, and measure again.

Example:
    >>> import shiftkit
    >>> s = shiftkit.datasets.load_scenario("hospitals_covariate", seed=0)   # doctest: +SKIP
    >>> print(shiftkit.shift_report(s.x_source, s.x_target, s.y_source, s.y_target, seed=0))  # doctest: +SKIP
    >>> analysis = shiftkit.analyze(s.x_source, s.x_target, y_source=s.y_source, y_target=s.y_target)  # doctest: +SKIP
    >>> open("shift.html", "w").write(analysis.to_html())  # report, drift, diagnosis  # doctest: +SKIP
"""

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) hides real messages; keep the
# user's own setting if there is one.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from shiftkit import datasets  # noqa: E402
from shiftkit.analysis import Analysis, analyze  # noqa: E402
from shiftkit.callbacks import ShiftMonitor  # noqa: E402
from shiftkit.data import DomainSplits, split_domains, subsample_rows  # noqa: E402
from shiftkit.experiment import (  # noqa: E402
    Experiment,
    ExperimentResult,
    classification_metrics,
    expected_calibration_error,
)
from shiftkit.adapt import (  # noqa: E402
    AdaptationReport,
    Adapter,
    CopyAdapter,
    FineTuneAdapter,
    LabelShiftAdapter,
    MMDAdapter,
    PriorCorrection,
    Selection,
    load_adapter,
    select_adapter,
)
from shiftkit._version import __version__  # noqa: E402
from shiftkit.shift import (  # noqa: E402
    ClassImbalance,
    FeatureSpace,
    LabelRatios,
    LabelShiftDistance,
    LabelShiftSummary,
    MMDTestResult,
    PriorEstimate,
    ShiftComparison,
    ShiftReport,
    class_imbalance,
    classifier_test,
    compare,
    diagnose,
    feature_drift,
    estimate_target_priors,
    feature_space,
    label_distribution,
    label_ratios,
    label_shift_distance,
    LabelShiftTestResult,
    label_shift_test,
    mmd2,
    mmd_test,
    shift_report,
)
from shiftkit.shift import MMDAggregate, mmd_agg_test  # noqa: E402
from shiftkit.shift import (  # noqa: E402
    AccuracyEstimate,
    AccuracyEstimator,
    TargetAccuracy,
    target_accuracy,
    BBSDDetector,
    BBSDResult,
    RFFEmbedding,
    RFFTestResult,
    bbsd_test,
    estimate_accuracy,
    rff_mmd_test,
)
from shiftkit.monitor import StreamMonitor, WindowResult  # noqa: E402

__all__ = [
    "__version__",
    "datasets",
    "Analysis",
    "analyze",
    "DomainSplits",
    "Experiment",
    "ExperimentResult",
    "ShiftMonitor",
    "classification_metrics",
    "expected_calibration_error",
    "split_domains",
    "subsample_rows",
    "AdaptationReport",
    "Adapter",
    "CopyAdapter",
    "FineTuneAdapter",
    "LabelShiftAdapter",
    "MMDAdapter",
    "PriorCorrection",
    "load_adapter",
    "select_adapter",
    "Selection",
    "ClassImbalance",
    "FeatureSpace",
    "LabelRatios",
    "LabelShiftDistance",
    "LabelShiftSummary",
    "MMDTestResult",
    "PriorEstimate",
    "ShiftComparison",
    "ShiftReport",
    "class_imbalance",
    "classifier_test",
    "compare",
    "diagnose",
    "feature_drift",
    "estimate_target_priors",
    "feature_space",
    "label_distribution",
    "label_ratios",
    "label_shift_distance",
    "LabelShiftTestResult",
    "label_shift_test",
    "mmd2",
    "mmd_test",
    "MMDAggregate",
    "mmd_agg_test",
    "AccuracyEstimate",
    "AccuracyEstimator",
    "TargetAccuracy",
    "target_accuracy",
    "BBSDDetector",
    "BBSDResult",
    "RFFEmbedding",
    "RFFTestResult",
    "StreamMonitor",
    "WindowResult",
    "bbsd_test",
    "estimate_accuracy",
    "rff_mmd_test",
    "shift_report",
]
