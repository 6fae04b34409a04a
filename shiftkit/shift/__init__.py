"""Measuring distribution shift between a source and a target domain."""

from shiftkit.shift.classifier import ClassifierTestResult, classifier_test
from shiftkit.shift.density_ratio import DensityRatioEstimator, effective_sample_size
from shiftkit.shift.diagnose import Diagnosis, Evidence, diagnose
from shiftkit.shift.features import FeatureSpace, feature_space
from shiftkit.shift.kernels import gaussian_kernel, median_heuristic
from shiftkit.shift.labels import (
    ClassImbalance,
    LabelRatios,
    LabelShiftDistance,
    PriorEstimate,
    class_imbalance,
    estimate_target_priors,
    label_distribution,
    label_ratios,
    label_shift_distance,
    LabelShiftTestResult,
    label_shift_test,
)
from shiftkit.shift.mmd import DEFAULT_MEMORY_BUDGET, MMDTestResult, mmd2, mmd_test
from shiftkit.shift.mmd import MMDAggregate, mmd_agg_test
from shiftkit.shift.accuracy import AccuracyEstimate, AccuracyEstimator, estimate_accuracy
from shiftkit.shift.transport import label_transport_costs
from shiftkit.shift.bbsd import BBSDDetector, BBSDResult, bbsd_from_probabilities, bbsd_test
from shiftkit.shift.mmd_rff import EmbeddingTestResult, RFFEmbedding, RFFTestResult, rff_mmd_test
from shiftkit.shift.mmd_joint import JointMMDDetector, JointMMDResult, mmd_joint_from_representations, mmd_joint_test
from shiftkit.shift.univariate import FeatureDriftResult, FeatureTest, feature_drift
from shiftkit.shift.streaming import (
    FeatureHistograms,
    FeatureMoments,
    StreamedTarget,
    TableStats,
    scan_pair,
    scan_reference,
    scan_target,
)
from shiftkit.shift.report import (
    REPORT_SCHEMA_VERSION,
    ComparisonRow,
    LabelShiftSummary,
    ShiftComparison,
    ShiftReport,
    TargetAccuracy,
    compare,
    shift_report,
    target_accuracy,
)

__all__ = [
    "TargetAccuracy",
    "target_accuracy",
    "ClassImbalance",
    "ClassifierTestResult",
    "DensityRatioEstimator",
    "Diagnosis",
    "effective_sample_size",
    "Evidence",
    "classifier_test",
    "diagnose",
    "FeatureDriftResult",
    "FeatureTest",
    "feature_drift",
    "ComparisonRow",
    "DEFAULT_MEMORY_BUDGET",
    "LabelRatios",
    "LabelShiftDistance",
    "LabelShiftSummary",
    "PriorEstimate",
    "REPORT_SCHEMA_VERSION",
    "ShiftComparison",
    "ShiftReport",
    "class_imbalance",
    "compare",
    "estimate_target_priors",
    "label_distribution",
    "label_ratios",
    "label_shift_distance",
    "LabelShiftTestResult",
    "label_shift_test",
    "shift_report",
    "FeatureSpace",
    "MMDTestResult",
    "feature_space",
    "gaussian_kernel",
    "median_heuristic",
    "mmd2",
    "mmd_test",
    "MMDAggregate",
    "mmd_agg_test",
    "AccuracyEstimate",
    "AccuracyEstimator",
    "estimate_accuracy",
    "label_transport_costs",
    "BBSDDetector",
    "BBSDResult",
    "bbsd_from_probabilities",
    "bbsd_test",
    "EmbeddingTestResult",
    "RFFEmbedding",
    "RFFTestResult",
    "rff_mmd_test",
    "JointMMDDetector",
    "JointMMDResult",
    "mmd_joint_from_representations",
    "mmd_joint_test",
]
