"""Nothing crashes, nothing is lost (issue 14, estimator side): interrupts while kernels
compile or load, training after load_state_dict, fits from two threads, set_params on a
fitted model, numeric extremes, predict's memory, parameters that cannot fit."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNRegressor, TrainingDivergedError, network, training
from tsrnn import estimator as estimator_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = dict(hidden_size=8, max_iter=4, random_state=0)


def data(n=120, T=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T))
    return X, X[:, -1] - 0.5 * X[:, -2]


def fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def snapshot(model):
    return {k: pickle.dumps(v) for k, v in vars(model).items()}


def child_env(cache_dir=None):
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env


# --------------------------------------------------------------------------
# Ctrl-C while Numba compiles or loads the kernels
# --------------------------------------------------------------------------

FIRST_FIT = """
    import sys, warnings
    import numpy as np
    import tsrnn
    from sklearn.exceptions import ConvergenceWarning
    warnings.simplefilter("ignore", ConvergenceWarning)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 6, 2)).astype(np.float32)
    y = X[:, -1, 0]
    model = tsrnn.RNNRegressor(hidden_size=4, max_iter=2, batch_size=8, random_state=0)
    try:
        model.fit(X, y)
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print("interrupted", hasattr(model, "n_iter_"), flush=True)
    model.fit(X, y)  # the same process fits again
    print("refit", model.n_iter_, model.predict(X[:3]).shape, flush=True)
