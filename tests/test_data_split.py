"""split_domains: disjoint, stratified, seeded named splits; clear errors for splits that cannot work."""

import dataclasses
import warnings

import numpy as np
import pytest

from shiftkit.data import SPLIT_NAMES, DomainSplits, split_domains


def _domains(seed=0, n_source=(120, 80, 40), n_target=(60, 50, 30), d=4):
    """Three classes; class sizes differ between domains (imbalance on purpose)."""
    rng = np.random.default_rng(seed)
    ys = np.repeat(np.arange(len(n_source)), n_source)
    yt = np.repeat(np.arange(len(n_target)), n_target)
    rng.shuffle(ys)
    rng.shuffle(yt)
    xs = rng.normal(size=(len(ys), d)) + ys[:, None]
    xt = rng.normal(size=(len(yt), d)) + yt[:, None] + 0.5
    # a row id in column 0 lets the tests check which rows went where
    xs[:, 0] = np.arange(len(ys))
    xt[:, 0] = 1000 + np.arange(len(yt))
    return xs, ys, xt, yt


def _half_up(x):
    return int(np.floor(x + 0.5))


@pytest.fixture(scope="module")
def data():
    return _domains()


@pytest.fixture(scope="module")
def splits(data):
    xs, ys, xt, yt = data
    return split_domains(xs, ys, xt, yt, val_size=0.25, target_labeled=5, test_size=0.4, seed=3)


def test_disjoint_and_complete(data, splits):
    xs, ys, xt, yt = data
    idx = splits.indices
    src = [set(idx["source_train"]), set(idx["source_val"])]
    tgt = [set(idx["target_labeled"]), set(idx["target_unlabeled"]), set(idx["target_test"])]
    for group, n in ((src, len(xs)), (tgt, len(xt))):
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                assert not a & b
        assert set().union(*group) == set(range(n))
    # the arrays are the rows the indices name, with their labels
    np.testing.assert_array_equal(splits.source_train[0], xs[idx["source_train"]])
    np.testing.assert_array_equal(splits.source_val[1], ys[idx["source_val"]])
    np.testing.assert_array_equal(splits.target_labeled[0], xt[idx["target_labeled"]])
    np.testing.assert_array_equal(splits.target_unlabeled, xt[idx["target_unlabeled"]])
    np.testing.assert_array_equal(splits.target_test[1], yt[idx["target_test"]])
    # no row id appears in two splits
    ids = np.concatenate([splits.target_labeled[0][:, 0], splits.target_unlabeled[:, 0], splits.target_test[0][:, 0]])
    assert len(np.unique(ids)) == len(xt)


def test_stratified_counts(data, splits):
    _, ys, _, yt = data
    for k in range(3):
        n_k = int(np.sum(ys == k))
        assert splits.counts["source_val"][k] == _half_up(0.25 * n_k)
        assert splits.counts["source_train"][k] == n_k - _half_up(0.25 * n_k)
        m_k = int(np.sum(yt == k))
        assert splits.counts["target_test"][k] == _half_up(0.4 * m_k)
    assert splits.counts["target_labeled"] == (5, 5, 5)
    np.testing.assert_array_equal(np.bincount(splits.target_labeled[1], minlength=3), [5, 5, 5])
    # the withheld labels are counted for reporting, and add up
    total = np.add(splits.counts["target_labeled"], splits.counts["target_unlabeled"])
    total = np.add(total, splits.counts["target_test"])
    np.testing.assert_array_equal(total, np.bincount(yt))


def test_summary_and_dict(splits):
    frame = splits.summary()
    assert list(frame.index) == list(SPLIT_NAMES)
    assert frame.loc["target_labeled", "n"] == 15
    assert frame.loc["target_unlabeled", "labels"] == "withheld"
    assert frame.loc["target_labeled", ["class 0", "class 1", "class 2"]].tolist() == [5, 5, 5]
    assert splits.to_dict()["sizes"] == splits.sizes()
    assert "target_test" in str(splits) and "DomainSplits(" in repr(splits)


def test_fraction_mode(data):
    xs, ys, xt, yt = data
    s = split_domains(xs, ys, xt, yt, target_labeled=0.2, test_size=0.5, seed=0)
    for k in range(3):
        m_k = int(np.sum(yt == k))
        assert s.counts["target_labeled"][k] == _half_up(0.2 * m_k)
        assert s.counts["target_test"][k] == _half_up(0.5 * m_k)
    assert s.options["target_labeled"] == 0.2
    # an integral float is read as a per-class count
    s10 = split_domains(xs, ys, xt, yt, target_labeled=4.0, seed=0)
    assert s10.counts["target_labeled"] == (4, 4, 4)


def test_seeds(data):
    xs, ys, xt, yt = data
    a = split_domains(xs, ys, xt, yt, seed=1)
    b = split_domains(xs, ys, xt, yt, seed=1)
    c = split_domains(xs, ys, xt, yt, seed=2)
    for name in SPLIT_NAMES:
        np.testing.assert_array_equal(a.indices[name], b.indices[name])
    assert any(not np.array_equal(a.indices[n], c.indices[n]) for n in SPLIT_NAMES)
    # seed=None draws fresh entropy and records it: the split can be rebuilt
    fresh = split_domains(xs, ys, xt, yt)
    again = split_domains(xs, ys, xt, yt, seed=fresh.seed)
    for name in SPLIT_NAMES:
        np.testing.assert_array_equal(fresh.indices[name], again.indices[name])
    # target options never move the source split
    d = split_domains(xs, ys, xt, yt, target_labeled=3, test_size=0.3, seed=1)
    np.testing.assert_array_equal(a.indices["source_val"], d.indices["source_val"])


