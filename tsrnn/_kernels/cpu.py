"""CPU kernels: forward and backpropagation through time for RNN, LSTM and GRU stacks.

Numerics only: contiguous NumPy arrays in, arrays out; nothing here knows about
scikit-learn or pandas.

Letters: B batch, T time steps, F input features, H hidden units, G gates
(1 rnn, 4 lstm: i f g o, 3 gru: r z n), K truncation window (``bptt_steps``), n the
columns of a chunk (its rows, padded to ROW_BLOCK).

Layout
------
Inputs are time-major ``(T, B, F)`` for training, batch-first ``(N, T, F)`` for
inference; weights have PyTorch's layout, ``w_ih (G*H, F)``, ``w_hh (G*H, H)``,
``b_ih, b_hh (G*H,)``. Inside, the batch is cut into chunks of rows and every chunk
keeps its states **unit-major**, ``(H, n)``: unit j of the chunk's row r at
``j*n + r``. A layer's step is then one product

    Z (G*H, n) = A (G*H, H + 1 + F) @ S (H + 1 + F, n),  A = [w_hh, b, w_ih],
    S = [h_t; 1; x_t]

(bias and input side ride in the inner dimension; GRU: three products, for r and z,
``n_h = [w_hn, b_hn] @ [h; 1]`` and ``n_x = [b_in, w_in] @ [1; x]``), and each gate's
block of Z is contiguous, so the cell update is one long vectorised loop over H*n
elements. BPTT uses the same two matrices: ``dA += dZ @ S.T`` (all weight and bias
gradients of a layer at once) and ``dS = A.T @ dZ`` (gradients of h_t and of x_t).

Strategy (``benchmarks/bench_training.py``; figures from the 2-core Xeon VM and the
2-core Zen 5 VM, both AVX-512)
-----------------------------------------------------------------------------------
One ``@njit(parallel=True)`` call per direction for the whole stack, parallel over
chunks, sequential in time; each chunk runs every layer at each step (the layer above
reads the state the one below just wrote). Numba's thread pool is the only owner of the
cores: NumPy's threaded BLAS is not used (its workers keep spinning after a product).

* The forward products ``Z = A @ S`` and the backward's ``dS = A.T @ dZ`` are our own,
  :func:`_gemm_fixed`: register tiles generated as LLVM vector code (8 rows x 32
  columns of float32 with AVX-512, 4 x 16 with AVX2), each element summed over k in
  one fixed order with fused multiply-adds. W1's 128 x 32 x 34 product: 236 GFLOP/s
  with AVX-512 against 218 for OpenBLAS's SkylakeX sgemm on the Zen 5 VM, and 110
  with AVX2 code against 71-85 for its Haswell sgemm (which AVX2-only CPUs get). A
  single row (one forecast) goes through :func:`_gemv_fixed`, vectorised along the
  outputs instead. Only the weight gradients ``dA += dZ @ S.T`` still go through BLAS
  (SciPy's OpenBLAS, one thread, called inside the parallel loops through
  :func:`_blas_gemm`). Plain loops remain for ``use_blas=False``.
* Training chunks have a fixed number of rows per shape (:func:`train_chunk_rows`),
  inference chunks 32+ rows, one or two per thread (``network._n_chunks``); a batch
  that is one chunk (a few windows) runs in the calling thread, without a parallel
  region (:func:`_stack_predict_serial`).
* float32 tanh and sigmoid are rational functions (8 multiply-adds, one division, no
  exp; max errors 3.1e-7 and 1.8e-7 over every float32, see :func:`_tanh_f32`),
  vectorised with 512-bit registers where AVX-512 exists (:func:`_wide_vectors`):
  LSTM cell updates 2x faster than with exp-based formulas (1.3 vs 2.6 us per 1,024
  units). ``math.exp``/``math.tanh`` are scalar library calls that stop the loops from
  vectorising (~10x slower); float64 keeps them (exact; for gradient checks).
  Polynomials use explicit fused multiply-adds (:func:`_fma`); no fastmath.
* One step of a 32-row W1 chunk (LSTM H=32, one thread) takes 1.2-1.6 us of product
  and 0.7-1.3 us of cell update: the two together are what a step cannot go below.

Determinism and invariance
--------------------------
Samples never interact in the recurrence, so a row's prediction can depend on its own
inputs only, provided every operation on it is the same whatever else is computed. The
cell updates and the head are elementwise or sum in a fixed order; the products are
where it could go wrong, and did with BLAS: OpenBLAS's Haswell sgemm (also used for
``OPENBLAS_CORETYPE=Zen``; 0.3.30) sums an element over k either with one accumulator
or with two (even and odd k, added at the end), depending on where the element's
column falls in the call: 12-row panels are computed column-skewed, the first and last
8 columns of a call by an m8n6 kernel with two accumulators, the columns between by
m16n6 tiles with one; 4-row panels always split, columns of a ragged end of fewer than
8 never. So a row's bits depended on its position in its chunk and on the chunk's
width (on the batch and the thread count), and no padding to a multiple of 16 helped.
SkylakeX's sgemm is one accumulator in full 16-column blocks, two-level for the rest.

:func:`_gemm_fixed` removes the question: every element is ``acc = fma(A[i, q],
S[q, c], acc)`` for q = 0 .. k-1 from zero, in every tile shape, every remainder, the
one-column path and every vector width; an FMA is rounded once, so the lanes of a
512-bit, a 256-bit vector and a scalar give the same bits. A row's states, prediction,
input and state gradients therefore do not depend on the rows beside it, its position,
the chunking, the thread count, the serial or parallel path, the OpenBLAS core type or
AVX2 against AVX-512 (tested in ``tests/test_portability.py``). Inference has its own
kernel (no gates kept, batch-first inputs) with the same products and cell arithmetic:
its states are the training forward's, bit for bit (tested). The weight gradients sum
over rows: through BLAS, per chunk, with chunks fixed by the shapes and summed in chunk
order, so training is bit-identical across runs and thread counts for a given BLAS
core type, and differs between core types by rounding.

Truncated BPTT: the forward keeps the last K steps only (earlier steps alternate
between two scratch slots), so memory grows with K; the backward covers those K steps.
The loss of a sequence regressor sits on the last step, so this is exactly truncated
BPTT.
"""

import contextlib
import math
import os
import threading

import numpy as np
from llvmlite import ir as llvm_ir  # Numba's code generator, for the intrinsics
from numba import njit, prange, set_parallel_chunksize, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

RNN_TANH = 0
RNN_RELU = 1
LSTM = 2
GRU = 3

CELL_CODES = {"rnn_tanh": RNN_TANH, "rnn_relu": RNN_RELU, "lstm": LSTM, "gru": GRU}

#: Hidden sizes at or above this use the fast products (:func:`_gemm_fixed`, BLAS for
#: the weight gradients; they won at every size measured, H = 2..256; plain loops
#: remain for ``use_blas=False``).
BLAS_MIN_HIDDEN = 1
#: Chunks hold a multiple of this many rows (but the last of a batch), and their
#: buffers have a multiple of it columns (a single row: one): whole vector tiles for
#: the products (padding columns compute on zero inputs). Only speed depends on it.
ROW_BLOCK = 16
#: Training chunks: about this many rows (4x from H = 256), fixed by the shapes alone
#: (see :func:`train_chunk_rows`). W1 forward: 178 us per batch of 64 in two chunks of
#: 32, 194 in four of 16 (Xeon VM).
TRAIN_CHUNK_TARGET = 32
#: Inference transposes the inputs of this many bytes of steps at a time.
INFER_INPUT_BYTES = 2 ** 17


def gate_count(cell: int) -> int:
    """Number of gates G of a cell code."""
    if cell == LSTM:
        return 4
    if cell == GRU:
        return 3
    return 1


# ----------------------------------------------------------------------------
# BLAS threads
# ----------------------------------------------------------------------------

_BLAS = {"controllers": None, "users": 0, "saved": []}
_BLAS_LOCK = threading.Lock()


def _scipy_blas_controllers():
    """threadpoolctl controllers of SciPy's BLAS (what the kernels call).

    Wheels ship SciPy's OpenBLAS apart from NumPy's (``scipy.libs`` vs ``numpy.libs``);
    when they cannot be told apart (one shared BLAS, e.g. conda), all BLAS libraries.
    """
    if _BLAS["controllers"] is None:
        controllers = []
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS)
            from threadpoolctl import ThreadpoolController

            blas = [lib for lib in ThreadpoolController().lib_controllers
                    if lib.user_api == "blas"]
            scipy_own = [lib for lib in blas
                         if "scipy" in os.path.basename(os.path.dirname(lib.filepath))]
            controllers = scipy_own or blas
        except ImportError:  # no threadpoolctl: nothing to limit
            pass
        _BLAS["controllers"] = controllers
    return _BLAS["controllers"]


_CONTEXT_DEPTH = threading.local()


@contextlib.contextmanager
def kernel_context():
    """Settings for the parallel kernels, restored on exit (re-entrant, thread-safe).

    * BLAS limited to one thread while any caller is inside: the kernels call SciPy's
      OpenBLAS from inside ``prange`` loops; with its own threads enabled, concurrent
      calls serialise on its thread server (5-6x slower steps).
    * Dynamic scheduling of ``prange`` iterations one at a time
      (``numba.set_parallel_chunksize(1)``, per thread): on a shared machine a
      descheduled thread then does not hold up the others. Results do not depend on it.

    Wrap a whole training step in it to pay the switch once (``network`` does): nested
    entries in the same thread change nothing and cost a counter.
    """
    depth = getattr(_CONTEXT_DEPTH, "value", 0)
    if depth > 0:
        _CONTEXT_DEPTH.value = depth + 1
        try:
            yield
        finally:
            _CONTEXT_DEPTH.value = depth
        return
    controllers = _scipy_blas_controllers()
    with _BLAS_LOCK:
        if _BLAS["users"] == 0:
            saved = []
            for lib in controllers:
                n = lib.num_threads
                if n != 1:
                    lib.set_num_threads(1)
                    saved.append((lib, n))
            _BLAS["saved"] = saved
        _BLAS["users"] += 1
    old_chunksize = set_parallel_chunksize(1)
    _CONTEXT_DEPTH.value = 1
    try:
        yield
    finally:
        _CONTEXT_DEPTH.value = 0
        set_parallel_chunksize(old_chunksize)
        with _BLAS_LOCK:
            _BLAS["users"] -= 1
            if _BLAS["users"] == 0:
                for lib, n in _BLAS["saved"]:
                    lib.set_num_threads(n)
                _BLAS["saved"] = []


