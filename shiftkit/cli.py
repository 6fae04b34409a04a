"""The `shiftkit` command line (also `python -m shiftkit`).

    shiftkit --version
    shiftkit demo     [--scenario NAME] [--no-model] [--n-permutations N] [--alpha A] [--seed S] [--json PATH|-]
    shiftkit check    --reference REF --target TGT [--model M.keras] [--layer NAME] [--label-column y]
                      [--alpha 0.01] [--max-label-shift 0.1] [--max-imbalance-ratio R] [--bbsd] [--n-permutations N]
                      [--max-samples N] [--seed S] [--drop-na] [--json PATH|-] [--html PATH]
                      [--config CHECK.toml] [--preset NAME] [--fail-on warn] [--min-estimated-accuracy A]
                      [--chunk-rows N] [--engine local|dask] [--scheduler ADDRESS]
    shiftkit snapshot --reference REF [--model M.keras] [--layer NAME] [--label-column y] [--max-samples N]
                      [--seed S] [--drop-na] [--chunk-rows N] [--engine local|dask] --out ref.npz
    shiftkit monitor  --reference ref.npz --target DATA|FOLDER [--model M.keras] [--window 500]
                      [--time-column ts [--every 1D]] [--labeled] [--jsonl PATH|-] [--html PATH]
    shiftkit report   --source SRC --target TGT [--model M.keras] [--layer NAME] [--label-column y]
                      [--alpha A] [--n-permutations N] [--seed S] [--drop-na] [--json PATH|-] --html out.html
    shiftkit adapt    --source SRC --target TGT --model M.keras --out adapted.keras [--adapter auto]
                      [--label-column y] [--epochs N] [--val-size 0.2] [--n-permutations N] [--seed S]
                      [--drop-na] [--json PATH|-]

REF/SRC/TGT: CSV or Parquet (label column by --label-column), NPZ (`x`, optional `y`), NPY (`x` only),
or, for `--reference`, a snapshot written by `shiftkit snapshot`. `check` and `snapshot` read tables in
chunks of --chunk-rows rows (the same result as reading them whole); `--engine dask` runs those
passes over a folder of Parquet files on a Dask cluster.

Exit codes: 0 pass (or success), 1 shift beyond a threshold (`check`; each failed criterion named),
2 anything else that stops the command: bad input or usage, an output path that cannot be written,
an unexpected error. Every exit 2 prints one line on stderr saying what to fix (`--debug` adds the
traceback). Output paths are checked before any work starts (an output that is one of the input files is
refused; a snapshot's --out ends in .npz), and output files are written before the verdict is printed. `--json -` writes the JSON report to stdout and nothing else there (the human
summary then goes to stderr). Progress messages go to stderr when it is a terminal.

Labels (`--label-column`, an NPZ's `y`) may hold any class values (names, 1..K, years, booleans):
they are encoded once, at loading, and shown by their original values. Files are size-checked before
they are read or decompressed (`--max-gib`, default 2 GiB or `SHIFTKIT_MAX_GIB`). A CSV's first column
with an empty header holding integers is the row index pandas writes by default: it is dropped (a note on
stderr), never measured. A snapshot made with another model than --model is refused (exit 2): its stored
outputs of the reference rows are the model's fingerprint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
import warnings
from typing import Any, Sequence

import numpy as np

from shiftkit import check
from shiftkit._json import jsonable
from shiftkit._validation import check_real
from shiftkit._version import __version__
from shiftkit.adapt import adapter_names, fit_data, get_adapter
from shiftkit.adapt.training import holdout_split
from shiftkit.analysis import analyze
from shiftkit.check_config import PRESETS, CheckConfig
from shiftkit.dashboard.pipeline import train_default_model
from shiftkit.data import check_held_out_classes, source_holdout
from shiftkit.datasets import SCENARIOS, load_scenario
from shiftkit.files import (
    InputNote,
    bytes_from_gib,
    check_array_file,
    load_domains_path,
    load_model_path,
    load_single,
    model_n_classes,
    read_path,
)
from shiftkit.files.common import extension
from shiftkit.files.stream import DEFAULT_CHUNK_ROWS, TableBatches, dataset_files, is_streamable, table_columns
from shiftkit.shift.report import shift_report
from shiftkit.shift.streaming import ENGINES, scan_pair, scan_reference, scan_target

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_SHIFT = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftkit",
        description="Measure distribution shift between a source and a target domain, adapt, measure again.",
    )
    parser.add_argument("--version", action="version", version=f"shiftkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of an unexpected error")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", parents=[common],
        help="shift report of a built-in scenario, printed as a table",
        description="Run the shift report on a built-in, offline demo scenario and print it.",
    )
    demo.add_argument("--scenario", default="hospitals_covariate", choices=SCENARIOS,
                      help="built-in scenario (default: %(default)s)")
    demo.add_argument("--no-model", action="store_true",
                      help="skip training the small source model (no feature-space test, no prior estimate)")
    demo.add_argument("--n-permutations", type=int, default=1000, help="permutations per MMD test (default: %(default)s)")
    demo.add_argument("--alpha", type=float, default=0.05, help="level of the tests (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the scenario, model and permutations (default: %(default)s)")
    demo.add_argument("--json", metavar="PATH", help="also write the JSON report to PATH ('-' for stdout only)")

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", metavar="MODEL.keras", help="a Keras model (loaded with safe_mode=True)")
        p.add_argument("--layer", help="feature layer of the model (default: the input of its output head)")
        p.add_argument("--label-column", metavar="NAME", help="label column of CSV files")
        p.add_argument("--drop-na", action="store_true", help="drop rows with missing values (reported) instead of failing")
        p.add_argument("--n-permutations", type=int, default=1000, help="permutations per MMD test (default: %(default)s)")
        p.add_argument("--seed", type=int, default=0, help="seed of every random step (default: %(default)s)")
        p.add_argument("--max-samples", type=int, default=2000,
                       help="subsample each domain to at most N rows, seeded (default: %(default)s)")
        _max_gib_option(p)
        p.add_argument("--json", metavar="PATH", help="write the JSON report to PATH ('-': stdout, nothing else there)")

    def command(name: str, help: str, description: str, *files: tuple[str, str, str]) -> argparse.ArgumentParser:
        """A subcommand with its required file options `(flag, metavar, help)`."""
        p = sub.add_parser(name, parents=[common], help=help, description=description)
        for flag, metavar, text in files:
            p.add_argument(flag, required=True, metavar=metavar, help=text)
        return p

    check = command(
        "check", "pre-deployment gate: exit 1 when the target moved beyond the thresholds",
        "Compare a target data set with the reference the model was validated on. "
        "Exit 0: pass; 1: shift beyond a threshold; 2: bad input.",
        ("--reference", "REF", "reference data (CSV/NPZ/NPY) or a snapshot .npz"),
        ("--target", "TGT", "target data (CSV/NPZ/NPY)"),
    )
    data_options(check)
    # Defaults of None: "not given", so that --config and --preset apply; shiftkit's defaults are CheckConfig's.
    check.add_argument("--alpha", type=float, default=None,
                       help="family-wise level of the check's tests (default: 0.01, or the config's)")
    check.add_argument("--max-label-shift", type=float, default=None,
                       help="largest tolerated total variation between class proportions (default: 0.1)")
    check.add_argument("--max-imbalance-ratio", type=float, default=None, metavar="R",
                       help="largest tolerated max/min class ratio in the target (default: no gate)")
    check.add_argument("--max-drifted-share", type=float, default=None, metavar="S",
                       help="largest tolerated share of features drifted by their own tests (tabular; default: no gate)")
    check.add_argument("--bbsd", action="store_const", const=True, default=None,
                       help="also gate on black-box shift detection: KS tests on the model's softmax outputs, "
                            "Bonferroni over them, one more test in the alpha split (needs --model)")
    check.add_argument("--config", metavar="CHECK.toml",
                       help="criteria and thresholds (pass / warn / fail) from a TOML file; flags given here override it")
    check.add_argument("--preset", choices=sorted(PRESETS),
                       help="start from a preset (the config's own preset otherwise); see shiftkit.check_config")
    check.add_argument("--fail-on", choices=("fail", "warn"), default=None,
                       help="'warn': warnings fail the check too (default: fail, or the config's)")
    check.add_argument("--min-estimated-accuracy", type=float, default=None, metavar="A",
                       help="fail when the model's target accuracy is below A: measured with target labels, else "
                            "estimated without them (needs --model and a labelled reference)")
    check.add_argument("--target-priors", metavar="P", default=None,
                       help="the target's class proportions when known from outside the model (a registry's "
                            "prevalence), for the estimated accuracy: CLASS=P pairs ('benign=0.92,malignant=0.08') "
                            "or proportions in the reference's class order ('0.92,0.08'), summing to 1; whole numbers "
                            "above 1 are counts, normalised ('920,80'); needs --model and a labelled reference")
    check.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    check.add_argument("--no-diagnosis", action="store_true", help="skip naming the kind of shift (faster)")
    _stream_options(check)

    snap = command(
        "snapshot", "save what a later check needs about the reference (no full data, no full labels)",
        "Write a reference snapshot: a seeded subsample, class counts, standardisation statistics, "
        "kernel bandwidths, model features and probabilities, and the library version.",
        ("--reference", "REF", "reference data (CSV/NPZ/NPY)"), ("--out", "PATH", "snapshot file to write (.npz)"),
    )
    for opt in ("--model", "--layer", "--label-column"):
        snap.add_argument(opt, metavar=opt.strip("-").upper().replace("-", "_"),
                          help={"--model": "a Keras model (loaded with safe_mode=True)",
                                "--layer": "feature layer of the model",
                                "--label-column": "label column of a CSV"}[opt])
    snap.add_argument("--drop-na", action="store_true", help="drop rows with missing values (reported)")
    snap.add_argument("--max-samples", type=int, default=2000, help="rows kept in the snapshot (default: %(default)s)")
    snap.add_argument("--seed", type=int, default=0, help="subsampling seed (default: %(default)s)")
    _max_gib_option(snap)
    _stream_options(snap)

    rep = command(
        "report", "the full shift report (HTML/JSON) without gating",
        "Measure source vs target and write the report (shiftkit.analyze): MMD tests, labels, per-feature "
        "drift, diagnosis and recommended adapter. The MMD tests and the diagnosis use a seeded subsample of at "
        "most --max-samples rows per domain (said in the output); per-feature tests use every row.",
        ("--source", "SRC", "source data (CSV/NPZ/NPY)"), ("--target", "TGT", "target data (CSV/NPZ/NPY)"),
    )
    data_options(rep)
    rep.add_argument("--alpha", type=float, default=0.05, help="level of the tests (default: %(default)s)")
    rep.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")

    mon = command(
        "monitor", "watch a stream of production data window by window; exit 1 when the alarm fires",
        "Cut the target rows (in file order; a folder: its files in name order) into windows and measure each "
        "against a reference snapshot (input MMD, and with --model feature MMD, BBSD and predicted-class "
        "proportions); a CUSUM alarm calibrated so that P(any false alarm within --horizon windows) <= --alpha "
        "(approximately: see shiftkit.monitor). One JSON line per window. Exit 0: no alarm; 1: alarm; 2: bad input.",
        ("--reference", "SNAPSHOT.npz", "a snapshot made by `shiftkit snapshot` (with --model for the model's statistics)"),
        ("--target", "DATA", "a CSV/Parquet/NPZ/NPY file of rows in time order, or a folder of such batch files"),
    )
    mon.add_argument("--model", metavar="MODEL.keras", help="the snapshot's Keras model (loaded with safe_mode=True)")
    mon.add_argument("--layer", help="feature layer, as for the snapshot (default: the input of the output head)")
    mon.add_argument("--label-column", metavar="NAME", help="label column of CSV/Parquet batches")
    mon.add_argument("--time-column", metavar="NAME",
                     help="time column of CSV/Parquet batches: rows are put in time order within each file, and each "
                          "window reports its time span (windows stay --window rows long)")
    mon.add_argument("--every", metavar="PERIOD",
                     help="with --time-column: one window per time period instead of per --window rows: a pandas "
                          "offset alias for dates ('1D', '6h', 'W', 'MS') or a number for numeric times; each period is "
                          "measured on a seeded sample of --window rows (the size the alarm is calibrated for)")
    mon.add_argument("--small-periods", choices=("merge", "skip"), default="merge",
                     help="with --every: a period with fewer than --window rows is merged into the next (default) or "
                          "skipped; the output says which")
    mon.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, metavar="N",
                     help="a CSV/Parquet batch without --time-column is read N rows at a time, never whole (the same "
                          "windows; default: %(default)s)")
    mon.add_argument("--labeled", action="store_true",
                     help="the batches carry true labels: the label statistic uses them (else the predicted classes)")
    mon.add_argument("--target-priors", metavar="P", default=None,
                     help="the stream's class proportions when known from outside the model, for each window's "
                          "estimated accuracy: CLASS=P pairs or proportions in the snapshot's class order (summing "
                          "to 1; or class counts)")
    mon.add_argument("--window", type=int, default=500, help="rows per window (default: %(default)s)")
    mon.add_argument("--alpha", type=float, default=0.05,
                     help="probability of any false alarm within --horizon windows (default: %(default)s)")
    mon.add_argument("--horizon", type=int, default=100, help="windows the false-alarm bound covers (default: %(default)s)")
    mon.add_argument("--drop-na", action="store_true", help="drop rows with missing values (reported)")
    mon.add_argument("--seed", type=int, default=0, help="seed of the calibration (default: %(default)s)")
    mon.add_argument("--jsonl", metavar="PATH", help="write one JSON line per window to PATH ('-': stdout)")
    mon.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with the time series")
    _max_gib_option(mon)

    adapt = command(
        "adapt", "adapt a model to the target with any registered adapter, or choose one ('auto')",
        "Fit an adapter (shiftkit.adapt registry; 'auto': shiftkit.select_adapter, which diagnoses the shift, "
        "fits the adapters that suit it and keeps the best, or the source model) on labelled source data "
        "(--val-size of it held out, stratified) and the target's inputs (the target's labels, when present, "
        "train the adapters that need them, less --target-test-size of them held back, and score the report); "
        "save the adapted model and report the shift before and after on the held-out source vs the target "
        "(the held-back target rows when target labels trained the adapter).",
        ("--source", "SRC", "labelled source data (CSV/NPZ/NPY)"), ("--target", "TGT", "target data (CSV/NPZ/NPY)"),
        ("--model", "MODEL.keras", "the source model (loaded with safe_mode=True)"),
        ("--out", "PATH", "adapted model to write (.keras; shiftkit.load_adapter reads it)"),
    )
    adapt.add_argument("--adapter", default="auto", choices=adapter_names(),
                       help="registered adapter name (default: %(default)s)")
    adapt.add_argument("--epochs", type=int, default=None, help="training epochs (default: the adapter's own)")
    adapt.add_argument("--val-size", type=float, default=0.2,
                       help="share of the source held out for scoring and the report (default: %(default)s)")
    adapt.add_argument("--target-test-size", type=float, default=0.3,
                       help="share of the labelled target rows held back (stratified, seeded) from an adapter that "
                            "learns from target labels (copy, finetune, auto) and scored instead; 0: train on every "
                            "labelled row, and the after-accuracy is in-sample (default: %(default)s)")
    adapt.add_argument("--label-column", metavar="NAME", help="label column of CSV files")
    adapt.add_argument("--drop-na", action="store_true", help="drop rows with missing values (reported)")
    adapt.add_argument("--n-permutations", type=int, default=500, help="permutations per MMD test (default: %(default)s)")
    adapt.add_argument("--seed", type=int, default=0, help="seed of every random step (default: %(default)s)")
    adapt.add_argument("--json", metavar="PATH", help="write the JSON result to PATH ('-': stdout only)")
    return parser


def _stream_options(p: argparse.ArgumentParser) -> None:
    """--chunk-rows, --engine, --scheduler: CSV/Parquet files are streamed (shiftkit.shift.streaming)."""
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, metavar="N",
                   help="CSV/Parquet files are read N rows at a time, never whole (default: %(default)s)")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="'dask': read a Parquet dataset (a folder of .parquet files, or a glob) partition by partition "
                        "on a Dask cluster (pip install 'shiftkit[dask]'; default: %(default)s)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --engine dask: the scheduler, e.g. tcp://host:8786 (default: a local cluster)")


def _max_gib_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-gib", type=float, default=None, metavar="GIB",
                   help="largest size a file may take in memory once read or decompressed, in GiB "
                        "(default: $SHIFTKIT_MAX_GIB or 2)")


def _max_bytes(args: argparse.Namespace) -> int | None:
    """`--max-gib` in bytes (`shiftkit.files.bytes_from_gib`), or None: the library's default limit."""
    gib = getattr(args, "max_gib", None)
    return None if gib is None else bytes_from_gib(gib, "--max-gib")


