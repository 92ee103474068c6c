"""CPU kernels: forward and backpropagation through time for RNN, LSTM and GRU layers.

Numerics only: contiguous NumPy arrays in, arrays out; nothing here knows about
scikit-learn or pandas.

Letters: B batch, T time steps, F input features, H hidden units, G gates
(1 rnn, 4 lstm: i f g o, 3 gru: r z n), K truncation window (``bptt_steps``).

Layout
------
Inside the kernels every sequence is **time-major**, ``(T, B, ...)``, so that the
rows of one time step are contiguous (one matrix product per step, no strided
copies). Weights have PyTorch's layout: ``w_ih (G*H, F)``, ``w_hh (G*H, H)``,
``b_ih, b_hh (G*H,)``.

Strategy
--------
A layer splits into two kinds of work:

* input-side products that do not depend on the recurrence — the input projection
  ``x @ w_ih.T`` for a whole block of time steps, and after BPTT the weight
  gradients ``dZ.T @ x``, ``dZ.T @ h_prev`` and the input gradient ``dZ @ w_ih`` —
  are done as a few large matrix products by NumPy's BLAS, outside any Numba
  parallel region, so BLAS owns the cores there;
* the recurrence itself (``h_prev @ w_hh.T``, the gate nonlinearities, the cell
  update, and in backward ``dZ @ w_hh``) runs in ``@njit(parallel=True)`` loops,
  parallel over fixed chunks of batch rows, sequential in time. Small H uses
  fused hand-written loops; large H calls BLAS per step (``use_blas``) on the
  chunk's rows. Samples never interact in the recurrence, so results do not
  depend on the chunking: runs are bit-identical.

Truncated BPTT keeps gate caches only for the last K steps: the forward runs
over blocks of K steps (the first block may be shorter), reusing one ``(K, B, G*H)``
buffer, and backward covers the last K steps. The loss of a sequence regressor sits
on the last step, so this is exactly truncated BPTT with memory that grows with K.
"""

import math

import numba
import numpy as np
from numba import njit, prange

RNN_TANH = 0
RNN_RELU = 1
LSTM = 2
GRU = 3

CELL_CODES = {"rnn_tanh": RNN_TANH, "rnn_relu": RNN_RELU, "lstm": LSTM, "gru": GRU}

#: Hidden sizes at or above this use BLAS for the per-step recurrent product.
BLAS_MIN_HIDDEN = 128


def gate_count(cell: int) -> int:
    """Number of gates G of a cell code."""
    if cell == LSTM:
        return 4
    if cell == GRU:
        return 3
    return 1


def chunk_bounds(batch_size: int, n_chunks: int) -> np.ndarray:
    """Split ``batch_size`` rows into ``n_chunks`` near-equal contiguous chunks.

    Returns an int64 array of ``n_chunks + 1`` boundaries.
    """
    n_chunks = max(1, min(n_chunks, batch_size))
    return np.linspace(0, batch_size, n_chunks + 1).round().astype(np.int64)


# ----------------------------------------------------------------------------
# scalar nonlinearities (type-preserving: float32 in, float32 out)
# ----------------------------------------------------------------------------


@njit(inline="always", cache=True)
def _sigmoid(v):
    # two branches so that exp never overflows
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@njit(inline="always", cache=True)
def _tanh(v):
    return math.tanh(v)


# ----------------------------------------------------------------------------
# recurrent forward
# ----------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _hidden_product(h_prev, w_hhT, b_hh, out, b0, b1, use_blas):
    """out[b0:b1] = h_prev[b0:b1] @ w_hhT + b_hh."""
    GH = out.shape[1]
    H = h_prev.shape[1]
    if use_blas:
        np.dot(h_prev[b0:b1], w_hhT, out[b0:b1])
        for b in range(b0, b1):
            for j in range(GH):
                out[b, j] += b_hh[j]
    else:
        for b in range(b0, b1):
            for j in range(GH):
                out[b, j] = b_hh[j]
            for k in range(H):
                hk = h_prev[b, k]
                for j in range(GH):
                    out[b, j] += hk * w_hhT[k, j]


