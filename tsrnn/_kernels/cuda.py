"""CUDA kernels (``numba.cuda``): forward and BPTT of RNN, LSTM and GRU layers, the
linear head, the loss, L2, gradient-norm clipping and the optimiser updates, plus
the host-side launchers that drive them.

Numerics only, same contract as :mod:`tsrnn._kernels.cpu` and
:mod:`tsrnn._kernels.optim`: PyTorch's gate order and weight layout, time-major
sequences ``(T, B, ...)`` inside, the truncation window K of BPTT, the same loss,
L2 and optimiser equations. This is the only module of tsrnn that imports
``numba.cuda``; it works with numba's built-in CUDA target and with NVIDIA's
``numba-cuda`` package (which takes over the ``numba.cuda`` name when installed).

Letters: B batch, T time steps, F input features, H hidden units, G gates (1 rnn,
4 lstm: i f g o, 3 gru: r z n), O outputs, K truncation window, P parameters.

Design
------
*Everything stays on the device.* Weights (one flat vector with the layout of
:class:`tsrnn.network.ParameterLayout`), the flat gradient, the optimiser state
and the training data are copied to the GPU once; an epoch sends only the batch
indices and brings back only one loss per batch (and two status words). The host
loop launches one kernel after another on the default stream; nothing synchronises
inside an epoch.

*Recurrence: one fused kernel per time step.* ``_recurrent_forward_step_cuda``
computes ``h_prev @ w_hh.T`` for a tile of ``TILE`` batch rows by ``TILE`` hidden
units, with ``h_prev`` and the G gate rows of ``w_hh`` staged through shared
memory, so each thread holds the G pre-activations of one (b, j) and applies the
cell (gate nonlinearities, LSTM cell update, GRU reset gate) in registers: no
intermediate ``(B, G*H)`` product is written to global memory. Backward is the
mirror image: ``_recurrent_backward_step_cuda`` computes the recurrent gradient
``dZ_{t+1} @ w_hh`` as a tiled product and fuses it with the gate derivatives of
step t for the same (b, k).

*Input-side work as large GEMMs.* The input projection ``x @ w_ih.T + b_ih`` of a
block of time steps (all K steps of the BPTT window at once) is one tiled GEMM
(``_gemm_nt_cuda``); after BPTT the weight gradients ``dZ.T @ x`` and
``dZ.T @ h_prev`` over all ``K*B`` rows are tiled GEMMs split along the rows
(``_gemm_tn_partial_cuda``: each split writes its own partial product), and the
partials are summed in a fixed order by ``_reduce_splits_cuda``; bias gradients are
column sums done the same way. The input gradient for the layer below,
``dZ @ w_ih``, is ``_gemm_nn_cuda``.

*Deterministic reductions.* No float atomics anywhere: the loss, L2 penalty and
gradient norm are per-block partial sums (a shared-memory tree inside the block),
reduced by a one-block second kernel in a fixed order. Split counts depend only on
shapes and the module constants, so two runs give identical bits.

*Any launch covers any shape.* Tiled kernels loop over their tiles with a stride
of the grid size, element-wise kernels are grid-stride loops, and every load and
store is bounds-checked. Launchers cap the grid at ``MAX_BLOCKS``; the tests shrink
``TILE``, ``THREADS``, ``REDUCE_THREADS``, ``MAX_BLOCKS`` and ``SPLIT_ROWS`` so
that multi-tile, multi-block and multi-split paths run on tiny shapes. Every
``cuda.syncthreads()`` sits in code that all threads of a block reach (loop bounds
depend only on the block, never on the thread).

*Truncated BPTT.* As on the CPU, the forward runs over blocks of K steps ending at
T (the first block holds the remainder), reusing one ``(K, B, G*H)`` gate buffer,
so memory grows with K, not T; the backward covers the last K steps.

*Compilable without a GPU.* Kernels call no device functions and no ``min``/``max``
builtins (the sigmoid is written out where it is used): numba compiles those
through the current device, so ``compile_ptx`` would need a GPU for them.

*Precision.* Kernels compute in the dtype of the data (float32 or float64);
reductions of scalars (loss, norms) accumulate in float64, and the optimiser
updates use float64 arithmetic on the stored values, as :mod:`optim` does.

Dropout is not implemented on the GPU.

Signatures
----------
:data:`SIGNATURES` lists the explicit float32 and float64 signature of every kernel,
so that tests can compile each one with ``cuda.compile_ptx`` without a GPU. The
kernels themselves are compiled lazily on first launch (``cache=True``).
"""

import math

import numpy as np
from numba import cuda, float32, float64, int64, uint8

from tsrnn._kernels.cpu import GRU, LSTM, RNN_RELU, RNN_TANH  # noqa: F401  (one set of cell codes)

SQUARED_ERROR = 0
ABSOLUTE_ERROR = 1
HUBER = 2
LOSS_CODES = {"squared_error": SQUARED_ERROR, "absolute_error": ABSOLUTE_ERROR, "huber": HUBER}
HUBER_DELTA = 1.0
HALF_HUBER_DELTA = 0.5 * HUBER_DELTA

SUM_SQUARES = 0
COUNT_NONFINITE = 1

#: Edge of the square thread blocks and shared-memory tiles of the GEMM and
#: recurrent-step kernels (blocks of TILE x TILE threads).
TILE = 16
#: Largest gate count G (LSTM); the recurrent shared tile holds this many gates.
MAX_GATES = 4
#: Threads per block of the element-wise kernels.
THREADS = 256
#: Threads per block of the reduction kernels; a power of two.
REDUCE_THREADS = 256
#: Upper bound on the blocks of one launch (grid-stride loops do the rest).
MAX_BLOCKS = 1024
#: Rows per split of the split-K weight-gradient GEMMs and column sums.
SPLIT_ROWS = 1024
#: Time steps per block of the inference forward (bounds the gate buffer).
PREDICT_BLOCK_STEPS = 16


# ----------------------------------------------------------------------------
# data movement
# ----------------------------------------------------------------------------


