"""Streamlit-cached wrappers of the dashboard pipeline.

Keys are explicit: `data_key` names the data (scenario + options, or the uploaded files' SHA-256),
`model_key` the model (none / default + seed / uploaded file's SHA-256). Arguments with a leading
underscore (the arrays, the Keras model) are not hashed by Streamlit; the keys stand for them. Data,
the analysis and figures use `st.cache_data` (pickled copies per caller); Keras models and
adaptation results use `st.cache_resource` (one shared object: they are only read after they are
built).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st

from shiftkit import files as loaders
from shiftkit.analysis import Analysis
from shiftkit.dashboard import adapting, pipeline
from shiftkit.plots import to_png

__all__ = [
    "adaptation",
    "analysis",
    "csv_columns",
    "default_model",
    "digest",
    "embedding",
    "model_features",
    "monitor",
    "png",
    "scenario_domains",
    "source_split",
    "uploaded_domains",
    "uploaded_model",
]


def digest(data: bytes) -> str:
    """Short SHA-256 of uploaded bytes (the cache key of a file)."""
    return hashlib.sha256(data).hexdigest()[:16]


@st.cache_data(show_spinner=False, max_entries=16)
def scenario_domains(name: str, seed: int, options: tuple = ()) -> loaders.Domains:
    return loaders.scenario_domains(name, seed, **dict(options))


@st.cache_data(show_spinner=False, max_entries=8)
def uploaded_domains(source_name: str, source: bytes, target_name: str, target: bytes, label_column: str | None) -> loaders.Domains:
    return loaders.load_uploaded_domains((source_name, source), (target_name, target), label_column)


@st.cache_data(show_spinner=False, max_entries=16)
def csv_columns(name: str, data: bytes) -> list[str]:
    return loaders.csv_columns(data, name)


@st.cache_data(show_spinner=False, max_entries=32)
def source_split(data_key: str, _domains: loaders.Domains, seed: int, model_kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows) of the source. Only the default model is trained here, so only then
    is the source split; otherwise every source row is held-out data and also trains the adapter."""
    n = len(_domains.x_source)
    if model_kind != "default":
        every = np.arange(n)
        return every, every
    return pipeline.source_split(_domains.y_source, n, seed)


@st.cache_resource(show_spinner=False, max_entries=8)
def default_model(data_key: str, _domains: loaders.Domains, _fit_idx: np.ndarray, seed: int, epochs: int) -> Any:
    ys = None if _domains.y_source is None else _domains.y_source[_fit_idx]
    return pipeline.train_default_model(
        _domains.x_source[_fit_idx], ys, _domains.n_classes or 0, seed=seed, epochs=epochs
    )


@st.cache_resource(show_spinner=False, max_entries=4)
def uploaded_model(file_key: str, filename: str, _data: bytes) -> Any:
    return loaders.load_keras_model(_data, filename)


@st.cache_data(show_spinner=False, max_entries=32)
def analysis(
    data_key: str, model_key: str, _domains: loaders.Domains, _model: Any, _source_idx: np.ndarray,
    n_permutations: int, alpha: float, seed: int, use_target_labels: bool, target_priors: str = "",
) -> Analysis:
    """The page's one analysis (report, per-feature drift, diagnosis) of the held-out source vs the target."""
    return pipeline.analysis_of(
        _domains, _model, _source_idx, n_permutations=n_permutations, alpha=alpha, seed=seed,
        use_target_labels=use_target_labels, target_priors=target_priors,
    )


@st.cache_data(show_spinner=False, max_entries=32)
def embedding(
    key: tuple, _xs: np.ndarray, _xt: np.ndarray, method: str, seed: int, standardize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """2-D embedding; `key` names what `_xs`/`_xt` are (data, model/adapter, space)."""
    return pipeline.embed_2d(_xs, _xt, method=method, seed=seed, standardize=standardize)


@st.cache_data(show_spinner=False, max_entries=32)
def model_features(data_key: str, model_key: str, _model: Any, _xs: np.ndarray, _xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return pipeline.model_features(_model, _xs), pipeline.model_features(_model, _xt)


@st.cache_resource(show_spinner=False, max_entries=8)
def adaptation(
    data_key: str, model_key: str, config: adapting.AdaptConfig, n_permutations: int, alpha: float,
    seed: int, use_target_labels: bool, _domains: loaders.Domains, _model: Any,
    _fit_idx: np.ndarray, _eval_idx: np.ndarray, _progress: Callable[[int, int, str], None] | None = None,
) -> adapting.AdaptationResult:
    return adapting.run_adaptation(
        _domains, _model, _fit_idx, _eval_idx, config, n_permutations=n_permutations, alpha=alpha,
        seed=seed, use_target_labels=use_target_labels, progress=_progress,
    )


@st.cache_data(show_spinner=False, max_entries=64)
def png(key: tuple, _make_figure: Callable[[], Any]) -> bytes:
    """PNG bytes of the figure `_make_figure()` builds; `key` says which figure of which results."""
    return to_png(_make_figure())


@st.cache_resource(show_spinner=False, max_entries=4)
def monitor(data_key: str, model_key: str, window: int, alpha: float, horizon: int, seed: int, _domains: Any,
            _model: Any, _eval_idx: np.ndarray) -> Any:
    from shiftkit.dashboard.monitoring import monitor_target

    return monitor_target(_domains, _model, _eval_idx, window=window, alpha=alpha, horizon=horizon, seed=seed)

