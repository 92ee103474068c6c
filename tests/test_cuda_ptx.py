"""Every CUDA kernel compiles to PTX for compute capability 9.0 and 8.0, with each of its
explicit signatures (float32, float64), without a GPU.

The simulator runs the kernels as Python and checks no types, so this is where type
errors in kernels show. Needs NVVM (the CUDA toolkit's compiler): skipped, with the
reason, where a trivial kernel does not compile.
"""

import re

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CCS = [(9, 0), (8, 0)]

#: Kernels on the hot path whose float32 version must not compute in float64.
FLOAT32_PURE = [
    "_gather_time_major_cuda", "_gather_rows_cuda", "_gemm_nt_cuda", "_gemm_nn_cuda",
    "_gemm_tn_partial_cuda", "_colsum_partial_cuda", "_reduce_splits_cuda",
    "_recurrent_forward_step_cuda", "_recurrent_backward_step_cuda",
]
F64_MATH = re.compile(r"^\s*(add|sub|mul|fma|div|ex2|tanh|rcp|sqrt)\S*\.f64\b", re.M)


def _kernel_names():
    # the kernel table without importing numba.cuda at collection time
    import ast
    from pathlib import Path

    src = (Path(__file__).resolve().parents[1] / "tsrnn" / "_kernels" / "cuda.py").read_text()
    names = []
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef) and node.name == "_signatures":
            for sub in ast.walk(node):
                if isinstance(sub, ast.Dict):
                    names = [k.value for k in sub.keys]
    return names


KERNELS = _kernel_names()


@pytest.fixture(scope="module")
def ptx_compiler():
    """(cuda module, kernels module), or a skip saying why PTX cannot be compiled here."""
    try:
        from numba import cuda
        from numba.core import config
    except Exception as exc:  # pragma: no cover - numba without its CUDA target
        pytest.skip(f"numba.cuda cannot be imported: {exc}")
    if config.ENABLE_CUDASIM:
        pytest.skip("NUMBA_ENABLE_CUDASIM=1: compile_ptx needs the real CUDA target")
    from numba import float64

    def trivial(a):
        a[0] = 1.0

    try:
        cuda.compile_ptx(trivial, (float64[::1],), cc=(9, 0))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        pytest.skip(f"NVVM (CUDA toolkit) not available: {type(exc).__name__}: {first}")
    from tsrnn._kernels import cuda as kc

    return cuda, kc


def test_kernel_list_matches_the_module(ptx_compiler):
    _, kc = ptx_compiler
    assert KERNELS == list(kc.SIGNATURES)


@pytest.mark.parametrize("cc", CCS, ids=lambda cc: f"sm{cc[0]}{cc[1]}")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", KERNELS)
def test_kernel_compiles_to_ptx(ptx_compiler, name, dtype, cc):
    cuda, kc = ptx_compiler
    sig = kc.SIGNATURES[name][np.dtype(dtype)]
    ptx, restype = cuda.compile_ptx(kc.python_function(name), sig, cc=cc)
    assert str(restype) == "none"
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    assert ".entry" in ptx
    if dtype == "float32" and name in FLOAT32_PURE:
        assert not F64_MATH.findall(ptx), f"{name} float32 computes in float64"
