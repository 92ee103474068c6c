"""Matplotlib figures for forecasts and backtests.

matplotlib is an optional dependency (``pip install tsrnn[plot]``): it is imported
inside the functions, so ``import tsrnn.plotting`` works without it and the error
only comes when a figure is asked for.

The plotting functions draw on an existing :class:`~matplotlib.axes.Axes` when given
one, and otherwise open a new figure through :mod:`matplotlib.pyplot` (so
``plt.show()`` and notebooks display it as usual). They return the Axes; its figure is
``ax.figure``. :func:`save_figure` writes a figure to a file through matplotlib's Agg
renderer, whatever the interactive backend is, which is what the ``tsrnn`` command and
the examples use.
"""

from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tsrnn.forecasting import BacktestResult

__all__ = ["new_figure", "plot_backtest_errors", "plot_forecast", "save_figure"]

#: Message of the ImportError raised when matplotlib is missing.
MATPLOTLIB_MISSING = (
    "tsrnn.plotting needs matplotlib, which is not installed; install it with "
    "`pip install tsrnn[plot]` (or `pip install matplotlib`)."
)
#: Figure size (inches) of a figure opened by the plotting functions.
DEFAULT_FIGSIZE = (10.0, 4.5)
#: The forecaster's own model name in a backtest (drawn on top, thicker).
MODEL_NAME = "tsrnn"
#: Error spread (largest / smallest) above which plot_backtest_errors uses a log axis.
LOG_SCALE_RATIO = 20.0
_HISTORY_COLOR = "0.35"
_FORECAST_COLOR = "C3"


def _require_matplotlib() -> Any:
    """Import and return :mod:`matplotlib`, or raise an ImportError saying how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(MATPLOTLIB_MISSING) from exc
    return matplotlib


def _new_axes(ax: Axes | None) -> Axes:
    """Return ``ax``, or the Axes of a new pyplot figure."""
    _require_matplotlib()
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=DEFAULT_FIGSIZE, layout="constrained")
    return ax


def new_figure(nrows: int = 1, ncols: int = 1, *,
               figsize: tuple[float, float] = DEFAULT_FIGSIZE) -> tuple[Figure, Any]:
    """Create a figure outside pyplot, rendered with the Agg backend.

    The figure is not registered with :mod:`matplotlib.pyplot`, so it never opens a
    window, needs no display and is freed when it goes out of scope: the right kind of
    figure for scripts that only write image files.

    Parameters
    ----------
    nrows, ncols : int, default=1
        Grid of subplots.
    figsize : tuple of float, default=(10.0, 4.5)
        Width and height in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, with an Agg canvas attached.
    axes : matplotlib.axes.Axes or numpy.ndarray of Axes
        As returned by :meth:`matplotlib.figure.Figure.subplots`.
    """
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols)


def save_figure(figure: Figure | Axes, path: str | os.PathLike, *, dpi: int = 120) -> str:
    """Write a figure to an image file, rendered by matplotlib's Agg backend.

    The figure is drawn on an Agg canvas for the duration of the call (its own canvas,
    e.g. a window of an interactive backend, is put back afterwards), so writing files
    works the same everywhere, also without a display. The format follows the file
    extension (``.png``, ``.pdf``, ``.svg``, ...).

    Parameters
    ----------
    figure : matplotlib.figure.Figure or matplotlib.axes.Axes
        The figure to write, or an Axes of it.
    path : str or os.PathLike
        Output file; its folder must exist.
    dpi : int, default=120
        Resolution of raster formats.

    Returns
    -------
    str
        The path written.
    """
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure
    while getattr(fig, "figure", None) is not None and fig.figure is not fig:
        fig = fig.figure  # Axes -> (Sub)Figure -> root Figure
    original = fig.canvas
    FigureCanvasAgg(fig)
    try:
        fig.savefig(os.fspath(path), dpi=dpi)
    finally:
        if original is not None and original is not fig.canvas:
            fig.set_canvas(original)
    return os.fspath(path)


def _check_datetime_pandas(data: object, name: str) -> None:
    if not isinstance(data, (pd.Series, pd.DataFrame)):
        raise TypeError(
            f"{name} must be a pandas Series or DataFrame with a DatetimeIndex; got "
            f"{type(data).__name__}."
        )
    if not isinstance(data.index, pd.DatetimeIndex):
        raise TypeError(f"{name} must have a DatetimeIndex; got {type(data.index).__name__}.")


def _resolve_target(history: pd.Series | pd.DataFrame, forecast: pd.DataFrame,
                    target: str | None) -> tuple[pd.Series, pd.Series, str]:
    """The history and point-forecast series to draw, and the target's name."""
    band = {"lower", "upper"}
    point_columns = [c for c in forecast.columns if c not in band]
    if target is None:
        if isinstance(history, pd.Series):
            target = history.name
            if target not in forecast.columns:
                if len(point_columns) != 1:
                    raise ValueError(
                        f"forecast has point columns {point_columns}; say which one to draw "
                        "with target=..."
                    )
                target = point_columns[0]
        elif len(point_columns) == 1:
            target = point_columns[0]
        elif history.shape[1] == 1:
            target = history.columns[0]
        else:
            raise ValueError(
                f"history has columns {list(history.columns)} and forecast "
                f"{list(forecast.columns)}; say which to draw with target=..."
            )
    if isinstance(history, pd.Series):
        series = history
    else:
        if target not in history.columns:
            raise ValueError(
                f"target {target!r} is not a column of history; its columns are "
                f"{list(history.columns)}."
            )
        series = history[target]
    if target in forecast.columns:
        point = forecast[target]
    elif len(point_columns) == 1:
        point = forecast[point_columns[0]]
    else:
        raise ValueError(
            f"target {target!r} is not a column of forecast; its columns are "
            f"{list(forecast.columns)}."
        )
    return series, point, "value" if target is None else str(target)


