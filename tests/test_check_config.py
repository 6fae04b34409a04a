"""Check settings from a TOML file: presets, warnings, fail_on, the CLI's precedence, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shiftkit.check import Criterion, check_shift
from shiftkit.check_config import PRESETS, CheckConfig
from shiftkit.cli import main
from shiftkit.datasets import load_scenario


def test_presets_and_file_values(tmp_path):
    assert CheckConfig() == CheckConfig.from_dict({})
    strict = CheckConfig.from_dict({"preset": "strict"})
    assert strict.alpha == PRESETS["strict"]["alpha"] and strict.fail_on == "warn" and strict.bbsd
    path = tmp_path / "check.toml"
    path.write_text('version = 1\npreset = "tabular"\nalpha = 0.05\n[warn]\nlabel_shift = 0.02\n')
    cfg = CheckConfig.load(path)
    assert cfg.alpha == 0.05 and cfg.max_drifted_share == 0.3  # file over preset, preset over defaults
    assert cfg.warn == {"p_value": 0.05, "drifted_share": 0.1, "label_shift": 0.02}
    assert cfg.with_overrides(alpha=0.001, bbsd=None).alpha == 0.001
    assert cfg.check_kwargs()["max_drifted_share"] == 0.3 and cfg.to_dict()["preset"] == "tabular"


@pytest.mark.parametrize("text, match", [
    ("alpah = 0.01", "unknown key"),
    ("version = 2", "version"),
    ('preset = "loose"', "preset"),
    ("alpha = 2.0", "alpha"),
    ("[warn]\np = 0.1", r"\[warn\] has unknown"),
    ('fail_on = "never"', "fail_on"),
    ("alpha = ", "not valid TOML"),
])
def test_bad_config_files(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        CheckConfig.load(path)


def test_criterion_status_and_warnings():
    c = Criterion("label shift", 0.05, 0.1, True, "d", "x", warned=True, warn_threshold=0.03)
    assert c.status == "warn" and c.to_dict()["status"] == "warn"
    assert Criterion("label shift", 0.2, 0.1, False, "d", "x").status == "fail"


@pytest.fixture(scope="module")
def hospitals():
    return load_scenario("hospitals_covariate", seed=0, strength=0.6)


def test_warnings_and_fail_on(hospitals):
    s = hospitals
    plain = check_shift(s.x_source, s.x_target, y_reference=s.y_source, n_permutations=200, diagnose_shift=False,
                        alpha=0.001, max_drifted_share=1.0)  # the drifted-features rule joins the alpha split
    p = plain.criteria[0].value
    warn = check_shift(s.x_source, s.x_target, y_reference=s.y_source, n_permutations=200, diagnose_shift=False,
                       alpha=0.001, warn={"p_value": 1.0}, max_drifted_share=1.0)
    first = warn.criteria[0]
    assert first.value == p and first.warn_threshold == 1.0
    assert first.status == ("fail" if not first.passed else "warn")
    assert any(c.name == "drifted features" for c in warn.criteria)
    strict = check_shift(s.x_source, s.x_target, y_reference=s.y_source, n_permutations=200, diagnose_shift=False,
                         alpha=0.001, warn={"p_value": 1.0}, fail_on="warn")
    assert not strict.passed and strict.criteria[0].name in [c.name for c in strict.failed]
    assert json.loads(strict.to_json())["fail_on"] == "warn"
    with pytest.raises(ValueError, match="unknown key"):
        check_shift(s.x_source, s.x_target, warn={"pvalue": 0.1})
    with pytest.raises(ValueError, match="fail_on"):
        check_shift(s.x_source, s.x_target, fail_on="sometimes")


def test_cli_config_preset_and_flag_precedence(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ref, tgt = tmp_path / "ref.npz", tmp_path / "tgt.npz"
    np.savez(ref, x=rng.normal(size=(150, 3)))
    np.savez(tgt, x=rng.normal(size=(150, 3)))
    cfg = tmp_path / "check.toml"
    cfg.write_text("alpha = 0.05\nfail_on = \"warn\"\n[warn]\np_value = 1.0\n")  # every test warns: fail
    out = tmp_path / "c.json"
    assert main(["check", "--reference", str(ref), "--target", str(tgt), "--config", str(cfg), "--n-permutations",
                 "100", "--no-diagnosis", "--json", str(out)]) == 1
    data = json.loads(out.read_text())
    assert data["fail_on"] == "warn" and data["warned_criteria"] and data["failed_criteria"]
    # a flag overrides the file
    assert main(["check", "--reference", str(ref), "--target", str(tgt), "--config", str(cfg), "--fail-on", "fail",
                 "--n-permutations", "100", "--no-diagnosis"]) == 0
    assert "PASS with warnings" in capsys.readouterr().out
    # --preset: the tabular preset adds the drifted-features rule at 0.3
    assert main(["check", "--reference", str(ref), "--target", str(tgt), "--preset", "tabular", "--n-permutations",
                 "100", "--no-diagnosis", "--json", str(out)]) in (0, 1)
    data = json.loads(out.read_text())
    assert any(c["name"] == "drifted features" and c["threshold"] == 0.3 for c in data["criteria"])
    bad = tmp_path / "bad.toml"
    bad.write_text("alpah = 1")
    assert main(["check", "--reference", str(ref), "--target", str(tgt), "--config", str(bad)]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_the_ci_example_config_loads():
    from pathlib import Path

    cfg = CheckConfig.load(Path(__file__).resolve().parents[1] / "examples" / "ci" / "check.toml")
    assert cfg.preset == "tabular" and cfg.bbsd and cfg.min_estimated_accuracy == 0.85
    assert cfg.warn["estimated_accuracy"] == 0.9 and cfg.max_drifted_share == 0.3
    workflow = (Path(__file__).resolve().parents[1] / "examples" / "ci" / "shift-check.yml").read_text()
    assert "shiftkit check --reference models/ref.npz" in workflow and "--config examples/ci/check.toml" in workflow


def test_a_preset_given_at_load_stays_under_the_files_values(tmp_path):
    path = tmp_path / "check.toml"
    path.write_text("alpha = 0.01\n")  # equal to shiftkit's default, but stated: it wins over the preset's 0.05
    cfg = CheckConfig.load(path, preset="strict")
    assert cfg.preset == "strict" and cfg.alpha == 0.01 and cfg.fail_on == "warn"


def test_gates_that_cannot_be_evaluated_are_said_not_passed_silently(tmp_path, capsys):
    """--max-imbalance-ratio on a target without labels and no model: no criterion and no word (exit 0), as
    if the gate had passed; a warning threshold alone for the imbalance ratio was ignored. (Helper's sweep.)"""
    rng = np.random.default_rng(0)
    ref, tgt = tmp_path / "ref.npz", tmp_path / "tgt.npz"
    np.savez(ref, x=rng.normal(size=(150, 3)), y=rng.integers(0, 2, 150))
    np.savez(tgt, x=rng.normal(size=(150, 3)))
    out = tmp_path / "c.json"
    base = ["check", "--reference", str(ref), "--target", str(tgt), "--n-permutations", "100", "--no-diagnosis",
            "--json", str(out)]
    assert main(base + ["--max-imbalance-ratio", "2"]) == 0
    notes = json.loads(out.read_text())["notes"]
    assert any(n.startswith("class imbalance: not evaluated") for n in notes)
    assert any(n.startswith("label shift: not evaluated") for n in notes)
    assert "note: class imbalance: not evaluated" in capsys.readouterr().out
    # a warning threshold alone asks for its criterion (labelled target: it can be evaluated)
    skewed = np.r_[np.zeros(120, int), np.ones(30, int)]  # the same 4:1 classes on both sides: no label shift
    np.savez(ref, x=rng.normal(size=(150, 3)), y=skewed)
    np.savez(tgt, x=rng.normal(size=(150, 3)), y=skewed)
    cfg = tmp_path / "warn.toml"
    cfg.write_text("[warn]\nimbalance_ratio = 1.5\n")
    assert main(base + ["--config", str(cfg)]) == 0
    data = json.loads(out.read_text())
    imbalance = next(c for c in data["criteria"] if c["name"] == "class imbalance")
    assert imbalance["status"] == "warn" and imbalance["warn_threshold"] == 1.5
    assert any(n.startswith(f"settings: --config {cfg}") for n in data["notes"])


def test_rows_dropped_by_drop_na_are_in_the_json_and_html(tmp_path):
    rng = np.random.default_rng(1)
    ref, tgt = tmp_path / "ref.npz", tmp_path / "tgt.npz"
    np.savez(ref, x=rng.normal(size=(150, 3)))
    x = rng.normal(size=(150, 3))
    x[[3, 9, 40], 1] = np.nan
    np.savez(tgt, x=x)
    out, html = tmp_path / "c.json", tmp_path / "c.html"
    assert main(["check", "--reference", str(ref), "--target", str(tgt), "--n-permutations", "100",
                 "--no-diagnosis", "--drop-na", "--json", str(out), "--html", str(html)]) == 0
    notes = json.loads(out.read_text())["notes"]
    assert "3 target row(s) with missing values were dropped (--drop-na); the figures are on the other rows." in notes
    assert "3 target row(s) with missing values were dropped" in html.read_text()
