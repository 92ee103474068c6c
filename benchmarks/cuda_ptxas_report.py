"""Registers, shared memory and spills of every CUDA kernel, from ``ptxas -v``.

Compiles each kernel of ``tsrnn._kernels.cuda.SIGNATURES`` to PTX for one compute
capability (no GPU needed: numba's NVVM), assembles it with the CUDA toolkit's
``ptxas -v`` and prints one row per kernel and dtype::

    python benchmarks/cuda_ptxas_report.py            # sm_90
    python benchmarks/cuda_ptxas_report.py --cc 8.0   # sm_80
    python benchmarks/cuda_ptxas_report.py --markdown

Shared memory is the static size at the module's TILE/REDUCE_THREADS constants.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

PATTERNS = {
    "registers": re.compile(r"Used (\d+) registers"),
    "smem": re.compile(r"(\d+) bytes smem"),
    "stack": re.compile(r"(\d+) bytes stack frame"),
    "spill_stores": re.compile(r"(\d+) bytes spill stores"),
    "spill_loads": re.compile(r"(\d+) bytes spill loads"),
}
COLUMNS = ["kernel", "dtype", "registers", "smem", "stack", "spill_stores", "spill_loads"]


def ptxas_info(ptxas: str, ptx: str, gpu_name: str) -> dict:
    """Parse ``ptxas -v`` for one PTX module (one kernel entry)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as fh:
            fh.write(ptx)
        proc = subprocess.run([ptxas, "-v", "--gpu-name", gpu_name, src, "-o",
                               os.path.join(tmp, "kernel.cubin")],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{proc.stderr}")
    text = proc.stderr + proc.stdout
    out = {}
    for key, pattern in PATTERNS.items():
        values = [int(v) for v in pattern.findall(text)]
        out[key] = max(values) if values else 0
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0 or 8.0")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    major, minor = (int(v) for v in args.cc.split("."))
    gpu_name = f"sm_{major}{minor}"

    ptxas = shutil.which("ptxas") or "/usr/local/cuda/bin/ptxas"
    if not os.path.exists(ptxas):
        print("ptxas was not found (install the CUDA toolkit); nothing to report.")
        return 0
    from numba import cuda

    from tsrnn._kernels import cuda as kc

    rows = []
    for name, sigs in kc.SIGNATURES.items():
        for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
            try:
                ptx, _ = cuda.compile_ptx(kc.python_function(name), sigs[dtype],
                                          cc=(major, minor))
            except Exception as exc:
                print(f"cannot compile {name} ({dtype}) to PTX: {type(exc).__name__}: {exc}")
                return 1
            rows.append({"kernel": name, "dtype": dtype.name,
                         **ptxas_info(ptxas, ptx, gpu_name)})

    version = subprocess.run([ptxas, "--version"], capture_output=True, text=True).stdout
    version = version.strip().splitlines()[-1] if version.strip() else "unknown"
    print(f"ptxas -v --gpu-name {gpu_name} ({version}); TILE={kc.TILE}, "
          f"REDUCE_THREADS={kc.REDUCE_THREADS}, numba.cuda {getattr(cuda, 'implementation', '?')}")
    header = ["kernel", "dtype", "regs", "smem B", "stack B", "spill st B", "spill ld B"]
    table = [[str(r[c]) for c in COLUMNS] for r in rows]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " for _ in header) + "|")
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for row in table:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    spilled = [r["kernel"] + "/" + r["dtype"] for r in rows
               if r["spill_stores"] or r["spill_loads"]]
    print("spills: " + (", ".join(spilled) if spilled else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
