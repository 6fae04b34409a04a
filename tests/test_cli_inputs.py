"""`shiftkit check | snapshot | monitor`: stale snapshots, inputs that must not be overwritten, index columns,
--target-priors values, and messages that say what to fix (regressions of a CLI sweep)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shiftkit.cli import main

FAST = ["--n-permutations", "200", "--no-diagnosis"]


def _frame(seed, n=300):
    rng = np.random.default_rng(seed)
    f = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    f["label"] = (f.a + rng.normal(size=n) > 0).astype(int)
    return f


def _model(seed, names):
    """A small untrained classifier; `names`: prefix of its layer names (None: Keras' own numbering)."""
    import keras

    keras.utils.set_random_seed(seed)
    named = (lambda s: {"name": f"{names}_{s}"}) if names else (lambda s: {})
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu", **named("hidden")),
                             keras.layers.Dense(2, activation="softmax", **named("head"))])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inputs")
    _frame(1).to_csv(tmp / "ref.csv", index=False)
    _frame(2).to_csv(tmp / "tgt.csv", index=False)
    _model(0, "m").save(tmp / "v1.keras")
    _model(1, "m").save(tmp / "v2.keras")        # retrained: same architecture and layer names, other weights
    _model(2, None).save(tmp / "v3.keras")       # other weights and Keras' own layer names
    assert main(["snapshot", "--reference", str(tmp / "ref.csv"), "--label-column", "label", "--model",
                 str(tmp / "v1.keras"), "--out", str(tmp / "ref_v1.npz")]) == 0
    return tmp


# ------------------------------------------------------------------ 1. a snapshot used with another model
@pytest.mark.parametrize("model", ["v2.keras", "v3.keras"])
def test_check_refuses_a_snapshot_made_with_another_model(files, model, capsys):
    capsys.readouterr()
    code = main(["check", "--reference", str(files / "ref_v1.npz"), "--target", str(files / "tgt.csv"),
                 "--label-column", "label", "--model", str(files / model), *FAST])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "snapshot was made with a different model" in err and "shiftkit snapshot" in err and "--layer" not in err


def test_check_with_the_snapshots_own_model_still_runs(files, capsys):
    code = main(["check", "--reference", str(files / "ref_v1.npz"), "--target", str(files / "tgt.csv"),
                 "--label-column", "label", "--model", str(files / "v1.keras"), *FAST])
    assert code in (0, 1), capsys.readouterr().err


def test_monitor_refuses_a_snapshot_made_with_another_model(files, capsys):
    capsys.readouterr()
    code = main(["monitor", "--reference", str(files / "ref_v1.npz"), "--target", str(files / "tgt.csv"),
                 "--model", str(files / "v2.keras"), "--window", "50"])
    assert code == 2 and "different model" in capsys.readouterr().err


