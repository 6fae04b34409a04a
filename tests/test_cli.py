"""The `shiftkit` command line: demo, version, exit codes."""

import json
import subprocess
import sys

import pytest

from shiftkit import __version__
from shiftkit.cli import main


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
    assert json.loads(path.read_text())["schema_version"] == "1.0"


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