# ----------------------------------------------------------------------------
# scalar nonlinearities: exact in float64, vectorisable rational forms in float32
# ----------------------------------------------------------------------------


def _sigmoid(v):
    """Logistic function of a scalar (typed by the overload below)."""
    raise NotImplementedError


def _tanh(v):
    """Hyperbolic tangent of a scalar (typed by the overload below)."""
    raise NotImplementedError


def _is_float32(v):
    return isinstance(v, types.Float) and v.bitwidth == 32


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c with a single rounding (``llvm.fma``; vectorises to vfmadd).

    Written out where wanted rather than allowed by ``fastmath={"contract"}``: with the
    flag, whether a multiply-add was fused differed between the vectorised loop body
    and its scalar remainder in cached code, so a row's result depended on its position
    in a chunk (and so on the number of chunks). An explicit FMA rounds the same in both.
    """
    if not (isinstance(a, types.Float) and a == b == c):
        return None
    sig = a(a, b, c)

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(signature.return_type)
        name = "llvm.fma.f32" if signature.return_type == types.float32 else "llvm.fma.f64"
        fn = cgutils.get_or_insert_function(builder.module,
                                            llvm_ir.FunctionType(ty, [ty, ty, ty]), name)
        return builder.call(fn, args)

    return sig, codegen


#: float32 tanh(x) ~= x P(x^2) / Q(x^2) for |x| <= TANH_CLAMP, beyond which tanh rounds
#: to +-1 in float32: a minimax fit of the relative error made by
#: ``benchmarks/activations.py``, which also measures the errors quoted below.
TANH_CLAMP = 9.0
TANH_P = (1.0, 0.13381009, 0.0034955684, 2.0608759e-05, 1.33542235e-08)
TANH_Q = (1.0, 0.46714324, 0.025876908, 0.00032856024, 7.7763764e-07)
#: sigmoid(v) = 1/2 + tanh(v/2)/2 = 1/2 + v P(v^2/4) / (4 Q(v^2/4)): the same fit with
#: coefficients scaled by powers of two (exact), so no multiplication by 1/2 is needed.
SIGMOID_P = tuple(c / 4 ** (k + 1) for k, c in enumerate(TANH_P))
SIGMOID_Q = tuple(c / 4 ** k for k, c in enumerate(TANH_Q))
# The scalar functions below are inlined by Numba itself (inline="always") and never
# cached on their own: a callee loaded from Numba's cache is machine code that LLVM
# cannot inline, so a loop compiled later around it does not vectorise (5x slower cell
# updates whenever another process had cached the function first).


@njit(inline="always")
def _rational_f32(v, clamp, p, q):
    """``a P(a^2) / Q(a^2)`` with ``a = v`` clamped to [-clamp, clamp] (float32; p, q
    tuples of 5 coefficients, lowest degree first): 8 multiply-adds, no exp, so that
    it vectorises into few instructions. NaN stays NaN."""
    # builtin min/max compile to vminps/vmaxps, NaN kept (if-statements compiled to a
    # compare and a blend each: a quarter of an LSTM cell update's instructions)
    a = max(min(v, np.float32(clamp)), np.float32(-clamp))
    z = a * a
    num = _fma(np.float32(p[4]), z, np.float32(p[3]))
    num = _fma(num, z, np.float32(p[2]))
    num = _fma(num, z, np.float32(p[1]))
    num = _fma(num, z, np.float32(p[0]))
    den = _fma(np.float32(q[4]), z, np.float32(q[3]))
    den = _fma(den, z, np.float32(q[2]))
    den = _fma(den, z, np.float32(q[1]))
    den = _fma(den, z, np.float32(q[0]))
    return a * num / den


@njit(inline="always")
def _tanh_f32(v):
    """tanh of a float32: max error 3.1e-7 (5.2 ulp near +-1), |result| <= 1.

    Rounding in the two polynomials, not the fit, makes the error; the clamp to
    [-1, 1] removes their few-ulp overshoot near the clamp of x. The exp-based formula
    this replaced was 1.3 ulp and made LSTM cell updates 2x slower.
    """
    t = _rational_f32(v, TANH_CLAMP, TANH_P, TANH_Q)
    return max(min(t, np.float32(1.0)), np.float32(-1.0))


@njit(inline="always")
def _sigmoid_f32(v):
    """Logistic function of a float32: max absolute error 1.8e-7, result in [0, 1].

    The relative error grows for outputs below ~1e-6, where the absolute error is what
    matters in a gate.
    """
    s = _rational_f32(v, 2 * TANH_CLAMP, SIGMOID_P, SIGMOID_Q) + np.float32(0.5)
    return max(min(s, np.float32(1.0)), np.float32(0.0))


@overload(_sigmoid)
def _sigmoid_impl(v):
    if _is_float32(v):
        def sigmoid_f32(v):
            return _sigmoid_f32(v)
        return sigmoid_f32

    def sigmoid_exact(v):
        # two branches so that exp never overflows
        if v >= 0:
            return 1.0 / (1.0 + math.exp(-v))
        e = math.exp(v)
        return e / (1.0 + e)
    return sigmoid_exact


@overload(_tanh)
def _tanh_impl(v):
    if _is_float32(v):
        def tanh_f32(v):
            return _tanh_f32(v)
        return tanh_f32

    def tanh_exact(v):
        return math.tanh(v)
    return tanh_exact


@intrinsic
def _wide_vectors(typingctx):
    """Let the loops of the calling function vectorise with 512-bit registers.

    LLVM's tuning for many AVX-512 CPUs (Ice Lake, Rocket Lake, Sapphire Rapids) prefers
    256-bit vectors; for the compute-bound cell updates 512-bit ones are 15-20% faster
    (measured on the Xeon VM). Sets the function attribute ``prefer-vector-width=512``,
    which only matters where AVX-512 exists. Call it first in the function.
    """
    sig = types.void()

    def codegen(context, builder, signature, args):
        # llvmlite checks attribute names against a fixed list that lacks this
        # string attribute; it is valid LLVM IR.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return sig, codegen


# ----------------------------------------------------------------------------
# matrix products on flat arrays (row-major, with offsets and leading dimensions)
# ----------------------------------------------------------------------------


@intrinsic
def _blas_gemm(typingctx, ta, tb, m, n, k, alpha, a, oa, lda, b, ob, ldb, beta, c, oc, ldc):
    """C = alpha * op(A) @ op(B) + beta * C through BLAS, row-major.

    ``C`` is ``m x n`` at ``c[oc:]`` with leading dimension ``ldc``; ``A`` is ``m x k``
    (``ta == 0``) or stored ``k x m`` and transposed (``ta != 0``), at ``a[oa:]`` with
    leading dimension ``lda``; likewise ``B`` (``k x n`` or stored ``n x k``). Arrays are
    C-contiguous, one float dtype. Calls Numba's own ``numba_xxgemm`` helper (SciPy's
    BLAS, as ``np.dot`` does), which also gives ``beta`` (accumulation) and strided
    sub-matrices without copies.
    """
    if not all(isinstance(t, types.Array) for t in (a, b, c)):
        return None
    dt = a.dtype
    if dt not in (types.float32, types.float64) or b.dtype != dt or c.dtype != dt:
        return None
    sig = types.int32(ta, tb, m, n, k, alpha, a, oa, lda, b, ob, ldb, beta, c, oc, ldc)

    def codegen(context, builder, signature, args):
        (ta_, tb_, m_, n_, k_, alpha_, a_, oa_, lda_, b_, ob_, ldb_, beta_, c_, oc_,
         ldc_) = args
        aty = signature.args
        char = llvm_ir.IntType(8)
        intp = context.get_value_type(types.intp)
        voidp = cgutils.voidptr_t
        fnty = llvm_ir.FunctionType(llvm_ir.IntType(32),
                                    [char, char, char, intp, intp, intp, voidp, voidp, intp,
                                     voidp, intp, voidp, voidp, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        def as_intp(val, ty):
            return context.cast(builder, val, ty, types.intp)

        def ptr(val, ty, off, offty):
            ary = context.make_array(ty)(context, builder, val)
            return builder.bitcast(builder.gep(ary.data, [as_intp(off, offty)]), voidp)

        alpha_slot = cgutils.alloca_once_value(builder, context.cast(builder, alpha_, aty[5], dt))
        beta_slot = cgutils.alloca_once_value(builder, context.cast(builder, beta_, aty[12], dt))
        kind = llvm_ir.Constant(char, ord("s" if dt == types.float32 else "d"))
        no = llvm_ir.Constant(char, ord("n"))
        yes = llvm_ir.Constant(char, ord("t"))
        # row-major C = op(A) op(B)  <=>  column-major C^T = op(B)^T op(A)^T
        trans_b = builder.select(
            builder.icmp_signed("!=", tb_, context.get_constant(aty[1], 0)), yes, no)
        trans_a = builder.select(
            builder.icmp_signed("!=", ta_, context.get_constant(aty[0], 0)), yes, no)
        call_args = (kind, trans_b, trans_a,
                     as_intp(n_, aty[3]), as_intp(m_, aty[2]), as_intp(k_, aty[4]),
                     builder.bitcast(alpha_slot, voidp),
                     ptr(b_, aty[9], ob_, aty[10]), as_intp(ldb_, aty[11]),
                     ptr(a_, aty[6], oa_, aty[7]), as_intp(lda_, aty[8]),
                     builder.bitcast(beta_slot, voidp),
                     ptr(c_, aty[13], oc_, aty[14]), as_intp(ldc_, aty[15]))
        return builder.call(fn, call_args)

    return sig, codegen


# ----------------------------------------------------------------------------
# fixed-order products: every element summed over k in one order, on every CPU
# ----------------------------------------------------------------------------

#: CPU names (LLVM's) with AVX-512, for when NUMBA_CPU_FEATURES is empty and the
#: features are the named CPU's (only the tile shape depends on it, not the bits).
_AVX512_CPU_NAMES = ("avx512", "skx", "cascadelake", "cooperlake", "cannonlake",
                     "icelake", "tigerlake", "rocketlake", "sapphirerapids", "alderlake-avx",
                     "graniterapids", "emeraldrapids", "diamondrapids", "znver4", "znver5",
                     "x86-64-v4", "knl", "knm")


def _target_has_avx512(context):
    """Whether the code being compiled may use AVX-512 (the target Numba compiles for:
    the host, or ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``)."""
    from numba.core import config

    features = config.CPU_FEATURES
    if features is None:
        import llvmlite.binding as ll

        features = ll.get_host_cpu_features().flatten()
    if features:
        return "+avx512f" in features.split(",")
    codegen = context.codegen()
    name = codegen._get_host_cpu_name() if hasattr(codegen, "_get_host_cpu_name") else ""
    return any(s in name for s in _AVX512_CPU_NAMES)


def _tile_shape(context, dtype):
    """(rows, lanes, half lanes) of a register tile of :func:`_gemm_fixed`: 8 rows of
    two 512-bit vectors with AVX-512 (16 accumulators of 32), else 4 rows of two
    256-bit vectors (8 of 16). Measured on the Zen 5 VM, float32, 128 x 32 x 34: 236
    GFLOP/s (OpenBLAS SkylakeX sgemm 218), AVX2 code 110 (OpenBLAS Haswell 71-85)."""
    wide = _target_has_avx512(context)
    lanes = (64 if wide else 32) // (4 if dtype == types.float32 else 8)
    return (8 if wide else 4), 2 * lanes, lanes


class _TileEmitter:
    """LLVM IR of the fixed-order products (see :func:`_gemm_fixed`)."""

    def __init__(self, context, builder, dtype):
        self.context, self.builder = context, builder
        self.ety = context.get_value_type(dtype)
        self.esize = 4 if dtype == types.float32 else 8
        self.intp = context.get_value_type(types.intp)
        self.accs = {}

    def const(self, v):
        return llvm_ir.Constant(self.intp, v)

    def vtype(self, lanes):
        return self.ety if lanes == 1 else llvm_ir.VectorType(self.ety, lanes)

    def fma(self, lanes):
        vty = self.vtype(lanes)
        bits = self.esize * 8
        name = f"llvm.fma.f{bits}" if lanes == 1 else f"llvm.fma.v{lanes}f{bits}"
        return cgutils.get_or_insert_function(self.builder.module,
                                              llvm_ir.FunctionType(vty, [vty] * 3), name)

    def load(self, base, offset, lanes):
        b = self.builder
        p = b.gep(base, [offset])
        if lanes == 1:
            return b.load(p)
        return b.load(b.bitcast(p, self.vtype(lanes).as_pointer()), align=self.esize)

    def store(self, value, base, offset, lanes):
        b = self.builder
        p = b.gep(base, [offset])
        if lanes == 1:
            b.store(value, p)
        else:
            b.store(value, b.bitcast(p, self.vtype(lanes).as_pointer()), align=self.esize)

    def splat(self, value, lanes):
        if lanes == 1:
            return value
        b = self.builder
        vty = self.vtype(lanes)
        undef = llvm_ir.Constant(vty, llvm_ir.Undefined)
        one = b.insert_element(undef, value, llvm_ir.Constant(llvm_ir.IntType(32), 0))
        return b.shuffle_vector(one, undef,
                                llvm_ir.Constant(llvm_ir.VectorType(llvm_ir.IntType(32), lanes), [0] * lanes))

    def slots(self, count, lanes):
        """``count`` stack slots of the given width (reused; promoted to registers)."""
        have = self.accs.setdefault(lanes, [])
        while len(have) < count:
            have.append(cgutils.alloca_once(self.builder, self.vtype(lanes)))
        return have[:count]

    def tile(self, R, lanes, k, a, oa, lda, s, os, lds, z, oz, ldz, accumulate):
        """Z[oz + r*ldz + c] (+)= sum_q A[oa + r*lda + q] * S[os + q*lds + c] for
        r < R, c < lanes: the lanes run along S's rows, A's element is broadcast."""
        b = self.builder
        accs = self.slots(R, lanes)
        for r in range(R):
            off = b.add(oz, b.mul(self.const(r), ldz))
            init = (self.load(z, off, lanes) if accumulate
                    else llvm_ir.Constant(self.vtype(lanes), None))
            b.store(init, accs[r])
        fma = self.fma(lanes)
        with cgutils.for_range(b, k) as loop:
            q = loop.index
            sv = self.load(s, b.add(os, b.mul(q, lds)), lanes)
            for r in range(R):
                av = self.load(a, b.add(b.add(oa, b.mul(self.const(r), lda)), q), 1)
                b.store(b.call(fma, [self.splat(av, lanes), sv, b.load(accs[r])]), accs[r])
        for r in range(R):
            self.store(b.load(accs[r]), z, b.add(oz, b.mul(self.const(r), ldz)), lanes)

    def tile_t(self, V, lanes, k, at, oat, ldat, s, os, lds, z, oz):
        """z[oz + i] = sum_q AT[oat + q*ldat + i] * s[os + q*lds] for i < V*lanes: one
        column, the lanes run along A's rows (stored transposed), s is broadcast."""
        b = self.builder
        accs = self.slots(V, lanes)
        for v in range(V):
            b.store(llvm_ir.Constant(self.vtype(lanes), None), accs[v])
        fma = self.fma(lanes)
        with cgutils.for_range(b, k) as loop:
            q = loop.index
            sv = self.splat(self.load(s, b.add(os, b.mul(q, lds)), 1), lanes)
            row = b.add(oat, b.mul(q, ldat))
            for v in range(V):
                av = self.load(at, b.add(row, self.const(v * lanes)), lanes)
                b.store(b.call(fma, [av, sv, b.load(accs[v])]), accs[v])
        for v in range(V):
            self.store(b.load(accs[v]), z, b.add(oz, self.const(v * lanes)), lanes)


