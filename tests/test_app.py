"""The Streamlit dashboard: loaders and pipeline directly, and app.py headless with AppTest.

Uploads: `st.file_uploader` cannot be driven by AppTest, so app.py also reads `(filename, bytes)`
from `st.session_state[dashboard.TEST_UPLOAD_KEYS[role]]`; the loaders behind it are tested
directly for every bad-file case.
"""

import io
import pathlib
import zipfile

import numpy as np
import pandas as pd
import pytest

from shiftkit import dashboard as dash
from shiftkit.dashboard import DashboardError

APP = str(pathlib.Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 120


# ------------------------------------------------------------------------------ helpers


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.fixture(scope="module")
def tables():
    """Source and target tables of the covariate scenario, with a string label column."""
    from shiftkit.datasets import load_scenario

    s = load_scenario("hospitals_covariate", seed=0)
    cols = list(s.feature_names)
    src = pd.DataFrame(s.x_source, columns=cols)
    src["diagnosis"] = np.array(s.class_names)[s.y_source]
    tgt = pd.DataFrame(s.x_target, columns=cols)
    tgt["diagnosis"] = np.array(s.class_names)[s.y_target]
    return src, tgt


@pytest.fixture(scope="module")
def tiny_model_bytes():
    """A small valid .keras model (5 features, 2 classes) as bytes."""
    import tempfile

    import keras

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "m.keras"
        model.save(path)
        return path.read_bytes()


def _load(src: bytes, tgt: bytes, label=None, names=("source.csv", "target.csv")):
    return dash.load_uploaded_domains((names[0], src), (names[1], tgt), label)


# ------------------------------------------------------------------------------ loaders: good files


def test_csv_upload_encodes_labels_and_aligns_columns(tables):
    src, tgt = tables
    tgt = tgt[list(reversed(tgt.columns))]  # same columns, another order
    assert dash.guess_label_column(list(src.columns)) == "diagnosis"
    d = _load(_csv(src), _csv(tgt), "diagnosis")
    assert d.x_source.shape == (len(src), 30) and d.x_target.shape == (len(tgt), 30)
    assert d.class_names == ("benign", "malignant")
    np.testing.assert_allclose(d.x_target[:, 0], tgt["mean radius"].to_numpy(), rtol=1e-6)
    assert set(np.unique(d.y_source)) == {0, 1} and d.feature_names[0] == "mean radius"


def test_csv_target_without_label_column(tables):
    src, tgt = tables
    d = _load(_csv(src), _csv(tgt.drop(columns="diagnosis")), "diagnosis")
    assert d.y_source is not None and d.y_target is None


def test_npz_upload(rng):
    d = _load(_npz(x=rng.normal(size=(30, 4, 4, 1)), y=rng.integers(0, 3, 30)),
              _npz(x=rng.normal(size=(20, 4, 4, 1))), names=("s.npz", "t.npz"))
    assert d.x_source.shape == (30, 4, 4, 1) and d.y_target is None and not d.is_tabular


def test_valid_keras_model_loads(tiny_model_bytes):
    model = dash.load_keras_model(tiny_model_bytes, "model.keras")
    assert model.inputs[0].shape[1:] == (5,)


# ------------------------------------------------------------------------------ loaders: bad files


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda s, t: (s, t.drop(columns=["mean radius", "worst area"])), r"missing from the target: 'mean radius', 'worst area'"),
        (lambda s, t: (s, t.assign(extra=1.0)), r"only in the target: 'extra'"),
        (lambda s, t: (s.assign(**{"mean texture": s["mean texture"].where(s.index % 7 != 0)}), t),
         r"missing values .*'mean texture \(\d+ missing\)'"),
        (lambda s, t: (s.assign(site="A", ward="B"), t.assign(site="C", ward="D")),
         r"non-numeric feature column\(s\): 'site', 'ward'"),
        (lambda s, t: (s.assign(diagnosis=s["diagnosis"].where(s.index % 5 != 0)), t), r"label column 'diagnosis'.*missing"),
    ],
    ids=["missing-columns", "extra-column", "nan", "non-numeric", "nan-label"],
)
def test_bad_csv_files_raise_what_to_fix(tables, mutate, match):
    src, tgt = mutate(*tables)
    with pytest.raises(DashboardError, match=match):
        _load(_csv(src), _csv(tgt), "diagnosis")


def test_bad_csv_label_column_and_encodings(tables):
    src, tgt = tables
    with pytest.raises(DashboardError, match="'outcome' is not a column"):
        _load(_csv(src), _csv(tgt), "outcome")
    with pytest.raises(DashboardError, match="non-numeric feature column.*'diagnosis'"):
        _load(_csv(src), _csv(tgt), dash.NO_LABEL)  # the string label column left among the features
    with pytest.raises(DashboardError, match="empty"):
        _load(b"", _csv(tgt), "diagnosis")
    with pytest.raises(DashboardError, match="not a text CSV"):
        _load(b"\xff\xfe\x00\x81binary\x00", _csv(tgt), "diagnosis")
    with pytest.raises(DashboardError, match="same format"):
        _load(_csv(src), _npz(x=np.zeros((5, 30))), "diagnosis", names=("s.csv", "t.npz"))
    with pytest.raises(DashboardError, match="Unsupported file type .xlsx"):
        _load(_csv(src), _csv(tgt), "diagnosis", names=("s.xlsx", "t.csv"))
    with pytest.raises(DashboardError, match="at least 5"):
        _load(_csv(src.head(3)), _csv(tgt), "diagnosis")


