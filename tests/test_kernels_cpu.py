"""CPU kernels, one layer at a time: forward vs the NumPy reference, BPTT vs finite
differences, truncation, the fixed-order products, determinism across runs, chunkings
and the Numba cache, fast products vs plain loops. (Other OpenBLAS core types and AVX2
code: tests/test_portability.py.)

Shapes are tiny and every test reuses the same two compiled specialisations
(float32, float64) of the kernels, so the file's cost is mostly one compile (plus one in
a subprocess for the cache test).
"""

import numpy as np
import pytest

from reference import reference_layer
from tsrnn._kernels import cpu
from tsrnn import network

CELLS = [
    ("rnn", "tanh", cpu.RNN_TANH),
    ("rnn", "relu", cpu.RNN_RELU),
    ("lstm", "tanh", cpu.LSTM),
    ("gru", "tanh", cpu.GRU),
]
CELL_IDS = [f"{c}-{n}" if c == "rnn" else c for c, n, _ in CELLS]


def make_layer(code, F, H, dtype=np.float64, seed=0):
    """Random weights (PyTorch layout) of one layer."""
    G = cpu.gate_count(code)
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(H)
    w_ih = rng.uniform(-bound, bound, (G * H, F)).astype(dtype)
    w_hh = rng.uniform(-bound, bound, (G * H, H)).astype(dtype)
    b_ih = rng.uniform(-bound, bound, G * H).astype(dtype)
    b_hh = rng.uniform(-bound, bound, G * H).astype(dtype)
    return w_ih, w_hh, b_ih, b_hh


def time_major(x):
    return np.ascontiguousarray(x.transpose(1, 0, 2))


def run(code, x, h0, c0, weights, **kw):
    """Forward of one layer on time-major x; returns (h_out, cache)."""
    return cpu.layer_forward(code, x, h0, c0, *weights, **kw)


def full_backward(code, x, h0, c0, weights, dh_out, window=None, chunk_rows=None,
                  use_blas=None):
    """Forward + backward; returns (h_out, dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0)."""
    h_out, cache = run(code, x, h0, c0, weights, window=window, chunk_rows=chunk_rows,
                       use_blas=use_blas)
    return (h_out,) + tuple(cpu.layer_backward(code, cache, dh_out))


def central_diff(f, v, eps):
    """Central differences of the scalar f() with respect to every element of v (in place)."""
    out = np.empty(v.shape, dtype=np.float64)
    flat = v.reshape(-1)
    g = out.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return out


def assert_rel(a, b, tol):
    """max |a - b| <= tol * max |b| (relative to the magnitude of the whole array)."""
    scale = max(np.max(np.abs(b)), 1e-300)
    err = np.max(np.abs(a - b)) / scale
    assert err < tol, f"relative error {err:.3e} >= {tol:.0e}"


# ----------------------------------------------------------------------------
# float32 activations
# ----------------------------------------------------------------------------


def test_float32_activations_accuracy_and_range():
    """The rational float32 tanh and sigmoid against float64, on a dense grid, at the
    clamps and beyond, with NaN and infinities (benchmarks/activations.py sweeps every
    float32)."""
    from numba import njit

    @njit
    def evaluate(x):
        t = np.empty_like(x)
        s = np.empty_like(x)
        for i in range(x.size):
            t[i] = cpu._tanh(x[i])
            s[i] = cpu._sigmoid(x[i])
        return t, s

    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-25, 25, 400001), rng.standard_normal(100000) * 3,
                        np.geomspace(1e-30, 1e-2, 1000), -np.geomspace(1e-30, 1e-2, 1000),
                        [0.0, 8.999, 9.0, 9.001, 17.999, 18.0, 18.001, 1e30, -1e30]])
    x = x.astype(np.float32)
    t, s = evaluate(x)
    xd = x.astype(np.float64)
    assert t.dtype == s.dtype == np.float32
    assert np.max(np.abs(t - np.tanh(xd))) < 3.5e-7
    exact_sigmoid = 0.5 + 0.5 * np.tanh(0.5 * xd)  # overflow-free, exact in float64
    assert np.max(np.abs(s - exact_sigmoid)) < 2e-7
    # relative accuracy of tanh near 0 (odd function, no cancellation)
    small = np.abs(xd) < 0.5
    assert np.max(np.abs(t[small] - np.tanh(xd[small])) / np.maximum(np.abs(xd[small]), 1e-300)) < 3e-7
    assert np.all(np.abs(t) <= 1) and np.all((s >= 0) & (s <= 1))
    np.testing.assert_array_equal(evaluate(-x)[0], -t)
    special = np.array([np.nan, np.inf, -np.inf], dtype=np.float32)
    t, s = evaluate(special)
    assert np.isnan(t[0]) and np.isnan(s[0])  # divergence must stay visible
    np.testing.assert_array_equal(t[1:], [1, -1])
    np.testing.assert_array_equal(s[1:], [1, 0])


