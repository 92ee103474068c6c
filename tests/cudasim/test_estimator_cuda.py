"""RNNRegressor(device='cuda') under the simulator, against the same model on the CPU.

The GPU path shares the estimator's epoch bookkeeping with the CPU path, so with
float64 and the same random_state both give the same batches, losses, stopping
decisions and weights to rounding (1e-9). Shapes are tiny: the simulator runs every
CUDA thread as a Python thread.
"""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNRegressor, TrainingDivergedError, cuda_backend

pytestmark = pytest.mark.cudasim

TOL64 = dict(rtol=1e-9, atol=1e-9)
SMALL = dict(hidden_size=3, batch_size=8, shuffle=True, dtype="float64", random_state=0)


def data(seed=0, n=12, T=5, F=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F))
    y = X[:, -1, 0] - 0.5 * X[:, -2, -1] + 0.1 * rng.normal(size=n)
    return X, y


def fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def assert_same_training(gpu, cpu):
    assert gpu.device_ == "cuda" and cpu.device_ == "cpu"
    assert (gpu.n_iter_, gpu.t_) == (cpu.n_iter_, cpu.t_)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, **TOL64)
    np.testing.assert_allclose(gpu._params, cpu._params, **TOL64)
    assert gpu._params.dtype == np.float64
    assert gpu._optimizer_state["t"] == cpu._optimizer_state["t"]
    for s_gpu, s_cpu in zip(gpu._optimizer_state["state"], cpu._optimizer_state["state"]):
        np.testing.assert_allclose(s_gpu, s_cpu, **TOL64)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cuda_fit_matches_cpu(cell):
    X, y = data()  # 12 samples: shuffled batches of 8 and 4 rows
    kw = dict(SMALL, cell=cell, max_iter=2, learning_rate_init=0.01)
    gpu = fit_quietly(RNNRegressor(device="cuda", **kw), X, y)
    cpu = fit_quietly(RNNRegressor(device="cpu", **kw), X, y)
    assert gpu.n_iter_ == 2
    assert_same_training(gpu, cpu)


def test_partial_fit_on_the_gpu_continues_from_weights_and_optimizer_state(capsys):
    X, y = data()
    kw = dict(SMALL, cell="rnn", max_iter=1, learning_rate_init=0.01)
    gpu = fit_quietly(RNNRegressor(device="cuda", verbose=True, **kw), X, y)
    cpu = fit_quietly(RNNRegressor(device="cpu", **kw), X, y)
    gpu.partial_fit(X, y)
    cpu.partial_fit(X, y)
    assert gpu.n_iter_ == 2 and gpu._optimizer_state["t"] == 4
    assert_same_training(gpu, cpu)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")]
    assert [line.split(":")[0] for line in lines] == ["Epoch 1/1", "Epoch 2/2"]


@pytest.fixture(scope="module")
def early_stopped():
    """A device='auto' model whose best validation epoch (2 of 3) is not the last, and
    its CPU twin. Fitted once for the tests below."""
    from tsrnn._kernels import cuda as kc

    # the autouse tiny_blocks fixture is function-scoped: apply the same geometry here
    from conftest import TINY

    X, y = data(seed=1, n=16)  # 12 training and 4 validation samples
    kw = dict(SMALL, cell="rnn", max_iter=3, learning_rate_init=0.1, early_stopping=True,
              validation_fraction=0.25)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in TINY.items():
            mp.setattr(kc, name, value)
        auto = fit_quietly(RNNRegressor(device="auto", **kw), X, y)
    cpu = fit_quietly(RNNRegressor(device="cpu", **kw), X, y)
    return auto, cpu, X, y