# ------------------------------------------------------------------ 2. snapshot --label-column typo
def test_snapshot_refuses_a_label_column_the_file_does_not_have(files, tmp_path, capsys):
    capsys.readouterr()
    code = main(["snapshot", "--reference", str(files / "ref.csv"), "--label-column", "lable",
                 "--out", str(tmp_path / "s.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "'lable' is not a column" in err and "'label'" in err
    assert not (tmp_path / "s.npz").exists()


# ------------------------------------------------------------------ 3. outputs that would overwrite inputs
@pytest.mark.parametrize("argv", [
    ["check", "--reference", "{d}/r.csv", "--target", "{d}/t.csv", "--json", "{d}/r.csv"],
    ["check", "--reference", "{d}/r.csv", "--target", "{d}/t.csv", "--html", "{d}/./t.csv"],
    ["snapshot", "--reference", "{d}/r.csv", "--out", "{d}/r.csv"],
    ["monitor", "--reference", "{d}/s.npz", "--target", "{d}/t.csv", "--jsonl", "{d}/s.npz"],
])
def test_an_output_path_that_is_an_input_file_is_refused(files, tmp_path, argv, capsys):
    for name in ("r.csv", "t.csv"):
        (tmp_path / name).write_bytes((files / "ref.csv").read_bytes())
    (tmp_path / "s.npz").write_bytes((files / "ref_v1.npz").read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert main([a.format(d=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "is also an input file" in err and "choose another" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_snapshot_out_must_be_an_npz(files, tmp_path, capsys):
    capsys.readouterr()
    code = main(["snapshot", "--reference", str(files / "ref.csv"), "--out", str(tmp_path / "ref.txt")])
    assert code == 2 and "end the name with .npz" in capsys.readouterr().err
    assert not (tmp_path / "ref.txt").exists()


# ------------------------------------------------------------------ 4. the row index pandas writes by default
def test_the_row_index_column_is_not_measured(files, tmp_path, capsys):
    ref, tgt = _frame(1), _frame(2)
    ref.to_csv(tmp_path / "ref.csv")                    # index 0..299
    tgt.index = range(300, 600)
    tgt.to_csv(tmp_path / "tgt.csv")                    # index 300..599: would be a huge "shift"
    capsys.readouterr()
    code = main(["check", "--reference", str(tmp_path / "ref.csv"), "--target", str(tmp_path / "tgt.csv"),
                 "--label-column", "label", *FAST, "--json", str(tmp_path / "c.json")])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "row index" in err and "index=False" in err and err.count("row index") == 2  # one note per file
    criteria = json.loads((tmp_path / "c.json").read_text())["criteria"]
    assert all(c["status"] == "pass" for c in criteria)
    # a snapshot of the indexed file, then a check and a monitor of indexed targets: the same three features
    assert main(["snapshot", "--reference", str(tmp_path / "ref.csv"), "--label-column", "label",
                 "--out", str(tmp_path / "s.npz")]) == 0
    assert main(["check", "--reference", str(tmp_path / "s.npz"), "--target", str(tmp_path / "tgt.csv"),
                 "--label-column", "label", *FAST]) == 0
    assert main(["check", "--reference", str(tmp_path / "s.npz"), "--target", str(files / "tgt.csv"),
                 "--label-column", "label", *FAST]) == 0
    assert main(["monitor", "--reference", str(tmp_path / "s.npz"), "--target", str(tmp_path / "tgt.csv"),
                 "--label-column", "label", "--window", "50", "--horizon", "10"]) == 0
    assert main(["monitor", "--reference", str(tmp_path / "s.npz"), "--target", str(tmp_path / "tgt.csv"),
                 "--label-column", "label", "--window", "50", "--horizon", "10", "--chunk-rows", "64"]) == 0


# ------------------------------------------------------------------ 6. messages that say what to fix
def _err(argv, capsys):
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def _monitor_times(files, tmp_path, times):
    frame = _frame(3, n=len(times))
    frame["ts"] = times
    frame.to_csv(tmp_path / "stream.csv", index=False)
    return ["monitor", "--reference", str(files / "ref_v1.npz"), "--target", str(tmp_path / "stream.csv"),
            "--label-column", "label", "--time-column", "ts", "--window", "50"]


def test_a_bad_time_value_is_named_with_its_row(files, tmp_path, capsys):
    times = pd.date_range("2024-01-01", periods=120, freq="h").astype(str).tolist()
    times[70] = "n/a-sensor-reset"
    err = _err(_monitor_times(files, tmp_path, times), capsys)
    assert "'n/a-sensor-reset'" in err and "row 71" in err and "2024-01-01 00:00:00" not in err


def test_two_date_formats_in_one_time_column_are_named(files, tmp_path, capsys):
    times = pd.date_range("2024-01-01", periods=120, freq="h").strftime("%Y-%m-%d %H:%M").tolist()
    times[90:] = pd.date_range("2024-01-05", periods=30, freq="h").strftime("%d/%m/%Y %H:%M").tolist()
    err = _err(_monitor_times(files, tmp_path, times), capsys)
    assert "one format" in err and "row 91" in err and "'05/01/2024 00:00'" in err


def test_a_scalar_warn_in_a_config_says_it_must_be_a_table(tmp_path, capsys):
    from shiftkit.check_config import CheckConfig

    path = tmp_path / "c.toml"
    path.write_text("version = 1\nwarn = 0.05\n")
    with pytest.raises(ValueError, match=r"\[warn\] table") as exc:
        CheckConfig.load(path)
    assert "p_value = 0.05" in str(exc.value) and "not iterable" not in str(exc.value)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_with_another_separator_says_so(files, tmp_path, sep, capsys):
    for name in ("r.csv", "t.csv"):
        _frame(1).to_csv(tmp_path / name, index=False, sep=sep)
    for argv in (["check", "--reference", str(tmp_path / "r.csv"), "--target", str(tmp_path / "t.csv"), *FAST],
                 ["check", "--reference", str(tmp_path / "r.csv"), "--target", str(tmp_path / "t.csv"), *FAST,
                  "--label-column", "label"],
                 ["check", "--reference", str(files / "ref_v1.npz"), "--target", str(tmp_path / "t.csv"), *FAST]):
        err = _err(argv, capsys)
        assert "separated by" in err and repr(sep) in err and "comma" in err


@pytest.mark.parametrize("cell, hint", [("?", "not a number"), ("12,345.6", "thousands separator")])
def test_one_bad_cell_in_a_numeric_column_is_named_with_its_row(files, tmp_path, cell, hint, capsys):
    frame = _frame(2).astype({"b": object})
    frame.loc[41, "b"] = cell
    frame.to_csv(tmp_path / "t.csv", index=False)
    for ref in (files / "ref.csv", files / "ref_v1.npz"):
        for chunk in ("100000", "16"):
            err = _err(["check", "--reference", str(ref), "--target", str(tmp_path / "t.csv"), "--label-column",
                        "label", "--chunk-rows", chunk, *FAST], capsys)
            assert repr(cell) in err and "row 42" in err and "'b'" in err and hint in err, err


def test_values_beyond_float32_say_which_file_and_column_overflow(files, tmp_path, capsys):
    frame = _frame(2)
    frame.loc[5, "a"] = 1.5e39
    frame.to_csv(tmp_path / "t.csv", index=False)
    np.savez(tmp_path / "t.npz", x=frame[["a", "b", "c"]].to_numpy())
    runs = [["check", "--reference", str(files / "ref.csv"), "--target", str(tmp_path / "t.csv"), "--label-column",
             "label", *FAST],
            ["check", "--reference", str(files / "ref_v1.npz"), "--target", str(tmp_path / "t.csv"),
             "--label-column", "label", *FAST],
            ["snapshot", "--reference", str(tmp_path / "t.npz"), "--out", str(tmp_path / "s.npz")]]
    for argv in runs:
        err = _err(argv, capsys)
        assert "float32" in err and "overflow" in err and "RuntimeWarning" not in err
        assert "'t.csv'" in err and "'a'" in err if argv[0] == "check" else "'t.npz'" in err


def test_a_folder_as_target_says_what_reads_folders(files, tmp_path, capsys):
    (tmp_path / "parts").mkdir()
    _frame(2).to_csv(tmp_path / "parts" / "p0.csv", index=False)
    for ref in (files / "ref.csv", files / "ref_v1.npz"):
        err = _err(["check", "--reference", str(ref), "--target", str(tmp_path / "parts"), *FAST], capsys)
        assert "is a folder" in err and "--engine dask" in err and "shiftkit monitor" in err
    err = _err(["snapshot", "--reference", str(tmp_path / "parts"), "--out", str(tmp_path / "s.npz")], capsys)
    assert "is a folder" in err and "--engine dask" in err


@pytest.mark.parametrize("preset", ["strict", "images"])
def test_a_preset_that_turns_bbsd_on_says_so_without_a_model(files, preset, capsys):
    err = _err(["check", "--reference", str(files / "ref.csv"), "--target", str(files / "tgt.csv"),
                "--label-column", "label", "--preset", preset, *FAST], capsys)
    assert f"--preset {preset}" in err and "--model" in err and "bbsd=True" not in err


def test_target_priors_without_a_model_name_the_flags(files, capsys):
    err = _err(["check", "--reference", str(files / "ref.csv"), "--target", str(files / "tgt.csv"),
                "--label-column", "label", "--target-priors", "0.5,0.5", *FAST], capsys)
    assert "--target-priors" in err and "--model" in err and "accuracy_target_priors" not in err


def test_complex_arrays_are_refused(tmp_path, capsys):
    np.savez(tmp_path / "r.npz", x=np.ones((20, 2)) * (1 + 2j))
    err = _err(["snapshot", "--reference", str(tmp_path / "r.npz"), "--out", str(tmp_path / "s.npz")], capsys)
    assert "complex" in err and "x.real" in err
