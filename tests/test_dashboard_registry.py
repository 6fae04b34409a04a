"""issue 10: the dashboard lists and runs adapters from the one registry (`shiftkit.adapt.registry`).

Adding an adapter takes one class and one registry line; it then appears in the dashboard's adapter
list and runs through the dashboard's adaptation step, fed the data it declares. Adapters whose
declared data the page's domains lack are named unavailable, with the reason.
"""

import pathlib

import keras
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from shiftkit import dashboard as dash
from shiftkit.adapt import Adapter, adapter_names, get_adapter, register_adapter, unregister_adapter
from shiftkit.dashboard import DashboardError
from shiftkit.files import Domains

APP = str(pathlib.Path(__file__).resolve().parents[1] / "app.py")


class ToyAdapter(Adapter):
    """The smallest adapter: the source model itself, recording the data it was given."""

    name = "toy"
    title = "Toy: the source model, unchanged"
    requires = ("x_target",)

    def fit(self, x_source=None, y_source=None, x_target=None, y_target=None, *, epochs=None, verbose="auto",
            callbacks=None, seed=None, **options):
        self.check_fit_data(x_source=x_source, y_source=y_source, x_target=x_target, y_target=y_target)
        self.seen_ = {"x_source": x_source, "y_source": y_source, "x_target": x_target, "y_target": y_target,
                      "epochs": epochs, "seed": seed, "options": options}
        self._build()
        return self


class HeldOutToy(ToyAdapter):
    """A toy that declares labelled, held-out source data (as label-shift correction does)."""

    name = "toy_held_out"
    title = "Toy on the held-out source"
    requires = ("x_source", "y_source", "x_target")
    source_data = "held_out"


class TunableToy(ToyAdapter):
    """A toy with settings of each widget kind: a learning rate (choice), a weight (number), a flag."""

    name = "toy_tunable"
    title = "Toy with settings"

    def __init__(self, source_model, *, learning_rate: float = 3e-3, coral_weight: float = 1.0, tent: bool = False):
        super().__init__(source_model)
        self.learning_rate, self.coral_weight, self.tent = learning_rate, coral_weight, tent


@pytest.fixture
def tunable():
    register_adapter(TunableToy)
    yield TunableToy
    unregister_adapter("toy_tunable")


@pytest.fixture
def toy():
    register_adapter(ToyAdapter)  # the one registry line
    yield ToyAdapter
    unregister_adapter("toy")


@pytest.fixture(scope="module")
def domains():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(120, 4)).astype("float32")
    xt = (rng.normal(size=(80, 4)) + [0.5, 0, 0, 0]).astype("float32")
    ys = (xs[:, 0] > 0).astype(np.int64)
    yt = (xt[:, 0] > 0).astype(np.int64)
    return Domains("toy", "toy data", xs, xt, ys, yt, ("0", "1"), tuple("abcd"))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"),
                             keras.layers.Dense(2, activation="softmax")])


def _run(domains, model, config, fit_idx=None, eval_idx=None):
    n = len(domains.x_source)
    fit_idx = np.arange(0, n, 2) if fit_idx is None else fit_idx
    eval_idx = np.arange(1, n, 2) if eval_idx is None else eval_idx
    return dash.run_adaptation(domains, model, fit_idx, eval_idx, config, n_permutations=50, alpha=0.05, seed=3)


def test_a_registered_toy_adapter_is_listed_and_runs_in_the_dashboard(toy, domains, model):
    assert dash.adapter_names() == adapter_names() and "toy" in dash.adapter_names()
    assert dash.adapter_label("toy") == ToyAdapter.title
    assert dash.adapter_unavailable("toy", domains) is None
    res = _run(domains, model, dash.AdaptConfig(adapter="toy"))
    seen = res.adapter.seen_
    # The data its declaration asked for: the whole target, no labels, no source; no epochs forced on it.
    assert len(seen["x_target"]) == len(domains.x_target) and seen["y_target"] is None
    assert seen["x_source"] is None and seen["epochs"] is None and seen["seed"] == 3
    assert res.n_target_labels_used == 0 and res.n_target_eval == len(domains.x_target)
    assert res.report.accuracy_after == pytest.approx(res.report.accuracy_before)  # the unchanged model
    assert ToyAdapter.title in dash.AdaptConfig(adapter="toy").describe()


def test_after_unregistering_the_toy_is_gone(domains):
    register_adapter(ToyAdapter)
    unregister_adapter("toy")
    assert "toy" not in dash.adapter_names()
    with pytest.raises(DashboardError, match="Unknown adapter 'toy'"):
        dash.AdaptConfig(adapter="toy").describe()


def test_declared_held_out_source_data_is_what_the_adapter_gets(domains, model):
    register_adapter(HeldOutToy)
    try:
        fit_idx, eval_idx = np.arange(0, 60), np.arange(60, 120)
        res = _run(domains, model, dash.AdaptConfig(adapter="toy_held_out"), fit_idx, eval_idx)
        np.testing.assert_array_equal(res.adapter.seen_["x_source"], domains.x_source[eval_idx])
        np.testing.assert_array_equal(res.adapter.seen_["y_source"], domains.y_source[eval_idx])
        unlabelled_source = Domains("t", "t", domains.x_source, domains.x_target, None, domains.y_target)
        reason = dash.adapter_unavailable("toy_held_out", unlabelled_source)
        assert reason is not None and "source has no labels" in reason
        with pytest.raises(DashboardError, match="source has no labels"):
            _run(unlabelled_source, model, dash.AdaptConfig(adapter="toy_held_out"), fit_idx, eval_idx)
    finally:
        unregister_adapter("toy_held_out")


