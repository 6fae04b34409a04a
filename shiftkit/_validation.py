"""Validation of user input, in one place.

Every public function of shiftkit checks its arguments here, at the boundary, and raises a
`ValueError` or `TypeError` that names the argument, quotes what was received and says what to do.
Inner code trusts what these functions return.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "check_array",
    "check_pair",
    "check_labels",
    "check_probabilities",
    "check_alpha",
    "check_real",
    "check_positive_int",
    "check_option",
    "check_bandwidth",
    "check_seed",
    "encode_labels",
    "LabelEncoding",
]


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_array(
    x: Any,
    name: str,
    *,
    min_samples: int = 2,
    dtype: Any = np.float64,
    flatten: bool = False,
) -> np.ndarray:
    """Return `x` as a finite numeric array of at least `min_samples` samples.

    The first axis indexes samples; any further axes are features (an image batch of shape
    `(n, h, w, c)` is fine). A 1-D input is read as `n` samples of one feature.

    Args:
        x: array-like of numbers.
        name: the argument's name, used in error messages.
        min_samples: the least number of samples accepted.
        dtype: the floating dtype of the returned array.
        flatten: if True, return shape `(n, n_features)` with all feature axes flattened.

    Returns:
        A numpy array of `dtype`.

    Raises:
        TypeError: `x` is not numeric (strings, objects, None).
        ValueError: `x` is empty, has too few samples, or holds NaN or inf.
    """
    if x is None:
        raise TypeError(f"{name} must be an array of numbers, got None.")
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, got a string {_describe(x)}.")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(
            f"{name} could not be read as an array ({exc}). Pass a numpy array of shape "
            "(n_samples, ...) with the same number of features in every sample."
        ) from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(
            f"{name} must hold numbers, got dtype {arr.dtype}. Encode text or categorical "
            "columns as numbers (e.g. one-hot) or drop them before measuring shift."
        )
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must hold real numbers, got complex dtype {arr.dtype}.")
    if arr.ndim == 0:
        raise ValueError(
            f"{name} must be an array of samples, got the scalar {_describe(x)}. "
            "Pass an array of shape (n_samples, n_features)."
        )
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape[0] > 0 and arr.size == 0:
        raise ValueError(f"{name} has {arr.shape[0]} samples but no features (shape {arr.shape}): a table with no "
                         "feature columns besides its label column? Pass at least one numeric feature column.")
    if arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}). Pass at least {min_samples} samples.")
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} sample(s); at least {min_samples} are needed. "
            "Pass more samples."
        )
    arr = arr.astype(dtype, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.reshape(arr.shape[0], -1).all(axis=1))
        n_nan = int(np.isnan(arr).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite value(s), in {bad_rows.size} "
            f"sample(s) (first rows: {bad_rows[:5].tolist()}). Remove or impute them first."
        )
    if flatten:
        arr = arr.reshape(arr.shape[0], -1)
    return arr


def column_names(x: Any) -> tuple[str, ...] | None:
    """The column names of a pandas DataFrame (as text), None for anything else."""
    if hasattr(x, "columns") and hasattr(x, "iloc") and getattr(x, "ndim", 0) == 2:
        return tuple(str(c) for c in x.columns)
    return None


def align_columns(x: Any, y: Any, names: tuple[str, str] = ("x", "y")) -> tuple[Any, Any]:
    """Match two tables' columns by name when both are pandas DataFrames.

    Arrays are matched by position; DataFrames by column name, as their users expect: a target
    whose columns come in another order is reordered to the source's (a reordered table would
    otherwise be measured as a shift). Anything that is not two DataFrames is returned unchanged.

    Raises:
        ValueError: the two DataFrames' column names differ, or repeat a name.
    """
    return x, select_columns(y, column_names(x), names)


def select_columns(y: Any, columns: Sequence[str] | None, names: tuple[str, str] = ("the reference", "y")) -> Any:
    """`y`'s columns in the order `columns` when `y` is a pandas DataFrame (see `align_columns`).

    `columns` are the names `names[0]` has (None: unknown, `y` is returned unchanged).
    """
    cx, cy = (None if columns is None else tuple(str(c) for c in columns)), column_names(y)
    if cx is None or cy is None or cx == cy:
        return y
    missing = [c for c in cx if c not in set(cy)]
    extra = [c for c in cy if c not in set(cx)]
    if missing or extra:
        raise ValueError(
            f"{names[1]}'s columns are not {names[0]}'s: {names[1]} lacks "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''} and has {extra[:5]}"
            f"{' ...' if len(extra) > 5 else ''} that {names[0]} does not have. Select the same columns in "
            "both (DataFrame columns are matched by name)."
        )
    if len(set(cx)) != len(cx) or len(set(cy)) != len(cy):
        raise ValueError(
            f"{names[0]} or {names[1]} repeats a column name, so their columns (in another order) cannot be "
            "matched by name. Give every column a distinct name, or pass the same column order in both."
        )
    order = [list(cy).index(c) for c in cx]
    return y.iloc[:, order]


def check_pair(
    x: Any,
    y: Any,
    names: tuple[str, str] = ("x", "y"),
    *,
    min_samples: int = 2,
    flatten: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two samples that must have the same feature shape.

    pandas DataFrames are matched by column name (`align_columns`), arrays by position.

    Returns:
        Both arrays, flattened to `(n, n_features)` when `flatten` is True.
    """
    x, y = align_columns(x, y, names)
    a = check_array(x, names[0], min_samples=min_samples)
    b = check_array(y, names[1], min_samples=min_samples)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same feature shape: {names[0]} has "
            f"{a.shape[1:]} per sample, {names[1]} has {b.shape[1:]}. Select the same columns "
            "in both, in the same order."
        )
    if flatten:
        a = a.reshape(a.shape[0], -1)
        b = b.reshape(b.shape[0], -1)
    return a, b


