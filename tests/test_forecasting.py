"""RNNForecaster and backtest: timestamps, strategies, covariates, intervals, errors."""


import numpy as np
import pandas as pd
import pytest

from tsrnn import RNNForecaster, backtest
from tsrnn.forecasting import conformal_quantile, naive_shrinkage, seasonal_period

FAST = dict(max_iter=2, hidden_size=8, random_state=0)


pytestmark = pytest.mark.usefixtures("quiet_convergence")


def hourly(n=600, seed=0, name="temp"):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="h", name="time")
    t = np.arange(n)
    values = 10 + 5 * np.sin(2 * np.pi * t / 24) + 0.3 * rng.normal(size=n)
    return pd.Series(values, index=idx, name=name)


def test_predict_is_stamped_after_the_data():
    series = hourly()
    fc = RNNForecaster(lookback=24, horizon=6, **FAST).fit(series)
    out = fc.predict()
    expected = pd.date_range(series.index[-1] + pd.Timedelta(hours=1), periods=6, freq="h")
    assert out.index.equals(expected)
    assert list(out.columns) == ["temp", "lower", "upper"]
    assert np.all(out["lower"] <= out["temp"]) and np.all(out["temp"] <= out["upper"])
    assert len(fc.predict(horizon=3)) == 3


def test_predict_from_newer_history_without_refit():
    series = hourly(700)
    fc = RNNForecaster(lookback=24, horizon=4, **FAST).fit(series.iloc[:500])
    params = fc.regressor_.state_dict()
    out = fc.predict(history=series.iloc[:650])
    assert out.index[0] == series.index[650]
    for k, v in fc.regressor_.state_dict().items():
        assert np.array_equal(v, params[k])
    # the forecast depends on the history given
    assert not np.allclose(out["temp"], fc.predict()["temp"])


def test_window_normalisation_forecasts_a_trend_beyond_the_training_range():
    idx = pd.date_range("2020-01-01", periods=500, freq="D")
    trend = pd.Series(100 + 2.0 * np.arange(500), index=idx, name="price")
    fc = RNNForecaster(lookback=10, horizon=5, normalization="window", calendar=None,
                       **FAST).fit(trend)
    out = fc.predict()["price"].to_numpy()
    expected = trend.iloc[-1] + 2.0 * np.arange(1, 6)
    # far above anything seen in training, and close to the continued line
    assert out.min() > trend.max()
    np.testing.assert_allclose(out, expected, rtol=0.01)


def test_auto_normalisation_and_damping_are_fitted():
    fc = RNNForecaster(lookback=12, horizon=3, **FAST).fit(hourly())
    assert fc.normalization_ in ("window", "scaled")
    assert fc.shrinkage_.shape == (3,) and np.all((0 <= fc.shrinkage_) & (fc.shrinkage_ <= 1))


def test_recursive_strategy_matches_horizon():
    series = hourly()
    fc = RNNForecaster(lookback=24, horizon=5, strategy="recursive", **FAST).fit(series)
    assert fc.regressor_.n_outputs_ == 1
    assert len(fc.predict()) == 5


def test_recursive_refuses_past_covariates():
    series = hourly()
    frame = pd.DataFrame({"temp": series, "wind": series.shift(1).bfill()})
    with pytest.raises(ValueError, match="recursive.*past covariates"):
        RNNForecaster(lookback=24, horizon=3, strategy="recursive", **FAST).fit(
            frame, target="temp", exog="wind")


def test_past_and_future_covariates():
    series = hourly()
    frame = pd.DataFrame({"temp": series, "wind": np.cos(np.arange(len(series))),
                          "holiday": (np.arange(len(series)) % 50 == 0).astype(float)},
                         index=series.index)
    fc = RNNForecaster(lookback=24, horizon=4, **FAST).fit(
        frame, target="temp", exog=["wind"], future_covariates=["holiday"])
    assert fc.regressor_.n_timesteps_in_ == 24 + 4
    future_idx = pd.date_range(series.index[-1] + pd.Timedelta(hours=1), periods=4, freq="h")
    future = pd.DataFrame({"holiday": [0.0, 1.0, 0.0, 0.0]}, index=future_idx)
    assert len(fc.predict(future=future)) == 4
    with pytest.raises(ValueError, match="future=..."):
        fc.predict()
    with pytest.raises(ValueError, match="no value"):
        fc.predict(future=future.iloc[:2])


