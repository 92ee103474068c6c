"""The float32 tanh and sigmoid of the CPU kernels: where their coefficients come from,
how accurate they are, and what they cost.

The kernels evaluate ``tanh(x) ~= x P(x^2) / Q(x^2)`` (P and Q of degree 4, ``|x|``
clamped to 9, beyond which tanh rounds to +-1 in float32) and the sigmoid through
``sigmoid(v) = 1/2 + tanh(v/2)/2`` with the same coefficients scaled by powers of two.
This script

1. fits P and Q again (a minimax fit of the relative error on Chebyshev points,
   by Lawson-weighted linearised least squares) and prints them beside the constants
   in ``tsrnn/_kernels/cpu.py``;
2. evaluates the kernels' functions on every ``--stride``-th float32 in [-20, 20] and
   reports the largest error against float64 ``tanh``/``1 / (1 + exp(-v))``, in
   absolute terms and in units in the last place (ulp) of the exact value;
3. times the LSTM cell update (3 sigmoids, 2 tanh per unit) over 1,024 units.

Run::

    python benchmarks/activations.py            # stride 7: ~1.6e8 inputs, ~1 min
    python benchmarks/activations.py --stride 1 # every float32 in range
"""

import argparse
import math
import os
import sys
import time

import numpy as np
from numba import njit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run from a checkout without installing

from tsrnn._kernels import cpu  # noqa: E402

DEGREE = 4  # of P and of Q, in x^2


def fit_tanh(degree=DEGREE, x_max=cpu.TANH_CLAMP, n_points=40000, iterations=200):
    """Coefficients (p, q), q[0] = 1, of x P(x^2) / Q(x^2) ~= tanh(x) on (0, x_max].

    Each iteration solves the linearised problem ``x P - t Q = 0`` in weighted least
    squares, dividing by the previous ``t Q`` (so that the residual is the relative
    error) and multiplying Lawson's weights by the current error, which drives the
    solution towards equal ripples (minimax). Works in the scaled variable
    ``s = x^2 / x_max^2`` for conditioning. Returns the best iterate and its error.
    """
    u = (1 - np.cos(np.linspace(0, np.pi, n_points))) / 2
    x = np.maximum(u * x_max, 1e-4)
    s = (x / x_max) ** 2
    t = np.tanh(x)
    powers = s[:, None] ** np.arange(degree + 1)
    weights = np.ones_like(x)
    q_prev = np.ones_like(x)
    best = (np.inf, None, None)
    for _ in range(iterations):
        # unknowns p_0..p_m, q_1..q_n:  x P(s) - t (Q(s) - 1) = t
        A = np.hstack([x[:, None] * powers, -t[:, None] * powers[:, 1:]])
        scale = np.sqrt(weights) / (t * q_prev)
        coef = np.linalg.lstsq(A * scale[:, None], t * scale, rcond=None)[0]
        p = coef[:degree + 1]
        q = np.concatenate([[1.0], coef[degree + 1:]])
        q_prev = powers @ q
        err = np.abs(x * (powers @ p) / q_prev - t) / t
        if err.max() < best[0]:
            best = (err.max(), p, q)
        weights = weights * err
        weights /= weights.sum()
    err, p, q = best
    unscale = float(x_max) ** (-2 * np.arange(degree + 1))
    return p * unscale, q * unscale, err


@njit
def _tanh_kernel(v):
    return cpu._tanh(v)


@njit
def _sigmoid_kernel(v):
    return cpu._sigmoid(v)


@njit
def _sweep(lo, hi, stride):
    """Largest errors of the float32 tanh and sigmoid on float32 inputs lo..hi (bits)."""
    worst = np.zeros(6)  # tanh: ulp, abs, x; sigmoid: ulp, abs, x
    bad_range = 0
    for sign in (1, -1):
        b = lo
        while b <= hi:
            x = np.float32(sign) * np.int32(b).view(np.float32)
            t = _tanh_kernel(x)
            s = _sigmoid_kernel(x)
            xd = np.float64(x)
            for k, (got, exact) in enumerate(((t, math.tanh(xd)),
                                              (s, 1.0 / (1.0 + math.exp(-xd))))):
                err = abs(np.float64(got) - exact)
                ulp = err / np.float64(np.spacing(np.float32(exact)))
                if ulp > worst[3 * k]:
                    worst[3 * k] = ulp
                    worst[3 * k + 2] = xd
                worst[3 * k + 1] = max(worst[3 * k + 1], err)
            if not (-1 <= t <= 1 and 0 <= s <= 1):
                bad_range += 1
            b += stride
    return worst, bad_range


def time_lstm_update(n=1024, reps=20000):
    """Seconds per LSTM cell update of n units (one thread; the kernels' function)."""
    rng = np.random.default_rng(0)
    z = (2 * rng.standard_normal((4, n))).astype(np.float32)
    c_prev = rng.standard_normal(n).astype(np.float32)
    c_new = np.empty_like(c_prev)
    h_new = np.empty_like(c_prev)
    update = cpu._lstm_infer_flat

    @njit
    def loop(reps, z, c_prev, c_new, h_new):
        for _ in range(reps):
            update(z[0], z[1], z[2], z[3], c_prev, c_new, h_new, n)

    loop(10, z, c_prev, c_new, h_new)
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        loop(reps, z, c_prev, c_new, h_new)
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stride", type=int, default=7,
                        help="test every stride-th float32 (1: all of them)")
    args = parser.parse_args(argv)

    p, q, err = fit_tanh()
    print(f"fit: degree {DEGREE}/{DEGREE} in x^2 on |x| <= {cpu.TANH_CLAMP}, "
          f"max relative error {err:.2e} before rounding to float32")
    print("  TANH_P = (" + ", ".join(str(np.float32(c)) for c in p) + ")")
    print("  TANH_Q = (" + ", ".join(str(np.float32(c)) for c in q) + ")")
    print("in cpu.py:")
    print("  TANH_P =", cpu.TANH_P)
    print("  TANH_Q =", cpu.TANH_Q)

    lo = int(np.float32(1e-30).view(np.int32))
    hi = int(np.float32(20.0).view(np.int32))
    t = time.perf_counter()
    worst, bad_range = _sweep(lo, hi, args.stride)
    n = 2 * ((hi - lo) // args.stride + 1)
    print(f"\n{n:,} float32 inputs with 1e-30 <= |x| <= 20 ({time.perf_counter() - t:.0f} s):")
    print(f"  tanh:    max error {worst[1]:.2e} absolute, {worst[0]:.2f} ulp (at x = {worst[2]:.6g})")
    print(f"  sigmoid: max error {worst[4]:.2e} absolute, {worst[3]:.2f} ulp (at x = {worst[5]:.6g};"
          " ulp of tiny outputs are tiny: the absolute error is the one that matters)")
    print(f"  outputs outside [-1, 1] / [0, 1]: {bad_range}")
    nan = np.float32(np.nan)
    print(f"  tanh(nan) = {_tanh_kernel(nan)}, sigmoid(nan) = {_sigmoid_kernel(nan)}, "
          f"tanh(+-inf) = {_tanh_kernel(np.float32(np.inf))}, "
          f"{_tanh_kernel(np.float32(-np.inf))}")
    print(f"\nLSTM cell update, 1,024 units, one thread: {time_lstm_update() * 1e6:.2f} us")


if __name__ == "__main__":
    main()
