"""The `shiftkit` command line.

    shiftkit --version
    shiftkit demo [--scenario NAME] [--no-model] [--n-permutations N] [--alpha A] [--seed S] [--json PATH|-]

Exit codes: 0 success, 2 bad input or usage (argparse's convention). The pre-deployment gate
(`shiftkit check`, exit 1 on shift) is built on the same report.
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `shiftkit` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "demo":
            return _run_demo(args)
    except (ValueError, TypeError) as exc:
        print(f"shiftkit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse guards this
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