"""


def test_ctrl_c_while_the_first_fit_compiles_then_fitting_again_works(tmp_path):
    # A fresh cache: the first fit compiles for about 20 s; Ctrl-C arrives while it
    # does (the notice on stderr says the compilation started).
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(FIRST_FIT)],
                             env=child_env(tmp_path), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = child.stderr.readline()
        assert "compiling kernels for first use" in line, line
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=900)
    finally:
        child.kill()
    assert child.returncode == 0, err[-3000:]
    assert out.splitlines() == ["interrupted False", "refit 2 (3,)"], (out, err[-3000:])
    assert "interrupt received" in err


LOADING_INTERRUPTED = """
    import signal
    from numba.core.typing import templates
    real = templates.make_overload_template
    calls = [0]

    def interrupting(*args, **kwargs):
        calls[0] += 1
        if calls[0] == {n}:  # half-way through loading Numba's registries
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    templates.make_overload_template = interrupting
"""


@pytest.mark.parametrize("n", [100, 140])
def test_ctrl_c_while_numba_loads_its_registries_does_not_corrupt_it(n):
    # The "KeyError: duplicate registration" for every later fit: a
    # KeyboardInterrupt half-way through the first kernel load of a warm process.
    script = textwrap.dedent(LOADING_INTERRUPTED.format(n=n)) + textwrap.dedent(FIRST_FIT)
    done = subprocess.run([sys.executable, "-c", script], env=child_env(), check=False,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["interrupted False", "refit 2 (3,)"], done.stdout


# --------------------------------------------------------------------------
# training after load_state_dict
# --------------------------------------------------------------------------


def test_partial_fit_and_warm_start_after_load_state_dict():
    X, y = data()
    X3 = X[:, :, None]
    source = fit_quietly(RNNRegressor(**FAST), X3, y)
    for method in ("partial_fit", "warm_start"):
        model = RNNRegressor(**FAST, warm_start=method == "warm_start")
        model.load_state_dict(source.state_dict())
        before = model.predict(X3)
        if method == "partial_fit":
            model.partial_fit(X3, y)
            assert model.n_iter_ == 1
        else:
            fit_quietly(model, X3, y)
            assert model.n_iter_ == FAST["max_iter"]
        assert model.n_timesteps_in_ == X.shape[1]
        assert model.t_ == model.n_iter_ * len(X)
        assert not np.array_equal(model.predict(X3), before)  # it trained
        model.partial_fit(X3, y)  # and goes on
        assert model.n_iter_ >= 2


# --------------------------------------------------------------------------
# fits from two threads
# --------------------------------------------------------------------------


def test_partial_fit_from_two_threads_counts_every_call():
    X, y = data()
    model = RNNRegressor(hidden_size=8, batch_size=20, random_state=0)
    errors = []

    def work():
        try:
            for _ in range(5):
                model.partial_fit(X, y)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert model.n_iter_ == 10
    assert model.t_ == 10 * len(X)
    assert model._optimizer_state["t"] == 10 * 6  # 6 batches of 20 per call
    assert len(model.history_) == 10


def test_locks_stay_out_of_pickles_and_clones():
    X, y = data()
    model = fit_quietly(RNNRegressor(**FAST), X, y)
    model.predict(X)  # creates the cached predictor
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert estimator_module._runtime(again) is not estimator_module._runtime(model)
    assert not any("lock" in k.lower() for k in vars(model))
    fit_quietly(clone(model), X, y)


# --------------------------------------------------------------------------
# set_params on a fitted model
# --------------------------------------------------------------------------

CHANGES = [dict(nonlinearity="relu"), dict(cell="gru"), dict(hidden_size=16),
           dict(num_layers=2), dict(dtype="float64")]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: next(iter(c)))
def test_set_params_does_not_change_a_fitted_models_predictions(change):
    X, y = data()
    model = fit_quietly(RNNRegressor(cell="rnn", **FAST), X, y)
    before, state = model.predict(X), model.state_dict()
    model.set_params(**change)
    np.testing.assert_array_equal(model.predict(X), before)
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in state.items()}
    model.set_params(warm_start=True)
    kept = snapshot(model)
    with pytest.raises(ValueError, match="warm_start=False") as info:
        model.partial_fit(X, y)
    assert f"{next(iter(change))} from" in str(info.value)
    with pytest.raises(ValueError, match="architecture changed"):
        model.fit(X, y)
    assert snapshot(model) == kept  # the failed calls changed nothing
    model.set_params(warm_start=False)
    fit_quietly(model, X, y)  # a new fit trains the new architecture
    assert model.predict(X).shape == before.shape
    model.partial_fit(X, y)


def test_nonlinearity_of_a_gated_cell_is_not_an_architecture_change():
    X, y = data()
    model = fit_quietly(RNNRegressor(cell="lstm", **FAST), X, y)
    model.set_params(nonlinearity="relu")  # ignored by LSTM
    model.partial_fit(X, y)
    assert model.n_iter_ == FAST["max_iter"] + 1


# --------------------------------------------------------------------------
# numeric extremes
# --------------------------------------------------------------------------


def test_targets_and_inputs_near_1e300_train_as_rescaled_ones():
    X, y = data(200)
    ref = fit_quietly(RNNRegressor(**FAST), X, y).predict(X)
    big_y = fit_quietly(RNNRegressor(**FAST), X, y * 1e300).predict(X)
    np.testing.assert_allclose(big_y / 1e300, ref, rtol=1e-6, atol=1e-9)
    for Xbig in (X * 1e300, X * 1e290 + 1e300):  # std and mean that overflowed
        pred = fit_quietly(RNNRegressor(**FAST), Xbig, y).predict(Xbig)
        assert np.std(pred) > 0.01
        np.testing.assert_allclose(pred, ref, atol=1e-4)


def test_values_at_both_ends_of_the_float64_range_are_scaled_without_overflow():
    X, _ = data(200)
    y = np.where(X[:, -1] > 0, 1.0, -1.0) * 1.7e308  # y - mean overflows float64
    model = fit_quietly(RNNRegressor(**FAST), X, y)
    assert np.all(np.isfinite(model._y_scale)) and np.all(np.isfinite(model.loss_curve_))


def test_predictions_that_overflow_on_the_way_back_are_an_error():
    X, _ = data(200)
    y = np.where(X[:, -1] > 0, 1.0, -1.0) * 1.7e308
    model = fit_quietly(RNNRegressor(hidden_size=8, max_iter=50, learning_rate_init=0.01,
                                     random_state=0), X, y)
    with pytest.raises(ValueError, match="Predictions overflow float64 on the way back"):
        model.predict(X)


def test_inputs_that_overflow_the_model_dtype_are_an_error_naming_x():
    X, y = data()
    model = fit_quietly(RNNRegressor(**FAST), X, y)
    for bad in (X * 1e300, np.repeat(X * 1e300, 30, axis=0)):  # fast and block paths
        with pytest.raises(ValueError, match="X has values that overflow float32"):
            model.predict(bad)
    with pytest.raises(ValueError, match="y has values that overflow float32.*standardize"):
        RNNRegressor(standardize=False, **FAST).fit(X, y * 1e39)
    with pytest.raises(ValueError, match="X has values that overflow float32.*standardize"):
        RNNRegressor(standardize=False, **FAST).fit(X * 1e39, y)
    fit_quietly(RNNRegressor(standardize=False, dtype="float64", **FAST), X * 1e39, y)


def test_a_finite_but_exploding_loss_counts_as_a_divergence():
    X, y = data(200)
    params = dict(cell="rnn", nonlinearity="relu", hidden_size=8, solver="sgd",
                  clip_norm=None, max_iter=30, batch_size=20, random_state=0)
    # lr 2: the first epoch ends at a mean loss of 3e7 (then 2.5e244 in float64),
    # which used to be kept as the "last good" epoch
    for dtype in ("float32", "float64"):
        with pytest.raises(TrainingDivergedError, match="more than 10000 times"):
            RNNRegressor(learning_rate_init=2.0, dtype=dtype, **params).fit(X, y)
    # lr 1: stuck at 1e4 times the loss of a constant, once reported as converged
    with pytest.warns(RuntimeWarning, match="diverged.*more than 10000 times"):
        model = RNNRegressor(learning_rate_init=1.0, **params).fit(X, y)
    assert model.n_iter_ < 30
    null = 0.5  # the loss of predicting the mean of standardised targets
    reference = max(null, model.loss_curve_[0])
    assert max(model.loss_curve_) <= training.DIVERGENCE_FACTOR * reference
    assert len(model.history_) == model.n_iter_ == model.t_ // len(X)


def test_divergence_rule():
    rule = training.DivergenceRule(null_loss=0.5)
    assert not rule.exceeded(0.0)  # a zero first loss sets no reference...
    assert not rule.exceeded(0.2) and rule.reference == 0.5  # ...the mean predictor's
    assert not rule.exceeded(4999.0) and rule.exceeded(5001.0)
    rule = training.DivergenceRule(null_loss=1e-9)  # unscaled, tiny targets
    assert not rule.exceeded(3.0) and rule.reference == 3.0
    assert not rule.exceeded(2.9e4) and rule.exceeded(3.1e4)


# --------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------


def test_predict_memory_is_bounded_by_the_block_and_bits_are_unchanged():
    X, y = data(200, T=48)
    model = fit_quietly(RNNRegressor(hidden_size=8, max_iter=1, random_state=0), X, y)
    rng = np.random.default_rng(1)
    big = rng.normal(size=(120_000, 48)).astype(np.float32)  # 23 MiB
    # the whole-array computation predict did before: three copies of X
    Xs = model._scaling().transform_X(big[:, :, None], np.float32)
    with training.KERNEL_LOCK:
        whole = model._scaling().inverse_y(
            network.predict(model._layout(), model._params, Xs,
                            cell_id=network.cell_code("lstm"))).ravel()
    del Xs
    tracemalloc.start()
    try:
        pred = model.predict(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(pred, whole)
    # result (0.9 MiB) + a block of 8 MiB of float64 and of its float32 copy, not
    # 2 x 44 MiB of float64 and 22 MiB of float32
    assert peak < 32 * 2 ** 20, peak / 2 ** 20


def test_predict_blocks_align_with_the_kernels_batches():
    blocks = estimator_module._predict_blocks
    assert blocks(10, 48) == [(0, 10)]
    rows = blocks(10 ** 6, 48)[0][1]
    assert rows % estimator_module.PREDICT_ALIGN == 0
    for n in (rows + 5, 3 * rows, 3 * rows + 1023, 3 * rows + 1024):
        b = blocks(n, 48)
        assert b[0][0] == 0 and b[-1][1] == n
        assert all(stop == start for (_, stop), (start, _) in zip(b, b[1:]))
        assert all(stop - start >= estimator_module.PREDICT_ALIGN for start, stop in b)
        assert all(start % estimator_module.PREDICT_ALIGN == 0 for start, _ in b)


def test_predict_paths_give_the_same_bits_and_the_same_errors():
    X, y = data()
    model = fit_quietly(RNNRegressor(**FAST), X, y)
    fast = model.predict(X)  # C-contiguous float64: the fast path
    np.testing.assert_array_equal(model.predict(X.tolist()), fast)
    np.testing.assert_array_equal(model.predict(np.asfortranarray(X)), fast)
    np.testing.assert_array_equal(model.predict(X.astype(np.float32)),
                                  model.predict(X.astype(np.float32).tolist()))
    ints = (X * 10).astype(np.int64)
    np.testing.assert_array_equal(model.predict(ints), model.predict(ints.astype(float)))
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :-1])
    with pytest.raises(ValueError, match="fitted on 2-D"):
        model.predict(X[:, :, None])
    with pytest.raises(ValueError, match="at least 1 sample|0 sample"):
        model.predict(X[:0])


def test_predict_sees_a_refit_and_a_loaded_state_dict():
    X, y = data()
    model = fit_quietly(RNNRegressor(**FAST), X, y)
    first = model.predict(X)
    fit_quietly(model.set_params(random_state=1), X, y)
    second = model.predict(X)
    assert not np.array_equal(first, second)
    state = {k: v * 0 for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    np.testing.assert_allclose(model.predict(X), model._y_mean[0])


def test_an_absurd_hidden_size_is_refused_before_allocating():
    X, y = data()
    model = fit_quietly(RNNRegressor(**FAST), X, y)
    kept = snapshot(model)
    model.set_params(hidden_size=10 ** 6)
    with pytest.raises(MemoryError, match=r"hidden_size=1000000.*TiB.*Lower hidden_size"):
        model.fit(X, y)
    with pytest.raises(ValueError, match="more than the .* of memory"):
        RNNRegressor(hidden_size=10 ** 6).fit(X, y)
    model.set_params(hidden_size=FAST["hidden_size"])
    assert snapshot(model) == kept


def test_a_huge_bptt_workspace_is_refused_naming_batch_size_and_bptt_steps(monkeypatch):
    monkeypatch.setattr(training, "memory_limit_bytes", lambda: 16 * 2 ** 30)
    X = np.zeros((32, 100_000), dtype=np.float32)  # 12 MiB of data
    y = np.zeros(32)
    model = RNNRegressor(hidden_size=512, max_iter=1)
    with pytest.raises(MemoryError, match="workspace.*Lower batch_size, or set bptt_steps"):
        model.fit(X, y)
    assert not hasattr(model, "n_iter_")
    need = training.fit_memory(network.ParameterLayout("lstm", 1, 512, 1, 1), 32, 100_000,
                               32, 10, np.float32)
    assert sum(need.values()) < 2 ** 30  # what bptt_steps=10 would take instead