# ----------------------------------------------------------------------------
# fixed-order products
# ----------------------------------------------------------------------------


def _sequential_fma_product():
    """Z = A @ S one element at a time, acc = fma(A[i, q], S[q, c], acc) for q in order:
    scalar code, the definition the tiled products must meet bit for bit."""
    from numba import njit

    @njit
    def product(A, S, Z, accumulate):
        m, k = A.shape
        n = S.shape[1]
        for i in range(m):
            for c in range(n):
                acc = Z[i, c] if accumulate else Z[i, c] - Z[i, c]
                for q in range(k):
                    acc = cpu._fma(A[i, q], S[q, c], acc)
                Z[i, c] = acc

    return product


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fixed_products_sum_every_element_in_one_order(dtype):
    """_gemm_fixed (vector tiles, row and column remainders, accumulation into Z,
    offsets and leading dimensions) and _gemv_fixed (one column, A transposed) give
    every element the bits of one fused multiply-add chain over k, whatever the shape."""
    reference = _sequential_fma_product()
    rng = np.random.default_rng(30)
    for m, n, k in [(1, 1, 1), (3, 5, 7), (128, 32, 34), (13, 47, 9), (9, 33, 5),
                    (16, 1, 20), (34, 64, 128), (257, 48, 13)]:
        A = rng.standard_normal((m, k)).astype(dtype)
        S = rng.standard_normal((k, n)).astype(dtype)
        Z0 = rng.standard_normal((m, n)).astype(dtype)
        for accumulate in (False, True):
            want = Z0.copy()
            reference(A, S, want, accumulate)
            # inside larger buffers: offsets and leading dimensions
            big_a = np.zeros((m, k + 3), dtype)
            big_a[:, 2:2 + k] = A
            big_s = np.zeros((k, n + 5), dtype)
            big_s[:, 1:1 + n] = S
            big_z = np.full((m + 1, n + 2), np.nan, dtype)
            big_z[1:, 2:] = Z0
            cpu._gemm_fixed(m, n, k, big_a.reshape(-1), 2, k + 3, big_s.reshape(-1), 1,
                            n + 5, big_z.reshape(-1), n + 2 + 2, n + 2, accumulate)
            np.testing.assert_array_equal(big_z[1:, 2:], want)
            assert np.isnan(big_z[0]).all() and np.isnan(big_z[1:, :2]).all()
        AT = np.ascontiguousarray(A.T).reshape(-1)
        want = np.zeros((m, n), dtype)
        reference(A, S, want, False)
        for c in range(n):
            z = np.full(m + 2, np.nan, dtype)
            cpu._gemv_fixed(m, k, AT, 0, m, np.ascontiguousarray(S[:, c]), 0, 1, z, 1)
            np.testing.assert_array_equal(z[1:-1], want[:, c])


# ----------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "nl", "code"), CELLS, ids=CELL_IDS)
def test_forward_matches_reference(cell, nl, code):
    B, T, F, H = 3, 5, 2, 4
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((B, T, F))
    weights = make_layer(code, F, H)
    zeros = np.zeros((B, H))
    h_out, cache = run(code, time_major(xb), zeros, zeros, weights, keep=False)
    assert cache is None
    expected = reference_layer(cell, xb, *weights, nonlinearity=nl)
    np.testing.assert_allclose(h_out.transpose(1, 0, 2), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize(("cell", "nl", "code"), CELLS, ids=CELL_IDS)
def test_forward_float32_close_to_float64(cell, nl, code):
    B, T, F, H = 3, 6, 2, 5
    rng = np.random.default_rng(2)
    xb = rng.standard_normal((B, T, F))
    w64 = make_layer(code, F, H)
    w32 = tuple(w.astype(np.float32) for w in w64)
    z64 = np.zeros((B, H))
    z32 = z64.astype(np.float32)
    h64, _ = run(code, time_major(xb), z64, z64, w64, keep=False)
    h32, _ = run(code, time_major(xb.astype(np.float32)), z32, z32, w32, keep=False)
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, h64, rtol=0, atol=2e-6)


