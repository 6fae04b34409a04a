"""Adapting a Keras model trained on a source domain to a target domain."""

from shiftkit.adapt.base import AdaptationReport, Adapter, NotFittedError, build_target_model, load_adapter
from shiftkit.adapt.copy import CopyAdapter

__all__ = [
    "AdaptationReport",
    "Adapter",
    "CopyAdapter",
    "NotFittedError",
    "build_target_model",
    "load_adapter",
]
