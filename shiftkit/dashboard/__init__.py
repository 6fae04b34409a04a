"""The Streamlit dashboard's logic, kept out of `app.py` so that it can be tested without a browser.

- `shiftkit.files` (the library's loaders): built-in scenarios, uploaded CSV/NPZ files and `.keras`
  models -> `Domains` / a model, with `DashboardError` (= `shiftkit.files.InputError`) messages.
- `pipeline`: source split, the small default model, the page's one `shiftkit.Analysis` (shift
  report, per-feature drift, diagnosis; its JSON and HTML are the downloads), embeddings, and the
  verdict cards and tables the page shows. No Streamlit import.
- `adapting`: the adaptation step over the one adapter registry (`shiftkit.adapt.registry`): the
  adapters listed, their settings and defaults read from their classes, the data each declares,
  one `fit` call for all. No Streamlit import.
- `cached`: the same behind `st.cache_data` / `st.cache_resource` (imported by `app.py`).

`app.py` only wires widgets to these calls and renders; every statistic comes from `shiftkit`.

Test hooks: `app.py` reads uploads from `st.session_state[TEST_UPLOAD_KEYS[role]]` (a
`(filename, bytes)` pair) when set, so headless `AppTest` runs can exercise the upload path, which
`st.file_uploader` does not support there.
"""

from shiftkit.dashboard.errors import DashboardError, user_message
from shiftkit.files import (
    NO_LABEL,
    Domains,
    csv_columns,
    guess_label_column,
    load_keras_model,
    load_npz,
    load_uploaded_domains,
    read_csv,
    scenario_domains,
)
from shiftkit.dashboard.pipeline import (
    DEFAULT_SCENARIO,
    SCENARIO_LABELS,
    UPLOAD_TYPES,
    Card,
    analysis_of,
    build_default_model,
    drift_frame,
    embed_2d,
    imbalance_table,
    is_table_file,
    label_table,
    source_split,
    train_default_model,
    verdict_cards,
    verdict_headline,
)
from shiftkit.dashboard.adapting import (
    AdaptationResult,
    AdaptConfig,
    Setting,
    adapter_label,
    adapter_names,
    adapter_needs_target_labels,
    adapter_settings,
    adapter_trains,
    adapter_unavailable,
    comparison_frame,
    run_adaptation,
    selection_frame,
)

#: session_state keys through which tests inject uploads: role -> key; value `(filename, bytes)`.
TEST_UPLOAD_KEYS = {
    "source": "shiftkit_test_upload_source",
    "target": "shiftkit_test_upload_target",
    "model": "shiftkit_test_upload_model",
}

__all__ = [
    "DEFAULT_SCENARIO",
    "NO_LABEL",
    "SCENARIO_LABELS",
    "TEST_UPLOAD_KEYS",
    "UPLOAD_TYPES",
    "AdaptConfig",
    "AdaptationResult",
    "Card",
    "DashboardError",
    "Domains",
    "Setting",
    "adapter_label",
    "adapter_names",
    "adapter_needs_target_labels",
    "adapter_settings",
    "adapter_trains",
    "adapter_unavailable",
    "analysis_of",
    "build_default_model",
    "comparison_frame",
    "csv_columns",
    "drift_frame",
    "embed_2d",
    "guess_label_column",
    "imbalance_table",
    "is_table_file",
    "label_table",
    "load_keras_model",
    "load_npz",
    "load_uploaded_domains",
    "read_csv",
    "run_adaptation",
    "selection_frame",
    "scenario_domains",
    "source_split",
    "train_default_model",
    "user_message",
    "verdict_cards",
    "verdict_headline",
]