def _data_pointer(context, builder, aty, value):
    return context.make_array(aty)(context, builder, value).data


def _c_float_array(t, dtype=None):
    return (isinstance(t, types.Array) and t.layout == "C"
            and t.dtype in (types.float32, types.float64) and (dtype is None or t.dtype == dtype))


def _make_gemm_fixed(accumulate):
    def gemm(typingctx, m, n, k, a, oa, lda, s, os, lds, z, oz, ldz):
        if not (_c_float_array(a) and _c_float_array(s, a.dtype) and _c_float_array(z, a.dtype)):
            return None
        sig = types.void(m, n, k, a, oa, lda, s, os, lds, z, oz, ldz)

        def codegen(context, builder, signature, args):
            at = signature.args
            e = _TileEmitter(context, builder, at[3].dtype)
            m_, n_, k_, oa_, lda_, os_, lds_, oz_, ldz_ = (
                context.cast(builder, args[i], at[i], types.intp)
                for i in (0, 1, 2, 4, 5, 7, 8, 10, 11))
            pa = _data_pointer(context, builder, at[3], args[3])
            ps = _data_pointer(context, builder, at[6], args[6])
            pz = _data_pointer(context, builder, at[9], args[9])
            MR, TL, TL2 = _tile_shape(context, at[3].dtype)
            b = builder

            def row_block(i0, R):
                a0 = b.add(oa_, b.mul(i0, lda_))
                z0 = b.add(oz_, b.mul(i0, ldz_))
                c = e.const(0)
                for lanes in (TL, TL2, 1):  # full tiles, a half tile, single columns
                    count = b.udiv(b.sub(n_, c), e.const(lanes))
                    with cgutils.for_range(b, count) as loop:
                        c0 = b.add(c, b.mul(loop.index, e.const(lanes)))
                        e.tile(R, lanes, k_, pa, a0, lda_, ps, b.add(os_, c0), lds_, pz,
                               b.add(z0, c0), ldz_, accumulate)
                    c = b.add(c, b.mul(count, e.const(lanes)))

            blocks = b.udiv(m_, e.const(MR))
            with cgutils.for_range(b, blocks) as loop:
                row_block(b.mul(loop.index, e.const(MR)), MR)
            with cgutils.for_range(b, m_, start=b.mul(blocks, e.const(MR))) as loop:
                row_block(loop.index, 1)
            return context.get_dummy_value()

        return sig, codegen

    gemm.__name__ = "_gemm_fixed_acc" if accumulate else "_gemm_fixed_set"
    return intrinsic(gemm)


_gemm_fixed_set = _make_gemm_fixed(False)
_gemm_fixed_acc = _make_gemm_fixed(True)


@intrinsic
def _gemv_fixed_t(typingctx, m, k, at, oat, ldat, s, os, lds, z, oz):
    """``z[oz + i] = sum_q AT[oat + q*ldat + i] * s[os + q*lds]``, i < m: the product
    of one column with A stored transposed, summed as :func:`_gemm_fixed` sums."""
    if not (_c_float_array(at) and _c_float_array(s, at.dtype) and _c_float_array(z, at.dtype)):
        return None
    sig = types.void(m, k, at, oat, ldat, s, os, lds, z, oz)

    def codegen(context, builder, signature, args):
        sa = signature.args
        e = _TileEmitter(context, builder, sa[2].dtype)
        m_, k_, oat_, ldat_, os_, lds_, oz_ = (context.cast(builder, args[i], sa[i], types.intp)
                                               for i in (0, 1, 3, 4, 6, 7, 9))
        pat = _data_pointer(context, builder, sa[2], args[2])
        ps = _data_pointer(context, builder, sa[5], args[5])
        pz = _data_pointer(context, builder, sa[8], args[8])
        _, _, lanes = _tile_shape(context, sa[2].dtype)
        b = builder
        i = e.const(0)
        for V, width in ((8, lanes), (1, lanes), (1, 1)):  # 8 vectors, one, single rows
            step = e.const(V * width)
            count = b.udiv(b.sub(m_, i), step)
            with cgutils.for_range(b, count) as loop:
                i0 = b.add(i, b.mul(loop.index, step))
                e.tile_t(V, width, k_, pat, b.add(oat_, i0), ldat_, ps, os_, lds_, pz,
                         b.add(oz_, i0))
            i = b.add(i, b.mul(count, step))
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, error_model="numpy")
def _gemm_fixed(m, n, k, A, oa, lda, S, os, lds, Z, oz, ldz, accumulate):
    """``Z (m, n) = A (m, k) @ S (k, n)`` (``+=`` if ``accumulate``) on flat row-major
    arrays with offsets and leading dimensions, every element summed in one fixed order:
    ``acc = fma(A[i, q], S[q, c], acc)`` for q = 0, 1, ..., k - 1, from 0 (or from Z).

    Vectorised along the columns c in register tiles (:func:`_tile_shape`), the row
    and column remainders in narrower tiles down to single elements: every path does
    the same fused multiply-adds in the same order for every element, so an element's
    bits depend on its row of A and column of S only, never on its position, the
    matrix sizes, the tile it falls in, the vector width or the CPU.
    """
    _wide_vectors()
    if accumulate:
        _gemm_fixed_acc(m, n, k, A, oa, lda, S, os, lds, Z, oz, ldz)
    else:
        _gemm_fixed_set(m, n, k, A, oa, lda, S, os, lds, Z, oz, ldz)


