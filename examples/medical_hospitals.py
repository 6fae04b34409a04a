"""Two hospitals, one breast-cancer model: diagnose the shift, then run the whole transfer study.

The scenario (offline: scikit-learn's Wisconsin breast-cancer data, 569 patients, 30 features):
`shiftkit.datasets.hospitals_covariate` sends each patient to the *target* hospital with a
probability that grows with the tumour's mean radius (a referral centre that receives the larger
tumours), and to the *source* hospital otherwise. Every patient keeps their own diagnosis, so
p(y | x) is the same in both hospitals while p(x) moved; because large tumours are more often
malignant, the malignant prevalence moved too (about 25% in the source, 50% in the target).

Steps:

1. `shiftkit.diagnose` on the two hospitals' records: which kinds of shift (covariate, label,
   concept, class imbalance), with the evidence of each, and the adapter it recommends.
2. `shiftkit.split_domains`: source train / val, 10 labelled target patients per class, the
   unlabelled rest and a held-out target test half.
3. `shiftkit.Experiment` with an MLP builder (a `Normalization` layer adapted on the source
   training patients, Dense 32 -> Dense 16 "features" -> softmax): trains the source model, measures
   the shift, trains the target-only baseline and the four adapters (copy, finetune, mmd,
   label_shift) and scores every one on the target test patients. When the diagnosis finds class
   imbalance, the training uses `class_weight="balanced"`, as the diagnosis recommends.

Usage:
    python examples/medical_hospitals.py [--seed 0] [--fast] [--strength 1.0]

`run(seed, fast)` returns the results table (`ExperimentResult.to_frame()`);
`benchmarks/bench_examples.py` calls it over several seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter

FULL: dict[str, Any] = {"epochs": None, "n_permutations": 500, "diagnose_permutations": 1000}  # None: Experiment's defaults
FAST: dict[str, Any] = {
    "epochs": {"source": 15, "target_only": 20, "copy": 20, "finetune": 10, "mmd": 8},
    "n_permutations": 100,
    "diagnose_permutations": 200,
}
METHODS: tuple[str, ...] = ("source_only", "target_only", "copy", "finetune", "mmd", "label_shift")


def make_builder(x_train: Any) -> Callable[[], Any]:
    """A zero-argument builder of the compiled MLP (what `Experiment` calls, seeded, per model)."""

    def build_mlp() -> Any:
        import keras
        from keras import layers

        norm = layers.Normalization(name="normalize")
        norm.adapt(x_train)  # source training statistics: the target is never looked at
        model = keras.Sequential(
            [
                keras.Input((x_train.shape[1],)),
                norm,
                layers.Dense(32, activation="relu", name="hidden"),
                layers.Dropout(0.2, name="dropout"),
                layers.Dense(16, activation="relu", name="features"),
                layers.Dense(2, activation="softmax", name="diagnosis"),
            ],
            name="hospital_mlp",
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        return model

    return build_mlp


def run(seed: int = 0, fast: bool = False, *, strength: float = 1.0, log: Callable[..., None] | None = None) -> Any:
    """Diagnose and run the experiment for one seed.

    Args:
        seed: seed of the hospitals, the splits, the weights and the shift tests.
        fast: the `FAST` settings (fewer epochs and permutations; same code path).
        strength: the selection's strength (`hospitals_covariate(strength=...)`).
        log: called like `print` with the narrative; None is silent.

    Returns:
        `ExperimentResult.to_frame()`: one row per method (`METHODS`), columns accuracy,
        balanced_accuracy, macro_f1, auroc, ece and the four feature-space shift columns.
        `frame.attrs` holds "diagnosis" (the kinds found, e.g. "covariate+label+imbalance"),
        "recommendation" and "class_weight".
    """
    import shiftkit

    say = log or (lambda *a, **k: None)
    cfg = dict(FAST if fast else FULL)
    s = shiftkit.datasets.hospitals_covariate(seed=seed, strength=strength)
    say(s.summary())

    # 1. Which kind of shift is this?
    diagnosis = shiftkit.diagnose(s.x_source, s.x_target, s.y_source, s.y_target,
                                  n_permutations=cfg["diagnose_permutations"], seed=seed)
    say("\nDiagnosis (all records of both hospitals; scikit-learn's logistic regression as the source classifier):")
    say(diagnosis)
    class_weight = "balanced" if "imbalance" in diagnosis.kinds else None

    # 2-3. Splits, then the whole study.
    splits = shiftkit.split_domains(s.x_source, s.y_source, s.x_target, s.y_target, target_labeled=10, seed=seed)
    say(f"\n{splits}")
    experiment = shiftkit.Experiment(
        make_builder(splits.source_train[0]),
        adapters=("copy", "finetune", "mmd", "label_shift"),
        class_weight=class_weight,
        n_permutations=cfg["n_permutations"],
    )
    result = experiment.run(splits, seed=seed, epochs=cfg["epochs"])
    say(f"\nclass_weight={class_weight!r} (from the diagnosis); epochs {result.config['epochs']}")
    frame = result.to_frame()
    frame.attrs["diagnosis"] = "+".join(diagnosis.kinds) or "none"
    frame.attrs["recommendation"] = diagnosis.recommendation
    frame.attrs["class_weight"] = str(class_weight)
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Breast-cancer hospitals: diagnose the shift, then compare "
                                     "source-only, target-only and four adapters with shiftkit.Experiment.")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hospitals, splits, weights and tests")
    parser.add_argument("--fast", action="store_true", help="fewer epochs and permutations, same code path (CI)")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="strength of the selection on tumour size (default 1.0; 0 = no shift)")
    args = parser.parse_args(argv)

    import pandas as pd

    t0 = time.perf_counter()
    frame = run(args.seed, args.fast, strength=args.strength, log=print)
    print(f"\nResults on the target hospital's test patients (seed {args.seed}{', fast mode' if args.fast else ''}; "
          "shift_* = feature-space MMD test of source val vs target test, before = source model, after = that "
          "method's model; ece: lower is better):")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.round(4).to_string())
    print(f"\nTotal time {time.perf_counter() - t0:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