def test_auto_uses_the_gpu_and_early_stopping_keeps_the_same_best_weights(early_stopped):
    auto, cpu, X, y = early_stopped
    assert auto.device == "auto" and auto.device_ == "cuda"
    assert_same_training(auto, cpu)
    np.testing.assert_allclose(auto.validation_scores_, cpu.validation_scores_, **TOL64)
    assert int(np.argmax(cpu.validation_scores_)) == 1  # the best epoch is not the last
    assert auto.best_validation_score_ == pytest.approx(cpu.best_validation_score_, abs=1e-9)
    valid_losses = [h["valid_loss"] for h in auto.history_]
    np.testing.assert_allclose(valid_losses, [h["valid_loss"] for h in cpu.history_],
                               **TOL64)
    # the kept weights reproduce the best score on the held-out tail
    assert auto.score(X[12:], y[12:]) == pytest.approx(auto.best_validation_score_, abs=1e-9)


def test_gpu_model_pickles_saves_loads_and_falls_back_to_cpu(early_stopped, tmp_path,
                                                             monkeypatch):
    model, cpu, X, _ = early_stopped
    before = model.predict(X)
    np.testing.assert_allclose(before, cpu.predict(X), **TOL64)
    again = pickle.loads(pickle.dumps(model))
    assert again.device_ == "cuda"
    np.testing.assert_array_equal(again.predict(X), before)
    model.save(tmp_path / "gpu.npz")
    loaded = RNNRegressor.load(tmp_path / "gpu.npz")
    assert loaded.device_ == "cuda" and loaded._params.dtype == np.float64
    np.testing.assert_array_equal(loaded.predict(X), before)
    # device='cpu', or no GPU: the same NumPy weights predict on the CPU
    on_cpu = pickle.loads(pickle.dumps(model)).set_params(device="cpu").predict(X)
    np.testing.assert_allclose(on_cpu, before, **TOL64)
    monkeypatch.setattr(cuda_backend, "cuda_available", lambda: (False, "no GPU (test)"))
    np.testing.assert_array_equal(loaded.predict(X), on_cpu)


#: One batch of 4 sequences of 2 steps, unscaled, plain SGD: easy to overflow on purpose.
TINY_PROBLEM = dict(SMALL, cell="rnn", batch_size=4, standardize=False, solver="sgd",
                    momentum=0.0, clip_norm=None)
OVERFLOW_WARNINGS = ["ignore:overflow encountered:RuntimeWarning",
                     "ignore:invalid value encountered:RuntimeWarning"]


@pytest.mark.filterwarnings(*OVERFLOW_WARNINGS)
def test_divergence_before_any_good_epoch_raises_as_on_the_cpu():
    X, y = data(n=4, T=2, F=1)
    model = RNNRegressor(device="cuda", max_iter=2, learning_rate_init=1.0, **TINY_PROBLEM)
    with pytest.raises(TrainingDivergedError, match="epoch 1, batch 1, before any epoch"):
        model.fit(X, y * 1e200)  # the first loss overflows
    assert not hasattr(model, "device_")


@pytest.mark.filterwarnings(*OVERFLOW_WARNINGS)
def test_divergence_after_a_good_epoch_keeps_its_weights_as_on_the_cpu():
    X, y = data(n=4, T=2, F=1)
    kw = dict(TINY_PROBLEM, max_iter=3, learning_rate_init=1e150)
    models = {}
    for device in ("cuda", "cpu"):
        with pytest.warns(RuntimeWarning, match="diverged: the training loss became .* at "
                                                "epoch 2, batch 1"):
            models[device] = RNNRegressor(device=device, **kw).fit(X, y * 1e150)
    assert models["cuda"].n_iter_ == models["cpu"].n_iter_ == 1
    np.testing.assert_allclose(models["cuda"]._params, models["cpu"]._params, **TOL64)
    assert np.all(np.isfinite(models["cuda"]._params))


def test_dropout_is_a_clear_error_before_training_and_auto_trains_on_the_cpu():
    X, y = data(n=4, T=2, F=1)
    kw = dict(SMALL, batch_size=4, dropout=0.5, max_iter=1)
    with pytest.raises(ValueError, match="dropout=0.5 is not implemented for device='cuda'"):
        RNNRegressor(device="cuda", **kw).fit(X, y)
    model = fit_quietly(RNNRegressor(device="auto", **kw), X, y)
    assert model.device_ == "cpu"