@njit(cache=True, error_model="numpy")
def _gemv_fixed(m, k, AT, oat, ldat, S, os, lds, Z, oz):
    """:func:`_gemm_fixed` of one column (n = 1) with A stored transposed, ``AT (k, m)``
    at ``AT[oat:]`` with leading dimension ``ldat``: vectorised along the m outputs
    instead of the (one) column; the same sum of the same products in the same order,
    so the same bits as any column of a wider product."""
    _wide_vectors()
    _gemv_fixed_t(m, k, AT, oat, ldat, S, os, lds, Z, oz)


# ----------------------------------------------------------------------------
# cell updates of one time step over n = rows * H contiguous elements per gate
# (gate blocks of unit-major states: one long vectorised loop, no per-row overhead)
# ----------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _lstm_forward_flat(zi, zf, zg, zo, c_prev, c_new, h_new, n):
    """Pre-activations (zi, zf, zg, zo) in, activated gates out."""
    _wide_vectors()
    for e in range(n):
        gi = _sigmoid(zi[e])
        gf = _sigmoid(zf[e])
        gg = _tanh(zg[e])
        go = _sigmoid(zo[e])
        cc = gf * c_prev[e] + gi * gg
        c_new[e] = cc
        zi[e] = gi
        zf[e] = gf
        zg[e] = gg
        zo[e] = go
        h_new[e] = go * _tanh(cc)


@njit(cache=True, error_model="numpy")
def _gru_forward_flat(zr, zz, zn, hn, h_prev, h_new, n, one):
    """Pre-activations (r, z complete; n input side) in, gates out; hn = W_hn h + b_hn."""
    _wide_vectors()
    for e in range(n):
        gr = _sigmoid(zr[e])
        gz = _sigmoid(zz[e])
        gn = _tanh(zn[e] + gr * hn[e])
        zr[e] = gr
        zz[e] = gz
        zn[e] = gn
        h_new[e] = (one - gz) * gn + gz * h_prev[e]


@njit(cache=True, error_model="numpy")
def _rnn_forward_flat(z, h_new, n, relu):
    _wide_vectors()
    if relu:
        for e in range(n):
            v = z[e]
            if v < 0:
                v = v - v
            z[e] = v
            h_new[e] = v
    else:
        for e in range(n):
            v = _tanh(z[e])
            z[e] = v
            h_new[e] = v


@njit(cache=True, error_model="numpy")
def _lstm_infer_flat(zi, zf, zg, zo, c_prev, c_new, h_new, n):
    """:func:`_lstm_forward_flat` without storing the activated gates (inference):
    the same arithmetic, so the same states, with 4 fewer stores per unit."""
    _wide_vectors()
    for e in range(n):
        cc = _sigmoid(zf[e]) * c_prev[e] + _sigmoid(zi[e]) * _tanh(zg[e])
        c_new[e] = cc
        h_new[e] = _sigmoid(zo[e]) * _tanh(cc)


@njit(cache=True, error_model="numpy")
def _gru_infer_flat(zr, zz, zn, hn, h_prev, h_new, n, one):
    """:func:`_gru_forward_flat` without storing the gates (inference)."""
    _wide_vectors()
    for e in range(n):
        gz = _sigmoid(zz[e])
        gn = _tanh(zn[e] + _sigmoid(zr[e]) * hn[e])
        h_new[e] = (one - gz) * gn + gz * h_prev[e]


@njit(cache=True, error_model="numpy")
def _lstm_backward_flat(zi, zf, zg, zo, dh_out, dh_rec, dc, c, c_prev, n, one):
    """Activated gates in, pre-activation gradients out; dc: in/out."""
    _wide_vectors()
    for e in range(n):
        dh = dh_out[e] + dh_rec[e]
        gi = zi[e]
        gf = zf[e]
        gg = zg[e]
        go = zo[e]
        tc = _tanh(c[e])
        dcc = dc[e] + dh * go * (one - tc * tc)
        zi[e] = dcc * gg * gi * (one - gi)
        zf[e] = dcc * c_prev[e] * gf * (one - gf)
        zg[e] = dcc * gi * (one - gg * gg)
        zo[e] = dh * tc * go * (one - go)
        dc[e] = dcc * gf


@njit(cache=True, error_model="numpy")
def _gru_backward_flat(zr, zz, zn, zhn, hn, h_prev, dh_out, dh_rec, dh_dir, n, one):
    """Gates in, input-side dZ out; zhn: recurrent-side dZ of the n gate (dn_pre * r);
    dh_dir: direct gradient h_prev <- h through the update gate, in/out."""
    _wide_vectors()
    for e in range(n):
        dh = dh_out[e] + dh_rec[e] + dh_dir[e]
        gr = zr[e]
        gz = zz[e]
        gn = zn[e]
        dn_pre = dh * (one - gz) * (one - gn * gn)
        zr[e] = dn_pre * hn[e] * gr * (one - gr)
        zz[e] = dh * (h_prev[e] - gn) * gz * (one - gz)
        zn[e] = dn_pre
        zhn[e] = dn_pre * gr
        dh_dir[e] = dh * gz


@njit(cache=True, error_model="numpy")
def _rnn_backward_flat(z, dh_out, dh_rec, n, relu, one):
    _wide_vectors()
    if relu:
        for e in range(n):
            dh = dh_out[e] + dh_rec[e]
            if z[e] > 0:
                z[e] = dh
            else:
                z[e] = dh - dh
    else:
        for e in range(n):
            dh = dh_out[e] + dh_rec[e]
            v = z[e]
            z[e] = dh * (one - v * v)


# ----------------------------------------------------------------------------
# training: the whole stack per chunk of rows, unit-major states
# ----------------------------------------------------------------------------


@njit(cache=True)
def _slot(t, t0, K):
    """Buffer slot of step t: window steps t0..T in slots 0..K, earlier steps
    alternating between slots K + 1 and K + 2 (kept only while needed)."""
    return t - t0 if t >= t0 else K + 1 + t % 2


@njit(cache=True, error_model="numpy")
def _product(ta, tb, m, n, k, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc, blas_h, one):
    """``C (m, n) = op(A) @ op(B) + beta * C`` on flat row-major arrays, as
    :func:`_blas_gemm` (beta 0 or 1); plain loops if not ``blas_h``."""
    if blas_h:
        _blas_gemm(ta, tb, m, n, k, one, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)
        return
    zero = one - one
    for i in range(m):
        for j in range(n):
            acc = zero
            for q in range(k):
                a = A[oa + q * lda + i] if ta else A[oa + i * lda + q]
                b = Bm[ob + j * ldb + q] if tb else Bm[ob + q * ldb + j]
                acc += a * b
            o = oc + i * ldc + j
            C[o] = acc + C[o] if beta != zero else acc


@njit(cache=True, error_model="numpy")
def _forward_product(m, n, k, A, oa, lda, AT, oat, ldat, S, os, Z, oz, blas_h, one):
    """``Z (m, n) = A (m, k) @ S (k, n)`` of a forward step (S and Z with n columns):
    :func:`_gemm_fixed`, or for one column :func:`_gemv_fixed` on ``AT``, the same
    matrix stored transposed (the same bits); plain loops if not ``blas_h``."""
    # offsets as int64 (not literals): one compiled specialisation of the products
    if not blas_h:
        _product(0, 0, m, n, k, A, oa, lda, S, os, n, one - one, Z, oz, n, blas_h, one)
    elif n == 1:
        _gemv_fixed(m, k, AT, oat, ldat, S, np.int64(os), np.int64(1), Z, np.int64(oz))
    else:
        _gemm_fixed(m, n, k, A, oa, lda, S, np.int64(os), n, Z, np.int64(oz), n, False)


@njit(cache=True, error_model="numpy")
def _step_products(cell, H, n, Ka, A, oa, AT, S, os, Z, oz, blas_h, one):
    """Pre-activations of one step: ``Z = A @ S`` (LSTM, RNN), or for GRU the r, z
    rows over all of S, n_h = [w_hn, b_hn] over [h; 1] and n_x = [b_in, w_in] over
    [1; x] (see :func:`_infer_chunk`). ``AT`` holds the layer's A transposed at the
    same offset ``oa``, (Ka, G'*H)."""
    if cell == GRU:
        GH = 4 * H
        _forward_product(2 * H, n, Ka, A, oa, Ka, AT, oa, GH, S, os, Z, oz, blas_h, one)
        _forward_product(H, n, H + 1, A, oa + 2 * H * Ka, Ka, AT, oa + 2 * H, GH, S, os, Z,
                         oz + 2 * H * n, blas_h, one)
        _forward_product(H, n, Ka - H, A, oa + 3 * H * Ka + H, Ka, AT, oa + H * GH + 3 * H,
                         GH, S, os + H * n, Z, oz + 3 * H * n, blas_h, one)
    else:
        GH = (4 if cell == LSTM else 1) * H
        _forward_product(GH, n, Ka, A, oa, Ka, AT, oa, GH, S, os, Z, oz, blas_h, one)


