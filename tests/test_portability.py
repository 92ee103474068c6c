"""Batch- and thread-invariant inference under every OpenBLAS core type this CPU can run.

OpenBLAS picks its kernels at load time (``OPENBLAS_CORETYPE`` overrides the choice),
and Numba compiles for the host unless told otherwise, so a single test process sees one
BLAS kernel and one vector width. Each core type the CPU can run gets a subprocess of
its own: Haswell and Zen (AVX2 kernels) on any AVX2 machine, with the kernels compiled as
AVX2 code (``NUMBA_CPU_NAME=haswell`` with empty ``NUMBA_CPU_FEATURES``: the name alone
keeps the host's AVX-512 features), SkylakeX and Cooperlake (AVX-512 kernels; Cooperlake
needs AVX512-BF16, and OpenBLAS builds without a Cooperlake target run SkylakeX's) where
the CPU has them, compiled for the host. In each, for rnn/lstm/gru, float32 and float64,
tiny and benchmark-like shapes, ``network.predict`` must give every row the same bits
as predicting it alone (the one-row path), whatever the batch size, the rows beside it,
its position, a subset, the chunking and the thread count; and scikit-learn's
sample-order and subset invariance checks must pass for ``RNNRegressor`` with default
parameters and with ``hidden_size=4``. Across the subprocesses, the predictions must be
the same bits too: the products are summed in one fixed order of our own
(``tsrnn._kernels.cpu._gemm_fixed``), not by BLAS, so neither the core type nor AVX2
against AVX-512 changes them.

Subprocesses that compile the same code share a Numba cache: the AVX2 ones a session
temporary directory (cold once, about a minute), the host ones the suite's own cache.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import hashlib, json, os, sys, warnings
import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's OpenBLAS, as the kernels do)
from threadpoolctl import threadpool_info
from tsrnn import network
from tsrnn._kernels import cpu

blas = [lib for lib in threadpool_info() if lib.get("internal_api") == "openblas"
        and "scipy" in os.path.basename(os.path.dirname(lib["filepath"]))]
out = {"architecture": blas[0].get("architecture") if blas else None, "failures": [],
       "digests": {}, "threads": numba.config.NUMBA_NUM_THREADS}

# (name, cell, layers, hidden, features, steps): tiny, and W1-W4's layers with fewer steps
SHAPES = [("tiny-rnn", "rnn", 2, 5, 3, 6), ("tiny-lstm", "lstm", 2, 5, 3, 6),
          ("tiny-gru", "gru", 2, 5, 3, 6), ("W1", "lstm", 1, 32, 1, 48),
          ("W2", "gru", 2, 64, 8, 12), ("W3", "rnn", 1, 128, 4, 12),
          ("W4", "lstm", 1, 256, 16, 6)]
N = 70


def fail(what, ref, got):
    bad = ~((ref == got) | (np.isnan(ref) & np.isnan(got)))
    if bad.any():
        out["failures"].append(f"{what}: {int(bad.any(axis=1).sum())} of {len(ref)} rows "
                               f"differ, max {float(np.max(np.abs(ref - got)[bad])):.2e}")


thread_counts = sorted({1, numba.config.NUMBA_NUM_THREADS})
for name, cell, L, H, F, T in SHAPES:
    for dtype in (np.float32, np.float64):
        what = f"{name} {np.dtype(dtype).name}"
        rng = np.random.default_rng(len(out["digests"]))
        layout = network.ParameterLayout(cell, F, H, L, 2)
        flat = layout.init(rng, dtype=dtype)
        X = rng.standard_normal((N, T, F)).astype(dtype)
        # the reference: every row alone (one column, no parallel region)
        alone = np.concatenate([network.predict(layout, flat, X[i:i + 1]) for i in range(N)])
        out["digests"][what] = hashlib.sha256(alone.tobytes()).hexdigest()
        perm = rng.permutation(N)
        for threads in thread_counts:
            numba.set_num_threads(threads)
            for batch in (N, 64, 13, 2):
                fail(f"{what} batch_size={batch} threads={threads}", alone,
                     network.predict(layout, flat, X, batch_size=batch))
            fail(f"{what} permuted threads={threads}", alone[perm],
                 network.predict(layout, flat, X[perm]))
            fail(f"{what} reversed threads={threads}", alone[::-1],
                 network.predict(layout, flat, np.ascontiguousarray(X[::-1])))
            fail(f"{what} rows 5:40 threads={threads}", alone[5:40],
                 network.predict(layout, flat, X[5:40]))
        numba.set_num_threads(thread_counts[-1])
        p = layout.views(flat)
        layers = network._layers(p, layout)
        for n_chunks in (1, 3, 35):  # chunkings the thread count does not choose
            fail(f"{what} n_chunks={n_chunks}", alone,
                 cpu.stack_predict(network.cell_code(cell), X, layers, p["head.weight"],
                                   p["head.bias"], N, n_chunks=n_chunks))

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import (check_methods_sample_order_invariance,
                                            check_methods_subset_invariance)
from tsrnn import RNNRegressor

for cell in ("lstm", "gru", "rnn"):
    for params in ({}, {"hidden_size": 4, "max_iter": 5}):
        for check in (check_methods_sample_order_invariance, check_methods_subset_invariance):
            est = RNNRegressor(cell=cell, random_state=0, **params)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    check("RNNRegressor", est)
            except AssertionError as exc:
                out["failures"].append(f"{check.__name__} {est!r}: {str(exc)[:300]}")
print(json.dumps(out))
"""


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def runnable_core_types():
    """[(OPENBLAS_CORETYPE, AVX2 code?)] that this CPU can run, from /proc/cpuinfo."""
    flags = _cpu_flags()
    types = []
    if {"avx2", "fma"} <= flags:
        types += [("Haswell", True), ("Zen", True)]
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        types.append(("SkylakeX", False))
        if "avx512_bf16" in flags:
            types.append(("Cooperlake", False))
    return types


