"""Training and inference speed of tsrnn vs PyTorch (CPU), side by side in one process.

Workloads (DESIGN.md): W1 LSTM H=32 F=1 T=48 B=64; W2 GRU H=64 2 layers F=8 T=96 B=128;
W3 RNN(tanh) H=128 F=4 T=64 B=64; W4 LSTM H=256 F=16 T=64 B=256.

For each workload and round, one training epoch (8192 random windows, float32, MSE on
1 output, Adam) and one inference pass over the same windows run three ways, back to
back, the order reversed every round:

* tsrnn at kernel level: ``network.loss_and_grad`` + ``optim.Optimizer('adam')`` per
  minibatch, ``network.predict(..., batch_size=B)``;
* tsrnn through the public API: ``RNNRegressor(..., max_iter=1, shuffle=False,
  batch_size=B, n_jobs=2).fit(X, y)`` (standardize on, the other parameters at their
  defaults: alpha 1e-4, clip_norm 5; its ConvergenceWarning suppressed), and
  ``RNNRegressor.predict`` called batch by batch (B windows per call);
* PyTorch: the same architecture, ``torch.optim.Adam``, ``nn.MSELoss``,
  ``torch.no_grad`` for inference, batches of B.

Reported: medians over rounds of samples/s, and the medians of the paired (same-round)
ratios tsrnn / PyTorch, since wall-clock speed on shared machines drifts.

Single-window latency (W1's shape, LSTM H=32 F=1 T=48): median time of one
``RNNRegressor.predict`` of one window, of ``network.predict`` of one window (the kernel
part), and of a bare ``torch.nn.LSTM`` + ``Linear`` call under ``torch.no_grad``, each
over 200 calls, in 5 alternating rounds.

Compile latency: the time from ``import tsrnn`` to the end of a first small fit
(``RNNRegressor(cell=..., max_iter=1).fit`` on 32 windows, for each cell, float32) in a
fresh process with an empty ``NUMBA_CACHE_DIR`` (cold), then again in a second process on
the same directory (warm).

Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_training.py
    python benchmarks/bench_training.py --quick --workloads W1,W3 --rounds 3
    python benchmarks/bench_training.py --no-latency --no-api    # kernel level only
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

WORKLOADS = {
    # name: (cell, hidden, layers, features, timesteps, batch)
    "W1": ("lstm", 32, 1, 1, 48, 64),
    "W2": ("gru", 64, 2, 8, 96, 128),
    "W3": ("rnn", 128, 1, 4, 64, 64),
    "W4": ("lstm", 256, 1, 16, 64, 256),
}
N_WINDOWS = 8192
N_THREADS = 2


def describe(name):
    cell, H, L, F, T, B = WORKLOADS[name]
    label = {"rnn": "RNN(tanh)", "lstm": "LSTM", "gru": "GRU"}[cell]
    layers = f" {L} layers" if L > 1 else ""
    return f"{name} {label} H={H}{layers} F={F} T={T} B={B}"


# ----------------------------------------------------------------------------
# the two contenders
# ----------------------------------------------------------------------------


class TsrnnRunner:
    def __init__(self, cell, H, L, F, X, y, B):
        from tsrnn import network
        from tsrnn._kernels import optim

        self.network = network
        self.layout = network.ParameterLayout(cell, F, H, L, 1)
        self.params = self.layout.init(np.random.default_rng(0), dtype=np.float32)
        self.opt = optim.Optimizer("adam", self.layout.size, np.float32, learning_rate=1e-3)
        self.cell_id = network.cell_code(cell, "tanh")
        self.X, self.y, self.B = X, y, B

    def train_epoch(self, n=None):
        X, y, B = self.X, self.y, self.B
        n = X.shape[0] if n is None else n
        for start in range(0, n, B):
            _, grad = self.network.loss_and_grad(self.layout, self.params, X[start:start + B],
                                                 y[start:start + B], cell_id=self.cell_id)
            self.opt.step(self.params, grad)

    def infer(self, n=None):
        X = self.X if n is None else self.X[:n]
        return self.network.predict(self.layout, self.params, X, cell_id=self.cell_id,
                                    batch_size=self.B)


class ApiRunner:
    """tsrnn through the public estimator: a fresh one-epoch fit, predict per batch."""

    def __init__(self, cell, H, L, F, X, y, B):
        from tsrnn import RNNRegressor

        self.make = lambda: RNNRegressor(cell=cell, hidden_size=H, num_layers=L, max_iter=1,
                                         shuffle=False, batch_size=B, random_state=0,
                                         n_jobs=N_THREADS)
        self.X, self.y, self.B = X, y.ravel(), B
        self.model = None

    def train_epoch(self, n=None):
        from sklearn.exceptions import ConvergenceWarning

        n = self.X.shape[0] if n is None else n
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=1 on purpose
            self.model = self.make().fit(self.X[:n], self.y[:n])

    def infer(self, n=None):
        X = self.X if n is None else self.X[:n]
        return [self.model.predict(X[start:start + self.B])
                for start in range(0, X.shape[0], self.B)]


class TorchRunner:
    def __init__(self, cell, H, L, F, X, y, B):
        import torch

        torch.set_num_threads(N_THREADS)
        torch.manual_seed(0)
        self.torch = torch
        kw = dict(input_size=F, hidden_size=H, num_layers=L, batch_first=True)
        rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](**kw)
        head = torch.nn.Linear(H, 1)

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn, self.head = rnn, head

            def forward(self, x):
                out, _ = self.rnn(x)
                return self.head(out[:, -1])

        self.model = Net()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.MSELoss()
        self.X, self.y, self.B = torch.from_numpy(X), torch.from_numpy(y), B

    def train_epoch(self, n=None):
        X, y, B = self.X, self.y, self.B
        n = X.shape[0] if n is None else n
        self.model.train()
        for start in range(0, n, B):
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.model(X[start:start + B]), y[start:start + B])
            loss.backward()
            self.opt.step()

    def infer(self, n=None):
        X = self.X if n is None else self.X[:n]
        self.model.eval()
        out = []
        with self.torch.no_grad():
            for start in range(0, X.shape[0], self.B):
                out.append(self.model(X[start:start + self.B]))
        return self.torch.cat(out)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_workload(name, rounds, n_windows, api=True):
    cell, H, L, F, T, B = WORKLOADS[name]
    rng = np.random.default_rng(42)
    X = rng.standard_normal((n_windows, T, F)).astype(np.float32)
    y = rng.standard_normal((n_windows, 1)).astype(np.float32)
    runners = {"tsrnn": TsrnnRunner(cell, H, L, F, X, y, B),
               "torch": TorchRunner(cell, H, L, F, X, y, B)}
    if api:
        runners["api"] = ApiRunner(cell, H, L, F, X, y, B)
    for r in runners.values():  # warm-up: compile, allocate, fault pages in
        r.train_epoch(n=min(4 * B, n_windows))
        r.infer(n=min(4 * B, n_windows))
    train = {k: [] for k in runners}
    infer = {k: [] for k in runners}
    order = list(runners)
    for i in range(rounds):
        for k in order:
            train[k].append(n_windows / timed(runners[k].train_epoch))
        for k in order:
            infer[k].append(n_windows / timed(runners[k].infer))
        order.reverse()
    res = {"train": {k: statistics.median(v) for k, v in train.items()},
           "infer": {k: statistics.median(v) for k, v in infer.items()}}
    for k in runners:
        if k == "torch":
            continue
        for what, runs in (("train", train), ("infer", infer)):
            ratios = [a / b for a, b in zip(runs[k], runs["torch"])]
            res[f"{what}_ratios_{k}"] = ratios
            res[f"{what}_ratio_{k}"] = statistics.median(ratios)
    return res


# ----------------------------------------------------------------------------
# single-window latency
# ----------------------------------------------------------------------------

LATENCY_CALLS = 200
LATENCY_ROUNDS = 5


def single_window_latency(calls=LATENCY_CALLS, rounds=LATENCY_ROUNDS):
    """Median seconds per call of one-window predictions on W1's shape: the public
    ``RNNRegressor.predict``, the kernel-level ``network.predict`` and a bare PyTorch
    module call; medians over rounds of per-round medians (the three alternate)."""
    from sklearn.exceptions import ConvergenceWarning

    from tsrnn import RNNRegressor, network

    cell, H, L, F, T, B = WORKLOADS["W1"]
    rng = np.random.default_rng(7)
    X = rng.standard_normal((4 * B, T, F)).astype(np.float32)
    y = rng.standard_normal(4 * B).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNRegressor(cell=cell, hidden_size=H, num_layers=L, max_iter=1,
                             batch_size=B, random_state=0, n_jobs=N_THREADS).fit(X, y)
    tsrnn = TsrnnRunner(cell, H, L, F, X, y[:, None], B)
    torch_runner = TorchRunner(cell, H, L, F, X, y[:, None], B)
    torch = torch_runner.torch
    torch_model = torch_runner.model.eval()
    x_np = X[:1]
    x_t = torch.from_numpy(x_np)

    def torch_call():
        with torch.no_grad():
            return torch_model(x_t)

    contenders = {
        "RNNRegressor.predict": lambda: model.predict(x_np),
        "network.predict": lambda: network.predict(tsrnn.layout, tsrnn.params, x_np,
                                                   cell_id=tsrnn.cell_id),
        "torch": torch_call,
    }
    per_round = {k: [] for k in contenders}
    order = list(contenders)
    for _ in range(rounds):
        for k in order:
            fn = contenders[k]
            for _ in range(20):  # warm-up
                fn()
            times = []
            for _ in range(calls):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            per_round[k].append(statistics.median(times))
        order.reverse()
    return {k: statistics.median(v) for k, v in per_round.items()}, per_round


# ----------------------------------------------------------------------------
# compile latency
# ----------------------------------------------------------------------------

LATENCY_SCRIPT = textwrap.dedent("""
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