@cuda.jit(cache=True)
def _gather_time_major_cuda(X, idx, out):
    """out[t, b, f] = X[idx[b], t, f].

    X : (N, T, F) batch-first training data; idx : (B,) int64 rows;
    out : (T, B, F) written. All C-contiguous.
    """
    N, T, F = X.shape
    B = idx.shape[0]
    n = T * B * F
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        t = i // (B * F)
        rem = i - t * (B * F)
        b = rem // F
        f = rem - b * F
        out[t, b, f] = X[idx[b], t, f]


@cuda.jit(cache=True)
def _gather_rows_cuda(Y, idx, out):
    """out[b, o] = Y[idx[b], o]; Y : (N, O), idx : (B,), out : (B, O) written."""
    B, O = out.shape
    n = B * O
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        b = i // O
        o = i - b * O
        out[b, o] = Y[idx[b], o]


@cuda.jit(cache=True)
def _fill_cuda(x, value):
    """x[:] = value (1-D)."""
    v = x.dtype.type(value)
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        x[i] = v


# ----------------------------------------------------------------------------
# tiled matrix products
# ----------------------------------------------------------------------------


@cuda.jit(cache=True)
def _gemm_nt_cuda(A, Bm, bias, use_bias, C):
    """C = A @ Bm.T (+ bias): A (M, K), Bm (N, K), bias (N,), C (M, N) written.

    Forward input projection (``x @ w_ih.T + b_ih``) and the head. Blocks of
    TILE x TILE threads; thread (ty, tx) of a tile computes C[m0 + ty, n0 + tx].
    """
    sA = cuda.shared.array((TILE, TILE), A.dtype)
    sB = cuda.shared.array((TILE, TILE), A.dtype)
    M, K = A.shape
    N = C.shape[1]
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    zero = A.dtype.type(0.0)
    tiles_n = (N + TILE - 1) // TILE
    n_tiles = ((M + TILE - 1) // TILE) * tiles_n
    for tile in range(cuda.blockIdx.x, n_tiles, cuda.gridDim.x):
        m0 = (tile // tiles_n) * TILE
        n0 = (tile % tiles_n) * TILE
        m = m0 + ty
        n = n0 + tx
        acc = zero
        for k0 in range(0, K, TILE):
            k = k0 + tx
            if m < M and k < K:
                sA[ty, tx] = A[m, k]
            else:
                sA[ty, tx] = zero
            # row n0 + ty of Bm, stored transposed: sB[k, n]
            if n0 + ty < N and k < K:
                sB[tx, ty] = Bm[n0 + ty, k]
            else:
                sB[tx, ty] = zero
            cuda.syncthreads()
            for q in range(TILE):
                acc += sA[ty, q] * sB[q, tx]
            cuda.syncthreads()
        if m < M and n < N:
            if use_bias != 0:
                acc += bias[n]
            C[m, n] = acc


@cuda.jit(cache=True)
def _gemm_nn_cuda(A, Bm, C):
    """C = A @ Bm: A (M, K), Bm (K, N), C (M, N) written.

    Input gradient of a layer (``dZ @ w_ih``) and of the head (``dpred @ head.weight``).
    """
    sA = cuda.shared.array((TILE, TILE), A.dtype)
    sB = cuda.shared.array((TILE, TILE), A.dtype)
    M, K = A.shape
    N = C.shape[1]
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    zero = A.dtype.type(0.0)
    tiles_n = (N + TILE - 1) // TILE
    n_tiles = ((M + TILE - 1) // TILE) * tiles_n
    for tile in range(cuda.blockIdx.x, n_tiles, cuda.gridDim.x):
        m0 = (tile // tiles_n) * TILE
        n0 = (tile % tiles_n) * TILE
        m = m0 + ty
        n = n0 + tx
        acc = zero
        for k0 in range(0, K, TILE):
            k = k0 + tx
            if m < M and k < K:
                sA[ty, tx] = A[m, k]
            else:
                sA[ty, tx] = zero
            kr = k0 + ty
            if kr < K and n < N:
                sB[ty, tx] = Bm[kr, n]
            else:
                sB[ty, tx] = zero
            cuda.syncthreads()
            for q in range(TILE):
                acc += sA[ty, q] * sB[q, tx]
            cuda.syncthreads()
        if m < M and n < N:
            C[m, n] = acc


@cuda.jit(cache=True)
def _gemm_tn_partial_cuda(A, Bm, rows_per_split, partial):
    """Split-K ``A.T @ Bm``: partial[s] = A[rows_s].T @ Bm[rows_s].

    A (R, M), Bm (R, N), partial (S, M, N) written, S = ceil(R / rows_per_split)
    (at least 1). Weight gradients ``dZ.T @ x`` and ``dZ.T @ h_prev``; the splits
    are summed by :func:`_reduce_splits_cuda` in a fixed order.
    """
    sA = cuda.shared.array((TILE, TILE), A.dtype)
    sB = cuda.shared.array((TILE, TILE), A.dtype)
    R, M = A.shape
    N = Bm.shape[1]
    S = partial.shape[0]
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    zero = A.dtype.type(0.0)
    tiles_n = (N + TILE - 1) // TILE
    tiles_mn = ((M + TILE - 1) // TILE) * tiles_n
    n_tiles = S * tiles_mn
    for tile in range(cuda.blockIdx.x, n_tiles, cuda.gridDim.x):
        s = tile // tiles_mn
        rem = tile - s * tiles_mn
        m0 = (rem // tiles_n) * TILE
        n0 = (rem % tiles_n) * TILE
        r_begin = s * rows_per_split
        r_end = r_begin + rows_per_split
        if r_end > R:  # no min(): it needs a GPU to compile (see module notes)
            r_end = R
        m = m0 + ty
        n = n0 + tx
        acc = zero
        for r0 in range(r_begin, r_end, TILE):
            r = r0 + ty
            if r < r_end and m0 + tx < M:
                sA[ty, tx] = A[r, m0 + tx]
            else:
                sA[ty, tx] = zero
            if r < r_end and n < N:
                sB[ty, tx] = Bm[r, n]
            else:
                sB[ty, tx] = zero
            cuda.syncthreads()
            for q in range(TILE):
                acc += sA[q, ty] * sB[q, tx]
            cuda.syncthreads()
        if m < M and n < N:
            partial[s, m, n] = acc


@cuda.jit(cache=True)
def _colsum_partial_cuda(A, rows_per_split, partial):
    """Split column sums: partial[s, m, 0] = sum of A[rows_s, m].

    A (R, M), partial (S, M, 1) written. Bias gradients.
    """
    R, M = A.shape
    S = partial.shape[0]
    zero = A.dtype.type(0.0)
    for i in range(cuda.grid(1), S * M, cuda.gridsize(1)):
        s = i // M
        m = i - s * M
        r_end = (s + 1) * rows_per_split
        if r_end > R:
            r_end = R
        acc = zero
        for r in range(s * rows_per_split, r_end):
            acc += A[r, m]
        partial[s, m, 0] = acc


@cuda.jit(cache=True)
def _reduce_splits_cuda(partial, out):
    """out[m, n] = sum over s (in order) of partial[s, m, n]; partial (S, M, N)."""
    S = partial.shape[0]
    M, N = out.shape
    for i in range(cuda.grid(1), M * N, cuda.gridsize(1)):
        m = i // N
        n = i - m * N
        acc = partial[0, m, n]
        for s in range(1, S):
            acc += partial[s, m, n]
        out[m, n] = acc


# ----------------------------------------------------------------------------
# recurrent steps
# ----------------------------------------------------------------------------


@cuda.jit(cache=True)
def _recurrent_forward_step_cuda(cell, gates, h_prev, c_prev, w_hh, b_hh, h_new, extra):
    """One time step of one layer: ``h_prev @ w_hh.T + b_hh`` fused with the cell.

    Parameters
    ----------
    cell : int64
        Cell code (RNN_TANH, RNN_RELU, LSTM, GRU).
    gates : (B, G*H)
        In: input projection ``x_t @ w_ih.T + b_ih``. Out: activated gates
        (rnn: h; lstm: i, f, g, o; gru: r, z, n), kept for BPTT.
    h_prev : (B, H)
        Hidden state before the step.
    c_prev : (B, H)
        LSTM cell state before the step (unused otherwise).
    w_hh : (G*H, H), b_hh : (G*H,)
    h_new : (B, H)
        Written: hidden state after the step.
    extra : (B, H)
        Written: lstm c_t; gru ``w_hn @ h_prev + b_hn``. Unused for rnn.

    Thread (ty, tx) of a tile owns (b, j) = (b0 + ty, j0 + tx) and accumulates its G
    gate pre-activations; the shared tiles hold h_prev[b0:b0+TILE, k0:k0+TILE] and,
    transposed, w_hh[g*H + j0 : g*H + j0 + TILE, k0:k0+TILE] for each gate g.
    """
    sH = cuda.shared.array((TILE, TILE), gates.dtype)
    sW = cuda.shared.array((MAX_GATES, TILE, TILE), gates.dtype)
    B, H = h_prev.shape
    G = w_hh.shape[0] // H
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    zero = gates.dtype.type(0.0)
    one = gates.dtype.type(1.0)
    tiles_j = (H + TILE - 1) // TILE
    n_tiles = ((B + TILE - 1) // TILE) * tiles_j
    for tile in range(cuda.blockIdx.x, n_tiles, cuda.gridDim.x):
        b0 = (tile // tiles_j) * TILE
        j0 = (tile % tiles_j) * TILE
        b = b0 + ty
        j = j0 + tx
        inside = b < B and j < H
        # start from the bias, then add products in k order (as the CPU kernel)
        acc0 = zero
        acc1 = zero
        acc2 = zero
        acc3 = zero
        if inside:
            acc0 = b_hh[j]
            if G > 1:
                acc1 = b_hh[H + j]
                acc2 = b_hh[2 * H + j]
            if G > 3:
                acc3 = b_hh[3 * H + j]
        for k0 in range(0, H, TILE):
            k = k0 + tx
            if b < B and k < H:
                sH[ty, tx] = h_prev[b, k]
            else:
                sH[ty, tx] = zero
            jr = j0 + ty
            for g in range(G):
                if jr < H and k < H:
                    sW[g, tx, ty] = w_hh[g * H + jr, k]
                else:
                    sW[g, tx, ty] = zero
            cuda.syncthreads()
            for q in range(TILE):
                hv = sH[ty, q]
                acc0 += hv * sW[0, q, tx]
                if G > 1:
                    acc1 += hv * sW[1, q, tx]
                    acc2 += hv * sW[2, q, tx]
                if G > 3:
                    acc3 += hv * sW[3, q, tx]
            cuda.syncthreads()
        if inside:
            # sigmoid(v) as cpu._sigmoid: 1 / (1 + e^-v) for v >= 0, e^v / (1 + e^v)
            # otherwise, so exp never overflows (written out: compile_ptx cannot
            # compile calls to device functions without a GPU)
            if cell == LSTM:
                v = gates[b, j] + acc0
                e = math.exp(-abs(v))
                gi = one / (one + e) if v >= zero else e / (one + e)
                v = gates[b, H + j] + acc1
                e = math.exp(-abs(v))
                gf = one / (one + e) if v >= zero else e / (one + e)
                gg = math.tanh(gates[b, 2 * H + j] + acc2)
                v = gates[b, 3 * H + j] + acc3
                e = math.exp(-abs(v))
                go = one / (one + e) if v >= zero else e / (one + e)
                cc = gf * c_prev[b, j] + gi * gg
                extra[b, j] = cc
                gates[b, j] = gi
                gates[b, H + j] = gf
                gates[b, 2 * H + j] = gg
                gates[b, 3 * H + j] = go
                h_new[b, j] = go * math.tanh(cc)
            elif cell == GRU:
                v = gates[b, j] + acc0
                e = math.exp(-abs(v))
                gr = one / (one + e) if v >= zero else e / (one + e)
                v = gates[b, H + j] + acc1
                e = math.exp(-abs(v))
                gz = one / (one + e) if v >= zero else e / (one + e)
                gn = math.tanh(gates[b, 2 * H + j] + gr * acc2)
                extra[b, j] = acc2
                gates[b, j] = gr
                gates[b, H + j] = gz
                gates[b, 2 * H + j] = gn
                h_new[b, j] = (one - gz) * gn + gz * h_prev[b, j]
            elif cell == RNN_RELU:
                v = gates[b, j] + acc0
                if v < zero:
                    v = v - v
                gates[b, j] = v
                h_new[b, j] = v
            else:
                v = math.tanh(gates[b, j] + acc0)
                gates[b, j] = v
                h_new[b, j] = v


@cuda.jit(cache=True)
def _recurrent_backward_step_cuda(cell, has_next, gates, dzh, dzh_next, extra, c_prev,
                                  h_prev, w_hh, dh_out, dh_carry, dc_carry):
    """One BPTT step: ``dZ_{t+1} @ w_hh`` fused with the gate derivatives of step t.

    Parameters
    ----------
    cell : int64
    has_next : int64
        0 for the last step of the window (no gradient from later steps): the
        carries are then read as zeros and the product is skipped.
    gates : (B, G*H)
        In: activated gates of step t. Out: input-side pre-activation gradient dZ_t.
    dzh : (B, G*H)
        GRU only, written: recurrent-side gradient of step t (r, z as dZ; n block
        ``dn_pre * r``). For other cells pass ``gates``; it is not written.
    dzh_next : (B, G*H)
        Recurrent-side gradient of step t + 1 (``gates`` of t + 1 for rnn/lstm,
        ``dzh`` of t + 1 for gru). Read only when ``has_next``.
    extra : (B, H)
        Forward extra of step t (lstm c_t, gru hn).
    c_prev : (B, H)
        LSTM cell state before step t.
    h_prev : (B, H)
        Hidden state before step t (GRU).
    w_hh : (G*H, H)
    dh_out : (B, H)
        Gradient of the loss with respect to the step's output.
    dh_carry : (B, H)
        GRU: in ``dh_{t+1} * z_{t+1}``, out ``dh_t * z_t``. Unused otherwise.
    dc_carry : (B, H)
        LSTM: in dc from step t + 1, out ``dc_t * f_t``. Unused otherwise.
    """
    sD = cuda.shared.array((TILE, TILE), gates.dtype)
    sW = cuda.shared.array((TILE, TILE), gates.dtype)
    B, H = h_prev.shape
    GH = w_hh.shape[0]
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    zero = gates.dtype.type(0.0)
    one = gates.dtype.type(1.0)
    n_inner = GH if has_next != 0 else 0
    tiles_k = (H + TILE - 1) // TILE
    n_tiles = ((B + TILE - 1) // TILE) * tiles_k
    for tile in range(cuda.blockIdx.x, n_tiles, cuda.gridDim.x):
        b0 = (tile // tiles_k) * TILE
        k0 = (tile % tiles_k) * TILE
        b = b0 + ty
        k = k0 + tx
        inside = b < B and k < H
        acc = zero
        if inside and has_next != 0 and cell == GRU:
            acc = dh_carry[b, k]
        for j0 in range(0, n_inner, TILE):
            jc = j0 + tx
            if b < B and jc < GH:
                sD[ty, tx] = dzh_next[b, jc]
            else:
                sD[ty, tx] = zero
            jr = j0 + ty
            if jr < GH and k < H:
                sW[ty, tx] = w_hh[jr, k]
            else:
                sW[ty, tx] = zero
            cuda.syncthreads()
            for q in range(TILE):
                acc += sD[ty, q] * sW[q, tx]
            cuda.syncthreads()
        if inside:
            dh = dh_out[b, k] + acc
            if cell == LSTM:
                gi = gates[b, k]
                gf = gates[b, H + k]
                gg = gates[b, 2 * H + k]
                go = gates[b, 3 * H + k]
                tc = math.tanh(extra[b, k])
                dc = dh * go * (one - tc * tc)
                if has_next != 0:
                    dc = dc_carry[b, k] + dc
                gates[b, k] = dc * gg * gi * (one - gi)
                gates[b, H + k] = dc * c_prev[b, k] * gf * (one - gf)
                gates[b, 2 * H + k] = dc * gi * (one - gg * gg)
                gates[b, 3 * H + k] = dh * tc * go * (one - go)
                dc_carry[b, k] = dc * gf
            elif cell == GRU:
                gr = gates[b, k]
                gz = gates[b, H + k]
                gn = gates[b, 2 * H + k]
                dn_pre = dh * (one - gz) * (one - gn * gn)
                dr = dn_pre * extra[b, k] * gr * (one - gr)
                dzz = dh * (h_prev[b, k] - gn) * gz * (one - gz)
                gates[b, k] = dr
                gates[b, H + k] = dzz
                gates[b, 2 * H + k] = dn_pre
                dzh[b, k] = dr
                dzh[b, H + k] = dzz
                dzh[b, 2 * H + k] = dn_pre * gr
                dh_carry[b, k] = dh * gz
            elif cell == RNN_RELU:
                if gates[b, k] > zero:
                    gates[b, k] = dh
                else:
                    gates[b, k] = dh - dh
            else:
                hv = gates[b, k]
                gates[b, k] = dh * (one - hv * hv)


# ----------------------------------------------------------------------------
# loss, reductions, clipping
# ----------------------------------------------------------------------------


@cuda.jit(cache=True)
def _loss_grad_cuda(loss_code, pred, y, dpred, partial):
    """Per-element loss and its gradient with respect to ``pred``.

    pred, y : (B, O); dpred : (B, O) written with ``dloss / dpred`` of the *mean*
    loss (as :func:`tsrnn.network.loss_value_and_grad`); partial : (n_blocks,)
    float64, written with each block's sum of element losses.
    """
    rsum = cuda.shared.array(REDUCE_THREADS, float64)
    Bn, O = pred.shape
    n = Bn * O
    nf = pred.dtype.type(n)
    one = pred.dtype.type(1.0)
    zero = pred.dtype.type(0.0)
    delta = pred.dtype.type(HUBER_DELTA)
    tid = cuda.threadIdx.x
    acc = 0.0
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        b = i // O
        o = i - b * O
        d = pred[b, o] - y[b, o]
        if d > zero:
            sign = one
        elif d < zero:
            sign = -one
        else:
            sign = d - d  # 0, or NaN for NaN (np.sign)
        if loss_code == SQUARED_ERROR:
            value = 0.5 * float64(d) * float64(d)
            g = d
        elif loss_code == ABSOLUTE_ERROR:
            value = abs(float64(d))
            g = sign
        else:
            a = abs(d)
            if a <= delta:
                value = 0.5 * float64(d) * float64(d)
                g = d
            else:
                value = HUBER_DELTA * (float64(a) - HALF_HUBER_DELTA)
                g = delta * sign
        dpred[b, o] = g / nf
        acc += value
    rsum[tid] = acc
    cuda.syncthreads()
    step = REDUCE_THREADS // 2
    while step > 0:
        if tid < step:
            rsum[tid] += rsum[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        partial[cuda.blockIdx.x] = rsum[0]


@cuda.jit(cache=True)
def _sum_partial_cuda(x, mode, partial):
    """Per-block float64 sums over a 1-D array: of squares (mode SUM_SQUARES) or a
    count of non-finite values (mode COUNT_NONFINITE); partial : (n_blocks,) written.
    """
    rsum = cuda.shared.array(REDUCE_THREADS, float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = float64(x[i])
        if mode == SUM_SQUARES:
            acc += v * v
        elif not math.isfinite(v):
            acc += 1.0
    rsum[tid] = acc
    cuda.syncthreads()
    step = REDUCE_THREADS // 2
    while step > 0:
        if tid < step:
            rsum[tid] += rsum[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        partial[cuda.blockIdx.x] = rsum[0]


@cuda.jit(cache=True)
def _l2_penalty_cuda(params, mask, coef, grad, partial):
    """L2 on the weights: ``grad += coef * params`` where ``mask``; partial : per-block
    float64 sums of ``params**2`` over the mask (the penalty's value).

    params, grad : (P,); mask : (P,) uint8 (1 on weights, 0 on biases); coef :
    ``alpha / B``, applied in the dtype of the parameters as network.loss_and_grad does.
    """
    rsum = cuda.shared.array(REDUCE_THREADS, float64)
    tid = cuda.threadIdx.x
    c = params.dtype.type(coef)
    acc = 0.0
    for i in range(cuda.grid(1), params.shape[0], cuda.gridsize(1)):
        if mask[i] != 0:
            p = params[i]
            grad[i] += c * p
            acc += float64(p) * float64(p)
    rsum[tid] = acc
    cuda.syncthreads()
    step = REDUCE_THREADS // 2
    while step > 0:
        if tid < step:
            rsum[tid] += rsum[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        partial[cuda.blockIdx.x] = rsum[0]


@cuda.jit(cache=True)
def _finish_sum_cuda(partial, n_parts, factor, divisor, accumulate, out, index):
    """One block: ``out[index] (+)= factor * sum(partial[:n_parts]) / divisor``.

    Threads sum fixed strided subsets, then a shared-memory tree: a fixed order.
    """
    rsum = cuda.shared.array(REDUCE_THREADS, float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    for i in range(tid, n_parts, REDUCE_THREADS):
        acc += partial[i]
    rsum[tid] = acc
    cuda.syncthreads()
    step = REDUCE_THREADS // 2
    while step > 0:
        if tid < step:
            rsum[tid] += rsum[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        value = factor * rsum[0] / divisor
        if accumulate != 0:
            value = out[index] + value
        out[index] = value


@cuda.jit(cache=True)
def _finish_norm_cuda(partial, n_parts, max_norm, do_clip, losses, batch, status,
                      clip_scale):
    """One block: gradient norm from the partial sums of squares, clipping factor and
    divergence status.

    clip_scale[0] is written with ``max_norm / (norm + 1e-6)`` when clipping applies
    (as :func:`optim.clip_grad_norm`), else 1. If the loss ``losses[batch]`` or the
    norm is not finite and no earlier batch diverged, ``status`` becomes
    ``[1, batch]`` and every later update is skipped.
    """
    rsum = cuda.shared.array(REDUCE_THREADS, float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    for i in range(tid, n_parts, REDUCE_THREADS):
        acc += partial[i]
    rsum[tid] = acc
    cuda.syncthreads()
    step = REDUCE_THREADS // 2
    while step > 0:
        if tid < step:
            rsum[tid] += rsum[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        norm = math.sqrt(rsum[0])
        scale = 1.0
        if do_clip != 0 and norm > max_norm and math.isfinite(norm):
            scale = max_norm / (norm + 1e-6)
        clip_scale[0] = scale
        if status[0] == 0 and not (math.isfinite(losses[batch]) and math.isfinite(norm)):
            status[0] = 1
            status[1] = batch


# ----------------------------------------------------------------------------
# optimisers (equations of optim.py; the clipping factor is applied on the fly)
# ----------------------------------------------------------------------------


@cuda.jit(cache=True)
def _adam_cuda(params, grad, m, v, step, beta_1, beta_2, epsilon, bc2, clip_scale, status):
    """Adam with bias correction: ``step = lr / (1 - beta_1**t)``, ``bc2 = 1 - beta_2**t``.

    params, grad, m, v : (P,); skipped entirely once ``status[0] != 0``.
    """
    if status[0] != 0:
        return
    scale = clip_scale[0]
    for i in range(cuda.grid(1), params.shape[0], cuda.gridsize(1)):
        g = grad[i]
        if scale != 1.0:
            g = params.dtype.type(g * scale)
        mi = beta_1 * m[i] + (1.0 - beta_1) * g
        vi = beta_2 * v[i] + (1.0 - beta_2) * g * g
        m[i] = mi
        v[i] = vi
        params[i] -= step * mi / (math.sqrt(vi / bc2) + epsilon)


@cuda.jit(cache=True)
def _sgd_cuda(params, grad, velocity, lr, momentum, nesterov, clip_scale, status):
    """SGD with momentum (Nesterov when ``nesterov``); skipped once ``status[0] != 0``."""
    if status[0] != 0:
        return
    scale = clip_scale[0]
    for i in range(cuda.grid(1), params.shape[0], cuda.gridsize(1)):
        g = grad[i]
        if scale != 1.0:
            g = params.dtype.type(g * scale)
        step = float64(g)
        if momentum != 0.0:
            vel = momentum * velocity[i] + g
            velocity[i] = vel
            if nesterov != 0:
                step = g + momentum * vel
            else:
                step = vel
        params[i] -= lr * step


@cuda.jit(cache=True)
def _rmsprop_cuda(params, grad, square_avg, lr, rho, epsilon, clip_scale, status):
    """RMSprop without centring; skipped once ``status[0] != 0``."""
    if status[0] != 0:
        return
    scale = clip_scale[0]
    for i in range(cuda.grid(1), params.shape[0], cuda.gridsize(1)):
        g = grad[i]
        if scale != 1.0:
            g = params.dtype.type(g * scale)
        s = rho * square_avg[i] + (1.0 - rho) * g * g
        square_avg[i] = s
        params[i] -= lr * g / (math.sqrt(s) + epsilon)


# ----------------------------------------------------------------------------
# explicit signatures (for compile_ptx tests and the ptxas report)
# ----------------------------------------------------------------------------


def _signatures(DT):
    A1 = DT[::1]
    A2 = DT[:, ::1]
    A3 = DT[:, :, ::1]
    I1 = int64[::1]
    D1 = float64[::1]
    U1 = uint8[::1]
    return {
        "_gather_time_major_cuda": (A3, I1, A3),
        "_gather_rows_cuda": (A2, I1, A2),
        "_fill_cuda": (A1, float64),
        "_gemm_nt_cuda": (A2, A2, A1, int64, A2),
        "_gemm_nn_cuda": (A2, A2, A2),
        "_gemm_tn_partial_cuda": (A2, A2, int64, A3),
        "_colsum_partial_cuda": (A2, int64, A3),
        "_reduce_splits_cuda": (A3, A2),
        "_recurrent_forward_step_cuda": (int64, A2, A2, A2, A2, A1, A2, A2),
        "_recurrent_backward_step_cuda": (int64, int64, A2, A2, A2, A2, A2, A2, A2, A2,
                                          A2, A2),
        "_loss_grad_cuda": (int64, A2, A2, A2, D1),
        "_sum_partial_cuda": (A1, int64, D1),
        "_l2_penalty_cuda": (A1, U1, float64, A1, D1),
        "_finish_sum_cuda": (D1, int64, float64, float64, int64, D1, int64),
        "_finish_norm_cuda": (D1, int64, float64, int64, D1, int64, I1, D1),
        "_adam_cuda": (A1, A1, A1, A1, float64, float64, float64, float64, float64, D1, I1),
        "_sgd_cuda": (A1, A1, A1, float64, float64, int64, D1, I1),
        "_rmsprop_cuda": (A1, A1, A1, float64, float64, float64, D1, I1),
    }


#: ``{kernel name: {numpy dtype: argument types}}`` for float32 and float64 data.
#: Kernels that touch only float64 scalars list the same signature twice.
SIGNATURES = {}
for _dtype, _DT in ((np.dtype(np.float32), float32), (np.dtype(np.float64), float64)):
    for _name, _sig in _signatures(_DT).items():
        SIGNATURES.setdefault(_name, {})[_dtype] = _sig
del _dtype, _DT, _name, _sig


def kernel(name):
    """The dispatcher of kernel ``name`` (a key of :data:`SIGNATURES`)."""
    return globals()[name]


def python_function(name):
    """The undecorated Python function of kernel ``name`` (for ``compile_ptx``)."""
    disp = kernel(name)
    return getattr(disp, "py_func", None) or getattr(disp, "fn")


# ----------------------------------------------------------------------------
# device and memory
# ----------------------------------------------------------------------------


def is_simulator() -> bool:
    """True when numba.cuda is the CUDA simulator (NUMBA_ENABLE_CUDASIM=1)."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def device_status():
    """``(usable, reason)``: whether kernels can run here, and a one-line reason."""
    if is_simulator():
        return True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct but very slow"
    try:
        available = cuda.is_available()
    except Exception as exc:  # driver present but broken
        return False, f"the CUDA driver failed to initialise: {exc}"
    if not available:
        try:
            error = str(cuda.cuda_error() or "").strip()
        except Exception as exc:
            error = str(exc)
        error = " ".join(error.split()) or "no CUDA driver or GPU found"
        return False, error
    try:
        device = cuda.get_current_device()
        major, minor = device.compute_capability
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    except Exception as exc:
        return False, f"no usable CUDA device: {exc}"
    try:
        from numba.cuda.cudadrv import nvvm

        if not nvvm.is_available():
            return False, ("a GPU is present but NVVM (the CUDA toolkit's compiler) was not "
                           "found; install the CUDA toolkit or numba-cuda[cu12]/[cu13]")
    except ImportError:
        pass
    return True, f"{name} (compute capability {major}.{minor})"


def to_device(array):
    """Copy a contiguous host array to the device."""
    return cuda.to_device(np.ascontiguousarray(array))


def device_empty(shape, dtype):
    """An uninitialised device array."""
    return cuda.device_array(shape, dtype=dtype)


def device_zeros(shape, dtype):
    """A zero-filled device array."""
    return cuda.to_device(np.zeros(shape, dtype=dtype))


def synchronize():
    """Wait for every launched kernel to finish."""
    cuda.synchronize()


# ----------------------------------------------------------------------------
# launchers
# ----------------------------------------------------------------------------


def _ceil_div(a, b):
    return -(-a // b)


def _grid(n_units, per_block):
    return max(1, min(_ceil_div(n_units, per_block), MAX_BLOCKS))


def _launch_1d(kern, n, *args):
    kern[_grid(n, THREADS), THREADS](*args)


def _launch_tiles(kern, n_tiles, *args):
    kern[max(1, min(n_tiles, MAX_BLOCKS)), (TILE, TILE)](*args)


def reduce_blocks(n):
    """Blocks of a first-stage reduction over ``n`` elements (= partial sums written)."""
    return _grid(n, REDUCE_THREADS)


def n_splits(rows):
    """Row splits of a split-K product over ``rows`` rows."""
    return max(1, _ceil_div(rows, SPLIT_ROWS))


def partial_size(rows, m, n):
    """Elements of the partial buffer a split-K product (rows x m) . (rows x n) needs."""
    return n_splits(rows) * m * n


def fill(x, value):
    """x[...] = value for a contiguous device array."""
    flat = x.reshape(x.size)
    _launch_1d(_fill_cuda, flat.shape[0], flat, float(value))


def gather_time_major(X, idx, out):
    """out (T, B, F) = X[idx] transposed to time-major; X (N, T, F) on the device."""
    T, B, F = out.shape
    _launch_1d(_gather_time_major_cuda, T * B * F, X, idx, out)


def gather_rows(Y, idx, out):
    """out (B, O) = Y[idx]."""
    _launch_1d(_gather_rows_cuda, out.shape[0] * out.shape[1], Y, idx, out)


def gemm_nt(A, Bm, C, bias=None):
    """C (M, N) = A (M, K) @ Bm (N, K).T (+ bias (N,))."""
    M, N = C.shape
    n_tiles = _ceil_div(M, TILE) * _ceil_div(N, TILE)
    use_bias = 0 if bias is None else 1
    _launch_tiles(_gemm_nt_cuda, n_tiles, A, Bm, Bm[0] if bias is None else bias,
                  use_bias, C)


def gemm_nn(A, Bm, C):
    """C (M, N) = A (M, K) @ Bm (K, N)."""
    M, N = C.shape
    _launch_tiles(_gemm_nn_cuda, _ceil_div(M, TILE) * _ceil_div(N, TILE), A, Bm, C)


def gemm_tn(A, Bm, out, partial):
    """out (M, N) = A (R, M).T @ Bm (R, N), split along R, partials summed in order.

    partial : flat device workspace of at least ``partial_size(R, M, N)`` elements.
    """
    R, M = A.shape
    N = Bm.shape[1]
    if R == 0:
        fill(out, 0.0)
        return
    S = n_splits(R)
    part = partial[:S * M * N].reshape(S, M, N)
    n_tiles = S * _ceil_div(M, TILE) * _ceil_div(N, TILE)
    _launch_tiles(_gemm_tn_partial_cuda, n_tiles, A, Bm, SPLIT_ROWS, part)
    _launch_1d(_reduce_splits_cuda, M * N, part, out)


def colsum(A, out, partial):
    """out (M,) = A (R, M).sum(axis=0), split along R, partials summed in order."""
    R, M = A.shape
    if R == 0:
        fill(out, 0.0)
        return
    S = n_splits(R)
    part = partial[:S * M].reshape(S, M, 1)
    _launch_1d(_colsum_partial_cuda, S * M, A, SPLIT_ROWS, part)
    _launch_1d(_reduce_splits_cuda, M, part, out.reshape(M, 1))


def window_blocks(T, K):
    """(t0, t1) blocks of at most K steps ending at T, the first holding the remainder
    (the blocks of ``cpu.layer_forward``)."""
    starts = list(range(T - K, -1, -K))[::-1]
    if starts[0] != 0:
        starts.insert(0, 0)
    return [(t0, starts[i + 1] if i + 1 < len(starts) else T) for i, t0 in enumerate(starts)]


def layer_forward(cell, x, zeros, w_ih, w_hh, b_ih, b_hh, h_out, gates, extra, c_carry):
    """Forward of one layer over all T steps on the device, started from zero states.

    Parameters
    ----------
    cell : int
    x : (T, B, F) device array
    zeros : (B, H) device array of zeros (h0 and c0)
    w_ih, w_hh, b_ih, b_hh : device arrays, PyTorch layout
    h_out : (T, B, H) written
    gates : (K, B, G*H) written; K sets the block length (the BPTT window). After
        the call it holds the activated gates of the last K steps.
    extra : (K, B, H) written (lstm c_t, gru hn of the last K steps)
    c_carry : (B, H) LSTM workspace carrying the cell state between blocks

    Returns
    -------
    c_start : (B, H) device array
        LSTM cell state before the window (``zeros`` when the window starts at 0).
    """
    T, B, F = x.shape
    K, _, GH = gates.shape
    H = h_out.shape[2]
    blocks = window_blocks(T, K)
    x2d = x.reshape(T * B, F)
    c_start = zeros
    tiles = _ceil_div(B, TILE) * _ceil_div(H, TILE)
    for i, (t0, t1) in enumerate(blocks):
        S = t1 - t0
        if cell == LSTM and i > 0:
            c_start = c_carry
        gemm_nt(x2d[t0 * B:t1 * B], w_ih, gates[:S].reshape(S * B, GH), bias=b_ih)
        for s in range(S):
            t = t0 + s
            h_prev = zeros if t == 0 else h_out[t - 1]
            c_prev = extra[s - 1] if s > 0 else c_start
            _launch_tiles(_recurrent_forward_step_cuda, tiles, cell, gates[s], h_prev,
                          c_prev, w_hh, b_hh, h_out[t], extra[s])
        if cell == LSTM and i + 1 < len(blocks):
            c_carry.copy_to_device(extra[S - 1])
    return c_start


def layer_backward(cell, x, zeros, h_out, gates, extra, dzh, c_start, w_ih, w_hh,
                   dh_steps, dh_carry, dc_carry, dw_ih, dw_hh, db_ih, db_hh, dx, partial):
    """BPTT of one layer over its window (the last K steps), on the device.

    Parameters
    ----------
    cell : int
    x : (T, B, F) layer input; zeros : (B, H) zeros
    h_out : (T, B, H), gates : (K, B, G*H), extra : (K, B, H) from :func:`layer_forward`;
        ``gates`` is overwritten with dZ.
    dzh : (K, B, G*H) GRU workspace (recurrent-side gradient); for other cells pass
        ``gates``.
    c_start : (B, H) from :func:`layer_forward`
    w_ih, w_hh : device weights
    dh_steps : list of K (B, H) device arrays
        Gradient of the loss with respect to the layer's output at each window step.
    dh_carry, dc_carry : (B, H) workspaces
    dw_ih, dw_hh : (G*H, F), (G*H, H) written; db_ih, db_hh : (G*H,) written
    dx : (K, B, F) written with the input gradient, or None (first layer)
    partial : flat split-K workspace
    """
    T, B, F = x.shape
    K, _, GH = gates.shape
    H = h_out.shape[2]
    t0 = T - K
    tiles = _ceil_div(B, TILE) * _ceil_div(H, TILE)
    is_gru = cell == GRU
    for s in range(K - 1, -1, -1):
        t = t0 + s
        has_next = 1 if s < K - 1 else 0
        h_prev = zeros if t == 0 else h_out[t - 1]
        c_prev = extra[s - 1] if s > 0 else c_start
        src = dzh if is_gru else gates
        dzh_next = src[s + 1] if has_next else src[s]
        _launch_tiles(_recurrent_backward_step_cuda, tiles, cell, has_next, gates[s],
                      dzh[s], dzh_next, extra[s], c_prev, h_prev, w_hh, dh_steps[s],
                      dh_carry, dc_carry)
    dz = gates.reshape(K * B, GH)
    dzr = dzh.reshape(K * B, GH)
    gemm_tn(dz, x[t0:].reshape(K * B, F), dw_ih, partial)
    colsum(dz, db_ih, partial)
    # recurrent side: h_prev of step t0 is h_out[t0 - 1], or zeros when t0 == 0
    if t0 > 0:
        gemm_tn(dzr, h_out[t0 - 1:T - 1].reshape(K * B, H), dw_hh, partial)
    elif K > 1:
        gemm_tn(dzr[B:], h_out[0:K - 1].reshape((K - 1) * B, H), dw_hh, partial)
    else:
        fill(dw_hh, 0.0)
    colsum(dzr, db_hh, partial)
    if dx is not None:
        gemm_nn(dz, w_ih, dx.reshape(K * B, F))


def loss_grad(loss_code, pred, y, dpred, rpartial, losses, index):
    """losses[index] = mean loss of pred vs y; dpred written (see _loss_grad_cuda)."""
    n = pred.shape[0] * pred.shape[1]
    blocks = reduce_blocks(n)
    _loss_grad_cuda[blocks, REDUCE_THREADS](loss_code, pred, y, dpred, rpartial)
    _finish_sum_cuda[1, REDUCE_THREADS](rpartial, blocks, 1.0, float(n), 0, losses, index)


def l2_penalty(params, mask, alpha, batch_size, grad, rpartial, losses, index):
    """grad += alpha / B * params on weights; losses[index] += 0.5 * alpha * ||W||^2 / B."""
    n = params.shape[0]
    blocks = reduce_blocks(n)
    _l2_penalty_cuda[blocks, REDUCE_THREADS](params, mask, float(alpha) / batch_size, grad,
                                             rpartial)
    _finish_sum_cuda[1, REDUCE_THREADS](rpartial, blocks, 0.5 * float(alpha),
                                        float(batch_size), 1, losses, index)


def grad_norm_status(grad, max_norm, losses, index, status, clip_scale, rpartial):
    """Gradient norm, clipping factor into ``clip_scale[0]`` (max_norm None: no clipping)
    and the divergence status (see _finish_norm_cuda)."""
    n = grad.shape[0]
    blocks = reduce_blocks(n)
    _sum_partial_cuda[blocks, REDUCE_THREADS](grad, SUM_SQUARES, rpartial)
    do_clip = 0 if max_norm is None else 1
    _finish_norm_cuda[1, REDUCE_THREADS](rpartial, blocks,
                                         0.0 if max_norm is None else float(max_norm),
                                         do_clip, losses, index, status, clip_scale)


def count_nonfinite(x, rpartial, out, index):
    """out[index] = number of non-finite entries of the 1-D device array x."""
    blocks = reduce_blocks(x.shape[0])
    _sum_partial_cuda[blocks, REDUCE_THREADS](x, COUNT_NONFINITE, rpartial)
    _finish_sum_cuda[1, REDUCE_THREADS](rpartial, blocks, 1.0, 1.0, 0, out, index)


def adam_update(params, grad, m, v, lr, beta_1, beta_2, epsilon, t, clip_scale, status):
    """Adam step number t (1-based) with the clipping factor and status of the batch."""
    bc1 = 1.0 - beta_1 ** t
    bc2 = 1.0 - beta_2 ** t
    _launch_1d(_adam_cuda, params.shape[0], params, grad, m, v, float(lr / bc1),
               float(beta_1), float(beta_2), float(epsilon), float(bc2), clip_scale, status)


def sgd_update(params, grad, velocity, lr, momentum, nesterov, clip_scale, status):
    """SGD step with momentum / Nesterov."""
    _launch_1d(_sgd_cuda, params.shape[0], params, grad, velocity, float(lr),
               float(momentum), int(bool(nesterov)), clip_scale, status)


def rmsprop_update(params, grad, square_avg, lr, rho, epsilon, clip_scale, status):
    """RMSprop step."""
    _launch_1d(_rmsprop_cuda, params.shape[0], params, grad, square_avg, float(lr),
               float(rho), float(epsilon), clip_scale, status)