@njit(parallel=True, cache=True, error_model="numpy")
def _recurrent_forward(cell, proj, t0, h0, h_out, c_state, w_hhT, b_hh, extra, hh,
                       chunks, use_blas):
    """Run the recurrence over the S steps ``t0 .. t0 + S - 1`` of one block.

    Parameters
    ----------
    cell : int
        Cell code (``RNN_TANH``, ``RNN_RELU``, ``LSTM``, ``GRU``).
    proj : (S, B, G*H) array, C-contiguous
        Input projection ``x @ w_ih.T + b_ih`` of the block; overwritten with the
        activated gates (rnn: h; lstm: i, f, g, o; gru: r, z, n), kept for BPTT.
    t0 : int
        Absolute time index of the block's first step.
    h0 : (B, H) array
        Hidden state before step 0 (used when ``t0 == 0``).
    h_out : (T, B, H) array
        Hidden outputs; rows ``t0 .. t0 + S - 1`` are written.
    c_state : (B, H) array
        LSTM cell state, read as the state before the block and updated in place.
    w_hhT : (H, G*H) array
        Transposed recurrent weights.
    b_hh : (G*H,) array
    extra : (S, B, H) array
        Written: lstm cell states c_t; gru ``w_hn @ h + b_hn``. Unused for rnn.
    hh : (B, G*H) array
        Workspace for ``h_prev @ w_hh.T + b_hh``.
    chunks : int64 array
        Chunk boundaries over the batch.
    use_blas : bool
        Per-step BLAS product instead of the fused loop.
    """
    S = proj.shape[0]
    H = h0.shape[1]
    n_chunks = chunks.shape[0] - 1
    for c in prange(n_chunks):
        b0 = chunks[c]
        b1 = chunks[c + 1]
        for s in range(S):
            t = t0 + s
            if t == 0:
                h_prev = h0
            else:
                h_prev = h_out[t - 1]
            _hidden_product(h_prev, w_hhT, b_hh, hh, b0, b1, use_blas)
            z = proj[s]
            h_new = h_out[t]
            for b in range(b0, b1):
                if cell == LSTM:
                    for j in range(H):
                        gi = _sigmoid(z[b, j] + hh[b, j])
                        gf = _sigmoid(z[b, H + j] + hh[b, H + j])
                        gg = _tanh(z[b, 2 * H + j] + hh[b, 2 * H + j])
                        go = _sigmoid(z[b, 3 * H + j] + hh[b, 3 * H + j])
                        cc = gf * c_state[b, j] + gi * gg
                        c_state[b, j] = cc
                        extra[s, b, j] = cc
                        z[b, j] = gi
                        z[b, H + j] = gf
                        z[b, 2 * H + j] = gg
                        z[b, 3 * H + j] = go
                        h_new[b, j] = go * _tanh(cc)
                elif cell == GRU:
                    for j in range(H):
                        gr = _sigmoid(z[b, j] + hh[b, j])
                        gz = _sigmoid(z[b, H + j] + hh[b, H + j])
                        hn = hh[b, 2 * H + j]
                        gn = _tanh(z[b, 2 * H + j] + gr * hn)
                        extra[s, b, j] = hn
                        z[b, j] = gr
                        z[b, H + j] = gz
                        z[b, 2 * H + j] = gn
                        h_new[b, j] = (1 - gz) * gn + gz * h_prev[b, j]
                elif cell == RNN_RELU:
                    for j in range(H):
                        v = z[b, j] + hh[b, j]
                        if v < 0:
                            v = v - v
                        z[b, j] = v
                        h_new[b, j] = v
                else:
                    for j in range(H):
                        v = _tanh(z[b, j] + hh[b, j])
                        z[b, j] = v
                        h_new[b, j] = v


# ----------------------------------------------------------------------------
# recurrent backward
# ----------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _hidden_grad_product(dz, w_hh, out, tmp, b0, b1, use_blas):
    """out[b0:b1] += dz[b0:b1] @ w_hh (dz: (B, G*H), w_hh: (G*H, H)); tmp: (B, H)."""
    GH = dz.shape[1]
    H = out.shape[1]
    if use_blas:
        # np.dot cannot accumulate into out, so go through the workspace
        np.dot(dz[b0:b1], w_hh, tmp[b0:b1])
        for b in range(b0, b1):
            for k in range(H):
                out[b, k] += tmp[b, k]
    else:
        for b in range(b0, b1):
            for j in range(GH):
                d = dz[b, j]
                for k in range(H):
                    out[b, k] += d * w_hh[j, k]


