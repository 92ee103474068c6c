"""Where one inference step of a small LSTM spends its time: gate functions vs products.

Times, on one thread, the two parts of one time step of a chunk of the fused inference
kernel (:func:`tsrnn._kernels.cpu._infer_chunk`) for an LSTM: the cell update over
``rows * H`` units (3 sigmoids, 2 tanh) and the four ``rows x H x H`` gate products
through BLAS. Each part runs in a compiled loop of many calls, so Python is not timed.
Defaults: W1's shape (H=32) and the 32-row chunks of a 64-sample batch on two threads.

Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE NUMBA_NUM_THREADS=1 \\
        python benchmarks/profile_step.py [--hidden 32] [--rows 32]
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
def gate_products(h, w_hhT, out, rows, H, reps, one):
    for _ in range(reps):
        for g in range(4):
            gemm(0, 0, rows, H, H, one, h, 0, H, w_hhT, g * H * H, H, one, out,
                 g * rows * H, H)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--reps", type=int, default=20000)
    args = parser.parse_args(argv)
    rows, H, reps = args.rows, args.hidden, args.reps
    rng = np.random.default_rng(0)
    z = (0.1 * rng.standard_normal((4, rows * H))).astype(np.float32)
    c_prev = np.zeros(rows * H, np.float32)
    c_new, h_new = c_prev.copy(), c_prev.copy()
    h = rng.standard_normal(rows * H).astype(np.float32)
    w_hhT = rng.standard_normal(4 * H * H).astype(np.float32)
    out = np.zeros(4 * rows * H, np.float32)
    one = np.float32(1)
    cell_updates(z, c_prev, c_new, h_new, rows * H, 10)  # compile
    gate_products(h, w_hhT, out, rows, H, 10, one)
    for _ in range(3):
        t = time.perf_counter()
        cell_updates(z, c_prev, c_new, h_new, rows * H, reps)
        t_cell = (time.perf_counter() - t) / reps
        t = time.perf_counter()
        gate_products(h, w_hhT, out, rows, H, reps, one)
        t_gemm = (time.perf_counter() - t) / reps
        print(f"LSTM H={H}, {rows} rows, one step: cell update {t_cell * 1e6:.2f} us, "
              f"4 gate products {t_gemm * 1e6:.2f} us "
              f"({8 * rows * H * H / t_gemm / 1e9:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