@njit(cache=True, error_model="numpy")
def _backward_product(m, n, k, A, oa, lda, AT, oat, ldat, dZ, oz, dS, os, accumulate, blas_h,
                      one):
    """``dS (m, n) (+)= A.T @ dZ (k, n)``, A stored (k, m) at ``A[oa:]`` with leading
    dimension ``lda``: :func:`_gemm_fixed` on ``AT``, A transposed (m, k), at ``oat``
    with ``ldat`` (a row's bits then do not depend on the chunk it is in); plain loops
    if not ``blas_h``."""
    if blas_h:  # offsets as int64 (not literals): one compiled specialisation each
        _gemm_fixed(m, n, k, AT, oat, ldat, dZ, np.int64(oz), n, dS, np.int64(os), n,
                    accumulate)
    else:
        _product(1, 0, m, n, k, A, oa, lda, dZ, oz, n, one if accumulate else one - one, dS,
                 os, n, blas_h, one)


@njit(cache=True, error_model="numpy")
def _train_forward_chunk(cell, L, r0, rows, n, T, K, F, H, B, x, A, AT, a_off, h0, c0,
                         masks, has_masks, S, Z, C, h_top, h_out, want_h_out, blas_h, one):
    """Forward of every layer over all T steps for the batch rows r0..r0+rows, keeping
    the last K steps for the backward.

    Unit-major, as :func:`_infer_chunk`, n columns (rows padded to ROW_BLOCK, padding
    on zero inputs). Per layer k: ``S[k, slot]`` [Ka_k, n] the product's right side
    ``[h_t; 1; x_t]`` of a step, ``Z[k, slot]`` [G'*H, n] its gates (activated by the
    cell update; GRU blocks r, z, n_h = W_hn h + b_hn, n), ``C[k, slot]`` [H, n] LSTM
    cell states; slots from :func:`_slot` (Z: K for steps before the window).
    ``x`` [T, B, F] time-major inputs; ``h0``, ``c0`` [L, B, H]; ``masks`` [L-1, T, B,
    H] dropout masks on the inputs of layers 1..L-1; ``h_top`` [B, H] written with the
    top layer's last state, ``h_out`` [T, B, H] with all its states if ``want_h_out``.
    """
    relu = cell == RNN_RELU
    RH = H * n
    t0 = T - K
    zero = one - one
    s0 = _slot(0, t0, K)
    for k in range(L):
        Ka = H + 1 + (F if k == 0 else H)
        for sl in range(K + 3):
            for e in range(Ka * n):
                S[k, sl, e] = zero
            for r in range(n):
                S[k, sl, RH + r] = one
        for j in range(H):
            for r in range(rows):
                S[k, s0, j * n + r] = h0[(k * B + r0 + r) * H + j]
        if cell == LSTM:
            for e in range(RH):
                C[k, s0, e] = zero
            for j in range(H):
                for r in range(rows):
                    C[k, s0, j * n + r] = c0[(k * B + r0 + r) * H + j]
    for t in range(T):
        ss = _slot(t, t0, K)
        sn = _slot(t + 1, t0, K)
        zs = t - t0 if t >= t0 else K
        for k in range(L):
            Ka = H + 1 + (F if k == 0 else H)
            s_cur = S[k, ss]
            ox = RH + n  # x rows of S
            if k == 0:
                for f in range(F):
                    for r in range(rows):
                        s_cur[ox + f * n + r] = x[(t * B + r0 + r) * F + f]
            else:  # the layer below's new h, written at this step
                below = S[k - 1, sn]
                if has_masks:
                    om = ((k - 1) * T + t) * B + r0
                    for j in range(H):
                        for r in range(rows):
                            s_cur[ox + j * n + r] = below[j * n + r] * masks[(om + r) * H + j]
                else:
                    for e in range(RH):
                        s_cur[ox + e] = below[e]
            z = Z[k, zs]
            _step_products(cell, H, n, Ka, A, a_off[k], AT, s_cur, 0, z, 0, blas_h, one)
            h_new = S[k, sn, 0:RH]
            if cell == LSTM:
                _lstm_forward_flat(z[0:RH], z[RH:2 * RH], z[2 * RH:3 * RH], z[3 * RH:4 * RH],
                                   C[k, ss, 0:RH], C[k, sn, 0:RH], h_new, RH)
            elif cell == GRU:
                _gru_forward_flat(z[0:RH], z[RH:2 * RH], z[3 * RH:4 * RH], z[2 * RH:3 * RH],
                                  s_cur[0:RH], h_new, RH, one)
            else:
                _rnn_forward_flat(z[0:RH], h_new, RH, relu)
        if want_h_out:
            top = S[L - 1, sn]
            for r in range(rows):
                for j in range(H):
                    h_out[(t * B + r0 + r) * H + j] = top[j * n + r]
    top = S[L - 1, K]
    for r in range(rows):
        for j in range(H):
            h_top[(r0 + r) * H + j] = top[j * n + r]


@njit(parallel=True, cache=True, error_model="numpy")
def _stack_forward(cell, L, nc, per, T, K, F, H, B, x, A, AT, a_off, h0, c0, masks, has_masks,
                   S, Z, C, h_top, h_out, want_h_out, blas_h, one):
    """:func:`_train_forward_chunk` for the nc chunks of ``per`` rows (the last takes
    the rest), in parallel; ``S``, ``Z``, ``C`` carry a leading chunk axis."""
    for c in prange(nc):
        r0 = c * per
        _train_forward_chunk(cell, L, r0, min(per, B - r0), per, T, K, F, H, B, x, A, AT,
                             a_off, h0, c0, masks, has_masks, S[c], Z[c], C[c], h_top, h_out,
                             want_h_out, blas_h, one)


@njit(cache=True, error_model="numpy")
def _train_backward_chunk(cell, L, r0, rows, n, T, K, F, H, B, A, AT, a_off, masks, has_masks,
                          dh_top, n_top, S, Z, C, dS, dzh, dc, ddir, dtop, dmask, dA, dA_off,
                          dx, need_dx, dh_start, dc_start, blas_h, one):
    """BPTT over the K window steps of every layer, top down at each step, for the batch
    rows r0..r0+rows, from what :func:`_train_forward_chunk` kept (``Z`` is overwritten
    with the pre-activation gradients dZ).

    Per step and layer: the cell's backward gives dZ; ``dA_k += dZ @ S_t.T`` (the
    gradient of ``A_k = [w_hh, b, w_ih]``, bias included through the row of ones) and
    ``dS = A_k.T @ dZ`` (rows 0..H: gradient of h_t; rows H+1..: of the inputs, which
    are the outputs of layer k-1). ``dh_top`` [n_top, B, H]: gradient of the top
    layer's outputs at the last n_top steps. Scratch per layer (chunk's own):
    ``dS`` [L, Ka_max*n], ``dc``, ``ddir`` [L, H*n] (LSTM cell, GRU direct path),
    ``dzh``, ``dtop``, ``dmask`` [H*n]. ``dA`` [sum of G'*H*Ka_k], layer k at
    ``dA_off[k]``: this chunk's share, written. ``dx`` [K, B, F] layer 0's input
    gradient if ``need_dx``; ``dh_start``, ``dc_start`` [L, B, H]: gradients of the
    state before the window (written).
    """
    relu = cell == RNN_RELU
    RH = H * n
    t0 = T - K
    zero = one - one
    for e in range(dA.shape[0]):
        dA[e] = zero
    for k in range(L):
        for e in range(dS.shape[1]):
            dS[k, e] = zero
        for e in range(RH):
            dc[k, e] = zero
            ddir[k, e] = zero
    for e in range(RH):
        dtop[e] = zero
        dmask[e] = zero
    t_top = T - n_top
    for t in range(T - 1, t0 - 1, -1):
        s = t - t0  # slot of step t (S, Z) and of c_t; c_{t+1} in s + 1
        for k in range(L - 1, -1, -1):
            Fk = F if k == 0 else H
            Ka = H + 1 + Fk
            if k == L - 1:
                if t >= t_top:
                    od = (t - t_top) * B + r0
                    for j in range(H):
                        for r in range(rows):
                            dtop[j * n + r] = dh_top[(od + r) * H + j]
                elif t == t_top - 1:
                    for e in range(RH):
                        dtop[e] = zero
                dout = dtop
            else:
                up = dS[k + 1, (H + 1) * n:(H + 1) * n + RH]  # layer k + 1's input gradient
                if has_masks:
                    om = (k * T + t) * B + r0
                    for j in range(H):
                        for r in range(rows):
                            dmask[j * n + r] = up[j * n + r] * masks[(om + r) * H + j]
                    dout = dmask
                else:
                    dout = up
            drec = dS[k, 0:RH]  # from step t + 1
            z = Z[k, s]
            if cell == LSTM:
                _lstm_backward_flat(z[0:RH], z[RH:2 * RH], z[2 * RH:3 * RH], z[3 * RH:4 * RH],
                                    dout, drec, dc[k], C[k, s + 1, 0:RH], C[k, s, 0:RH], RH,
                                    one)
            elif cell == GRU:
                _gru_backward_flat(z[0:RH], z[RH:2 * RH], z[3 * RH:4 * RH], dzh,
                                   z[2 * RH:3 * RH], S[k, s, 0:RH], dout, drec, ddir[k], RH,
                                   one)
            else:
                _rnn_backward_flat(z[0:RH], dout, drec, RH, relu, one)
            oa = a_off[k]
            od = dA_off[k]
            s_t = S[k, s]
            if cell == GRU:
                _product(0, 1, 2 * H, Ka, n, z, 0, n, s_t, 0, n, one, dA, od, Ka, blas_h, one)
                _product(0, 1, H, H + 1, n, dzh, 0, n, s_t, 0, n, one, dA, od + 2 * H * Ka, Ka,
                         blas_h, one)
                _product(0, 1, H, Ka - H, n, z, 3 * RH, n, s_t, H * n, n, one, dA,
                         od + 3 * H * Ka + H, Ka, blas_h, one)
                GH = 4 * H
                _backward_product(Ka, n, 2 * H, A, oa, Ka, AT, oa, GH, z, 0, dS[k], 0, False,
                                  blas_h, one)
                _backward_product(H + 1, n, H, A, oa + 2 * H * Ka, Ka, AT, oa + 2 * H, GH, dzh,
                                  0, dS[k], 0, True, blas_h, one)
                _backward_product(Ka - H, n, H, A, oa + 3 * H * Ka + H, Ka, AT,
                                  oa + H * GH + 3 * H, GH, z, 3 * RH, dS[k], H * n, True,
                                  blas_h, one)
            else:
                GH = (4 if cell == LSTM else 1) * H
                _product(0, 1, GH, Ka, n, z, 0, n, s_t, 0, n, one, dA, od, Ka, blas_h, one)
                _backward_product(Ka, n, GH, A, oa, Ka, AT, oa, GH, z, 0, dS[k], 0, False,
                                  blas_h, one)
            if k == 0 and need_dx:
                ox = (H + 1) * n
                for r in range(rows):
                    for f in range(F):
                        dx[(s * B + r0 + r) * F + f] = dS[0, ox + f * n + r]
    for k in range(L):
        for r in range(rows):
            for j in range(H):
                v = dS[k, j * n + r]
                if cell == GRU:
                    v += ddir[k, j * n + r]
                dh_start[(k * B + r0 + r) * H + j] = v
                if cell == LSTM:
                    dc_start[(k * B + r0 + r) * H + j] = dc[k, j * n + r]