def test_forward_nonzero_initial_state_matches_stepping():
    """Starting from (h0, c0) equals the continuation of a longer sequence."""
    B, T, F, H = 2, 7, 3, 4
    code = cpu.LSTM
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, F))
    weights = make_layer(code, F, H)
    zeros = np.zeros((B, H))
    h_full, cache = run(code, x, zeros, zeros, weights, window=3)
    h_tail, _ = run(code, np.ascontiguousarray(x[4:]), cache.h_start, cache.c_start,
                    weights, keep=False)
    np.testing.assert_allclose(h_tail, h_full[4:], rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------
# backward: inputs and initial states by finite differences
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "nl", "code"), CELLS, ids=CELL_IDS)
def test_backward_inputs_and_initial_state(cell, nl, code):
    """dx, dh0 (and dc0 for LSTM) of L = sum(R * h_out) against central differences."""
    B, T, F, H = 2, 4, 3, 3
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, B, F))
    h0 = rng.standard_normal((B, H)) * 0.5
    c0 = rng.standard_normal((B, H)) * 0.5
    weights = make_layer(code, F, H, seed=5)
    R = rng.standard_normal((T, B, H))

    def loss():
        h, _ = run(code, x, h0, c0, weights, keep=False)
        return float(np.sum(R * h))

    _, dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 = full_backward(code, x, h0, c0, weights, R)
    assert dx.shape == (T, B, F)
    assert_rel(dx, central_diff(loss, x, 1e-6), 1e-7)
    assert_rel(dh0, central_diff(loss, h0, 1e-6), 1e-7)
    if code == cpu.LSTM:
        assert_rel(dc0, central_diff(loss, c0, 1e-6), 1e-7)
    # the parameter gradients of this loss as well
    for w, dw in zip(weights, (dw_ih, dw_hh, db_ih, db_hh)):
        assert_rel(dw, central_diff(loss, w, 1e-6), 1e-7)


