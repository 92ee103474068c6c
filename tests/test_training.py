"""The shared epoch loop (tsrnn.training): what is kept on interrupts, divergence and
early stopping, and that nothing of an earlier fit changes when a later one fails."""

import io
import pickle
import sys
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


def test_interrupted_partial_fit_leaves_the_model_as_it_was(monkeypatch):
    model, X, y = fitted()
    before = snapshot(model)
    interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        model.partial_fit(X, y)
    assert snapshot(model) == before
    monkeypatch.undo()
    model.partial_fit(X, y)
    assert model.n_iter_ == FAST["max_iter"] + 1


def test_interrupt_during_validation_keeps_counters_of_the_kept_epoch(monkeypatch):
    X, y = data(n=120)
    calls = {"n": 0}
    real = network.predict

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the validation of the third epoch, after its batches
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(network, "predict", interrupting)
    model = RNNRegressor(hidden_size=8, max_iter=10, early_stopping=True,
                         validation_fraction=0.25, n_iter_no_change=20, batch_size=30,
                         random_state=0)
    with pytest.warns(UserWarning, match="interrupted by user"):
        model.fit(X, y)
    assert model.n_iter_ == len(model.loss_curve_) == len(model.history_) == 2
    assert len(model.validation_scores_) == 2
    assert model.t_ == 2 * 90
    best = int(np.argmax(model.validation_scores_)) + 1
    assert model._optimizer_state["t"] == best * 3


def test_continuing_after_an_interrupt_is_continuing_after_that_many_epochs(monkeypatch):
    X, y = data()
    params = dict(FAST, warm_start=True, batch_size=20)  # the shuffles matter
    interrupt_at(monkeypatch, 10)  # four batches per epoch: during the third epoch
    interrupted = RNNRegressor(**params)
    with pytest.warns(UserWarning, match="interrupted by user"):
        interrupted.fit(X, y)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        two = RNNRegressor(**dict(params, max_iter=2)).fit(X, y)
        two.set_params(max_iter=FAST["max_iter"])
        interrupted.fit(X, y)  # shuffles as if the first fit had stopped at two epochs
        two.fit(X, y)
    np.testing.assert_array_equal(interrupted._params, two._params)
    assert interrupted.loss_curve_ == two.loss_curve_
    assert interrupted.t_ == two.t_


def test_a_ctrl_c_during_an_epochs_record_takes_effect_after_it(monkeypatch):
    import signal

    X, y = data()
    calls = {"n": 0}
    real = training.CpuRunner.checkpoint

    def checkpoint(self, name):
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's "last_good", in the middle of its record
            signal.raise_signal(signal.SIGINT)
        return real(self, name)

    monkeypatch.setattr(training.CpuRunner, "checkpoint", checkpoint)
    model = RNNRegressor(**FAST)
    with pytest.warns(UserWarning, match="interrupted by user"):
        model.fit(X, y)
    assert model.n_iter_ == len(model.history_) == 2
    assert model._optimizer_state["t"] == 2  # the weights are those of epoch 2 too


def test_divergence_keeps_the_shuffles_of_the_last_good_epoch(monkeypatch):
    X, y = data()
    calls = {"n": 0}
    real = network.loss_and_grad

    def flaky(*args, **kwargs):
        calls["n"] += 1
        value, grad = real(*args, **kwargs)
        return (float("nan") if calls["n"] == 3 else value), grad

    monkeypatch.setattr(network, "loss_and_grad", flaky)
    model = RNNRegressor(**FAST)
    with pytest.warns(RuntimeWarning, match="diverged"):
        model.fit(X, y)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        two = RNNRegressor(**dict(FAST, max_iter=2)).fit(X, y)
    assert model.n_iter_ == 2
    kept, ran = model._fit_state.random_state.get_state(), two._fit_state.random_state.get_state()
    assert (kept[1] == ran[1]).all() and kept[2] == ran[2]


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_is_a_bar_on_a_terminal_and_plain_lines_elsewhere(monkeypatch, tty):
    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    clock = iter(np.arange(0.0, 100.0, 3.0))  # 3 s a batch
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(clock)))
    draw = training.EpochPrinter(last_epoch=2).progress(0, total=8)
    for done in range(1, 9):
        draw(done)
    text = stream.getvalue()
    if tty:
        assert "\r" in text and "[" in text and text.endswith("\n")
        assert "8/8 batches" in text and "about 0 s left" in text
    else:
        lines = text.splitlines()
        assert "\r" not in text and lines and all(line.startswith("epoch 1: ") for line in lines)
        assert len(lines) < 8 and "about" in lines[0] and "8/8" not in text
