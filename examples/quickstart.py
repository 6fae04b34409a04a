"""Quickstart: measure the shift, adapt the model, measure again (two breast-cancer hospitals).

The source hospital and the target hospital see different patients (the target gets the larger
tumours: `shiftkit.datasets.hospitals_covariate`). A small Keras model is trained on the source;
`shiftkit.shift_report` measures how far the target is from the source; `MMDAdapter` adapts the
model with *unlabelled* target patients; `adapter.shift_report` measures again, before | after.

Usage:
    python examples/quickstart.py [--seed 0] [--fast]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter


def run(seed: int = 0, fast: bool = False, *, log=None):
    """The whole quickstart for one seed; returns the results table (a pandas DataFrame)."""
    import keras
    import pandas as pd

    import shiftkit

    say = log or (lambda *a: None)
    epochs, n_perm = (10, 200) if fast else (30, 1000)
    # --- the quickstart proper -------------------------------------------------------------------
    s = shiftkit.datasets.hospitals_covariate(seed=seed)
    splits = shiftkit.split_domains(s.x_source, s.y_source, s.x_target, s.y_target, seed=seed)
    (xs, ys), (xv, yv), (xt, yt) = splits.source_train, splits.source_val, splits.target_test
    keras.utils.set_random_seed(seed)
    norm = keras.layers.Normalization()
    norm.adapt(xs)
    model = keras.Sequential([keras.Input((30,)), norm, keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(xs, ys, epochs=epochs, verbose=0)

    before = shiftkit.shift_report(xv, xt, yv, model=model, n_permutations=n_perm, seed=seed)  # 1. measure
    say(before)
    adapter = shiftkit.MMDAdapter(model).fit(xs, ys, splits.target_unlabeled, epochs=epochs, seed=seed,
                                             verbose=0)  # 2. adapt, without target labels
    after = adapter.shift_report(xv, xt, yv, yt, n_permutations=n_perm, seed=seed)  # 3. measure again
    say("\nbefore | after (MMDAdapter):")
    say(after)
    # ---------------------------------------------------------------------------------------------
    rows = {
        "source_only": (after.accuracy_before, after.before.feature_test),
        "MMDAdapter": (after.accuracy_after, after.after.feature_test),
    }
    frame = pd.DataFrame.from_dict(
        {m: {"target_accuracy": acc, "feature_mmd2_normalized": t.normalized, "feature_p_value": t.p_value}
         for m, (acc, t) in rows.items()},
        orient="index",
    )
    frame.index.name = "method"
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="shiftkit quickstart: measure -> adapt -> measure.")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hospitals, splits and weights")
    parser.add_argument("--fast", action="store_true", help="fewer epochs and permutations (CI)")
    args = parser.parse_args(argv)
    frame = run(args.seed, args.fast, log=print)
    print(f"\nResults (target test patients, seed {args.seed}):")
    print(frame.round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