class OutputPathError(ValueError):
    """An output path that cannot be written (checked before any work starts)."""


def _check_output_path(path: str | None, flag: str) -> None:
    """Raise `OutputPathError` unless `path` can be created or overwritten as a file."""
    if path is None or (path == "-" and flag in ("--json", "--jsonl")):
        return
    full = os.path.abspath(path)
    folder = os.path.dirname(full)
    if os.path.isdir(full):
        raise OutputPathError(f"{flag} {path}: is a folder; give a file name, e.g. {os.path.join(path, 'report')}.")
    if not os.path.isdir(folder):
        raise OutputPathError(f"{flag} {path}: the folder {folder!r} does not exist. Create it, or choose another path.")
    if os.path.exists(full) and not os.access(full, os.W_OK):
        raise OutputPathError(f"{flag} {path}: the file exists and is not writable. Choose another path.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {path}: the folder {folder!r} is not writable. Choose another path.")


def _check_output_paths(args: argparse.Namespace) -> None:
    """Every output path of the command, checked before the (possibly long) work starts."""
    paths = [(getattr(args, "json", None), "--json"), (getattr(args, "html", None), "--html"),
             (getattr(args, "out", None), "--out"), (getattr(args, "jsonl", None), "--jsonl")]
    for path, flag in paths:
        _check_output_path(path, flag)
    named = [os.path.abspath(p) for p, f in paths if p is not None and not (p == "-" and f in ("--json", "--jsonl"))]
    if len(set(named)) < len(named):
        raise OutputPathError("--json, --jsonl, --html and --out must name different files.")
    inputs = [(getattr(args, name, None), flag) for name, flag in (
        ("reference", "--reference"), ("target", "--target"), ("source", "--source"), ("model", "--model"),
        ("config", "--config"))]
    inputs = [(os.path.realpath(p), flag) for p, flag in inputs if p]
    for path, flag in paths:
        if path is None or (path == "-" and flag in ("--json", "--jsonl")):
            continue
        real = os.path.realpath(path)
        for given, role in inputs:
            inside = os.path.isdir(given) and os.path.dirname(real) == given and \
                os.path.splitext(real)[1].lower() in (".csv", ".parquet", ".pq", ".npz", ".npy")
            if real == given or inside:
                what = "is also an input file" if real == given else f"is also an input file (a data file in the {role} folder)"
                raise OutputPathError(f"{flag} {path}: {what} ({role}); writing it would overwrite the data. "
                                      "Give the output another name (choose another path).")
    if args.command == "snapshot" and not str(args.out).lower().endswith(".npz"):
        raise OutputPathError(f"--out {args.out}: a snapshot is an .npz file (`check --reference` reads it by that "
                              f"suffix); end the name with .npz, e.g. {os.path.splitext(args.out)[0]}.npz.")