def test_adapters_that_need_target_labels_are_unavailable_without_them(domains, model):
    unlabelled = Domains("t", "t", domains.x_source, domains.x_target, domains.y_source, None, ("0", "1"))
    for name in ("copy", "finetune"):
        reason = dash.adapter_unavailable(name, unlabelled)
        assert reason is not None and "target has no labels" in reason and "y_target" in reason
        with pytest.raises(DashboardError, match="target has no labels"):
            _run(unlabelled, model, dash.AdaptConfig(adapter=name))
    assert dash.adapter_unavailable("mmd", unlabelled) is None
    assert dash.adapter_unavailable("label_shift", unlabelled) is None


def test_settings_come_from_the_adapter_classes():
    # The dashboard offers the settings each class has, with the class's own default; no table of its own.
    assert not hasattr(dash.pipeline, "ADAPTER_DEFAULTS") and not hasattr(dash.pipeline, "ADAPTERS")
    copy = {s.name: s for s in dash.adapter_settings("copy")}
    assert set(copy) == {"learning_rate"}
    assert copy["learning_rate"].default == get_adapter("copy")(_tiny()).learning_rate
    finetune = {s.name for s in dash.adapter_settings("finetune")}
    assert finetune == {"learning_rate", "fine_tune_learning_rate"}
    mmd = {s.name: s for s in dash.adapter_settings("mmd")}
    assert set(mmd) == {"learning_rate", "mmd_weight"} and mmd["mmd_weight"].default == 1.0
    assert dash.adapter_settings("label_shift") == ()
    assert [dash.adapter_trains(n) for n in ("copy", "finetune", "mmd", "label_shift")] == [True, True, True, False]
    cfg = dash.AdaptConfig(adapter="mmd", epochs=5, settings={"mmd_weight": 2.0})
    assert cfg.settings == (("mmd_weight", 2.0),) and "mmd_weight 2" in cfg.describe() and "5 epochs" in cfg.describe()
    with pytest.raises(DashboardError, match="no setting 'nonsense'"):
        dash.AdaptConfig(adapter="copy", settings={"nonsense": 1})


def test_a_new_adapters_settings_get_widgets_and_reach_it(tunable, domains, model):
    settings = {s.name: s for s in dash.adapter_settings("toy_tunable")}
    assert {n: (s.kind, s.default) for n, s in settings.items()} == {
        "learning_rate": ("choice", 3e-3), "coral_weight": ("number", 1.0), "tent": ("flag", False)}
    assert dash.adapter_trains("toy_tunable") and not dash.adapter_needs_target_labels("toy_tunable")
    config = dash.AdaptConfig(adapter="toy_tunable", epochs=4, settings={"tent": True, "coral_weight": 2.5})
    res = _run(domains, model, config)
    assert (res.adapter.tent, res.adapter.coral_weight, res.adapter.learning_rate) == (True, 2.5, 3e-3)
    assert res.adapter.seen_["epochs"] == 4
    assert "coral_weight 2.5" in config.describe() and "tent True" in config.describe()


def _tiny():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])


@pytest.mark.slow
def test_the_toy_adapter_in_the_app(toy, tunable):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    box = at.selectbox(key="adapter")
    assert "toy" in box.options or ToyAdapter.title in box.options
    # A new adapter's settings get their widgets, keyed by adapter, starting at the class's defaults.
    box.set_value("toy_tunable").run()
    assert not at.exception, at.exception
    assert at.checkbox(key="tent_toy_tunable").value is False
    assert at.number_input(key="coral_weight_toy_tunable").value == 1.0
    assert at.select_slider(key="learning_rate_toy_tunable").value is None  # the adapter's default
    at.checkbox(key="tent_toy_tunable").check().run()
    assert "tent True" in " ".join(c.value for c in at.caption)
    at.selectbox(key="adapter").set_value("toy").run()
    box = at.selectbox(key="adapter")
    box.set_value("toy").run()
    assert not at.exception, at.exception
    at.button(key="run_adaptation").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    figures = list(at.table[0].value["figure"])
    assert {"feature MMD^2 normalized", "target accuracy"} <= set(figures)


@pytest.mark.slow
def test_auto_runs_in_the_dashboard_with_progress_and_a_scores_table(toy, domains, model):
    """"auto" is listed; it reports progress per candidate and the page gets one row per candidate."""
    assert "auto" in dash.adapter_names()
    calls = []
    n = len(domains.x_source)
    res = dash.run_adaptation(domains, model, np.arange(0, n, 2), np.arange(1, n, 2),
                              dash.AdaptConfig(adapter="auto", settings={"margin": 1.0}), n_permutations=50,
                              alpha=0.05, seed=3, progress=lambda i, k, name: calls.append((i, k, name)))
    sel = res.adapter.selection_
    assert calls and calls[0] == (0, len(sel.scores), "source_only")
    frame = dash.selection_frame(res)
    assert list(frame["candidate"]) == [s.name for s in sel.scores]
    assert int(frame["chosen"].sum()) == 1 and frame.loc[frame["chosen"], "candidate"].item() == sel.chosen
    assert dash.selection_frame(_run(domains, model, dash.AdaptConfig(adapter="toy"))) is None  # no choice made
