"""CUDA kernels under the simulator, compared with the CPU kernels and network.py.

Tiny shapes (T <= 4, B <= 5, H <= 4) with tiny launch geometry (conftest.TINY), so that
every multi-tile, multi-block, multi-split and multi-window-block path runs. float64 is
compared within 1e-9, float32 loosely.
"""

import numpy as np
import pytest

from tsrnn import cuda_backend, network
from tsrnn._kernels import cpu, optim
from tsrnn._kernels import cuda as kc

pytestmark = pytest.mark.cudasim

CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
CELL_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]
TOL64 = dict(rtol=1e-9, atol=1e-9)
TOL32 = dict(rtol=2e-3, atol=2e-4)


def tol(dtype):
    return TOL64 if np.dtype(dtype) == np.float64 else TOL32


def problem(cell, num_layers=1, *, B=5, T=4, F=2, H=3, O=2, dtype=np.float64, seed=0):
    layout = network.ParameterLayout(cell, F, H, num_layers, O)
    rng = np.random.default_rng(seed)
    flat = layout.init(rng, dtype=dtype)
    X = rng.standard_normal((B, T, F)).astype(dtype)
    y = rng.standard_normal((B, O)).astype(dtype)
    return layout, flat, X, y


def dev(a):
    return kc.to_device(np.ascontiguousarray(a))


# ----------------------------------------------------------------------------
# module contract
# ----------------------------------------------------------------------------


def test_constants_match_cpu_and_network():
    assert (kc.RNN_TANH, kc.RNN_RELU, kc.LSTM, kc.GRU) == (
        cpu.RNN_TANH, cpu.RNN_RELU, cpu.LSTM, cpu.GRU)
    assert set(kc.LOSS_CODES) == set(network.LOSSES)
    assert kc.HUBER_DELTA == network.HUBER_DELTA


def test_signature_table_covers_every_kernel():
    kernels = {name for name in dir(kc) if name.startswith("_") and name.endswith("_cuda")}
    assert kernels == set(kc.SIGNATURES)
    for sigs in kc.SIGNATURES.values():
        assert set(sigs) == {np.dtype(np.float32), np.dtype(np.float64)}


def test_cuda_available_under_simulator():
    ok, reason = cuda_backend.cuda_available()
    assert ok and "simulator" in reason


def test_window_blocks_match_cpu_blocking():
    assert kc.window_blocks(4, 4) == [(0, 4)]
    assert kc.window_blocks(4, 3) == [(0, 1), (1, 4)]
    assert kc.window_blocks(5, 2) == [(0, 1), (1, 3), (3, 5)]
    assert kc.window_blocks(4, 1) == [(0, 1), (1, 2), (2, 3), (3, 4)]