def test_a_column_both_past_and_future_is_an_error():
    series = hourly()
    frame = pd.DataFrame({"temp": series, "x": 1.0}, index=series.index)
    with pytest.raises(ValueError, match="both as past covariates .* and as known-future"):
        RNNForecaster(lookback=24, horizon=3, **FAST).fit(
            frame, target="temp", exog="x", future_covariates=["x"])


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda s: s.set_axis(s.index.strftime("%Y-%m-%d %H")), TypeError, "DatetimeIndex"),
        (lambda s: s.drop(s.index[100]), ValueError, "missing|gap"),
        (lambda s: s.where(np.arange(len(s)) != 50), ValueError, "NaN"),
        (lambda s: s.iloc[::-1], ValueError, "sorted|monotonic|increasing"),
        (lambda s: s.iloc[:20], ValueError, "rows"),
    ],
)
def test_bad_series_raise_clear_errors(mutate, error, match):
    with pytest.raises(error, match=match):
        RNNForecaster(lookback=24, horizon=6, **FAST).fit(mutate(hourly()))


def test_missing_target_column_names_the_columns():
    frame = pd.DataFrame({"a": hourly(), "b": hourly()})
    with pytest.raises(ValueError, match=r"target=\.\.\."):
        RNNForecaster(**FAST).fit(frame)
    with pytest.raises(ValueError, match=r"\['nope'\] not in data"):
        RNNForecaster(**FAST).fit(frame, target="nope")


def test_fill_repairs_gaps_when_asked():
    series = hourly().drop(hourly().index[100])
    fc = RNNForecaster(lookback=24, horizon=3, **FAST).fit(series, fill="interpolate")
    assert len(fc.predict()) == 3


def test_predict_rejects_too_long_horizon():
    fc = RNNForecaster(lookback=24, horizon=3, **FAST).fit(hourly())
    with pytest.raises(ValueError, match="fitted horizon 3"):
        fc.predict(horizon=4)


def test_conformal_intervals_reach_their_coverage_on_a_synthetic_series():
    rng = np.random.default_rng(3)
    n = 3000
    idx = pd.date_range("2024-01-01", periods=n, freq="h")
    series = pd.Series(np.sin(2 * np.pi * np.arange(n) / 24) + 0.5 * rng.normal(size=n),
                       index=idx, name="y")
    fc = RNNForecaster(lookback=24, horizon=2, coverage=0.8, max_iter=3, hidden_size=8,
                       random_state=0)
    result = backtest(fc, series, initial=0.6, step=1)
    assert 0.72 <= result.interval_hit_rate <= 0.88, result.interval_hit_rate


def test_backtest_scores_every_model_on_the_same_origins():
    series = hourly(500)
    fc = RNNForecaster(lookback=24, horizon=6, **FAST)
    result = backtest(fc, series, initial=300, step=24, refit=2)
    assert list(result.overall.index) == ["tsrnn", "naive", "seasonal_naive", "ridge"]
    origins = result.per_origin.groupby("model")["origin"].apply(tuple)
    assert len(set(origins)) == 1
    assert result.refits == int(np.ceil(len(origins.iloc[0]) / 2))
    assert result.by_horizon.shape == (6, 4)
    assert result.seasonality == 24
    assert "| tsrnn |" in result.to_markdown()
    # naive baseline: the last observed value repeated
    first = result.forecasts[result.forecasts["origin"] == result.forecasts["origin"].iloc[0]]
    assert np.allclose(first["naive"], series.loc[first["origin"].iloc[0]])