def _write_text(path: str, text: str, flag: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise OutputPathError(f"{flag} {path}: could not be written ({exc.strerror or exc}).") from None


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"[shiftkit] {message}", file=sys.stderr, flush=True)


def _run_demo(args: argparse.Namespace) -> int:
    _progress(f"loading scenario {args.scenario!r}")
    scenario = load_scenario(args.scenario, seed=args.seed)
    model = None
    if not args.no_model:
        _progress("training a small source model")  # the dashboard's default model
        model = train_default_model(scenario.x_source, scenario.y_source, len(scenario.class_names), seed=args.seed)
    _progress("measuring shift")
    report = shift_report(
        scenario.x_source,
        scenario.x_target,
        scenario.y_source,
        scenario.y_target,
        model=model,
        n_permutations=args.n_permutations,
        alpha=args.alpha,
        seed=args.seed,
        standardize=scenario.x_source.ndim == 2,
    )
    if args.json == "-":
        print(report.to_json())
        return EXIT_OK
    if args.json:
        _write_text(args.json, report.to_json(), "--json")
    print(f"Scenario: {scenario.name} ({scenario.shift_kind} shift)")
    print(scenario.description)
    print()
    print(report)
    if args.json:
        print(f"\nJSON report written to {args.json}")
    return EXIT_OK