CORE_TYPES = runnable_core_types()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Result of the script under each core type, run once (on first use)."""
    results = {}
    avx2_cache = str(tmp_path_factory.mktemp("numba-cache-haswell"))

    def run(core):
        if core not in results:
            avx2 = dict(CORE_TYPES)[core]
            env = dict(os.environ, OPENBLAS_CORETYPE=core)
            env.pop("OPENBLAS_L2_SIZE", None)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
            if avx2:
                env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="",
                           NUMBA_CACHE_DIR=avx2_cache)
            else:
                env.pop("NUMBA_CPU_NAME", None)
                env.pop("NUMBA_CPU_FEATURES", None)
            res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                                 text=True, check=False)
            assert res.returncode == 0, res.stderr[-3000:]
            results[core] = json.loads(res.stdout.strip().splitlines()[-1])
        return results[core]

    return run


@pytest.mark.skipif(not CORE_TYPES, reason="no AVX2 on this CPU (or no /proc/cpuinfo)")
@pytest.mark.parametrize("core", [c for c, _ in CORE_TYPES])
def test_inference_invariant_under_core_type(runs, core):
    """Every row's prediction has the same bits alone, in batches of any size, in any
    position, in a subset, under any chunking and thread count; sklearn's order and
    subset checks pass (see the module docstring)."""
    result = runs(core)
    assert result["failures"] == [], "\n".join(result["failures"])


@pytest.mark.skipif(len(CORE_TYPES) < 2, reason="fewer than two core types to compare")
def test_predictions_identical_across_core_types_and_vector_widths(runs):
    """The same weights and inputs give the same bits under every core type, AVX2 code
    and AVX-512 code alike (on one machine: float64 uses its libm's exp and tanh)."""
    digests = {core: runs(core)["digests"] for core, _ in CORE_TYPES}
    first = next(iter(digests.values()))
    for core, d in digests.items():
        differ = sorted(k for k in first if d[k] != first[k])
        assert not differ, f"{core} differs from {CORE_TYPES[0][0]} on {differ}"
