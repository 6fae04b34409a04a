"""The pre-deployment check: criteria, thresholds, snapshots."""

import json

import numpy as np
import pytest

from shiftkit.check import Reference, check_shift
from shiftkit.datasets import load_scenario


@pytest.fixture(scope="module")
def covariate():
    return load_scenario("hospitals_covariate", seed=0)


def test_no_shift_passes_and_shift_fails(covariate):
    s = load_scenario("hospitals_no_shift", seed=0)
    ok = check_shift(s.x_source, s.x_target, s.y_target, y_reference=s.y_source, seed=0, n_permutations=300)
    assert ok.passed and not ok.failed
    bad = check_shift(covariate.x_source, covariate.x_target, covariate.y_target, y_reference=covariate.y_source,
                      seed=0, n_permutations=300)
    assert not bad.passed
    assert {c.name for c in bad.failed} == {"input-space MMD", "label shift"}
    assert "FAIL" in bad.summary() and "input-space MMD" in bad.summary()
    d = json.loads(bad.to_json())
    assert d["passed"] is False and d["failed_criteria"] == ["input-space MMD", "label shift"]
    assert d["diagnosis"]["recommendation"]


def test_each_threshold_flips_the_verdict(covariate):
    kw = dict(y_reference=covariate.y_source, seed=0, n_permutations=200, diagnose_shift=False)
    xs, xt, yt = covariate.x_source, covariate.x_target, covariate.y_target
    # label shift: TV is 0.286 here
    assert check_shift(xs, xt, yt, max_label_shift=0.3, **kw).criteria[1].passed
    assert not check_shift(xs, xt, yt, max_label_shift=0.25, **kw).criteria[1].passed
    # imbalance: the target ratio is 1.14
    assert check_shift(xs, xt, yt, max_imbalance_ratio=1.2, **kw).criteria[-1].passed
    assert not check_shift(xs, xt, yt, max_imbalance_ratio=1.1, **kw).criteria[-1].passed
    # alpha: a tiny alpha cannot be reached with 200 permutations (min p = 1/201)
    assert check_shift(xs, xt, yt, alpha=0.001, **kw).criteria[0].passed
    assert not check_shift(xs, xt, yt, alpha=0.01, **kw).criteria[0].passed


def test_snapshot_check_equals_full_reference_check(covariate, tmp_path):
    xs, ys = covariate.x_source, covariate.y_source
    ref = Reference.from_data(xs, ys, max_samples=150, seed=3)
    path = ref.save(tmp_path / "ref.npz")
    with np.load(path, allow_pickle=False) as arrays:  # plain arrays only
        assert Reference.is_snapshot(arrays)
    loaded = Reference.load(path)
    assert loaded.x.shape == (150, 30) and loaded.n_reference == len(xs)
    via_snapshot = check_shift(loaded, covariate.x_target, covariate.y_target, max_samples=150, seed=3,
                               n_permutations=200, diagnose_shift=False)
    via_full = check_shift(xs, covariate.x_target, covariate.y_target, y_reference=ys, max_samples=150, seed=3,
                           n_permutations=200, diagnose_shift=False)
    assert via_snapshot.to_dict()["criteria"] == via_full.to_dict()["criteria"]


def test_snapshot_with_model_estimates_priors(tmp_path):
    import keras

    s = load_scenario("hospitals_label_shift", seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((30,)), keras.layers.Normalization(), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.layers[0].adapt(s.x_source)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(s.x_source[:150], s.y_source[:150], epochs=30, verbose=0)
    ref = Reference.from_data(s.x_source[150:], s.y_source[150:], model=model, seed=0)
    Reference.load(ref.save(tmp_path / "m.npz"))
    res = check_shift(ref, s.x_target, model=model, seed=0, n_permutations=200, diagnose_shift=False)
    names = [c.name for c in res.criteria]
    assert names == ["input-space MMD", "feature-space MMD", "label shift"]
    label = res.criteria[2]
    assert not label.passed and "estimated" in label.detail
    assert res.report.labels.target_proportions[0] == pytest.approx(0.70, abs=0.1)


def test_bad_input(covariate, tmp_path):
    with pytest.raises(ValueError, match="per-sample shape"):
        check_shift(covariate.x_source, covariate.x_target[:, :5])
    with pytest.raises(ValueError, match="max_label_shift"):
        check_shift(covariate.x_source, covariate.x_target, max_label_shift=2)
    bad = tmp_path / "x.npz"
    np.savez(bad, x=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not a shiftkit snapshot"):
        Reference.load(bad)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="Could not read the snapshot"):
        Reference.load(tmp_path / "junk.npz")
