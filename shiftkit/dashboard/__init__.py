"""The Streamlit dashboard's logic, kept out of `app.py` so that it can be tested without a browser.

- `shiftkit.files` (the library's loaders): built-in scenarios, uploaded CSV/NPZ files and `.keras`
  models -> `Domains` / a model, with `DashboardError` (= `shiftkit.files.InputError`) messages.
- `pipeline`: source split, the small default model, the page's one `shiftkit.Analysis` (shift
  report, per-feature drift, diagnosis; its JSON and HTML are the downloads), embeddings,
  adaptation, and the verdict cards and tables the page shows. No Streamlit import.
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
    ADAPTERS,
    DEFAULT_SCENARIO,
    SCENARIO_LABELS,
    AdaptationResult,
    AdaptConfig,
    Card,
    adapter_available,
    analysis_of,
    build_default_model,
    comparison_frame,
    drift_frame,
    embed_2d,
    imbalance_table,
    label_table,
    run_adaptation,
    source_split,
    train_default_model,
    verdict_cards,
    verdict_headline,
)

#: session_state keys through which tests inject uploads: role -> key; value `(filename, bytes)`.
TEST_UPLOAD_KEYS = {
    "source": "shiftkit_test_upload_source",
    "target": "shiftkit_test_upload_target",
    "model": "shiftkit_test_upload_model",
}

__all__ = [
    "ADAPTERS",
    "DEFAULT_SCENARIO",
    "NO_LABEL",
    "SCENARIO_LABELS",
    "TEST_UPLOAD_KEYS",
    "AdaptConfig",
    "AdaptationResult",
    "Card",
    "DashboardError",
    "Domains",
    "adapter_available",
    "analysis_of",
    "build_default_model",
    "comparison_frame",
    "csv_columns",
    "drift_frame",
    "embed_2d",
    "guess_label_column",
    "imbalance_table",
    "label_table",
    "load_keras_model",
    "load_npz",
    "load_uploaded_domains",
    "read_csv",
    "run_adaptation",
    "scenario_domains",
    "source_split",
    "train_default_model",
    "user_message",
    "verdict_cards",
    "verdict_headline",
]
