"""GPU training and inference throughput (samples/s): tsrnn's CUDA backend vs PyTorch on
the same GPU, for the workloads W1-W4 of DESIGN.md, float32.

Runs are paired and back to back (tsrnn, then PyTorch, ``--repeats`` times) and the
median of the paired ratios is reported, since speed on shared machines drifts.
Training: one epoch of ``--batches`` minibatches with Adam, gradient clipping and
half-MSE loss, all state on the device, timed until the result is back on the host.
Inference: predictions for ``--batches`` x B samples.

    python benchmarks/bench_gpu.py                  # W1-W4
    python benchmarks/bench_gpu.py --workloads W1 W3 --repeats 5
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_gpu.py --tiny   # code-path check, no GPU

Without a usable GPU it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    cell: str
    hidden_size: int
    num_layers: int
    n_features: int
    n_timesteps: int
    batch_size: int


WORKLOADS = {
    "W1": Workload("W1", "lstm", 32, 1, 1, 48, 64),
    "W2": Workload("W2", "gru", 64, 2, 8, 96, 128),
    "W3": Workload("W3", "rnn", 128, 1, 4, 64, 64),
    "W4": Workload("W4", "lstm", 256, 1, 16, 64, 256),
}
TINY = {"W1": Workload("W1-tiny", "lstm", 3, 1, 1, 3, 4),
        "W2": Workload("W2-tiny", "gru", 3, 2, 2, 3, 4)}
LEARNING_RATE = 1e-3
CLIP_NORM = 5.0


def data(w: Workload, n_batches: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = w.batch_size * n_batches
    X = rng.standard_normal((n, w.n_timesteps, w.n_features)).astype(np.float32)
    y = rng.standard_normal((n, 1)).astype(np.float32)
    return X, y


# ----------------------------------------------------------------------------
# tsrnn
# ----------------------------------------------------------------------------


class TsrnnRun:
    def __init__(self, w: Workload, X, y):
        from tsrnn import cuda_backend, network
        from tsrnn._kernels.optim import Optimizer

        self.w = w
        layout = network.ParameterLayout(w.cell, w.n_features, w.hidden_size, w.num_layers, 1)
        params = layout.init(np.random.default_rng(0), dtype=np.float32)
        opt = Optimizer("adam", layout.size, np.float32, learning_rate=LEARNING_RATE)
        self.trainer = cuda_backend.CudaTrainer(
            layout, params, network.cell_code(w.cell), X, y, opt, clip_norm=CLIP_NORM,
            X_val=X)
        n = X.shape[0]
        self.batches = [np.arange(i, min(i + w.batch_size, n)) for i in range(0, n, w.batch_size)]
        self.n = n

    def train(self) -> float:
        t = time.perf_counter()
        self.trainer.run_epoch(self.batches)  # returns after the losses are on the host
        return self.n / (time.perf_counter() - t)

    def infer(self) -> float:
        t = time.perf_counter()
        self.trainer.predict(batch_size=self.w.batch_size)
        return self.n / (time.perf_counter() - t)


# ----------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------


class TorchRun:
    def __init__(self, torch, w: Workload, X, y):
        self.torch, self.w = torch, w
        dev = torch.device("cuda")
        rnn_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[w.cell]
        torch.manual_seed(0)
        self.rnn = rnn_cls(w.n_features, w.hidden_size, w.num_layers, batch_first=True).to(dev)
        self.head = torch.nn.Linear(w.hidden_size, 1).to(dev)
        self.params = list(self.rnn.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adam(self.params, lr=LEARNING_RATE)
        self.X = torch.tensor(X, device=dev)
        self.y = torch.tensor(y, device=dev)
        self.n = X.shape[0]

    def _forward(self, xb):
        out, _ = self.rnn(xb)
        return self.head(out[:, -1])

    def train(self) -> float:
        torch = self.torch
        torch.cuda.synchronize()
        t = time.perf_counter()
        total = torch.zeros((), device=self.X.device)
        for i in range(0, self.n, self.w.batch_size):
            xb, yb = self.X[i:i + self.w.batch_size], self.y[i:i + self.w.batch_size]
            self.opt.zero_grad(set_to_none=True)
            loss = 0.5 * torch.mean((self._forward(xb) - yb) ** 2)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, CLIP_NORM)
            self.opt.step()
            total += loss.detach() * xb.shape[0]
        float(total)  # the loss back on the host, as tsrnn's epoch
        return self.n / (time.perf_counter() - t)

    def infer(self) -> float:
        torch = self.torch
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            outs = [self._forward(self.X[i:i + self.w.batch_size])
                    for i in range(0, self.n, self.w.batch_size)]
            torch.cat(outs).cpu()
        return self.n / (time.perf_counter() - t)


def torch_cuda():
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, "PyTorch has no CUDA device"
    return torch, ""


# ----------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS),
                        choices=list(WORKLOADS))
    parser.add_argument("--batches", type=int, default=20, help="minibatches per epoch")
    parser.add_argument("--repeats", type=int, default=5, help="paired runs per measurement")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny shapes, one repeat: checks the code paths (simulator)")
    args = parser.parse_args(argv)

    from tsrnn import cuda_backend

    ok, reason = cuda_backend.cuda_available()
    if not ok:
        print(f"No usable CUDA GPU here ({reason}); nothing to benchmark.")
        return 0
    print(f"tsrnn CUDA backend: {reason}")
    workloads = [TINY.get(k, TINY["W1"]) if args.tiny else WORKLOADS[k]
                 for k in args.workloads]
    if args.tiny:
        args.batches, args.repeats = 2, 1
    torch, why = torch_cuda()
    if torch is None:
        print(f"{why}: tsrnn alone, no ratios.")
    else:
        print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}")

    header = (f"{'workload':10s} {'what':6s} {'tsrnn samples/s':>16s} "
              f"{'torch samples/s':>16s} {'ratio (median)':>15s}")
    print(header)
    print("-" * len(header))
    for w in workloads:
        X, y = data(w, args.batches)
        ours = TsrnnRun(w, X, y)
        theirs = TorchRun(torch, w, X, y) if torch is not None else None
        # warm-up: compile the kernels, let cuDNN pick its algorithms
        ours.train(), ours.infer()
        if theirs is not None:
            theirs.train(), theirs.infer()
        for what in ("train", "infer"):
            a, b, ratios = [], [], []
            for _ in range(args.repeats):
                a.append(getattr(ours, what)())
                if theirs is not None:
                    b.append(getattr(theirs, what)())
                    ratios.append(a[-1] / b[-1])
            torch_text = f"{statistics.median(b):16.0f}" if b else f"{'-':>16s}"
            ratio_text = f"{statistics.median(ratios):15.2f}" if ratios else f"{'-':>15s}"
            print(f"{w.name:10s} {what:6s} {statistics.median(a):16.0f} {torch_text} "
                  f"{ratio_text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
