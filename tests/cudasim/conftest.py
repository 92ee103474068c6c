"""CUDA-simulator tests: collected only in a process where NUMBA_ENABLE_CUDASIM=1 was set
before numba was imported (``tests/test_cuda_process.py`` starts one).

In any other process (the main pytest run, where numba is already imported without
the simulator) the whole directory is ignored.
"""

import os
import sys
import threading

import pytest


def _simulator_active() -> bool:
    if "numba" in sys.modules:
        from numba.core import config

        return bool(config.ENABLE_CUDASIM)
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


SIMULATOR = _simulator_active()

if not SIMULATOR:
    collect_ignore_glob = ["test_*.py"]
else:
    # The simulator runs each CUDA thread as a Python thread that blocks at every
    # syncthreads(); a short switch interval makes it about 9x faster here.
    sys.setswitchinterval(1e-4)


def _lock_simulator_shared_arrays():
    """Make the simulator's shared-array allocation atomic.

    ``FakeCUDAShared.array`` (numba 0.68.1 and numba-cuda 0.30) looks up the array of a
    source line in a dict and creates it when missing, without a lock: when two threads
    of a block both miss, each gets its own array and the block no longer shares it
    (seen here: about one failing test run in six, with a probe logging the duplicate
    allocation). Same logic, under a lock, keyed by the caller's file and line.
    """
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support
    import numpy as np

    shared_cls = getattr(kernelapi, "FakeCUDAShared", None)
    if shared_cls is None:  # a simulator without this class: nothing to patch
        return
    original = shared_cls.array
    lock = threading.Lock()

    def array(self, shape, dtype):
        if shape == 0:  # dynamic shared memory: unchanged
            return original(self, shape, dtype)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        frame = sys._getframe(1)
        key = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(key)
            if res is None:
                res = np.empty(shape, dtype)
                self._allocations[key] = res
        return res

    shared_cls.array = array


if SIMULATOR:
    _lock_simulator_shared_arrays()

#: Tiny launch geometry so that multi-tile, multi-block and multi-split paths run on
#: shapes with B <= 5, H <= 4: 2x2 thread tiles, 4-thread blocks, at most 2 blocks per
#: launch (grid-stride loops do the rest), split-K over 3 rows, 2-step inference blocks.
TINY = {
    "TILE": 2,
    "THREADS": 4,
    "REDUCE_THREADS": 4,
    "MAX_BLOCKS": 2,
    "SPLIT_ROWS": 3,
    "PREDICT_BLOCK_STEPS": 2,
}


@pytest.fixture(autouse=True)
def tiny_blocks(monkeypatch):
    """Patch the kernel module's launch constants to TINY for every test."""
    from tsrnn._kernels import cuda as kc

    for name, value in TINY.items():
        monkeypatch.setattr(kc, name, value)
    return kc