def _is_snapshot(path: str) -> bool:
    if not str(path).lower().endswith(".npz"):
        return False
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return check.Reference.is_snapshot(arrays)
    except Exception:  # noqa: BLE001 - not readable as npz: the loader reports it properly
        return False


def _note_dropped(role: str, n: int, record: dict[str, int] | None = None) -> None:
    """Say on stderr that --drop-na dropped `n` rows of `role`; `record` (the check's notes) keeps the count."""
    if record is not None:
        record[role] = n
    if n:
        print(f"shiftkit: dropped {n} row(s) with missing values from the {role} (--drop-na)", file=sys.stderr)


def _load_model(args: argparse.Namespace):
    if not getattr(args, "model", None):
        return None
    _progress(f"loading model {args.model}")
    return load_model_path(args.model, max_bytes=_max_bytes(args))


def _write_outputs(args: argparse.Namespace, json_text: str, summary: str, html_page) -> None:
    """--json and --html files first (a failure there exits 2 before any verdict is printed), then
    the summary: on stdout, or on stderr when stdout carries the JSON."""
    if args.json and args.json != "-":
        _write_text(args.json, json_text, "--json")
    if getattr(args, "html", None):
        _write_text(args.html, html_page(), "--html")
    if args.json == "-":
        print(json_text)
        print(summary, file=sys.stderr)
    else:
        print(summary)
        if args.json:
            print(f"JSON report written to {args.json}", file=sys.stderr)
    if getattr(args, "html", None):
        print(f"HTML report written to {args.html}", file=sys.stderr)


def _for_model(data: Any, model: Any) -> Any:
    """Labels coded as the model's output indices (see `shiftkit.files.Domains.for_model`)."""
    if model is None:
        return data
    return data.for_model(model_n_classes(model))


def _load_domains(args: argparse.Namespace, source: str, model: Any, role: str) -> Any:
    """The source (or reference) and `--target` files, labels coded for the model; dropped rows said."""
    d = load_domains_path(source, args.target, label_column=args.label_column, drop_na=args.drop_na,
                          max_bytes=_max_bytes(args))
    d = _for_model(d, model)
    _note_dropped(role, d.dropped[0])
    _note_dropped("target", d.dropped[1])
    return d


def _target_priors(text: str | None) -> Any:
    """--target-priors: 'CLASS=P,...' (a mapping by class value) or 'P,...' (the reference's class order)."""
    return None if text is None else check.parse_target_priors(text, "--target-priors")


