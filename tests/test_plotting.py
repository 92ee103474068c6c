"""Tests of tsrnn.plotting on small fake forecasts and backtests (Agg backend, no display)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from tsrnn import plotting  # noqa: E402
from tsrnn.plotting import (  # noqa: E402
    new_figure,
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
    """Stands in for tsrnn.forecasting.BacktestResult: only by_horizon is read."""
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


def test_plot_forecast_needs_a_datetime_index(history, forecast):
    with pytest.raises(TypeError, match="history must have a DatetimeIndex"):
        plot_forecast(history.reset_index(drop=True), forecast)
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
