"""Run alibi-detect's MMDDrift on arrays saved by `bench_mmd.py` (helper; not part of shiftkit).

alibi-detect 0.13 pins numpy < 2 and tensorflow < 2.19, so it lives in its own virtualenv
(`benchmarks/.venv-alibi`) and `bench_mmd.py` calls this file with that venv's python:

    benchmarks/.venv-alibi/bin/python benchmarks/_alibi_runner.py --data DATA.npz --n-permutations 1000

The detector is used with its defaults (GaussianRBF kernel, bandwidth from its median heuristic on
x_ref, `configure_kernel_from_x_ref=True`), exactly as its documentation shows:
`MMDDrift(x_ref, backend="tensorflow", p_val=0.05, n_permutations=P).predict(x)`.
The timed region is detector construction (which sets the bandwidth) plus `predict`, after one
warm-up on tiny data; TensorFlow's import is excluded, as for shiftkit.

`--probe K1 K2` does not run the full test: it times two runs with K1 and K2 permutations and
extrapolates the time of `--n-permutations` (time is affine in the number of permutations).

Prints one line `BENCH_JSON {...}` on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import Meter, wait_quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, help=".npz with arrays x (reference) and y (test)"
    )
    parser.add_argument("--n-permutations", type=int, default=1000)
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds numpy (alibi's permutations)"
    )
    parser.add_argument(
        "--probe", type=int, nargs=2, metavar=("K1", "K2"), default=None
    )
    parser.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.25,
        help="before timing, wait until the CPUs are less busy than this",
    )
    parser.add_argument(
        "--max-wait", type=float, default=300.0, help="longest wait (s) for that"
    )
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import alibi_detect
    import numpy as np
    import tensorflow as tf
    from alibi_detect.cd import MMDDrift

    data = np.load(args.data)
    x, y = data["x"], data["y"]

    # Warm-up on tiny data (graph/kernel initialisation, first-call overheads).
    rng = np.random.default_rng(123)
    MMDDrift(
        rng.normal(size=(50, x.shape[1])), backend="tensorflow", n_permutations=10
    ).predict(rng.normal(size=(50, x.shape[1])))

    def run(n_perm: int):
        np.random.seed(args.seed)
        tf.random.set_seed(args.seed)
        with Meter() as meter:
            cd = MMDDrift(x, backend="tensorflow", p_val=0.05, n_permutations=n_perm)
            pred = cd.predict(y, return_p_val=True, return_distance=True)
        sigma = float(np.ravel(cd._detector.kernel.sigma.numpy())[0])
        return meter.wall, pred["data"], sigma, meter

    busy_before = wait_quiet(
        args.quiet_threshold, args.max_wait, log=lambda m: print(m, file=sys.stderr)
    )
    out = {
        "busy_before": busy_before,
        "n": len(x),
        "m": len(y),
        "dtype": str(x.dtype),
        "n_permutations": args.n_permutations,
        "versions": {
            "alibi-detect": alibi_detect.__version__,
            "tensorflow": tf.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    if args.probe:
        k1, k2 = args.probe
        t1, _, sigma, m1 = run(k1)
        t2, _, _, meter = run(k2)
        per_perm = max((t2 - t1) / (k2 - k1), 0.0)
        fixed = max(t1 - k1 * per_perm, 0.0)
        out.update(
            probe=[k1, k2],
            probe_seconds=[t1, t2],
            seconds_per_permutation=per_perm,
            fixed_seconds=fixed,
            estimated_seconds=fixed + args.n_permutations * per_perm,
            sigma=sigma,
            probe_others_busy=[m1.others_busy, meter.others_busy],
        )
    else:
        elapsed, result, sigma, meter = run(args.n_permutations)
        out.update(
            seconds=elapsed,
            p_value=float(result["p_val"]),
            is_drift=bool(result["is_drift"]),
            distance=float(result["distance"]),
            threshold=float(result["distance_threshold"]),
            sigma=sigma,
        )
    out.update(meter.as_dict())
    sys.stdout.write("BENCH_JSON " + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
