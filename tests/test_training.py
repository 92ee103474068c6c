"""The shared epoch loop (tsrnn.training): what is kept on interrupts, divergence and
early stopping, and that nothing of an earlier fit changes when a later one fails."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNRegressor, network, persistence, training

FAST = dict(hidden_size=8, max_iter=4, random_state=0)


def data(n=80, T=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T))
    return X, X[:, -1] - 0.5 * X[:, -2]


def fitted(**params):
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return RNNRegressor(**{**FAST, **params}).fit(X, y), X, y


def snapshot(model):
    return {k: pickle.dumps(v) for k, v in vars(model).items()}


def interrupt_at(monkeypatch, call):
    calls = {"n": 0}
    real = network.loss_and_grad

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(network, "loss_and_grad", interrupting)


def test_interrupt_in_the_first_epoch_of_a_fresh_fit_propagates_and_fits_nothing(monkeypatch):
    X, y = data()
    interrupt_at(monkeypatch, 1)
    model = RNNRegressor(**FAST)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    assert not hasattr(model, "_fit_state") and not hasattr(model, "n_iter_")


def test_interrupt_before_an_epoch_of_a_resumed_fit_ends_leaves_the_model_as_it_was(
        monkeypatch):
    model, X, y = fitted(warm_start=True)
    before = snapshot(model)
    interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    assert snapshot(model) == before


def test_interrupt_keeps_the_last_epoch_with_its_own_optimizer_state(monkeypatch):
    X, y = data()
    interrupt_at(monkeypatch, 3)  # one batch per epoch: the third epoch's first batch
    model = RNNRegressor(**FAST)
    with pytest.warns(UserWarning, match="interrupted by user"):
        model.fit(X, y)
    assert model.n_iter_ == 2
    assert model._optimizer_state["t"] == 2  # two applied steps, as the kept weights
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        two = RNNRegressor(**dict(FAST, max_iter=2)).fit(X, y)
    np.testing.assert_array_equal(model._params, two._params)
    for a, b in zip(model._optimizer_state["state"], two._optimizer_state["state"]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_keeps_the_best_epochs_weights_and_optimizer_state():
    X, y = data(n=120)
    model = RNNRegressor(hidden_size=8, max_iter=12, early_stopping=True,
                         validation_fraction=0.25, n_iter_no_change=2,
                         learning_rate_init=0.05, batch_size=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    best_epoch = int(np.argmax(model.validation_scores_)) + 1
    assert model._optimizer_state["t"] == best_epoch * 3  # 90 training rows, batches of 30


def test_a_fit_failing_inside_the_loop_leaves_the_model_and_its_random_state(monkeypatch):
    model, X, y = fitted(warm_start=True)
    before = snapshot(model)

    def failing(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(network, "loss_and_grad", failing)
    with pytest.raises(MemoryError):
        model.fit(X, y)  # after the batches of the first epoch were drawn
    assert snapshot(model) == before


def test_resume_copies_what_it_continues_from():
    model, _, _ = fitted()
    previous = model._fit_state
    kept = pickle.dumps(previous)
    state = training.resume(previous, np.float32, model._new_optimizer, early_stopping=False)
    state.params[:] = 0
    state.loss_curve.append(1.0)
    state.history.append({})
    state.random_state.rand()
    state.optimizer.state[0][:] = 1
    assert pickle.dumps(previous) == kept


def test_save_replaces_the_file_only_when_complete(tmp_path, monkeypatch):
    model, X, _ = fitted()
    path = tmp_path / "model.npz"
    model.save(path)
    good = path.read_bytes()

    def failing_savez(fh, **arrays):
        fh.write(b"half a file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(persistence.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left
    monkeypatch.undo()
    np.testing.assert_array_equal(RNNRegressor.load(path).predict(X), model.predict(X))