def plot_forecast(history: pd.Series | pd.DataFrame, forecast: pd.DataFrame | pd.Series, *,
                  target: str | None = None, ax: Axes | None = None,
                  last: int | None = None) -> Axes:
    """Plot the recent history, the point forecast and its prediction interval.

    Parameters
    ----------
    history : pandas.Series or pandas.DataFrame
        Observed values with a :class:`pandas.DatetimeIndex` (e.g. the frame the
        forecaster was fitted on).
    forecast : pandas.DataFrame or pandas.Series
        Output of :meth:`tsrnn.RNNForecaster.predict`: indexed by the future timestamps,
        a point-forecast column (named after the target) and optional ``lower`` and
        ``upper`` columns, drawn as a shaded band.
    target : str, optional
        Column to draw. Default: the name of a Series ``history``, else the only point
        column of ``forecast``, else the only column of ``history``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new pyplot figure.
    last : int, optional
        Draw only the last ``last`` observations of the history (default: all).

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on (the figure is ``ax.figure``).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    TypeError
        If ``history`` or ``forecast`` is not pandas data with a DatetimeIndex.
    ValueError
        If ``target`` is not a column, is ambiguous, or ``last`` is not a positive int.

    See Also
    --------
    plot_backtest_errors : errors by forecast step from a backtest.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, pandas as pd
    >>> from tsrnn.plotting import plot_forecast
    >>> idx = pd.date_range("2024-01-01", periods=48, freq="h")
    >>> history = pd.Series(np.sin(np.arange(48) / 4), index=idx, name="temp")
    >>> future = pd.date_range(idx[-1], periods=7, freq="h")[1:]
    >>> forecast = pd.DataFrame({"temp": 0.1, "lower": -0.2, "upper": 0.4}, index=future)
    >>> ax = plot_forecast(history, forecast, last=24)
    >>> [line.get_label() for line in ax.get_lines()][:2]
    ['history', 'forecast']
    """
    _require_matplotlib()
    _check_datetime_pandas(history, "history")
    if isinstance(forecast, pd.Series):
        forecast = forecast.to_frame()
    _check_datetime_pandas(forecast, "forecast")
    if last is not None and (isinstance(last, bool) or not isinstance(last, numbers.Integral)
                             or last < 1):
        raise ValueError(f"last must be a positive int or None; got {last!r}.")
    series, point, name = _resolve_target(history, forecast, target)
    if last is not None:
        series = series.iloc[-int(last):]

    ax = _new_axes(ax)
    ax.plot(series.index, series.to_numpy(dtype=np.float64), color=_HISTORY_COLOR, lw=1.2,
            label="history")
    # join the forecast to the last observation, if it directly precedes the forecast
    joined = bool(len(series) and len(point) and series.index[-1] < point.index[0])
    if joined:
        x = series.index[-1:].append(point.index)
        y = np.concatenate([series.to_numpy(dtype=np.float64)[-1:],
                            point.to_numpy(dtype=np.float64)])
    else:
        x, y = point.index, point.to_numpy(dtype=np.float64)
    ax.plot(x, y, color=_FORECAST_COLOR, lw=1.8, label="forecast")
    if joined:  # the forecast origin
        ax.axvline(series.index[-1], color="0.6", lw=0.8, ls=":", label="_origin")
    if {"lower", "upper"} <= set(forecast.columns):
        lower = forecast["lower"].to_numpy(dtype=np.float64)
        upper = forecast["upper"].to_numpy(dtype=np.float64)
        finite = np.isfinite(lower) & np.isfinite(upper)
        if finite.any():
            ax.fill_between(forecast.index[finite], lower[finite], upper[finite],
                            color=_FORECAST_COLOR, alpha=0.2, lw=0,
                            label="prediction interval")
    ax.set_title(f"{name}: {len(point)}-step forecast")
    ax.set_ylabel(name)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", frameon=False)
    _date_axis(ax)
    return ax