def test_arrays_are_read_only(splits):
    assert isinstance(splits, DomainSplits)
    with pytest.raises(ValueError):
        splits.source_train[0][0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        splits.seed = 5


def test_unstratified(data):
    xs, ys, xt, yt = data
    s = split_domains(xs, ys, xt, yt, stratify=False, target_labeled=3, seed=0)
    assert s.sizes()["source_val"] == _half_up(0.2 * len(xs))
    assert s.sizes()["target_test"] == _half_up(0.5 * len(xt))
    assert s.counts["target_labeled"] == (3, 3, 3)  # an integer is per class either way


def test_no_labelled_sample_error_names_class_and_suggests(data):
    xs, ys, xt, yt = data
    # class 2 has 30 target samples: 0.01 x 30 rounds to 0
    with pytest.raises(ValueError, match=r"class 2 with no labelled target sample") as info:
        split_domains(xs, ys, xt, yt, target_labeled=0.01, seed=0)
    assert "target_labeled=0.02" in str(info.value)
    # asking for more per class than there is (class 2: 30 samples, 15 kept for the test set)
    with pytest.raises(ValueError, match=r"class 2.*Pass target_labeled=15 or less"):
        split_domains(xs, ys, xt, yt, target_labeled=20, seed=0)
    # a class that has a single target sample: the test set takes it
    yt1 = yt.copy()
    yt1[yt1 == 2] = 1
    yt1[0] = 2
    with pytest.raises(ValueError, match=r"leaves class 2 with no labelled target sample.*smaller test_size"):
        split_domains(xs, ys, xt, yt1, target_labeled=1, seed=0)
    # a class absent from the target: no value can help, the message says what can
    yt2 = np.where(yt == 2, 1, yt)
    with pytest.raises(ValueError, match=r"Class 2 has no sample in y_target"):
        split_domains(xs, ys, xt, yt2, seed=0)


def test_without_target_labels_warns_and_limits(data):
    xs, ys, xt, _ = data
    with pytest.warns(UserWarning, match="no target_labeled and no target_test"):
        s = split_domains(xs, ys, xt, seed=0)
    assert s.target_labeled is None and s.target_test is None and not s.has_target_labels
    assert len(s.target_unlabeled) == len(xt)
    assert s.limitations and "CopyAdapter" in s.limitations[0]
    assert s.summary().loc["target_test", "labels"] == "absent"
    assert s.counts["target_unlabeled"] is None


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        ({"val_size": 1.5}, ValueError, "val_size"),
        ({"val_size": "0.2"}, TypeError, "val_size"),
        ({"test_size": 0.0}, ValueError, "test_size"),
        ({"target_labeled": 0}, ValueError, "target_labeled"),
        ({"target_labeled": "10"}, TypeError, "target_labeled"),
        ({"target_labeled": 0.6, "test_size": 0.5}, ValueError, "nothing would be left"),
        ({"stratify": "yes"}, TypeError, "stratify"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_options(data, kwargs, exc, pattern):
    xs, ys, xt, yt = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc, match=pattern):
            split_domains(xs, ys, xt, yt, **kwargs)


def test_too_few_unlabelled():
    xs, ys, xt, yt = _domains(n_target=(10, 10, 10))
    # 1 test sample per class, 9 labelled per class: nothing left unlabelled
    with pytest.raises(ValueError, match="leave 0 target sample.*target_unlabeled needs at least 2"):
        split_domains(xs, ys, xt, yt, target_labeled=9, test_size=0.1, seed=0)


def test_bad_data(data):
    xs, ys, xt, yt = data
    with pytest.raises(ValueError, match="y_source has 199 labels"):
        split_domains(xs, ys[:-41], xt, yt)
    with pytest.raises(ValueError, match="same feature shape"):
        split_domains(xs, ys, xt[:, :3], yt)
    with pytest.raises(TypeError, match="x_target"):
        split_domains(xs, ys, "not an array", yt)
    with pytest.raises(ValueError, match=r"x_source contains 1 NaN"):
        bad = xs.copy()
        bad[3, 1] = np.nan
        split_domains(bad, ys, xt, yt)
    ys_new = ys.copy()
    ys_new[ys_new == 2] = 1
    with pytest.raises(ValueError, match=r"\[2\] occur in y_target but never in y_source"):
        split_domains(xs, ys_new, xt, yt)
    ys_one = ys.copy()
    ys_one[ys_one == 2] = 1
    ys_one[0] = 2
    with pytest.raises(ValueError, match="Class 2 has 1 sample in y_source"):
        split_domains(xs, ys_one, xt, np.where(yt == 2, 0, yt))


def test_subsample_rows_is_the_one_seeded_row_subsample():
    from shiftkit.data import subsample_rows

    rows = subsample_rows(1000, 100, seed=3)
    assert len(rows) == 100 and np.all(np.diff(rows) > 0) and rows.max() < 1000  # sorted, distinct
    np.testing.assert_array_equal(rows, subsample_rows(1000, 100, seed=3))  # seeded
    assert not np.array_equal(rows, subsample_rows(1000, 100, seed=4))
    # the draw `shiftkit check` snapshots were made with (numpy's choice without replacement, sorted)
    np.testing.assert_array_equal(rows, np.sort(np.random.default_rng(3).choice(1000, size=100, replace=False)))
    np.testing.assert_array_equal(subsample_rows(50, 100, seed=0), np.arange(50))  # every row when it fits
    np.testing.assert_array_equal(subsample_rows(50, None, seed=0), np.arange(50))
