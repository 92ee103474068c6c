"""Where one inference step of a small LSTM spends its time: cell update vs product.

Times, on one thread, the two parts of one time step of a chunk of the fused inference
kernel (:func:`tsrnn._kernels.cpu._infer_chunk`) for an LSTM: the product
``[w_hh, b, w_ih] @ [h; 1; x]`` (4H x rows x (H + 1 + F), unit-major states) through BLAS
and the cell update over ``rows * H`` units (3 sigmoids, 2 tanh), each in a compiled
loop of many calls (Python is not timed), then the whole kernel on the same chunk.
Defaults: W1's shape (H = 32, F = 1, T = 48) and the 32-row chunks of a 64-sample batch
on two threads. The sum of the parts is what a step cannot go below with these
kernels; the kernel's time per step shows the rest (copies, calls, the head).

Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE NUMBA_NUM_THREADS=1 \\
        python benchmarks/profile_step.py [--hidden 32] [--rows 32] [--features 1]
"""

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run from a checkout without installing

from tsrnn._kernels import cpu  # noqa: E402

lstm_update = cpu._lstm_infer_flat
gemm = cpu._blas_gemm


@njit
def cell_updates(z, c_prev, c_new, h_new, n, reps):
    for _ in range(reps):
        lstm_update(z[0], z[1], z[2], z[3], c_prev, c_new, h_new, n)


@njit
def step_products(A, S, Z, m, n, k, reps, one):
    for _ in range(reps):
        gemm(0, 0, m, n, k, one, A, 0, k, S, 0, n, one - one, Z, 0, n)


def best_of(fn, repeats=5):
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--features", type=int, default=1)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--reps", type=int, default=20000)
    args = parser.parse_args(argv)
    rows, H, F, T, reps = args.rows, args.hidden, args.features, args.steps, args.reps
    rng = np.random.default_rng(0)
    one = np.float32(1)
    n = rows * H
    z = (0.5 * rng.standard_normal((4, n))).astype(np.float32)
    c_prev = np.zeros(n, np.float32)
    c_new, h_new = c_prev.copy(), c_prev.copy()
    K = H + 1 + F
    A = (0.1 * rng.standard_normal(4 * H * K)).astype(np.float32)
    S = rng.standard_normal(K * rows).astype(np.float32)
    Z = np.zeros(4 * H * rows, np.float32)
    layer = [(0.1 * rng.standard_normal(s)).astype(np.float32)
             for s in ((4 * H, F), (4 * H, H), (4 * H,), (4 * H,))]
    head_w = np.ones((1, H), np.float32)
    head_b = np.zeros(1, np.float32)
    X = rng.standard_normal((64 * rows, T, F)).astype(np.float32)
    with cpu.kernel_context():
        cell_updates(z, c_prev, c_new, h_new, n, 10)  # compile
        step_products(A, S, Z, 4 * H, rows, K, 10, one)
        cpu.stack_predict(cpu.LSTM, X[:rows], [layer], head_w, head_b, rows)
        for _ in range(3):
            t_cell = best_of(lambda: cell_updates(z, c_prev, c_new, h_new, n, reps)) / reps
            t_prod = best_of(lambda: step_products(A, S, Z, 4 * H, rows, K, reps, one)) / reps
            t_kernel = best_of(lambda: cpu.stack_predict(cpu.LSTM, X, [layer], head_w,
                                                         head_b, rows)) / (64 * T)
            print(f"LSTM H={H}, F={F}, {rows} rows, one step: product "
                  f"{t_prod * 1e6:.2f} us ({2 * 4 * H * rows * K / t_prod / 1e9:.0f} GFLOP/s), "
                  f"cell update {t_cell * 1e6:.2f} us, sum {(t_prod + t_cell) * 1e6:.2f} us; "
                  f"whole kernel {t_kernel * 1e6:.2f} us per step")


if __name__ == "__main__":
    main()