def _date_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def plot_backtest_errors(result: BacktestResult | pd.DataFrame, ax: Axes | None = None, *,
                         log_scale: bool | None = None) -> Axes:
    """Plot the mean absolute error of every model by forecast step.

    Parameters
    ----------
    result : BacktestResult or pandas.DataFrame
        A result of :func:`tsrnn.backtest`, or its ``by_horizon`` table (rows: steps
        1..horizon, columns: models).
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new pyplot figure.
    log_scale : bool, optional
        Logarithmic error axis. Default: when the largest error is more than
        ``LOG_SCALE_RATIO`` times the smallest, so that a poor baseline does not flatten
        the lines of the good models.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on: one line per model (the forecaster, ``tsrnn``, on top), MAE
        against steps ahead.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    TypeError
        If ``result`` is neither a BacktestResult nor a DataFrame.
    ValueError
        If the table is empty.

    See Also
    --------
    plot_forecast : history, forecast and interval.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from tsrnn.plotting import plot_backtest_errors
    >>> table = pd.DataFrame({"tsrnn": [0.5, 0.8], "naive": [0.6, 1.1]},
    ...                      index=pd.Index([1, 2], name="step"))
    >>> ax = plot_backtest_errors(table)
    >>> [line.get_label() for line in ax.get_lines()]
    ['naive', 'tsrnn']
    """
    _require_matplotlib()
    table = getattr(result, "by_horizon", result)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"result must be a BacktestResult or its by_horizon DataFrame; got "
            f"{type(result).__name__}."
        )
    if table.empty:
        raise ValueError("the backtest table is empty: nothing to plot.")
    ax = _new_axes(ax)
    steps = np.asarray(table.index)
    # baselines first, the forecaster last so it is drawn on top
    models = [c for c in table.columns if c != MODEL_NAME]
    models += [c for c in table.columns if c == MODEL_NAME]
    marker = "o" if len(steps) <= 48 else None
    for k, model in enumerate(models):
        ours = model == MODEL_NAME
        ax.plot(steps, table[model].to_numpy(dtype=np.float64), label=str(model),
                color=_FORECAST_COLOR if ours else f"C{k % 3}", lw=2.2 if ours else 1.2,
                marker=marker, ms=3, zorder=3 if ours else 2)
    ax.set_xlabel("steps ahead")
    ax.set_ylabel("mean absolute error")
    ax.set_title("Backtest: error by forecast step")
    if len(steps) <= 24:
        ax.set_xticks(steps)
    values = table.to_numpy(dtype=np.float64)
    positive = values[np.isfinite(values) & (values > 0)]
    if log_scale is None:
        log_scale = bool(positive.size) and positive.max() > LOG_SCALE_RATIO * positive.min()
    if log_scale and positive.size:
        ax.set_yscale("log")
        ax.set_ylabel("mean absolute error (log scale)")
    else:
        ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", frameon=False)
    return ax
