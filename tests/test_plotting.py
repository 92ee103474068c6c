"""Tests of tsrnn.plotting on small fake forecasts and backtests (Agg backend, no display)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from tsrnn import plotting  # noqa: E402
from tsrnn.plotting import (  # noqa: E402
    new_figure,
    plot_backtest,
    plot_backtest_errors,
    plot_forecast,
    save_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def history() -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=96, freq="h", name="time")
    t = np.arange(96)
    return pd.DataFrame({"temp": 10 + 5 * np.sin(2 * np.pi * t / 24), "wind": t % 7.0},
                        index=idx)


@pytest.fixture
def forecast(history) -> pd.DataFrame:
    stamps = pd.date_range(history.index[-1], periods=7, freq="h", name="time")[1:]
    point = 10 + 5 * np.sin(2 * np.pi * np.arange(96, 102) / 24)
    return pd.DataFrame({"temp": point, "lower": point - 1.0, "upper": point + 1.0},
                        index=stamps)


@pytest.fixture
def backtest_result() -> SimpleNamespace:
    """Stands in for tsrnn.forecasting.BacktestResult: by_horizon (and forecasts)."""
    by_horizon = pd.DataFrame(
        {"tsrnn": [0.5, 0.6, 0.7], "naive": [0.8, 1.2, 1.5],
         "seasonal_naive": [0.9, 0.9, 0.9], "ridge": [0.55, 0.65, 0.8]},
        index=pd.Index([1, 2, 3], name="step"),
    )
    return SimpleNamespace(by_horizon=by_horizon)


def _lines(ax: Axes) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines()}


# --------------------------------------------------------------------------- forecast
def test_plot_forecast_draws_history_forecast_and_band(history, forecast):
    ax = plot_forecast(history, forecast, target="temp", last=24)
    assert isinstance(ax, Axes)
    lines = _lines(ax)
    assert {"history", "forecast"} <= set(lines)
    hist_x = lines["history"].get_xdata()
    assert len(hist_x) == 24  # only the last 24 observations
    # the forecast line starts at the last observation and covers every forecast step
    fc_y = np.asarray(lines["forecast"].get_ydata(), dtype=float)
    assert len(fc_y) == len(forecast) + 1
    assert fc_y[0] == pytest.approx(history["temp"].iloc[-1])
    np.testing.assert_allclose(fc_y[1:], forecast["temp"].to_numpy())
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1 and bands[0].get_label() == "prediction interval"
    assert "temp" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["history", "forecast", "prediction interval"]


def test_plot_forecast_without_interval_and_with_series_history(history, forecast):
    ax = plot_forecast(history["temp"], forecast[["temp"]])
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(_lines(ax)["history"].get_xdata()) == len(history)  # last=None: everything


def test_plot_forecast_infers_target_from_forecast(history, forecast):
    ax = plot_forecast(history, forecast)  # two history columns, one point column
    np.testing.assert_allclose(_lines(ax)["history"].get_ydata(), history["temp"].to_numpy())


def test_plot_forecast_on_given_axes(history, forecast):
    fig, given = plt.subplots()
    assert plot_forecast(history, forecast, target="temp", ax=given) is given
    assert given.figure is fig


def test_plot_forecast_accepts_a_series_forecast(history, forecast):
    ax = plot_forecast(history, forecast["temp"], target="temp")
    assert len(_lines(ax)["forecast"].get_xdata()) == len(forecast) + 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": "pressure"}, ValueError, r"'pressure' is not a column of history.*'temp'"),
        ({"last": 0}, ValueError, "last must be a positive int"),
        ({"last": 2.5}, ValueError, "last must be a positive int"),
    ],
)
def test_plot_forecast_rejects_bad_arguments(history, forecast, kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_forecast(history, forecast, **kwargs)


def test_plot_forecast_needs_pandas_data(history, forecast):
    with pytest.raises(TypeError, match="history must be a pandas Series or DataFrame"):
        plot_forecast(history.to_numpy(), forecast)
    with pytest.raises(TypeError, match="forecast must be a pandas Series or DataFrame"):
        plot_forecast(history, forecast.to_numpy())


def test_plot_forecast_ambiguous_target(history, forecast):
    two_points = forecast.assign(other=1.0)
    with pytest.raises(ValueError, match="target="):
        plot_forecast(history, two_points)


def test_plot_forecast_skips_infinite_interval(history, forecast):
    wide = forecast.assign(lower=-np.inf, upper=np.inf)
    ax = plot_forecast(history, wide, target="temp")
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]


# --------------------------------------------------------------------------- backtest
def test_plot_backtest_errors_one_line_per_model(backtest_result):
    ax = plot_backtest_errors(backtest_result)
    labels = [line.get_label() for line in ax.get_lines()]
    assert sorted(labels) == ["naive", "ridge", "seasonal_naive", "tsrnn"]
    assert labels[-1] == "tsrnn"  # drawn on top
    ours = _lines(ax)["tsrnn"]
    np.testing.assert_array_equal(ours.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(ours.get_ydata(), [0.5, 0.6, 0.7])
    assert ax.get_xlabel() == "steps ahead"
    assert ax.get_yscale() == "linear"


def test_plot_backtest_errors_accepts_the_table(backtest_result):
    ax = plot_backtest_errors(backtest_result.by_horizon, ax=plt.subplots()[1])
    assert len(ax.get_lines()) == 4


def test_plot_backtest_errors_log_scale_for_wide_spread(backtest_result):
    table = backtest_result.by_horizon.assign(naive=[10.0, 20.0, 40.0])
    assert plot_backtest_errors(table).get_yscale() == "log"
    assert plot_backtest_errors(table, log_scale=False).get_yscale() == "linear"


def test_plot_backtest_errors_rejects_bad_input():
    with pytest.raises(TypeError, match="BacktestResult"):
        plot_backtest_errors([1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        plot_backtest_errors(pd.DataFrame())


# --------------------------------------------------------------------------- helpers
def _tick_labels(ax: Axes) -> list[tuple[float, str]]:
    """(position, label) of the x ticks inside the view, after a draw."""
    ax.figure.canvas.draw()
    lo, hi = sorted(ax.get_xlim())
    return [(tick.get_loc(), tick.label1.get_text()) for tick in ax.xaxis.get_major_ticks()
            if lo <= tick.get_loc() <= hi]


def _date_words(moment) -> set[str]:
    """Every word a label of ``moment`` may use: its day, month, year, quarter, time."""
    return {str(moment.day), f"{moment.day:02d}", f"{moment:%b}", str(moment.year),
            f"{moment:%H:%M}", f"Q{(moment.month - 1) // 3 + 1}"}


def _band(ax: Axes) -> PolyCollection:
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    return bands[0]


def _band_extent(band: PolyCollection) -> dict[float, tuple[float, float]]:
    """Drawn lower and upper edge of a fill_between band at each of its x positions."""
    vertices = np.concatenate([path.vertices for path in band.get_paths()])
    extent = {}
    for x, y in vertices:
        low, high = extent.get(x, (np.inf, -np.inf))
        extent[x] = (min(low, y), max(high, y))
    return extent


def _legend_texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _series_ending_2010(freq: str, periods: int) -> pd.Series:
    end = "2010-12-31 23:00" if freq == "h" else "2010-12-31"
    idx = pd.date_range(end=end, periods=periods, freq=freq, name="time")
    t = np.arange(periods)
    return pd.Series(10 + 5 * np.sin(t / 5), index=idx, name="load")


def _forecast_after(history: pd.Series, steps: int = 6, width: float = 1.0) -> pd.DataFrame:
    stamps = pd.date_range(history.index[-1], periods=steps + 1, freq=history.index.freq)[1:]
    point = np.full(steps, float(history.iloc[-1]))
    return pd.DataFrame({history.name: point, "lower": point - width, "upper": point + width},
                        index=stamps)


# --------------------------------------------------------------------------- units, titles
def test_unit_on_the_y_axis(history, forecast):
    ax = plot_forecast(history, forecast, target="temp", unit="degrees C")
    assert ax.get_ylabel() == "temp (degrees C)"
    assert plot_forecast(history, forecast, target="temp").get_ylabel() == "temp"
    title = ax.get_title()
    assert "temp" in title and "6-step forecast" in title


def test_unit_must_be_a_string(history, forecast):
    with pytest.raises(TypeError, match="unit must be a str"):
        plot_forecast(history, forecast, unit=3)


# --------------------------------------------------------------------------- date labels
def test_december_history_is_labelled_december():
    """The issue's case: hourly history to 2010-12-31 23:00, forecast into 2011."""
    hist = _series_ending_2010("h", 96)
    ax = plot_forecast(hist, _forecast_after(hist, 24))
    ticks = _tick_labels(ax)
    december = [(x, label) for x, label in ticks if mdates.num2date(x).month == 12]
    assert december, ticks
    assert "Dec" in december[0][1] and "2010" in december[0][1]
    assert not any("Jan" in label or "2011" in label for _, label in december)
    assert ax.xaxis.get_offset_text().get_text() == ""  # no "2011-Jan" offset