@njit(parallel=True, cache=True, error_model="numpy")
def _recurrent_backward(cell, gates, extra, h_out, h_start, c_start, dh_out, t0,
                        w_hh, dh_next, dc_next, dzh_n, dzh, tmp, chunks, use_blas):
    """Backpropagate through the K steps ``t0 .. t0 + K - 1`` (the last K of T).

    Parameters
    ----------
    cell : int
    gates : (K, B, G*H) array
        Activated gates from the forward; overwritten with the pre-activation
        gradients dZ (input side) of each step.
    extra : (K, B, H) array
        Forward ``extra`` (lstm c_t, gru hn). Read only.
    h_out : (T, B, H) array
        Hidden outputs of the forward.
    h_start, c_start : (B, H) arrays
        Hidden and cell state before step ``t0``.
    dh_out : (K, B, H) array
        Gradient of the loss with respect to the outputs of the window's steps.
    t0 : int
        Absolute index of the window's first step (``T - K``).
    w_hh : (G*H, H) array
    dh_next, dc_next : (B, H) arrays
        In: gradient flowing into the last step's state from later steps (zeros
        for a full sequence). Out: gradient with respect to ``h_start``/``c_start``.
    dzh_n : (K, B, H) array
        GRU only: written with the recurrent-side gradient of the n gate
        (``dn_pre * r``), which differs from its input-side gradient.
    dzh : (B, G*H) array
        GRU only: workspace for one step's recurrent-side gradient.
    tmp : (B, H) array
        Workspace for the BLAS product.
    chunks : int64 array
    use_blas : bool
    """
    K = gates.shape[0]
    H = h_start.shape[1]
    n_chunks = chunks.shape[0] - 1
    for c in prange(n_chunks):
        b0 = chunks[c]
        b1 = chunks[c + 1]
        for s in range(K - 1, -1, -1):
            t = t0 + s
            if s == 0:
                h_prev = h_start
            else:
                h_prev = h_out[t - 1]
            z = gates[s]
            for b in range(b0, b1):
                if cell == LSTM:
                    for j in range(H):
                        dh = dh_out[s, b, j] + dh_next[b, j]
                        gi = z[b, j]
                        gf = z[b, H + j]
                        gg = z[b, 2 * H + j]
                        go = z[b, 3 * H + j]
                        cc = extra[s, b, j]
                        if s == 0:
                            c_prev = c_start[b, j]
                        else:
                            c_prev = extra[s - 1, b, j]
                        tc = _tanh(cc)
                        dc = dc_next[b, j] + dh * go * (1 - tc * tc)
                        z[b, j] = dc * gg * gi * (1 - gi)
                        z[b, H + j] = dc * c_prev * gf * (1 - gf)
                        z[b, 2 * H + j] = dc * gi * (1 - gg * gg)
                        z[b, 3 * H + j] = dh * tc * go * (1 - go)
                        dc_next[b, j] = dc * gf
                        dh_next[b, j] = 0
                elif cell == GRU:
                    for j in range(H):
                        dh = dh_out[s, b, j] + dh_next[b, j]
                        gr = z[b, j]
                        gz = z[b, H + j]
                        gn = z[b, 2 * H + j]
                        dn_pre = dh * (1 - gz) * (1 - gn * gn)
                        z[b, j] = dn_pre * extra[s, b, j] * gr * (1 - gr)
                        z[b, H + j] = dh * (h_prev[b, j] - gn) * gz * (1 - gz)
                        z[b, 2 * H + j] = dn_pre
                        dzh_n[s, b, j] = dn_pre * gr
                        dzh[b, j] = z[b, j]
                        dzh[b, H + j] = z[b, H + j]
                        dzh[b, 2 * H + j] = dn_pre * gr
                        # direct path h_prev -> h through the update gate
                        dh_next[b, j] = dh * gz
                elif cell == RNN_RELU:
                    for j in range(H):
                        dh = dh_out[s, b, j] + dh_next[b, j]
                        if z[b, j] > 0:
                            z[b, j] = dh
                        else:
                            z[b, j] = dh - dh
                        dh_next[b, j] = 0
                else:
                    for j in range(H):
                        dh = dh_out[s, b, j] + dh_next[b, j]
                        hv = z[b, j]
                        z[b, j] = dh * (1 - hv * hv)
                        dh_next[b, j] = 0
            if cell == GRU:
                # recurrent side differs from the input side in the n block
                _hidden_grad_product(dzh, w_hh, dh_next, tmp, b0, b1, use_blas)
            else:
                _hidden_grad_product(z, w_hh, dh_next, tmp, b0, b1, use_blas)


# ----------------------------------------------------------------------------
# layer-level drivers (plain Python: large products by NumPy, recurrence by Numba)
# ----------------------------------------------------------------------------


class LayerCache:
    """What one layer's forward keeps for its backward (time-major arrays)."""

    __slots__ = ("x", "h0", "h_out", "gates", "extra", "h_start", "c_start", "c_last",
                 "t0")

    def __init__(self, x, h0, h_out, gates, extra, h_start, c_start, c_last, t0):
        self.x = x
        self.h0 = h0
        self.h_out = h_out
        self.gates = gates
        self.extra = extra
        self.h_start = h_start
        self.c_start = c_start
        self.c_last = c_last
        self.t0 = t0


