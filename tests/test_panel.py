"""Many series at once: panel inputs, one global network, long answers, panel backtests."""


import numpy as np
import pandas as pd
import pytest

from tsrnn import RNNForecaster, backtest
from tsrnn.forecasting.panel import PanelWindows, to_panel

FAST = dict(max_iter=2, hidden_size=8, random_state=0)


pytestmark = pytest.mark.usefixtures("quiet_convergence")


def series(n, start="2024-01-01", seed=0, level=10.0, scale=1.0, name="y"):
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq="h")
    t = np.arange(n)
    values = level + scale * (np.sin(2 * np.pi * t / 24) + 0.2 * rng.normal(size=n))
    return pd.Series(values, index=idx, name=name)


def long_frame():
    """Three hourly series of different lengths and starts, in long format."""
    parts = {"a": series(400, seed=1), "b": series(300, "2024-01-05", seed=2, level=50),
             "c": series(350, "2024-01-03", seed=3, scale=4.0)}
    frame = pd.concat([pd.DataFrame({"store": k, "ds": s.index, "sales": s.to_numpy()})
                       for k, s in parts.items()], ignore_index=True)
    return frame, parts


def test_long_panel_trains_one_network_and_answers_in_long_format():
    frame, parts = long_frame()
    fc = RNNForecaster(lookback=24, horizon=6, **FAST).fit(frame, id_column="store",
                                                            time_column="ds")
    assert fc.is_panel_ and fc.ids_ == ["a", "b", "c"]
    windows = sum(len(s) - 24 - 6 + 1 for s in parts.values())
    assert fc.n_training_windows_ < windows  # the newest of each series calibrate
    out = fc.predict()
    assert list(out.columns) == ["store", "ds", "sales", "lower", "upper"]
    for key, s in parts.items():
        mine = out[out["store"] == key]
        expected = pd.date_range(s.index[-1] + pd.Timedelta(hours=1), periods=6, freq="h")
        assert pd.DatetimeIndex(mine["ds"]).equals(expected)
        assert np.all(mine["lower"] <= mine["sales"]) and np.all(mine["sales"] <= mine["upper"])
    only = fc.predict(ids=["c"], horizon=3)
    assert list(only["store"].unique()) == ["c"] and len(only) == 3
    np.testing.assert_allclose(only["sales"], out[out["store"] == "c"]["sales"].iloc[:3])


def test_long_dict_and_wide_inputs_give_the_same_model():
    frame, parts = long_frame()
    same_length = {k: s.iloc[-300:].rename(None) for k, s in parts.items()}
    aligned = {k: s.set_axis(same_length["a"].index) for k, s in same_length.items()}
    wide = pd.DataFrame(aligned)
    long = pd.concat([pd.DataFrame({"unique_id": k, "y": s}) for k, s in aligned.items()])
    kw = dict(lookback=24, horizon=4, **FAST)
    from_dict = RNNForecaster(**kw).fit(aligned).predict()
    from_wide = RNNForecaster(**kw).fit(wide, target=list(wide.columns)).predict()
    from_long = RNNForecaster(**kw).fit(long, id_column="unique_id").predict()
    pd.testing.assert_frame_equal(from_dict, from_wide)
    pd.testing.assert_frame_equal(from_dict, from_long)


