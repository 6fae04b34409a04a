"""Every example runs end to end in its fast mode, as CI runs it, and prints its results table.

Each example runs in a subprocess the way a user runs it (`python examples/<name>.py --fast`);
the tests check the exit code, that the final table has every expected row, and a few facts that
hold by a wide margin at the fast settings. `benchmarks/bench_examples.py --quick` runs on two of
them and must write only its own section of a results file (a temporary one, never the committed
RESULTS.md). About two minutes in all on 2 CPU cores.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)
    assert proc.returncode == 0, (
        f"{' '.join(args)} exited with {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return proc


def _table(stdout: str, marker: str, methods: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """method -> {column: value} from the table printed after the last line starting with `marker`.

    The table is `DataFrame.to_string()`: a line of column names, a line "method", then one line per
    row, the row's name first (names may hold spaces; column names do not).
    """
    lines = stdout[stdout.rindex(marker):].splitlines()[1:]
    columns = lines[0].split()
    assert lines[1].strip() == "method", lines[:3]
    rows = {}
    for method in methods:
        line = next((ln for ln in lines[2:] if ln.startswith(method + " ")), None)
        assert line is not None, f"no row {method!r} in the table:\n" + "\n".join(lines[:12])
        values = [float(v) for v in line[len(method):].split()]
        assert len(values) == len(columns), (line, columns)
        rows[method] = dict(zip(columns, values))
    assert len([ln for ln in lines[2:2 + len(methods) + 1] if ln.strip()]) == len(methods), "unexpected rows"
    return rows


def test_quickstart_fast_measures_adapts_and_measures_again():
    out = _run(["examples/quickstart.py", "--fast"]).stdout
    assert "shiftkit shift report" in out and "before | after (MMDAdapter)" in out
    assert "feature MMD^2 normalized" in out and "target accuracy" in out
    rows = _table(out, "Results", ("source_only", "MMDAdapter"))
    for row in rows.values():
        assert 0.5 <= row["target_accuracy"] <= 1.0
        assert 0.0 < row["feature_p_value"] <= 1.0


def test_medical_hospitals_fast_diagnoses_and_runs_every_method():
    out = _run(["examples/medical_hospitals.py", "--fast"]).stdout
    assert "diagnosis:" in out and "recommendation:" in out
    methods = ("source_only", "target_only", "copy", "finetune", "mmd", "label_shift")
    rows = _table(out, "Results on the target hospital", methods)
    for method, row in rows.items():
        for metric in ("accuracy", "balanced_accuracy", "macro_f1", "auroc"):
            assert 0.0 <= row[metric] <= 1.0, (method, metric, row)
        assert 0.0 <= row["ece"] <= 1.0
        assert row["shift_p_before"] == rows["source_only"]["shift_p_before"]  # one "before" for all
    # The breast-cancer model transfers well: the source model stays far above chance on the target.
    assert rows["source_only"]["accuracy"] > 0.85
    # A prior correction does not move the features.
    assert rows["label_shift"]["shift_mmd2_normalized_after"] == pytest.approx(
        rows["source_only"]["shift_mmd2_normalized_after"], abs=1e-3)


def test_wearable_to_home_fast_adapts_to_the_home_device():
    out = _run(["examples/wearable_to_home.py", "--fast"]).stdout
    assert "Shift before adaptation" in out and "ShiftMonitor" in out
    methods = ("source_only", "target_only", "CopyAdapter", "FineTuneAdapter", "MMDAdapter")
    rows = _table(out, "Results on the home-device test windows", methods)
    for row in rows.values():
        assert 0.0 <= row["accuracy"] <= 1.0 and math.isfinite(row["feature_mmd2_normalized"])
    assert rows["source_only"]["target_labels"] == 0 and rows["MMDAdapter"]["target_labels"] == 0
    assert rows["CopyAdapter"]["target_labels"] == 20  # 5 per activity
    # The device shift costs the source model accuracy, and the adapters recover part of it.
    assert rows["source_only"]["feature_p_value"] <= 0.05
    assert max(rows[m]["accuracy"] for m in ("CopyAdapter", "FineTuneAdapter", "MMDAdapter")) > \
        rows["source_only"]["accuracy"] + 0.05
    # MMD training pulls the two devices' features together.
    assert rows["MMDAdapter"]["feature_mmd2_normalized"] < rows["source_only"]["feature_mmd2_normalized"] / 2
    # The monitor logged a curve for every training.
    curves = out[out.rindex("ShiftMonitor"):]
    for method in methods:
        assert f"\n{method} " in curves, method


def test_screening_prevalence_fast_estimates_and_corrects_the_priors():
    out = _run(["examples/screening_prevalence.py", "--fast"]).stdout
    assert "label ratios" in out.lower() and "class imbalance, screening" in out
    for estimator in ("BBSE", "EM, uncalibrated", "EM, calibrated (BCTS)"):
        assert estimator in out
    methods = ("source_only", "LabelShiftAdapter (bbse)", "LabelShiftAdapter (em)",
               "LabelShiftAdapter (em, calibrate=False)", "oracle priors")
    rows = _table(out, "Results on the screening population", methods)
    assert rows["oracle priors"]["prior_abs_error"] == 0.0
    source_error = rows["source_only"]["prior_abs_error"]
    assert source_error > 0.2  # the hospital's prevalence is far from the screening one
    for method in methods[1:4]:
        # Every estimate lands much nearer the truth than the hospital's prevalence.
        assert rows[method]["prior_abs_error"] < source_error / 2, (method, rows[method])
    for row in rows.values():
        assert row["log_loss"] >= 0.0 and 0.0 <= row["balanced_accuracy"] <= 1.0


def test_bench_examples_quick_writes_only_its_own_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    other = "## Adapters on corrupted digits (bench_adapt.py)\n\nanother benchmark's section: keep me\n"
    results.write_text("# shiftkit benchmark results\n\n" + other)
    _run(["benchmarks/bench_examples.py", "--quick", "--examples", "quickstart", "screening_prevalence",
          "--results", str(results)])
    text = results.read_text()
    assert other.strip() in text  # the other section survives, unchanged
    section = text[text.index("## Examples over seeds (bench_examples.py)"):]
    assert "| source_only |" in section and "| LabelShiftAdapter (em) |" in section and "±" in section
    assert "examples/quickstart.py" in section and "--quick" in section
    # Running it again replaces the section instead of appending a second one.
    _run(["benchmarks/bench_examples.py", "--quick", "--examples", "screening_prevalence", "--results", str(results)])
    text = results.read_text()
    assert text.count("## Examples over seeds (bench_examples.py)") == 1
    assert other.strip() in text
