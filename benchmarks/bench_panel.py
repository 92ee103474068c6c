"""Memory and time of a global model on a large panel: many series, one network.

Builds a synthetic hourly panel (``--series`` series of ``--steps`` steps, each a daily
and weekly cycle with its own level, scale, phase and noise, starting at staggered
dates), fits ``RNNForecaster`` on it in long format and forecasts every series. Reports
wall time per stage and the process's peak resident memory (``ru_maxrss``), with the
size of the data itself for comparison.

Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_panel.py
    python benchmarks/bench_panel.py --series 100 --steps 1000 --max-iter 2   # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import warnings

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run from a checkout without installing


def peak_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_panel(n_series: int, n_steps: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)
    frames = []
    for s in range(n_series):
        level, scale = rng.uniform(10, 1000), rng.uniform(1, 50)
        phase = rng.uniform(0, 2 * np.pi)
        y = (level + scale * (np.sin(2 * np.pi * t / 24 + phase)
                              + 0.5 * np.sin(2 * np.pi * t / 168))
             + scale * 0.3 * rng.normal(size=n_steps))
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=int(rng.integers(0, 500)))
        frames.append(pd.DataFrame({"unique_id": f"s{s}", "ds": pd.date_range(
            start, periods=n_steps, freq="h"), "y": y}))
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lookback", type=int, default=48)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--max-iter", type=int, default=None,
                        help="epochs (default: the forecaster's)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from tsrnn import RNNForecaster

    print(f"# Panel benchmark: {args.series} series x {args.steps} hourly steps, lookback "
          f"{args.lookback}, horizon {args.horizon}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}\n")
    started = time.perf_counter()
    frame = synthetic_panel(args.series, args.steps)
    data_mib = frame.memory_usage(deep=True).sum() / 2**20
    build = time.perf_counter() - started
    baseline = peak_mib()
    fc = RNNForecaster(lookback=args.lookback, horizon=args.horizon, random_state=0,
                       max_iter=args.max_iter)
    started = time.perf_counter()
    fc.fit(frame, id_column="unique_id")
    fit = time.perf_counter() - started
    started = time.perf_counter()
    out = fc.predict()
    predict = time.perf_counter() - started
    reg = fc.regressor_
    print("| stage | seconds | peak RSS after (MiB) |")
    print("| --- | ---: | ---: |")
    print(f"| build the long DataFrame ({data_mib:.0f} MiB) | {build:.1f} | {baseline:.0f} |")
    print(f"| fit ({fc.n_training_windows_:,} training windows, {reg.n_iter_} epochs) | "
          f"{fit:.1f} | {peak_mib():.0f} |")
    print(f"| predict all {args.series} series ({len(out):,} rows) | {predict:.2f} | "
          f"{peak_mib():.0f} |")


if __name__ == "__main__":
    main()