def check_labels(
    y: Any,
    name: str,
    *,
    n_classes: int | None = None,
    min_samples: int = 1,
) -> np.ndarray:
    """Return class labels as a 1-D int array.

    Accepts integer labels (or floats that are whole numbers) of shape `(n,)` or `(n, 1)`, and
    one-hot / probability-like rows of shape `(n, k)` (converted with argmax after checking that each
    row is one-hot).

    Raises:
        TypeError: non-numeric labels.
        ValueError: empty, NaN, negative, fractional, or `>= n_classes` labels; rows that are not one-hot.
    """
    arr = check_array(y, name, min_samples=min_samples, dtype=np.float64)
    if arr.ndim > 2:
        raise ValueError(
            f"{name} must be a 1-D array of class indices or a 2-D one-hot array, got shape {arr.shape}."
        )
    if arr.ndim == 2 and arr.shape[1] > 1:
        is_binary = np.isin(arr, (0.0, 1.0)).all() and np.all(arr.sum(axis=1) == 1)
        if not is_binary:
            raise ValueError(
                f"{name} has shape {arr.shape}: 2-D labels must be one-hot (a single 1 per row). "
                "Pass class indices of shape (n,) instead, or probabilities to the *_probs argument."
            )
        if n_classes is not None and arr.shape[1] != n_classes:
            raise ValueError(
                f"{name} is one-hot with {arr.shape[1]} columns but n_classes={n_classes}. "
                "Pass n_classes equal to the number of one-hot columns."
            )
        return arr.argmax(axis=1).astype(np.int64)
    arr = arr.reshape(-1)
    if np.any(arr < 0):
        bad = arr[arr < 0][:5].tolist()
        raise ValueError(
            f"{name} must hold class indices 0..n_classes-1; found negative label(s) {bad}. "
            "Encode classes as 0, 1, 2, ... (e.g. sklearn.preprocessing.LabelEncoder)."
        )
    if np.any(arr != np.round(arr)):
        bad = arr[arr != np.round(arr)][:5].tolist()
        raise ValueError(
            f"{name} must hold whole-number class indices; found fractional label(s) {bad}. "
            "Pass class indices, not scores or probabilities."
        )
    labels = arr.astype(np.int64)
    if n_classes is not None:
        n_classes = check_positive_int(n_classes, "n_classes")
        if labels.max() >= n_classes:
            raise ValueError(
                f"{name} has label {int(labels.max())}, but n_classes={n_classes} allows only "
                f"0..{n_classes - 1}. Pass a larger n_classes or re-encode the labels."
            )
    return labels