def _run_check(args: argparse.Namespace) -> int:
    max_bytes = _max_bytes(args)
    model = _load_model(args)
    _progress("loading data")
    # --preset under the file's own values (a value the file states wins even when it equals shiftkit's default)
    config = (CheckConfig.load(args.config, preset=args.preset) if args.config
              else CheckConfig.from_dict({} if args.preset is None else {"preset": args.preset}))
    config = config.with_overrides(alpha=args.alpha, max_label_shift=args.max_label_shift,
                                   max_imbalance_ratio=args.max_imbalance_ratio, bbsd=args.bbsd,
                                   min_estimated_accuracy=args.min_estimated_accuracy,
                                   max_drifted_share=args.max_drifted_share, fail_on=args.fail_on)
    if model is None and args.bbsd is None and config.bbsd:  # turned on by a preset or the config, not by --bbsd
        by = f"--preset {args.preset}" if args.preset else (
            f"the config {args.config!r}" + (f" (its preset {config.preset!r})" if config.preset else ""))
        raise ValueError(f"{by} turns on the BBSD criterion (bbsd = true), which tests the model's softmax outputs: "
                         "pass the model (--model), or use a --config file with bbsd = false (and the preset).")
    common = dict(
        model=model, layer=args.layer, n_permutations=args.n_permutations, max_samples=args.max_samples,
        seed=args.seed, diagnose_shift=not args.no_diagnosis, target_priors=_target_priors(args.target_priors),
        **config.check_kwargs(),
    )
    stream = dict(chunk_rows=args.chunk_rows, max_samples=args.max_samples, seed=args.seed, max_bytes=max_bytes)
    dask = args.engine == "dask"
    if args.scheduler and not dask:
        raise ValueError("--scheduler is the Dask scheduler's address: give it with --engine dask.")
    dropped_rows: dict[str, int] = {}
    if _is_snapshot(args.reference) and (dask or is_streamable(args.target)):
        check_array_file(args.reference, max_bytes, role="reference snapshot")
        reference = check.Reference.load(args.reference)
        _progress(f"reading the target in chunks of {args.chunk_rows} rows ({args.engine})")
        target = scan_target(args.target, reference, label_column=args.label_column, model=model, drop_na=args.drop_na,
                             engine=args.engine, scheduler=args.scheduler, **stream)
        _note_dropped("target", target.dropped, dropped_rows)
        _progress("measuring shift against the snapshot")
        result = check.check_shift(reference, target, **common)
    elif dask:
        raise ValueError("--engine dask checks a target against a snapshot: make one first with `shiftkit snapshot "
                         "--reference REF --out ref.npz` (it takes --engine dask too), then pass --reference ref.npz.")
    elif not _is_snapshot(args.reference) and is_streamable(args.reference) and is_streamable(args.target):
        _progress(f"reading the reference and the target in chunks of {args.chunk_rows} rows")
        reference, target, dropped = scan_pair(args.reference, args.target, label_column=args.label_column,
                                               model=model, layer=args.layer, drop_na=args.drop_na, **stream)
        _note_dropped("reference", dropped[0], dropped_rows)
        _note_dropped("target", dropped[1], dropped_rows)
        _progress("measuring shift")
        result = check.check_shift(reference, target, **common)
    elif _is_snapshot(args.reference):
        check_array_file(args.reference, max_bytes, role="reference snapshot")
        reference = check.Reference.load(args.reference)
        name, data = read_path(args.target, "target file", max_bytes=max_bytes)
        target = load_single(data, name, label_column=args.label_column, drop_na=args.drop_na,
                             feature_names=reference.feature_names, class_names=reference.class_names,
                             max_bytes=max_bytes)
        _note_dropped("target", target.dropped, dropped_rows)
        _progress("measuring shift against the snapshot")
        result = check.check_shift(reference, target.x, target.y, **common)
    else:
        d = _load_domains(args, args.reference, model, "reference")
        dropped_rows.update(reference=d.dropped[0], target=d.dropped[1])
        _progress("measuring shift")
        result = check.check_shift(d.x_source, d.x_target, d.y_target, y_reference=d.y_source,
                                   feature_names=d.feature_names, class_names=d.class_names, **common)
    result = dataclasses.replace(result, notes=result.notes + tuple(_check_notes(args, config, dropped_rows)))
    _write_outputs(args, result.to_json(), result.summary(), result.to_html)
    return EXIT_OK if result.passed else EXIT_SHIFT


def _check_notes(args: argparse.Namespace, config: CheckConfig, dropped: dict[str, int]) -> list[str]:
    """The check's notes from the command line: rows --drop-na dropped, and where the settings came from."""
    notes = [f"{n} {role} row(s) with missing values were dropped (--drop-na); the figures are on the other rows."
             for role, n in dropped.items() if n]
    if args.config or config.preset:
        notes.append("settings: " + ", ".join(
            ([f"--config {args.config}"] if args.config else []) + ([f"preset {config.preset}"] if config.preset else []))
            + " (command-line flags override them).")
    return notes


def _require_label_column(reference: str, label_column: str | None) -> None:
    """A snapshot's --label-column must be a column of the reference table (else the label would be measured
    as a feature, and every later check would refuse the snapshot or the target)."""
    if not label_column:
        return
    first = dataset_files(reference, "reference")[0]
    columns = table_columns(first, "reference file")
    if label_column not in columns:
        raise ValueError(f"--label-column {label_column!r} is not a column of the reference file "
                         f"{os.path.basename(first)!r}; its columns: {', '.join(repr(c) for c in columns)}. "
                         "Give the label column's exact name (or leave --label-column out for unlabelled data).")


