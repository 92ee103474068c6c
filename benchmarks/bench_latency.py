"""Latency through the public API: single forecasts, and a process's first run.

Single forecasts (one process, paired rounds, medians of per-call times):

* ``RNNRegressor.predict`` of one window of W1's shape (LSTM H=32, F=1, T=48,
  float32), beside the kernel alone (``network.predict`` on the scaled window: the
  difference is the estimator's validation, scaling and bookkeeping) and a bare
  ``torch.nn.LSTM`` + ``torch.nn.Linear`` module call on the same shape
  (``torch.inference_mode``; torch is a dependency of this benchmark only);
* ``RNNForecaster.predict(history=...)`` of the default forecaster (lookback 48,
  horizon 24) fitted on the shipped hourly Seattle temperatures.

Rounds alternate tsrnn and torch (order swapped every round); reported are the medians
over rounds and the median of the paired ratios torch / tsrnn (above 1: tsrnn faster).

First run (fresh subprocesses, an empty ``NUMBA_CACHE_DIR`` each time for "cold"):

* ``import tsrnn`` to the end of a first small fit (``RNNRegressor(cell=...,
  max_iter=1)`` on 32 windows for rnn, lstm and gru, float32, as
  ``benchmarks/bench_training.py`` measures it), cold then warm;
* ``python -m tsrnn warmup`` (float32), cold then warm (process wall time).

Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_latency.py
    python benchmarks/bench_latency.py --quick --no-first-run
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run from a checkout without installing

N_THREADS = 2
H, F, T = 32, 1, 48  # W1's shape
LOOKBACK, HORIZON = 48, 24


def cpu_description() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model} ({simd}), {os.cpu_count()} logical cores"


def per_call_median(fn, calls: int) -> float:
    """Median seconds of one call of ``fn`` over ``calls`` calls (after a warm-up)."""
    for _ in range(max(10, calls // 10)):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ----------------------------------------------------------------------------
# single forecasts
# ----------------------------------------------------------------------------


def regressor_cases():
    """(name, callable) of the one-window cases: tsrnn predict, its kernel, torch."""
    import torch
    from sklearn.exceptions import ConvergenceWarning

    from tsrnn import RNNRegressor, network

    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, T, F)).astype(np.float32)
    y = X[:, -1, 0] - 0.5 * X[:, -2, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNRegressor(cell="lstm", hidden_size=H, max_iter=2, random_state=0).fit(X, y)
    window = X[:1].copy()
    layout, params = model._layout(), model._params
    scaled = model._scaling().transform_X(window, params.dtype)
    cell_id = network.cell_code("lstm")

    torch.set_num_threads(N_THREADS)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(F, H, batch_first=True).eval()
    head = torch.nn.Linear(H, 1).eval()
    x_torch = torch.from_numpy(window)

    def torch_call():
        with torch.inference_mode():
            out, _ = lstm(x_torch)
            return head(out[:, -1])

    return {
        "tsrnn RNNRegressor.predict": lambda: model.predict(window),
        "tsrnn kernel (network.predict)": lambda: network.predict(layout, params, scaled,
                                                                  cell_id=cell_id),
        "torch nn.LSTM + nn.Linear": torch_call,
    }


def forecaster_case(quick: bool):
    from tsrnn import RNNForecaster
    from tsrnn.datasets import load_seattle_temps

    frame = load_seattle_temps()
    train, newer = (frame.iloc[:2000], frame.iloc[2000:2400]) if quick else \
        (frame.iloc[:-400], frame.iloc[-400:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        fc = RNNForecaster(lookback=LOOKBACK, horizon=HORIZON, random_state=0).fit(
            train, target="temp")
        fit_seconds = time.perf_counter() - t0
    history = newer.iloc[:200]
    return (lambda: fc.predict(history=history)), fit_seconds, len(train)


def single_forecasts(rounds: int, calls: int, quick: bool):
    cases = regressor_cases()
    names = list(cases)
    samples = {name: [] for name in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            samples[name].append(per_call_median(cases[name], calls))
    ratios = [t / p for t, p in zip(samples["torch nn.LSTM + nn.Linear"],
                                    samples["tsrnn RNNRegressor.predict"])]
    forecast, fit_seconds, n_rows = forecaster_case(quick)
    fc_times = [per_call_median(forecast, max(20, calls // 20)) for _ in range(rounds)]
    return samples, ratios, fc_times, fit_seconds, n_rows


# ----------------------------------------------------------------------------
# first run
# ----------------------------------------------------------------------------

FIRST_FIT = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import tsrnn
    t_import = time.perf_counter() - t0
    import warnings
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 6, 2)).astype(np.float32)
    y = rng.standard_normal(32).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=1 on purpose
        for cell in ("rnn", "lstm", "gru"):
            tsrnn.RNNRegressor(cell=cell, hidden_size=4, max_iter=1, batch_size=8,
                               random_state=0).fit(X, y)
    print(t_import, time.perf_counter() - t0)
""")