@pytest.mark.parametrize(
    ("freq", "periods"),
    [("h", 96), ("h", 24 * 40), ("D", 60), ("D", 800), ("B", 90), ("W-SUN", 60),
     ("MS", 30), ("ME", 30), ("ME", 120), ("QE-DEC", 24), ("YE-DEC", 30)],
)
def test_every_tick_label_names_the_date_it_stands_at(freq, periods):
    hist = _series_ending_2010(freq, periods)
    ax = plot_forecast(hist, _forecast_after(hist))
    ticks = _tick_labels(ax)
    assert len(ticks) >= 3, ticks
    for x, label in ticks:
        moment = mdates.num2date(x).replace(tzinfo=None)
        words = set(label.split())
        assert words and words <= _date_words(moment), (freq, label, moment)
    assert str(mdates.num2date(ticks[0][0]).year) in ticks[0][1]  # context on the first tick
    assert ax.xaxis.get_offset_text().get_text() == ""


@pytest.mark.parametrize("freq", ["ME", "MS", "QE-DEC"])
def test_monthly_and_quarterly_ticks_sit_on_observations(freq):
    hist = _series_ending_2010(freq, 24)
    forecast = _forecast_after(hist)
    ax = plot_forecast(hist, forecast)
    stamps = set(mdates.date2num(hist.index.append(forecast.index)))
    ticks = _tick_labels(ax)
    assert ticks and all(x in stamps for x, _ in ticks), ticks