def _run_snapshot(args: argparse.Namespace) -> int:
    max_bytes = _max_bytes(args)
    model = _load_model(args)
    if args.scheduler and args.engine != "dask":
        raise ValueError("--scheduler is the Dask scheduler's address: give it with --engine dask.")
    if args.engine == "dask" or is_streamable(args.reference):
        _require_label_column(args.reference, args.label_column)
        _progress(f"summarising the reference in chunks of {args.chunk_rows} rows ({args.engine})")
        snapshot, dropped = scan_reference(args.reference, label_column=args.label_column, model=model,
                                           layer=args.layer, drop_na=args.drop_na, max_samples=args.max_samples,
                                           seed=args.seed, chunk_rows=args.chunk_rows, engine=args.engine,
                                           scheduler=args.scheduler, max_bytes=max_bytes, with_dropped=True)
        _note_dropped("reference", dropped)
    else:
        name, data = read_path(args.reference, "reference file", max_bytes=max_bytes)
        ref = load_single(data, name, label_column=args.label_column, drop_na=args.drop_na, role="reference file",
                          max_bytes=max_bytes)
        ref = _for_model(ref, model)
        _note_dropped("reference", ref.dropped)
        _progress("summarising the reference")
        snapshot = check.Reference.from_data(ref.x, ref.y, model=model, layer=args.layer,
                                             max_samples=args.max_samples, seed=args.seed,
                                             feature_names=ref.feature_names, class_names=ref.class_names)
    try:
        snapshot.save(args.out)
    except OSError as exc:
        raise OutputPathError(f"--out {args.out}: could not be written ({exc.strerror or exc}).") from None
    print(f"snapshot of {snapshot.n_reference} reference rows ({len(snapshot.x)} kept"
          f"{', with model features' if snapshot.features is not None else ''}) written to {args.out}")
    return EXIT_OK


def _run_report(args: argparse.Namespace) -> int:
    model = _load_model(args)
    d = _load_domains(args, args.source, model, "source")
    _progress("measuring shift and diagnosing the kind of shift")
    analysis = analyze(d.x_source, d.x_target, y_source=d.y_source, y_target=d.y_target, model=model,
                       layer=args.layer, alpha=args.alpha, n_permutations=args.n_permutations, seed=args.seed,
                       max_samples=args.max_samples, standardize=d.is_tabular, feature_names=d.feature_names,
                       class_names=d.class_name_list(), notes=[d.description])
    _write_outputs(args, analysis.to_json(), str(analysis),
                   lambda: analysis.to_html(title="shiftkit shift report"))
    return EXIT_OK


def _learns_from_target_labels(cls: type) -> bool:
    """True when adapter class `cls` trains on, or chooses with, labelled target rows (`fit_data` gives them)."""
    return "y_target" in cls.requires or "y_target_labeled" in cls.uses


def _target_test_rows(y_target: np.ndarray | None, test_size: float, seed: int,
                      learns: bool) -> tuple[np.ndarray, np.ndarray]:
    """`shiftkit adapt`'s target rows: `(adapted_on, scored)`.

    Every row is both when the adapter does not learn from target labels (it sees the inputs only, as it
    will in use) or `test_size` is 0. Otherwise a stratified, seeded `test_size` share of each class with at
    least two rows is held back and scored (`shiftkit.adapt.training.holdout_split`), the rest adapts.
    """
    every = np.arange(0 if y_target is None else len(y_target))
    if not learns or test_size == 0:
        return every, every
    split = holdout_split(y_target, test_size, seed)
    if split is None:
        raise ValueError(f"--target-test-size {test_size:g}: the target has too few labelled rows "
                         f"({len(y_target)}) to hold some back for scoring. Add target rows, or pass "
                         "--target-test-size 0 to train on all of them (the after-accuracy is then in-sample).")
    return split


def _run_adapt(args: argparse.Namespace) -> int:
    if not str(args.out).endswith(".keras"):
        raise ValueError(f"--out {args.out}: the adapted model is written in the Keras format; end the name with .keras.")
    val_size = check_real(args.val_size, "--val-size", low=0, high=1, low_open=True, high_open=True, example=0.2)
    test_size = check_real(args.target_test_size, "--target-test-size", low=0, high=1, high_open=True, example=0.3)
    model = _load_model(args)
    d = _load_domains(args, args.source, model, "source")
    if d.y_source is None:
        raise ValueError("--source has no labels: adapting needs labelled source data (--label-column for a CSV, "
                         "`y` in an NPZ).")
    fit_rows, val_rows = source_holdout(d.y_source, len(d.y_source), args.seed, val_size)
    check_held_out_classes(d.y_source, val_rows, class_names=d.class_name_list(),
                           why=f"the adapters train on the rest (--val-size {val_size:g})",
                           fix="Add source rows of those classes, or raise --val-size.")
    cls = get_adapter(args.adapter)
    if d.y_target is None and "y_target" in cls.requires:
        label_free = [n for n in adapter_names() if "y_target" not in get_adapter(n).requires]
        raise ValueError(f"--adapter {args.adapter} trains on labelled target rows, but the target has no labels "
                         f"({'--label-column ' + repr(args.label_column) + ' is not in it' if args.label_column else 'no y in the NPZ'}): "
                         f"add them, or pick an adapter that needs none: {', '.join(label_free)}.")
    learns = d.y_target is not None and _learns_from_target_labels(cls)
    train_rows, test_rows = _target_test_rows(d.y_target, test_size, args.seed, learns)
    target_labeled = None if d.y_target is None else (d.x_target[train_rows], d.y_target[train_rows])
    data = fit_data(cls, source_train=(d.x_source[fit_rows], d.y_source[fit_rows]),
                    source_held_out=(d.x_source[val_rows], d.y_source[val_rows]),
                    target_labeled=target_labeled, target_unlabeled=d.x_target[train_rows])
    options: dict[str, Any] = {"verbose": 0, "seed": args.seed}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    if cls.reports_progress():
        options["progress"] = lambda i, n, name: _progress(f"candidate {i + 1} of {n}: {name}")
    _progress(f"fitting {cls.__name__}")
    adapter = cls(model).fit(**data, **options)
    _progress("measuring shift before and after")
    y_test = None if d.y_target is None else d.y_target[test_rows]
    report = adapter.shift_report(d.x_source[val_rows], d.x_target[test_rows], d.y_source[val_rows], y_test,
                                  n_permutations=args.n_permutations, seed=args.seed)
    selection = getattr(adapter, "selection_", None)
    in_sample = learns and len(test_rows) == len(d.x_target)
    result = {"adapter": args.adapter, "class": cls.__name__, "config": jsonable(adapter.get_config()),
              "selection": None if selection is None else selection.to_dict(), "report": report.to_dict(),
              "out": args.out, "source_rows": {"fit": len(fit_rows), "held_out": len(val_rows)},
              "target_rows": {"adapted_on": len(train_rows), "scored": len(test_rows),
                              "labels_used_for_training": int(len(train_rows)) if learns else 0},
              "target_labels_used_for_training": learns, "accuracy_in_sample": bool(in_sample)}
    try:
        adapter.save(args.out)
    except OSError as exc:
        raise OutputPathError(f"--out {args.out}: could not be written ({exc.strerror or exc}).") from None
    summary = [f"{cls.__name__} ({args.adapter}) fitted; adapted model written to {args.out}"]
    if selection is not None:
        summary.append(str(selection))
    summary.append(str(report))
    if in_sample:
        summary.append(f"note: the target accuracy after adapting is in-sample: {cls.__name__} learnt from these "
                       "target labels (--target-test-size 0). For an honest figure, hold some back "
                       "(--target-test-size 0.3, the default).")
    elif learns:
        summary.append(f"note: {cls.__name__} learnt from {len(train_rows)} labelled target rows; the report and its "
                       f"accuracies are on the other {len(test_rows)} (--target-test-size {test_size:g}), which it "
                       "did not see. The saved model is the one scored.")
    _write_outputs(args, json.dumps(jsonable(result), indent=1, allow_nan=False), "\n".join(summary), None)
    return EXIT_OK