@njit(parallel=True, cache=True, error_model="numpy")
def _stack_backward(cell, L, nc, per, T, K, F, H, B, A, AT, a_off, masks, has_masks, dh_top,
                    n_top, S, Z, C, dS, dzh, dc, ddir, dtop, dmask, dA_parts, dA_off, dA,
                    dx, need_dx, dh_start, dc_start, blas_h, one):
    """:func:`_train_backward_chunk` for every chunk in parallel, then ``dA`` [total] =
    the chunks' shares summed in chunk order (fixed by the shapes, so the gradient's
    bits do not depend on the thread count)."""
    for c in prange(nc):
        r0 = c * per
        _train_backward_chunk(cell, L, r0, min(per, B - r0), per, T, K, F, H, B, A, AT, a_off,
                              masks, has_masks, dh_top, n_top, S[c], Z[c], C[c], dS[c],
                              dzh[c], dc[c], ddir[c], dtop[c], dmask[c], dA_parts[c], dA_off,
                              dx, need_dx, dh_start, dc_start, blas_h, one)
    total = dA.shape[0]
    n_blocks = (total + 4095) // 4096
    for q in prange(n_blocks):
        for e in range(q * 4096, min(total, (q + 1) * 4096)):
            acc = dA_parts[0, e]
            for c in range(1, nc):
                acc += dA_parts[c, e]
            dA[e] = acc


# ----------------------------------------------------------------------------
# inference: the whole stack and the head, one parallel region for all batches
# ----------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _infer_chunk(cell, L, r0, rows, T, F, H, O, X, A, AT, a_offsets, head_w, head_b, out, sb,
                 sc, z, xt, TB, blas_h, one):
    """Predictions for the batch rows r0..r0+rows: every layer, every step, the head.

    States are **unit-major** in the chunk's buffers (unit j of row r at ``j*n + r``,
    n = rows padded to a multiple of ROW_BLOCK, padding columns computed on zero
    inputs; a single row is not padded: n = 1), so that a layer's pre-activations at a step are one product
    ``Z (G*H, n) = A (G*H, Ka) @ S (Ka, n)`` with ``A = [w_hh, b, w_ih]`` and
    ``S = [h; 1; x]`` (Ka = H + 1 + input size): the bias and the input side ride in
    the inner dimension, and each gate's block of Z is contiguous for the cell update.
    (GRU: rows r, z of A as above; n_h = [w_hn, b_hn] uses the first H + 1 rows of S,
    n_x = [b_in, w_in] the last 1 + input rows: three products.)

    ``sb`` [L, 2, Ka_max * n]: per layer two S buffers used alternately (step t reads
    ``t % 2`` and the cell update writes h into the other: in-place updates would
    defeat vectorisation); ``sc`` [L, 2, H * n] LSTM cell states, alike; ``z``
    [G'*H*n] the products (G' = 4 for GRU); ``xt`` [TB, F, n] the inputs of TB steps,
    unit-major (transposed once per block of steps: gathering them step by step, one
    strided load per row, cost 7% of a W1 step). ``A`` holds every layer's matrix,
    layer k at ``a_offsets[k]``, row-major (G'*H, Ka_k), ``AT`` the same transposed
    (Ka_k, G'*H) at the same offsets (for products of one column, see
    :func:`_forward_product`).
    """
    relu = cell == RNN_RELU
    n = 1 if rows == 1 else (rows + ROW_BLOCK - 1) // ROW_BLOCK * ROW_BLOCK  # columns
    RH = n * H
    zero = one - one
    for k in range(L):  # h0 = 0 (and c0), the row of ones; zero inputs in the padding
        for slot in range(2):
            for e in range(sb.shape[2]):
                sb[k, slot, e] = zero
            if cell == LSTM:
                for e in range(RH):
                    sc[k, slot, e] = zero
            for r in range(n):
                sb[k, slot, RH + r] = one
    for e in range(xt.shape[0]):  # zero inputs in the padding columns
        xt[e] = zero
    for t in range(T):
        cur = t % 2
        nxt = 1 - cur
        for k in range(L):
            Fk = F if k == 0 else H
            Ka = H + 1 + Fk
            s_cur = sb[k, cur]
            ox = RH + n  # x rows of S
            if k == 0:
                s = t % TB
                if s == 0:  # xt[s, f, r] = X[r0 + r, t + s, f]
                    nt = min(TB, T - t) * F
                    for r in range(rows):
                        src = ((r0 + r) * T + t) * F
                        for q in range(nt):
                            xt[q * n + r] = X[src + q]
                for e in range(F * n):
                    s_cur[ox + e] = xt[s * F * n + e]
            else:  # the layer below's new h, written at this step
                below = sb[k - 1, nxt]
                for e in range(RH):
                    s_cur[ox + e] = below[e]
            oa = a_offsets[k]
            _step_products(cell, H, n, Ka, A, oa, AT, s_cur, 0, z, 0, blas_h, one)
            if cell == GRU:
                _gru_infer_flat(z[0:RH], z[RH:2 * RH], z[3 * RH:4 * RH], z[2 * RH:3 * RH],
                                s_cur[0:RH], sb[k, nxt, 0:RH], RH, one)
            else:
                if cell == LSTM:
                    _lstm_infer_flat(z[0:RH], z[RH:2 * RH], z[2 * RH:3 * RH],
                                     z[3 * RH:4 * RH], sc[k, cur, 0:RH], sc[k, nxt, 0:RH],
                                     sb[k, nxt, 0:RH], RH)
                else:
                    _rnn_forward_flat(z[0:RH], sb[k, nxt, 0:RH], RH, relu)  # z: scratch
    # linear head on the top layer's last hidden state
    h = sb[L - 1, T % 2]
    for o in range(O):
        for r in range(rows):
            out[(r0 + r) * O + o] = head_b[o]
        for j in range(H):
            w = head_w[o * H + j]
            for r in range(rows):
                out[(r0 + r) * O + o] += w * h[j * n + r]


@njit(cache=True, error_model="numpy")
def _predict_slot(c, cell, L, N, batch, n_chunks, T, F, H, O, X, A, AT, a_offsets, head_w,
                  head_b, out, ws_b, ws_c, ws_z, ws_x, TB, blas_h, one):
    """Chunk c of every batch in turn, with chunk c's work space (see
    :func:`_stack_predict`)."""
    for start in range(0, N, batch):
        b = min(batch, N - start)
        per = _infer_chunk_rows(b, n_chunks)
        r0 = start + c * per
        if r0 < start + b:
            _infer_chunk(cell, L, r0, min(per, start + b - r0), T, F, H, O, X, A, AT,
                         a_offsets, head_w, head_b, out, ws_b[c], ws_c[c], ws_z[c], ws_x[c],
                         TB, blas_h, one)


@njit(parallel=True, cache=True, error_model="numpy")
def _stack_predict(cell, L, N, batch, n_chunks, T, F, H, O, X, A, AT, a_offsets, head_w,
                   head_b, out, ws_b, ws_c, ws_z, ws_x, TB, blas_h, one):
    """Predictions of a stack of L layers and a linear head for N samples.

    All arrays flat (C order) unless said; shapes in brackets.

    Parameters
    ----------
    cell, L : int
        Cell code, layers.
    N, batch, n_chunks : int
        Samples; batches of ``batch`` samples run one after another, each split into
        at most ``n_chunks`` chunks (:func:`_infer_chunk_rows`) that run in parallel.
    T, F, H, O : int
        Steps, input features, hidden units, outputs.
    X : [N, T, F]
        Batch-first inputs.
    A, AT, a_offsets : array, array, int64 array
        Every layer's product matrix (see :func:`_infer_chunk`), layer k from
        ``a_offsets[k]``, and each transposed (at the same offsets).
    head_w : [O*H]; head_b : [O]
    out : [N, O]
        Written with the predictions.
    ws_b : (chunks, L, 2, Ka_max*R); ws_c : (chunks, L, 2, H*R); ws_z : (chunks, G'*H*R);
    ws_x : (chunks, TB*F*R)
        Work space of the chunks (R the most rows of a chunk, padded to ROW_BLOCK).
    TB : int
        Steps of inputs transposed at once.
    blas_h : bool
        Fixed-order tiled products (else plain loops).
    one : scalar of the arrays' dtype

    One parallel loop over chunk numbers; a chunk runs all layers, all steps and the
    head for its rows, and each iteration runs its chunk of every batch. A row's
    result does not depend on the chunk it falls in (see the module docstring), so
    the chunking may follow the thread count.
    """
    # one parallel region for all batches: chunk c of every batch in turn (one barrier
    # in all, not one per batch); ws_* have a row per chunk of the most chunked batch
    for c in prange(ws_b.shape[0]):
        _predict_slot(c, cell, L, N, batch, n_chunks, T, F, H, O, X, A, AT, a_offsets, head_w,
                      head_b, out, ws_b, ws_c, ws_z, ws_x, TB, blas_h, one)