def layer_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, window=None, n_chunks=1,
                  use_blas=None, keep=True):
    """Forward pass of one recurrent layer.

    Parameters
    ----------
    cell : int
        Cell code.
    x : (T, B, F) C-contiguous array
        Time-major inputs.
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
        Per-step BLAS products; ``None`` decides from H.
    keep : bool
        Keep the cache for a backward pass; ``False`` for inference.

    Returns
    -------
    h_out : (T, B, H) array
        Hidden states of every step.
    cache : LayerCache or None
    """
    T, B, _ = x.shape
    GH, H = w_hh.shape
    dtype = x.dtype
    if use_blas is None:
        use_blas = H >= BLAS_MIN_HIDDEN
    K = T if window is None else max(1, min(int(window), T))
    chunks = chunk_bounds(B, n_chunks)
    w_ihT = np.ascontiguousarray(w_ih.T)
    w_hhT = np.ascontiguousarray(w_hh.T)
    h_out = np.empty((T, B, H), dtype=dtype)
    c_state = np.array(c0, dtype=dtype, copy=True)
    proj = np.empty((K, B, GH), dtype=dtype)
    extra = np.empty((K, B, H), dtype=dtype)
    hh = np.empty((B, GH), dtype=dtype)
    x2d = x.reshape(T * B, x.shape[2])
    t_window = T - K
    c_start = None
    # blocks of K steps ending at T; the first block holds the remainder
    starts = list(range(t_window, -1, -K))[::-1]
    if starts[0] != 0:
        starts.insert(0, 0)
    for i, t0 in enumerate(starts):
        t1 = starts[i + 1] if i + 1 < len(starts) else T
        S = t1 - t0
        block = proj[:S]
        np.matmul(x2d[t0 * B:t1 * B], w_ihT, out=block.reshape(S * B, GH))
        block += b_ih
        if t0 == t_window:
            c_start = c_state.copy()
        _recurrent_forward(cell, block, t0, h0, h_out, c_state, w_hhT, b_hh,
                           extra[:S], hh, chunks, use_blas)
    if not keep:
        return h_out, None
    h_start = h0 if t_window == 0 else h_out[t_window - 1]
    cache = LayerCache(x, h0, h_out, proj, extra, h_start, c_start, c_state, t_window)
    return h_out, cache


def layer_backward(cell, cache, dh_out, w_ih, w_hh, n_chunks=1, use_blas=None):
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

    Returns
    -------
    dx : (K, B, F) array
        Gradient with respect to the inputs of the window's steps.
    dw_ih, dw_hh, db_ih, db_hh : arrays
        Parameter gradients, shaped as the parameters.
    dh_start, dc_start : (B, H) arrays
        Gradient with respect to the state before the window (``h0``/``c0`` when
        the window covers the whole sequence).
    """
    gates, extra = cache.gates, cache.extra
    K, B, GH = gates.shape
    H = w_hh.shape[1]
    dtype = gates.dtype
    if use_blas is None:
        use_blas = H >= BLAS_MIN_HIDDEN
    chunks = chunk_bounds(B, n_chunks)
    dh_out = np.ascontiguousarray(dh_out, dtype=dtype)
    dh_next = np.zeros((B, H), dtype=dtype)
    dc_next = np.zeros((B, H), dtype=dtype)
    is_gru = cell == GRU
    dzh_n = np.empty((K, B, H) if is_gru else (1, 1, 1), dtype=dtype)
    dzh = np.empty((B, GH) if is_gru else (1, 1), dtype=dtype)
    tmp = np.empty((B, H), dtype=dtype)
    c_start = cache.c_start if cache.c_start is not None else dh_next
    w_hh = np.ascontiguousarray(w_hh)
    _recurrent_backward(cell, gates, extra, cache.h_out, cache.h_start, c_start, dh_out,
                        cache.t0, w_hh, dh_next, dc_next, dzh_n, dzh, tmp, chunks,
                        use_blas)
    t0 = cache.t0
    T = cache.h_out.shape[0]
    dz = gates.reshape(K * B, GH)
    x_win = cache.x[t0:].reshape(K * B, -1)
    dx = (dz @ w_ih).reshape(K, B, -1)
    dw_ih = dz.T @ x_win
    db_ih = dz.sum(axis=0)
    # recurrent side: h_prev of step t0 is h_start, of later steps h_out[t - 1]
    if cell == GRU:
        dz_hidden = np.concatenate([gates[:, :, :2 * H], dzh_n], axis=2).reshape(K * B, GH)
    else:
        dz_hidden = dz
    dw_hh = dz_hidden[:B].T @ cache.h_start
    if K > 1:
        dw_hh += dz_hidden[B:].T @ cache.h_out[t0:T - 1].reshape((K - 1) * B, H)
    db_hh = dz_hidden.sum(axis=0)
    return dx, dw_ih, dw_hh, db_ih, db_hh, dh_next, dc_next