def test_backtest_without_intervals():
    series = hourly(400)
    fc = RNNForecaster(lookback=24, horizon=6, coverage=None, shrink_to_naive=True, **FAST)
    result = backtest(fc, series, initial=300, step=24)
    assert result.coverage is None and result.interval_hit_rate is None
    assert np.isfinite(result.overall.loc["tsrnn", "mase"])


def test_seasonal_naive_baseline_repeats_the_last_season():
    series = hourly(400)
    result = backtest(RNNForecaster(lookback=24, horizon=30, **FAST), series, initial=300,
                      step=30)
    f = result.forecasts
    origin = f["origin"].iloc[0]
    steps = f[f["origin"] == origin]
    for _, row in steps.iterrows():
        back = 24 * int(np.ceil(row["step"] / 24))
        assert row["seasonal_naive"] == series.loc[row["timestamp"] - pd.Timedelta(hours=back)]


@pytest.mark.parametrize("freq, period", [
    ("h", 24), ("30min", 48), ("15min", 96), ("min", 1440), ("2h", 12), ("s", 1),
    ("D", 7), ("2D", 1), ("B", 5), ("W", 52), ("ME", 12), ("MS", 12), ("QE", 4),
    ("YE", 1),
])
def test_seasonal_period_from_frequency(freq, period):
    # "min" must not be read as month, nor "ME" as minutes
    assert seasonal_period(pd.date_range("2024", periods=10, freq=freq)) == period


def test_seasonal_period_of_unlabelled_trading_days():
    days = pd.bdate_range("2024-01-01", periods=30)
    irregular = days.delete([3, 17])  # holidays: no inferable frequency
    assert seasonal_period(irregular) == 5


def test_helpers():
    residuals = np.arange(1, 11, dtype=float)[:, None]
    assert conformal_quantile(residuals, 0.5)[0] == 6.0  # ceil(11 * 0.5) = 6th smallest
    assert np.isinf(conformal_quantile(residuals, 0.95)[0])
    last = np.zeros(4)
    actual = np.array([[1.0], [2.0], [-1.0], [0.5]])
    assert naive_shrinkage(last, 2 * actual, actual)[0] == pytest.approx(0.5)
    assert naive_shrinkage(last, -actual, actual)[0] == 0.0


def test_period_and_integer_indexes_are_answered_in_kind():
    months = pd.period_range("1949-01", periods=144, freq="M")
    rng = np.random.default_rng(0)
    airline = pd.Series(100 + np.arange(144) + 10 * np.sin(np.arange(144) * np.pi / 6)
                        + rng.normal(size=144), index=months, name="passengers")
    fc = RNNForecaster(lookback=24, horizon=12, **FAST).fit(airline)
    out = fc.predict()
    assert isinstance(out.index, pd.PeriodIndex)
    assert out.index[0] == pd.Period("1961-01", freq="M") and len(out) == 12
    result = backtest(RNNForecaster(lookback=24, horizon=6, **FAST), airline, initial=0.75)
    assert result.seasonality == 12
    assert isinstance(result.forecasts["timestamp"].iloc[0], pd.Period)

    steps = pd.Series(np.sin(np.arange(300) / 5.0), index=pd.RangeIndex(10, 610, 2))
    fc = RNNForecaster(lookback=20, horizon=4, **FAST).fit(steps)
    assert fc.calendar_ == []
    assert list(fc.predict().index) == [610, 612, 614, 616]
    assert backtest(RNNForecaster(lookback=20, horizon=4, **FAST), steps).seasonality == 1
    with pytest.raises(TypeError, match="range index but the model was fitted on a period"):
        RNNForecaster(lookback=24, horizon=12, **FAST).fit(airline).predict(
            history=steps.rename("passengers"))


def test_a_failing_fit_leaves_a_fitted_forecaster_predicting_as_before():
    series = hourly()
    fc = RNNForecaster(lookback=24, horizon=4, **FAST).fit(series)
    before = fc.predict()
    with pytest.raises(ValueError, match="NaN"):
        fc.fit(series.where(np.arange(len(series)) != 50))
    with pytest.raises(ValueError, match="rows"):
        fc.fit(series.iloc[:20])
    pd.testing.assert_frame_equal(fc.predict(), before)