@njit(cache=True, error_model="numpy")
def _stack_predict_serial(cell, L, N, batch, n_chunks, T, F, H, O, X, A, AT, a_offsets,
                          head_w, head_b, out, ws_b, ws_c, ws_z, ws_x, TB, blas_h, one):
    """:func:`_stack_predict` in the calling thread, no parallel region: for batches
    of one chunk (a few windows), where starting the threads would cost more than
    the work. The same chunks and arithmetic, so the same bits."""
    for c in range(ws_b.shape[0]):
        _predict_slot(c, cell, L, N, batch, n_chunks, T, F, H, O, X, A, AT, a_offsets, head_w,
                      head_b, out, ws_b, ws_c, ws_z, ws_x, TB, blas_h, one)


@njit(cache=True)
def _infer_chunk_rows(b, n_chunks):
    """Rows per chunk of a batch of b rows split into at most n_chunks chunks: a
    multiple of ROW_BLOCK (the last chunk takes the rest)."""
    per = (b + n_chunks - 1) // n_chunks
    return (per + ROW_BLOCK - 1) // ROW_BLOCK * ROW_BLOCK


# ----------------------------------------------------------------------------
# training drivers (plain Python: buffers and dispatch)
# ----------------------------------------------------------------------------


def _use_blas(use_blas, H):
    """BLAS for the products?"""
    return H >= BLAS_MIN_HIDDEN if use_blas is None else bool(use_blas)


def _flat(a):
    return a.reshape(-1)