def _batch_paths(target: str) -> list[str]:
    """The target file, or the data files of a target folder in name order."""
    if os.path.isdir(target):
        paths = sorted(os.path.join(target, f) for f in os.listdir(target)
                       if os.path.splitext(f)[1].lower() in (".csv", ".parquet", ".npz", ".npy"))
        if not paths:
            raise ValueError(f"The folder {target!r} holds no .csv, .parquet, .npz or .npy files to monitor.")
        return paths
    return [target]


def _empty_table(path: str) -> bool:
    """Whether a batch file holds no rows: 0 bytes, a CSV with a header alone, a Parquet file of 0 rows."""
    if os.path.getsize(path) == 0:
        return True
    ext = extension(path)
    if ext == ".csv":
        with open(path, "rb") as fh:
            lines = [line for _, line in zip(range(2), (ln for ln in fh if ln.strip()))]
        return len(lines) < 2
    if ext == ".parquet":
        try:
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows == 0
        except Exception:  # noqa: BLE001 - unreadable: the reader below says why
            return False
    return False


def _check_time_order(previous: tuple[str, Any] | None, name: str, times: np.ndarray,
                      column: str) -> tuple[str, Any]:
    """Batch files must follow one another in time (the monitor reads them in name order): refuse a file that
    starts before the previous one ends, or whose times are of another kind (numbers / dates). Returns
    (name, its last time)."""
    import pandas as pd

    def key(value: Any) -> Any:
        return float(value) if isinstance(value, (int, float, np.integer, np.floating)) else pd.Timestamp(value)

    first, last = times[0], times[-1]
    if previous is not None:
        before_name, before = previous
        kinds = [isinstance(v, (int, float, np.integer, np.floating)) for v in (before, first)]
        if kinds[0] != kinds[1]:
            raise ValueError(
                f"The time column {column!r} holds {'numbers' if kinds[0] else 'dates'} in {before_name!r} but "
                f"{'numbers' if kinds[1] else 'dates'} in {name!r}: give every batch file times of one kind.")
        if key(first) < key(before):
            raise ValueError(
                f"The batch file {name!r} starts ({first}) before {before_name!r} ends ({before}): the monitor reads "
                "a folder's files in name order, each file's rows in time order. Rename the files so that name order "
                "is time order (e.g. start each name with its date), or merge them into one file.")
    return name, last


def _monitor_streams(args: argparse.Namespace, path: str, reference: Any) -> bool:
    """Whether a monitor batch is read in chunks: a CSV/Parquet file whose rows are already in order (no
    --time-column) and whose labels, if used, map to the snapshot's classes chunk by chunk."""
    return (is_streamable(path) and args.time_column is None and args.every is None
            and not (args.labeled and not reference.class_names))


