"""Named, disjoint, stratified and seeded splits of a source and a target domain.

A transfer-learning study needs five sets, and keeping them apart is what makes its numbers honest:

==================  ========================================================================
source_train        (x, y): trains the source model (and MMDAdapter's task loss)
source_val          (x, y): held-out source: the "source" side of every shift measurement, and
                    the labelled held-out set LabelShiftAdapter estimates target priors from
target_labeled      (x, y): the few labelled target samples (CopyAdapter, FineTuneAdapter, the
                    target-only baseline train on them)
target_unlabeled    x: target inputs whose labels are *withheld* (MMDAdapter, LabelShiftAdapter)
target_test         (x, y): held-out target: every method is evaluated here, and nothing trains on it
==================  ========================================================================

`split_domains` builds them. Choices written down:

* **Stratified allocation, per class, rounded half up.** With `stratify=True` a fraction `f` of a
  class with `n_k` samples selects `floor(f * n_k + 0.5)` of them; in the source split each class
  keeps at least one sample in both `source_train` and `source_val` (so LabelShiftAdapter sees every
  class), and every target class with at least two samples keeps at least one in `target_test`.
* **Order on the target:** `target_test` is drawn first (so changing `target_labeled` never moves a
  test sample), then `target_labeled` from what is left, and the rest is `target_unlabeled`.
* **Fractions are of the whole target:** `test_size=0.5, target_labeled=0.1` keeps half of each
  class for testing, labels a tenth, and leaves the remaining 40% unlabelled.
* **Seeds:** the source and target splits use independent random streams spawned from `seed`
  (`numpy.random.SeedSequence(seed).spawn(2)`), so changing a target option never changes the
  source split. With `seed=None` fresh entropy is drawn and *recorded* in `DomainSplits.seed`, so
  every split can be rebuilt.
* Within each split, rows keep their original order (`indices` gives the rows of the inputs).
* **Classes are the distinct label values** of source and target together, sorted (`DomainSplits.classes`):
  labels 1..K are K classes (not an empty class 0 and K others), names and bools are classes too. The
  splits keep the values as given; `counts` and the summary follow `classes`. `Experiment` codes them
  for the model (0..K-1, or as they are when they already index its outputs).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from shiftkit._validation import (
    _label_values,
    check_array,
    check_positive_int,
    check_seed,
    encode_labels,
)

__all__ = ["SPLIT_NAMES", "DomainSplits", "check_held_out_classes", "source_holdout", "split_domains", "subsample_rows"]

#: The names of the five splits, in the order they are reported.
SPLIT_NAMES: tuple[str, ...] = ("source_train", "source_val", "target_labeled", "target_unlabeled", "target_test")

_NO_TARGET_LABELS = (
    "y_target was not given: there is no target_labeled and no target_test set. CopyAdapter, "
    "FineTuneAdapter and the target-only baseline need labelled target samples and cannot run, and "
    "nothing can be evaluated on the target (no accuracy, balanced accuracy, F1, AUROC or calibration "
    "error there); only the unsupervised adapters (MMDAdapter, LabelShiftAdapter) and the shift "
    "measurements (source_val vs target_unlabeled) are available."
)


@dataclasses.dataclass(frozen=True, eq=False)
class DomainSplits:
    """The five sets of a transfer-learning study (see the module docstring).

    The arrays are read-only copies of the rows of the inputs.

    Attributes:
        source_train: `(x, y)` for training the source model.
        source_val: `(x, y)` held-out source data.
        target_labeled: `(x, y)` labelled target samples for adaptation; None without `y_target`.
        target_unlabeled: target inputs whose labels are withheld.
        target_test: `(x, y)` held-out target data for evaluation; None without `y_target`.
        n_classes: number of classes (the distinct label values of source and target together).
        seed: the seed the splits were drawn with (the recorded entropy when `seed=None` was given).
        indices: split name -> rows of `x_source` (source splits) or `x_target` (target splits).
        counts: split name -> class counts (a tuple of `n_classes` ints), or None when the split's
            labels are unknown. For `target_unlabeled` these are the counts of the *withheld*
            labels when `y_target` was given: for reporting only, no method sees them.
        limitations: sentences saying what these splits cannot support (empty when complete).
        options: the options used (`val_size`, `target_labeled`, `test_size`, `stratify`).
        classes: the label values in class order (sorted): `counts[split][k]` counts `classes[k]`. The
            splits' labels keep the values given (labels 1..K stay 1..K, names stay names).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> xs, ys = rng.normal(size=(100, 3)), np.repeat([0, 1], 50)
        >>> xt, yt = rng.normal(size=(80, 3)), np.repeat([0, 1], 40)
        >>> s = split_domains(xs, ys, xt, yt, target_labeled=5, seed=0)
        >>> s.target_labeled[0].shape, len(s.target_test[1])
        ((10, 3), 40)
    """

    source_train: tuple[np.ndarray, np.ndarray]
    source_val: tuple[np.ndarray, np.ndarray]
    target_labeled: tuple[np.ndarray, np.ndarray] | None
    target_unlabeled: np.ndarray
    target_test: tuple[np.ndarray, np.ndarray] | None
    n_classes: int
    seed: int
    indices: dict[str, np.ndarray]
    counts: dict[str, tuple[int, ...] | None]
    limitations: tuple[str, ...] = ()
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    classes: tuple[Any, ...] = ()

    def _class_label(self, k: int) -> Any:
        return self.classes[k] if len(self.classes) == self.n_classes else k

    @property
    def has_target_labels(self) -> bool:
        """True when `target_labeled` and `target_test` exist (`y_target` was given)."""
        return self.target_labeled is not None

    def sizes(self) -> dict[str, int]:
        """Number of samples per split (0 for a split that does not exist)."""
        return {name: len(self.indices[name]) for name in SPLIT_NAMES}

    def summary(self):
        """Samples and class counts per split, as a pandas DataFrame (one row per split).

        Columns: `n` (samples), `labels` ("used", "withheld" for target_unlabeled when its labels
        are known, "unknown" or "absent" for a split that does not exist), and `class <value>` per
        class, in `classes` order (counts; <NA> when unknown).
        """
        import pandas as pd

        rows = []
        for name in SPLIT_NAMES:
            counts = self.counts.get(name)
            n = len(self.indices[name])
            if name == "target_unlabeled":
                labels = "withheld" if counts is not None else "unknown"
            elif name in ("target_labeled", "target_test") and not self.has_target_labels:
                labels = "absent"
            else:
                labels = "used"
            row: dict[str, Any] = {"split": name, "n": n, "labels": labels}
            for k in range(self.n_classes):
                row[f"class {self._class_label(k)}"] = None if counts is None else int(counts[k])
            rows.append(row)
        frame = pd.DataFrame(rows).set_index("split")
        for k in range(self.n_classes):
            frame[f"class {self._class_label(k)}"] = frame[f"class {self._class_label(k)}"].astype("Int64")
        return frame

    def to_dict(self) -> dict[str, Any]:
        """Sizes, class counts, seed, options and limitations (JSON-ready; no arrays)."""
        return {
            "sizes": self.sizes(),
            "counts": {k: (None if v is None else [int(c) for c in v]) for k, v in self.counts.items()},
            "n_classes": int(self.n_classes),
            "classes": [self._class_label(k) for k in range(self.n_classes)],
            "seed": int(self.seed),
            "options": dict(self.options),
            "limitations": list(self.limitations),
        }

    def __str__(self) -> str:
        text = f"DomainSplits (seed={self.seed}, {self.n_classes} classes)\n{self.summary().to_string()}"
        if self.limitations:
            text += "\n" + "\n".join(self.limitations)
        return text

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return f"DomainSplits({sizes}, n_classes={self.n_classes}, seed={self.seed})"


def source_holdout(y_source: np.ndarray | None, n: int, seed: int | None, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of `n` source rows into a training part and a held-out part, `(fit_rows, held_out_rows)`.

    Stratified by class (`y_source`, class codes) when every class has at least two samples, else
    plain random; `holdout` is the held-out share (scikit-learn's `train_test_split`). Both index
    arrays are sorted. The dashboard and `shiftkit adapt` hold out the source this way.
    """
    idx = np.arange(n)
    stratify = None
    if y_source is not None:
        counts = np.bincount(y_source)
        if counts[counts > 0].min() >= 2:
            stratify = y_source
    fit_idx, eval_idx = train_test_split(idx, test_size=holdout, random_state=seed, stratify=stratify)
    return np.sort(fit_idx), np.sort(eval_idx)