def train_chunk_rows(batch_size: int, hidden_size: int) -> int:
    """Rows per chunk of the training kernels, a multiple of ROW_BLOCK.

    Fixed by the shapes alone, never by the thread count: the gradient sums the
    chunks' shares, so its bits then do not depend on the machine's threads. About
    TRAIN_CHUNK_TARGET rows, more from H = 256 (taller products).
    """
    target = TRAIN_CHUNK_TARGET * (4 if hidden_size >= 256 else 1)
    n = max(1, -(-int(batch_size) // target))
    per = -(-int(batch_size) // n)
    return -(-per // ROW_BLOCK) * ROW_BLOCK


class StackCache:
    """What :func:`stack_forward` keeps for :func:`stack_backward`.

    Chunked unit-major buffers (see :func:`_train_forward_chunk`) and the shapes;
    ``h_top`` (B, H) the top layer's last state. Layer 0's view in PyTorch's terms,
    for tests and the GPU comparisons: ``gates`` (G, K, B, H) activated gates,
    ``extra`` (K, B, H) GRU ``W_hn h + b_hn`` or LSTM cell states, ``h_start`` and
    ``c_start`` (B, H) the state before the window, ``t0 = T - K``, ``window = K``.
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)

    @property
    def window(self):
        return self.K

    @property
    def t0(self):
        return self.T - self.K

    def _unchunk(self, a):
        """(nc, ..., X, n) chunk buffers -> (..., B, X): rows back in batch order."""
        a = np.moveaxis(a, 0, -2)  # (..., X, nc, n)
        a = a.reshape(a.shape[:-2] + (-1,))[..., :self.B]  # (..., X, B)
        return np.ascontiguousarray(np.swapaxes(a, -1, -2))

    def _z(self, k=0):
        nc, n, H = self.nc, self.per, self.H
        return self.Z[:, k, :self.K].reshape(nc, self.K, -1, H, n)

    @property
    def gates(self):
        G = gate_count(self.cell)
        z = self._z()
        if self.cell == GRU:  # r, z, n (n stored in the last block)
            z = z[:, :, [0, 1, 3]]
        return self._unchunk(z[:, :, :G]).transpose(1, 0, 2, 3)

    @property
    def extra(self):
        """GRU: ``W_hn h + b_hn``; LSTM: the cell states after each step (K, B, H)."""
        if self.cell == GRU:
            return self._unchunk(self._z()[:, :, 2])
        if self.cell == LSTM:
            c = self.C[:, 0, 1:self.K + 1].reshape(self.nc, self.K, self.H, self.per)
            return self._unchunk(c)
        return None

    @property
    def h_start(self):
        return self._unchunk(self.S[:, 0, 0, :self.H * self.per].reshape(self.nc, self.H,
                                                                         self.per))

    @property
    def c_start(self):
        if self.cell != LSTM:
            return None
        return self._unchunk(self.C[:, 0, 0].reshape(self.nc, self.H, self.per))


def stack_forward(cell, x, layers, h0=None, c0=None, window=None, masks=None,
                  want_h_out=False, chunk_rows=None, use_blas=None):
    """Forward of a stack of recurrent layers, keeping what the backward needs.

    Parameters
    ----------
    cell : int
        Cell code.
    x : (T, B, F) array
        Time-major inputs, float32 or float64 (the dtype of everything).
    layers : sequence of (w_ih, w_hh, b_ih, b_hh)
        Parameters of each layer, PyTorch's layout.
    h0, c0 : (L, B, H) arrays, optional
        Initial states (zeros if None; c0 for LSTM only).
    window : int, optional
        Truncation window K: the last K steps are kept (None: all T).
    masks : (L - 1, T, B, H) array, optional
        Dropout masks multiplying the inputs of layers 1..L-1.
    want_h_out : bool
        Also return every hidden state of the top layer.
    chunk_rows : int, optional
        Rows per chunk (default :func:`train_chunk_rows`; a multiple of ROW_BLOCK).
    use_blas : bool, optional

    Returns
    -------
    h_out : (T, B, H) array or None
    cache : StackCache
        ``cache.h_top`` (B, H) is the top layer's last state.
    """
    check_stack_inputs(x, layers, "stack_forward")
    dtype = x.dtype
    x = np.ascontiguousarray(x)
    T, B, F = x.shape
    L = len(layers)
    GH, H = layers[0][1].shape
    Gz = 4 if cell == GRU else GH // H
    K = T if window is None else max(1, min(int(window), T))
    per = train_chunk_rows(B, H) if chunk_rows is None else int(chunk_rows)
    nc = -(-B // per)
    A, AT, a_off = product_matrices(cell, layers, dtype)
    Ka = H + 1 + max(F, H if L > 1 else 0)
    S = np.empty((nc, L, K + 3, Ka * per), dtype=dtype)
    Z = np.empty((nc, L, K + 1, Gz * H * per), dtype=dtype)
    C = np.empty((nc, L, K + 3, H * per) if cell == LSTM else (nc, 1, 1, 1), dtype=dtype)
    h0 = (np.zeros((L, B, H), dtype=dtype) if h0 is None
          else np.ascontiguousarray(h0, dtype=dtype).reshape(L, B, H))
    c0 = (np.ascontiguousarray(c0, dtype=dtype).reshape(L, B, H)
          if cell == LSTM and c0 is not None else np.zeros((L, B, H), dtype=dtype))
    has_masks = masks is not None and L > 1
    masks = (np.ascontiguousarray(masks, dtype=dtype) if has_masks
             else np.empty(1, dtype=dtype))
    h_top = np.empty((B, H), dtype=dtype)
    h_out = np.empty((T, B, H) if want_h_out else 1, dtype=dtype)
    blas_h = _use_blas(use_blas, H)
    with kernel_context():
        _stack_forward(cell, L, nc, per, T, K, F, H, B, _flat(x), A, AT, a_off, _flat(h0),
                       _flat(c0), _flat(masks), has_masks, S, Z, C, _flat(h_top),
                       _flat(h_out), want_h_out, blas_h, dtype.type(1))
    cache = StackCache(cell=cell, L=L, T=T, K=K, B=B, F=F, H=H, per=per, nc=nc, S=S, Z=Z,
                       C=C, A=A, AT=AT, a_off=a_off, masks=_flat(masks), has_masks=has_masks,
                       h_top=h_top, blas_h=blas_h, dtype=dtype, used=False)
    return (h_out if want_h_out else None), cache


def stack_backward(cell, cache, dh_top, need_dx=False):
    """Backpropagation through time of a stack over its window.

    Parameters
    ----------
    cell : int
    cache : StackCache
        From :func:`stack_forward`; its gate buffers are overwritten (a cache serves
        one backward).
    dh_top : (S, B, H) array
        Gradient of the loss with respect to the top layer's outputs at the last S
        steps of the window (S <= K; S = 1 for a head on the last step).
    need_dx : bool
        Also return the gradient with respect to the inputs of the window's steps.

    Returns
    -------
    grads : list of (dw_ih, dw_hh, db_ih, db_hh)
        Per layer, shaped as the parameters.
    dx : (K, B, F) array or None
    dh_start, dc_start : (L, B, H) arrays
        Gradients with respect to each layer's state before the window (``h0``/``c0``
        when the window covers the whole sequence); dc_start zeros except for LSTM.
    """
    if cache.used:
        raise RuntimeError("a StackCache serves one backward; run the forward again.")
    dtype = cache.dtype
    L, T, K, B, F, H, per, nc = (cache.L, cache.T, cache.K, cache.B, cache.F, cache.H,
                                 cache.per, cache.nc)
    Gz = 4 if cell == GRU else gate_count(cell)
    dh_top = np.ascontiguousarray(dh_top, dtype=dtype)
    n_top = dh_top.shape[0]
    if dh_top.ndim != 3 or not 1 <= n_top <= K or dh_top.shape[1:] != (B, H):
        raise ValueError(f"dh_top must have shape (S, {B}, {H}) with 1 <= S <= {K}; "
                         f"got {dh_top.shape}.")
    cache.used = True  # the backward overwrites the gates
    Kas = [H + 1 + (F if k == 0 else H) for k in range(L)]
    sizes = [Gz * H * Ka for Ka in Kas]
    dA_off = np.cumsum([0] + sizes[:-1]).astype(np.int64)
    total = int(sum(sizes))
    RH = H * per
    dS = np.empty((nc, L, max(Kas) * per), dtype=dtype)
    scratch = [np.empty((nc, RH), dtype=dtype) for _ in range(3)]  # dzh, dtop, dmask
    dc = np.empty((nc, L, RH), dtype=dtype)
    ddir = np.empty((nc, L, RH), dtype=dtype)
    dA_parts = np.empty((nc, total), dtype=dtype)
    dA = np.empty(total, dtype=dtype)
    dx = np.empty((K, B, F) if need_dx else 1, dtype=dtype)
    dh_start = np.empty((L, B, H), dtype=dtype)
    dc_start = np.zeros((L, B, H), dtype=dtype)
    with kernel_context():
        _stack_backward(cell, L, nc, per, T, K, F, H, B, cache.A, cache.AT, cache.a_off,
                        cache.masks, cache.has_masks, _flat(dh_top), n_top, cache.S, cache.Z,
                        cache.C,
                        dS, scratch[0], dc, ddir, scratch[1], scratch[2], dA_parts, dA_off,
                        dA, _flat(dx), need_dx, _flat(dh_start), _flat(dc_start),
                        cache.blas_h, dtype.type(1))
    grads = []
    for k in range(L):
        d = dA[dA_off[k]:dA_off[k] + sizes[k]].reshape(Gz * H, Kas[k])
        if cell == GRU:  # blocks r, z | n_h = [w_hn, b_hn] | n_x = [b_in, w_in]
            dw_ih = np.concatenate([d[:2 * H, H + 1:], d[3 * H:, H + 1:]])
            dw_hh = np.concatenate([d[:2 * H, :H], d[2 * H:3 * H, :H]])
            db_ih = np.concatenate([d[:2 * H, H], d[3 * H:, H]])
            db_hh = np.concatenate([d[:2 * H, H], d[2 * H:3 * H, H]])
        else:
            dw_ih = d[:, H + 1:].copy()
            dw_hh = d[:, :H].copy()
            db_ih = d[:, H].copy()
            db_hh = db_ih.copy()
        grads.append((dw_ih, dw_hh, db_ih, db_hh))
    return grads, (dx if need_dx else None), dh_start, dc_start


def layer_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, window=None, chunk_rows=None,
                  use_blas=None, keep=True):
    """Forward pass of one recurrent layer (:func:`stack_forward` with one layer).

    Parameters
    ----------
    cell : int
    x : (T, B, F) array
        Time-major inputs, float32 or float64.
    h0, c0 : (B, H) arrays
        Initial hidden and cell state (``c0`` is ignored except for LSTM).
    w_ih, w_hh, b_ih, b_hh : arrays
        Layer parameters in PyTorch's layout.
    window : int or None
        Truncation window K (None: full BPTT).
    chunk_rows : int or None
    use_blas : bool or None
    keep : bool
        Return the cache for a backward pass; ``False`` for inference.

    Returns
    -------
    h_out : (T, B, H) array
    cache : StackCache or None
    """
    h_out, cache = stack_forward(cell, x, [(w_ih, w_hh, b_ih, b_hh)], h0=h0[None],
                                 c0=c0[None], window=window, want_h_out=True,
                                 chunk_rows=chunk_rows, use_blas=use_blas)
    return h_out, (cache if keep else None)


def layer_backward(cell, cache, dh_out, need_dx=True):
    """Backpropagation through time for one layer over its cached window.

    Parameters
    ----------
    cell : int
    cache : StackCache
        From :func:`layer_forward` (one layer).
    dh_out : (K, B, H) array
        Gradient of the loss with respect to the layer's outputs at the window's K
        steps (the last K of T).
    need_dx : bool
        ``False`` skips the input gradient (returned as None).

    Returns
    -------
    dx : (K, B, F) array or None
    dw_ih, dw_hh, db_ih, db_hh : arrays
        Parameter gradients, shaped as the parameters.
    dh_start, dc_start : (B, H) arrays
        Gradient with respect to the state before the window.
    """
    grads, dx, dh_start, dc_start = stack_backward(cell, cache, dh_out, need_dx=need_dx)
    return (dx,) + grads[0] + (dh_start[0], dc_start[0])


def product_matrices(cell, layers, dtype):
    """``(A, AT, offsets)``: every layer's :func:`_product_matrix` flat in one array,
    the same transposed (each layer's (Ka, G'*H) at the same offset), and the layers'
    offsets (int64), as the kernels take them."""
    mats = [_product_matrix(cell, *layer, dtype) for layer in layers]
    offsets = np.cumsum([0] + [m.size for m in mats[:-1]]).astype(np.int64)
    A = np.concatenate([m.reshape(-1) for m in mats])
    AT = np.concatenate([m.T.reshape(-1) for m in mats])
    return A, AT, offsets


def _product_matrix(cell, w_ih, w_hh, b_ih, b_hh, dtype):
    """A layer's ``A = [w_hh, b, w_ih]`` of :func:`_infer_chunk`, (G'*H, H + 1 + F).

    LSTM, RNN: ``b = b_ih + b_hh``. GRU: four blocks of H rows, r and z as above,
    then n_h = [w_hn, b_hn, 0] and n_x = [0, b_in, w_in].
    """
    H = w_hh.shape[1]
    F = w_ih.shape[1]
    w_ih = np.asarray(w_ih, dtype=dtype)
    w_hh = np.asarray(w_hh, dtype=dtype)
    b_ih = np.asarray(b_ih, dtype=dtype)
    b_hh = np.asarray(b_hh, dtype=dtype)
    if cell != GRU:
        return np.concatenate([w_hh, (b_ih + b_hh)[:, None], w_ih], axis=1)
    A = np.zeros((4 * H, H + 1 + F), dtype=dtype)
    A[:2 * H, :H] = w_hh[:2 * H]
    A[:2 * H, H] = b_ih[:2 * H] + b_hh[:2 * H]
    A[:2 * H, H + 1:] = w_ih[:2 * H]
    A[2 * H:3 * H, :H] = w_hh[2 * H:]
    A[2 * H:3 * H, H] = b_hh[2 * H:]
    A[3 * H:, H] = b_ih[2 * H:]
    A[3 * H:, H + 1:] = w_ih[2 * H:]
    return A


def check_stack_inputs(x: np.ndarray, layers, where: str) -> None:
    """Refuse inputs that do not fit the layers, before any kernel reads them.

    The compiled loops index flat buffers with the sizes they are given: a wrong
    feature count or dtype would read past the weights (NaN that changes between
    calls, or a crash) instead of failing.
    """
    if x.ndim != 3:
        raise ValueError(f"{where}: inputs must be 3-D; got shape {x.shape}.")
    F = layers[0][0].shape[1]
    if x.shape[2] != F:
        raise ValueError(f"{where}: inputs have {x.shape[2]} features per step but the "
                         f"first layer takes {F}.")
    for k, arrays in enumerate(layers):
        for a in arrays:
            if a.dtype != x.dtype:
                raise ValueError(f"{where}: layer {k} is {a.dtype} but the inputs are "
                                 f"{x.dtype}; cast one to the other.")


def stack_predict(cell, X, layers, head_w, head_b, batch_size, n_chunks=1, use_blas=None,
                  matrices=None):
    """Predictions of a stack of recurrent layers with a linear head on the last step.

    Parameters
    ----------
    cell : int
    X : (N, T, F) array
        Batch-first inputs, float32 or float64 (the dtype of everything).
    layers : sequence of (w_ih, w_hh, b_ih, b_hh)
        Parameters of each layer, PyTorch's layout.
    head_w, head_b : (O, H), (O,) arrays
    batch_size : int
        Samples per batch; batches run one after another.
    n_chunks : int
        Chunks of a batch that run in parallel, at most (multiples of ROW_BLOCK rows).
    use_blas : bool or None
    matrices : tuple, optional
        ``product_matrices(cell, layers, X.dtype)`` of these layers, if the caller
        keeps them between calls.

    Returns
    -------
    (N, O) array

    A row's result depends on its own inputs only: not on ``n_chunks``, the thread
    count, ``batch_size``, the other rows or its position (nor on the CPU's vector
    width or BLAS), and the hidden states are :func:`stack_forward`'s bit for bit. One
    kernel call for all batches: one parallel region, or none for batches of one
    chunk (see :func:`_stack_predict`).
    """
    check_stack_inputs(X, layers, "stack_predict")
    dtype = X.dtype
    X = np.ascontiguousarray(X)
    N, T, F = X.shape
    L = len(layers)
    GH, H = layers[0][1].shape
    G = GH // H
    Gz = 4 if cell == GRU else G  # row blocks of the products
    O = head_w.shape[0]
    out = np.empty((N, O), dtype=dtype)
    if N == 0:
        return out
    batch = max(1, min(int(batch_size), N))
    n_chunks = max(1, int(n_chunks))
    # rows and count of chunks, for a full batch and for a shorter last one
    sizes = {batch, N % batch or batch}
    per = {b: int(_infer_chunk_rows(b, n_chunks)) for b in sizes}
    slots = max(-(-b // per[b]) for b in sizes)
    R = max(per.values())
    A, AT, a_offsets = (product_matrices(cell, layers, dtype) if matrices is None
                        else matrices)
    Ka = H + 1 + max(F, H if L > 1 else 0)
    ws_b = np.empty((slots, L, 2, Ka * R), dtype=dtype)
    ws_c = np.empty((slots, L, 2, H * R if cell == LSTM else 1), dtype=dtype)
    ws_z = np.empty((slots, Gz * H * R), dtype=dtype)
    TB = max(1, min(T, INFER_INPUT_BYTES // (F * R * dtype.itemsize)))
    ws_x = np.empty((slots, TB * F * R), dtype=dtype)
    args = (cell, L, N, batch, n_chunks, T, F, H, O, _flat(X), A, AT, a_offsets,
            _flat(np.ascontiguousarray(head_w, dtype=dtype)),
            np.ascontiguousarray(head_b, dtype=dtype), _flat(out), ws_b, ws_c, ws_z, ws_x, TB,
            _use_blas(use_blas, H), dtype.type(1))
    if slots == 1:  # one chunk per batch: no parallel region to start
        _stack_predict_serial(*args)
    else:  # no BLAS inside: only the scheduling to set (see kernel_context)
        old_chunksize = set_parallel_chunksize(1)
        try:
            _stack_predict(*args)
        finally:
            set_parallel_chunksize(old_chunksize)
    return out
