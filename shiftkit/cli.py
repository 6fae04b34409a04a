"""The `shiftkit` command line (also `python -m shiftkit`).

    shiftkit --version
    shiftkit demo     [--scenario NAME] [--no-model] [--n-permutations N] [--alpha A] [--seed S] [--json PATH|-]
    shiftkit check    --reference REF --target TGT [--model M.keras] [--layer NAME] [--label-column y]
                      [--alpha 0.01] [--max-label-shift 0.1] [--max-imbalance-ratio R] [--n-permutations N]
                      [--max-samples N] [--seed S] [--drop-na] [--json PATH|-] [--html PATH]
    shiftkit snapshot --reference REF [--model M.keras] [--layer NAME] [--label-column y] [--max-samples N]
                      [--seed S] [--drop-na] --out ref.npz
    shiftkit report   --source SRC --target TGT [--model M.keras] [--layer NAME] [--label-column y]
                      [--alpha A] [--n-permutations N] [--seed S] [--drop-na] [--json PATH|-] --html out.html

REF/SRC/TGT: CSV (label column by --label-column), NPZ (`x`, optional `y`), NPY (`x` only), or, for
`--reference`, a snapshot written by `shiftkit snapshot`.

Exit codes: 0 pass (or success), 1 shift beyond a threshold (`check`; each failed criterion named),
2 bad input or usage. `--json -` writes the JSON report to stdout and nothing else there (the human
summary then goes to stderr). Progress messages go to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from shiftkit._version import __version__

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_SHIFT = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    from shiftkit.datasets import SCENARIOS

    parser = argparse.ArgumentParser(
        prog="shiftkit",
        description="Measure distribution shift between a source and a target domain, adapt, measure again.",
    )
    parser.add_argument("--version", action="version", version=f"shiftkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
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

    def data_options(p: argparse.ArgumentParser, *, gate: bool = False) -> None:
        p.add_argument("--model", metavar="MODEL.keras", help="a Keras model (loaded with safe_mode=True)")
        p.add_argument("--layer", help="feature layer of the model (default: the input of its output head)")
        p.add_argument("--label-column", metavar="NAME", help="label column of CSV files")
        p.add_argument("--drop-na", action="store_true", help="drop rows with missing values (reported) instead of failing")
        p.add_argument("--n-permutations", type=int, default=1000, help="permutations per MMD test (default: %(default)s)")
        p.add_argument("--seed", type=int, default=0, help="seed of every random step (default: %(default)s)")
        p.add_argument("--max-samples", type=int, default=2000,
                       help="subsample each domain to at most N rows, seeded (default: %(default)s)")
        if gate:
            p.add_argument("--alpha", type=float, default=0.01, help="level of the MMD tests (default: %(default)s)")
        p.add_argument("--json", metavar="PATH", help="write the JSON report to PATH ('-': stdout, nothing else there)")

    check = sub.add_parser(
        "check",
        help="pre-deployment gate: exit 1 when the target moved beyond the thresholds",
        description="Compare a target data set with the reference the model was validated on. "
        "Exit 0: pass; 1: shift beyond a threshold; 2: bad input.",
    )
    check.add_argument("--reference", required=True, metavar="REF", help="reference data (CSV/NPZ/NPY) or a snapshot .npz")
    check.add_argument("--target", required=True, metavar="TGT", help="target data (CSV/NPZ/NPY)")
    data_options(check, gate=True)
    check.add_argument("--max-label-shift", type=float, default=0.1,
                       help="largest tolerated total variation between class proportions (default: %(default)s)")
    check.add_argument("--max-imbalance-ratio", type=float, default=None, metavar="R",
                       help="largest tolerated max/min class ratio in the target (default: no gate)")
    check.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    check.add_argument("--no-diagnosis", action="store_true", help="skip naming the kind of shift (faster)")

    snap = sub.add_parser(
        "snapshot",
        help="save what a later check needs about the reference (no full data, no full labels)",
        description="Write a reference snapshot: a seeded subsample, class counts, standardisation statistics, "
        "kernel bandwidths, model features and probabilities, and the library version.",
    )
    snap.add_argument("--reference", required=True, metavar="REF", help="reference data (CSV/NPZ/NPY)")
    snap.add_argument("--out", required=True, metavar="PATH", help="snapshot file to write (.npz)")
    for opt in ("--model", "--layer", "--label-column"):
        snap.add_argument(opt, metavar=opt.strip("-").upper().replace("-", "_"),
                          help={"--model": "a Keras model (loaded with safe_mode=True)",
                                "--layer": "feature layer of the model",
                                "--label-column": "label column of a CSV"}[opt])
    snap.add_argument("--drop-na", action="store_true", help="drop rows with missing values (reported)")
    snap.add_argument("--max-samples", type=int, default=2000, help="rows kept in the snapshot (default: %(default)s)")
    snap.add_argument("--seed", type=int, default=0, help="subsampling seed (default: %(default)s)")

    rep = sub.add_parser(
        "report",
        help="the full shift report (HTML/JSON) without gating",
        description="Measure source vs target and write the report: MMD tests, labels, per-feature drift, "
        "diagnosis and recommended adapter.",
    )
    rep.add_argument("--source", required=True, metavar="SRC", help="source data (CSV/NPZ/NPY)")
    rep.add_argument("--target", required=True, metavar="TGT", help="target data (CSV/NPZ/NPY)")
    data_options(rep)
    rep.add_argument("--alpha", type=float, default=0.05, help="level of the tests (default: %(default)s)")
    rep.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    return parser


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"[shiftkit] {message}", file=sys.stderr, flush=True)


def _demo_model(scenario, seed: int):
    """A small classifier trained on the scenario's source split (the demo's "source model")."""
    import keras

    keras.utils.set_random_seed(seed)
    n_classes = len(scenario.class_names)
    x = scenario.x_source
    layers = [keras.Input(x.shape[1:])]
    if x.ndim > 2:
        layers.append(keras.layers.Flatten())
    norm = keras.layers.Normalization(name="standardize")
    layers += [
        norm,
        keras.layers.Dense(32, activation="relu", name="hidden"),
        keras.layers.Dense(16, activation="relu", name="embedding"),
        keras.layers.Dense(n_classes, activation="softmax", name="head"),
    ]
    model = keras.Sequential(layers, name="demo_source_model")
    norm.adapt(x.reshape(len(x), -1) if x.ndim > 2 else x)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, scenario.y_source, epochs=40, batch_size=32, verbose=0)
    return model


def _run_demo(args: argparse.Namespace) -> int:
    from shiftkit.datasets import load_scenario
    from shiftkit.shift.report import shift_report

    _progress(f"loading scenario {args.scenario!r}")
    scenario = load_scenario(args.scenario, seed=args.seed)
    model = None
    if not args.no_model:
        _progress("training a small source model")
        model = _demo_model(scenario, args.seed)
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
    print(f"Scenario: {scenario.name} ({scenario.shift_kind} shift)")
    print(scenario.description)
    print()
    print(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(report.to_json())
        print(f"\nJSON report written to {args.json}")
    return EXIT_OK


def _is_snapshot(path: str) -> bool:
    import numpy as np

    if not str(path).lower().endswith(".npz"):
        return False
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return "shiftkit_meta" in getattr(arrays, "files", ())
    except Exception:  # noqa: BLE001 - not readable as npz: the loader reports it properly
        return False


def _note_dropped(role: str, n: int) -> None:
    if n:
        print(f"shiftkit: dropped {n} row(s) with missing values from the {role} (--drop-na)", file=sys.stderr)


def _load_model(args: argparse.Namespace):
    if not getattr(args, "model", None):
        return None
    from shiftkit.files import load_model_path

    _progress(f"loading model {args.model}")
    return load_model_path(args.model)


def _write_outputs(args: argparse.Namespace, json_text: str, summary: str, html_page) -> None:
    """--json and --html outputs; the summary goes to stdout unless stdout carries the JSON."""
    if args.json == "-":
        print(json_text)
        print(summary, file=sys.stderr)
    else:
        print(summary)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                fh.write(json_text)
            print(f"JSON report written to {args.json}", file=sys.stderr)
    if getattr(args, "html", None):
        with open(args.html, "w", encoding="utf-8") as fh:
            fh.write(html_page())
        print(f"HTML report written to {args.html}", file=sys.stderr)


def _run_check(args: argparse.Namespace) -> int:
    from shiftkit.check import Reference, check_shift
    from shiftkit.files import load_domains_path, load_single, read_path
    from shiftkit.html_report import render_html

    model = _load_model(args)
    _progress("loading data")
    common = dict(
        model=model, layer=args.layer, alpha=args.alpha, max_label_shift=args.max_label_shift,
        max_imbalance_ratio=args.max_imbalance_ratio, n_permutations=args.n_permutations,
        max_samples=args.max_samples, seed=args.seed, diagnose_shift=not args.no_diagnosis,
    )
    if _is_snapshot(args.reference):
        reference = Reference.load(args.reference)
        name, data = read_path(args.target, "target file")
        target = load_single(data, name, label_column=args.label_column, drop_na=args.drop_na,
                             feature_names=reference.feature_names, class_names=reference.class_names)
        _note_dropped("target", target.dropped)
        _progress("measuring shift against the snapshot")
        result = check_shift(reference, target.x, target.y, **common)
        class_names = reference.class_names
    else:
        d = load_domains_path(args.reference, args.target, label_column=args.label_column, drop_na=args.drop_na)
        _note_dropped("reference", d.dropped[0])
        _note_dropped("target", d.dropped[1])
        _progress("measuring shift")
        result = check_shift(d.x_source, d.x_target, d.y_target, y_reference=d.y_source,
                             feature_names=d.feature_names, class_names=d.class_names, **common)
        class_names = d.class_names
    _write_outputs(
        args, result.to_json(), result.summary(),
        lambda: render_html(result.report, drift=result.drift, diagnosis=result.diagnosis, check=result,
                            class_names=class_names, title="shiftkit pre-deployment check"),
    )
    return EXIT_OK if result.passed else EXIT_SHIFT


def _run_snapshot(args: argparse.Namespace) -> int:
    from shiftkit.check import Reference
    from shiftkit.files import load_single, read_path

    model = _load_model(args)
    name, data = read_path(args.reference, "reference file")
    ref = load_single(data, name, label_column=args.label_column, drop_na=args.drop_na, role="reference file")
    _note_dropped("reference", ref.dropped)
    _progress("summarising the reference")
    snapshot = Reference.from_data(ref.x, ref.y, model=model, layer=args.layer, max_samples=args.max_samples,
                                   seed=args.seed, feature_names=ref.feature_names, class_names=ref.class_names)
    snapshot.save(args.out)
    print(f"snapshot of {snapshot.n_reference} reference rows ({len(snapshot.x)} kept"
          f"{', with model features' if snapshot.features is not None else ''}) written to {args.out}")
    return EXIT_OK


def _run_report(args: argparse.Namespace) -> int:
    import json

    from shiftkit.files import load_domains_path
    from shiftkit.html_report import render_html, report_bundle
    from shiftkit.shift.diagnose import diagnose
    from shiftkit.shift.report import shift_report
    from shiftkit.shift.univariate import feature_drift

    model = _load_model(args)
    d = load_domains_path(args.source, args.target, label_column=args.label_column, drop_na=args.drop_na)
    _note_dropped("source", d.dropped[0])
    _note_dropped("target", d.dropped[1])
    _progress("measuring shift")
    report = shift_report(d.x_source, d.x_target, d.y_source, d.y_target, model=model, layer=args.layer,
                          n_permutations=args.n_permutations, alpha=args.alpha, seed=args.seed,
                          standardize=d.is_tabular, max_samples=args.max_samples)
    drift = feature_drift(d.x_source, d.x_target, feature_names=d.feature_names, alpha=args.alpha) if d.is_tabular else None
    _progress("diagnosing the kind of shift")
    diag = diagnose(d.x_source, d.x_target, d.y_source, d.y_target, model=model, alpha=args.alpha,
                    n_permutations=min(args.n_permutations, 500), seed=args.seed)
    bundle = report_bundle(report, drift)
    bundle["diagnosis"] = diag.to_dict()
    _write_outputs(
        args, json.dumps(bundle, indent=2, allow_nan=False), f"{report}\n\n{diag}",
        lambda: render_html(report, drift=drift, diagnosis=diag, class_names=d.class_names,
                            notes=[d.description], title="shiftkit shift report"),
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `shiftkit` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    commands = {"demo": _run_demo, "check": _run_check, "snapshot": _run_snapshot, "report": _run_report}
    try:
        if args.command in commands:
            return commands[args.command](args)
    except (ValueError, TypeError) as exc:
        print(f"shiftkit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse guards this
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