def test_bad_npz_files_raise_what_to_fix(rng):
    good = _npz(x=rng.normal(size=(10, 3)), y=np.arange(10) % 2)
    cases = {
        "pickle": (_npz(x=np.array([{"a": 1}, None], dtype=object)), "object arrays"),
        "no-x": (_npz(features=rng.normal(size=(10, 3))), "no array named 'x'.*features"),
        "corrupt": (b"PK\x03\x04 definitely not a zip", "not a valid .npz"),
        "not-zip": (b"hello", "not a valid .npz"),
        "nan": (_npz(x=np.full((10, 3), np.nan)), "NaN/inf"),
        "strings": (_npz(x=np.array([["a", "b"]] * 10)), "must be numeric"),
        "1d": (_npz(x=np.arange(10.0)), "one row per sample"),
        "bad-y": (_npz(x=rng.normal(size=(10, 3)), y=np.arange(4)), "one class label per sample"),
        "frac-y": (_npz(x=rng.normal(size=(10, 3)), y=np.linspace(0, 1, 10)), "fractional value"),
        "shape": (_npz(x=rng.normal(size=(10, 4))), r"different per-sample shapes: \(3,\).*\(4,\)"),
    }
    for name, (data, match) in cases.items():
        with pytest.raises(DashboardError, match=match):
            if name == "shape":
                _load(good, data, names=("s.npz", "t.npz"))
            else:
                _load(data, good, names=("s.npz", "t.npz"))


