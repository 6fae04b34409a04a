"""Domain-classifier two-sample test: level under the null, power, AUC definition."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from shiftkit.shift.classifier import classifier_test


def test_level_under_null():
    rng = np.random.default_rng(0)
    rejections = sum(
        classifier_test(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), classifier="logistic", seed=i).is_shift
        for i in range(150)
    )
    assert rejections / 150 <= 0.09


def test_level_with_several_splits():
    rng = np.random.default_rng(4)
    rejections = sum(
        classifier_test(rng.normal(size=(60, 3)), rng.normal(size=(60, 3)), classifier="logistic",
                        n_splits=3, seed=i).is_shift
        for i in range(100)
    )
    assert rejections / 100 <= 0.09


def test_power_and_auc_definition():
    rng = np.random.default_rng(1)
    xs, xt = rng.normal(size=(300, 5)), rng.normal(size=(300, 5))
    xt[:, 0] += 0.6
    res = classifier_test(xs, xt, classifier="logistic", seed=0)
    assert res.is_shift and res.auc > res.threshold > 0.5
    # direct reference: the same stratified split, a fresh model, sklearn's AUC on the held-out half
    z, d = np.r_[xs, xt], np.r_[np.zeros(300), np.ones(300)]
    train, test = train_test_split(np.arange(600), test_size=0.5, stratify=d, random_state=0)
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(z[train], d[train])
    assert res.auc == pytest.approx(roc_auc_score(d[test], clf.predict_proba(z[test])[:, 1]))


def test_nonlinear_shift_found_by_gbm():
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(300, 2))
    xt = rng.normal(size=(300, 2)) * np.array([1.0, 2.0])  # variance change: same mean
    assert classifier_test(xs, xt, seed=0).is_shift
    assert not classifier_test(xs, xt, classifier="logistic", seed=0).is_shift  # a linear model is blind to it


def test_bad_input():
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="at least 2 training and 2 held-out"):
        classifier_test(rng.normal(size=(3, 2)), rng.normal(size=(30, 2)))
    with pytest.raises(ValueError, match="classifier must be"):
        classifier_test(rng.normal(size=(30, 2)), rng.normal(size=(30, 2)), classifier="svm")
    with pytest.raises(ValueError, match="test_size"):
        classifier_test(rng.normal(size=(30, 2)), rng.normal(size=(30, 2)), test_size=1.5)