def check_held_out_classes(
    y_source: np.ndarray,
    held_out_rows: np.ndarray,
    *,
    class_names: list[str] | None = None,
    why: str = "the model or the adapters train on the rest",
    fix: str = "Add source rows of those classes, or hold out a larger share of the source.",
) -> None:
    """Refuse a held-out source part that lost a class (`source_holdout` of a source with rare classes).

    The held-out source is the "source" side of every before/after report and what label-shift
    correction calibrates on; a class with no row there would make the diagnosis fail with a message
    about the data rather than about the split (a class with one or two rows in the whole source can
    land entirely in the training part). The dashboard and `shiftkit adapt` call this after splitting.

    Args:
        y_source: class codes of every source row.
        held_out_rows: the rows of the held-out part (indices into `y_source`).
        class_names: names of the classes, by code, for the message.
        why: why the held-out part is what is measured (said in the message).
        fix: what the user can do (the message's last sentence).

    Raises:
        ValueError: a class of `y_source` has no row in `held_out_rows`; the message names the classes.

    Example:
        >>> check_held_out_classes(np.array([0, 0, 1, 1]), np.array([1, 3]))
    """
    y = np.asarray(y_source)
    rows = np.asarray(held_out_rows, dtype=np.int64)
    if len(rows) == len(y):
        return
    lost = sorted(set(y.tolist()) - set(y[rows].tolist()))
    if not lost:
        return
    shown = [class_names[k] if class_names and isinstance(k, (int, np.integer)) and 0 <= k < len(class_names) else k
             for k in lost]
    raise ValueError(
        f"The held-out part of the source ({len(rows)} of {len(y)} rows, which the reports measure because {why}) "
        f"has no row of class(es) {shown[:10]}: the source has too few rows of them. {fix}")