def test_month_end_december_point_is_labelled_december():
    hist = _series_ending_2010("ME", 4)  # Sep..Dec 2010, forecast Jan..Mar 2011
    ax = plot_forecast(hist, _forecast_after(hist, 3))
    labels = dict(_tick_labels(ax))
    assert labels[mdates.date2num(pd.Timestamp("2010-12-31"))] == "Dec"
    assert labels[mdates.date2num(pd.Timestamp("2011-01-31"))] == "Jan\n2011"


def test_period_index_plots_at_period_starts():
    hist = _series_ending_2010("MS", 30).to_period("M")
    forecast = _forecast_after(_series_ending_2010("MS", 30)).to_period("M")
    ax = plot_forecast(hist, forecast)
    x = _lines(ax)["history"].get_xdata()
    np.testing.assert_array_equal(x, hist.index.to_timestamp().to_numpy())
    for pos, label in _tick_labels(ax):
        assert set(label.split()) <= _date_words(mdates.num2date(pos))


def test_integer_index_plots_with_integer_ticks():
    hist = pd.Series(np.arange(40.0), index=pd.RangeIndex(40), name="count")
    forecast = pd.DataFrame({"count": np.arange(40.0, 46.0), "lower": 35.0, "upper": 50.0},
                            index=pd.RangeIndex(40, 46))
    ax = plot_forecast(hist, forecast)
    np.testing.assert_array_equal(_lines(ax)["history"].get_xdata(), np.arange(40))
    assert ax.get_xlabel() == "time step"
    labels = [label for _, label in _tick_labels(ax)]
    assert labels and all(label.lstrip("−-").isdigit() for label in labels)


def test_history_and_forecast_need_the_same_kind_of_index(history, forecast):
    with pytest.raises(TypeError, match="indexed alike"):
        plot_forecast(history.reset_index(drop=True), forecast)
    with pytest.raises(TypeError, match="DatetimeIndex, a PeriodIndex or integer"):
        plot_forecast(history.set_axis(history.index.astype(str)), forecast)


