"""Adapting a Keras model trained on a source domain to a target domain."""

from shiftkit.adapt.base import AdaptationReport, Adapter, NotFittedError, build_target_model, load_adapter
from shiftkit.adapt.copy import CopyAdapter
from shiftkit.adapt.finetune import FineTuneAdapter
from shiftkit.adapt.label_shift import LabelShiftAdapter, PriorCorrection
from shiftkit.adapt.mmd import MMDAdapter

__all__ = [
    "AdaptationReport",
    "Adapter",
    "CopyAdapter",
    "FineTuneAdapter",
    "LabelShiftAdapter",
    "MMDAdapter",
    "PriorCorrection",
    "NotFittedError",
    "build_target_model",
    "load_adapter",
]
