"""select_adapter: the risk estimators (reference and Monte Carlo), the choice, the guard, target labels, errors."""

import json

import keras
import numpy as np
import pytest

from shiftkit.adapt import Adapter, register_adapter, unregister_adapter
from shiftkit.adapt.selection import SOURCE_ONLY, _stratified_folds, _weighted_risk, auto_candidates, select_adapter

MU = 1.5  # the target's mean shift (source N(0, 1), target N(MU, 1))


# ------------------------------------------------------------------ a known covariate shift, two fixed models
def _threshold_model(weight: float, bias: float, name: str) -> keras.Model:
    """p(y=1|x) = sigmoid(weight * x + bias): a steep threshold classifier on one feature."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="sigmoid", name="out")], name=name)
    model.get_layer("out").set_weights([np.array([[weight]], "float32"), np.array([bias], "float32")])
    return model


def _rule(x):
    """The true labels: 1 on (0, 2), 0 elsewhere."""
    return ((x[:, 0] > 0) & (x[:, 0] < 2)).astype(int)


def _domains(seed, n=2000):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, 1)).astype("float32")
    xv = rng.normal(size=(n, 1)).astype("float32")
    xt = (rng.normal(size=(n, 1)) + MU).astype("float32")
    xt_test = (rng.normal(size=(n, 1)) + MU).astype("float32")
    return xs, _rule(xs), xv, _rule(xv), xt, xt_test


# Source model A: "x > 0" (right on the source, wrong on the target's x > 2: about 69 % there).
# Candidate B: "x < 2" (wrong on the source's x < 0: 50 % there; about 93 % on the target).
SOURCE_A = _threshold_model(8.0, 0.0, "rule_a")
BETTER_B = _threshold_model(-8.0, 16.0, "rule_b")


class InjectAdapter(Adapter):
    """Test adapter: its 'adapted' model is a fixed model handed in (or the source model, head-perturbed)."""

    name = "inject"
    title = "Test: a fixed model"
    requires = ("x_target",)
    uses = ("x_source", "y_source")

    def __init__(self, source_model, *, noise: float = 0.0, use_b: bool = True):
        super().__init__(source_model)
        self.noise, self.use_b = noise, use_b

    def fit(self, x_source=None, y_source=None, x_target=None, y_target=None, *, seed=None, verbose=0, **kw):
        self.check_fit_data(x_target=x_target)
        model = BETTER_B if self.use_b else self.source_model
        clone = keras.models.clone_model(model)
        weights = [np.array(w) for w in model.get_weights()]
        rng = np.random.default_rng(seed)
        clone.set_weights([w + self.noise * rng.normal(size=w.shape).astype("float32") for w in weights])
        self.model_ = clone
        self.base_, self.head_ = None, clone.get_layer("out")
        return self


class FewShotAdapter(Adapter):
    """Test adapter that needs target labels: records which labelled rows each fit saw."""

    name = "fewshot"
    title = "Test: learns from target labels"
    requires = ("x_target", "y_target")
    fits: list = []

    def fit(self, x_source=None, y_source=None, x_target=None, y_target=None, *, seed=None, verbose=0, **kw):
        self.check_fit_data(x_target=x_target, y_target=y_target)
        FewShotAdapter.fits.append(np.asarray(x_target)[:, 0].copy())
        self.model_ = BETTER_B
        self.base_, self.head_ = None, BETTER_B.get_layer("out")
        return self


@pytest.fixture
def toys():
    register_adapter(InjectAdapter)
    register_adapter(FewShotAdapter)
    FewShotAdapter.fits = []
    yield
    unregister_adapter("inject")
    unregister_adapter("fewshot")


def _true_accuracy(model, x):
    return float(np.mean((model.predict(x, verbose=0)[:, 0] > 0.5).astype(int) == _rule(x)))


# ------------------------------------------------------------------ the estimators
def test_weighted_risk_matches_direct_formulas():
    rng = np.random.default_rng(0)
    w = rng.gamma(2.0, 0.5, size=50)
    loss = rng.uniform(size=50)
    est, se = _weighted_risk(loss, w, "iwv")
    assert est == pytest.approx(np.mean(w * loss)) and se == pytest.approx(np.std(w * loss, ddof=1) / np.sqrt(50))
    eta = -np.cov(w * loss, w)[0, 1] / np.var(w, ddof=1)
    est, se = _weighted_risk(loss, w, "dev")
    assert est == pytest.approx(np.mean(w * loss) + eta * (np.mean(w) - 1.0))
    assert se == pytest.approx(np.std(w * loss + eta * w, ddof=1) / np.sqrt(50))
    assert _weighted_risk(loss, w, "source")[0] == pytest.approx(loss.mean())


def test_dev_is_unbiased_and_has_less_variance_than_iwv_monte_carlo():
    """With the true density ratio, over 400 seeded draws: both estimate the target risk, DEV with less spread."""
    x_big = np.random.default_rng(1).normal(MU, 1.0, size=400_000)
    target_risk = float(np.mean(np.abs(np.sin(x_big)) + 0.1 * x_big**2))  # a smooth per-sample loss
    dev, iwv = [], []
    for seed in range(400):
        x = np.random.default_rng(100 + seed).normal(size=300)
        w = np.exp(MU * x - MU**2 / 2)  # N(MU,1) / N(0,1)
        loss = np.abs(np.sin(x)) + 0.1 * x**2
        dev.append(_weighted_risk(loss, w, "dev")[0])
        iwv.append(_weighted_risk(loss, w, "iwv")[0])
    dev, iwv = np.array(dev), np.array(iwv)
    assert abs(np.median(dev) - target_risk) < 0.1 * target_risk
    assert abs(np.mean(iwv) - target_risk) < 4 * np.std(iwv) / np.sqrt(len(iwv))  # IWV is unbiased
    assert np.std(dev) < 0.8 * np.std(iwv)


def test_stratified_folds_cover_each_class_evenly():
    codes = np.repeat([0, 1, 2], [10, 7, 3])
    folds = _stratified_folds(codes, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    for k, count in ((0, 10), (1, 7), (2, 3)):
        per_fold = [int(np.sum(codes[f] == k)) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == count


# ------------------------------------------------------------------ choosing
@pytest.mark.parametrize("criterion", ["dev", "iwv"])
def test_importance_weighting_finds_the_model_that_is_better_on_the_target(toys, criterion):
    xs, ys, xv, yv, xt, xt_test = _domains(0)
    assert _true_accuracy(BETTER_B, xt_test) > _true_accuracy(SOURCE_A, xt_test) + 0.15  # the premise
    sel = select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, candidates=["inject"],
                         criterion=criterion, seed=0)
    assert sel.chosen == "inject" and sel.adapter is not None
    # The estimated target accuracies are close to the true ones (the weights work).
    assert sel.score_of("inject").accuracy == pytest.approx(_true_accuracy(BETTER_B, xt_test), abs=0.06)
    assert sel.score_of(SOURCE_ONLY).accuracy == pytest.approx(_true_accuracy(SOURCE_A, xt_test), abs=0.06)
    assert 0.02 < sel.ess_fraction < 0.5 and sel.domain_auc > 0.8
    json.dumps(sel.to_dict())  # plain numbers only
    assert "inject" in str(sel)
    # Rescoring the same fits: unweighted, the source model looks best; among none, it is kept.
    unweighted = sel.rescore(criterion="source")
    assert unweighted.chosen == SOURCE_ONLY and unweighted.adapter is None
    assert sel.rescore(among=[]).chosen == SOURCE_ONLY
    assert sel.rescore(loss="error").chosen == "inject"
    with pytest.raises(ValueError, match="among"):
        sel.rescore(among=["dann"])


def test_unweighted_source_loss_keeps_the_source_model(toys):
    """The 'source' criterion ignores the shift: the source model looks best on source data."""
    xs, ys, xv, yv, xt, _ = _domains(1)
    sel = select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, candidates=["inject"],
                         criterion="source", seed=0)
    assert sel.chosen == SOURCE_ONLY and sel.score_of("inject").diff_vs_source_only > 0


def test_guard_keeps_the_source_model_when_a_candidate_is_no_better(toys):
    """A candidate equal to the source model up to negligible noise is not chosen (on 5 seeds)."""
    for seed in range(5):
        xs, ys, xv, yv, xt, _ = _domains(10 + seed)
        tiny = InjectAdapter(SOURCE_A, noise=1e-4, use_b=False)
        sel = select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, candidates=[tiny], seed=seed)
        assert sel.chosen == SOURCE_ONLY, str(sel)
        assert "standard errors" in sel.reason or "No candidate" in sel.reason


def test_a_harmful_candidate_is_never_chosen(toys):
    xs, ys, xv, yv, xt, _ = _domains(2)
    bad = InjectAdapter(SOURCE_A, noise=5.0, use_b=False)
    sel = select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, candidates=[bad, "inject"], seed=3,
                         criterion="dev")
    assert [s.name for s in sel.scores] == [SOURCE_ONLY, "inject", "inject_2"]  # repeated names get a suffix
    assert sel.chosen == "inject_2"
    assert sel.score_of("inject").diff_vs_source_only > 0  # the harmful one scores worse than doing nothing
    assert sel.score_of("inject_2").score < sel.score_of(SOURCE_ONLY).score


def test_held_out_split_when_no_validation_data_is_given(toys):
    xs, ys, _, _, xt, _ = _domains(3)
    sel = select_adapter(SOURCE_A, xs, ys, xt, candidates=["inject"], validation_fraction=0.25, seed=0)
    assert sel.chosen == "inject"


def test_target_labels_cross_validate_adapters_that_learn_from_them(toys):
    xs, ys, xv, yv, xt, xt_test = _domains(4)
    xl, yl = xt_test[:60], _rule(xt_test[:60])
    sel = select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, x_target_labeled=xl,
                         y_target_labeled=yl, candidates=["fewshot"], n_splits=3, seed=0)
    assert sel.criterion == "target_labels" and sel.ess_fraction is None
    assert sel.chosen == "fewshot"
    # 3 folds (each fit saw 2/3 of the labelled rows, never its scored fold) + the refit on all of them.
    assert [len(f) for f in FewShotAdapter.fits] == [40, 40, 40, 60]
    seen_together = np.concatenate(FewShotAdapter.fits[:3])
    assert sorted(np.unique(seen_together).tolist()) == sorted(xl[:, 0].tolist())


def test_supervised_candidate_without_labels_is_left_out_with_a_note(toys):
    xs, ys, xv, yv, xt, _ = _domains(5)
    sel = select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, candidates=["fewshot"], seed=0)
    assert [s.name for s in sel.scores] == [SOURCE_ONLY] and sel.chosen == SOURCE_ONLY
    assert any("needs target labels" in n for n in sel.notes)


def test_auto_candidates_follow_the_diagnosis():
    assert auto_candidates((), has_target_labels=True) == ([], [])
    names, _ = auto_candidates(("covariate",), has_target_labels=False)
    assert "mmd" in names and "coral" in names and "finetune" not in names and "label_shift" not in names
    names, _ = auto_candidates(("label",), has_target_labels=True)
    assert names[0] == "label_shift" and "mmd" not in names and "finetune" in names
    # Label and covariate shift together: prior correction's assumption fails; class-weighted MMD instead.
    names, _ = auto_candidates(("covariate", "label"), has_target_labels=False)
    assert "label_shift" not in names and "mmd_class_weighted" in names and "mmd" in names
    mlp = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    names, notes = auto_candidates(("covariate",), has_target_labels=False, source_model=mlp)
    assert "adabn" not in names and any(n.startswith("adabn") for n in notes)  # no BatchNorm to adapt


def test_auto_with_no_shift_keeps_the_source_model():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1200, 1)).astype("float32")
    y = _rule(x)
    sel = select_adapter(SOURCE_A, x[:400], y[:400], x[800:], x_source_val=x[400:800], y_source_val=y[400:800],
                         seed=0)
    assert sel.kinds == () and [s.name for s in sel.scores] == [SOURCE_ONLY] and sel.chosen == SOURCE_ONLY


def test_bad_arguments(toys):
    xs, ys, xv, yv, xt, _ = _domains(6, n=50)
    kw = dict(x_source_val=xv, y_source_val=yv, candidates=["inject"])
    with pytest.raises(ValueError, match="criterion"):
        select_adapter(SOURCE_A, xs, ys, xt, criterion="magic", **kw)
    with pytest.raises(ValueError, match="Unknown adapter 'nope'"):
        select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, candidates=["nope"])
    with pytest.raises(ValueError, match="both x_source_val and y_source_val"):
        select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, candidates=["inject"])
    with pytest.raises(ValueError, match="n_splits"):
        select_adapter(SOURCE_A, xs, ys, xt, n_splits=1, **kw)
    with pytest.raises(ValueError, match="x_target"):
        select_adapter(SOURCE_A, xs, ys, np.full((5, 1), np.nan, "float32"), **kw)
    with pytest.raises(TypeError, match="candidates"):
        select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, candidates=42)
    with pytest.raises(TypeError, match="keras"):
        select_adapter("model.keras", xs, ys, xt, **kw)


# ------------------------------------------------------------------ AutoAdapter: the choice behind the adapter contract
def test_auto_adapter_predicts_with_the_chosen_model(toys):
    from shiftkit.adapt.auto import AutoAdapter

    xs, ys, xv, yv, xt, xt_test = _domains(8)
    auto = AutoAdapter(SOURCE_A, candidates=["inject"]).fit(xs, ys, xt, x_source_val=xv, y_source_val=yv, seed=0)
    assert auto.chosen_ == "inject" and auto.selection_.chosen == "inject"
    np.testing.assert_array_equal(auto.predict(xt_test), BETTER_B.predict(xt_test, verbose=0))
    assert auto.get_config()["candidates"] == ["inject"]


def test_auto_adapter_source_only_saves_and_reloads(tmp_path):
    """Chosen or not, the fitted AutoAdapter round-trips through save / load_adapter (safe mode) exactly."""
    from shiftkit.adapt import load_adapter
    from shiftkit.adapt.auto import AutoAdapter

    rng = np.random.default_rng(9)
    x = rng.normal(size=(900, 1)).astype("float32")
    y = _rule(x)
    auto = AutoAdapter(SOURCE_A, candidates=["label_shift"]).fit(
        x[:300], y[:300], x[600:], x_source_val=x[300:600], y_source_val=y[300:600], seed=0)
    assert auto.chosen_ == SOURCE_ONLY  # no shift: nothing beats the source model
    np.testing.assert_allclose(auto.predict(x[600:]), SOURCE_A.predict(x[600:], verbose=0), rtol=1e-6)
    path = auto.save(tmp_path / "auto.keras")
    back = load_adapter(path)
    assert back.chosen_ == SOURCE_ONLY and back.selection_dict_["chosen"] == SOURCE_ONLY
    np.testing.assert_array_equal(back.predict(x[600:]), auto.predict(x[600:]))


def test_registry_hands_auto_the_held_out_and_labelled_data():
    from shiftkit.adapt import adapter_names, fit_data, get_adapter
    from shiftkit.adapt.auto import AutoAdapter

    assert get_adapter("auto") is AutoAdapter
    assert "auto" in adapter_names() and "auto" not in adapter_names(default_list=True)
    a, b, c, d = (np.zeros((4, 1)), np.zeros(4), np.ones((3, 1)), np.ones(3))
    data = fit_data(AutoAdapter, source_train=(a, b), source_held_out=(c, d), target_labeled=(c, d),
                    target_unlabeled=a)
    assert set(data) == {"x_source", "y_source", "x_target", "x_source_val", "y_source_val",
                         "x_target_labeled", "y_target_labeled"}
    assert data["x_source_val"] is c and data["x_target"] is a


def test_auto_adapter_bad_settings():
    from shiftkit.adapt.auto import AutoAdapter

    with pytest.raises(TypeError, match="candidates"):
        AutoAdapter(SOURCE_A, candidates=42)
    with pytest.raises(ValueError, match="criterion"):
        AutoAdapter(SOURCE_A, criterion="vibes")
    with pytest.raises(ValueError, match="x_target"):
        AutoAdapter(SOURCE_A).fit(np.zeros((4, 1)), np.zeros(4))


def test_candidates_as_a_dict_name_their_scores(toys):
    xs, ys, xv, yv, xt, _ = _domains(2)
    sel = select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, seed=3, criterion="dev",
                         candidates={"broken": InjectAdapter(SOURCE_A, noise=5.0, use_b=False), "better": "inject"})
    assert [s.name for s in sel.scores] == [SOURCE_ONLY, "broken", "better"] and sel.chosen == "better"
    assert set(sel.fitted) == {SOURCE_ONLY, "broken", "better"}


def test_ensemble_criterion_scores_agreement_with_the_candidates_ensemble_on_the_target(toys):
    """EnsV: pseudo-labels = argmax of the mean target probabilities; a candidate's error = disagreement."""
    from shiftkit._keras import to_probabilities

    xs, ys, xv, yv, xt, _ = _domains(11)
    sel = select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, seed=0, criterion="ensemble",
                         loss="error", candidates={"b1": "inject", "b2": InjectAdapter(SOURCE_A, noise=1e-3)})
    probs = {n: to_probabilities(m, m.predict(xt, verbose=0))
             for n, m in (("source_only", SOURCE_A), ("b1", sel.fitted["b1"].model_), ("b2", sel.fitted["b2"].model_))}
    pseudo = np.mean(list(probs.values()), axis=0).argmax(1)
    for name in ("source_only", "b1", "b2"):
        assert sel.score_of(name).score == pytest.approx(np.mean(probs[name].argmax(1) != pseudo), abs=1e-12)
    # Two of three models say "rule B": the ensemble sides with them, and B is chosen.
    assert sel.chosen in ("b1", "b2")
    # Among source only alone the ensemble is source only itself: nothing to choose.
    assert sel.rescore(among=[]).chosen == SOURCE_ONLY
    assert sel.rescore(criterion="dev").criterion == "dev"  # the same fits, another criterion


def test_ensemble_with_two_candidates_falls_back_to_dev_and_says_so(toys):
    xs, ys, xv, yv, xt, _ = _domains(12)
    sel = select_adapter(SOURCE_A, xs, ys, xt, x_source_val=xv, y_source_val=yv, seed=0, criterion="ensemble",
                         candidates=["inject"])
    assert sel.criterion == "dev" and "needs at least 3 fitted candidates" in sel.reason
    assert sel.chosen == "inject"  # dev finds the better model here (see above)