def check_probabilities(
    p: Any,
    name: str,
    *,
    n_classes: int | None = None,
    atol: float = 1e-3,
    min_samples: int = 1,
) -> np.ndarray:
    """Return class probabilities as an `(n, k)` float array whose rows sum to 1.

    A 1-D array, or a single column, is read as the positive-class probability of a binary
    classifier (a sigmoid output) and expanded to `(n, 2)`.
    """
    arr = check_array(p, name, min_samples=min_samples, dtype=np.float64)
    if arr.ndim > 2:
        raise ValueError(f"{name} must have shape (n_samples, n_classes), got {arr.shape}.")
    if arr.shape[1] == 1:
        arr = np.concatenate([1.0 - arr, arr], axis=1)
    if np.any(arr < -atol) or np.any(arr > 1 + atol):
        raise ValueError(
            f"{name} must hold probabilities in [0, 1]; found values from {arr.min():.4g} to "
            f"{arr.max():.4g}. Apply softmax (or sigmoid) to logits first."
        )
    sums = arr.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
    if bad.size:
        raise ValueError(
            f"{name}: {bad.size} row(s) do not sum to 1 (e.g. row {int(bad[0])} sums to "
            f"{sums[bad[0]]:.4g}). Pass softmax probabilities, one row per sample."
        )
    if n_classes is not None and arr.shape[1] != n_classes:
        raise ValueError(
            f"{name} has {arr.shape[1]} columns but {n_classes} classes were expected. "
            "Use the probabilities of the same model on both domains."
        )
    arr = np.clip(arr, 0.0, 1.0)
    return arr / arr.sum(axis=1, keepdims=True)


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """Return a significance level strictly between 0 and 1."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), e.g. 0.05; got {_describe(alpha)}.")
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1 (e.g. 0.05); got {alpha}.")
    return alpha


def _num(v: float) -> str:
    return f"{v:g}"


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The range a value must lie in, in words: "a positive number", "a number in [0, 1)", ..."""
    if low is not None and high is not None:
        if low_open and high_open:
            return f"a number strictly between {_num(low)} and {_num(high)}"
        if not low_open and not high_open:
            return f"a number between {_num(low)} and {_num(high)}"
        return f"a number in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low is not None:
        if low == 0:
            return "a positive number" if low_open else "a non-negative number"
        return f"a number {'>' if low_open else '>='} {_num(low)}"
    if high is not None:
        return f"a number {'<' if high_open else '<='} {_num(high)}"
    return "a number"


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
    example: Any = None,
) -> float:
    """Return `value` as a float within a declared range: the one check of real-number arguments.

    The range is `[low, high]`, each end left out when None and open when `low_open` /
    `high_open`. NaN is always refused; infinite values unless `allow_inf` (and then only where
    the range reaches them). Messages name the argument, say the range in words and give an
    example of a good value.

    Args:
        value: the user's value (any real number but a bool; numpy scalars included).
        name: the argument's name, used in messages.
        low, high: the ends of the range (None: unbounded on that side).
        low_open, high_open: whether that end is excluded.
        allow_inf: accept +-inf when the range includes it (e.g. "never" for a threshold).
        example: a good value, shown in messages ("e.g. 0.05"); a string is shown as it is.

    Returns:
        The value as a Python float.

    Raises:
        TypeError: `value` is not a real number (a bool, a string, None, ...).
        ValueError: NaN, an infinite value (unless allowed), or a value outside the range.

    Example:
        >>> check_real(0.7, "target_prevalence", low=0, high=1, low_open=True, high_open=True)
        0.7
        >>> check_real(0, "tol", low=0, low_open=True, example="1e-8")
        Traceback (most recent call last):
        ...
        ValueError: tol must be a positive number, e.g. 1e-8; got 0.
    """
    what = _range_text(low, high, low_open, high_open)
    eg = "" if example is None else f", e.g. {example}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}{eg}; got {_describe(value)}.")
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        finite = what.replace(" number", " finite number", 1)
        raise ValueError(f"{name} must be {finite}{eg}; got {_describe(value)}.")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        raise ValueError(f"{name} must be {what}{eg}; got {_describe(value)}.")
    return number


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return `value` as an int that is at least `minimum`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer >= {minimum}; got {_describe(value)}.")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}.")
    return value