#: Warm-cache processes run one after another; the one with the median total is
#: reported (a single process on a shared machine varies by +-0.3 s).
WARM_RUNS = 3


def compile_latency():
    """(import, total) seconds of the cold process and of every warm process."""
    with tempfile.TemporaryDirectory(prefix="tsrnn-numba-cache-") as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
        out = []
        for _ in range(1 + WARM_RUNS):  # cold, then warm
            res = subprocess.run([sys.executable, "-c", LATENCY_SCRIPT], env=env, check=True,
                                 capture_output=True, text=True)
            t_import, total = res.stdout.strip().splitlines()[-1].split()
            out.append((float(t_import), float(total)))
    return out[0], out[1:]


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------


def environment():
    import numba
    import torch

    lines = [
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"torch {torch.__version__}",
        f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores; "
        f"numba threads {numba.get_num_threads()}, torch threads {torch.get_num_threads()}",
    ]
    unset = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if unset:
        lines.append(f"note: {', '.join(unset)} set in the environment")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="paired rounds per workload (default 5, 3 with --quick)")
    parser.add_argument("--workloads", default="W1,W2,W3,W4",
                        help="comma-separated subset of W1,W2,W3,W4")
    parser.add_argument("--quick", action="store_true",
                        help="2048 windows and 3 rounds (unless --rounds is given)")
    parser.add_argument("--windows", type=int, default=None, help="windows per epoch")
    parser.add_argument("--no-latency", action="store_true", help="skip the compile latency")
    parser.add_argument("--no-api", action="store_true",
                        help="skip the public-API measurements (RNNRegressor fit/predict and "
                             "the single-window latency)")
    args = parser.parse_args(argv)
    names = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    for name in names:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    rounds = args.rounds or (3 if args.quick else 5)
    n_windows = args.windows or (2048 if args.quick else N_WINDOWS)

    latency = None if args.no_latency else compile_latency()

    import numba
    import torch

    numba.set_num_threads(min(N_THREADS, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(N_THREADS)
    for line in environment():
        print(line)
    print(f"{n_windows} windows per epoch, {rounds} rounds, float32, Adam, MSE, 1 output\n")

    api = not args.no_api
    results = {}
    for name in names:
        t = time.perf_counter()
        results[name] = res = bench_workload(name, rounds, n_windows, api=api)
        line = f"{describe(name)}: kernel train ratios " + " ".join(
            f"{r:.2f}" for r in res["train_ratios_tsrnn"]) + "; infer " + " ".join(
            f"{r:.2f}" for r in res["infer_ratios_tsrnn"])
        if api:
            line += "; API train " + " ".join(
                f"{r:.2f}" for r in res["train_ratios_api"]) + "; infer " + " ".join(
                f"{r:.2f}" for r in res["infer_ratios_api"])
        print(line + f" ({time.perf_counter() - t:.0f} s)", flush=True)

    for what, title in (("train", "Training (one epoch)"), ("infer", "Inference (batches of B)")):
        print(f"\n{title}, samples/s and medians of the paired ratios against PyTorch:\n")
        if api:
            print("| workload | tsrnn kernels | tsrnn RNNRegressor | PyTorch | kernel ratio "
                  "| API ratio |")
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
        else:
            print("| workload | tsrnn kernels | PyTorch | kernel ratio |")
            print("| --- | ---: | ---: | ---: |")
        for name, res in results.items():
            speeds = res[what]
            row = f"| {describe(name)} | {speeds['tsrnn']:,.0f} | "
            if api:
                row += f"{speeds['api']:,.0f} | "
            row += f"{speeds['torch']:,.0f} | {res[what + '_ratio_tsrnn']:.2f}x |"
            if api:
                row += f" {res[what + '_ratio_api']:.2f}x |"
            print(row)

    if api:
        medians, per_round = single_window_latency()
        torch_t = medians["torch"]
        print(f"\nSingle-window predict on W1's shape (LSTM H=32 F=1 T=48), median of "
              f"{LATENCY_CALLS} calls, median of {LATENCY_ROUNDS} rounds:\n")
        print("| call | latency (us) | vs the bare PyTorch call |")
        print("| --- | ---: | ---: |")
        for label, key in (("tsrnn `RNNRegressor.predict(X[:1])`", "RNNRegressor.predict"),
                           ("tsrnn `network.predict` (kernel part)", "network.predict"),
                           ("PyTorch `nn.LSTM` + `nn.Linear`, `no_grad`", "torch")):
            print(f"| {label} | {medians[key] * 1e6:.0f} | {torch_t / medians[key]:.2f}x |")
        print("\nper round (us): " + "; ".join(
            f"{k} " + " ".join(f"{v * 1e6:.0f}" for v in vals) for k, vals in per_round.items()))

    if latency is not None:
        print()
        print("| latency: import tsrnn -> end of a first small fit (RNNRegressor, max_iter=1; "
              "rnn, lstm, gru; float32) | total (s) | of which `import tsrnn` (s) |")
        print("| --- | ---: | ---: |")
        cold, warm = latency
        warm_median = sorted(warm, key=lambda r: r[1])[len(warm) // 2]
        for label, (t_import, total) in (
                ("cold cache (fresh process, empty NUMBA_CACHE_DIR)", cold),
                (f"warm cache (fresh process, same NUMBA_CACHE_DIR; median of {len(warm)})",
                 warm_median)):
            print(f"| {label} | {total:.2f} | {t_import:.2f} |")
        print("\nwarm processes (total / import, s): "
              + ", ".join(f"{total:.2f} / {t_import:.2f}" for t_import, total in warm))

if __name__ == "__main__":
    main()