# --------------------------------------------------------------------------- interval
def test_narrow_interval_is_drawn_visibly():
    """+-0.08 on a series of amplitude 20 (the issue's invisible band)."""
    idx = pd.date_range("2024-01-01", periods=72, freq="h")
    hist = pd.Series(50 + 20 * np.sin(2 * np.pi * np.arange(72) / 24), index=idx, name="temp")
    forecast = _forecast_after(hist, 12, width=0.08)
    ax = plot_forecast(hist, forecast, coverage=0.9)
    band = _band(ax)
    y0, y1 = ax.get_ylim()
    extent = _band_extent(band)
    heights = np.array([high - low for low, high in extent.values()])
    assert heights.min() / (y1 - y0) >= 0.9 * plotting.MIN_BAND_FRACTION
    # in pixels too: a few at the default size
    ax.figure.canvas.draw()
    pixels_per_unit = ax.bbox.height / (y1 - y0)
    assert heights.min() * pixels_per_unit >= 5
    # it still covers the true interval, and the legend says it is drawn wider
    for low, high in extent.values():
        assert low <= float(forecast["lower"].iloc[0]) and high >= float(forecast["upper"].iloc[0])
    assert _legend_texts(ax)[-1] == "90% prediction interval (narrower than drawn)"
    # outlined, not only shaded
    assert band.get_linewidth()[0] > 0 and band.get_edgecolor()[0][3] > 0


def test_wide_interval_is_drawn_as_it_is(history, forecast):
    ax = plot_forecast(history, forecast, target="temp", clip_at_zero=False)
    for low, high in _band_extent(_band(ax)).values():
        assert high - low == pytest.approx(2.0)
    assert "narrower" not in _legend_texts(ax)[-1]


@pytest.mark.parametrize(("coverage", "text"), [(0.9, "90%"), (0.975, "97.5%"), (0.5, "50%")])
def test_legend_says_the_coverage(history, forecast, coverage, text):
    ax = plot_forecast(history, forecast, target="temp", coverage=coverage)
    assert _legend_texts(ax)[-1] == f"{text} prediction interval"


@pytest.mark.parametrize("coverage", [0.0, 1.0, 1.5])
def test_coverage_out_of_range(history, forecast, coverage):
    with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\)"):
        plot_forecast(history, forecast, coverage=coverage)


# --------------------------------------------------------------------------- non-negative
@pytest.fixture
def counts() -> pd.Series:
    idx = pd.date_range("2000-01-31", periods=60, freq="ME")
    return pd.Series(np.abs(40 * np.sin(np.arange(60) / 9)), index=idx, name="sunspots")


def test_non_negative_series_clipped_at_zero(counts):
    stamps = pd.date_range(counts.index[-1], periods=7, freq="ME")[1:]
    point = np.array([3.0, 1.0, -2.0, 0.5, 4.0, 6.0])
    forecast = pd.DataFrame({"sunspots": point, "lower": point - 30, "upper": point + 30},
                            index=stamps)
    ax = plot_forecast(counts, forecast)
    lows = [low for low, _ in _band_extent(_band(ax)).values()]
    assert min(lows) >= 0
    assert np.min(_lines(ax)["forecast (clipped at 0)"].get_ydata()) >= 0
    assert _legend_texts(ax)[-1] == "prediction interval (clipped at 0)"
    # explicitly off: drawn as given
    ax = plot_forecast(counts, forecast, clip_at_zero=False)
    assert min(low for low, _ in _band_extent(_band(ax)).values()) < 0
    assert np.min(_lines(ax)["forecast"].get_ydata()) == -2.0


def test_series_with_negative_values_not_clipped(counts):
    stamps = pd.date_range(counts.index[-1], periods=4, freq="ME")[1:]
    forecast = pd.DataFrame({"sunspots": 1.0, "lower": -20.0, "upper": 20.0}, index=stamps)
    signed = counts.copy()
    signed.iloc[5] = -0.5  # one observation below zero
    ax = plot_forecast(signed, forecast)
    assert min(low for low, _ in _band_extent(_band(ax)).values()) == -20.0
    assert "clipped" not in " ".join(_legend_texts(ax))


def test_clip_at_zero_must_be_a_bool(history, forecast):
    with pytest.raises(TypeError, match="clip_at_zero must be True, False or None"):
        plot_forecast(history, forecast, clip_at_zero="yes")