def check_option(value: Any, name: str, options: Sequence[str]) -> str:
    """Return `value` if it is one of `options` (case-insensitive), else raise."""
    if not isinstance(value, str) or value.lower() not in options:
        raise ValueError(f"Unknown {name} {_describe(value)}. Choose one of: {', '.join(options)}.")
    return value.lower()


def check_bandwidth(bandwidth: Any, name: str = "bandwidth") -> np.ndarray | None:
    """Return `None` (median heuristic) or a 1-D float array of positive bandwidths."""
    if bandwidth is None:
        return None
    if isinstance(bandwidth, str):
        raise TypeError(
            f"{name} must be None (median heuristic), a positive number or a list of them; "
            f"got {_describe(bandwidth)}."
        )
    values: Iterable[Any] = bandwidth if np.ndim(bandwidth) else [bandwidth]
    try:
        arr = np.asarray(list(values), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be None (median heuristic), a positive number or a list of them; "
            f"got {_describe(bandwidth)}."
        ) from None
    if arr.size == 0:
        raise ValueError(f"{name} is an empty list. Pass None for the median heuristic or positive numbers.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(
            f"{name} must be positive and finite; got {arr.tolist()}. "
            "Pass None to use the median heuristic."
        )
    return arr


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """Return `seed` as an int or None."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be None or a non-negative integer; got {_describe(seed)}.")
    if int(seed) < 0:
        raise ValueError(f"{name} must be None or a non-negative integer; got {int(seed)}.")
    return int(seed)


# --------------------------------------------------------------------------------------------
# Label encoding: any label values -> codes 0..K-1, consistently across source and target
# --------------------------------------------------------------------------------------------


def _display(value: Any) -> Any:
    """A label value as shown to users: whole floats as ints, numpy scalars as Python values."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class LabelEncoding:
    """The classes of a labelling, in code order: code k stands for `classes[k]`.

    Built by `encode_labels`; immutable. `names` are the classes as strings, for display.

    Example:
        >>> enc, (ys, yt) = encode_labels([1, 2, 2], [2, 1])
        >>> enc.classes, ys.tolist(), yt.tolist()
        ((1, 2), [0, 1, 1], [1, 0])
    """

    __slots__ = ("classes", "identity")

    def __init__(self, classes: Sequence[Any], identity: bool = False):
        object.__setattr__(self, "classes", tuple(_display(c) for c in classes))
        object.__setattr__(self, "identity", bool(identity))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("LabelEncoding is immutable.")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelEncoding) and self.classes == other.classes

    def __hash__(self) -> int:
        return hash(self.classes)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # immutable (__setattr__ refuses), so pickling (st.cache_data, multiprocessing) rebuilds it
        return (LabelEncoding, (self.classes, self.identity))

    def __repr__(self) -> str:
        return f"LabelEncoding(classes={self.classes!r})"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.classes)

    def encode(self, y: Any, name: str = "y") -> np.ndarray:
        """Codes of `y`'s values; raises naming any value that is not one of `classes`."""
        values = _label_values(y, name)
        if self.identity and values.dtype.kind in "iub":
            codes = values.astype(np.int64)
            bad = (codes < 0) | (codes >= self.n_classes)
            if bad.any():
                raise ValueError(
                    f"{name} has label(s) {sorted(set(codes[bad].tolist()))[:5]} outside the classes "
                    f"0..{self.n_classes - 1} of the model's outputs. Pass labels that index the model's "
                    "outputs, or re-encode them."
                )
            return codes
        lookup = {c: k for k, c in enumerate(self.classes)}
        codes = np.empty(len(values), dtype=np.int64)
        unknown = []
        for i, v in enumerate(values.tolist()):
            k = lookup.get(_display(v))
            if k is None:
                unknown.append(_display(v))
                continue
            codes[i] = k
        if unknown:
            raise ValueError(
                f"{name} has label value(s) {sorted(set(map(str, unknown)))[:5]} that are not among the "
                f"classes {list(self.classes)}. Pass labels with the same coding in every array."
            )
        return codes

    def decode(self, codes: Any) -> np.ndarray:
        """The original class values of codes."""
        return np.asarray(self.classes, dtype=object)[np.asarray(codes, dtype=np.int64)]

    def to_dict(self) -> dict[str, Any]:
        return {"classes": [c if isinstance(c, (int, float, str, bool)) else str(c) for c in self.classes]}