def _run_monitor(args: argparse.Namespace) -> int:
    from shiftkit.html_report import render_monitor_html
    from shiftkit.monitor import StreamMonitor

    max_bytes = _max_bytes(args)
    if not _is_snapshot(args.reference):
        raise ValueError(f"--reference {args.reference!r} is not a shiftkit snapshot: make one with `shiftkit snapshot "
                         "--reference REF --out ref.npz [--model MODEL.keras]`.")
    check_array_file(args.reference, max_bytes, role="reference snapshot")
    reference = check.Reference.load(args.reference)
    model = _load_model(args)
    reference.check_model(model, args.layer)  # a snapshot made with another model: refused, not a false alarm
    if args.every is not None and args.time_column is None:
        raise ValueError("--every needs --time-column: the column that holds each row's time.")
    paths = _batch_paths(args.target)
    if args.labeled and args.label_column is None and any(extension(p) in (".csv", ".parquet") for p in paths):
        raise ValueError("--labeled needs --label-column NAME for CSV/Parquet batches: the column that holds the true "
                         "labels (NPZ batches use their 'y' array).")
    _progress("calibrating the alarm on the snapshot")
    monitor = StreamMonitor(reference, model=model, layer=args.layer, window=args.window, alpha=args.alpha,
                            horizon=args.horizon, labeled=args.labeled, seed=args.seed,
                            target_priors=_target_priors(args.target_priors))
    lines = []
    sink = None
    if args.jsonl and args.jsonl != "-":
        sink = open(args.jsonl, "w", encoding="utf-8")  # noqa: SIM115 - closed below, also on errors

    def emit(res) -> None:
        line = json.dumps(jsonable(res.to_dict()), allow_nan=False)
        lines.append(line)
        if sink is not None:
            sink.write(line + "\n")
        elif args.jsonl == "-":
            print(line)
        if res.alarm and res.alarm_window == res.window:
            _progress(f"ALARM at window {res.window} ({res.alarm_statistic}); change point: window "
                      f"{res.change_point}")

    batches = []  # with --every: every batch first (periods may span files), then one pass by period
    previous = None  # (name, last time) of the last batch file with times: files must follow in time order
    try:
        for path in paths:
            if _empty_table(path):
                if len(paths) == 1:
                    raise ValueError(f"The target {os.path.basename(path)!r} holds no rows: nothing to monitor.")
                print(f"shiftkit: note: the batch {os.path.basename(path)!r} is empty (no rows): skipped.",
                      file=sys.stderr)
                continue
            if _monitor_streams(args, path, reference):  # in chunks, never whole
                table = TableBatches(path, feature_names=reference.feature_names, class_names=reference.class_names,
                                     label_column=args.label_column, labeled=args.labeled, drop_na=args.drop_na,
                                     chunk_rows=args.chunk_rows, max_bytes=max_bytes)
                for x, y in table:
                    for res in monitor.update(x, y):
                        emit(res)
                _note_dropped(f"target batch {table.name}", table.dropped)
                continue
            name, data = read_path(path, "target batch", max_bytes=max_bytes)
            batch = load_single(data, name, label_column=args.label_column, drop_na=args.drop_na,
                                feature_names=reference.feature_names, class_names=reference.class_names,
                                role="target batch", max_bytes=max_bytes, time_column=args.time_column)
            _note_dropped(f"target batch {name}", batch.dropped)
            if args.labeled and batch.y is None:
                raise ValueError(f"--labeled: the batch {name!r} has no labels (give --label-column, or a 'y' array).")
            if batch.times is not None:
                previous = _check_time_order(previous, name, batch.times, args.time_column)
            if args.every is not None:
                batches.append(batch)
                continue
            for res in monitor.update(batch.x, batch.y if args.labeled else None, times=batch.times):
                emit(res)
        if batches:
            results, cut = monitor.update_periods(
                np.concatenate([b.x for b in batches]),
                np.concatenate([b.y for b in batches]) if args.labeled else None,
                times=np.concatenate([b.times for b in batches]), every=args.every, small=args.small_periods)
            _progress(cut.summary)
            for res in results:
                emit(res)
    finally:
        if sink is not None:
            sink.close()
    summary = monitor.summary()
    if not monitor.results_:
        if monitor.periods_ is not None and summary["rows"] >= args.window:
            raise ValueError(f"No --every {args.every} period holds --window {args.window} rows, so nothing was "
                             f"monitored ({monitor.periods_.summary}) Use --small-periods merge, a longer --every or a "
                             "smaller --window.")
        raise ValueError(f"The target holds {summary['rows']} rows, fewer rows than one window ({args.window}): nothing was "
                         "monitored. Lower --window or give more rows.")
    if args.html:
        _write_text(args.html, render_monitor_html(monitor), "--html")
    fired = summary["alarm_window"] is not None
    unit = (f"--every {args.every} periods, each sampled to {args.window} rows" if args.every is not None
            else f"{args.window} rows")
    verdict = (f"ALARM at window {summary['alarm_window']} ({summary['alarm_statistic']}), estimated change point "
               f"window {summary['change_point']}" if fired else "no alarm")
    text = " ".join([f"shiftkit monitor: {summary['windows']} windows of {unit} ({summary['rows']} rows read): "
                     f"{verdict}. {summary['false_alarm_bound']}."] + summary["notes"])
    print(text, file=sys.stderr if args.jsonl == "-" else sys.stdout)
    if args.jsonl and args.jsonl != "-":
        print(f"JSON lines written to {args.jsonl}", file=sys.stderr)
    return EXIT_SHIFT if fired else EXIT_OK


def _with_notes(run: Any, args: argparse.Namespace) -> int:
    """`run(args)`, printing each `shiftkit.files.InputNote` (what was done to the input) once on stderr."""
    shown: set[str] = set()
    show = warnings.showwarning

    def note(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if not issubclass(category, InputNote):
            return show(message, category, filename, lineno, file, line)
        if str(message) not in shown:
            shown.add(str(message))
            print(f"shiftkit: note: {message}", file=sys.stderr)
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("always", InputNote)
        warnings.showwarning = note
        return run(args)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else text[:597] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `shiftkit` console script. Returns the exit code.

    0: pass / success; 1: shift beyond a threshold (`check`); 2: anything else, with one line on
    stderr saying what to fix (and the traceback with `--debug` when the error was unexpected).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    commands = {"demo": _run_demo, "check": _run_check, "snapshot": _run_snapshot, "report": _run_report,
                "adapt": _run_adapt, "monitor": _run_monitor}
    if args.command not in commands:  # pragma: no cover - argparse guards this
        parser.error(f"unknown command {args.command!r}")
    prefix = f"shiftkit {args.command}: error:"
    try:
        _check_output_paths(args)
        return _with_notes(commands[args.command], args)
    except (ValueError, TypeError) as exc:  # shiftkit's own validation: the message says what to fix
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{prefix} {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"shiftkit {args.command}: interrupted.", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{prefix} out of memory. Lower --max-samples or --n-permutations, or subsample the files.",
              file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"{prefix} {exc.strerror or _one_line(exc)}{where}. Check the paths and permissions.", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - never a traceback, never exit 1 (that means "shift")
        if getattr(args, "debug", False):
            traceback.print_exc()
        hint = "" if getattr(args, "debug", False) else " Re-run with --debug for the traceback."
        print(f"{prefix} unexpected {type(exc).__name__}: {_one_line(exc)}.{hint}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