def test_predict_validates_history_frequency_and_coverage():
    fc = RNNForecaster(lookback=24, horizon=4, **FAST).fit(hourly())
    half_hourly = pd.Series(np.arange(100.0), name="temp",
                            index=pd.date_range("2025-01-01", periods=100, freq="30min"))
    with pytest.raises(ValueError, match="frequency '30min' but the model was fitted on 'h'"):
        fc.predict(history=half_hourly)
    for bad in (1.5, 0, -0.1, 1, True, "0.9"):
        with pytest.raises(ValueError, match="coverage must be in"):
            fc.predict(coverage=bad)
    narrow, wide = fc.predict(coverage=0.5), fc.predict(coverage=0.95)
    assert np.all(wide["upper"] - wide["lower"] >= narrow["upper"] - narrow["lower"])


def test_backtest_validates_its_inputs():
    series = hourly(500)
    fc = RNNForecaster(lookback=24, horizon=6, **FAST)
    with pytest.raises(ValueError, match="missing timestamp"):
        backtest(fc, series.drop(series.index[200]), initial=300)
    with pytest.raises(ValueError, match="max_origins must be >= 1"):
        backtest(fc, series, initial=300, max_origins=0)
    with pytest.raises(ValueError, match="step must be >= 1"):
        backtest(fc, series, initial=300, step=0)


def test_a_winner_is_marked_only_beyond_the_noise_across_origins():
    series = hourly(500)
    fc = RNNForecaster(lookback=24, horizon=6, **FAST)
    few = backtest(fc, series, initial=450, step=20)  # 3 origins
    assert few.n_origins == 3  # origins 449, 469, 489
    assert "**" not in few.to_markdown() and "too few to tell models apart" in few.caption()
    many = backtest(fc, series, initial=300, step=6)
    winners = many.winners()
    # naive repeats the last value of a daily sine: far worse than the others everywhere
    assert winners["mae"] != "naive"
    for metric, model in winners.items():
        if model is not None:
            assert f"**{many.overall.loc[model, metric]:.4g}**" in many.to_markdown()
    assert f"{many.n_origins} forecast origins" in many.caption()


def test_ridge_baseline_reads_the_same_covariates_as_the_network():
    rng = np.random.default_rng(5)
    n = 600
    idx = pd.date_range("2024-01-01", periods=n, freq="h")
    driver = rng.normal(size=n)
    promo = (rng.random(n) < 0.2).astype(float)
    y = np.convolve(driver, np.ones(3) / 3, mode="same") + 3 * promo + 0.1 * rng.normal(size=n)
    frame = pd.DataFrame({"y": y, "driver": driver, "promo": promo}, index=idx)
    fc = RNNForecaster(lookback=12, horizon=3, **FAST)
    plain = backtest(fc, frame[["y"]], initial=400, step=3)
    with_cov = backtest(fc, frame, target="y", exog="driver", future_covariates="promo",
                        initial=400, step=3)
    assert with_cov.overall.loc["ridge", "mae"] < 0.7 * plain.overall.loc["ridge", "mae"]


@pytest.mark.parametrize("freq, periods, expected", [
    ("h", 24 * 10, ["hour"]),                                     # 10 days: no weekly cycle
    ("h", 24 * 21, ["hour", "day_of_week"]),                      # 3 weeks: weekly too
    ("D", 400, ["day_of_week"]),                                  # one year: no yearly cycle
    ("D", 800, ["day_of_week", "day_of_year"]),
    ("MS", 20, []),                                               # under two years
])
def test_auto_calendar_keeps_features_whose_cycle_repeats(freq, periods, expected):
    index = pd.date_range("2020-01-01", periods=periods, freq=freq)
    assert RNNForecaster()._calendar_choice(index) == expected
