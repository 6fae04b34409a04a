"""The corrupted-digits example and the adapter benchmark run end to end (as CI runs them).

Both run in a subprocess, the way a user runs them: `examples/digits_shift.py --fast` and
`benchmarks/bench_adapt.py --quick --no-peers --results <tmp>` (never the committed RESULTS.md).
About a minute together on 2 cores.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
METHODS = ("source only", "CopyAdapter", "FineTuneAdapter", "MMDAdapter")

pytestmark = pytest.mark.slow


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return subprocess.run([sys.executable, *args], check=False, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _failure(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def _accuracy_rows(stdout: str) -> dict[str, float]:
    """method -> target accuracy, from the example's final results table."""
    table = stdout[stdout.rindex("Target-test accuracy"):]
    rows = {}
    for method in METHODS:
        # method, target labels (e.g. "100 (10/class)"), then the accuracy: the first 0.xxx / 1.000.
        match = re.search(rf"^{re.escape(method)}\s+.*?\s(0\.\d{{3}}|1\.000)\s", table, flags=re.MULTILINE)
        assert match, f"no row for {method!r} in the results table:\n{table}"
        rows[method] = float(match.group(1))
    return rows


def test_digits_shift_example_fast_lists_every_method():
    proc = _run(["examples/digits_shift.py", "--fast"], timeout=240)
    assert proc.returncode == 0, _failure(proc)
    out = proc.stdout
    rows = _accuracy_rows(out)
    assert all(0.0 <= acc <= 1.0 for acc in rows.values())
    # The scenario is chosen so that the source-only model really drops, and adaptation recovers part
    # of it: both hold by a wide margin at the fast settings (seed 0).
    assert "Source CNN accuracy" in out
    assert rows["FineTuneAdapter"] > rows["source only"] + 0.05, rows
    assert rows["MMDAdapter"] > rows["source only"] + 0.05, rows
    # The before/after feature-space comparison is printed.
    assert "feature MMD^2 normalized" in out and "before" in out and "after" in out
    assert "Epoch 1/" not in out  # no Keras progress output in fast mode


def test_bench_adapt_quick_writes_only_its_own_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    other = "## MMD permutation test (bench_mmd.py)\n\nanother benchmark's section: keep me\n"
    results.write_text("# shiftkit benchmark results\n\n" + other)
    proc = _run(["benchmarks/bench_adapt.py", "--quick", "--no-peers", "--results", str(results)], timeout=240)
    assert proc.returncode == 0, _failure(proc)
    text = results.read_text()
    assert "## Adapters on corrupted digits (bench_adapt.py)" in text
    assert other.strip() in text  # the other section survives, unchanged
    section = text[text.index("## Adapters on corrupted digits"):]
    for method in METHODS + ("MMD weight 0",):
        assert f"| {method} |" in section, method
    assert "±" in section and "ratio to plain model.fit" in section
    assert "--no-peers" in section
