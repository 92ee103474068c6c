"""Tests for tsrnn.windowing: hand-computed windows, properties, and every refusal."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from tsrnn.windowing import (
    SlidingWindowTransformer,
    Windows,
    calendar_features,
    future_index,
    last_window,
    log_returns,
    make_windows,
    rolling_volatility,
    temporal_train_test_split,
    train_test_split_windows,
)


def hourly(values, start="2024-01-01", name="v"):
    index = pd.date_range(start, periods=len(values), freq="h")
    return pd.Series(values, index=index, name=name, dtype=float)


IRREGULAR = pd.DatetimeIndex(
    ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:30", "2024-01-01 03:30"]
)


def trading_days(n, start="2024-01-01"):
    """Business days with every 7th one removed (a holiday-like irregular calendar)."""
    days = pd.bdate_range(start, periods=n + n // 6 + 2)
    return days[np.arange(len(days)) % 7 != 3][:n]


# ---------------------------------------------------------------------------------------
# make_windows: hand-computed
# ---------------------------------------------------------------------------------------
def test_series_hand_computed():
    s = hourly([0, 1, 2, 3, 4, 5, 6])
    w = make_windows(s, lookback=3, horizon=2)
    assert isinstance(w, Windows)
    # rows [0,1,2]->[3,4], [1,2,3]->[4,5], [2,3,4]->[5,6]
    assert w.X.shape == (3, 3, 1)
    np.testing.assert_array_equal(w.X[:, :, 0], [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(w.y, [[3, 4], [4, 5], [5, 6]])
    assert list(w.origins) == list(s.index[[2, 3, 4]])
    assert w.feature_names == ("v",) and w.target == "v"
    assert w.freq == pd.tseries.frequencies.to_offset("h")
    assert list(w.target_index(0)) == list(s.index[[3, 4]])
    assert w.X.dtype == np.float64 and w.X.flags.c_contiguous and w.y.flags.c_contiguous
    X, y, origins = w
    assert X is w.X and y is w.y and origins is w.origins


def test_stride_is_aligned_to_the_end():
    s = hourly(range(8))
    w = make_windows(s, lookback=2, horizon=1, stride=3)
    # last start = 8 - 3 = 5; starts 2, 5 (row 0 and 1 unused)
    np.testing.assert_array_equal(w.starts, [2, 5])
    np.testing.assert_array_equal(w.X[:, :, 0], [[2, 3], [5, 6]])
    np.testing.assert_array_equal(w.y, [[4], [7]])


def test_dataframe_features_do_not_include_target_implicitly():
    idx = pd.date_range("2024-01-01", periods=5, freq="D")
    frame = pd.DataFrame({"a": [1.0, 2, 3, 4, 5], "b": [10.0, 20, 30, 40, 50], "c": [0.0] * 5}, index=idx)
    w = make_windows(frame, lookback=2, horizon=1, target="a", features=["b", "c"])
    assert w.feature_names == ("b", "c")
    np.testing.assert_array_equal(w.X[0], [[10, 0], [20, 0]])
    np.testing.assert_array_equal(w.y[:, 0], [3, 4, 5])
    w = make_windows(frame, lookback=2, horizon=1, target="a", features=["b", "a"])
    np.testing.assert_array_equal(w.X[-1], [[30, 3], [40, 4]])
    # default features = [target]
    w = make_windows(frame, 2, 1, target="b")
    assert w.feature_names == ("b",)
    np.testing.assert_array_equal(w.X[0, :, 0], [10, 20])


def test_unnamed_series_and_one_column_frame():
    s = hourly([1, 2, 3], name=None)
    assert make_windows(s, 2).target == "y"
    frame = hourly([1, 2, 3], name="only").to_frame()
    assert make_windows(frame, 2).target == "only"


def test_horizon_zero_and_last_window():
    s = hourly([0, 1, 2, 3, 4])
    w = make_windows(s, lookback=2, horizon=0)
    assert w.y.shape == (4, 0)
    np.testing.assert_array_equal(w.X[-1, :, 0], [3, 4])
    assert w.origins[-1] == s.index[-1]
    lw = last_window(s, 3)
    assert lw.X.shape == (1, 3, 1)
    np.testing.assert_array_equal(lw.X[0, :, 0], [2, 3, 4])
    assert list(lw.origins) == [s.index[-1]]
    # with explicit features and horizon 0 no target is needed for a multi-column frame
    frame = pd.DataFrame({"a": s, "b": -s})
    lw = last_window(frame, 2, features=["b", "a"])
    np.testing.assert_array_equal(lw.X[0], [[-3, 3], [-4, 4]])
    assert lw.target is None


def test_exact_length_gives_one_window():
    w = make_windows(hourly([1, 2, 3]), lookback=2, horizon=1)
    assert w.X.shape == (1, 2, 1)


def test_fill_ffill_and_interpolate_reindex_gaps():
    idx = pd.date_range("2024-01-01", periods=6, freq="h").delete([2, 3])  # two missing hours
    s = pd.Series([0.0, 1.0, 4.0, 5.0], index=idx, name="v")
    w = make_windows(s, lookback=6, horizon=0, fill="ffill")
    np.testing.assert_array_equal(w.X[0, :, 0], [0, 1, 1, 1, 4, 5])
    assert len(w.index) == 6 and w.freq == pd.tseries.frequencies.to_offset("h")
    w = make_windows(s, lookback=6, horizon=0, fill="interpolate")
    np.testing.assert_allclose(w.X[0, :, 0], [0, 1, 2, 3, 4, 5])
    # NaN values (no gap) are filled too
    s2 = hourly([1.0, np.nan, 3.0])
    np.testing.assert_allclose(make_windows(s2, 3, 0, fill="interpolate").X[0, :, 0], [1, 2, 3])
    np.testing.assert_allclose(make_windows(s2, 3, 0, fill="ffill").X[0, :, 0], [1, 1, 3])


def test_nan_outside_used_columns_is_ignored():
    frame = pd.DataFrame({"a": [1.0, 2, 3, 4], "junk": [np.nan, "x", None, 1]}, index=hourly([0] * 4).index)
    assert make_windows(frame, 2, 1, target="a").X.shape == (2, 2, 1)


def test_trading_calendar_uses_consecutive_rows():
    idx = trading_days(30)
    assert len(pd.bdate_range(idx[0], idx[-1])) > len(idx)  # BDay does not fit
    s = pd.Series(np.arange(30.0), index=idx, name="close")
    w = make_windows(s, lookback=5, horizon=2)
    assert w.freq is None
    np.testing.assert_array_equal(w.X[0, :, 0], np.arange(5.0))
    np.testing.assert_array_equal(w.y[0], [5, 6])
    assert list(w.target_index(0)) == list(idx[5:7])


def test_real_sp500_and_temps():
    from tsrnn.datasets import load_seattle_temps, load_sp500

    sp = load_sp500()
    w = make_windows(sp, 20, 5, target="close", features=["close", "volume"])
    assert w.X.shape == (5031 - 25 + 1, 20, 2)
    assert w.origins[-1] == pd.Timestamp("2018-12-21")
    raw = load_seattle_temps(fill_missing=False)
    with pytest.raises(ValueError, match=r"missing timestamp.*2010-03-14 03:00:00.*fill="):
        make_windows(raw, 24, 1)
    filled = make_windows(raw, 24, 1, fill="interpolate")
    np.testing.assert_allclose(filled.X, make_windows(load_seattle_temps(), 24, 1).X)


def test_tz_aware_hourly_across_dst():
    idx = pd.date_range("2024-03-30", periods=72, freq="h", tz="Europe/Paris")
    s = pd.Series(np.arange(72.0), index=idx)
    w = make_windows(s, 24, 6)
    assert w.X.shape == (72 - 30 + 1, 24, 1)
    assert str(w.origins.tz) == "Europe/Paris"


# ---------------------------------------------------------------------------------------
# make_windows: properties
# ---------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    lookback=st.integers(1, 12),
    horizon=st.integers(0, 6),
    stride=st.integers(1, 7),
    trading=st.booleans(),
)
def test_windows_property(n, lookback, horizon, stride, trading):
    idx = trading_days(n) if trading else pd.date_range("2023-05-01", periods=n, freq="15min")
    values = np.random.default_rng(n).normal(size=n)
    s = pd.Series(values, index=idx, name="v")
    if n < lookback + horizon:
        with pytest.raises(ValueError, match=rf"{n} rows.*{lookback} \+ {horizon} = {lookback + horizon}"):
            make_windows(s, lookback, horizon, stride=stride)
        return
    w = make_windows(s, lookback, horizon, stride=stride)
    expected = (n - lookback - horizon) // stride + 1
    assert w.X.shape == (expected, lookback, 1) and w.y.shape == (expected, horizon)
    assert np.all(np.diff(w.starts) == stride)
    # the last window uses the most recent rows
    assert w.starts[-1] + lookback + horizon == n
    for i, start in enumerate(w.starts):
        inputs = idx[start : start + lookback]
        targets = w.target_index(i)
        assert w.origins[i] == inputs[-1]
        if horizon:
            assert targets.min() > inputs.max()  # strictly after every input timestamp
        np.testing.assert_array_equal(w.X[i, :, 0], values[start : start + lookback])
        np.testing.assert_array_equal(w.y[i], values[start + lookback : start + lookback + horizon])
        np.testing.assert_array_equal(w.y[i], s.loc[targets].to_numpy())


# ---------------------------------------------------------------------------------------
# make_windows: refusals
# ---------------------------------------------------------------------------------------
def test_not_datetime_index():
    with pytest.raises(TypeError, match="DatetimeIndex; got RangeIndex"):
        make_windows(pd.Series([1.0, 2.0, 3.0]), 1)
    with pytest.raises(TypeError, match="pandas Series or DataFrame; got ndarray"):
        make_windows(np.arange(5.0), 1)


def test_unsorted_index_names_timestamp():
    idx = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 02:00", "2024-01-01 01:00", "2024-01-01 03:00"])
    with pytest.raises(ValueError, match=r"not sorted: 2024-01-01 01:00:00 \(position 2\).*sort_index"):
        make_windows(pd.Series(1.0, index=idx), 1)


def test_duplicated_index_names_timestamp():
    idx = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:00", "2024-01-01 02:00"])
    with pytest.raises(ValueError, match=r"duplicated timestamps; the first is 2024-01-01 01:00:00"):
        make_windows(pd.Series(1.0, index=idx), 1)


def test_nat_in_index():
    idx = pd.DatetimeIndex(["2024-01-01", None, "2024-01-03"])
    with pytest.raises(ValueError, match=r"NaT \(first at position 1\)"):
        make_windows(pd.Series(1.0, index=idx), 1)


def test_missing_timestamp_names_first_gap_and_suggests_fill():
    idx = pd.date_range("2024-01-01", periods=10, freq="D").delete([4, 5, 8])
    with pytest.raises(ValueError, match=r"3 missing timestamp\(s\).*'D'.*first is 2024-01-05 00:00:00.*fill="):
        make_windows(pd.Series(1.0, index=idx), 2)


def test_irregular_index_refused():
    with pytest.raises(ValueError, match=r"irregular.*2024-01-01 01:00:00 -> 2024-01-01 02:30:00.*resample"):
        make_windows(pd.Series(1.0, index=IRREGULAR), 1)


def test_nan_names_column_and_timestamp():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 2.0, np.nan, 4.0]}, index=hourly([0] * 4).index)
    with pytest.raises(ValueError, match=r"column 'b' contains 1 NaN.*2024-01-01 02:00:00.*fill="):
        make_windows(frame, 2, 1, target="a", features=["a", "b"])
    with pytest.raises(ValueError, match=r"column 'b' contains 1 NaN"):
        make_windows(frame, 2, 1, target="b")


def test_unfillable_nan_and_inf():
    s = hourly([np.nan, 1.0, 2.0, np.nan])
    with pytest.raises(ValueError, match=r"column 'v' still has 1 NaN.*fill='ffill'.*2024-01-01 00:00:00"):
        make_windows(s, 2, fill="ffill")
    with pytest.raises(ValueError, match=r"column 'v' still has 2 NaN.*fill='interpolate'"):
        make_windows(s, 2, fill="interpolate")
    with pytest.raises(ValueError, match=r"column 'v' contains inf \(first at 2024-01-01 01:00:00\)"):
        make_windows(hourly([1.0, np.inf, 2.0]), 1, fill="ffill")
    with pytest.raises(ValueError, match=r"column 'v' contains 1 inf"):
        make_windows(hourly([1.0, np.inf, 2.0]), 1)


def test_bad_fill_value():
    with pytest.raises(ValueError, match=r"fill must be one of \(None, 'ffill', 'interpolate'\); got 'bfill'"):
        make_windows(hourly([1.0, 2.0]), 1, fill="bfill")


def test_too_short_names_both_numbers():
    with pytest.raises(ValueError, match=r"data has 5 rows but lookback \+ horizon = 4 \+ 2 = 6"):
        make_windows(hourly(range(5)), 4, 2)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"lookback": 2.0}, TypeError, r"lookback must be an int; got float \(2.0\)"),
        ({"lookback": True}, TypeError, "lookback must be an int; got bool"),
        ({"lookback": 0}, ValueError, "lookback must be an int >= 1; got 0"),
        ({"horizon": -1}, ValueError, "horizon must be an int >= 0; got -1"),
        ({"horizon": "1"}, TypeError, "horizon must be an int; got str"),
        ({"stride": 0}, ValueError, "stride must be an int >= 1; got 0"),
        ({"stride": 1.5}, TypeError, "stride must be an int; got float"),
    ],
)
def test_length_parameters_validated(kwargs, error, pattern):
    params = {"lookback": 2, "horizon": 1, "stride": 1} | kwargs
    with pytest.raises(error, match=pattern):
        make_windows(hourly(range(10)), params.pop("lookback"), **params)


def test_column_errors():
    idx = hourly([0] * 4).index
    frame = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [1.0, 2, 3, 4], "kind": ["x", "y", "x", "y"]}, index=idx)
    with pytest.raises(ValueError, match=r"target must be given for a DataFrame with 3 columns.*'a', 'b', 'kind'"):
        make_windows(frame, 2)
    with pytest.raises(ValueError, match=r"target column 'zz' is not in the data"):
        make_windows(frame, 2, target="zz")
    with pytest.raises(ValueError, match=r"feature column 'zz' is not in the data"):
        make_windows(frame, 2, target="a", features=["a", "zz"])
    with pytest.raises(TypeError, match=r"column 'kind' must be numeric.*dtype"):
        make_windows(frame, 2, target="a", features=["kind"])
    with pytest.raises(ValueError, match="duplicated columns"):
        make_windows(frame, 2, target="a", features=["a", "a"])
    with pytest.raises(ValueError, match="at least one column"):
        make_windows(frame, 2, target="a", features=[])
    with pytest.raises(ValueError, match=r"target 'w' does not match the Series name 'v'"):
        make_windows(hourly(range(4)), 2, target="w")


# ---------------------------------------------------------------------------------------
# SlidingWindowTransformer
# ---------------------------------------------------------------------------------------
def test_transformer_matches_make_windows():
    idx = pd.date_range("2024-01-01", periods=20, freq="h")
    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) ** 2}, index=idx)
    for horizon, stride in [(0, 1), (3, 1), (2, 4)]:
        ref = make_windows(frame, 5, horizon, target="a", features=["a", "b"], stride=stride)
        tr = SlidingWindowTransformer(5, horizon=horizon, stride=stride).fit(frame)
        np.testing.assert_array_equal(tr.transform(frame), ref.X)
        if horizon:
            np.testing.assert_array_equal(tr.target_windows(frame["a"].to_numpy()), ref.y)
    assert tr.n_features_in_ == 2
    assert tr.feature_names_in_.tolist() == ["a", "b"]


def test_transformer_hand_computed_and_dtype():
    series = np.arange(10.0, dtype=np.float32).reshape(5, 2)
    out = SlidingWindowTransformer(lookback=3).fit_transform(series)
    assert out.shape == (3, 3, 2) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out[1], [[2, 3], [4, 5], [6, 7]])


def test_transformer_in_pipeline_and_clone():
    rng = np.random.default_rng(0)
    series = rng.normal(size=(50, 3))
    target = series[:, 0]
    win = SlidingWindowTransformer(lookback=4, horizon=2)
    y = win.target_windows(target)
    pipe = make_pipeline(win, FunctionTransformer(lambda X: X.reshape(len(X), -1)), Ridge())
    pipe.fit(series, y)
    assert pipe.predict(series).shape == (50 - 6 + 1, 2)
    cloned = clone(win)
    assert cloned.get_params() == {"lookback": 4, "horizon": 2, "stride": 1}


def test_transformer_errors():
    tr = SlidingWindowTransformer(lookback=3).fit(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="X has 3 features, but SlidingWindowTransformer is expecting 2"):
        tr.transform(np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"X has 2 time steps but lookback \+ horizon = 3 \+ 0 = 3"):
        tr.transform(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        tr.transform(np.full((5, 2), np.nan))
    with pytest.raises(TypeError, match="lookback must be an int"):
        SlidingWindowTransformer(lookback=2.5).fit(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="needs horizon >= 1"):
        tr.target_windows(np.zeros(10))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SlidingWindowTransformer(3).transform(np.zeros((5, 1)))


# ---------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------
def test_temporal_train_test_split_variants():
    s = pd.Series(np.arange(10.0), index=pd.date_range("2024-01-01", periods=10, freq="D"))
    train, test = temporal_train_test_split(s, 0.25)  # ceil(2.5) = 3 test rows
    assert (len(train), len(test)) == (7, 3)
    assert train.index.max() < test.index.min()
    train, test = temporal_train_test_split(s, 4)
    assert (len(train), len(test)) == (6, 4)
    train, test = temporal_train_test_split(s.to_frame("v"), "2024-01-05")
    assert test.index[0] == pd.Timestamp("2024-01-05") and len(train) == 4
    train, test = temporal_train_test_split(s, pd.Timestamp("2024-01-05 12:00"))
    assert test.index[0] == pd.Timestamp("2024-01-06")
    tz = s.tz_localize("UTC")
    _, test = temporal_train_test_split(tz, "2024-01-09")
    assert len(test) == 2


def test_temporal_train_test_split_errors():
    s = pd.Series(np.arange(5.0), index=pd.date_range("2024-01-01", periods=5, freq="D"))
    with pytest.raises(ValueError, match=r"test_size=5 rows must be in \[1, 4\]"):
        temporal_train_test_split(s, 5)
    with pytest.raises(ValueError, match=r"float test_size must be in \(0, 1\); got 1.0"):
        temporal_train_test_split(s, 1.0)
    with pytest.raises(ValueError, match="empty training part"):
        temporal_train_test_split(s, "2023-12-01")
    with pytest.raises(ValueError, match="empty test part"):
        temporal_train_test_split(s, "2025-01-01")
    with pytest.raises(TypeError, match="test_size must be"):
        temporal_train_test_split(s, True)
    with pytest.raises(TypeError, match="DatetimeIndex"):
        temporal_train_test_split(s.reset_index(drop=True), 0.2)


@pytest.mark.parametrize("horizon", [1, 2, 5])
def test_train_test_split_windows_no_target_leakage(horizon):
    s = hourly(np.arange(40.0))
    w = make_windows(s, 4, horizon)
    X_tr, X_te, y_tr, y_te = train_test_split_windows(w.X, w.y, test_size=0.25)
    n_test = math.ceil(0.25 * len(w.X))
    assert len(X_te) == len(y_te) == n_test
    assert len(X_tr) == len(w.X) - n_test - (horizon - 1)
    # values equal their row number: every test target comes after every training target
    assert y_te.min() > y_tr.max()
    np.testing.assert_array_equal(X_te, w.X[-n_test:])


def test_train_test_split_windows_hand_computed_and_errors():
    X, y = np.arange(10.0).reshape(10, 1, 1), np.arange(20.0).reshape(10, 2)
    X_tr, X_te, y_tr, y_te = train_test_split_windows(X, y, test_size=3, gap=0)
    assert (len(X_tr), len(X_te)) == (7, 3)
    X_tr, X_te, _, _ = train_test_split_windows(X, y[:, 0], test_size=3)  # 1-D y: gap 0
    assert len(X_tr) == 7
    with pytest.raises(ValueError, match="same number of windows; got 10 and 9"):
        train_test_split_windows(X, y[:9])
    with pytest.raises(ValueError, match=r"No training windows left: 10 windows - 3 test - gap 7 = 0"):
        train_test_split_windows(X, y, test_size=3, gap=7)
    with pytest.raises(ValueError, match="gap must be an int >= 0"):
        train_test_split_windows(X, y, gap=-1)


# ---------------------------------------------------------------------------------------
# Feature helpers
# ---------------------------------------------------------------------------------------
def test_log_returns_and_volatility():
    idx = pd.date_range("2024-01-01", periods=4, freq="D")
    p = pd.Series([100.0, 110.0, 99.0, 99.0], index=idx, name="close")
    r = log_returns(p)
    np.testing.assert_allclose(r, [math.log(1.1), math.log(0.9), 0.0])
    assert r.index[0] == idx[1] and r.name == "close"
    frame = log_returns(pd.DataFrame({"a": p, "b": p * 2}))
    np.testing.assert_allclose(frame["a"], frame["b"])
    with pytest.raises(ValueError, match=r"column 'close' is 0.0 at 2024-01-03"):
        log_returns(p.where(p != 99.0, 0.0))
    ret = pd.Series([0.01, -0.01, 0.01, -0.01], index=idx)
    vol = rolling_volatility(ret, 2)
    assert np.isnan(vol.iloc[0])
    np.testing.assert_allclose(vol.iloc[1:], math.sqrt(2) * 0.01)
    annual = rolling_volatility(ret, 2, annualize=252)
    np.testing.assert_allclose(annual.iloc[1:], math.sqrt(2) * 0.01 * math.sqrt(252))
    with pytest.raises(ValueError, match="window must be an int >= 2"):
        rolling_volatility(ret, 1)
    with pytest.raises(ValueError, match="annualize must be > 0"):
        rolling_volatility(ret, 2, annualize=0)


def test_calendar_features_values():
    idx = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 06:00", "2024-12-31 12:00", "2023-07-02 00:00"])
    cf = calendar_features(idx, hour=True, day_of_week=True, day_of_year=True)
    assert cf.columns.tolist() == ["hour_sin", "hour_cos", "dow_sin", "dow_cos", "doy_sin", "doy_cos"]
    assert cf.index.equals(idx)
    np.testing.assert_allclose(cf.loc[idx[0]], [0, 1, 0, 1, 0, 1], atol=1e-12)  # Monday, 1 Jan, midnight
    np.testing.assert_allclose(cf.loc[idx[1], ["hour_sin", "hour_cos"]], [1, 0], atol=1e-12)
    # 2024 is a leap year: 31 Dec 12:00 is day 365.5 of 366
    phase = 2 * math.pi * 365.5 / 366
    np.testing.assert_allclose(cf.loc[idx[2], ["doy_sin", "doy_cos"]], [math.sin(phase), math.cos(phase)])
    # Sunday 2023-07-02 00:00: day_of_week 6
    np.testing.assert_allclose(cf.loc[idx[3], "dow_sin"], math.sin(2 * math.pi * 6 / 7))
    assert calendar_features(idx).columns.tolist() == ["hour_sin", "hour_cos", "doy_sin", "doy_cos"]
    with pytest.raises(TypeError, match="DatetimeIndex; got RangeIndex"):
        calendar_features(pd.RangeIndex(3))
    with pytest.raises(ValueError, match="at least one"):
        calendar_features(idx, hour=False, day_of_year=False)


def test_future_index_rules():
    h = pd.date_range("2024-01-01", periods=5, freq="h", name="time")
    out = future_index(h, 3)
    assert list(out) == list(pd.date_range("2024-01-01 05:00", periods=3, freq="h"))
    assert out.freqstr == "h" and out.name == "time"
    # freq dropped (e.g. after boolean filtering): inferred
    assert future_index(pd.DatetimeIndex(list(h)), 1)[0] == pd.Timestamp("2024-01-01 05:00")
    ms = pd.date_range("2024-01-01", periods=3, freq="MS")
    assert future_index(ms, 2).tolist() == [pd.Timestamp("2024-04-01"), pd.Timestamp("2024-05-01")]
    # trading calendar ending on a Friday -> next business days
    days = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-05"])  # Thursday missing
    assert future_index(days, 2).tolist() == [pd.Timestamp("2024-01-08"), pd.Timestamp("2024-01-09")]
    # gaps in a daily index with weekends: its regular grid
    daily = pd.date_range("2024-01-01", periods=10, freq="D").delete([3])
    assert future_index(daily, 1)[0] == pd.Timestamp("2024-01-11")
    tz = pd.date_range("2024-03-31 00:00", periods=3, freq="h", tz="Europe/Paris")
    assert future_index(tz, 1)[0] == pd.Timestamp("2024-03-31 04:00", tz="Europe/Paris")
    assert future_index(h[:1], 2, freq="15min").tolist() == [
        pd.Timestamp("2024-01-01 00:15"),
        pd.Timestamp("2024-01-01 00:30"),
    ]


def test_future_index_errors():
    with pytest.raises(ValueError, match="1 timestamp.*freq="):
        future_index(pd.DatetimeIndex(["2024-01-01"]), 1)
    with pytest.raises(ValueError, match="irregular.*freq="):
        future_index(IRREGULAR, 1)
    with pytest.raises(TypeError, match="periods must be an int"):
        future_index(pd.date_range("2024", periods=3, freq="D"), 1.0)
    with pytest.raises(ValueError, match="periods must be an int >= 1"):
        future_index(pd.date_range("2024", periods=3, freq="D"), 0)
    with pytest.raises(TypeError, match="DatetimeIndex"):
        future_index(pd.RangeIndex(3), 1)


def test_last_window_after_fill_reindex():
    idx = pd.date_range("2024-01-01", periods=8, freq="h").delete([1, 2, 3])
    s = pd.Series(np.arange(5.0), index=idx)
    w = last_window(s, 2, fill="ffill")  # 8 rows after reindexing, still one window
    assert w.X.shape == (1, 2, 1)
    np.testing.assert_array_equal(w.X[0, :, 0], [3, 4])
