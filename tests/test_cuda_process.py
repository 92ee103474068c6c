"""Runs tests/cudasim in its own process with NUMBA_ENABLE_CUDASIM=1.

The simulator must be switched on before numba is imported, and this process imported
numba long ago without it; a child process is the only way for one ``pytest`` command to
run the CUDA kernels too (no GPU needed). Takes about 1.5 minutes.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 900

pytestmark = pytest.mark.cudasim


def test_cuda_kernels_under_the_simulator():
    if "numba" in sys.modules:
        from numba.core import config

        simulator_here = bool(config.ENABLE_CUDASIM)
    else:
        simulator_here = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    if simulator_here:
        pytest.skip("this process already runs the simulator and collects tests/cudasim")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "pytest", "tests/cudasim", "-q", "-p", "no:cacheprovider"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} did not finish in {TIMEOUT_SECONDS} s:\n"
                    f"{exc.stdout or ''}\n{exc.stderr or ''}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} (NUMBA_ENABLE_CUDASIM=1) exited with "
                    f"{proc.returncode}:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    assert " passed" in proc.stdout
