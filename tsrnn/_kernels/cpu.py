"""CPU kernels: forward and backpropagation through time for RNN, LSTM and GRU layers.

Numerics only: contiguous NumPy arrays in, arrays out; nothing here knows about
scikit-learn or pandas.

Letters: B batch, T time steps, F input features, H hidden units, G gates
(1 rnn, 4 lstm: i f g o, 3 gru: r z n), K truncation window (``bptt_steps``).

Layout
------
Sequences are **time-major**, ``(T, B, ...)``. Weights have PyTorch's layout:
``w_ih (G*H, F)``, ``w_hh (G*H, H)``, ``b_ih, b_hh (G*H,)``. Hidden states live in one
``(T + 1, B, H)`` buffer whose block 0 is ``h0``, so the previous hidden states of any
run of steps are one contiguous block. Gates are **gate-major**, ``(G, K, B, H)``: the
values of one gate for the rows of a batch chunk at one step are contiguous, so the
cell update of a step is one long vectorised loop (per-row loops of H elements spent
more time on loop overhead than on arithmetic at H = 32). The kernels take flat views.

Strategy (measured on 2-core AMD EPYC, AVX-512; ``benchmarks/bench_training.py``)
-------------------------------------------------------------------------------
One ``@njit(parallel=True)`` call per layer and direction; Numba's thread pool is the
only owner of the cores. NumPy's threaded BLAS is not used: its workers keep spinning
after a product and halved the speed of the parallel regions that followed.

* Products go through BLAS (SciPy's OpenBLAS, one thread, called from inside the
  parallel loops through :func:`_blas_gemm`, which adds accumulation and strided
  operands to what ``np.dot`` offers). Its small-matrix kernels run at 80-100 GFLOP/s
  per core even for 32x32x32 per-gate products; hand-written fused loops (kept for
  ``use_blas=False``) reached 20-35 GFLOP/s, at every H from 2 up.
* Forward, per block of steps sized to stay in cache (``INPUT_BLOCK_BYTES``): the input
  side ``x @ w_ih.T + b`` as large products, then the recurrence, parallel over fixed
  chunks of batch rows and sequential in time: per step and chunk, one product
  ``h_prev @ w_hh.T`` per gate accumulated onto the input side, then one vectorised pass
  for the nonlinearities and the cell update.
* Backward: the same chunks run BPTT backwards in time (one product ``dZ @ w_hh`` per
  gate and step). Then, parallel over fixed (gate, block of units) items, the weight
  gradients as one small product per step accumulated in step order (2-8x faster than
  one product over all K*B rows, which spends its time packing), and the input
  gradient over fixed blocks of steps.
* Inference (:func:`stack_predict`): one kernel call and one parallel loop for all
  batches, over chunks of rows, each running every layer and the head in its own
  buffers. States there are **unit-major** (``(H, rows)``), so that a layer's step is
  one product ``[w_hh, b, w_ih] @ [h; 1; x]`` (bias and input side in the inner
  dimension; GRU: three) whose gate blocks are contiguous for the cell update. On the
  Xeon VM this beat four per-gate products onto a precomputed input side by 20-25%
  (W1: 1.6 us product + 1.3 us cell update per step of 32 rows, one thread); the
  products run along the rows, so chunks have 32+ rows and multiples of ROW_BLOCK.
* float32 tanh and sigmoid are rational functions (8 multiply-adds, one division, no
  exp; max errors 3.1e-7 and 1.8e-7 over every float32, see :func:`_tanh_f32`),
  vectorised with 512-bit registers where AVX-512 exists (:func:`_wide_vectors`):
  LSTM cell updates 2x faster than with exp-based formulas (1.3 vs 2.6 us per 1,024
  units on the Xeon VM). ``math.exp``/``math.tanh`` are scalar library calls that stop
  the loops from vectorising (~10x slower); float64 keeps them (exact; for gradient
  checks). Polynomials use explicit fused multiply-adds (:func:`_fma`); no fastmath.
* Training layers with few input features (``SMALL_INPUT_FEATURES``) compute their
  input side as one product ``[x, 1] @ [w_ih.T; b]`` per gate.

Determinism: samples never interact in the recurrence, and every reduction is split by
the shapes only, so results are bit-identical across runs and do not depend on the
number of chunks or threads. (OpenBLAS computes a row of a product the same way whatever
the number of rows, except single-row products, which go through GEMV: chunks therefore
have at least two rows. In the unit-major inference products a row is a column, and
columns in a ragged end go through narrower kernels that round differently: inference
pads its products to multiples of ROW_BLOCK columns.) Inference equals the training
forward up to rounding, not bit for bit.

Truncated BPTT: the forward runs in blocks of K steps ending at T and keeps the gates of
the last block only, so memory grows with K; the backward covers those K steps. The
loss of a sequence regressor sits on the last step, so this is exactly truncated BPTT.
"""

import contextlib
import functools
import math
import os
import threading

import numpy as np
from llvmlite import ir as llvm_ir  # Numba's code generator, for the BLAS intrinsic
from numba import njit, prange, set_parallel_chunksize, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

RNN_TANH = 0
RNN_RELU = 1
LSTM = 2
GRU = 3

CELL_CODES = {"rnn_tanh": RNN_TANH, "rnn_relu": RNN_RELU, "lstm": LSTM, "gru": GRU}