WARM_RUNS = 3


def _env(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env


def first_fit_latency():
    """[(import s, total s, notice shown)] of the cold process, then the warm ones."""
    out = []
    with tempfile.TemporaryDirectory(prefix="tsrnn-numba-cache-") as cache_dir:
        for _ in range(1 + WARM_RUNS):
            res = subprocess.run([sys.executable, "-c", FIRST_FIT], env=_env(cache_dir),
                                 check=True, capture_output=True, text=True)
            t_import, total = res.stdout.split()[-2:]
            out.append((float(t_import), float(total), "compiling kernels" in res.stderr))
    return out


def warmup_latency():
    """[(wall s, output line)] of ``python -m tsrnn warmup``: cold, then warm."""
    out = []
    with tempfile.TemporaryDirectory(prefix="tsrnn-numba-cache-") as cache_dir:
        for _ in range(1 + WARM_RUNS):
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "tsrnn", "warmup"],
                                 env=_env(cache_dir), check=True, capture_output=True,
                                 text=True)
            out.append((time.perf_counter() - t0, res.stdout.strip()))
    return out


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds (default 7)")
    parser.add_argument("--calls", type=int, default=None,
                        help="calls per measurement (default 2000)")
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds of 500 calls; forecaster fitted on 2000 hours")
    parser.add_argument("--no-first-run", action="store_true",
                        help="skip the cold/warm subprocess measurements")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    calls = args.calls or (500 if args.quick else 2000)

    import numba
    import torch

    import tsrnn

    print(f"cpu: {cpu_description()}; numba threads {numba.get_num_threads()}, torch "
          f"threads {N_THREADS}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba "
          f"{numba.__version__}, torch {torch.__version__}, tsrnn {tsrnn.__version__}")
    unset = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if unset:
        print(f"note: {', '.join(unset)} set in the environment")
    print()

    samples, ratios, fc_times, fit_seconds, n_rows = single_forecasts(rounds, calls,
                                                                      args.quick)
    print(f"### One window (LSTM H={H}, F={F}, T={T}, float32), median per call over "
          f"{rounds} rounds of {calls} calls")
    print()
    print("| call | median | min over rounds |")
    print("| --- | ---: | ---: |")
    for name, values in samples.items():
        print(f"| {name} | {us(statistics.median(values))} | {us(min(values))} |")
    overhead = [p - k for p, k in zip(samples["tsrnn RNNRegressor.predict"],
                                      samples["tsrnn kernel (network.predict)"])]
    print(f"| estimator overhead (predict - kernel) | {us(statistics.median(overhead))} | |")
    print(f"| RNNForecaster.predict(history=...) (lookback {LOOKBACK}, horizon {HORIZON}) "
          f"| {us(statistics.median(fc_times))} | {us(min(fc_times))} |")
    print()
    print(f"torch / tsrnn one-window predict, median of paired ratios: "
          f"{statistics.median(ratios):.2f}x (above 1: tsrnn faster)")
    print(f"(forecaster: default RNNForecaster fitted in {fit_seconds:.1f} s on {n_rows} "
          "hours of Seattle temperatures; history of 200 newer hours)")

    if args.no_first_run:
        return 0
    print()
    fits = first_fit_latency()
    cold, warm = fits[0], fits[1:]
    warm_total = sorted(warm, key=lambda r: r[1])[len(warm) // 2]
    runs = warmup_latency()
    warm_wu = sorted(r[0] for r in runs[1:])[len(runs[1:]) // 2]
    print("### First run (fresh processes; cold: empty NUMBA_CACHE_DIR)")
    print()
    print("| measurement | cold | warm (median of 3) | of which `import tsrnn` (warm) |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| `import tsrnn` + first small fit (rnn, lstm, gru) | {cold[1]:.2f} s | "
          f"{warm_total[1]:.2f} s | {warm_total[0]:.2f} s |")
    print(f"| `python -m tsrnn warmup` (process wall time) | {runs[0][0]:.2f} s | "
          f"{warm_wu:.2f} s | |")
    print()
    print(f"compile notice printed: cold {cold[2]}, warm {any(r[2] for r in warm)}; "
          f"cold warmup: {runs[0][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