def _label_values(y: Any, name: str) -> np.ndarray:
    """Labels as a 1-D numpy array of values (numbers, strings or bools); one-hot rows become indices."""
    if y is None:
        raise TypeError(f"{name} must be an array of class labels, got None.")
    if isinstance(y, (str, bytes)):
        raise TypeError(f"{name} must be an array of class labels, got a single string {_describe(y)}.")
    try:
        arr = np.asarray(y)
    except Exception as exc:  # noqa: BLE001 - ragged input
        raise TypeError(f"{name} could not be read as an array of labels ({exc}).") from None
    if arr.ndim == 0:
        raise ValueError(f"{name} must be an array of labels, got the scalar {_describe(y)}.")
    if arr.size == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} is empty. Pass one label per sample.")
    if arr.ndim == 2 and arr.shape[1] > 1:
        return check_labels(arr, name)  # one-hot rows -> indices
    if arr.ndim > 2 or (arr.ndim == 2 and arr.shape[1] != 1):
        raise ValueError(f"{name} must be a 1-D array of labels (or one-hot rows), got shape {arr.shape}.")
    arr = arr.reshape(-1)
    if arr.dtype.kind == "O":
        items = arr.tolist()
        if any(v is None or (isinstance(v, float) and not np.isfinite(v)) for v in items):
            raise ValueError(f"{name} has missing labels (None/NaN). Drop those rows or fill them first.")
        if all(isinstance(v, (bool, np.bool_)) for v in items):
            return arr.astype(bool)
        if all(isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (bool, np.bool_)) for v in items):
            arr = arr.astype(np.float64)
        else:
            return np.asarray([str(v) for v in items], dtype=str)
    if arr.dtype.kind in "US":
        return arr.astype(str)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must hold class labels, got complex numbers.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} has NaN or infinite labels. Drop those rows or fill them first.")
        if np.any(arr != np.round(arr)):
            bad = arr[arr != np.round(arr)][:5].tolist()
            raise ValueError(
                f"{name} must hold class labels; found fractional value(s) {bad}. Pass class labels, "
                "not scores or probabilities."
            )
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold class labels (numbers, strings or booleans), got dtype {arr.dtype}.")
    return arr


def _check_same_label_type(values: list[np.ndarray], names: list[str]) -> None:
    """Refuse text labels in one array and numbers in another: '0' and 0 would be two classes."""
    text = [nm for v, nm in zip(values, names) if v.dtype.kind == "U"]
    numeric = [nm for v, nm in zip(values, names) if v.dtype.kind != "U"]
    if not (text and numeric):
        return
    not_numbers = []
    for v, nm in zip(values, names):
        if v.dtype.kind == "U":
            for value in dict.fromkeys(v.tolist()):
                try:
                    float(value)
                except ValueError:
                    not_numbers.append(value)
    hint = (f" Its values that are not numbers: {not_numbers[:5]} (a stray value makes a file's label column "
            "text): fix or drop those rows." if not_numbers else
            " They look like numbers: convert them, e.g. `y.astype(int)`.")
    raise TypeError(
        f"{' and '.join(text)} hold(s) text labels but {' and '.join(numeric)} hold(s) numbers, so the same class "
        f"would count as two ('0' is not 0).{hint}"
    )