# --------------------------------------------------------------------------- covariates
def test_covariates_below_the_target_share_x(history, forecast):
    ax = plot_forecast(history, forecast, target="temp", covariates=["wind"], last=48)
    fig = ax.figure
    assert len(fig.axes) == 2
    covariate_ax = fig.axes[1]
    assert covariate_ax is not ax
    assert ax.get_shared_x_axes().joined(ax, covariate_ax)
    assert covariate_ax.get_position().y1 <= ax.get_position().y0  # below
    wind = _lines(covariate_ax)["wind"]
    np.testing.assert_allclose(wind.get_ydata(), history["wind"].to_numpy()[-48:])
    assert covariate_ax.get_ylabel() == "wind"


def test_covariates_on_given_axes(history, forecast):
    _, (ax, covariate_ax) = new_figure(2, 1, sharex=True, height_ratios=(3, 1))
    assert plot_forecast(history, forecast, target="temp", covariates="wind", ax=ax,
                         covariate_ax=covariate_ax) is ax
    assert "wind" in _lines(covariate_ax)
    # a covariate Axes that does not share x yet is joined to ax
    _, (ax, other) = new_figure(2, 1)
    plot_forecast(history, forecast, target="temp", covariates=["wind"], ax=ax,
                  covariate_ax=other)
    assert ax.get_shared_x_axes().joined(ax, other)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"covariates": ["rain"]}, r"covariate\(s\) \['rain'\] not in history"),
     ({"covariates": ["wind"], "ax": "given"}, "pass covariate_ax="),
     ({"covariate_ax": "given"}, "no covariates were given")],
)
def test_covariates_bad_arguments(history, forecast, kwargs, match):
    kwargs = {k: (plt.subplots()[1] if v == "given" else v) for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=match):
        plot_forecast(history, forecast, target="temp", **kwargs)