# ----------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("M,K,N", [(5, 3, 4), (1, 1, 1), (4, 7, 3)])
def test_gemm_kernels_match_numpy(dtype, M, K, N):
    rng = np.random.default_rng(M * 100 + K * 10 + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    Bt = rng.standard_normal((N, K)).astype(dtype)
    Bn = rng.standard_normal((K, N)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    C = kc.device_empty((M, N), dtype)
    kc.gemm_nt(dev(A), dev(Bt), C, bias=dev(bias))
    np.testing.assert_allclose(C.copy_to_host(), A @ Bt.T + bias, **tol(dtype))
    kc.gemm_nt(dev(A), dev(Bt), C)
    np.testing.assert_allclose(C.copy_to_host(), A @ Bt.T, **tol(dtype))
    kc.gemm_nn(dev(A), dev(Bn), C)
    np.testing.assert_allclose(C.copy_to_host(), A @ Bn, **tol(dtype))
    # split-K transpose product and column sums over R rows (several splits of 3)
    R = M + 3
    Ar = rng.standard_normal((R, M)).astype(dtype)
    Br = rng.standard_normal((R, N)).astype(dtype)
    partial = kc.device_empty(kc.partial_size(R, M, N) + kc.partial_size(R, M, 1), dtype)
    out = kc.device_empty((M, N), dtype)
    kc.gemm_tn(dev(Ar), dev(Br), out, partial)
    np.testing.assert_allclose(out.copy_to_host(), Ar.T @ Br, **tol(dtype))
    col = kc.device_empty(M, dtype)
    kc.colsum(dev(Ar), col, partial)
    np.testing.assert_allclose(col.copy_to_host(), Ar.sum(axis=0), **tol(dtype))


def test_gemm_tn_with_no_rows_writes_zeros():
    out = kc.to_device(np.ones((2, 3)))
    kc.gemm_tn(kc.device_empty((0, 2), np.float64), kc.device_empty((0, 3), np.float64),
               out, kc.device_empty(6, np.float64))
    assert not out.copy_to_host().any()


def test_reductions_are_exact_sums_over_blocks():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(23)
    x[[4, 17]] = [np.inf, np.nan]
    rpartial = kc.device_empty(kc.MAX_BLOCKS, np.float64)
    out = kc.device_zeros(2, np.float64)
    kc.count_nonfinite(dev(x), rpartial, out, 1)
    assert out.copy_to_host()[1] == 2
    # gradient norm, clipping factor and status
    g = rng.standard_normal(23)
    losses = dev(np.array([0.5, np.nan]))
    status = kc.device_zeros(2, np.int64)
    scale = kc.device_zeros(1, np.float64)
    kc.grad_norm_status(dev(g), 0.1, losses, 0, status, scale, rpartial)
    norm = np.sqrt(np.sum(g * g))
    np.testing.assert_allclose(scale.copy_to_host()[0], 0.1 / (norm + 1e-6), rtol=1e-13)
    assert status.copy_to_host().tolist() == [0, 0]
    kc.grad_norm_status(dev(g), None, losses, 1, status, scale, rpartial)
    assert scale.copy_to_host()[0] == 1.0
    assert status.copy_to_host().tolist() == [1, 1]


# ----------------------------------------------------------------------------
# one layer: forward and BPTT against the CPU kernels
# ----------------------------------------------------------------------------


def layer_case(cell, nonlinearity, dtype, window, B=5, T=4, F=2, H=3, seed=1):
    rng = np.random.default_rng(seed)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    s = 1 / np.sqrt(H)
    w_ih = rng.uniform(-s, s, (G * H, F)).astype(dtype)
    w_hh = rng.uniform(-s, s, (G * H, H)).astype(dtype)
    b_ih = rng.uniform(-s, s, G * H).astype(dtype)
    b_hh = rng.uniform(-s, s, G * H).astype(dtype)
    x = rng.standard_normal((T, B, F)).astype(dtype)
    K = T if window is None else window
    dh = rng.standard_normal((K, B, H)).astype(dtype)
    return network.cell_code(cell, nonlinearity), x, w_ih, w_hh, b_ih, b_hh, K, dh


def cpu_gates(cache, K, B, H):
    """The CPU cache's activated gates as (K, B, G*H), whatever its internal layout."""
    g = np.array(cache.gates)
    if g.ndim == 4:  # gate-major (G, K, B, H)
        return g.transpose(1, 2, 0, 3).reshape(K, B, -1)
    return g


def gpu_layer(cell_id, x, w_ih, w_hh, b_ih, b_hh, K, dh, with_dx=True):
    T, B, F = x.shape
    GH, H = w_hh.shape
    dtype = x.dtype
    e = lambda *shape: kc.device_empty(shape, dtype)  # noqa: E731
    xd, zeros = dev(x), kc.device_zeros((B, H), dtype)
    wih, whh = dev(w_ih), dev(w_hh)
    h_out, gates, extra, c_carry = e(T, B, H), e(K, B, GH), e(K, B, H), e(B, H)
    c_start = kc.layer_forward(cell_id, xd, zeros, wih, whh, dev(b_ih), dev(b_hh), h_out,
                               gates, extra, c_carry)
    fwd = (h_out.copy_to_host(), gates.copy_to_host(), extra.copy_to_host(),
           c_start.copy_to_host())
    dzh = e(K, B, GH) if cell_id == kc.GRU else gates
    grads = [e(GH, F), e(GH, H), e(GH), e(GH)]
    dx = e(K, B, F) if with_dx else None
    partial = e(kc.partial_size(K * B, GH, max(F, H)))
    dhd = dev(dh)
    kc.layer_backward(cell_id, xd, zeros, h_out, gates, extra, dzh, c_start, wih, whh,
                      [dhd[s] for s in range(K)], e(B, H), e(B, H), *grads, dx, partial)
    back = [g.copy_to_host() for g in grads] + ([dx.copy_to_host()] if with_dx else [])
    return fwd, back


@pytest.mark.parametrize("window", [None, 3, 1], ids=["full", "K3", "K1"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell,nonlinearity", CELLS, ids=CELL_IDS)
def test_layer_forward_and_backward_match_cpu(cell, nonlinearity, dtype, window):
    cell_id, x, w_ih, w_hh, b_ih, b_hh, K, dh = layer_case(cell, nonlinearity, dtype, window)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    zeros = np.zeros((B, H), dtype)
    h_ref, cache = cpu.layer_forward(cell_id, x, zeros, zeros, w_ih, w_hh, b_ih, b_hh,
                                     window=window)
    ref_fwd = {"h_out": h_ref, "gates": cpu_gates(cache, K, B, H)}
    if cell == "lstm":
        ref_fwd["extra"] = np.array(cache.extra)
        ref_fwd["c_start"] = np.array(cache.c_start)
    elif cell == "gru":
        ref_fwd["extra"] = np.array(cache.extra)
    ref_back = cpu.layer_backward(cell_id, cache, dh)
    fwd, back = gpu_layer(cell_id, x, w_ih, w_hh, b_ih, b_hh, K, dh)
    got_fwd = dict(zip(["h_out", "gates", "extra", "c_start"], fwd))
    for name, want in ref_fwd.items():
        np.testing.assert_allclose(got_fwd[name], want, **tol(dtype), err_msg=name)
    dx, dw_ih, dw_hh, db_ih, db_hh = ref_back[:5]
    for name, got, want in zip(["dw_ih", "dw_hh", "db_ih", "db_hh", "dx"], back,
                               [dw_ih, dw_hh, db_ih, db_hh, dx]):
        np.testing.assert_allclose(got, want, **tol(dtype), err_msg=name)


# ----------------------------------------------------------------------------
# the whole network: loss, every gradient, predictions
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("cell,nonlinearity", CELLS, ids=CELL_IDS)
def test_loss_and_grad_match_network_two_layers(cell, nonlinearity):
    layout, flat, X, y = problem(cell, num_layers=2, seed=2)
    cell_id = network.cell_code(cell, nonlinearity)
    for loss, alpha, window in [("squared_error", 0.3, None), ("huber", 0.0, 3)]:
        if loss == "huber":
            y = y * 3  # both Huber branches
        want = network.loss_and_grad(layout, flat, X, y, loss=loss, alpha=alpha,
                                     cell_id=cell_id, bptt_steps=window)
        got = cuda_backend.loss_and_grad(layout, flat, X, y, loss=loss, alpha=alpha,
                                         cell_id=cell_id, bptt_steps=window)
        np.testing.assert_allclose(got[0], want[0], **TOL64)
        np.testing.assert_allclose(got[1], want[1], **TOL64)


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_loss_and_dtype(loss, dtype):
    layout, flat, X, y = problem("lstm", dtype=dtype, seed=4)
    y = (y * 2).astype(dtype)
    want = network.loss_and_grad(layout, flat, X, y, loss=loss, alpha=0.1)
    got = cuda_backend.loss_and_grad(layout, flat, X, y, loss=loss, alpha=0.1)
    assert got[1].dtype == dtype
    np.testing.assert_allclose(got[0], want[0], **tol(dtype))
    np.testing.assert_allclose(got[1], want[1], **tol(dtype))


@pytest.mark.parametrize("cell,nonlinearity", CELLS, ids=CELL_IDS)
def test_predict_matches_network(cell, nonlinearity):
    layout, flat, X, _ = problem(cell, num_layers=2, T=3, seed=5)
    cell_id = network.cell_code(cell, nonlinearity)
    want = network.predict(layout, flat, X, cell_id=cell_id)
    # chunks of 2 rows and inference blocks of 2 steps (TINY)
    got = cuda_backend.predict(layout, flat, X, cell_id, batch_size=2)
    np.testing.assert_allclose(got, want, **TOL64)


def test_predict_float32():
    layout, flat, X, _ = problem("gru", dtype=np.float32, seed=6)
    got = cuda_backend.predict(layout, flat, X)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, network.predict(layout, flat, X), **TOL32)


def test_results_are_bit_identical_between_runs():
    layout, flat, X, y = problem("gru", seed=7)
    a = cuda_backend.loss_and_grad(layout, flat, X, y, alpha=0.1)
    b = cuda_backend.loss_and_grad(layout, flat, X, y, alpha=0.1)
    assert a[0] == b[0]
    assert np.array_equal(a[1], b[1])


@pytest.mark.parametrize("geometry", [
    {"TILE": 1, "MAX_BLOCKS": 1, "SPLIT_ROWS": 1},
    {"TILE": 3, "MAX_BLOCKS": 3, "SPLIT_ROWS": 100, "THREADS": 1},
    {"TILE": 8, "MAX_BLOCKS": 64, "REDUCE_THREADS": 16, "THREADS": 32},
], ids=["1x1", "3x3", "8x8"])
def test_any_launch_geometry_gives_the_same_result(monkeypatch, geometry):
    for name, value in geometry.items():
        monkeypatch.setattr(kc, name, value)
    layout, flat, X, y = problem("lstm", B=3, T=2, H=3, seed=8)
    want = network.loss_and_grad(layout, flat, X, y, alpha=0.1)
    got = cuda_backend.loss_and_grad(layout, flat, X, y, alpha=0.1)
    np.testing.assert_allclose(got[0], want[0], **TOL64)
    np.testing.assert_allclose(got[1], want[1], **TOL64)


# ----------------------------------------------------------------------------
# training: epochs of minibatches with each optimiser, as the estimator's CPU loop
# ----------------------------------------------------------------------------

SOLVERS = [
    ("adam", dict(learning_rate=0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-7)),
    ("sgd", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("sgd", dict(learning_rate=0.1, momentum=0.5, nesterov=False)),
    ("sgd", dict(learning_rate=0.1, momentum=0.0, nesterov=False)),
    ("rmsprop", dict(learning_rate=0.01, rho=0.9, epsilon=1e-6)),
]
SOLVER_IDS = ["adam", "sgd-nesterov", "sgd-momentum", "sgd-plain", "rmsprop"]
EPOCHS = [[[0, 3], [1, 4], [2]], [[2, 4], [0, 1], [3]]]  # unequal batches, reshuffled


def cpu_epochs(layout, flat, cell_id, X, y, opt, *, loss, alpha, clip, window):
    params = flat.copy()
    curve = []
    for e, batches in enumerate(EPOCHS):
        if e == 1:
            opt.learning_rate /= 5  # as the estimator's adaptive schedule
        total = 0.0
        for idx in batches:
            value, grad = network.loss_and_grad(layout, params, X[idx], y[idx], loss=loss,
                                                alpha=alpha, cell_id=cell_id,
                                                bptt_steps=window)
            if clip is not None:
                optim.clip_grad_norm(grad, clip)
            opt.step(params, grad)
            total += value * len(idx)
        curve.append(total / sum(len(b) for b in batches))
    return params, curve


def gpu_epochs(layout, flat, cell_id, X, y, opt, *, loss, alpha, clip, window):
    trainer = cuda_backend.CudaTrainer(layout, flat, cell_id, X, y, opt, loss=loss,
                                       alpha=alpha, clip_norm=clip, bptt_steps=window)
    curve = []
    for e, batches in enumerate(EPOCHS):
        if e == 1:
            opt.learning_rate /= 5
        curve.append(trainer.run_epoch([np.array(b) for b in batches]))
        assert trainer.diverged_batch is None and trainer.params_finite
    trainer.sync_optimizer()
    return trainer.get_params(), curve


@pytest.mark.parametrize("solver,kw", SOLVERS, ids=SOLVER_IDS)
def test_training_epochs_match_cpu(solver, kw):
    layout, flat, X, y = problem("lstm", seed=9)
    cell_id = network.cell_code("lstm")
    settings = dict(loss="squared_error", alpha=0.05, clip=0.5, window=3)
    opt_cpu = optim.Optimizer(solver, layout.size, flat.dtype, **kw)
    opt_gpu = optim.Optimizer(solver, layout.size, flat.dtype, **kw)
    p_cpu, c_cpu = cpu_epochs(layout, flat, cell_id, X, y, opt_cpu, **settings)
    p_gpu, c_gpu = gpu_epochs(layout, flat, cell_id, X, y, opt_gpu, **settings)
    assert opt_gpu.t == opt_cpu.t == 6
    np.testing.assert_allclose(c_gpu, c_cpu, **TOL64)
    np.testing.assert_allclose(p_gpu, p_cpu, **TOL64)
    for s_gpu, s_cpu in zip(opt_gpu.state, opt_cpu.state):
        np.testing.assert_allclose(s_gpu, s_cpu, **TOL64)


@pytest.mark.parametrize("cell,nonlinearity", [("gru", "tanh"), ("rnn", "relu")])
def test_training_float32_two_layers(cell, nonlinearity):
    layout, flat, X, y = problem(cell, num_layers=2, dtype=np.float32, seed=10)
    cell_id = network.cell_code(cell, nonlinearity)
    settings = dict(loss="huber", alpha=0.0, clip=None, window=None)
    kw = dict(learning_rate=0.01)
    p_cpu, c_cpu = cpu_epochs(layout, flat, cell_id, X, y,
                              optim.Optimizer("adam", layout.size, np.float32, **kw),
                              **settings)
    p_gpu, c_gpu = gpu_epochs(layout, flat, cell_id, X, y,
                              optim.Optimizer("adam", layout.size, np.float32, **kw),
                              **settings)
    assert p_gpu.dtype == np.float32
    np.testing.assert_allclose(c_gpu, c_cpu, rtol=1e-4)
    np.testing.assert_allclose(p_gpu, p_cpu, rtol=1e-3, atol=1e-4)


def test_divergence_stops_updates_at_the_first_bad_batch():
    layout, flat, X, y = problem("rnn", seed=11)
    y = y.copy()
    y[1] = np.nan  # second batch [1, 4] of the first epoch
    opt = optim.Optimizer("sgd", layout.size, flat.dtype, learning_rate=0.1)
    trainer = cuda_backend.CudaTrainer(layout, flat, network.cell_code("rnn"), X, y, opt)
    value = trainer.run_epoch([np.array(b) for b in EPOCHS[0]])
    assert not np.isfinite(value)
    assert trainer.diverged_batch == 1
    assert opt.t == trainer.t == 1
    assert trainer.params_finite
    # the parameters are those after the first batch only
    ref = flat.copy()
    _, grad = network.loss_and_grad(layout, ref, X[[0, 3]], y[[0, 3]])
    optim.Optimizer("sgd", layout.size, flat.dtype, learning_rate=0.1).step(ref, grad)
    np.testing.assert_allclose(trainer.get_params(), ref, **TOL64)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_params_finite_flag_reports_overflowing_weights():
    layout, flat, X, y = problem("rnn", seed=12)
    y = y * 1e4  # gradients well above 2, so that a step of 1e308 overflows
    opt = optim.Optimizer("sgd", layout.size, flat.dtype, learning_rate=1e308, momentum=0.0)
    trainer = cuda_backend.CudaTrainer(layout, flat, network.cell_code("rnn"), X, y, opt)
    trainer.run_epoch([np.arange(5)])
    assert trainer.diverged_batch is None
    assert not trainer.params_finite


def test_checkpoints_predict_and_params_roundtrip():
    layout, flat, X, y = problem("gru", seed=13)
    opt = optim.Optimizer("adam", layout.size, flat.dtype, learning_rate=0.01)
    trainer = cuda_backend.CudaTrainer(layout, flat, network.cell_code("gru"), X[:3], y[:3],
                                       opt, X_val=X[3:])
    np.testing.assert_array_equal(trainer.get_params(), flat)
    trainer.checkpoint("start")
    trainer.run_epoch([np.arange(3)])
    moved = trainer.get_params()
    assert not np.array_equal(moved, flat)
    np.testing.assert_allclose(trainer.predict(), network.predict(layout, moved, X[3:]),
                               **TOL64)
    np.testing.assert_allclose(trainer.predict(X[:2]), network.predict(layout, moved, X[:2]),
                               **TOL64)
    np.testing.assert_array_equal(trainer.get_params("start"), flat)
    trainer.restore("start")
    np.testing.assert_array_equal(trainer.get_params(), flat)
    trainer.set_params(moved)
    np.testing.assert_array_equal(trainer.get_params(), moved)


def test_invalid_arguments_raise_clear_errors():
    layout, flat, X, y = problem("lstm", seed=14)
    opt = optim.Optimizer("adam", layout.size, flat.dtype, learning_rate=0.01)
    cell_id = network.cell_code("lstm")
    with pytest.raises(ValueError, match="dropout=0.2 is not implemented for device='cuda'"):
        cuda_backend.CudaTrainer(layout, flat, cell_id, X, y, opt, dropout=0.2)
    with pytest.raises(ValueError, match="params must have shape"):
        cuda_backend.CudaTrainer(layout, flat[:-1], cell_id, X, y, opt)
    with pytest.raises(ValueError, match="X must be 3-D"):
        cuda_backend.CudaTrainer(layout, flat, cell_id, X[:, :, :1], y, opt)
    with pytest.raises(ValueError, match="y must have shape"):
        cuda_backend.CudaTrainer(layout, flat, cell_id, X, y[:, :1], opt)
    trainer = cuda_backend.CudaTrainer(layout, flat, cell_id, X, y, opt)
    with pytest.raises(ValueError, match="outside"):
        trainer.run_epoch([np.array([0, 5])])
    with pytest.raises(ValueError, match="non-empty 1-D integer"):
        trainer.run_epoch([np.array([], dtype=int)])
    with pytest.raises(ValueError, match="needs X_val"):
        trainer.predict()
