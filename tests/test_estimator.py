"""RNNRegressor behaviour: scikit-learn integration, training rules, errors, persistence."""

import os
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tsrnn import RNNRegressor, TrainingDivergedError
from tsrnn import estimator as estimator_module
from tsrnn import network

FAST = dict(hidden_size=8, max_iter=4, random_state=0)


def sine_windows(n=400, lookback=12, horizon=1, noise=0.1, seed=0):
    """Windows of a noisy sine: X (n, lookback), y (n,) or (n, horizon)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + lookback + horizon)
    s = np.sin(2 * np.pi * t / 25) + noise * rng.normal(size=t.size)
    X = np.stack([s[i:i + lookback] for i in range(n)])
    y = np.stack([s[i + lookback:i + lookback + horizon] for i in range(n)])
    return X, (y[:, 0] if horizon == 1 else y)


@pytest.fixture(scope="module")
def fitted():
    X, y = sine_windows(200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNRegressor(**FAST).fit(X, y)
    return model, X, y


def test_learns_noisy_sine_better_than_last_value():
    X, y = sine_windows(900, lookback=20, noise=0.15)
    n = 700
    model = RNNRegressor(cell="gru", hidden_size=16, max_iter=40, learning_rate_init=0.01,
                         random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:n], y[:n])
    r2 = model.score(X[n:], y[n:])
    y_test = y[n:]
    naive_r2 = 1 - np.sum((y_test - X[n:, -1]) ** 2) / np.sum((y_test - y_test.mean()) ** 2)
    assert r2 > naive_r2 + 0.05, (r2, naive_r2)


def test_fit_is_deterministic_and_clone_gives_the_same_model(fitted):
    model, X, y = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        other = clone(model).fit(X, y)
    assert np.array_equal(model.predict(X), other.predict(X))
    for name, value in model.state_dict().items():
        assert np.array_equal(value, other.state_dict()[name]), name


def test_pipeline_in_grid_search_with_time_series_split():
    X, y = sine_windows(240)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("rnn", RNNRegressor(hidden_size=4, max_iter=3, random_state=0))])
    search = GridSearchCV(pipe, {"rnn__cell": ["lstm", "gru"]},
                          cv=TimeSeriesSplit(n_splits=2), n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert set(search.cv_results_["param_rnn__cell"]) == {"lstm", "gru"}
    assert search.predict(X[:5]).shape == (5,)


THREADED_FITS = """
import warnings
import joblib, numba, numpy as np
from tsrnn import RNNRegressor
rng = np.random.default_rng(0)
X = rng.normal(size=(150, 12)); y = X[:, -1] - X[:, -2]
warnings.simplefilter("ignore")
models = [RNNRegressor(hidden_size=8, max_iter=6, random_state=0) for _ in range(3)]
joblib.Parallel(n_jobs=2, backend="threading")(joblib.delayed(m.fit)(X, y) for m in models[:2])
models[2].fit(X, y)
assert numba.threading_layer() == "workqueue", numba.threading_layer()
assert all(np.array_equal(m.predict(X), models[2].predict(X)) for m in models[:2])
print("ok")
"""


def test_two_fits_in_threads_do_not_interfere():
    # Numba's workqueue layer (the fallback where neither OpenMP nor TBB exists)
    # aborts the process on concurrent use: run it in a child process to prove
    # that fits in threads neither crash nor corrupt each other.
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    done = subprocess.run([sys.executable, "-c", THREADED_FITS], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_multi_output_and_3d_input():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 6, 3))
    y = np.stack([X[:, -1, 0], X[:, -2, 1] - X[:, -1, 2]], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNRegressor(**FAST).fit(X, y)
    assert model.n_outputs_ == 2 and model.n_features_in_ == 3
    assert model.predict(X).shape == (120, 2)
    # another sequence length is fine with 3-D input
    assert model.predict(X[:, 2:]).shape == (120, 2)


def test_dataframe_input_keeps_feature_names():
    X, y = sine_windows(100, lookback=5)
    frame = pd.DataFrame(X, columns=[f"lag_{k}" for k in range(5, 0, -1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNRegressor(**FAST).fit(frame, y)
    assert list(model.feature_names_in_) == list(frame.columns)
    assert np.allclose(model.predict(frame), model.predict(X))


def test_early_stopping_uses_the_tail_and_keeps_the_best_weights(monkeypatch):
    X, y = sine_windows(200)
    model = RNNRegressor(hidden_size=8, max_iter=30, early_stopping=True,
                         validation_fraction=0.2, n_iter_no_change=3,
                         learning_rate_init=0.05, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    scores = model.validation_scores_
    assert model.best_validation_score_ == max(scores)
    assert model.best_loss_ is None
    # the kept weights reproduce the best validation score on the last 20 %
    tail = slice(160, 200)
    assert model.score(X[tail], y[tail]) == pytest.approx(model.best_validation_score_,
                                                          abs=1e-5)


def test_too_few_samples_for_validation_split_is_a_clear_error():
    X, y = sine_windows(10)
    with pytest.raises(ValueError, match="validation_fraction"):
        RNNRegressor(early_stopping=True, validation_fraction=0.05, **FAST).fit(X, y)


def test_partial_fit_runs_one_epoch_and_keeps_weights():
    X, y = sine_windows(100)
    model = RNNRegressor(**FAST)
    model.partial_fit(X, y)
    first = model.state_dict()
    model.partial_fit(X, y)
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 2
    assert model.t_ == 200
    assert any(not np.array_equal(first[k], v) for k, v in model.state_dict().items())


def test_warm_start_continues_from_previous_weights():
    X, y = sine_windows(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNRegressor(warm_start=True, **FAST).fit(X, y)
        model.fit(X, y)
    assert model.n_iter_ == 8


def test_verbose_prints_one_line_per_epoch(capsys):
    X, y = sine_windows(60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        RNNRegressor(verbose=True, **FAST).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")]
    assert len(lines) == 4
    assert "train loss" in lines[0] and lines[0].endswith(" s")


def test_convergence_warning_when_max_iter_is_reached():
    X, y = sine_windows(60)
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        RNNRegressor(**FAST).fit(X, y)


def test_parameter_errors_name_the_parameter():
    X, y = sine_windows(30)
    with pytest.raises(ValueError, match="'alpha' parameter of RNNRegressor must be a float"):
        RNNRegressor(alpha=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="'cell' parameter"):
        RNNRegressor(cell="transformer").fit(X, y)
    with pytest.raises(TypeError, match="'hidden_size' parameter"):
        RNNRegressor(hidden_size="32").fit(X, y)


@pytest.mark.parametrize(
    "make_bad, match",
    [
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), y),
         "NaN"),
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), y),
         "infinity"),
        (lambda X, y: (X[:, 0], y), "2-D .* or 3-D"),
        (lambda X, y: (X[:, :, None, None], y), "got shape"),
        (lambda X, y: (X.astype(str).astype(object) + "x", y), "could not convert"),
        (lambda X, y: (X, y[:-1]), "inconsistent numbers of samples|different numbers"),
        (lambda X, y: (X, np.full_like(y, np.nan)), "NaN"),
    ],
)
def test_bad_input_raises_and_keeps_fitted_model(fitted, make_bad, match):
    model, X, y = fitted
    model = pickle.loads(pickle.dumps(model))
    before = model.predict(X)
    bad_X, bad_y = make_bad(X, y)
    with pytest.raises(ValueError, match=match):
        model.fit(bad_X, bad_y)
    np.testing.assert_array_equal(model.predict(X), before)
    assert model.n_features_in_ == X.shape[1]


def test_predict_with_wrong_feature_count_is_an_error(fitted):
    model, X, y = fitted
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :-1])
    with pytest.raises(ValueError, match="fitted on 2-D"):
        model.predict(X[:, :, None])


def test_predict_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        RNNRegressor().predict(np.zeros((2, 3)))


def test_divergence_without_good_weights_raises_and_keeps_previous_model(fitted):
    model, X, y = fitted
    model = pickle.loads(pickle.dumps(model))
    before = model.predict(X)
    huge = y * 1e30
    with pytest.raises(TrainingDivergedError, match="learning_rate_init"):
        model.set_params(standardize=False, learning_rate_init=1e30, clip_norm=None)
        model.fit(X * 1e30, huge)
    model.set_params(standardize=True, learning_rate_init=0.001, clip_norm=5.0)
    np.testing.assert_array_equal(model.predict(X), before)


def test_divergence_after_good_epochs_warns_and_keeps_last_good_weights(monkeypatch):
    X, y = sine_windows(80)
    calls = {"n": 0}
    real = network.loss_and_grad

    def flaky(*args, **kwargs):
        calls["n"] += 1
        value, grad = real(*args, **kwargs)
        if calls["n"] == 3:  # first batch of the third epoch (one batch per epoch)
            value = float("nan")
        return value, grad

    monkeypatch.setattr(estimator_module.network, "loss_and_grad", flaky)
    model = RNNRegressor(**FAST)
    with pytest.warns(RuntimeWarning, match="diverged"):
        model.fit(X, y)
    assert model.n_iter_ == 2
    assert np.all(np.isfinite(model.predict(X)))


def test_keyboard_interrupt_keeps_a_fitted_model(monkeypatch):
    X, y = sine_windows(80)
    calls = {"n": 0}
    real = network.loss_and_grad

    def interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(estimator_module.network, "loss_and_grad", interrupt)
    model = RNNRegressor(**FAST)
    with pytest.warns(UserWarning, match="interrupted by user"):
        model.fit(X, y)
    assert model.n_iter_ == 2
    assert model.predict(X).shape == (80,)


def test_pickle_and_joblib_round_trip(fitted, tmp_path):
    model, X, _ = fitted
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    joblib.dump(model, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict(X),
                                  model.predict(X))


def test_save_load_round_trip(fitted, tmp_path):
    model, X, _ = fitted
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = RNNRegressor.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.get_params() == model.get_params()
    assert loaded.loss_curve_ == model.loss_curve_
    assert loaded.n_features_in_ == model.n_features_in_


def test_load_refuses_corrupt_and_foreign_files(fitted, tmp_path):
    model, _, _ = fitted
    corrupt = tmp_path / "corrupt.npz"
    model.save(corrupt)
    data = corrupt.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable tsrnn model file"):
        RNNRegressor.load(corrupt)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(ValueError, match="not a tsrnn model file"):
        RNNRegressor.load(foreign)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable tsrnn model file"):
        RNNRegressor.load(text)


def test_state_dict_round_trip_into_an_unfitted_model(fitted):
    model, X, _ = fitted
    state = model.state_dict()
    assert state["weight_ih_l0"].shape == (4 * 8, 1)
    fresh = RNNRegressor(hidden_size=8).load_state_dict(state)
    # the fresh model applies no scaling; feed it scaled inputs
    Xs = (X[:, :, None] - model._x_mean) / model._x_scale
    expected = (model.predict(X) - model._y_mean[0]) / model._y_scale[0]
    np.testing.assert_allclose(fresh.predict(Xs), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="head.weight"):
        RNNRegressor(hidden_size=8).load_state_dict({"weight_ih_l0": np.zeros((32, 1))})
    with pytest.raises(ValueError, match="shape"):
        bad = dict(state, **{"weight_hh_l0": np.zeros((3, 3))})
        model.load_state_dict(bad)


def test_effective_threads_follow_joblib_worker_limit(monkeypatch):
    import numba

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert estimator_module._effective_threads(None) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert estimator_module._effective_threads(None) == numba.config.NUMBA_NUM_THREADS
    assert estimator_module._effective_threads(1) == 1


@pytest.mark.parametrize("solver", ["sgd", "rmsprop"])
@pytest.mark.parametrize("loss", ["absolute_error", "huber"])
def test_other_solvers_and_losses_reduce_the_loss(solver, loss):
    X, y = sine_windows(120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNRegressor(cell="gru", hidden_size=8, max_iter=15, solver=solver, loss=loss,
                             learning_rate_init=0.01, random_state=0).fit(X, y)
    assert model.loss_curve_[-1] < model.loss_curve_[0]


def test_adaptive_learning_rate_divides_by_five_then_stops(capsys):
    X, y = sine_windows(60)
    # tol=10: after the first epoch none improves, so every 2 epochs the rate drops by 5 while
    # it is above 1e-6 (6 times from 0.01), then 2 more epochs and training stops
    model = RNNRegressor(hidden_size=4, max_iter=40, learning_rate="adaptive", tol=10.0,
                         n_iter_no_change=1, learning_rate_init=0.01, random_state=0,
                         verbose=True)
    model.fit(X, y)
    out = capsys.readouterr().out
    assert out.count("Setting learning rate to") == 6
    assert model._learning_rate == pytest.approx(0.01 / 5 ** 6)
    assert model.n_iter_ == 1 + 2 * 6 + 2 and "Stopping." in out


def test_dropout_and_truncated_bptt_train():
    X, y = sine_windows(120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNRegressor(num_layers=2, dropout=0.2, bptt_steps=4, **FAST).fit(X, y)
    assert np.all(np.isfinite(model.predict(X)))


def test_dask_grid_search():
    distributed = pytest.importorskip("distributed")
    X, y = sine_windows(120)
    search = GridSearchCV(RNNRegressor(hidden_size=4, max_iter=2, random_state=0),
                          {"cell": ["gru", "rnn"]}, cv=TimeSeriesSplit(n_splits=2))
    # two worker processes, as on a real cluster: the estimator travels by pickle
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with joblib.parallel_backend("dask"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                search.fit(X, y)
    assert search.best_params_["cell"] in {"gru", "rnn"}


def test_device_cuda_without_a_gpu_raises_before_touching_the_fitted_model(fitted):
    from tsrnn import cuda_backend

    usable, reason = cuda_backend.cuda_available()
    if usable:
        pytest.skip(f"a GPU is usable here: {reason}")
    model, X, y = fitted
    model = pickle.loads(pickle.dumps(model))
    before = model.predict(X)
    snapshot = {k: pickle.dumps(v) for k, v in vars(model).items()}
    model.set_params(device="cuda")
    with pytest.raises(RuntimeError, match="no usable GPU was found") as info:
        model.fit(X, y)
    assert reason in str(info.value)
    model.set_params(device="cpu")
    assert {k: pickle.dumps(v) for k, v in vars(model).items()} == snapshot  # untouched
    np.testing.assert_array_equal(model.predict(X), before)
    assert model.device_ == "cpu"
    # a configuration the GPU cannot run is a ValueError on any machine, checked first
    with pytest.raises(ValueError, match="dropout=0.2 is not implemented for device='cuda'"):
        clone(model).set_params(device="cuda", dropout=0.2).fit(X, y)


def test_device_auto_without_a_gpu_trains_on_the_cpu(fitted):
    from tsrnn import cuda_backend

    if cuda_backend.cuda_available()[0]:
        pytest.skip("a GPU is usable here")
    model, X, y = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        auto = clone(model).set_params(device="auto").fit(X, y)
    assert auto.device_ == "cpu"
    np.testing.assert_array_equal(auto.predict(X), model.predict(X))