def subsample_rows(n: int, max_samples: int | None, seed: int | None) -> np.ndarray:
    """The rows of a seeded subsample of at most `max_samples` of `n` rows, in their original order.

    The one row subsampling of shiftkit's front ends (`shiftkit.analyze`, `shiftkit check`, the
    dashboard): every row when `n <= max_samples` (or `max_samples` is None), else `max_samples`
    rows drawn without replacement by `numpy.random.default_rng(seed)`, sorted. By convention the
    source is drawn with `seed` and the target with `seed + 1`.

    Args:
        n: number of rows.
        max_samples: the most rows to keep (None: keep every row).
        seed: seed of the draw (None: fresh entropy).

    Returns:
        Sorted row indices (int64).

    Example:
        >>> subsample_rows(5, 3, seed=0).tolist()
        [2, 3, 4]
    """
    if max_samples is None or n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5 + 1e-9)


def _check_fraction(value: Any, name: str, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a fraction strictly between 0 and 1, e.g. {example}; got {value!r}.")
    value = float(value)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must be a fraction strictly between 0 and 1, e.g. {example}; got {value!r}.")
    return value


def _check_target_labeled(value: Any) -> int | float:
    """An int >= 1 (samples per class) or a float in (0, 1) (fraction of each class's target samples)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            "target_labeled must be a number of labelled samples per class (an int >= 1, e.g. 10) or "
            f"a fraction of the target in (0, 1), e.g. 0.1; got {value!r}."
        )
    if isinstance(value, numbers.Integral) or (float(value).is_integer() and float(value) >= 1):
        return check_positive_int(int(value), "target_labeled")
    return _check_fraction(value, "target_labeled", "0.1 (or an integer per-class count such as 10)")


def _inputs(x: Any, name: str) -> np.ndarray:
    raw = np.asarray(x) if not isinstance(x, (str, bytes)) and x is not None else x
    dtype = raw.dtype if isinstance(raw, np.ndarray) and np.issubdtype(raw.dtype, np.floating) else np.float64
    return check_array(x, name, dtype=dtype)


def _labels(y: Any, n: int, name: str, x_name: str) -> np.ndarray:
    """The label values as a 1-D array (numbers, names or bools; one-hot rows -> indices), one per sample."""
    labels = _label_values(y, name)
    if len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} labels but {x_name} has {n} samples; pass one label per sample.")
    return labels


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


def _counts(y: np.ndarray, n_classes: int) -> tuple[int, ...]:
    return tuple(int(c) for c in np.bincount(y, minlength=n_classes))


# --------------------------------------------------------------------------------------------
# The splits
# --------------------------------------------------------------------------------------------


def _shown(classes: tuple[Any, ...], k: Any) -> str:
    """Class code `k` as the user wrote it (a name quoted), for messages."""
    value = classes[int(k)]
    return repr(value) if isinstance(value, str) else str(value)


def _split_source(
    y: np.ndarray, val_size: float, stratify: bool, rng: np.random.Generator, classes: tuple[Any, ...]
) -> tuple[np.ndarray, np.ndarray]:
    if not stratify:
        n = len(y)
        n_val = min(max(_round_half_up(val_size * n), 1), n - 1)
        perm = rng.permutation(n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    train, val = [], []
    for k in np.unique(y):
        rows = np.flatnonzero(y == k)
        if len(rows) < 2:
            raise ValueError(
                f"Class {_shown(classes, k)} has {len(rows)} sample in y_source; a stratified split needs at least 2 "
                "per class (one to train on, one to validate on). Add source samples of that class, "
                "or pass stratify=False."
            )
        n_val = min(max(_round_half_up(val_size * len(rows)), 1), len(rows) - 1)
        perm = rng.permutation(rows)
        val.append(perm[:n_val])
        train.append(perm[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _suggest_fraction(n_k: int, test_size: float) -> str:
    """The smallest two-decimal fraction giving class of size n_k one labelled sample, if any fits."""
    need = math.ceil(100 * 0.5 / n_k) / 100
    if need + test_size < 1:
        return f"target_labeled={need:g} or more, or an integer per-class count such as target_labeled=1"
    return "an integer per-class count such as target_labeled=1, or a smaller test_size"


def _split_target(
    y: np.ndarray,
    n_classes: int,
    target_labeled: float,
    test_size: float,
    stratify: bool,
    rng: np.random.Generator,
    classes: tuple[Any, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labeled, unlabeled, test) rows of the target (`y`: class codes; `classes`: their values, for messages)."""
    counts = np.bincount(y, minlength=n_classes)
    for k in range(n_classes):
        if counts[k] == 0:
            raise ValueError(
                f"Class {_shown(classes, k)} has no sample in y_target, so target_labeled cannot hold a labelled target "
                f"sample of it (no value of target_labeled can fix this). Add labelled target samples of "
                f"class {_shown(classes, k)}, or leave y_target out (unsupervised adapters only)."
            )
    per_class = isinstance(target_labeled, int)
    # 1. The test set, drawn first.
    if stratify:
        test = []
        for k in range(n_classes):
            rows = np.flatnonzero(y == k)
            n_test = _round_half_up(test_size * len(rows))
            if len(rows) >= 2:
                n_test = max(n_test, 1)
            test.append(rng.permutation(rows)[:n_test])
        test_rows = np.concatenate(test)
    else:
        n_test = min(max(_round_half_up(test_size * len(y)), 1), len(y) - 1)
        test_rows = rng.permutation(len(y))[:n_test]
    rest = np.setdiff1d(np.arange(len(y)), test_rows)
    # 2. The labelled set, from what is left.
    labeled = []
    if per_class or stratify:
        for k in range(n_classes):
            rows = rest[y[rest] == k]
            want = target_labeled if per_class else _round_half_up(target_labeled * counts[k])
            if want == 0:
                raise ValueError(
                    f"target_labeled={target_labeled:g} leaves class {_shown(classes, k)} with no labelled target sample: it has "
                    f"{counts[k]} target samples and {target_labeled:g} x {counts[k]} rounds to 0. "
                    f"Pass {_suggest_fraction(int(counts.min()), test_size)}."
                )
            if want > len(rows):
                n_test_k = int(counts[k]) - len(rows)
                if len(rows) == 0:
                    raise ValueError(
                        f"Class {_shown(classes, k)} has {counts[k]} target sample(s) and test_size={test_size:g} "
                        f"puts {n_test_k} of them in target_test, which leaves class {_shown(classes, k)} with no "
                        f"labelled target sample. Pass a smaller test_size (e.g. {max(0.05, test_size / 2):g}) or "
                        f"add target samples of class {_shown(classes, k)}."
                    )
                raise ValueError(
                    f"target_labeled={target_labeled:g} asks for {want} labelled samples of class {_shown(classes, k)}, but it "
                    f"has {counts[k]} target samples and test_size={test_size:g} keeps {n_test_k} for "
                    f"target_test, leaving {len(rows)}. Pass target_labeled={len(rows)} or less, or a "
                    "smaller test_size."
                )
            labeled.append(rng.permutation(rows)[:want])
        labeled_rows = np.concatenate(labeled)
    else:
        n_lab = _round_half_up(target_labeled * len(y))
        labeled_rows = rng.permutation(rest)[: min(n_lab, len(rest))]
        present = np.bincount(y[labeled_rows], minlength=n_classes)
        missing = [k for k in range(n_classes) if present[k] == 0]
        if missing:
            k = missing[0]
            raise ValueError(
                f"target_labeled={target_labeled:g} with stratify=False drew no labelled target sample of "
                f"class {_shown(classes, k)} (classes without one: {[classes[m] for m in missing]}). Pass stratify=True, a larger fraction, or an "
                "integer per-class count such as target_labeled=5."
            )
    unlabeled_rows = np.setdiff1d(rest, labeled_rows)
    if len(unlabeled_rows) < 2:
        raise ValueError(
            f"test_size={test_size:g} and target_labeled={target_labeled:g} leave {len(unlabeled_rows)} "
            "target sample(s) unlabelled; target_unlabeled needs at least 2 (MMD and prior estimation "
            "use it). Pass a smaller test_size or target_labeled."
        )
    return np.sort(labeled_rows), unlabeled_rows, np.sort(test_rows)


def split_domains(
    x_source: Any,
    y_source: Any,
    x_target: Any,
    y_target: Any = None,
    *,
    val_size: float = 0.2,
    target_labeled: float = 10,
    test_size: float = 0.5,
    stratify: bool = True,
    seed: int | None = None,
) -> DomainSplits:
    """Split a source and a target domain into the five named sets of a transfer-learning study.

    Args:
        x_source: source inputs `(n, ...)`.
        y_source: source class indices `(n,)` (or one-hot rows).
        x_target: target inputs `(m, ...)`, same per-sample shape as `x_source`.
        y_target: optional target labels. Without them there is no `target_labeled` and no
            `target_test` set (a `UserWarning` says what that limits; see `DomainSplits.limitations`).
        val_size: fraction of each source class held out as `source_val`.
        target_labeled: labelled target samples: an int `k >= 1` takes exactly `k` per class; a float
            in (0, 1) takes that fraction of each class's target samples (rounded half up). Drawn
            after `target_test`, from the rest.
        test_size: fraction of each target class held out as `target_test`.
        stratify: allocate every split per class (see the module docstring). With False the source
            validation set, the test set and a fractional labelled set are drawn at random from
            all samples (an integer `target_labeled` is per class either way).
        seed: seed of every random draw (None: fresh entropy, recorded in `DomainSplits.seed`).

    Returns:
        A `DomainSplits`: disjoint sets; `summary()` shows the counts per class.

    Raises:
        TypeError: non-numeric inputs or labels; a non-number option; a bad seed.
        ValueError: mismatched lengths or feature shapes; options out of range; a class with fewer
            than 2 source samples (stratified); a class present in the target but not in the source;
            a split that leaves a class with no labelled target sample, or asks for more than there
            are (the message names the class and suggests a value); fewer than 2 unlabelled target
            samples.

    Example:
        >>> from shiftkit.datasets import load_scenario
        >>> s = load_scenario("hospitals_covariate", seed=0)
        >>> splits = split_domains(s.x_source, s.y_source, s.x_target, s.y_target, seed=0)
        >>> splits.summary()["n"].tolist()
        [253, 64, 20, 106, 126]
    """
    xs = _inputs(x_source, "x_source")
    ys = _labels(y_source, len(xs), "y_source", "x_source")
    xt = _inputs(x_target, "x_target")
    if xs.shape[1:] != xt.shape[1:]:
        raise ValueError(
            f"x_source and x_target must have the same feature shape: x_source has {xs.shape[1:]} per "
            f"sample, x_target has {xt.shape[1:]}. Select the same columns in both, in the same order."
        )
    yt = None if y_target is None else _labels(y_target, len(xt), "y_target", "x_target")
    val_size = _check_fraction(val_size, "val_size", "0.2")
    test_size = _check_fraction(test_size, "test_size", "0.5")
    target_labeled = _check_target_labeled(target_labeled)
    if isinstance(target_labeled, float) and target_labeled + test_size >= 1:
        raise ValueError(
            f"target_labeled={target_labeled:g} plus test_size={test_size:g} is {target_labeled + test_size:g}: "
            "nothing would be left for target_unlabeled. Make their sum less than 1, e.g. "
            "target_labeled=0.1, test_size=0.5."
        )
    if not isinstance(stratify, (bool, np.bool_)):
        raise TypeError(f"stratify must be True or False; got {stratify!r}.")
    seed = check_seed(seed)

    # Classes are the distinct label values (source and target together, sorted): labels 1..K have K
    # classes, not an empty class 0. The splits return the values as given; codes are internal.
    enc, (ys_code, yt_code) = encode_labels(ys, yt, names=["y_source", "y_target"])
    classes = tuple(enc.classes)
    n_classes = len(classes)
    src_counts = np.bincount(ys_code, minlength=n_classes)
    if yt is not None:
        absent = [classes[k] for k in range(n_classes) if src_counts[k] == 0 and np.any(yt_code == k)]
        if absent:
            raise ValueError(
                f"Class(es) {absent} occur in y_target but never in y_source: a model trained on the "
                "source cannot predict them. Add source samples of those classes or drop them from the target."
            )

    seq = np.random.SeedSequence(seed)
    recorded_seed = int(seq.entropy)
    src_rng, tgt_rng = (np.random.default_rng(s) for s in seq.spawn(2))
    train_rows, val_rows = _split_source(ys_code, val_size, bool(stratify), src_rng, classes)

    limitations: tuple[str, ...] = ()
    if yt is None:
        warnings.warn(_NO_TARGET_LABELS, UserWarning, stacklevel=2)
        limitations = (_NO_TARGET_LABELS,)
        lab_rows = test_rows = np.array([], dtype=np.int64)
        unl_rows = np.arange(len(xt))
    else:
        lab_rows, unl_rows, test_rows = _split_target(
            yt_code, n_classes, target_labeled, test_size, bool(stratify), tgt_rng, classes
        )

    def pair(x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _frozen(x[rows]), _frozen(y[rows])

    indices = {
        "source_train": train_rows,
        "source_val": val_rows,
        "target_labeled": lab_rows,
        "target_unlabeled": unl_rows,
        "target_test": test_rows,
    }
    counts: dict[str, tuple[int, ...] | None] = {
        "source_train": _counts(ys_code[train_rows], n_classes),
        "source_val": _counts(ys_code[val_rows], n_classes),
        "target_labeled": None if yt is None else _counts(yt_code[lab_rows], n_classes),
        "target_unlabeled": None if yt is None else _counts(yt_code[unl_rows], n_classes),
        "target_test": None if yt is None else _counts(yt_code[test_rows], n_classes),
    }
    return DomainSplits(
        source_train=pair(xs, ys, train_rows),
        source_val=pair(xs, ys, val_rows),
        target_labeled=None if yt is None else pair(xt, yt, lab_rows),
        target_unlabeled=_frozen(xt[unl_rows]),
        target_test=None if yt is None else pair(xt, yt, test_rows),
        n_classes=n_classes,
        classes=classes,
        seed=recorded_seed,
        indices={k: _frozen(v.astype(np.int64)) for k, v in indices.items()},
        counts=counts,
        limitations=limitations,
        options={
            "val_size": val_size,
            "target_labeled": target_labeled,
            "test_size": test_size,
            "stratify": bool(stratify),
        },
    )
