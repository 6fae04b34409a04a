"""Adapting a Keras model trained on a source domain to a target domain.

Every adapter keeps one contract (`Adapter`): settings in the constructor (`get_config` /
`from_config`), the same data keywords in `fit` (`x_source`, `y_source`, `x_target`, `y_target`),
and a short name in one registry (`adapter_names`, `get_adapter`, `fit_data`).
"""

from shiftkit.adapt.base import AdaptationReport, Adapter, NotFittedError, build_target_model, load_adapter
from shiftkit.adapt.batch_norm import recalibrate_batch_norm
# The import order is the registry's order (menus, Experiment's defaults): copy, finetune, mmd, label_shift,
# coral, adabn, self_training, dann, importance, auto.
from shiftkit.adapt.copy import CopyAdapter  # noqa: I001
from shiftkit.adapt.finetune import FineTuneAdapter
from shiftkit.adapt.mmd import MMDAdapter
from shiftkit.adapt.label_shift import LabelShiftAdapter, PriorCorrection
from shiftkit.adapt.coral import CORALAdapter
from shiftkit.adapt.test_time import BatchNormAdapter
from shiftkit.adapt.self_training import SelfTrainingAdapter
from shiftkit.adapt.dann import DANNAdapter
from shiftkit.adapt.importance import ImportanceWeightingAdapter
from shiftkit.adapt.auto import AutoAdapter
from shiftkit.adapt.selection import CandidateScore, Selection, select_adapter
from shiftkit.adapt.registry import (
    DATA_KEYS,
    EXTRA_DATA_KEYS,
    adapter_classes,
    adapter_names,
    fit_data,
    get_adapter,
    register_adapter,
    unregister_adapter,
)

__all__ = [
    "AdaptationReport",
    "Adapter",
    "AutoAdapter",
    "CandidateScore",
    "EXTRA_DATA_KEYS",
    "Selection",
    "SelfTrainingAdapter",
    "BatchNormAdapter",
    "CORALAdapter",
    "CopyAdapter",
    "DANNAdapter",
    "DATA_KEYS",
    "FineTuneAdapter",
    "ImportanceWeightingAdapter",
    "LabelShiftAdapter",
    "MMDAdapter",
    "PriorCorrection",
    "NotFittedError",
    "adapter_classes",
    "adapter_names",
    "build_target_model",
    "fit_data",
    "get_adapter",
    "load_adapter",
    "recalibrate_batch_norm",
    "register_adapter",
    "select_adapter",
    "unregister_adapter",
]