# --------------------------------------------------------------------------- panels
@pytest.fixture
def panel() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A long history (store, ds, sales, price) and the long forecast predict returns."""
    idx = pd.date_range("2020-01-31", periods=36, freq="ME")
    t = np.arange(36)
    history = pd.concat([
        pd.DataFrame({"store": s, "ds": idx, "sales": 5 + k + np.sin(t / 3),
                      "price": 1.0 + k})
        for k, s in enumerate(["north", "south", "east"])
    ], ignore_index=True)
    stamps = pd.date_range(idx[-1], periods=4, freq="ME")[1:]
    forecast = pd.concat([
        pd.DataFrame({"store": s, "ds": stamps, "sales": 10.0 * (k + 1),
                      "lower": 10.0 * (k + 1) - 1, "upper": 10.0 * (k + 1) + 1})
        for k, s in enumerate(["north", "south", "east"])
    ], ignore_index=True)
    return history, forecast


def test_panel_forecast_needs_series(panel):
    history, forecast = panel
    with pytest.raises(ValueError, match=r"3 series \(id column 'store'\); pick one with "
                       r"series=.*'north', 'south', 'east'"):
        plot_forecast(history, forecast)
    with pytest.raises(ValueError, match=r"series 'west' is not in.*'north', 'south'"):
        plot_forecast(history, forecast, series="west")


@pytest.mark.parametrize("form", ["long", "dict", "selected"])
def test_panel_forecast_draws_the_chosen_series(panel, form):
    history, forecast = panel
    south = history[history["store"] == "south"].set_index("ds").drop(columns="store")
    given = {"long": history,
             "dict": {s: g.set_index("ds").drop(columns="store")
                      for s, g in history.groupby("store")},
             "selected": south}[form]
    ax = plot_forecast(given, forecast, series="south", covariates=["price"])
    lines = _lines(ax)
    np.testing.assert_allclose(lines["history"].get_ydata(), south["sales"].to_numpy())
    np.testing.assert_allclose(lines["forecast"].get_ydata()[1:], [20.0, 20.0, 20.0])
    assert "south" in ax.get_title()
    np.testing.assert_allclose(_lines(ax.figure.axes[1])["price"].get_ydata(), 2.0)


def test_panel_with_integer_ids_needs_id_column(panel):
    history, forecast = panel
    codes = {"north": 1, "south": 2, "east": 3}
    forecast = forecast.assign(store=forecast["store"].map(codes))
    history = history.assign(store=history["store"].map(codes))
    ax = plot_forecast(history, forecast, id_column="store", series=2)
    np.testing.assert_allclose(_lines(ax)["forecast"].get_ydata()[1:], 20.0)


def test_series_needs_a_panel_forecast(history, forecast):
    with pytest.raises(ValueError, match="series='a' picks one series of a panel"):
        plot_forecast(history, forecast, target="temp", series="a")


def test_panel_column_names_match_the_forecaster():
    panel_module = pytest.importorskip("tsrnn.forecasting.panel")
    assert plotting._DEFAULT_ID_COLUMN == panel_module.DEFAULT_ID_COLUMN
    assert plotting._DEFAULT_TIME_COLUMN == panel_module.DEFAULT_TIME_COLUMN


# --------------------------------------------------------------------------- backtest plot
def _backtest_forecasts(n_origins=10, horizon=3, step=3, ids=None, offset=0.0,
                        kind="datetime"):
    """A forecasts table as tsrnn.backtest builds it: actual = t, tsrnn = t + 0.5,
    naive = value at the origin, ridge = t + 0.2 (the best baseline)."""
    rows = []
    for series in ids or [None]:
        shift = 0.0 if series is None else 100.0 * (ids.index(series) + 1)
        for k in range(n_origins):
            origin = 20 + k * step
            for h in range(1, horizon + 1):
                t = origin + h
                record = {} if series is None else {"store": series}
                record.update({"origin": origin, "step": h, "timestamp": t,
                               "actual": shift + t + offset, "tsrnn": shift + t + offset + 0.5,
                               "naive": shift + origin + offset, "seasonal_naive": shift + t - 4,
                               "ridge": shift + t + offset + 0.2})
                rows.append(record)
    table = pd.DataFrame(rows)
    if kind == "datetime":
        for column in ("origin", "timestamp"):
            table[column] = pd.Timestamp("2024-01-01") + pd.to_timedelta(table[column], "D")
    elif kind == "period":
        for column in ("origin", "timestamp"):
            table[column] = pd.Period("2010-01", "M") + table[column]
    return table


def _model_lines(ax: Axes, model: str) -> list:
    return [line for line in ax.get_lines() if line.get_label().lstrip("_").startswith(model)]


@pytest.mark.parametrize("n_origins", [1, 4, 7])
def test_plot_backtest_draws_n_origins_forecasts(n_origins):
    table = _backtest_forecasts()
    ax = plot_backtest(table, n_origins=n_origins)
    ours = _model_lines(ax, "tsrnn")
    assert len(ours) == n_origins
    assert len(_model_lines(ax, "ridge")) == n_origins  # the best baseline
    # evenly spaced origins, the first and the last included
    firsts = sorted(line.get_xdata()[0] for line in ours)
    origins = np.sort(table["origin"].unique())
    if n_origins > 1:
        assert firsts[0] <= origins[0] + pd.Timedelta("1D")
        assert firsts[-1] == origins[-1]  # starts at its origin (its value is known)
    assert len(set(firsts)) == n_origins
    assert f"{n_origins} of 10 origins" in ax.get_title()


def test_plot_backtest_lines_start_at_their_origin():
    table = _backtest_forecasts()
    ax = plot_backtest(table, n_origins=10, baseline=None)
    actual = _lines(ax)["actual"]
    known = dict(zip(actual.get_xdata(), actual.get_ydata()))
    for line in _model_lines(ax, "tsrnn")[1:]:  # every origin but the first was evaluated
        x, y = line.get_xdata(), line.get_ydata()
        assert len(x) == 4 and y[0] == known[x[0]]
        np.testing.assert_allclose(y[1:] - [known[v] for v in x[1:]], 0.5)
    assert not _model_lines(ax, "ridge") and not _model_lines(ax, "naive")


def test_plot_backtest_actual_over_the_evaluated_span():
    table = _backtest_forecasts()
    actual = _lines(plot_backtest(table))["actual"]
    np.testing.assert_array_equal(actual.get_xdata(),
                                  np.sort(table["timestamp"].unique()).astype("datetime64[ns]"))
    # origins further apart than the horizon: the line breaks at each gap
    gappy = _backtest_forecasts(n_origins=4, horizon=3, step=5)
    y = _lines(plot_backtest(gappy))["actual"].get_ydata()
    assert np.isnan(y).sum() == 3


def test_plot_backtest_baseline_choice():
    table = _backtest_forecasts()
    ax = plot_backtest(table, baseline="naive")
    assert len(_model_lines(ax, "naive")) == 4
    assert "naive" in _legend_texts(ax)
    ax = plot_backtest(table)
    assert "ridge (best baseline)" in _legend_texts(ax)
    with pytest.raises(ValueError, match=r"baseline must be 'best', None or one of \['naive'"):
        plot_backtest(table, baseline="arima")


def test_plot_backtest_panel_picks_a_series():
    table = _backtest_forecasts(ids=["a", "b"])
    ax = plot_backtest(table)  # default: the first id
    assert np.nanmin(_lines(ax)["actual"].get_ydata()) > 100
    assert np.nanmax(_lines(ax)["actual"].get_ydata()) < 200
    assert "series 'a'" in ax.get_title()
    ax = plot_backtest(table, series="b", n_origins=3)
    assert np.nanmin(_lines(ax)["actual"].get_ydata()) > 200
    assert len(_model_lines(ax, "tsrnn")) == 3
    with pytest.raises(ValueError, match=r"series 'c' is not in.*\['a', 'b'\]"):
        plot_backtest(table, series="c")


def test_plot_backtest_clips_non_negative_series():
    table = _backtest_forecasts(offset=-20.0)  # actual from 1, forecasts dip below 0
    table["actual"] = table["actual"].clip(lower=0)
    table["tsrnn"] = table["actual"] - 3
    ax = plot_backtest(table, n_origins=10, baseline=None)
    assert min(np.min(line.get_ydata()) for line in _model_lines(ax, "tsrnn")) >= 0
    assert "tsrnn forecasts (10 of 10 origins, clipped at 0)" in _legend_texts(ax)
    ax = plot_backtest(table, n_origins=10, baseline="ridge")  # ridge stays above 0
    assert "ridge" in _legend_texts(ax)
    ax = plot_backtest(table, n_origins=10, baseline=None, clip_at_zero=False)
    assert min(np.min(line.get_ydata()) for line in _model_lines(ax, "tsrnn")) < 0


@pytest.mark.parametrize("kind", ["period", "int"])
def test_plot_backtest_period_and_integer_timestamps(kind):
    ax = plot_backtest(_backtest_forecasts(kind=kind), target="sales", unit="units")
    assert len(_model_lines(ax, "tsrnn")) == 4
    assert ax.get_ylabel() == "sales (units)"
    ticks = _tick_labels(ax)
    assert ticks
    if kind == "int":
        assert ax.get_xlabel() == "time step"
    else:
        for x, label in ticks:
            assert set(label.split()) <= _date_words(mdates.num2date(x))


def test_plot_backtest_reads_a_result(backtest_result):
    backtest_result.forecasts = _backtest_forecasts()
    assert len(_model_lines(plot_backtest(backtest_result, 2), "tsrnn")) == 2


@pytest.mark.parametrize(
    ("arg", "kwargs", "error", "match"),
    [([1, 2], {}, TypeError, "BacktestResult or its forecasts"),
     (pd.DataFrame({"origin": [1]}), {}, ValueError, r"lack the column\(s\)"),
     ("table", {"n_origins": 0}, ValueError, "n_origins must be a positive int"),
     ("table", {"series": "a"}, ValueError, "this backtest has one series")],
)
def test_plot_backtest_rejects_bad_input(arg, kwargs, error, match):
    table = _backtest_forecasts() if isinstance(arg, str) else arg
    with pytest.raises(error, match=match):
        plot_backtest(table, **kwargs)


def test_plot_backtest_errors_unit(backtest_result):
    assert plot_backtest_errors(backtest_result, unit="kW").get_ylabel() == \
        "mean absolute error (kW)"


# --------------------------------------------------------------------------- real models
def test_plots_of_a_real_panel_forecast_and_backtest(tmp_path):
    """The frames predict and backtest really return (panel, month-end stamps)."""
    import warnings

    from tsrnn import RNNForecaster, backtest

    idx = pd.date_range("2015-01-31", periods=48, freq="ME")
    t = np.arange(48)
    data = pd.concat([
        pd.DataFrame({"store": s, "ds": idx, "sales": 5 + k + 3 * np.sin(2 * np.pi * t / 12),
                      "price": np.cos(t + k)})
        for k, s in enumerate(["a", "b"])
    ], ignore_index=True)
    model = RNNForecaster(lookback=6, horizon=3, hidden_size=4, max_iter=3, batch_size=8,
                          random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data, target="sales", id_column="store", exog=["price"])
        result = backtest(model, data, target="sales", id_column="store", exog=["price"],
                          initial=0.6)
    forecast = model.predict()
    ax = plot_forecast(data, forecast, series="b", covariates=["price"], unit="units",
                       coverage=model.coverage)
    assert len(_lines(ax)["forecast"].get_ydata()) == 4
    save_figure(ax, tmp_path / "panel_forecast.png")
    ax = plot_backtest(result, series="b", target="sales")
    assert len(_model_lines(ax, "tsrnn")) == min(4, result.forecasts["origin"].nunique())
    save_figure(ax, tmp_path / "panel_backtest.png")
    assert (tmp_path / "panel_backtest.png").read_bytes()[:8] == PNG_MAGIC




# --------------------------------------------------------------------------- files
def test_new_figure_is_not_managed_by_pyplot(tmp_path, history, forecast):
    before = plt.get_fignums()
    fig, ax = new_figure()
    plot_forecast(history, forecast, target="temp", ax=ax)
    assert plt.get_fignums() == before
    path = save_figure(fig, tmp_path / "forecast.png")
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC


def test_save_figure_from_axes_keeps_the_canvas(tmp_path, backtest_result):
    ax = plot_backtest_errors(backtest_result)
    canvas = ax.figure.canvas
    save_figure(ax, tmp_path / "errors.png")
    assert (tmp_path / "errors.png").read_bytes()[:8] == PNG_MAGIC
    assert ax.figure.canvas is canvas


def test_missing_matplotlib_says_how_to_install(monkeypatch, history, forecast):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r"pip install tsrnn\[plot\]"):
        plot_forecast(history, forecast)
    assert "pip install tsrnn[plot]" in plotting.MATPLOTLIB_MISSING


def test_new_figure_shares_x_and_sets_heights():
    fig, (top, bottom) = new_figure(2, 1, sharex=True, height_ratios=(3, 1))
    assert top.get_shared_x_axes().joined(top, bottom)
    fig.canvas.draw()
    assert top.get_position().height == pytest.approx(3 * bottom.get_position().height,
                                                      rel=0.05)


@pytest.mark.parametrize("figure", ["forecast", "narrow", "clipped", "covariates", "period",
                                    "integer", "backtest", "panel_backtest", "errors"])
def test_every_figure_saves(tmp_path, figure, history, forecast, counts, backtest_result):
    if figure == "forecast":
        ax = plot_forecast(history, forecast, target="temp", unit="degrees C", coverage=0.9)
    elif figure == "narrow":
        ax = plot_forecast(history, forecast.assign(lower=forecast["temp"] - 0.01,
                                                    upper=forecast["temp"] + 0.01),
                           target="temp")
    elif figure == "clipped":
        stamps = pd.date_range(counts.index[-1], periods=4, freq="ME")[1:]
        ax = plot_forecast(counts, pd.DataFrame({"sunspots": 1.0, "lower": -9.0,
                                                 "upper": 9.0}, index=stamps))
    elif figure == "covariates":
        ax = plot_forecast(history, forecast, target="temp", covariates=["wind"])
    elif figure == "period":
        ax = plot_forecast(counts.to_period("M"), pd.DataFrame(
            {"sunspots": [1.0]}, index=pd.PeriodIndex(["2005-01"], freq="M")))
    elif figure == "integer":
        ax = plot_forecast(history.reset_index(drop=True),
                           forecast.set_axis(pd.RangeIndex(96, 102)), target="temp")
    elif figure == "backtest":
        ax = plot_backtest(_backtest_forecasts(), unit="kW")
    elif figure == "panel_backtest":
        ax = plot_backtest(_backtest_forecasts(ids=["a", "b"]), series="b")
    else:
        ax = plot_backtest_errors(backtest_result, unit="kW")
    path = save_figure(ax, tmp_path / f"{figure}.png")
    assert (tmp_path / f"{figure}.png").read_bytes()[:8] == PNG_MAGIC
    assert path.endswith(f"{figure}.png")
