"""The network: layout, forward vs the NumPy reference, float64 gradient checks by central
differences over the flat parameter vector (every cell, 1 and 2 layers, dropout, L2,
losses, truncated BPTT), float32 vs float64, determinism.
"""

import numba
import numpy as np
import pytest

from reference import reference_predict
from tsrnn import network
from tsrnn._kernels import cpu

CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
CELL_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]
GRAD_TOL = 1e-6


def problem(cell, num_layers, *, B=3, T=5, F=2, H=3, O=2, dtype=np.float64, seed=0):
    layout = network.ParameterLayout(cell, F, H, num_layers, O)
    rng = np.random.default_rng(seed)
    flat = layout.init(rng, dtype=dtype)
    X = rng.standard_normal((B, T, F)).astype(dtype)
    y = rng.standard_normal((B, O)).astype(dtype)
    return layout, flat, X, y


def numeric_grad(f, flat, eps=1e-6):
    """Central differences of the scalar f(flat) over every element of flat."""
    g = np.empty(flat.shape, dtype=np.float64)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f(flat)
        flat[i] = old - eps
        fm = f(flat)
        flat[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def rel_error(a, b):
    """max |a - b| / max |b|: relative to the gradient's overall magnitude."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ----------------------------------------------------------------------------
# layout
# ----------------------------------------------------------------------------


def test_layout_names_shapes_and_views():
    layout = network.ParameterLayout("gru", 4, 5, 2, 3)
    names = [n for n, _ in layout.shapes()]
    assert names == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                     "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
                     "head.weight", "head.bias"]
    shapes = dict(layout.shapes())
    assert shapes["weight_ih_l0"] == (15, 4)
    assert shapes["weight_ih_l1"] == (15, 5)
    assert shapes["head.weight"] == (3, 5)
    flat = np.zeros(layout.size)
    views = layout.views(flat)
    views["bias_hh_l1"][2] = 7.0
    assert flat.sum() == 7.0
    mask = layout.weight_mask()
    assert mask.sum() == sum(int(np.prod(s)) for n, s in layout.shapes() if "weight" in n)
    with pytest.raises(ValueError, match="flat parameter vector"):
        layout.views(np.zeros(layout.size + 1))


# ----------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(("cell", "nl"), CELLS, ids=CELL_IDS)
def test_predict_matches_reference(cell, nl, num_layers):
    layout, flat, X, _ = problem(cell, num_layers, B=5)
    pred = network.predict(layout, flat, X, cell_id=network.cell_code(cell, nl), batch_size=2)
    expected = reference_predict(layout.views(flat), cell, num_layers, X, nl)
    np.testing.assert_allclose(pred, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize(("cell", "nl"), CELLS, ids=CELL_IDS)
def test_float32_close_to_float64(cell, nl):
    layout, flat, X, y = problem(cell, 2, B=4, T=6)
    code = network.cell_code(cell, nl)
    f32, X32, y32 = flat.astype(np.float32), X.astype(np.float32), y.astype(np.float32)
    p64 = network.predict(layout, flat, X, cell_id=code)
    p32 = network.predict(layout, f32, X32, cell_id=code)
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=0, atol=1e-5)
    l64, g64 = network.loss_and_grad(layout, flat, X, y, cell_id=code)
    l32, g32 = network.loss_and_grad(layout, f32, X32, y32, cell_id=code)
    assert g32.dtype == np.float32
    assert abs(l32 - l64) <= 1e-5 * max(1.0, abs(l64))
    assert rel_error(g32, g64) < 1e-5


# ----------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(("cell", "nl"), CELLS, ids=CELL_IDS)
def test_gradient_central_differences(cell, nl, num_layers):
    layout, flat, X, y = problem(cell, num_layers)
    code = network.cell_code(cell, nl)
    _, grad = network.loss_and_grad(layout, flat, X, y, cell_id=code)
    numeric = numeric_grad(lambda w: network.loss_and_grad(layout, w, X, y, cell_id=code)[0],
                           flat.copy())
    assert grad.dtype == np.float64 and grad.shape == flat.shape
    assert rel_error(grad, numeric) < GRAD_TOL


@pytest.mark.parametrize("loss", ["absolute_error", "huber"])
def test_gradient_other_losses(loss):
    layout, flat, X, y = problem("lstm", 1)
    y = y * 3  # some huber residuals beyond delta
    _, grad = network.loss_and_grad(layout, flat, X, y, loss=loss)
    numeric = numeric_grad(lambda w: network.loss_and_grad(layout, w, X, y, loss=loss)[0],
                           flat.copy())
    assert rel_error(grad, numeric) < GRAD_TOL


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradient_with_dropout_and_alpha(cell):
    """Dropout masks fixed by a seeded rng used identically in every evaluation."""
    layout, flat, X, y = problem(cell, 2)

    def evaluate(w):
        return network.loss_and_grad(layout, w, X, y, alpha=0.3, dropout=0.4,
                                     rng=np.random.default_rng(11))

    value, grad = evaluate(flat)
    value_plain, _ = network.loss_and_grad(layout, flat, X, y)
    assert value != value_plain
    numeric = numeric_grad(lambda w: evaluate(w)[0], flat.copy())
    assert rel_error(grad, numeric) < GRAD_TOL


def test_alpha_penalises_weights_not_biases():
    layout, flat, X, y = problem("gru", 1)
    alpha = 0.7
    v0, g0 = network.loss_and_grad(layout, flat, X, y)
    v1, g1 = network.loss_and_grad(layout, flat, X, y, alpha=alpha)
    mask = layout.weight_mask()
    B = X.shape[0]
    assert v1 == pytest.approx(v0 + 0.5 * alpha * np.sum(flat[mask] ** 2) / B, rel=1e-14)
    np.testing.assert_allclose(g1 - g0, np.where(mask, alpha / B * flat, 0.0), atol=1e-15)


# ----------------------------------------------------------------------------
# truncated BPTT
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bptt_steps_at_least_T_is_exact_full_bptt(cell):
    layout, flat, X, y = problem(cell, 2, T=5)
    v_full, g_full = network.loss_and_grad(layout, flat, X, y)
    for steps in (5, 9):
        v, g = network.loss_and_grad(layout, flat, X, y, bptt_steps=steps)
        assert v == v_full
        np.testing.assert_array_equal(g, g_full)


def _detached_tail_loss(layout, code, X, y, K, states):
    """Loss of the stack run on the last K steps from fixed per-layer (h, c) states."""
    def loss(w):
        p = layout.views(w)
        x = np.ascontiguousarray(X[:, -K:].transpose(1, 0, 2))
        for k in range(layout.num_layers):
            h0, c0 = states[k]
            x, _ = cpu.layer_forward(code, x, h0, c0, p[f"weight_ih_l{k}"],
                                     p[f"weight_hh_l{k}"], p[f"bias_ih_l{k}"],
                                     p[f"bias_hh_l{k}"], keep=False)
        pred = x[-1] @ p["head.weight"].T + p["head.bias"]
        return network.loss_value_and_grad("squared_error", pred, y)[0]
    return loss


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_truncated_bptt_is_gradient_of_truncated_graph(cell):
    """bptt_steps K < T: states before the last K steps are constants (detached)."""
    T, K = 7, 3
    layout, flat, X, y = problem(cell, 2, T=T)
    code = network.cell_code(cell)
    value, grad = network.loss_and_grad(layout, flat, X, y, bptt_steps=K)
    # per-layer states before the window, at the current parameters
    p = layout.views(flat)
    x = np.ascontiguousarray(X.transpose(1, 0, 2))
    zeros = np.zeros((X.shape[0], layout.hidden_size))
    states = []
    for k in range(layout.num_layers):
        x, cache = cpu.layer_forward(code, x, zeros, zeros, p[f"weight_ih_l{k}"],
                                     p[f"weight_hh_l{k}"], p[f"bias_ih_l{k}"],
                                     p[f"bias_hh_l{k}"], window=K)
        assert cache.window == K and cache.gates.shape[1] == K
        c_start = cache.c_start.copy() if code == cpu.LSTM else zeros
        states.append((cache.h_start.copy(), c_start))
    loss = _detached_tail_loss(layout, code, X, y, K, states)
    assert value == pytest.approx(loss(flat), rel=1e-13)
    numeric = numeric_grad(loss, flat.copy())
    assert rel_error(grad, numeric) < GRAD_TOL
    # and it is not the full gradient
    _, g_full = network.loss_and_grad(layout, flat, X, y)
    assert rel_error(grad, g_full) > 1e-6


# ----------------------------------------------------------------------------
# determinism
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bit_identical_runs_and_thread_counts(cell):
    # B = 96: training in 3 chunks of 32 rows whatever the threads; inference in 2
    # chunks of 48 with 1 thread, 3 of 32 with 2 (network._n_chunks)
    layout, flat, X, y = problem(cell, 2, B=96, H=5)
    v1, g1 = network.loss_and_grad(layout, flat, X, y)
    v2, g2 = network.loss_and_grad(layout, flat, X, y)
    assert v1 == v2
    np.testing.assert_array_equal(g1, g2)
    p1 = network.predict(layout, flat, X)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        v3, g3 = network.loss_and_grad(layout, flat, X, y)
        p3 = network.predict(layout, flat, X)
    finally:
        numba.set_num_threads(old)
    assert v1 == v3
    np.testing.assert_array_equal(g1, g3)
    np.testing.assert_array_equal(p1, p3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_propagates(dtype):
    """Divergence detection relies on NaN showing up (no fastmath nnan; the float32
    sigmoid/tanh keep NaN)."""
    for cell in ("lstm", "gru", "rnn"):
        layout, flat, X, y = problem(cell, 2, dtype=dtype)
        bad = flat.copy()
        bad[3] = np.nan
        value, grad = network.loss_and_grad(layout, bad, X, y)
        assert np.isnan(value) and np.isnan(grad).any()
        assert np.isnan(network.predict(layout, bad, X)).all()


def test_predict_independent_of_batch_size():
    layout, flat, X, _ = problem("lstm", 2, B=23, H=4)
    p1 = network.predict(layout, flat, X, batch_size=1024)
    for batch_size in (2, 5, 8):
        np.testing.assert_array_equal(network.predict(layout, flat, X, batch_size=batch_size),
                                      p1)


# ----------------------------------------------------------------------------
# import cost
# ----------------------------------------------------------------------------

LAZY_IMPORT_SCRIPT = """
import sys
import tsrnn
lazy = ("tsrnn.forecasting", "tsrnn.windowing", "sklearn.linear_model")
before = [m for m in lazy if m in sys.modules]
names = dir(tsrnn)
from tsrnn import RNNForecaster
print(before, all(n in names for n in tsrnn.__all__),
      RNNForecaster is tsrnn.RNNForecaster, tsrnn.backtest.__module__,
      "tsrnn.forecasting" in sys.modules)
"""


def test_import_defers_forecasting():
    """`import tsrnn` does not load the forecaster's modules (pandas time machinery,
    sklearn.linear_model: ~0.3 s of the warm-cache latency); they load on first access.
    (pandas itself is imported by scikit-learn >= 1.6's sklearn.utils.fixes anyway.)"""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-c", LAZY_IMPORT_SCRIPT], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == "[] True True tsrnn.forecasting True"
    import tsrnn

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tsrnn.nope  # noqa: B018