# ----------------------------------------------------------------------------
# truncated BPTT
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [cpu.LSTM, cpu.GRU, cpu.RNN_TANH])
def test_truncated_equals_full_bptt_on_detached_tail(code):
    """bptt window K < T: the gradient of the last K steps started from the detached state."""
    B, T, F, H, K = 3, 7, 2, 4, 3
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, B, F))
    h0 = rng.standard_normal((B, H)) * 0.3
    c0 = rng.standard_normal((B, H)) * 0.3
    weights = make_layer(code, F, H, seed=7)
    dh_out = rng.standard_normal((K, B, H))
    h_out, cache = run(code, x, h0, c0, weights, window=K)
    # caches hold K steps, not T (shown gate-major: (G, K, B, H))
    assert cache.window == K
    assert cache.gates.shape == (cpu.gate_count(code), K, B, H)
    if code in (cpu.LSTM, cpu.GRU):  # cell states / W_hn h + b_hn of the window's steps
        assert cache.extra.shape == (K, B, H)
    assert cache.t0 == T - K
    np.testing.assert_array_equal(cache.h_start, h_out[T - K - 1])
    trunc = cpu.layer_backward(code, cache, dh_out)
    # the same K steps as a sequence of their own, from the (detached) state before them
    tail = full_backward(code, np.ascontiguousarray(x[T - K:]), h_out[T - K - 1].copy(),
                         cache.c_start.copy() if code == cpu.LSTM else c0, weights, dh_out)
    for a, b in zip(trunc, tail[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("code", [cpu.LSTM, cpu.GRU])
def test_window_at_least_T_is_full_bptt(code):
    B, T, F, H = 3, 5, 2, 4
    rng = np.random.default_rng(8)
    x = rng.standard_normal((T, B, F))
    zeros = np.zeros((B, H))
    weights = make_layer(code, F, H)
    dh_out = rng.standard_normal((T, B, H))
    full = full_backward(code, x, zeros, zeros, weights, dh_out)
    for window in (T, T + 3):
        other = full_backward(code, x, zeros, zeros, weights, dh_out, window=window)
        for a, b in zip(full, other):
            np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------
# determinism, chunking, BLAS
# ----------------------------------------------------------------------------


def layer_problem(code, B, T, F, H, dtype, seed):
    """Time-major inputs, zero states, one layer's weights and output gradients."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, F)).astype(dtype)
    weights = make_layer(code, F, H, dtype=dtype)
    dh_out = rng.standard_normal((T, B, H)).astype(dtype)
    return x, np.zeros((B, H), dtype=dtype), weights, dh_out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_blas", [False, True])
@pytest.mark.parametrize("code", [cpu.LSTM, cpu.GRU, cpu.RNN_TANH])
def test_bit_identical_across_runs_and_rows_across_chunkings(code, use_blas, dtype):
    """The same call gives the same bits. Another chunking of the batch (rows per chunk
    are fixed by the shapes; here forced) gives each row's states, input gradients
    and start-state gradients bit for bit, and the weight gradients (sums over the
    chunks) to rounding; and a row's forward does not depend on the other rows."""
    x, zeros, weights, dh_out = layer_problem(code, 40, 5, 3, 6, dtype, seed=9)
    first = full_backward(code, x, zeros, zeros, weights, dh_out, use_blas=use_blas)
    again = full_backward(code, x, zeros, zeros, weights, dh_out, use_blas=use_blas)
    for a, b in zip(first, again):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for rows in (16, 48):
        other = full_backward(code, x, zeros, zeros, weights, dh_out, chunk_rows=rows,
                              use_blas=use_blas)
        for i, (a, b) in enumerate(zip(first, other)):
            if i in (0, 1, 6, 7):  # h_out, dx, dh0, dc0: per row
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    part, _ = run(code, np.ascontiguousarray(x[:, 3:10]), zeros[:7], zeros[:7], weights,
                  keep=False, use_blas=use_blas)
    np.testing.assert_array_equal(part, first[0][:, 3:10])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code", [cpu.LSTM, cpu.GRU, cpu.RNN_RELU])
def test_blas_and_plain_loops_agree(code, dtype):
    x, zeros, weights, dh_out = layer_problem(code, 5, 6, 3, 7, dtype, seed=10)
    loops = full_backward(code, x, zeros, zeros, weights, dh_out, use_blas=False)
    blas = full_backward(code, x, zeros, zeros, weights, dh_out, use_blas=True)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for a, b in zip(loops, blas):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("code", [cpu.LSTM, cpu.GRU, cpu.RNN_TANH])
def test_stack_forward_and_backward_equal_layer_by_layer(code):
    """Two layers run together (the layer above consuming the new state of the one
    below at each step) and backpropagated top-down per step, with dropout masks
    between them: the same as layer by layer, with the masks applied by hand."""
    B, T, F, H, K = 21, 6, 3, 4, 4
    rng = np.random.default_rng(13)
    x = rng.standard_normal((T, B, F))
    layers = [make_layer(code, F, H, seed=14), make_layer(code, H, H, seed=15)]
    masks = (rng.random((1, T, B, H)) > 0.3) / 0.7
    dh_top = rng.standard_normal((2, B, H))
    _, cache = cpu.stack_forward(code, x, layers, window=K, masks=masks, chunk_rows=16)
    grads, dx, dh_start, dc_start = cpu.stack_backward(code, cache, dh_top, need_dx=True)
    zeros = np.zeros((B, H))
    h0, c0 = run(code, x, zeros, zeros, layers[0], window=K)
    x1 = h0 * masks[0]
    h1, c1 = run(code, x1, zeros, zeros, layers[1], window=K)
    np.testing.assert_allclose(cache.h_top, h1[-1], rtol=1e-13, atol=1e-14)
    dh1 = np.zeros((K, B, H))
    dh1[-2:] = dh_top
    back1 = cpu.layer_backward(code, c1, dh1)
    back0 = cpu.layer_backward(code, c0, back1[0] * masks[0, T - K:])
    for got, want in ((grads[1], back1[1:5]), (grads[0], back0[1:5])):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, back0[0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dh_start[1], back1[5], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dh_start[0], back0[5], rtol=1e-12, atol=1e-13)
    if code == cpu.LSTM:
        np.testing.assert_allclose(dc_start[0], back0[6], rtol=1e-12, atol=1e-13)
    with pytest.raises(RuntimeError, match="serves one backward"):
        cpu.stack_backward(code, cache, dh_top)
    _, cache = cpu.stack_forward(code, x, layers, window=K)
    for bad in (np.zeros((K + 1, B, H)), np.zeros((1, B, H + 1)), np.zeros((0, B, H))):
        with pytest.raises(ValueError, match=r"dh_top must have shape \(S, 21, 4\)"):
            cpu.stack_backward(code, cache, bad)
    # a refused gradient leaves the cache usable (here: without masks, so other values)
    assert len(cpu.stack_backward(code, cache, dh_top)[0]) == 2


# ----------------------------------------------------------------------------
# inference: the fused stack
# ----------------------------------------------------------------------------


def stack_states(code, X, layers):
    """Top layer's last hidden state through layer_forward, layer by layer."""
    x = time_major(X)
    B = X.shape[0]
    H = layers[0][1].shape[1]
    zeros = np.zeros((B, H), dtype=X.dtype)
    for w in layers:
        x, _ = run(code, x, zeros, zeros, w, keep=False)
    return x[-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell,nl,code", CELLS, ids=CELL_IDS)
def test_stack_predict_matches_layer_forward(cell, nl, code, dtype):
    """With an identity head, stack_predict returns the top layer's last hidden state:
    bit for bit that of the training forward, layer by layer or as a stack (the same
    products, the same cell arithmetic), whatever the batch size and chunking. One
    input feature and several; the plain loops to rounding."""
    B, T, H = 11, 7, 5
    rng = np.random.default_rng(21)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for F in (1, 6):
        X = rng.standard_normal((B, T, F)).astype(dtype)
        layers = [make_layer(code, F, H, dtype=dtype, seed=1),
                  make_layer(code, H, H, dtype=dtype, seed=2)]
        eye = np.eye(H, dtype=dtype)
        zero = np.zeros(H, dtype=dtype)
        expected = stack_states(code, X, layers)
        outs = [cpu.stack_predict(code, X, layers, eye, zero, batch, n_chunks=n_chunks)
                for batch, n_chunks in [(11, 1), (4, 2), (5, 3), (11, 4)]]
        assert outs[0].dtype == dtype
        for out in outs:
            np.testing.assert_array_equal(out, expected)
        _, cache = cpu.stack_forward(code, time_major(X), layers)
        np.testing.assert_array_equal(cache.h_top, expected)
        np.testing.assert_array_equal(
            cpu.stack_predict(code, X, layers[:1], eye, zero, 4, n_chunks=2),
            stack_states(code, X, layers[:1]))
        loops = cpu.stack_predict(code, X, layers, eye, zero, 4, n_chunks=2, use_blas=False)
        np.testing.assert_allclose(loops, expected, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code,H,F", [(cpu.LSTM, 32, 1), (cpu.LSTM, 256, 16),
                                      (cpu.GRU, 64, 8), (cpu.RNN_TANH, 128, 4)])
def test_stack_predict_benchmark_shapes_independent_of_chunking(code, H, F, dtype):
    """At the benchmark's hidden sizes, chunks of 2 to 70 rows (whole and half vector
    tiles, padding) and single rows (the one-column product, no parallel region) give
    the same bits as the training forward."""
    rng = np.random.default_rng(23)
    X = rng.standard_normal((70, 3, F)).astype(dtype)
    layers = [make_layer(code, F, H, dtype=dtype, seed=3)]
    eye = np.eye(H, dtype=dtype)
    zero = np.zeros(H, dtype=dtype)
    outs = [cpu.stack_predict(code, X, layers, eye, zero, b, n_chunks=n)
            for b, n in [(70, 1), (70, 2), (64, 4), (13, 3), (70, 35), (35, 2), (1, 1)]]
    outs.append(np.concatenate([cpu.stack_predict(code, X[i:i + 1], layers, eye, zero, 1)
                                for i in (0, 37, 69)]))
    expected = stack_states(code, X, layers)
    for out in outs[:-1]:
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(outs[-1], expected[[0, 37, 69]])


def test_stack_predict_last_batch_with_more_chunks():
    """A short last batch may split into more chunks than the full ones (64 rows in 3
    chunks: 32 + 32; the last 40 rows: 16 + 16 + 8); every row is still predicted."""
    code = cpu.LSTM
    rng = np.random.default_rng(24)
    X = rng.standard_normal((104, 3, 2))
    layers = [make_layer(code, 2, 4)]
    eye, zero = np.eye(4), np.zeros(4)
    np.testing.assert_array_equal(cpu.stack_predict(code, X, layers, eye, zero, 64, n_chunks=3),
                                  cpu.stack_predict(code, X, layers, eye, zero, 104))


def test_stack_predict_head_and_empty_input():
    code = cpu.GRU
    rng = np.random.default_rng(22)
    X = rng.standard_normal((6, 4, 2))
    layers = [make_layer(code, 2, 3)]
    w = rng.standard_normal((2, 3))
    b = rng.standard_normal(2)
    out = cpu.stack_predict(code, X, layers, w, b, 4, n_chunks=2)
    np.testing.assert_allclose(out, stack_states(code, X, layers) @ w.T + b, rtol=1e-14)
    assert cpu.stack_predict(code, X[:0], layers, w, b, 4).shape == (0, 2)


def test_kernel_context_restores_settings():
    """BLAS threads and Numba's parallel chunk size are set inside and restored after,
    also when nested."""
    numba = pytest.importorskip("numba")
    libs = cpu._scipy_blas_controllers()
    before = [lib.num_threads for lib in libs]
    chunksize = numba.get_parallel_chunksize()
    with cpu.kernel_context():
        with cpu.kernel_context():
            assert all(lib.num_threads == 1 for lib in libs)
            assert numba.get_parallel_chunksize() == 1
        assert all(lib.num_threads == 1 for lib in libs)
    assert [lib.num_threads for lib in libs] == before
    assert numba.get_parallel_chunksize() == chunksize


CACHE_SCRIPT = """
import hashlib, sys
import numpy as np
from tsrnn._kernels import cpu
B, T, F, H = 40, 5, 3, 6
rng = np.random.default_rng(9)
digest = hashlib.sha256()
same = True
for code in (cpu.LSTM, cpu.GRU, cpu.RNN_TANH):
    G = cpu.gate_count(code)
    x = rng.standard_normal((T, B, F)).astype(np.float32)
    w = [rng.uniform(-0.4, 0.4, s).astype(np.float32)
         for s in ((G * H, F), (G * H, H), (G * H,), (G * H,))]
    zeros = np.zeros((B, H), np.float32)
    dh = rng.standard_normal((T, B, H)).astype(np.float32)
    outs = []
    for rows in (16, 48):
        h, cache = cpu.layer_forward(code, x, zeros, zeros, *w, chunk_rows=rows)
        grads = cpu.layer_backward(code, cache, dh)
        outs.append([h.copy()] + list(grads))
    same &= all(np.array_equal(outs[0][i], outs[1][i]) for i in (0, 1, 6))
    for a in outs[0]:
        digest.update(np.ascontiguousarray(a).tobytes())
print(same, digest.hexdigest())
"""


def test_cached_code_computes_what_fresh_code_computes(tmp_path):
    """Machine code loaded from Numba's cache gives bit-identical results to freshly
    compiled code, and both give each row's results independently of the chunking.
    (Implicit FMA contraction once broke this only in cached code, which the
    in-process tests never run.)"""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH"))
                                          if p))
    runs = [subprocess.run([sys.executable, "-c", CACHE_SCRIPT], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
            for _ in ("fresh", "cached")]
    assert runs[0][0] == "True" and runs[1][0] == "True"
    assert runs[0][1] == runs[1][1]


VECTOR_SCRIPT = """
import sys
import numpy as np
from numba import njit
from tsrnn._kernels import cpu
if sys.argv[1] == "first":  # compile the scalar functions on their own
    cpu._tanh_f32(np.float32(0.5)), cpu._sigmoid_f32(np.float32(0.5))
    cpu._lstm_forward_flat(*([np.zeros(64, np.float32)] * 7), 64)
else:  # a loop compiled now, around them
    @njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.size):
            out[i] = cpu._sigmoid(x[i]) * cpu._tanh(x[i])
    x = np.zeros(64, np.float32)
    loop(x, x.copy())
    ir = next(iter(loop.inspect_llvm().values()))
    print("vectorised" if "x float>" in ir else "scalar")
"""


def test_activations_inline_into_loops_compiled_later(tmp_path):
    """The float32 tanh and sigmoid vectorise inside loops compiled in a later process
    than the one that first compiled them (a function loaded from Numba's cache cannot
    be inlined, and once made every new cell loop scalar and 5x slower)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH"))
                                          if p))
    out = [subprocess.run([sys.executable, "-c", VECTOR_SCRIPT, step], env=env, check=True,
                          capture_output=True, text=True).stdout.split()
           for step in ("first", "later")]
    assert out[1] == ["vectorised"]


@pytest.mark.parametrize("features, dtype", [(2, np.float32), (7, np.float32),
                                             (3, np.float64)])
def test_inputs_that_do_not_fit_the_layers_are_refused(features, dtype):
    layout = network.ParameterLayout("lstm", 3, 5, 1, 1)
    flat = layout.init(np.random.default_rng(0), dtype=np.float32)
    X = np.ones((4, 6, features), dtype=dtype)
    with pytest.raises(ValueError, match="features per step|cast one"):
        network.predict(layout, flat, X)
    with pytest.raises(ValueError, match="features per step|cast one"):
        network.loss_and_grad(layout, flat, X, np.ones((4, 1), dtype=np.float32))