def test_bad_model_files_raise_what_to_fix(tiny_model_bytes, tmp_path):
    import keras

    with pytest.raises(DashboardError, match="not a .keras file"):
        dash.load_keras_model(tiny_model_bytes, "model.h5")
    with pytest.raises(DashboardError, match="empty or corrupt"):
        dash.load_keras_model(b"\x00garbage" * 100, "model.keras")
    with pytest.raises(DashboardError, match="empty or corrupt"):
        dash.load_keras_model(tiny_model_bytes[: len(tiny_model_bytes) // 2], "model.keras")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "not a model")
    with pytest.raises(DashboardError, match="Keras could not load"):
        dash.load_keras_model(buf.getvalue(), "model.keras")
    # A Lambda layer holds Python bytecode: safe mode refuses it.
    lam = keras.Sequential([keras.Input((5,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(2)])
    lam.save(tmp_path / "lam.keras")
    with pytest.raises(DashboardError, match="Keras could not load"):
        dash.load_keras_model((tmp_path / "lam.keras").read_bytes(), "lam.keras")


def test_model_that_does_not_fit_the_data(tiny_model_bytes, tables):
    src, tgt = tables
    d = _load(_csv(src), _csv(tgt), "diagnosis")
    with pytest.raises(DashboardError, match="has 30 features, but the model expects 5"):
        dash.pipeline.check_model_fits(dash.load_keras_model(tiny_model_bytes), d)


def test_user_message_hides_tracebacks():
    exc = RuntimeError("Graph execution error:\n\nDetected at node 'x' defined at (most recent call last):\n  File \"a.py\"")
    msg = dash.user_message(exc)
    assert msg == "RuntimeError: Graph execution error:"


# ------------------------------------------------------------------------------ pipeline pieces


def test_verdict_cards_and_tables():
    from shiftkit.shift import shift_report

    d = dash.scenario_domains("hospitals_label_shift", seed=0)
    rep = shift_report(d.x_source, d.x_target, d.y_source, d.y_target, n_permutations=100, seed=0)
    cards = dash.verdict_cards(rep)
    assert [c.label for c in cards] == ["Input-space MMD²", "Feature-space MMD²", "Label-shift distance",
                                        "Imbalance ratio"]
    assert cards[1].value == "—" and "choose a model" in cards[1].help
    assert cards[2].value == f"{rep.labels.distance.total_variation:.3f}"
    assert "threshold" in cards[0].help.lower()
    assert dash.verdict_headline(rep).endswith("at alpha=0.05")
    assert list(dash.label_table(rep, d.class_name_list())["class"]) == list(d.class_names)
    assert list(dash.imbalance_table(rep)["domain"]) == ["source", "target"]
    a, b = dash.embed_2d(d.x_source, d.x_target, seed=0)
    assert a.shape == (len(d.x_source), 2) and b.shape == (len(d.x_target), 2)


# ------------------------------------------------------------------------------ app.py headless


def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _verdict(at) -> str:
    boxes = [b.value for b in list(at.warning) + list(at.success) if "Verdict:" in b.value]
    assert len(boxes) == 1, [b.value for b in list(at.warning) + list(at.success)]
    return boxes[0]


def test_default_run_shows_the_verdict():
    at = _app().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Verdict: Shift at alpha=0.05" in _verdict(at)
    assert [m.label for m in at.metric][:4] == ["Input-space MMD²", "Feature-space MMD²", "Label-shift distance",
                                                "Imbalance ratio"]
    assert at.metric[1].value != "—"  # the default model gives the feature-space test
    assert len(at.dataframe) >= 3  # labels, imbalance, per-feature drift
    assert at.button(key="run_adaptation").disabled is False
    at.checkbox(key="tsne").check().run()
    assert not at.exception and not at.error
    # No model: input space only, adaptation disabled.
    at.radio(key="model_mode").set_value("none").run()
    assert not at.exception and at.metric[1].value == "—"
    assert at.button(key="run_adaptation").disabled is True


@pytest.mark.slow
def test_switch_scenario_and_adapter_then_adapt():
    at = _app().run()
    at.selectbox(key="scenario").set_value("digits_corrupted").run()
    at.selectbox(key="adapter").set_value("mmd").run()
    assert not at.exception, at.exception
    assert "Verdict:" in _verdict(at)
    assert any("tabular" in i.value for i in at.info)  # no per-feature table for images
    assert not at.table  # no adaptation yet
    at.button(key="run_adaptation").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.table) == 1
    figures = list(at.table[0].value["figure"])
    assert {"input MMD^2", "feature MMD^2 normalized", "feature MMD p-value", "target accuracy"} <= set(figures)
    assert any(m.label == "Target accuracy after" for m in at.metric)
    # Changing a parameter does not recompute silently: the app asks for a new run.
    at.selectbox(key="adapter").set_value("label_shift").run()
    assert not at.table and any("Run adaptation" in i.value for i in at.info)


def test_upload_through_the_app(tables):
    src, tgt = tables
    at = _app()
    at.session_state[dash.TEST_UPLOAD_KEYS["source"]] = ("source.csv", _csv(src))
    at.session_state[dash.TEST_UPLOAD_KEYS["target"]] = ("target.csv", _csv(tgt.drop(columns="diagnosis")))
    at.run()
    at.radio(key="data_mode").set_value("upload").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="label_column").value == "diagnosis"
    assert not at.error, [e.value for e in at.error]
    assert "Verdict:" in _verdict(at)
    assert any("estimated" in m.delta for m in at.metric if m.label == "Label-shift distance")
    # Copy adaptation needs target labels, which this target lacks: an error in section 6, page intact.
    at.button(key="run_adaptation").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "target has no labels" in at.error[0].value
    assert "Verdict:" in _verdict(at)


def test_bad_uploads_show_an_error_not_an_exception(tables):
    src, tgt = tables
    at = _app()
    at.session_state[dash.TEST_UPLOAD_KEYS["source"]] = ("source.csv", _csv(src.assign(site="A")))
    at.session_state[dash.TEST_UPLOAD_KEYS["target"]] = ("target.csv", _csv(tgt.assign(site="B")))
    at.run()
    at.radio(key="data_mode").set_value("upload").run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "non-numeric feature column(s): 'site'" in at.error[0].value
    # The app keeps running: fix the file, and the analysis appears.
    at.session_state[dash.TEST_UPLOAD_KEYS["source"]] = ("source.csv", _csv(src))
    at.session_state[dash.TEST_UPLOAD_KEYS["target"]] = ("target.csv", _csv(tgt))
    at.run()
    assert not at.error and "Verdict:" in _verdict(at)
    # An NPZ holding pickled objects.
    at.session_state[dash.TEST_UPLOAD_KEYS["source"]] = ("s.npz", _npz(x=np.array([object()] * 6, dtype=object)))
    at.session_state[dash.TEST_UPLOAD_KEYS["target"]] = ("t.npz", _npz(x=np.zeros((6, 2))))
    at.run()
    assert not at.exception and "object arrays" in at.error[0].value
    # A corrupt model file.
    at.session_state[dash.TEST_UPLOAD_KEYS["source"]] = ("source.csv", _csv(src))
    at.session_state[dash.TEST_UPLOAD_KEYS["target"]] = ("target.csv", _csv(tgt))
    at.session_state[dash.TEST_UPLOAD_KEYS["model"]] = ("model.keras", b"PK\x03\x04 broken")
    at.run()
    at.radio(key="model_mode").set_value("upload").run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "not a valid .keras file" in at.error[0].value


def test_diagnose_button_names_the_kind_and_the_adapter():
    at = _app().run()
    at.button(key="run_diagnosis").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    recommendation = [i.value for i in at.info if "Recommended" in i.value]
    # The default scenario selects patients on tumour size, which moves p(x) and, through it, the
    # malignant prevalence: a shift must be named, with an adapter.
    assert recommendation and ("covariate" in recommendation[0] or "label" in recommendation[0])
    assert "Adapter" in recommendation[0]
    assert len(at.dataframe) >= 1 and "concept" in list(at.dataframe[-1].value["kind"])