def test_per_window_normalisation_makes_a_scaled_copy_forecast_scaled():
    base = series(400, seed=4)
    data = {"small": base, "large": base * 1000.0}
    fc = RNNForecaster(lookback=24, horizon=4, normalization="scaled", **FAST).fit(data)
    out = fc.predict().set_index("unique_id")
    np.testing.assert_allclose(out.loc["large", "y"].to_numpy(),
                               1000.0 * out.loc["small", "y"].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(out.loc["large", "upper"].to_numpy(),
                               1000.0 * out.loc["small", "upper"].to_numpy(), rtol=1e-9)


def test_predict_from_newer_history_of_some_series_without_refit():
    frame, parts = long_frame()
    fc = RNNForecaster(lookback=24, horizon=4, **FAST).fit(frame, id_column="store")
    params = fc.regressor_.state_dict()
    newer = pd.DataFrame({"store": "b", "ds": parts["b"].index[:100],
                          "sales": parts["b"].to_numpy()[:100]})
    out = fc.predict(history=newer)
    assert list(out["store"].unique()) == ["b"]
    assert out["ds"].iloc[0] == parts["b"].index[100]
    for k, v in fc.regressor_.state_dict().items():
        assert np.array_equal(v, params[k])
    # a series the model never saw is forecast from its own history
    unseen = newer.assign(store="new")
    assert list(fc.predict(history=unseen)["store"].unique()) == ["new"]


def test_static_covariates_and_series_identity():
    frame, _ = long_frame()
    static = pd.DataFrame({"size": [1.0, 3.0, 2.0]}, index=["a", "b", "c"])
    fc = RNNForecaster(lookback=24, horizon=4, series_identity=True, **FAST).fit(
        frame, id_column="store", static=static)
    assert fc.static_ == ["static:size"]
    assert fc.regressor_.n_features_in_ == 1 + 4 + 1 + 3  # target, calendar, static, ids
    assert len(fc.predict()) == 12
    unseen = frame[frame["store"] == "a"].assign(store="new")
    with pytest.raises(ValueError, match="'new' was not in the training data"):
        fc.predict(history=unseen)
    with pytest.raises(ValueError, match=r"static has no row for series \['c'\]"):
        RNNForecaster(**FAST).fit(frame, id_column="store", static=static.iloc[:2])


def test_panel_with_past_and_future_covariates():
    frame, _ = long_frame()
    frame["temp"] = np.cos(np.arange(len(frame)) / 10.0)
    frame["promo"] = (np.arange(len(frame)) % 30 == 0).astype(float)
    fc = RNNForecaster(lookback=24, horizon=3, **FAST).fit(
        frame, id_column="store", time_column="ds", exog="temp", future_covariates="promo")
    last = frame.groupby("store")["ds"].max()
    future = pd.concat([pd.DataFrame({"store": k, "ds": pd.date_range(
        t + pd.Timedelta(hours=1), periods=3, freq="h"), "promo": [0.0, 1.0, 0.0]})
        for k, t in last.items()])
    out = fc.predict(future=future)
    assert len(out) == 9
    with pytest.raises(ValueError, match="future has no value .* of series 'b'"):
        fc.predict(future=future[~((future["store"] == "b") & (future["promo"] == 1.0))])


def test_panel_errors_name_the_series():
    frame, _ = long_frame()
    with pytest.raises(ValueError, match="duplicated timestamps.*id_column"):
        RNNForecaster(**FAST).fit(frame.set_index("ds")[["sales"]])
    gappy = frame.drop(index=frame.index[(frame["store"] == "b")][10])
    with pytest.raises(ValueError, match="series 'b': data has 1 missing timestamp"):
        RNNForecaster(**FAST).fit(gappy, id_column="store")
    daily = frame.copy()
    mask = daily["store"] == "c"
    daily.loc[mask, "ds"] = pd.date_range("2024-01-01", periods=int(mask.sum()), freq="D")
    with pytest.raises(ValueError, match="share one frequency: .*'a'.*'c'"):
        RNNForecaster(**FAST).fit(daily, id_column="store")
    with pytest.raises(ValueError, match="id_column 'shop' is not a column"):
        RNNForecaster(**FAST).fit(frame, id_column="shop")
    fc = RNNForecaster(lookback=24, horizon=4, **FAST).fit(frame, id_column="store")
    with pytest.raises(ValueError, match="unknown series id 'zz'"):
        fc.predict(ids=["zz"])
    with pytest.raises(ValueError, match="fitted on a panel"):
        fc.predict(history=series(100))


def test_panel_backtest_scores_every_series_on_the_same_origins():
    frame, parts = long_frame()
    fc = RNNForecaster(lookback=24, horizon=6, **FAST)
    result = backtest(fc, frame, id_column="store", initial=0.7, step=12)
    assert result.n_series == 3 and result.refits == 1
    assert list(result.overall.index) == ["tsrnn", "naive", "seasonal_naive", "ridge"]
    per = result.per_origin
    assert set(per["store"]) == {"a", "b", "c"}
    origins = per.groupby("model").apply(lambda g: tuple(zip(g["store"], g["origin"])),
                                         include_groups=False)
    assert len(set(origins)) == 1
    n_b = len(parts["b"])
    assert (per["store"] == "b").sum() // 4 == len(range(int(n_b * 0.7) - 1, n_b - 6, 12))
    assert np.all(np.isfinite(result.overall.to_numpy()))
    refitted = backtest(fc, frame, id_column="store", initial=0.7, step=12, refit=3)
    assert refitted.refits > 1


def test_panel_windows_are_index_arrays_into_one_value_array():
    frame, parts = long_frame()
    panel, target = to_panel(frame, target="sales", id_column="store", time_column="ds")
    assert target == "sales" and panel.values.shape == (1050, 1)
    windows = PanelWindows.of(panel, 24, 6)
    assert len(windows) == sum(len(s) - 29 for s in parts.values())
    i = int(np.flatnonzero(windows.series == 1)[5])
    np.testing.assert_array_equal(windows.past(np.array([i]))[0, :, 0],
                                  parts["b"].to_numpy()[5:29])
    np.testing.assert_array_equal(windows.targets(np.array([i]))[0],
                                  parts["b"].to_numpy()[29:35])
    assert windows.origin[i] == 28
