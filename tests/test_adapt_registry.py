"""The one adapter contract and registry: names, data keywords, configs, and a toy adapter end to end."""

import keras
import numpy as np
import pytest

import shiftkit
from shiftkit.adapt import (
    DATA_KEYS,
    EXTRA_DATA_KEYS,
    Adapter,
    CopyAdapter,
    FineTuneAdapter,
    LabelShiftAdapter,
    MMDAdapter,
    adapter_classes,
    adapter_names,
    fit_data,
    get_adapter,
    register_adapter,
    unregister_adapter,
)
from shiftkit.data import split_domains
from shiftkit.experiment import Experiment

BUILT_IN = ("copy", "finetune", "mmd", "label_shift")


class ToyAdapter(Adapter):
    """The smallest adapter: the source model itself, checked for the data it declares."""

    name = "toy"
    title = "Toy: the source model, unchanged"
    requires = ("x_target",)

    def __init__(self, source_model, *, scale: float = 1.0):
        super().__init__(source_model)
        self.scale = scale

    def fit(self, x_source=None, y_source=None, x_target=None, y_target=None, *, epochs=None, verbose="auto",
            callbacks=None, seed=None, **options):
        self.check_fit_data(x_target=x_target)
        self.seen_ = {"x_target": len(x_target), "y_target": y_target, "x_source": x_source, "epochs": epochs}
        self._build()
        return self


@pytest.fixture
def toy():
    register_adapter(ToyAdapter)  # the one registry line
    yield ToyAdapter
    unregister_adapter("toy")


def test_built_in_names_and_classes():
    assert adapter_names()[:4] == BUILT_IN
    classes = adapter_classes()
    assert [classes[n] for n in BUILT_IN] == [CopyAdapter, FineTuneAdapter, MMDAdapter, LabelShiftAdapter]
    for name in BUILT_IN:
        cls = get_adapter(name)
        assert cls.name == name and cls.title
        assert set(cls.requires) <= set(DATA_KEYS) and set(cls.uses) <= set(DATA_KEYS + EXTRA_DATA_KEYS)
    with pytest.raises(ValueError, match="Unknown adapter 'magic'.*copy, finetune, mmd, label_shift"):
        get_adapter("magic")


def test_registration_errors():
    class Nameless(Adapter):
        pass

    with pytest.raises(TypeError, match="class attribute `name`"):
        register_adapter(Nameless)

    class Clash(Adapter):
        name = "copy"

    with pytest.raises(ValueError, match="'copy' is already taken by CopyAdapter"):
        register_adapter(Clash)

    class Odd(Adapter):
        name = "odd"
        requires = ("x_test",)

    with pytest.raises(TypeError, match="may only name"):
        register_adapter(Odd)
    assert "odd" not in adapter_names()


@pytest.mark.parametrize("name, missing", [
    ("copy", "y_target"), ("finetune", "y_target"), ("mmd", "x_source"), ("label_shift", "y_source"),
])
def test_fit_names_what_is_missing(small_model, name, missing):
    x = np.zeros((8, 5), "float32")
    y = np.arange(8) % 3
    given = {"x_source": x, "y_source": y, "x_target": x, "y_target": y}
    given[missing] = None
    adapter = get_adapter(name)(small_model)
    with pytest.raises(ValueError, match=rf"missing: {missing} \(.*Pass {missing}=\.\.\."):
        adapter.fit(**given, epochs=1, verbose=0)


def test_fit_data_follows_each_declaration():
    src_train, src_val = ("xs_tr", "ys_tr"), ("xs_val", "ys_val")
    labeled, unlabeled = ("xl", "yl"), "xu"
    kw = {"source_train": src_train, "source_held_out": src_val, "target_labeled": labeled,
          "target_unlabeled": unlabeled}
    assert fit_data(CopyAdapter, **kw) == {"x_target": "xl", "y_target": "yl"}
    assert fit_data(FineTuneAdapter, **kw) == {"x_target": "xl", "y_target": "yl"}
    # MMD also uses held-out source data (for class_weights="auto").
    assert fit_data(MMDAdapter, **kw) == {"x_source": "xs_tr", "y_source": "ys_tr", "x_target": "xu",
                                          "x_source_val": "xs_val", "y_source_val": "ys_val"}
    assert fit_data(LabelShiftAdapter, **kw) == {"x_source": "xs_val", "y_source": "ys_val", "x_target": "xu"}
    with pytest.raises(ValueError, match="CopyAdapter.fit needs x_target, y_target; missing: x_target"):
        fit_data(CopyAdapter, source_train=src_train, target_unlabeled=unlabeled)


@pytest.mark.parametrize("name", BUILT_IN)
def test_get_config_from_config_round_trip(small_model, name):
    cls = get_adapter(name)
    adapter = cls(small_model)
    config = adapter.get_config()
    assert "source_model" not in config
    again = cls.from_config(config, small_model)
    assert again.get_config() == config
    with pytest.raises(ValueError, match="has no setting"):
        cls.from_config({**config, "nonsense": 1}, small_model)


def test_config_keeps_non_default_settings_and_a_head_layer(small_model):
    ft = FineTuneAdapter(small_model, unfreeze=1, fine_tune_learning_rate=1e-4, batch_norm="source")
    assert ft.get_config()["unfreeze"] == 1 and ft.get_config()["fine_tune_learning_rate"] == 1e-4
    copy = CopyAdapter(small_model, head=keras.layers.Dense(3, activation="softmax", name="my_head"),
                       learning_rate=1e-2)
    config = copy.get_config()
    assert isinstance(config["head"], dict) and config["learning_rate"] == 1e-2
    rebuilt = CopyAdapter.from_config(config, small_model)
    assert isinstance(rebuilt.head, keras.layers.Dense) and rebuilt.head.units == 3


@pytest.fixture(scope="module")
def splits():
    s = shiftkit.datasets.load_scenario("hospitals_covariate", seed=0)
    return split_domains(s.x_source, s.y_source, s.x_target, s.y_target, target_labeled=10, seed=0)


def test_a_registered_toy_adapter_runs_in_experiment(toy, splits):
    n_features = splits.source_train[0].shape[1]

    def build():
        model = keras.Sequential([keras.Input((n_features,)), keras.layers.Dense(4, activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        return model

    assert "toy" in adapter_names()
    assert "toy" in Experiment(build).method_names  # the default: every registered adapter
    result = Experiment(build, adapters=["toy"], target_only=False, monitor=False, n_permutations=20).run(
        splits, seed=0, epochs={"source": 1})
    assert result.methods == ("source_only", "toy")
    adapter = result.adapters["toy"]
    # The data its declaration asked for: the unlabelled target inputs, nothing else.
    assert adapter.seen_["x_target"] == len(splits.target_unlabeled)
    assert adapter.seen_["y_target"] is None and adapter.seen_["x_source"] is None
    # An unchanged model: the same accuracy as the source.
    assert result.rows["toy"]["accuracy"] == pytest.approx(result.rows["source_only"]["accuracy"])
