"""encode_labels / LabelEncoding: any label values become codes 0..K-1 shared across arrays (issue 9, item 2)."""

import pickle

import numpy as np
import pytest

from shiftkit._validation import LabelEncoding, encode_labels


@pytest.mark.parametrize(
    "source, target, classes, codes_s, codes_t",
    [
        ([1, 2, 2], [2, 1], (1, 2), [0, 1, 1], [1, 0]),  # coded 1..K: no phantom class 0
        (np.array([2019.0, 2020.0]), [2020], (2019, 2020), [0, 1], [1]),  # years: 2 classes, not 2021
        (["malignant", "benign"], ["benign"], ("benign", "malignant"), [1, 0], [0]),
        ([True, False], [False], (False, True), [1, 0], [0]),
        ([[0, 1], [1, 0]], [[1, 0]], (0, 1), [1, 0], [0]),  # one-hot rows
        ([0, 1, 2], [2], (0, 1, 2), [0, 1, 2], [2]),  # already 0..K-1: unchanged
    ],
)
def test_values_become_shared_codes(source, target, classes, codes_s, codes_t):
    enc, (ys, yt) = encode_labels(source, target)
    assert enc.classes == classes
    assert ys.tolist() == codes_s and yt.tolist() == codes_t
    assert ys.dtype == np.int64
    assert enc.decode(ys).tolist() == [classes[k] for k in codes_s]


def test_a_class_seen_only_in_the_target_is_a_class():
    enc, (ys, yt) = encode_labels([3, 3, 5], [7, 5])
    assert enc.classes == (3, 5, 7) and yt.tolist() == [2, 1]


def test_model_outputs_indices_are_kept_and_other_codings_mapped_in_order():
    enc, (ys,) = encode_labels([0, 2], n_outputs=3)  # output indices, class 1 absent: still 3 classes
    assert enc.n_classes == 3 and ys.tolist() == [0, 2]
    enc, (ys, yt) = encode_labels([1, 2], [2], n_outputs=2)  # 1/2 for a 2-output model
    assert enc.classes == (1, 2) and ys.tolist() == [0, 1]
    with pytest.raises(ValueError, match="cannot be matched to the model's 2 output"):
        encode_labels([1, 2, 3], n_outputs=2)


def test_explicit_classes_and_unknown_values():
    enc, (ys,) = encode_labels(["b", "a"], classes=["b", "a", "c"])
    assert ys.tolist() == [0, 1] and enc.n_classes == 3
    with pytest.raises(ValueError, match=r"y_target has label value\(s\) \['z'\]"):
        enc.encode(["z"], "y_target")


@pytest.mark.parametrize(
    "bad, err, match",
    [
        ([1.0, 1.5], ValueError, "fractional"),
        ([1.0, np.nan], ValueError, "NaN"),
        ([], ValueError, "empty"),
        ("abc", TypeError, "single string"),
        (np.array(["a", None], dtype=object), ValueError, "missing labels"),
    ],
)
def test_bad_labels_name_the_argument(bad, err, match):
    with pytest.raises(err, match=match):
        encode_labels(bad, names=["y_source"])


def test_none_is_skipped_as_an_array_but_refused_as_labels():
    enc, (ys, yt) = encode_labels([0, 1], None)
    assert yt is None and ys.tolist() == [0, 1]
    with pytest.raises(TypeError, match="y_target must be an array of class labels, got None"):
        enc.encode(None, "y_target")


def test_too_few_classes_is_a_clear_error():
    with pytest.raises(ValueError, match="y_source and y_target hold 1 class"):
        encode_labels([4, 4], [4], names=["y_source", "y_target"], min_classes=2)


def test_encoding_is_immutable_and_pickles():
    enc, _ = encode_labels(["a", "b"])
    with pytest.raises(AttributeError):
        enc.classes = ("x",)
    again = pickle.loads(pickle.dumps(enc))  # st.cache_data pickles results
    assert again == enc and isinstance(again, LabelEncoding) and again.identity == enc.identity
    assert enc.to_dict() == {"classes": ["a", "b"]}
