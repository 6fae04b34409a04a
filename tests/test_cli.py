"""The `shiftkit` command line: demo, version, exit codes."""

import json
import subprocess
import sys

import pytest

import shiftkit.analysis as analysis_module
import shiftkit.check
from shiftkit import __version__
from shiftkit.cli import main
from shiftkit.shift.report import REPORT_SCHEMA_VERSION


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_demo_prints_report(capsys):
    assert main(["demo", "--no-model", "--n-permutations", "100"]) == 0
    out = capsys.readouterr().out
    assert "hospitals_covariate" in out and "input space" in out and "Shift detected" in out


def test_demo_with_model_json_to_stdout_only(capsys):
    code = main(["demo", "--scenario", "hospitals_no_shift", "--n-permutations", "100", "--json", "-"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)  # nothing but JSON on stdout
    assert report["feature_test"]["space"] == "feature"
    assert report["is_shift"] is False


def test_demo_json_file(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["demo", "--no-model", "--n-permutations", "50", "--json", str(path)]) == 0
    assert json.loads(path.read_text())["schema_version"] == REPORT_SCHEMA_VERSION


@pytest.mark.parametrize(
    "argv, match",
    [
        (["demo", "--n-permutations", "0"], "n_permutations must be an integer >= 1"),
        (["demo", "--alpha", "1.5"], "alpha must be strictly between 0 and 1"),
    ],
)
def test_bad_values_exit_2_with_message(argv, match, capsys):
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--scenario", "nope"])
    assert exc.value.code == 2
    assert main([]) == 2


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "shiftkit", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and __version__ in done.stdout


# ---------------------------------------------------------------------------- shiftkit check / snapshot / report
from html.parser import HTMLParser  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from shiftkit.datasets import load_scenario  # noqa: E402

FAST = ["--n-permutations", "200", "--no-diagnosis"]


def _write_pair(tmp_path, name, *, label="diagnosis"):
    s = load_scenario(name, seed=0)
    paths = []
    for side, x, y in (("ref", s.x_source, s.y_source), ("tgt", s.x_target, s.y_target)):
        frame = pd.DataFrame(x, columns=list(s.feature_names))
        frame[label] = np.array(s.class_names)[y]
        path = tmp_path / f"{name}_{side}.csv"
        frame.to_csv(path, index=False)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    return {"none": _write_pair(tmp, "hospitals_no_shift"), "shift": _write_pair(tmp, "hospitals_covariate"), "dir": tmp}


def _check(pair, *extra):
    return main(["check", "--reference", pair[0], "--target", pair[1], "--label-column", "diagnosis", *FAST, *extra])


def test_check_exit_codes(pairs, capsys):
    assert _check(pairs["none"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert _check(pairs["shift"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "input-space MMD" in out and "label shift" in out
    bad = pairs["dir"] / "broken.npz"
    bad.write_bytes(b"this is not an npz file")
    assert main(["check", "--reference", str(bad), "--target", str(bad)]) == 2
    assert "not a valid .npz" in capsys.readouterr().err


def test_each_threshold_flag_flips_the_verdict(pairs, capsys):
    # label shift TV is 0.286 in the covariate pair, the target's imbalance ratio about 1.15; the MMD
    # criteria fail there whatever these flags say, so the failed criteria are compared.
    def failed(*extra):
        code = _check(pairs["shift"], "--json", "-", *extra)
        data = json.loads(capsys.readouterr().out)
        assert code == (1 if data["failed_criteria"] else 0)
        return set(data["failed_criteria"])

    assert failed("--max-label-shift", "0.3") == {"input-space MMD"}
    assert failed("--max-label-shift", "0.25") == {"input-space MMD", "label shift"}
    assert failed("--max-label-shift", "0.3", "--max-imbalance-ratio", "1.1") == {"input-space MMD", "class imbalance"}
    assert failed("--max-label-shift", "0.3", "--max-imbalance-ratio", "1.2") == {"input-space MMD"}
    # At alpha = 0.001, 200 permutations could never reject (p >= 1/201): the gate must still be able
    # to fail, never pass silently.
    assert "input-space MMD" in failed("--alpha", "0.001", "--max-label-shift", "0.3")


def test_json_to_stdout_only(pairs, capsys):
    assert _check(pairs["shift"], "--json", "-") == 1
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["passed"] is False and data["failed_criteria"] == ["input-space MMD", "label shift"]
    assert "FAIL" in captured.err


def test_snapshot_then_check_agrees_with_full_reference(pairs, tmp_path, capsys):
    snap = tmp_path / "ref.npz"
    ref, tgt = pairs["shift"]
    assert main(["snapshot", "--reference", ref, "--label-column", "diagnosis", "--out", str(snap)]) == 0
    with np.load(snap, allow_pickle=False) as arrays:
        assert "shiftkit_meta" in arrays.files
    full_json, snap_json = tmp_path / "full.json", tmp_path / "snap.json"
    assert _check(pairs["shift"], "--json", str(full_json)) == 1
    assert main(["check", "--reference", str(snap), "--target", tgt, "--label-column", "diagnosis", *FAST,
                 "--json", str(snap_json)]) == 1
    full, via_snapshot = json.loads(full_json.read_text()), json.loads(snap_json.read_text())
    assert full["criteria"] == via_snapshot["criteria"]
    capsys.readouterr()


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.scripts = [], [], {}
        self._script = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script":
            self._script = attrs.get("id")

    def handle_data(self, data):
        if self._script:
            self.scripts[self._script] = self.scripts.get(self._script, "") + data

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None


def test_html_report_with_plots_and_diagnosis(pairs, tmp_path, capsys):
    html_path = tmp_path / "check.html"
    ref, tgt = pairs["shift"]
    code = main(["check", "--reference", ref, "--target", tgt, "--label-column", "diagnosis",
                 "--n-permutations", "200", "--html", str(html_path)])
    assert code == 1
    page = html_path.read_text()
    parser = _Collect()
    parser.feed(page)
    assert page.startswith("<!DOCTYPE html>") and "html" in parser.tags and "table" in parser.tags
    assert parser.images and all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert json.loads(parser.scripts["shiftkit-check"])["passed"] is False
    assert json.loads(parser.scripts["shiftkit-diagnosis"])["recommendation"]
    assert "Pre-deployment check" in page and "Recommended" in page
    report_html = tmp_path / "report.html"
    assert main(["report", "--source", ref, "--target", tgt, "--label-column", "diagnosis",
                 "--n-permutations", "100", "--html", str(report_html)]) == 0
    assert "Diagnosis" in report_html.read_text()
    capsys.readouterr()


def test_bad_inputs_exit_2_with_clear_messages(pairs, tmp_path, capsys):
    ref, tgt = pairs["none"]
    frame = pd.read_csv(ref)

    def run(reference, target, *extra):
        code = main(["check", "--reference", str(reference), "--target", str(target), *FAST, *extra])
        return code, capsys.readouterr().err

    code, err = run(ref, tgt, "--label-column", "outcome")
    assert code == 2 and "'outcome' is not a column" in err
    text = frame.assign(site="A")
    text.to_csv(tmp_path / "text.csv", index=False)
    text.to_csv(tmp_path / "text2.csv", index=False)
    code, err = run(tmp_path / "text.csv", tmp_path / "text2.csv", "--label-column", "diagnosis")
    assert code == 2 and "non-numeric feature column(s): 'site'" in err
    frame.drop(columns=["mean radius"]).to_csv(tmp_path / "fewer.csv", index=False)
    code, err = run(ref, tmp_path / "fewer.csv", "--label-column", "diagnosis")
    assert code == 2 and "missing from the target: 'mean radius'" in err
    holes = frame.copy()
    holes.loc[:4, "mean area"] = np.nan
    holes.to_csv(tmp_path / "holes.csv", index=False)
    code, err = run(tmp_path / "holes.csv", tgt, "--label-column", "diagnosis")
    assert code == 2 and "missing values" in err and "mean area (5 missing)" in err and "--drop-na" in err
    code, err = run(tmp_path / "holes.csv", tgt, "--label-column", "diagnosis", "--drop-na")
    assert code == 0 and "dropped 5 row(s)" in err
    np.savez(tmp_path / "pickled.npz", x=np.array([{"a": 1}] * 10, dtype=object))
    code, err = run(tmp_path / "pickled.npz", tmp_path / "pickled.npz")
    assert code == 2 and "pickle" in err
    fake = tmp_path / "model.keras"
    fake.write_bytes(b"not a keras zip")
    code, err = run(ref, tgt, "--label-column", "diagnosis", "--model", str(fake))
    assert code == 2 and "not a valid .keras file" in err
    code, err = run(tmp_path / "missing.csv", tgt)
    assert code == 2 and "does not exist" in err


# ---------------------------------------------------------------------------- exit codes of failures (issue 9, #8)


def test_unwritable_output_exits_2_before_any_work(pairs, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(shiftkit.check, "check_shift", lambda *a, **k: calls.append(1))
    ref, tgt = pairs["none"]
    for flag in ("--json", "--html"):
        code = _check(pairs["none"], flag, str(tmp_path / "no" / "such" / "dir" / "out.x"))
        captured = capsys.readouterr()
        assert code == 2, captured
        assert "PASS" not in captured.out and "FAIL" not in captured.out and "Traceback" not in captured.err
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and f"{flag} " in lines[0] and "does not exist" in lines[0], lines
    assert main(["snapshot", "--reference", ref, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    code = _check(pairs["none"], "--json", str(tmp_path / "same"), "--html", str(tmp_path / "same"))
    assert code == 2 and "different files" in capsys.readouterr().err
    assert not calls  # nothing was measured


def test_unexpected_errors_exit_2_with_one_line(pairs, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("kernel exploded\n\nlong TensorFlow context")

    monkeypatch.setattr(shiftkit.check, "check_shift", boom)
    assert _check(pairs["none"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "unexpected RuntimeError: kernel exploded" in err and "--debug" in err
    assert _check(pairs["none"], "--debug") == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "unexpected RuntimeError" in err.strip().splitlines()[-1]
    monkeypatch.setattr(shiftkit.check, "check_shift", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    assert _check(pairs["none"]) == 2
    assert "No space left on device" in capsys.readouterr().err


def test_file_size_limit_exits_2(pairs, capsys):
    assert _check(pairs["none"], "--max-gib", "0.00001") == 2
    err = capsys.readouterr().err
    assert "more than the limit" in err and "--max-gib" in err
    assert _check(pairs["none"], "--max-gib", "0") == 2
    assert "--max-gib must be a positive" in capsys.readouterr().err
    # Not a number of bytes: one line saying what to give (an OverflowError before), for every command.
    for value in ("inf", "nan"):
        assert _check(pairs["none"], "--max-gib", value) == 2
        err = capsys.readouterr().err
        assert "--max-gib must be a positive finite number" in err and "unexpected" not in err, err


# ---------------------------------------------------------------------------- labels of any values (issue 9, #2)


def _coded_pair(tmp_path, codes, name):
    rng = np.random.default_rng(3)
    paths = []
    for side in ("ref", "tgt"):
        frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
        frame["label"] = np.resize(codes, 300)
        path = tmp_path / f"{name}_{side}.csv"
        frame.to_csv(path, index=False)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("codes", [[1, 2], [2019, 2020], ["no", "yes"]], ids=["1..K", "years", "names"])
def test_balanced_labels_of_any_coding_pass_the_imbalance_gate(tmp_path, codes, capsys):
    ref, tgt = _coded_pair(tmp_path, codes, "coded")
    out = tmp_path / "r.json"
    code = main(["check", "--reference", ref, "--target", tgt, "--label-column", "label", "--max-imbalance-ratio", "3",
                 *FAST, "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.out
    assert "PASS" in captured.out
    data = json.loads(out.read_text())
    imbalance = [c for c in data["criteria"] if c["name"] == "class imbalance"]
    assert imbalance and imbalance[0]["value"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- report subsampling (issue 9, #9)


def test_report_bounds_the_diagnosis_and_says_what_was_subsampled(pairs, tmp_path, capsys, monkeypatch):
    real = analysis_module.diagnose  # the one place that runs the diagnosis (issue 10)
    seen = []

    def spy(xs, xt, *args, **kwargs):
        seen.append((len(xs), len(xt)))
        return real(xs, xt, *args, **kwargs)

    monkeypatch.setattr(analysis_module, "diagnose", spy)
    ref, tgt = pairs["shift"]
    n_ref, n_tgt = len(pd.read_csv(ref)), len(pd.read_csv(tgt))
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    code = main(["report", "--source", ref, "--target", tgt, "--label-column", "diagnosis", "--max-samples", "80",
                 "--n-permutations", "200", "--json", str(out), "--html", str(page)])
    text = capsys.readouterr().out
    assert code == 0
    assert seen == [(80, 80)]
    data = json.loads(out.read_text())
    sub = data["subsampling"]
    assert (sub["source_rows"], sub["target_rows"]) == (n_ref, n_tgt)
    assert (sub["source_rows_used"], sub["target_rows_used"], sub["max_samples"]) == (80, 80, 80)
    assert set(sub["subsampled"]) == {"mmd_tests", "diagnosis"}
    assert data["shift_report"]["input_test"]["n_source"] == 80
    said = f"use 80 of {n_ref} source and 80 of {n_tgt} target rows"
    assert said in text and said in page.read_text()
    assert data["class_names"] == ["benign", "malignant"]
    assert data["diagnosis"]["classes"] == ["benign", "malignant"]  # shown by name, not by code


def test_snapshot_with_labels_coded_1_2(tmp_path, capsys):
    ref, tgt = _coded_pair(tmp_path, [1, 2], "snap12")
    snap = tmp_path / "ref.npz"
    assert main(["snapshot", "--reference", ref, "--label-column", "label", "--out", str(snap)]) == 0
    out = tmp_path / "r.json"
    code = main(["check", "--reference", str(snap), "--target", tgt, "--label-column", "label",
                 "--max-imbalance-ratio", "3", *FAST, "--json", str(out)])
    assert code == 0, capsys.readouterr()
    criteria = {c["name"]: c for c in json.loads(out.read_text())["criteria"]}
    assert criteria["class imbalance"]["value"] == pytest.approx(1.0)
    assert criteria["label shift"]["value"] == pytest.approx(0.0)
    frame = pd.read_csv(tgt)
    frame.loc[:9, "label"] = 3
    frame.to_csv(tmp_path / "three.csv", index=False)
    code = main(["check", "--reference", str(snap), "--target", str(tmp_path / "three.csv"), "--label-column",
                 "label", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "'3'" in err and "reference does not know" in err


# ------------------------------------------------------------------ shiftkit adapt
@pytest.fixture(scope="module")
def adapt_files(tmp_path_factory):
    import keras

    tmp = tmp_path_factory.mktemp("adapt")
    s = load_scenario("hospitals_covariate", seed=0)
    np.savez(tmp / "src.npz", x=s.x_source, y=s.y_source)
    np.savez(tmp / "tgt.npz", x=s.x_target, y=s.y_target)
    np.savez(tmp / "src_unlabelled.npz", x=s.x_source)
    np.savez(tmp / "tgt_unlabelled.npz", x=s.x_target)
    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization()
    norm.adapt(s.x_source)
    model = keras.Sequential([keras.Input((s.x_source.shape[1],)), norm, keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(s.x_source, s.y_source, epochs=5, verbose=0)
    model.save(tmp / "model.keras")
    return tmp


def _adapt(files, *extra):
    return main(["adapt", "--source", str(files / "src.npz"), "--target", str(files / "tgt.npz"),
                 "--model", str(files / "model.keras"), "--n-permutations", "50", *extra])


def test_adapt_writes_the_adapted_model_and_a_before_after_report(adapt_files, capsys):
    from shiftkit.adapt import load_adapter

    out, js = adapt_files / "ls.keras", adapt_files / "ls.json"
    assert _adapt(adapt_files, "--adapter", "label_shift", "--out", str(out), "--json", str(js)) == 0
    result = json.loads(js.read_text())
    assert result["class"] == "LabelShiftAdapter" and result["selection"] is None
    assert result["report"]["target_accuracy_before"] is not None  # the target's labels score the report
    assert result["source_rows"]["held_out"] == pytest.approx(0.2 * sum(result["source_rows"].values()), abs=1)
    assert type(load_adapter(out)).__name__ == "LabelShiftAdapter"
    assert "written to" in capsys.readouterr().out


def test_adapt_scores_label_trained_adapters_on_held_back_target_rows(adapt_files, capsys):
    """copy trains on target labels: by default 30% of them (stratified) are held back and scored, never
    trained on, and the saved model is the one scored; --target-test-size 0 trains on all and says the
    figure is in-sample. (It trained on every labelled row and scored on the same rows.)"""
    from shiftkit.adapt import load_adapter

    n_target, y_target = len(np.load(adapt_files / "tgt.npz")["y"]), np.load(adapt_files / "tgt.npz")["y"]
    out, js = adapt_files / "copy.keras", adapt_files / "copy.json"
    assert _adapt(adapt_files, "--adapter", "copy", "--out", str(out), "--epochs", "1", "--json", str(js)) == 0
    result, text = json.loads(js.read_text()), capsys.readouterr().out
    rows = result["target_rows"]
    assert result["target_labels_used_for_training"] is True and result["accuracy_in_sample"] is False
    assert rows["adapted_on"] + rows["scored"] == n_target
    assert rows["scored"] == sum(round(0.3 * c) for c in np.bincount(y_target))  # stratified, per class
    assert rows["labels_used_for_training"] == rows["adapted_on"]
    assert "in-sample" not in text and f"the other {rows['scored']}" in text
    # the report is on the held-back rows only, scored with the saved model
    report = result["report"]
    assert report["before"]["n_target"] == report["after"]["n_target"] == rows["scored"]
    from shiftkit.adapt.training import holdout_split

    _, test = holdout_split(y_target, 0.3, 0)
    x_test = np.load(adapt_files / "tgt.npz")["x"][test]
    saved = np.mean(load_adapter(out).predict_classes(x_test) == y_target[test])
    assert report["target_accuracy_after"] == pytest.approx(saved)

    assert _adapt(adapt_files, "--adapter", "copy", "--out", str(out), "--epochs", "1", "--json", str(js),
                  "--target-test-size", "0") == 0
    result = json.loads(js.read_text())
    assert result["accuracy_in_sample"] is True and result["target_rows"]["scored"] == n_target
    assert "in-sample" in capsys.readouterr().out


def test_adapt_label_free_adapters_see_and_score_every_target_row(adapt_files, capsys):
    js = adapt_files / "ls2.json"
    assert _adapt(adapt_files, "--adapter", "label_shift", "--out", str(adapt_files / "ls2.keras"),
                  "--json", str(js)) == 0
    result = json.loads(js.read_text())
    n_target = len(np.load(adapt_files / "tgt.npz")["y"])
    assert result["target_rows"] == {"adapted_on": n_target, "scored": n_target, "labels_used_for_training": 0}
    assert "learnt from" not in capsys.readouterr().out


def test_adapt_refuses_splits_that_lose_a_class(adapt_files, tmp_path, capsys):
    src = np.load(adapt_files / "src.npz")
    y = src["y"].copy()
    rare = np.flatnonzero(y == 1)[:1]  # one row of class 1 left: it cannot be in both source parts
    keep = np.concatenate([np.flatnonzero(y == 0), rare])
    np.savez(tmp_path / "rare.npz", x=src["x"][keep], y=y[keep])
    code = main(["adapt", "--source", str(tmp_path / "rare.npz"), "--target", str(adapt_files / "tgt.npz"),
                 "--model", str(adapt_files / "model.keras"), "--out", str(tmp_path / "x.keras"),
                 "--adapter", "label_shift", "--n-permutations", "50"])
    err = capsys.readouterr().err
    assert code == 2 and "held-out part of the source" in err and "no row of class(es) ['1']" in err
    assert "--val-size" in err
    tgt = np.load(adapt_files / "tgt.npz")
    few = np.concatenate([np.flatnonzero(tgt["y"] == 0)[:4], np.flatnonzero(tgt["y"] == 1)[:1]])
    np.savez(tmp_path / "one.npz", x=tgt["x"][few], y=tgt["y"][few])  # one row would be held back
    code = main(["adapt", "--source", str(adapt_files / "src.npz"), "--target", str(tmp_path / "one.npz"),
                 "--model", str(adapt_files / "model.keras"), "--out", str(tmp_path / "x.keras"),
                 "--adapter", "copy", "--n-permutations", "50"])
    err = capsys.readouterr().err
    assert code == 2 and "--target-test-size" in err and "too few labelled rows" in err
    assert _adapt(adapt_files, "--adapter", "copy", "--out", str(tmp_path / "x.keras"),
                  "--target-test-size", "1") == 2
    assert "--target-test-size" in capsys.readouterr().err


@pytest.mark.slow
def test_adapt_auto_reports_the_choice(adapt_files, capsys):
    js = adapt_files / "auto.json"
    assert _adapt(adapt_files, "--out", str(adapt_files / "auto.keras"), "--epochs", "1", "--json", str(js)) == 0
    sel = json.loads(js.read_text())["selection"]
    assert sel["scores"][0]["name"] == "source_only" and sel["chosen"] in [s["name"] for s in sel["scores"]]
    assert "chosen:" in capsys.readouterr().out


def test_adapt_bad_input_exits_2_with_a_message(adapt_files, capsys):
    unlabelled = ["adapt", "--source", str(adapt_files / "src_unlabelled.npz"), "--target",
                  str(adapt_files / "tgt.npz"), "--model", str(adapt_files / "model.keras"),
                  "--out", str(adapt_files / "x.keras"), "--adapter", "mmd"]
    assert main(unlabelled) == 2
    assert "--source has no labels" in capsys.readouterr().err
    no_target_labels = ["adapt", "--source", str(adapt_files / "src.npz"), "--target",
                        str(adapt_files / "tgt_unlabelled.npz"), "--model", str(adapt_files / "model.keras"),
                        "--out", str(adapt_files / "x.keras"), "--adapter", "copy"]
    assert main(no_target_labels) == 2  # it said x_target was missing, in Python terms
    err = capsys.readouterr().err
    assert "--adapter copy trains on labelled target rows" in err and "mmd" in err
    assert _adapt(adapt_files, "--adapter", "mmd", "--out", str(adapt_files / "x.h5")) == 2
    assert "end the name with .keras" in capsys.readouterr().err
    assert _adapt(adapt_files, "--adapter", "mmd", "--out", str(adapt_files / "x.keras"), "--val-size", "1.5") == 2
    assert "--val-size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _adapt(adapt_files, "--adapter", "magic", "--out", str(adapt_files / "x.keras"))


# ------------------------------------------------------------------ issue 12: check --bbsd
def test_check_bbsd_flag_adds_the_criterion(adapt_files, tmp_path, capsys):
    files = adapt_files
    base = ["check", "--reference", str(files / "src.npz"), "--target", str(files / "tgt.npz"), *FAST]
    out = tmp_path / "bbsd.json"
    code = main([*base, "--model", str(files / "model.keras"), "--bbsd", "--json", str(out)])
    data = json.loads(out.read_text())
    names = [c["name"] for c in data["criteria"]]
    assert "BBSD (softmax)" in names and code == (1 if data["failed_criteria"] else 0)
    bbsd = next(c for c in data["criteria"] if c["name"] == "BBSD (softmax)")
    assert bbsd["threshold"] == pytest.approx(0.01 / 4)  # input, feature, label (model + labels), BBSD
    assert data["report"]["bbsd"]["test"] == "ks"
    # exit codes unchanged: --bbsd without a model is a usage error (2) with a message
    capsys.readouterr()
    assert main([*base, "--bbsd"]) == 2
    assert "--model" in capsys.readouterr().err


def test_check_target_priors_reach_the_accuracy_estimate(adapt_files, tmp_path, capsys):
    """--target-priors (a known prevalence) by class value or in class order: the estimated accuracy uses it;
    a class the reference does not have, or text that is not proportions, is a usage error (exit 2)."""
    files = adapt_files
    tgt = np.load(files / "tgt.npz")
    np.savez(tmp_path / "tgt_unlabelled.npz", x=tgt["x"])
    q = np.bincount(tgt["y"], minlength=2) / len(tgt["y"])
    base = ["check", "--reference", str(files / "src.npz"), "--target", str(tmp_path / "tgt_unlabelled.npz"),
            "--model", str(files / "model.keras"), *FAST, "--no-diagnosis", "--min-estimated-accuracy", "0.5"]
    for i, given in enumerate((f"0={q[0]:.4f},1={q[1]:.4f}", f"{q[0]:.4f},{q[1]:.4f}")):
        out = tmp_path / f"priors{i}.json"
        code = main([*base, "--target-priors", given, "--json", str(out)])
        acc = json.loads(out.read_text())["report"]["target_accuracy"]
        assert code in (0, 1) and acc["method"] == "cot"  # kinds unknown (no diagnosis), proportions given
        assert acc["estimate"]["target_priors"] == pytest.approx(list(q), abs=1e-4)
    capsys.readouterr()
    assert main([*base, "--target-priors", "0=0.5,7=0.5"]) == 2
    assert "unknown class(es) ['7']" in capsys.readouterr().err
    assert main([*base, "--target-priors", "half,half"]) == 2
    assert "--target-priors 'half,half' is not a list of proportions" in capsys.readouterr().err


def test_report_shows_the_label_names_not_their_codes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name, n in (("src.csv", 120), ("tgt.csv", 100)):
        frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
        frame["label"] = rng.choice(["neg", "mid", "pos"], size=n)
        frame.to_csv(tmp_path / name, index=False)
    assert main(["report", "--source", str(tmp_path / "src.csv"), "--target", str(tmp_path / "tgt.csv"),
                 "--label-column", "label", "--n-permutations", "50"]) in (0, 1)
    table = capsys.readouterr().out.split("labels (target from labels)", 1)[1].split("total variation", 1)[0]
    assert all(name in table for name in ("neg", "mid", "pos")), table
