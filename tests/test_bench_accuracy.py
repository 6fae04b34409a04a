"""Smoke test of benchmarks/bench_accuracy_estimation.py: one fast cell, written where the test says, every
estimator (COT and the known-proportions pick included) in its record, and `--from-cells` reproducing it."""

from __future__ import annotations

import importlib
import json
import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def test_one_fast_cell_and_its_re_estimate(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    bench = importlib.import_module("bench_accuracy_estimation")
    monkeypatch.setattr(bench, "CELLS_DIR", tmp_path / "cells")
    out = tmp_path / "acc.json"
    argv = ["--fast", "--scenarios", "hospitals-label", "--seeds", "399", "--json", str(out)]
    assert bench.main(argv) == 0
    cell = json.loads(out.read_text())["cells"][0]
    assert {"source", "atc", "doc", "cot", "label_shift", "picked", "picked_known"} <= set(cell["estimates"])
    assert 0.0 <= cell["truth"] <= 1.0 and cell["interval"][0] <= cell["estimates"]["picked"] <= cell["interval"][1]
    assert (tmp_path / "cells" / "hospitals-label-399.npz").exists()
    again = tmp_path / "again.json"
    assert bench.main([*argv[:-2], "--from-cells", "--json", str(again)]) == 0
    assert json.loads(again.read_text())["cells"][0]["estimates"] == cell["estimates"]
    sys.modules.pop("bench_accuracy_estimation", None)
