"""The adapter-defaults benchmark (`benchmarks/bench_adapt.py defaults`): its splits, criteria and a smoke run.

The smoke run uses `--fast` (capped epochs, one scenario) and writes to a temporary results file,
never the committed `benchmarks/RESULTS.md`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _defaults_scenarios as ds  # noqa: E402
import bench_adapt  # noqa: E402


def test_pick_labeled_is_balanced_and_disjoint_from_the_test_set():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    x = np.arange(200, dtype=np.float32)[:, None]
    xl, yl, xt, yt = ds.pick_labeled(x, y, 10, np.random.default_rng(1))
    assert np.bincount(yl).tolist() == [10, 10, 10]
    assert len(yl) + len(yt) == 200
    assert not set(xl[:, 0]) & set(xt[:, 0])  # no labelled row is scored
    np.testing.assert_array_equal(y[xl[:, 0].astype(int)], yl)
    np.testing.assert_array_equal(y[xt[:, 0].astype(int)], yt)


def test_pick_labeled_refuses_a_class_without_test_rows():
    with pytest.raises(ValueError, match="class 1"):
        ds.pick_labeled(np.zeros((13, 1)), np.array([0] * 11 + [1] * 2), 10, np.random.default_rng(0))


def test_rotate_contrast_noise_changes_the_images_within_range():
    x = np.zeros((20, 8, 8, 1), np.float32)
    x[:, 2:6, 3:5] = 1.0
    out = ds.rotate_contrast_noise(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - x).mean() > 0.1
    again = ds.rotate_contrast_noise(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)  # seeded


def _cell(seed, src, copy, ft, hand, copy_grid, ft_grid):
    def res(acc):
        return {"accuracy": acc, "epochs": 7, "seconds": 1.0, "args": {}}

    return {"seed": seed, "source_only": src, "by_hand": res(hand),
            "CopyAdapter": {"default": res(copy), "grid_rate": "learning_rate",
                            "grid": {repr(lr): res(a) for lr, a in copy_grid.items()}},
            "FineTuneAdapter": {"default": res(ft), "grid_rate": "fine_tune_learning_rate",
                                "grid": {repr(lr): res(a) for lr, a in ft_grid.items()}}}


def test_criteria_use_the_means_and_the_tolerances():
    good = [_cell(s, 0.5, 0.8, 0.85, 0.86, {1e-3: 0.7, 1e-2: 0.82}, {1e-3: 0.87, 1e-2: 0.6}) for s in (0, 1)]
    # Copy below source only on the mean (one seed above), FineTune 0.04 under the grid and 0.025 under by hand.
    bad = [_cell(0, 0.6, 0.65, 0.80, 0.825, {1e-3: 0.7}, {1e-3: 0.84}),
           _cell(1, 0.6, 0.50, 0.80, 0.825, {1e-3: 0.7}, {1e-3: 0.84})]
    summary = bench_adapt.summarize_defaults({"good": good, "bad": bad})
    assert summary["good"]["pass"] and all(summary["good"]["criteria"].values())
    assert summary["good"]["CopyAdapter_best_lr"] == repr(1e-2)
    assert summary["good"]["FineTuneAdapter_best"][0] == pytest.approx(0.87)
    crit = summary["bad"]["criteria"]
    assert not summary["bad"]["pass"]
    assert crit["Copy > source"] is False  # mean 0.575 < 0.6
    assert crit["FineTune > source"] is True
    assert crit["Copy within 0.03 of grid"] is False  # 0.575 vs 0.7
    assert crit["FineTune within 0.03 of grid"] is False  # 0.80 vs 0.84
    assert crit["FineTune within 0.02 of by-hand"] is False  # 0.80 vs 0.825
    lines = "\n".join(bench_adapt.defaults_tables(summary))
    assert "| bad | FAIL (-0.025) | PASS (+0.200)" in lines
    assert "| good |" in lines and "PASS |" in lines


@pytest.mark.slow
def test_fast_run_writes_its_section_and_json(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# shiftkit benchmark results\n\n## Other (x.py)\n\nkept\n")
    rc = bench_adapt.main(["defaults", "--fast", "--scenarios", "hospitals-mlp", "--results", str(results)])
    assert rc == 0
    text = results.read_text()
    assert "## Other (x.py)\n\nkept" in text
    assert bench_adapt.DEFAULTS_SECTION in text and "Smoke run" in text
    assert "| hospitals-mlp |" in text and ("PASS" in text or "FAIL" in text)
    raw = json.loads((tmp_path / bench_adapt.DEFAULTS_JSON.name).read_text())
    (cell,) = raw["cells"]["hospitals-mlp"]
    assert 0.0 <= cell["source_only"] <= 1.0
    assert set(cell["CopyAdapter"]["grid"]) == {repr(lr) for lr in bench_adapt.FAST_LR_GRID}
    ft = cell["FineTuneAdapter"]["default"]
    assert cell["by_hand"]["epochs"] == ft["epochs"] <= ft["epochs_total"]  # the same epoch budget
    assert cell["by_hand_all_epochs"]["epochs"] == ft["epochs_total"]


def test_a_run_whose_cells_saw_other_defaults_writes_nothing(tmp_path, monkeypatch):
    # The adapters' code changed between the start and a cell (another process imported other defaults).
    cell = _cell(100, 0.5, 0.8, 0.85, 0.86, {1e-3: 0.7}, {1e-3: 0.87})
    monkeypatch.setattr(bench_adapt, "defaults_in_effect", lambda: "CopyAdapter(learning_rate=0.01)")
    monkeypatch.setattr(bench_adapt, "_defaults_cell_job", lambda *a: {**cell, "cell_seconds": 0.0,
                                                                        "defaults": "CopyAdapter(learning_rate=0.003)"})
    results = tmp_path / "RESULTS.md"
    rc = bench_adapt.main(["defaults", "--scenarios", "hospitals-mlp", "--seeds", "100", "--results", str(results)])
    assert rc == 1
    assert not results.exists() and not (tmp_path / bench_adapt.DEFAULTS_JSON.name).exists()


def test_by_hand_copy_predicts_what_the_source_predicts():
    # Keras 3: clone_model + set_weights alone leaves an adapted Normalization layer normalising with
    # its build-time state; the by-hand baseline must start from the source model itself.
    import keras

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 5)) * [1, 10, 100, 0.1, 5] + [50, -20, 300, 0, 7]).astype("float32")
    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization(axis=-1)
    norm.adapt(x)
    source = keras.Sequential([keras.Input((5,)), norm, keras.layers.Dense(4, activation="relu"),
                               keras.layers.Dense(2, activation="softmax")])
    copy = bench_adapt.copy_by_hand(source)
    np.testing.assert_allclose(copy.predict(x, verbose=0), source.predict(x, verbose=0), atol=1e-6)
    kernel = np.array(keras.ops.convert_to_numpy(source.layers[-1].kernel))
    kernel[:, 0] += 1.0
    source.layers[-1].kernel.assign(kernel)  # the copy's weights are its own
    assert not np.allclose(copy.predict(x, verbose=0), source.predict(x, verbose=0))