def _sorted_classes(values: list[np.ndarray]) -> list[Any]:
    pooled = np.concatenate([v.astype(object) if v.dtype.kind != values[0].dtype.kind else v for v in values])
    uniq = set(_display(v) for v in pooled.tolist())
    try:
        return sorted(uniq)
    except TypeError:  # mixed types: order by their text
        return sorted(uniq, key=str)


def encode_labels(
    *labels: Any,
    names: Sequence[str] | None = None,
    classes: Sequence[Any] | None = None,
    n_outputs: int | None = None,
    min_classes: int = 1,
) -> tuple[LabelEncoding, list[np.ndarray]]:
    """Encode one or more label arrays (source, target, ...) to codes 0..K-1 with one shared coding.

    Any label values are accepted: ints, whole-number floats, strings, bools, one-hot rows. Labels
    coded 1..K, years (2019/2020) or names ("benign"/"malignant") become 0..K-1; the original values
    are kept in the returned `LabelEncoding.classes` for display.

    Which coding:
        - `classes` given: code k is `classes[k]`; a value not listed is an error.
        - `n_outputs` given (a model's number of classes): labels that are all integers in
          0..n_outputs-1 index the model's outputs as they are; otherwise the sorted distinct values
          are mapped to the outputs in order, which needs exactly `n_outputs` of them.
        - neither: the sorted distinct values of all arrays together.

    Args:
        *labels: the label arrays (None entries are skipped and returned as None).
        names: argument names for messages (default "y0", "y1", ...).
        classes: an explicit class order.
        n_outputs: the number of classes a model predicts.
        min_classes: the least number of distinct classes required across all arrays.

    Returns:
        `(encoding, codes)` with one int64 array (or None) per input.

    Raises:
        TypeError / ValueError: empty or missing labels, fractional values, unknown values, too few
            classes, or values that cannot be matched to the model's outputs.
    """
    names = list(names) if names is not None else [f"y{i}" for i in range(len(labels))]
    present = [(y, nm) for y, nm in zip(labels, names) if y is not None]
    values = [_label_values(y, nm) for y, nm in present]
    _check_same_label_type(values, [nm for _, nm in present])
    if classes is not None:
        enc = LabelEncoding(list(classes))
    else:
        found = _sorted_classes(values) if values else []
        if n_outputs is not None:
            n_outputs = check_positive_int(n_outputs, "n_outputs")
            ints = all(v.dtype.kind in "iub" for v in values)
            if ints and all(0 <= c < n_outputs for c in found if not isinstance(c, str)):
                enc = LabelEncoding(range(n_outputs), identity=True)
            elif len(found) == n_outputs:
                enc = LabelEncoding(found)
            else:
                raise ValueError(
                    f"{' and '.join(nm for _, nm in present)} hold {len(found)} distinct label value(s) "
                    f"{found[:10]} that cannot be matched to the model's {n_outputs} output class(es). "
                    f"Pass labels 0..{n_outputs - 1} (the model's output indices) or exactly "
                    f"{n_outputs} distinct values (mapped in sorted order)."
                )
        else:
            enc = LabelEncoding(found)
    codes_iter = iter([enc.encode(y, nm) for y, nm in present])
    codes = [None if y is None else next(codes_iter) for y in labels]
    distinct = len(set(np.concatenate([c for c in codes if c is not None]).tolist())) if present else 0
    if distinct < min_classes:
        raise ValueError(
            f"{' and '.join(nm for _, nm in present)} hold {distinct} class(es); at least {min_classes} "
            "are needed. Pass labels of more than one class."
        )
    return enc, codes