#: Hidden sizes at or above this use BLAS for the per-step recurrent products (BLAS won
#: at every size measured, H = 2..256; the fused loops remain for ``use_blas=False``).
BLAS_MIN_HIDDEN = 1
#: The input side of the gates (``x @ w_ih.T + b``) is computed for as many steps at
#: once as fit in this many bytes (about the L2 caches of two cores), then used by the
#: recurrence while still in cache; inference keeps only that many steps of gates
#: (1.8x faster than whole sequences for LSTM H=256, B=256; 4 MB was 2x slower for
#: GRU H=64, B=128).
INPUT_BLOCK_BYTES = 2 ** 21
#: Inference: chunks hold a multiple of this many rows (but the last of a batch), and
#: their products are padded to a multiple of it: every row then goes through BLAS's
#: full-width kernels, whose results do not depend on the row's position or on the
#: chunk's size (the narrow kernels for a ragged end round differently).
ROW_BLOCK = 16
#: Layers with at most this many input features compute their input side
#: ``x @ w_ih.T + b`` as one product ``[x, 1] @ [w_ih.T; b]`` per gate (inputs with a
#: column of ones, weights with the bias as a last row), in training and inference
#: alike; larger inputs get the bias as a rank-1 product with ones, then ``x @ w_ih.T``
#: accumulated onto it. For W1 (F = 1) that halves the input side (0.6 vs 1.2 us per
#: step of 64 rows on the Xeon VM).
SMALL_INPUT_FEATURES = 4
#: Blocks of time steps for the input-gradient products (fixed by the shapes, never
#: by the thread count).
N_STEP_BLOCKS = 4


def gate_count(cell: int) -> int:
    """Number of gates G of a cell code."""
    if cell == LSTM:
        return 4
    if cell == GRU:
        return 3
    return 1


