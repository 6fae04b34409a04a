"""Loading users' files safely: CSV/Parquet/NPZ/NPY data, `.keras` models, and source/target pairs of them.

Used by the dashboard (uploads), the CLI (paths) and scripts alike. The byte-level loaders take plain
bytes and a file name (what `st.file_uploader` gives, and what a test can pass directly); the
`*_path` functions read files. Everything is validated once, here, and problems raise `InputError`
(a `ValueError`) with a message that says what to fix: wrong or mismatched columns (named),
non-numeric columns (listed; a single cell or value that is not a number is named with its row), NaNs (reported; or dropped with `drop_na=True`, and counted), object
arrays in an NPZ (refused: `allow_pickle=False`), a corrupt or non-Keras model file (models load
with `safe_mode=True`). Nothing here imports Streamlit.

Row index: a CSV whose first column has an empty header and holds integers is the row index that
pandas' `to_csv` writes by default (`INDEX_COLUMN`); it is dropped, never measured as a feature, with an
`InputNote` warning (the CLI prints it on stderr), in memory and in chunks alike.

Size limits: compressed files can expand far beyond their size (an `.npz` of zeros 1,000-fold), so
before anything is decompressed the declared sizes are checked against a limit (`max_bytes`,
default `MAX_BYTES` = 2 GiB, or `SHIFTKIT_MAX_GIB` from the environment): every zip member's
uncompressed size and their total, each `.npy` header's shape x itemsize (an array that a lying
header would make numpy allocate), a Parquet footer's row-group sizes (and rows x columns x 8
bytes), a `.keras` archive's total uncompressed size (`check_keras_archive`), and a file's size on
disk before it is read.

Modules: `common` (`InputError`, the size limit, reading a path), `tables` (CSV, Parquet), `arrays`
(NPZ/NPY), `models` (`.keras`), `domains` (`Domains`, `DataFile` and the loaders that build them).
Every public name is importable from `shiftkit.files` itself.

Labels: any label values (class names, 1..K, years, booleans) are encoded to codes 0..K-1 shared by
source and target with `shiftkit._validation.encode_labels`; the original values are kept as the
class names (`Domains.class_names`), and `Domains.for_model` re-encodes them against a model's
outputs (labels 0..K-1 then index the outputs as they are).
"""

from __future__ import annotations

from shiftkit.files.arrays import check_array_file, load_arrays, load_npz
from shiftkit.files.common import (
    MAX_BYTES,
    MAX_BYTES_ENV,
    InputError,
    InputNote,
    bytes_from_gib,
    max_bytes_limit,
    read_path,
)
from shiftkit.files.domains import (
    MIN_SAMPLES,
    DataFile,
    Domains,
    load_domains_path,
    load_single,
    load_uploaded_domains,
    scenario_domains,
)
from shiftkit.files.models import check_keras_archive, load_keras_model, load_model_path, model_n_classes
from shiftkit.files.tables import (
    INDEX_COLUMN,
    LABEL_COLUMN_GUESSES,
    NO_LABEL,
    PARQUET_EXTENSIONS,
    TABLE_EXTENSIONS,
    csv_columns,
    guess_label_column,
    read_csv,
    read_parquet,
    read_table,
)

__all__ = [
    "InputError",
    "InputNote",
    "MAX_BYTES",
    "MAX_BYTES_ENV",
    "check_array_file",
    "check_keras_archive",
    "max_bytes_limit",
    "bytes_from_gib",
    "load_arrays",
    "load_single",
    "DataFile",
    "load_domains_path",
    "load_model_path",
    "read_path",
    "INDEX_COLUMN",
    "LABEL_COLUMN_GUESSES",
    "MIN_SAMPLES",
    "NO_LABEL",
    "Domains",
    "csv_columns",
    "guess_label_column",
    "load_keras_model",
    "load_npz",
    "load_uploaded_domains",
    "model_n_classes",
    "read_csv",
    "read_parquet",
    "read_table",
    "PARQUET_EXTENSIONS",
    "TABLE_EXTENSIONS",
    "scenario_domains",
]
