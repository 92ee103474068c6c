"""Optimisers and gradient clipping against torch.optim / torch.nn.utils (when torch is
installed), plus torch-free checks of the update equations."""

import numpy as np
import pytest

from tsrnn._kernels import optim

N_STEPS = 5


def gradients(n, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n) for _ in range(steps)]


def run_ours(solver, params, grads, **kw):
    opt = optim.Optimizer(solver, params.size, params.dtype, **kw)
    p = params.copy()
    for g in grads:
        opt.step(p, g.copy())
    return p, opt


def run_torch(torch, make_opt, params, grads):
    p = torch.nn.Parameter(torch.tensor(params))
    opt = make_opt([p])
    for g in grads:
        opt.zero_grad()
        p.grad = torch.tensor(g)
        opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_torch(nesterov):
    torch = pytest.importorskip("torch")
    params = np.random.default_rng(1).standard_normal(11)
    grads = gradients(11, N_STEPS)
    ours, _ = run_ours("sgd", params, grads, learning_rate=0.1, momentum=0.9,
                       nesterov=nesterov)
    ref = run_torch(torch, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9,
                                                       nesterov=nesterov),
                    params, grads)
    np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=1e-14)


def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    params = np.random.default_rng(2).standard_normal(13)
    grads = gradients(13, N_STEPS, seed=3)
    ours, opt = run_ours("adam", params, grads, learning_rate=0.01, beta_1=0.8,
                         beta_2=0.99, epsilon=1e-7)
    ref = run_torch(torch, lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99),
                                                        eps=1e-7),
                    params, grads)
    assert opt.t == N_STEPS
    np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=1e-14)


def test_rmsprop_matches_torch():
    torch = pytest.importorskip("torch")
    params = np.random.default_rng(4).standard_normal(9)
    grads = gradients(9, N_STEPS, seed=5)
    ours, _ = run_ours("rmsprop", params, grads, learning_rate=0.01, rho=0.9, epsilon=1e-6)
    ref = run_torch(torch, lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-6),
                    params, grads)
    np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=1e-14)


def test_adam_float32_keeps_dtype_and_tracks_float64():
    params = np.random.default_rng(6).standard_normal(7)
    grads = gradients(7, N_STEPS, seed=7)
    p64, _ = run_ours("adam", params, grads, learning_rate=0.01)
    p32, opt = run_ours("adam", params.astype(np.float32),
                        [g.astype(np.float32) for g in grads], learning_rate=0.01)
    assert p32.dtype == np.float32 and opt.state[0].dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=0, atol=1e-6)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(8).standard_normal(20)
    ours = g.copy()
    norm = optim.clip_grad_norm(ours, max_norm)
    p = torch.nn.Parameter(torch.zeros(20, dtype=torch.float64))
    p.grad = torch.tensor(g)
    ref_norm = torch.nn.utils.clip_grad_norm_([p], max_norm)
    assert norm == pytest.approx(float(ref_norm), rel=1e-14)
    np.testing.assert_allclose(ours, p.grad.numpy(), rtol=1e-14, atol=0)
    if max_norm > norm:
        np.testing.assert_array_equal(ours, g)


def test_clip_grad_norm_nonfinite_left_alone():
    g = np.array([1.0, np.inf, 2.0])
    norm = optim.clip_grad_norm(g, 1.0)
    assert not np.isfinite(norm)
    assert g[1] == np.inf and g[0] == 1.0


def test_optimizer_state_roundtrip():
    params = np.zeros(4)
    grads = gradients(4, 4, seed=9)
    opt = optim.Optimizer("adam", 4, np.float64, learning_rate=0.1)
    for g in grads[:2]:
        opt.step(params, g)
    snap = opt.get_state()
    saved = params.copy()
    for g in grads[2:]:
        opt.step(params, g)
    after = params.copy()
    opt.set_state(snap)
    params[...] = saved
    for g in grads[2:]:
        opt.step(params, g)
    np.testing.assert_array_equal(params, after)
    with pytest.raises(ValueError, match="unknown solver"):
        optim.Optimizer("lbfgs", 4, np.float64, learning_rate=0.1).step(params, grads[0])
