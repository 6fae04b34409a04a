"""Tests of shiftkit.datasets: built-in scenarios with a known truth (fast, no TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage, stats
from sklearn.datasets import load_breast_cancer, load_digits

from shiftkit import datasets
from shiftkit.datasets import (
    CORRUPTIONS,
    SCENARIOS,
    SHIFT_KINDS,
    Scenario,
    digits_corrupted,
    hospitals_covariate,
    hospitals_label_shift,
    hospitals_no_shift,
    load_scenario,
)

ALL_CASES = [(name, {}) for name in SCENARIOS] + [
    ("digits_corrupted", {"corruption": c}) for c in CORRUPTIONS if c != "noise"
]


def _rows_as_set(x: np.ndarray) -> set[bytes]:
    x = np.ascontiguousarray(x.reshape(x.shape[0], -1))
    return {row.tobytes() for row in x}


def _total_variation(x: np.ndarray) -> np.ndarray:
    img = x[..., 0]
    return np.abs(np.diff(img, axis=1)).sum(axis=(1, 2)) + np.abs(np.diff(img, axis=2)).sum(axis=(1, 2))


# ------------------------------------------------------------------ generic properties


@pytest.mark.parametrize("name,kwargs", ALL_CASES)
def test_shapes_labels_and_finiteness(name, kwargs):
    s = load_scenario(name, seed=0, **kwargs)
    assert isinstance(s, Scenario)
    assert s.name == name
    assert s.shift_kind in SHIFT_KINDS
    assert s.x_source.ndim >= 2 and s.x_source.shape[1:] == s.x_target.shape[1:]
    assert s.y_source.shape == (s.x_source.shape[0],)
    assert s.y_target.shape == (s.x_target.shape[0],)
    assert s.y_source.dtype == np.int64 and s.y_target.dtype == np.int64
    assert s.x_source.dtype in (np.float32, np.float64)
    for y in (s.y_source, s.y_target):
        assert y.min() >= 0 and y.max() < s.n_classes
        assert set(np.unique(y)) == set(range(s.n_classes))
    assert np.isfinite(s.x_source).all() and np.isfinite(s.x_target).all()
    if s.feature_names is not None:
        assert len(s.feature_names) == s.x_source.shape[1]
    assert 2 <= s.description.count(". ") + 1 <= 6
    assert s.source_index.shape == s.y_source.shape
    assert s.target_index.shape == s.y_target.shape


@pytest.mark.parametrize("name,kwargs", ALL_CASES)
def test_deterministic_for_a_seed_and_different_across_seeds(name, kwargs):
    a = load_scenario(name, seed=3, **kwargs)
    b = load_scenario(name, seed=3, **kwargs)
    c = load_scenario(name, seed=4, **kwargs)
    for field in ("x_source", "y_source", "x_target", "y_target"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.truth == b.truth
    assert not np.array_equal(a.source_index, c.source_index)
    assert a.x_target.shape != c.x_target.shape or not np.array_equal(a.x_target, c.x_target)


@pytest.mark.parametrize("name,kwargs", ALL_CASES)
def test_source_and_target_are_disjoint(name, kwargs):
    s = load_scenario(name, seed=0, **kwargs)
    assert not set(s.source_index.tolist()) & set(s.target_index.tolist())
    if name.startswith("hospitals"):
        # No patient in both hospitals, checked on the feature rows themselves.
        assert not _rows_as_set(s.x_source) & _rows_as_set(s.x_target)


@pytest.mark.parametrize("name,kwargs", ALL_CASES)
def test_rows_come_from_the_original_dataset(name, kwargs):
    s = load_scenario(name, seed=0, **kwargs)
    if name.startswith("hospitals"):
        data = load_breast_cancer()
        np.testing.assert_array_equal(s.x_source, data.data[s.source_index])
        np.testing.assert_array_equal(s.x_target, data.data[s.target_index])
        np.testing.assert_array_equal(s.y_target, data.target[s.target_index])
    else:
        data = load_digits()
        clean = (data.images / 16.0)[..., None].astype(np.float32)
        np.testing.assert_array_equal(s.x_source, clean[s.source_index])
        # Labels untouched by the corruption.
        np.testing.assert_array_equal(s.y_target, data.target[s.target_index])
    np.testing.assert_array_equal(s.y_source, data.target[s.source_index])


@pytest.mark.parametrize("name,kwargs", ALL_CASES)
def test_to_dict_and_summary_leave_out_arrays(name, kwargs):
    s = load_scenario(name, seed=0, **kwargs)
    d = s.to_dict()
    json.dumps(d)  # plain types only
    assert d["name"] == name and d["shift_kind"] == s.shift_kind
    assert d["x_source_shape"] == list(s.x_source.shape)
    assert d["x_target_shape"] == list(s.x_target.shape)
    assert d["truth"]["seed"] == 0
    assert not any(isinstance(v, np.ndarray) for v in d.values())
    text = s.summary()
    assert name in text and s.shift_kind in text
    assert "array(" not in repr(s)


def test_scenario_is_frozen():
    s = hospitals_no_shift()
    with pytest.raises(AttributeError):
        s.name = "other"  # type: ignore[misc]


def test_each_scenario_is_fast():
    import time

    load_scenario("hospitals_no_shift")  # warm the sklearn import and the data cache
    load_scenario("digits_corrupted")
    for name, kwargs in ALL_CASES:
        start = time.perf_counter()
        load_scenario(name, seed=1, **kwargs)
        assert time.perf_counter() - start < 1.0, name


# ------------------------------------------------------------------ hospitals


def test_hospitals_covariate_moves_the_selection_feature():
    s = hospitals_covariate(seed=0)
    assert s.shift_kind == "covariate"
    j = s.feature_names.index("mean radius")
    t = stats.ttest_ind(s.x_target[:, j], s.x_source[:, j], equal_var=False)
    assert t.pvalue < 1e-6 and t.statistic > 0  # larger tumours in the target
    truth = s.truth
    assert truth["selection_feature"] == "mean radius"
    assert truth["target_feature_mean"] > truth["source_feature_mean"]
    # The selection on size also raises the malignant prevalence; both are reported honestly.
    assert truth["target_malignant_prevalence"] > truth["source_malignant_prevalence"]
    assert truth["source_malignant_prevalence"] == pytest.approx(np.mean(s.y_source == 0))
    assert truth["target_malignant_prevalence"] == pytest.approx(np.mean(s.y_target == 0))
    assert s.x_source.shape[0] + s.x_target.shape[0] == 569
    assert "prevalence" in s.description


def test_hospitals_covariate_other_feature_and_strength():
    weak = hospitals_covariate(seed=0, strength=0.5, feature="Mean Texture")
    strong = hospitals_covariate(seed=0, strength=3.0, feature="mean texture")
    j = weak.feature_names.index("mean texture")
    gap = lambda s: s.x_target[:, j].mean() - s.x_source[:, j].mean()  # noqa: E731
    assert 0 < gap(weak) < gap(strong)
    assert hospitals_covariate(seed=0, strength=0).shift_kind == "none"
    with pytest.raises(ValueError, match="mean radius"):
        hospitals_covariate(feature="tumour size")
    with pytest.raises(TypeError, match="strength"):
        hospitals_covariate(strength="high")


@pytest.mark.parametrize("prevalence", [0.7, 0.2, 0.5])
def test_hospitals_label_shift_prevalence(prevalence):
    s = hospitals_label_shift(seed=0, target_prevalence=prevalence)
    assert s.shift_kind == "label"
    assert np.mean(s.y_target == 0) == pytest.approx(prevalence, abs=0.03)
    assert np.mean(s.y_source == 0) == pytest.approx(212 / 569, abs=0.01)
    assert s.truth["target_malignant_prevalence"] == pytest.approx(np.mean(s.y_target == 0))
    assert s.truth["with_replacement"] is False
    assert len(np.unique(s.target_index)) == len(s.target_index)
    w = s.truth["label_weights"]
    assert w["malignant"] == pytest.approx(np.mean(s.y_target == 0) / np.mean(s.y_source == 0))


def test_hospitals_label_shift_keeps_class_conditionals():
    s = hospitals_label_shift(seed=0, target_prevalence=0.7)
    for k in (0, 1):
        xs, xt = s.x_source[s.y_source == k], s.x_target[s.y_target == k]
        p = stats.ttest_ind(xs, xt, axis=0, equal_var=False).pvalue
        assert np.mean(p < 1e-3) <= 0.1, (k, np.sort(p)[:5])
    # ... while the pooled inputs do move, through the changed class mix.
    p_pooled = stats.ttest_ind(s.x_source, s.x_target, axis=0, equal_var=False).pvalue
    assert np.min(p_pooled) < 1e-3


def test_hospitals_label_shift_with_replacement_and_bad_input():
    s = hospitals_label_shift(seed=0, target_prevalence=0.7, n_target=300)
    assert s.x_target.shape[0] == 300 and s.truth["with_replacement"] is True
    assert np.mean(s.y_target == 0) == pytest.approx(0.7, abs=0.01)
    assert not set(s.source_index.tolist()) & set(s.target_index.tolist())
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="target_prevalence"):
            hospitals_label_shift(target_prevalence=bad)
    with pytest.raises(TypeError, match="target_prevalence"):
        hospitals_label_shift(target_prevalence="70%")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hospitals_no_shift_is_a_fair_split(seed):
    s = hospitals_no_shift(seed=seed)
    assert s.shift_kind == "none"
    assert abs(s.x_source.shape[0] - s.x_target.shape[0]) <= 2
    assert np.mean(s.y_source == 0) == pytest.approx(np.mean(s.y_target == 0), abs=0.05)
    p = stats.ttest_ind(s.x_source, s.x_target, axis=0, equal_var=False).pvalue
    assert np.all(p > 0.05 / s.x_source.shape[1])  # Bonferroni over 30 features


# ------------------------------------------------------------------ digits


def test_digits_shapes_and_range():
    s = digits_corrupted(seed=0)
    assert s.x_source.shape[1:] == (8, 8, 1) and s.x_source.dtype == np.float32
    assert s.x_source.shape[0] + s.x_target.shape[0] == 1797
    assert s.n_classes == 10 and s.class_names == tuple("0123456789")
    assert s.shift_kind == "covariate" and s.feature_names is None
    for x in (s.x_source, s.x_target):
        assert x.min() >= 0.0 and x.max() <= 1.0
    for k in range(10):
        assert np.mean(s.y_source == k) == pytest.approx(np.mean(s.y_target == k), abs=0.01)


def test_digits_noise_raises_border_variance():
    s = digits_corrupted(seed=0, corruption="noise", severity=3)
    border_s, border_t = s.x_source[:, :, 0, 0], s.x_target[:, :, 0, 0]  # left column, ~always blank
    assert border_t.var() > 10 * border_s.var() + 1e-3
    assert s.truth["noise_std"] > 0
    assert "noise" in s.description


def test_digits_blur_lowers_total_variation():
    s = digits_corrupted(seed=0, corruption="blur", severity=3)
    clean = (load_digits().images / 16.0)[..., None][s.target_index]
    assert np.all(_total_variation(s.x_target) < _total_variation(clean))
    assert _total_variation(s.x_target).mean() < 0.8 * _total_variation(s.x_source).mean()
    expected = ndimage.gaussian_filter(clean, sigma=(0, 0.8, 0.8, 0), mode="constant")
    np.testing.assert_allclose(s.x_target, expected, atol=1e-6)
    assert "defocused" in s.description


def test_digits_contrast_reduces_range():
    s = digits_corrupted(seed=0, corruption="contrast", severity=3)
    range_s = s.x_source.max(axis=(1, 2, 3)) - s.x_source.min(axis=(1, 2, 3))
    range_t = s.x_target.max(axis=(1, 2, 3)) - s.x_target.min(axis=(1, 2, 3))
    assert range_t.max() <= s.truth["contrast_factor"] + 1e-6 < range_s.mean()
    assert s.x_target.min() >= s.truth["brightness_offset"] - 1e-6  # brighter background
    clean = (load_digits().images / 16.0)[..., None][s.target_index]
    np.testing.assert_allclose(s.x_target, 0.55 * clean + 0.15, atol=1e-6)


def test_digits_mixed_uses_all_three():
    s = digits_corrupted(seed=0, corruption="mixed")
    counts = s.truth["mixed_counts"]
    assert set(counts) == {"noise", "blur", "contrast"}
    assert sum(counts.values()) == s.x_target.shape[0] and min(counts.values()) > 200


def test_digits_severity_orders_the_damage():
    clean = (load_digits().images / 16.0)[..., None]
    errors = []
    for severity in range(1, 6):
        s = digits_corrupted(seed=0, corruption="noise", severity=severity)
        errors.append(np.abs(s.x_target - clean[s.target_index]).mean())
    assert errors == sorted(errors)
    for bad in (0, 6):
        with pytest.raises(ValueError, match="severity"):
            digits_corrupted(severity=bad)


# ------------------------------------------------------------------ bad input


def test_unknown_scenario_lists_the_options():
    with pytest.raises(ValueError) as info:
        load_scenario("hospital")
    for name in SCENARIOS:
        assert name in str(info.value)


def test_unknown_corruption_lists_the_options():
    with pytest.raises(ValueError) as info:
        digits_corrupted(corruption="rain")
    for name in CORRUPTIONS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="noise"):
        load_scenario("digits_corrupted", corruption="rain")


@pytest.mark.parametrize("seed,error", [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)])
def test_bad_seed_is_an_error(seed, error):
    for name in SCENARIOS:
        with pytest.raises(error, match="seed"):
            load_scenario(name, seed=seed)


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(TypeError, match="strength"):
        load_scenario("hospitals_covariate", severity=3)
    with pytest.raises(TypeError, match="none besides seed"):
        load_scenario("hospitals_no_shift", strength=1.0)


def test_load_scenario_matches_the_functions_and_is_case_insensitive():
    a = load_scenario("Hospitals_Label_Shift", seed=5, target_prevalence=0.6)
    b = hospitals_label_shift(seed=5, target_prevalence=0.6)
    np.testing.assert_array_equal(a.x_target, b.x_target)
    assert set(datasets.__all__) >= {"Scenario", "SCENARIOS", "load_scenario", *SCENARIOS}


def test_module_does_not_import_tensorflow():
    # `import shiftkit` itself may load Keras (the package __init__); this package must not add to it.
    import ast
    import importlib
    import inspect
    import pkgutil

    modules = [datasets] + [importlib.import_module(f"shiftkit.datasets.{m.name}")
                            for m in pkgutil.iter_modules(datasets.__path__)]
    assert len(modules) >= 5  # __init__, scenario, hospitals, digits, synthetic
    imported = set()
    for module in modules:
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"tensorflow", "keras", "torch", "jax"}, imported
    for name in datasets.__all__:  # the split package keeps every public name where it was
        assert getattr(datasets, name) is not None


@pytest.mark.parametrize("kind", ["none", "covariate", "label", "concept"])
def test_synthetic_shift_has_exactly_its_kind(kind):
    from scipy import stats

    from shiftkit.datasets import synthetic_shift

    s = synthetic_shift(seed=0, kind=kind, n_source=4000, n_target=4000)
    assert s.shift_kind == kind and s.x_source.shape == (4000, 5)
    # p(y): moves only for label shift
    prevalence_gap = abs(s.y_target.mean() - s.y_source.mean())
    assert (prevalence_gap > 0.2) if kind == "label" else (prevalence_gap < 0.04)
    # p(x2): moves only for covariate shift
    p_x2 = stats.ttest_ind(s.x_source[:, 2], s.x_target[:, 2]).pvalue
    assert (p_x2 < 1e-10) if kind == "covariate" else (p_x2 > 1e-4)
    # p(y | x0 > 1): the labelling rule moves only for concept shift
    rule_s = s.y_source[s.x_source[:, 0] > 1].mean()
    rule_t = s.y_target[s.x_target[:, 0] > 1].mean()
    assert (abs(rule_s - rule_t) > 0.3) if kind == "concept" else (abs(rule_s - rule_t) < 0.1)
    assert synthetic_shift(seed=0, kind=kind, strength=0).shift_kind == "none"