def _even_bounds(total: int, parts: int) -> np.ndarray:
    """``parts + 1`` boundaries splitting ``range(total)`` into near-equal blocks."""
    bounds = np.empty(parts + 1, dtype=np.int64)
    for i in range(parts + 1):
        bounds[i] = (i * total + parts // 2) // parts
    return bounds


@functools.lru_cache(maxsize=256)
def _cached_bounds(kind: str, a: int, b: int) -> np.ndarray:
    if kind == "chunks":  # a = batch size, b = requested chunks
        return _even_bounds(a, max(1, min(b, a // 2)))
    if kind == "steps":  # a = steps
        return _even_bounds(a, max(1, min(N_STEP_BLOCKS, a)))
    # units: a = gates, b = hidden units
    return _even_bounds(b, max(1, min({1: 4, 3: 2}.get(a, 1), b)))


def chunk_bounds(batch_size: int, n_chunks: int) -> np.ndarray:
    """Split ``batch_size`` rows into near-equal contiguous chunks of at least two rows.

    Returns an int64 array of ``n + 1`` boundaries, ``n <= n_chunks``. (A one-row BLAS
    product takes another code path than a multi-row one and rounds differently.)
    Cached: do not modify the result.
    """
    return _cached_bounds("chunks", int(batch_size), int(n_chunks))


def window_starts(n_steps: int, window: int) -> np.ndarray:
    """First step of each block of ``window`` steps ending at ``n_steps``, then n_steps.

    The first block holds the remainder: for T = 7, K = 3 -> [0, 1, 4, 7].
    """
    starts = list(range(n_steps - window, -1, -window))[::-1]
    if starts[0] != 0:
        starts.insert(0, 0)
    return np.array(starts + [n_steps], dtype=np.int64)


def step_blocks(n_steps: int) -> np.ndarray:
    """Boundaries of the fixed blocks of time steps for the input gradient."""
    return _cached_bounds("steps", int(n_steps), 0)


def unit_blocks(n_gates: int, hidden: int) -> np.ndarray:
    """Boundaries of the fixed blocks of hidden units for the weight gradients.

    Work items are (gate, block) pairs: 4 for LSTM and RNN, 6 for GRU, so that two
    (or three, four) threads get even shares; fixed by the shapes only.
    """
    return _cached_bounds("units", int(n_gates), int(hidden))


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


@njit(cache=True, error_model="numpy")
def _loop_gemm(a, w, row_off, col_off, c, accumulate):
    """c[i, j] (+)= sum_p a[i, p] * w[row_off + p, col_off + j], fused loops (2-D views).

    For tiny sizes and ``use_blas=False``; vectorised over j.
    """
    m, n = c.shape
    k = a.shape[1]
    for i in range(m):
        p0 = 0
        if not accumulate:
            ai = a[i, 0]
            for j in range(n):
                c[i, j] = ai * w[row_off, col_off + j]
            p0 = 1
        for p in range(p0, k):
            aip = a[i, p]
            for j in range(n):
                c[i, j] += aip * w[row_off + p, col_off + j]


# ----------------------------------------------------------------------------
# cell updates of one time step over n = rows * H contiguous elements per gate
# (gate-major layout: one long vectorised loop, no per-row overhead)
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
# layer kernels
# ----------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _forward_input_item(cell, item, n_sub, ta, p0, p1, B, F, H, S, x, w_ihT, bias, b_hn,
                        gates, extra, ones, augmented, one):
    """Input side ``x @ w_ih.T + bias`` of one (gate, quarter of rows) item of steps
    p0..p1 of the block starting at step ta (``augmented``: x ends with a column of
    ones and each gate's block of w_ihT with the bias, see SMALL_INPUT_FEATURES)."""
    G = 4 if cell == LSTM else (3 if cell == GRU else 1)
    BH = B * H
    n_rows = (p1 - p0) * B
    g = item // n_sub
    q = item % n_sub
    r0 = (q * n_rows + n_sub // 2) // n_sub
    r1 = ((q + 1) * n_rows + n_sub // 2) // n_sub
    zero = one - one
    if g < G:
        og = g * S * BH + p0 * BH + r0 * H
        ox = ((ta + p0) * B + r0) * F
        if augmented:
            _blas_gemm(0, 0, r1 - r0, H, F, one, x, ox, F, w_ihT.reshape(-1), g * F * H, H,
                       zero, gates, og, H)
        else:
            _blas_gemm(0, 0, r1 - r0, H, 1, one, ones, 0, 1, bias, g * H, H, zero, gates, og,
                       H)
            _blas_gemm(0, 0, r1 - r0, H, F, one, x, ox, F, w_ihT.reshape(-1), g * F * H, H,
                       one, gates, og, H)
    else:  # GRU: W_hn h + b_hn starts from b_hn
        _blas_gemm(0, 0, r1 - r0, H, 1, one, ones, 0, 1, b_hn, 0, H, zero, extra,
                   p0 * BH + r0 * H, H)


@njit(cache=True, error_model="numpy")
def _forward_chunk(cell, b0, b1, blk, starts, p0, p1, B, H, S, h_buf, c_buf, w_hhT, gates,
                   extra, blas_h, one):
    """Recurrence of steps p0..p1 of block ``blk`` for the batch rows b0..b1."""
    G = 4 if cell == LSTM else (3 if cell == GRU else 1)
    relu = cell == RNN_RELU
    is_gru = cell == GRU
    BH = B * H
    gs = S * BH
    wh = w_hhT.reshape(-1)
    ta = starts[blk]
    rows = b1 - b0
    n = rows * H
    if cell == LSTM and blk > 0 and p0 == 0:  # carry the cell state over
        src = (starts[blk] - starts[blk - 1]) * BH + b0 * H
        for e in range(n):
            c_buf[b0 * H + e] = c_buf[src + e]
    for s in range(p0, p1):
        t = ta + s
        oz = s * BH + b0 * H
        ohp = t * BH + b0 * H
        oxh = ohp + BH
        for g in range(G):
            if is_gru and g == 2:
                tgt = extra
                otgt = oz
            else:
                tgt = gates
                otgt = oz + g * gs
            if blas_h:
                _blas_gemm(0, 0, rows, H, H, one, h_buf, ohp, H, wh, g * H * H, H, one, tgt,
                           otgt, H)
            else:
                _loop_gemm(h_buf[ohp:ohp + n].reshape((rows, H)), w_hhT, g * H, 0,
                           tgt[otgt:otgt + n].reshape((rows, H)), True)
        h_new = h_buf[oxh:oxh + n]
        if cell == LSTM:
            _lstm_forward_flat(gates[oz:oz + n], gates[oz + gs:oz + gs + n],
                               gates[oz + 2 * gs:oz + 2 * gs + n],
                               gates[oz + 3 * gs:oz + 3 * gs + n], c_buf[oz:oz + n],
                               c_buf[oz + BH:oz + BH + n], h_new, n)
        elif is_gru:
            _gru_forward_flat(gates[oz:oz + n], gates[oz + gs:oz + gs + n],
                              gates[oz + 2 * gs:oz + 2 * gs + n], extra[oz:oz + n],
                              h_buf[ohp:ohp + n], h_new, n, one)
        else:
            _rnn_forward_flat(gates[oz:oz + n], h_new, n, relu)


@njit(parallel=True, cache=True, error_model="numpy")
def _layer_forward(cell, T, B, F, H, S, P, x, h_buf, c_buf, w_ihT, w_hhT, bias, b_hn, gates,
                   extra, ones, starts, chunks, blas_h, augmented, one):
    """Forward of one layer over all T steps, in blocks of at most S steps.

    All arrays flat (C order); shapes in brackets.

    Parameters
    ----------
    cell : int
        Cell code.
    T, B, F, H, S : int
        Steps, batch rows, input columns (features, plus the column of ones if
        ``augmented``), hidden units, steps per block (the last block is the cached
        window).
    P : int
        Steps whose input side is computed at once (sized to stay in cache).
    x : [T, B, F]
        Time-major inputs (``augmented``: the last column is ones).
    h_buf : [T + 1, B, H]
        Block 0 holds h0 on entry; blocks 1..T are written with the hidden outputs.
    c_buf : [S + 1, B, H]
        LSTM: block 0 holds c0 on entry; on exit, the cell state before the last
        block (block 0) and the cell states of its steps. Unused otherwise.
    w_ihT : (G*F, H); w_hhT : (G*H, H) 2-D arrays
        Weights transposed gate by gate: ``w_ihT[g*F + p, j] = w_ih[g*H + j, p]``
        (BLAS multiplies non-transposed operands fastest at small sizes);
        ``augmented``: the last row of each gate's block is that gate's bias.
    bias : [G*H]
        ``b_ih + b_hh`` (GRU n block: ``b_in`` only). b_hn : [H] GRU ``b_hn``.
    gates : [G, S, B, H]
        Gate-major; written with the activated gates of the last block's steps.
    extra : [S, B, H]
        GRU: written with ``W_hn h_prev + b_hn`` of the last block's steps.
    ones : [S*B]
        Ones (bias broadcast as a rank-1 product).
    starts : int64 array
        First step of every block, then T.
    chunks : int64 array
        Chunk boundaries over the batch (each chunk >= 2 rows when B >= 2).
    blas_h : bool
        BLAS for the recurrent product (else fused loops).
    augmented : bool
        Inputs and input weights carry the bias (see SMALL_INPUT_FEATURES).
    one : scalar of the arrays' dtype
        1, typed (a bare literal would promote float32 to float64).

    Per P steps: first their input side ``x @ w_ih.T + bias`` as large products
    (parallel over fixed (gate, rows) items), then the recurrence (parallel over
    batch chunks, sequential in time): per step and chunk, one BLAS product
    ``h_prev @ w_hh.T`` per gate accumulated onto it, then one vectorised pass for
    the nonlinearities over the chunk's rows * H contiguous elements. The loop bodies
    are separate functions: the parallel function stays small (fast to compile).
    """
    G = 4 if cell == LSTM else (3 if cell == GRU else 1)
    n_blocks = starts.shape[0] - 1
    n_chunks = chunks.shape[0] - 1
    for blk in range(n_blocks):
        ta = starts[blk]
        n_steps = starts[blk + 1] - ta
        for p0 in range(0, n_steps, P):
            p1 = min(p0 + P, n_steps)
            n_sub = min(N_STEP_BLOCKS, max(1, (p1 - p0) * B // 8))
            n_items = (G + 1) * n_sub if cell == GRU else G * n_sub
            for item in prange(n_items):
                _forward_input_item(cell, item, n_sub, ta, p0, p1, B, F, H, S, x, w_ihT,
                                    bias, b_hn, gates, extra, ones, augmented, one)
            for c in prange(n_chunks):
                _forward_chunk(cell, chunks[c], chunks[c + 1], blk, starts, p0, p1, B, H, S,
                               h_buf, c_buf, w_hhT, gates, extra, blas_h, one)


@njit(cache=True, error_model="numpy")
def _backward_chunk(cell, b0, b1, T, B, H, K, gates, dzh_n, extra, h_buf, c_buf, dh_out,
                    w_hh, dh_rec, dh_dir, dc, blas_h, one):
    """BPTT over the K window steps for the batch rows b0..b1."""
    G = 4 if cell == LSTM else (3 if cell == GRU else 1)
    t0 = T - K
    gs = K * B * H
    relu = cell == RNN_RELU
    is_gru = cell == GRU
    w_hh2 = w_hh.reshape((G * H, H))
    rows = b1 - b0
    n = rows * H
    odr = b0 * H
    for s in range(K - 1, -1, -1):
        oz = (s * B + b0) * H
        d_out = dh_out[oz:oz + n]
        d_rec = dh_rec[odr:odr + n]
        if cell == LSTM:
            _lstm_backward_flat(gates[oz:oz + n], gates[oz + gs:oz + gs + n],
                                gates[oz + 2 * gs:oz + 2 * gs + n],
                                gates[oz + 3 * gs:oz + 3 * gs + n], d_out, d_rec,
                                dc[odr:odr + n], c_buf[oz + B * H:oz + B * H + n],
                                c_buf[oz:oz + n], n, one)
        elif is_gru:
            ohp = ((t0 + s) * B + b0) * H
            _gru_backward_flat(gates[oz:oz + n], gates[oz + gs:oz + gs + n],
                               gates[oz + 2 * gs:oz + 2 * gs + n], dzh_n[oz:oz + n],
                               extra[oz:oz + n], h_buf[ohp:ohp + n], d_out, d_rec,
                               dh_dir[odr:odr + n], n, one)
        else:
            _rnn_backward_flat(gates[oz:oz + n], d_out, d_rec, n, relu, one)
        # dh_rec = sum over gates of dZh_g @ W_hh_g
        for g in range(G):
            if is_gru and g == 2:
                src = dzh_n
                osrc = oz
            else:
                src = gates
                osrc = oz + g * gs
            if blas_h:
                _blas_gemm(0, 0, rows, H, H, one, src, osrc, H, w_hh, g * H * H, H,
                           one if g > 0 else one - one, dh_rec, odr, H)
            else:
                _loop_gemm(src[osrc:osrc + n].reshape((rows, H)), w_hh2, g * H, 0,
                           dh_rec[odr:odr + n].reshape((rows, H)), g > 0)


@njit(cache=True, error_model="numpy")
def _backward_item(cell, item, n_units, T, B, F, H, K, gates, dzh_n, h_buf, x, w_ih,
                   step_bounds, unit_bounds, dx, dw_ih, dw_hh, db_ih, db_hh, ones, one):
    """Weight gradients of one (gate, block of units) item, or the input gradient of
    one block of steps (items past G * n_units)."""
    G = 4 if cell == LSTM else (3 if cell == GRU else 1)
    t0 = T - K
    BH = B * H
    KB = K * B
    gs = KB * H
    zero = one - one
    n_w = G * n_units
    if item < n_w:
        g = item // n_units
        j0 = unit_bounds[item % n_units]
        j1 = unit_bounds[item % n_units + 1]
        nj = j1 - j0
        oz = g * gs + j0
        if cell == GRU and g == 2:
            srch = dzh_n
            ozh = j0
        else:
            srch = gates
            ozh = oz
        # one small product per step, accumulated in step order: the operands stay in
        # cache and BLAS's small-matrix kernels apply (2-8x faster here than one
        # product over K*B rows, which spends its time packing)
        for s in range(K):
            beta = one if s > 0 else zero
            _blas_gemm(1, 0, nj, F, B, one, gates, oz + s * BH, H, x, (t0 + s) * B * F, F,
                       beta, dw_ih, (g * H + j0) * F, F)
            _blas_gemm(1, 0, nj, H, B, one, srch, ozh + s * BH, H, h_buf, (t0 + s) * BH, H,
                       beta, dw_hh, (g * H + j0) * H, H)
        # bias gradients: column sums, as products with a vector of ones
        _blas_gemm(1, 0, nj, 1, KB, one, gates, oz, H, ones, 0, 1, zero, db_ih, g * H + j0, 1)
        _blas_gemm(1, 0, nj, 1, KB, one, srch, ozh, H, ones, 0, 1, zero, db_hh, g * H + j0, 1)
    else:
        q = item - n_w
        r0 = step_bounds[q] * B
        r1 = step_bounds[q + 1] * B
        for g in range(G):
            _blas_gemm(0, 0, r1 - r0, F, H, one, gates, g * gs + r0 * H, H, w_ih, g * H * F,
                       F, one if g > 0 else zero, dx, r0 * F, F)


@njit(parallel=True, cache=True, error_model="numpy")
def _layer_backward(cell, T, B, F, H, K, gates, dzh_n, extra, h_buf, c_buf, x, dh_out, w_ih,
                    w_hh, dh_rec, dh_dir, dc, chunks, step_bounds, unit_bounds, blas_h,
                    need_dx, dx, dw_ih, dw_hh, db_ih, db_hh, ones, one):
    """BPTT of one layer over its last K steps, then the weight and input gradients.

    All arrays flat (C order); shapes in brackets.

    Parameters
    ----------
    cell : int
    T, B, F, H, K : int
        Steps, batch rows, input features, hidden units, window steps (K >= 1).
    gates : [G, K, B, H]
        Activated gates from the forward; overwritten with the pre-activation
        gradients dZ (input side).
    dzh_n : [K, B, H]
        GRU: written with the recurrent-side dZ of the n gate (``dn_pre * r``).
    extra : [K, B, H]
        GRU: ``W_hn h_prev + b_hn`` from the forward.
    h_buf : [T + 1, B, H]
        Hidden states from the forward (block 0 = h0).
    c_buf : [K + 1, B, H]
        LSTM cell states from the forward (block 0 = state before the window).
    x : [T, B, F]
        The layer's inputs.
    dh_out : [K, B, H]
        Gradient of the loss with respect to the outputs of the window's steps.
    w_ih : [G*H, F]; w_hh : [G*H, H]
    dh_rec, dh_dir, dc : [B, H]
        In: zeros. Out: recurrent, direct (GRU) and cell (LSTM) gradients with respect
        to the state before the window: ``dh_start = dh_rec + dh_dir``, ``dc_start = dc``.
    chunks : int64 array
        Chunk boundaries over the batch.
    step_bounds, unit_bounds : int64 arrays
        Fixed blocks of steps (input gradient) and of hidden units (weight gradients),
        from the shapes only, never from the thread count.
    blas_h : bool
        BLAS for the per-step recurrent product.
    need_dx : bool
        Compute ``dx`` [K, B, F] (written).
    dw_ih, dw_hh, db_ih, db_hh : [G*H, F], [G*H, H], [G*H], [G*H]
        Written: the parameter gradients.
    ones : [K*B]
        Ones (the bias gradients are products with it).
    one : scalar of the arrays' dtype

    Two parallel loops: BPTT over batch chunks, then the weight gradients over fixed
    (gate, block of units) items and the input gradient over fixed blocks of steps;
    every element is then computed in an order fixed by the shapes.
    """
    G = 4 if cell == LSTM else (3 if cell == GRU else 1)
    n_chunks = chunks.shape[0] - 1
    for c in prange(n_chunks):
        _backward_chunk(cell, chunks[c], chunks[c + 1], T, B, H, K, gates, dzh_n, extra,
                        h_buf, c_buf, dh_out, w_hh, dh_rec, dh_dir, dc, blas_h, one)
    n_units = unit_bounds.shape[0] - 1
    n_items = G * n_units + (step_bounds.shape[0] - 1 if need_dx else 0)
    for item in prange(n_items):
        _backward_item(cell, item, n_units, T, B, F, H, K, gates, dzh_n, h_buf, x, w_ih,
                       step_bounds, unit_bounds, dx, dw_ih, dw_hh, db_ih, db_hh, ones, one)


# ----------------------------------------------------------------------------
# inference: the whole stack and the head, one parallel region for all batches
# ----------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _infer_chunk(cell, L, r0, rows, T, F, H, O, X, A, a_offsets, head_w, head_b, out, sb,
                 sc, z, xt, TB, blas_h, one):
    """Predictions for the batch rows r0..r0+rows: every layer, every step, the head.

    States are **unit-major** in the chunk's buffers (unit j of row r at ``j*n + r``,
    n = rows padded to a multiple of ROW_BLOCK, padding columns computed on zero
    inputs), so that a layer's pre-activations at a step are one product
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
    layer k at ``a_offsets[k]``, row-major (G'*H, Ka_k).
    """
    G = 4 if cell == LSTM else (3 if cell == GRU else 1)
    relu = cell == RNN_RELU
    n = (rows + ROW_BLOCK - 1) // ROW_BLOCK * ROW_BLOCK  # columns, padded (ROW_BLOCK)
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
            if cell == GRU:
                _chunk_product(2 * H, n, Ka, A, oa, Ka, s_cur, 0, z, 0, blas_h, one)
                _chunk_product(H, n, H + 1, A, oa + 2 * H * Ka, Ka, s_cur, 0, z, 2 * RH,
                               blas_h, one)
                _chunk_product(H, n, 1 + Fk, A, oa + 3 * H * Ka + H, Ka, s_cur, RH, z,
                               3 * RH, blas_h, one)
                _gru_infer_flat(z[0:RH], z[RH:2 * RH], z[3 * RH:4 * RH], z[2 * RH:3 * RH],
                                s_cur[0:RH], sb[k, nxt, 0:RH], RH, one)
            else:
                _chunk_product(G * H, n, Ka, A, oa, Ka, s_cur, 0, z, 0, blas_h, one)
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
def _chunk_product(m, n, k, A, oa, lda, S, os, Z, oz, blas_h, one):
    """``Z[oz:] (m, n) = A[oa:] (m, k; leading dimension lda) @ S[os:] (k, n)``."""
    if blas_h:
        _blas_gemm(0, 0, m, n, k, one, A, oa, lda, S, os, n, one - one, Z, oz, n)
    else:
        for i in range(m):
            o = oz + i * n
            for c in range(n):
                Z[o + c] = one - one
            for q in range(k):
                a = A[oa + i * lda + q]
                for c in range(n):
                    Z[o + c] += a * S[os + q * n + c]


@njit(parallel=True, cache=True, error_model="numpy")
def _stack_predict(cell, L, N, batch, n_chunks, T, F, H, O, X, A, a_offsets, head_w, head_b,
                   out, ws_b, ws_c, ws_z, ws_x, TB, blas_h, one):
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
    A, a_offsets : array, int64 array
        Every layer's product matrix (see :func:`_infer_chunk`), layer k from
        ``a_offsets[k]``.
    head_w : [O*H]; head_b : [O]
    out : [N, O]
        Written with the predictions.
    ws_b : (chunks, L, 2, Ka_max*R); ws_c : (chunks, L, 2, H*R); ws_z : (chunks, G'*H*R);
    ws_x : (chunks, TB*F*R)
        Work space of the chunks (R the most rows of a chunk, padded to ROW_BLOCK).
    TB : int
        Steps of inputs transposed at once.
    blas_h : bool
        BLAS for the products (else plain loops).
    one : scalar of the arrays' dtype

    One parallel loop over chunk numbers; a chunk runs all layers, all steps and the
    head for its rows, and each iteration runs its chunk of every batch.
    """
    # one parallel region for all batches: chunk c of every batch in turn (one barrier
    # in all, not one per batch); ws_* have a row per chunk of the most chunked batch
    for c in prange(ws_b.shape[0]):
        for start in range(0, N, batch):
            b = min(batch, N - start)
            per = _infer_chunk_rows(b, n_chunks)
            r0 = start + c * per
            if r0 < start + b:
                _infer_chunk(cell, L, r0, min(per, start + b - r0), T, F, H, O, X, A,
                             a_offsets, head_w, head_b, out, ws_b[c], ws_c[c], ws_z[c],
                             ws_x[c], TB, blas_h, one)


@njit(cache=True)
def _infer_chunk_rows(b, n_chunks):
    """Rows per chunk of a batch of b rows split into at most n_chunks chunks: a
    multiple of ROW_BLOCK (the last chunk takes the rest)."""
    per = (b + n_chunks - 1) // n_chunks
    return (per + ROW_BLOCK - 1) // ROW_BLOCK * ROW_BLOCK


# ----------------------------------------------------------------------------
# layer-level drivers (plain Python: buffers and dispatch)
# ----------------------------------------------------------------------------


class LayerCache:
    """What one layer's forward keeps for its backward (time-major arrays).

    ``gates`` (G, K, B, H): activated gates of the window's K steps, gate-major;
    ``extra`` (K, B, H): LSTM cell states / GRU ``W_hn h + b_hn`` of those steps;
    ``h_buf`` (T + 1, B, H): h0 and the hidden outputs; ``h_start``/``c_start``: the
    state before the window; ``t0 = T - K``; ``window = K``.
    """

    __slots__ = ("x", "h_buf", "h_out", "gates", "extra", "c_buf", "h_start", "c_start",
                 "c_last", "t0", "window")

    def __init__(self, x, h_buf, gates, extra, c_buf, c_last, t0):
        self.x = x
        self.h_buf = h_buf
        self.h_out = h_buf[1:]
        self.gates = gates
        self.extra = extra
        self.c_buf = c_buf
        self.h_start = h_buf[t0]
        self.c_start = c_buf[0] if c_buf is not None else None
        self.c_last = c_last
        self.t0 = t0
        self.window = gates.shape[1]

    @property
    def h0(self):
        return self.h_buf[0]


def _use_blas(use_blas, H):
    """BLAS for the per-step recurrent products?"""
    return H >= BLAS_MIN_HIDDEN if use_blas is None else bool(use_blas)


@functools.lru_cache(maxsize=8)
def _ones_cached(n, dtype):
    return np.ones(n, dtype=dtype)


def _ones(n, dtype):
    """A vector of ones (cached; the kernels only read it)."""
    return _ones_cached(int(n), np.dtype(dtype))


def _flat(a):
    return a.reshape(-1)


def _augment(x, w_ihT, bias, G):
    """``[x, 1]`` and, gate by gate, ``[w_ih.T; b]`` (see SMALL_INPUT_FEATURES).

    ``x`` (..., F) -> (..., F + 1); ``w_ihT`` (G*F, H) -> (G*(F + 1), H).
    """
    F = x.shape[-1]
    H = w_ihT.shape[1]
    x_aug = np.empty(x.shape[:-1] + (F + 1,), dtype=x.dtype)
    x_aug[..., :F] = x
    x_aug[..., F] = 1
    w_aug = np.empty((G, F + 1, H), dtype=w_ihT.dtype)
    w_aug[:, :F] = w_ihT.reshape(G, F, H)
    w_aug[:, F] = bias.reshape(G, H)
    return x_aug, w_aug.reshape(G * (F + 1), H)


def layer_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, window=None, n_chunks=1,
                  use_blas=None, keep=True):
    """Forward pass of one recurrent layer.

    Parameters
    ----------
    cell : int
        Cell code.
    x : (T, B, F) C-contiguous array
        Time-major inputs, float32 or float64 (the dtype of everything).
    h0, c0 : (B, H) arrays
        Initial hidden and cell state (``c0`` is ignored except for LSTM).
    w_ih, w_hh, b_ih, b_hh : arrays
        Layer parameters in PyTorch's layout.
    window : int or None
        Truncation window K: gate caches are kept for the last K steps only.
        ``None`` keeps all T steps (full BPTT).
    n_chunks : int
        Number of batch chunks processed in parallel.
    use_blas : bool or None
        Per-step BLAS products; ``None`` decides from the sizes.
    keep : bool
        Keep the cache for a backward pass; ``False`` for inference.

    Returns
    -------
    h_out : (T, B, H) array
        Hidden states of every step (a view of the cache's ``h_buf[1:]``).
    cache : LayerCache or None
    """
    T, B, F = x.shape
    GH, H = w_hh.shape
    G = GH // H
    dtype = x.dtype
    x = np.ascontiguousarray(x)
    blas_h = _use_blas(use_blas, H)
    # P steps of input side at a time (their gates fit in INPUT_BLOCK_BYTES); blocks of
    # K steps ending at T, the last one kept for the backward (inference: K = P)
    P = max(1, min(T, INPUT_BLOCK_BYTES // (GH * B * dtype.itemsize)))
    K = P if not keep else (T if window is None else max(1, min(int(window), T)))
    starts = window_starts(T, K)
    chunks = chunk_bounds(B, n_chunks)
    # transposed gate by gate: (G * inputs, H)
    w_ihT = np.ascontiguousarray(
        np.asarray(w_ih, dtype=dtype).reshape(G, H, F).transpose(0, 2, 1)).reshape(G * F, H)
    w_hhT = np.ascontiguousarray(
        np.asarray(w_hh, dtype=dtype).reshape(G, H, H).transpose(0, 2, 1)).reshape(G * H, H)
    bias = np.asarray(b_ih + b_hh, dtype=dtype)
    if cell == GRU:
        bias[2 * H:] = b_ih[2 * H:]
        b_hn = np.ascontiguousarray(b_hh[2 * H:], dtype=dtype)
        extra = np.empty((K, B, H), dtype=dtype)
    else:
        b_hn = bias[:1]
        extra = np.empty((1, 1, 1), dtype=dtype)
    augmented = F <= SMALL_INPUT_FEATURES
    x_in, F_in = x, F
    if augmented:
        x_in, w_ihT = _augment(x, w_ihT, bias, G)
        F_in = F + 1
    h_buf = np.empty((T + 1, B, H), dtype=dtype)
    h_buf[0] = h0
    if cell == LSTM:
        c_buf = np.empty((K + 1, B, H), dtype=dtype)
        c_buf[0] = c0
    else:
        c_buf = np.empty((1, 1, 1), dtype=dtype)
    gates = np.empty((G, K, B, H), dtype=dtype)
    with kernel_context():
        _layer_forward(cell, T, B, F_in, H, K, P, _flat(x_in), _flat(h_buf), _flat(c_buf),
                       w_ihT, w_hhT, bias, b_hn, _flat(gates), _flat(extra),
                       _ones(K * B, dtype), starts, chunks, blas_h, augmented, dtype.type(1))
    h_out = h_buf[1:]
    if not keep:
        return h_out, None
    if cell == LSTM:
        cache = LayerCache(x, h_buf, gates, c_buf[1:], c_buf, c_buf[K], T - K)
    else:
        cache = LayerCache(x, h_buf, gates, extra, None, None, T - K)
    return h_out, cache


def layer_backward(cell, cache, dh_out, w_ih, w_hh, n_chunks=1, use_blas=None,
                   need_dx=True):
    """Backpropagation through time for one layer over its cached window.

    Parameters
    ----------
    cell : int
    cache : LayerCache
        From :func:`layer_forward` with ``keep=True``; its gate buffer is
        overwritten (a cache serves one backward).
    dh_out : (K, B, H) array
        Gradient of the loss with respect to the layer's outputs at the window's
        K steps (the last K of T).
    w_ih, w_hh : arrays
        The layer's weights.
    n_chunks : int
    use_blas : bool or None
    need_dx : bool
        ``False`` skips the input gradient (returned as None), e.g. for the first layer.

    Returns
    -------
    dx : (K, B, F) array or None
        Gradient with respect to the inputs of the window's steps.
    dw_ih, dw_hh, db_ih, db_hh : arrays
        Parameter gradients, shaped as the parameters.
    dh_start, dc_start : (B, H) arrays
        Gradient with respect to the state before the window (``h0``/``c0`` when
        the window covers the whole sequence).
    """
    gates = cache.gates
    G, K, B, H = gates.shape
    GH = G * H
    x = cache.x
    T, _, F = x.shape
    dtype = gates.dtype
    blas_h = _use_blas(use_blas, H)
    chunks = chunk_bounds(B, n_chunks)
    step_bounds = step_blocks(K)
    unit_bounds = unit_blocks(G, H)
    dh_out = np.ascontiguousarray(dh_out, dtype=dtype)
    dh_rec = np.zeros((B, H), dtype=dtype)
    dh_dir = np.zeros((B, H), dtype=dtype)
    dc = np.zeros((B, H), dtype=dtype)
    if cell == GRU:
        dzh_n = np.empty((K, B, H), dtype=dtype)
        extra = cache.extra
    else:
        dzh_n = np.empty(1, dtype=dtype)
        extra = dzh_n
    c_buf = cache.c_buf if cell == LSTM else np.empty(1, dtype=dtype)
    dx = np.empty((K, B, F) if need_dx else (1, 1, 1), dtype=dtype)
    dw_ih = np.empty((GH, F), dtype=dtype)
    dw_hh = np.empty((GH, H), dtype=dtype)
    db_ih = np.empty(GH, dtype=dtype)
    db_hh = np.empty(GH, dtype=dtype)
    w_ih = np.ascontiguousarray(w_ih, dtype=dtype)
    w_hh = np.ascontiguousarray(w_hh, dtype=dtype)
    with kernel_context():
        _layer_backward(cell, T, B, F, H, K, _flat(gates), _flat(dzh_n), _flat(extra),
                        _flat(cache.h_buf), _flat(c_buf), _flat(x), _flat(dh_out),
                        _flat(w_ih), _flat(w_hh), _flat(dh_rec), _flat(dh_dir), _flat(dc),
                        chunks, step_bounds, unit_bounds, blas_h, need_dx, _flat(dx),
                        _flat(dw_ih), _flat(dw_hh), db_ih, db_hh, _ones(K * B, dtype),
                        dtype.type(1))
    dh_start = dh_rec + dh_dir if cell == GRU else dh_rec
    return (dx if need_dx else None), dw_ih, dw_hh, db_ih, db_hh, dh_start, dc


def _product_matrix(cell, w_ih, w_hh, b_ih, b_hh, dtype):
    """A layer's ``A = [w_hh, b, w_ih]`` of :func:`_infer_chunk`, (G'*H, H + 1 + F).

    LSTM, RNN: ``b = b_ih + b_hh``. GRU: four blocks of H rows, r and z as above,
    then n_h = [w_hn, b_hn, 0] and n_x = [0, b_in, w_in].
    """
    GH, H = w_hh.shape
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


def stack_predict(cell, X, layers, head_w, head_b, batch_size, n_chunks=1, use_blas=None):
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

    Returns
    -------
    (N, O) array

    Results do not depend on ``n_chunks``, the thread count or ``batch_size``. They
    equal :func:`layer_forward`'s up to rounding: bias, input side and recurrent side
    are summed in one product here (see :func:`_infer_chunk`). One kernel call for all
    batches, one parallel region (see :func:`_stack_predict`).
    """
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
    mats = [_product_matrix(cell, *layer, dtype) for layer in layers]
    a_offsets = np.cumsum([0] + [m.size for m in mats[:-1]]).astype(np.int64)
    A = np.concatenate([m.reshape(-1) for m in mats])
    Ka = H + 1 + max(F, H if L > 1 else 0)
    ws_b = np.empty((slots, L, 2, Ka * R), dtype=dtype)
    ws_c = np.empty((slots, L, 2, H * R if cell == LSTM else 1), dtype=dtype)
    ws_z = np.empty((slots, Gz * H * R), dtype=dtype)
    TB = max(1, min(T, INPUT_BLOCK_BYTES // 16 // (F * R * dtype.itemsize)))
    ws_x = np.empty((slots, TB * F * R), dtype=dtype)
    with kernel_context():
        _stack_predict(cell, L, N, batch, n_chunks, T, F, H, O, _flat(X), A, a_offsets,
                       _flat(np.ascontiguousarray(head_w, dtype=dtype)),
                       np.ascontiguousarray(head_b, dtype=dtype), _flat(out), ws_b, ws_c,
                       ws_z, ws_x, TB, _use_blas(use_blas, H), dtype.type(1))
    return out
