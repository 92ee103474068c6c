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

Time axes
---------
Series may be indexed by a :class:`pandas.DatetimeIndex`, a :class:`pandas.PeriodIndex`
(drawn at the start of each period) or integers (steps). Every date tick is labelled
with the date it stands at, and the month and year appear on the first tick and
wherever they change, never in an offset text taken from the last tick. Monthly,
quarterly and yearly data get their ticks on observations, labelled with the period
observed there (the point of ``2010-12-31`` in month-end data is "Dec 2010", not the
"Jan 2011" tick right next to it).

Intervals and non-negative data
-------------------------------
A prediction interval is shaded with an outlined edge and drawn at least
``MIN_BAND_FRACTION`` of the y axis tall, so it shows at any scale; when that makes
it wider than it is, the legend says "narrower than drawn". When every observed value
is >= 0 (counts, sales, sunspots), forecasts and interval bounds are drawn at
``max(0, value)``; the legend says "clipped at 0" when that changed anything.
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsrnn._files import write_atomically

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tsrnn.forecasting import BacktestResult

__all__ = ["new_figure", "plot_backtest", "plot_backtest_errors", "plot_forecast",
           "save_figure"]

#: Message of the ImportError raised when matplotlib is missing.
MATPLOTLIB_MISSING = (
    "tsrnn.plotting needs matplotlib, which is not installed; install it with "
    "`pip install tsrnn[plot]` (or `pip install matplotlib`)."
)
#: Figure size (inches) of a figure opened by the plotting functions.
DEFAULT_FIGSIZE = (10.0, 4.5)
#: Figure size of a forecast figure with a covariates panel below the target.
COVARIATES_FIGSIZE = (10.0, 6.0)
#: Heights of the target and covariates panels.
COVARIATES_HEIGHT_RATIOS = (3.0, 1.0)
#: The forecaster's own model name in a backtest (drawn on top, thicker).
MODEL_NAME = "tsrnn"
#: Error spread (largest / smallest) above which plot_backtest_errors uses a log axis.
LOG_SCALE_RATIO = 20.0
#: Smallest drawn height of a prediction interval, as a fraction of the y axis.
MIN_BAND_FRACTION = 0.025
#: Shading (alpha) of a prediction interval; its edge is drawn at EDGE_ALPHA.
BAND_ALPHA = 0.25
BAND_EDGE_ALPHA = 0.8
#: At most this many ticks on a time axis.
MAX_TICKS = 8
#: Columns of a backtest's forecasts table that are not models.
BACKTEST_KEYS = ("origin", "step", "timestamp", "actual")
#: Ids listed in an error message about a panel (the rest are counted).
MAX_IDS_SHOWN = 10
_HISTORY_COLOR = "0.35"
_FORECAST_COLOR = "C3"
_BASELINE_COLOR = "C0"
_BAND_COLUMNS = ("lower", "upper")
_DAY_SECONDS = 86400.0
# tick steps, in months (monthly data), quarters and years, for period ticks
_PERIOD_STEPS = {
    "M": (1, 2, 3, 6, 12, 24, 36, 60, 120, 240, 600, 1200),
    "Q": (1, 2, 4, 8, 12, 20, 40, 80, 200, 400),
    "Y": (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000),
}
_PER_YEAR = {"M": 12, "Q": 4, "Y": 1}


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
               figsize: tuple[float, float] = DEFAULT_FIGSIZE, sharex: bool = False,
               height_ratios: Sequence[float] | None = None) -> tuple[Figure, Any]:
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
    sharex : bool, default=False
        Subplots share the x axis (tick labels only on the bottom row), e.g. a
        forecast above its covariates.
    height_ratios : sequence of float, optional
        Relative heights of the rows.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, with an Agg canvas attached.
    axes : matplotlib.axes.Axes or numpy.ndarray of Axes
        As returned by :meth:`matplotlib.figure.Figure.subplots`.

    Examples
    --------
    A forecast with a covariates panel, for :func:`plot_forecast`:

    >>> from tsrnn.plotting import new_figure
    >>> fig, (ax, covariate_ax) = new_figure(2, 1, sharex=True, height_ratios=(3, 1))
    >>> covariate_ax.get_shared_x_axes().joined(ax, covariate_ax)
    True
    """
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, sharex=sharex, height_ratios=height_ratios)


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
        Output file; its folder must exist. Written whole or not at all.
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
        fmt = os.path.splitext(os.fspath(path))[1][1:].lower() or None
        write_atomically(path, lambda fh: fig.savefig(fh, dpi=dpi, format=fmt))
    finally:
        if original is not None and original is not fig.canvas:
            fig.set_canvas(original)
    return os.fspath(path)


# ---------------------------------------------------------------------------------------
# Time axes
# ---------------------------------------------------------------------------------------
def _to_x(index: pd.Index, name: str) -> tuple[np.ndarray, str]:
    """Positions on the x axis of ``index``, and their kind ('datetime' or 'int').

    Timestamps become ``datetime64[ns]`` (time zones dropped: ticks show wall-clock
    time), periods their start timestamps, integer steps int64.
    """
    if index.dtype == object and len(index):  # e.g. a column of Period objects
        index = pd.Index(list(index))
    if isinstance(index, pd.PeriodIndex):
        index = index.to_timestamp(how="start")
    if isinstance(index, pd.DatetimeIndex):
        if index.tz is not None:
            index = index.tz_localize(None)
        return index.to_numpy(dtype="datetime64[ns]"), "datetime"
    if pd.api.types.is_integer_dtype(index.dtype) and not pd.api.types.is_bool_dtype(index.dtype):
        return index.to_numpy(dtype=np.int64), "int"
    raise TypeError(
        f"{name} must be indexed by a DatetimeIndex, a PeriodIndex or integer steps; got "
        f"{type(index).__name__} of dtype {index.dtype}."
    )


def _period_unit(stamps: np.ndarray) -> str | None:
    """'M', 'Q' or 'Y' for monthly, quarterly or yearly stamps; None for finer data."""
    if len(stamps) < 2:
        return None
    days = float(np.median(np.diff(stamps).astype("timedelta64[s]").astype(np.float64))
                 / _DAY_SECONDS)
    if days >= 360:
        return "Y"
    if days >= 85:
        return "Q"
    if days >= 27:
        return "M"
    return None


@functools.cache
def _tickers() -> tuple[type, type, type]:
    """The Locator and Formatter classes of time axes (built on first use, as
    matplotlib is optional)."""
    import matplotlib.dates as mdates
    from matplotlib.ticker import Formatter, Locator

    def to_datetimes(values) -> list:
        return [d.replace(tzinfo=None) for d in mdates.num2date(np.asarray(values, float))]

    class PeriodLocator(Locator):
        """Ticks on the observations of monthly, quarterly or yearly data, every k-th
        period (k from ``_PERIOD_STEPS``, at most ``MAX_TICKS`` ticks in view)."""

        def __init__(self, stamps: np.ndarray, unit: str) -> None:
            index = pd.DatetimeIndex(stamps)
            self.x = np.asarray(mdates.date2num(stamps), dtype=np.float64)
            self.unit = unit
            if unit == "M":
                self.ordinal = np.asarray(index.year * 12 + index.month - 1)
            elif unit == "Q":
                self.ordinal = np.asarray(index.year * 4 + (index.month - 1) // 3)
            else:
                self.ordinal = np.asarray(index.year)
            self.step = 1

        def __call__(self):
            vmin, vmax = self.axis.get_view_interval()
            return self.tick_values(vmin, vmax)

        def tick_values(self, vmin, vmax):
            vmin, vmax = sorted((vmin, vmax))
            inside = (self.x >= vmin) & (self.x <= vmax)
            x, ordinal = self.x[inside], self.ordinal[inside]
            if not len(x):
                return np.empty(0)
            span = int(ordinal.max() - ordinal.min()) + 1
            steps = _PERIOD_STEPS[self.unit]
            self.step = next((k for k in steps if span / k <= MAX_TICKS), steps[-1])
            keep = ordinal % self.step == 0
            _, first = np.unique(ordinal[keep], return_index=True)  # one tick per period
            return x[keep][first]

    class PeriodFormatter(Formatter):
        """Labels the period observed at each tick of a PeriodLocator: 'Dec' (year on
        the first tick and where it changes), 'Q4', or the year when every tick is a
        year apart."""

        def __init__(self, locator: PeriodLocator) -> None:
            self.locator = locator

        def format_ticks(self, values):
            unit = self.locator.unit
            yearly = self.locator.step % _PER_YEAR[unit] == 0
            labels = []
            previous = None
            for t in to_datetimes(values):
                if yearly:
                    label = f"{t.year}"
                else:
                    label = f"{t:%b}" if unit == "M" else f"Q{(t.month - 1) // 3 + 1}"
                    if previous is None or t.year != previous.year:
                        label += f"\n{t.year}"
                labels.append(label)
                previous = t
            return labels

        def __call__(self, x, pos=None):
            t = to_datetimes([x])[0]
            if self.locator.unit == "M":
                return f"{t:%b %Y}"
            if self.locator.unit == "Q":
                return f"{t.year}Q{(t.month - 1) // 3 + 1}"
            return f"{t.year}"

    class DateFormatter(Formatter):
        """Labels every tick with the date or time it stands at; the month and year
        (or the day, for times) are added on the first tick and where they change."""

        def format_ticks(self, values):
            if not len(values):
                return []
            spacing = float(np.median(np.diff(values))) if len(values) > 1 else 1.0
            labels = []
            previous = None
            for t in to_datetimes(values):
                first = previous is None
                if spacing >= 365 * 0.99:
                    label = f"{t.year}"
                elif spacing >= 28:
                    label = f"{t:%b}"
                    if first or t.year != previous.year:
                        label += f"\n{t.year}"
                elif spacing >= 0.99:
                    label = f"{t.day}"
                    if first or (t.year, t.month) != (previous.year, previous.month):
                        label += f" {t:%b}"
                    if first or t.year != previous.year:
                        label += f"\n{t.year}"
                else:
                    label = f"{t:%H:%M}" if spacing * _DAY_SECONDS >= 59 else f"{t:%H:%M:%S}"
                    if first or t.date() != previous.date():
                        label += f"\n{t.day} {t:%b} {t.year}"
                labels.append(label)
                previous = t
            return labels

        def __call__(self, x, pos=None):
            return f"{to_datetimes([x])[0]:%Y-%m-%d %H:%M}"

    return PeriodLocator, PeriodFormatter, DateFormatter


def _time_axis(ax: Axes, xs: Sequence[np.ndarray], kind: str, label: str | None = None) -> None:
    """Ticks of a time axis over the positions ``xs`` (see the module docstring)."""
    if kind == "int":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, integer=True))
        ax.set_xlabel(label or "time step")
        return
    import matplotlib.dates as mdates

    stamps = np.unique(np.concatenate([np.asarray(x, dtype="datetime64[ns]") for x in xs]))
    stamps = stamps[~np.isnat(stamps)]
    period_locator, period_formatter, date_formatter = _tickers()
    unit = _period_unit(stamps)
    if unit is not None:
        locator = period_locator(stamps, unit)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(period_formatter(locator))
    else:
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=MAX_TICKS))
        ax.xaxis.set_major_formatter(date_formatter())


# ---------------------------------------------------------------------------------------
# Helpers shared by the plots
# ---------------------------------------------------------------------------------------
# The names tsrnn.forecasting.panel gives the id and time columns of long outputs
# (not imported: tsrnn.forecasting is heavy, and plotting reads only these two names).
_DEFAULT_ID_COLUMN = "unique_id"
_DEFAULT_TIME_COLUMN = "ds"


def _ylabel(name: str, unit: str | None) -> str:
    return f"{name} ({unit})" if unit else name


def _legend(ax: Axes, **kwargs: Any) -> None:
    """A legend on a translucent white box, so that lines under it stay readable."""
    kwargs.setdefault("loc", "best")
    ax.legend(frameon=True, framealpha=0.85, edgecolor="none", **kwargs)


def _percent(coverage: float) -> str:
    return f"{100 * coverage:.4g}%"


def _show_ids(ids: Sequence) -> str:
    shown = ", ".join(repr(i) for i in ids[:MAX_IDS_SHOWN])
    more = len(ids) - MAX_IDS_SHOWN
    return f"[{shown}{f', ... ({more} more)' if more > 0 else ''}]"


def _nonnegative(values: np.ndarray) -> bool:
    """Every finite value >= 0 (and at least one)."""
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool((finite >= 0).all())


def _check_flag(name: str, value: object) -> None:
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True, False or None (automatic); got {value!r}.")


def _check_unit(unit: object) -> None:
    if unit is not None and not isinstance(unit, str):
        raise TypeError(f"unit must be a str (e.g. 'degrees F') or None; got {unit!r}.")


def _widen(lower: np.ndarray, upper: np.ndarray, min_height: float,
           floor: float | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """The band drawn at least ``min_height`` tall around its middle (kept above
    ``floor``), and whether any step was widened."""
    middle = (lower + upper) / 2
    half = np.maximum((upper - lower) / 2, min_height / 2)
    low, high = middle - half, middle + half
    if floor is not None:
        below = low < floor
        low = np.where(below, floor, low)
        high = np.where(below, np.maximum(high, floor + min_height), high)
    widened = bool(np.any(high - low > (upper - lower) + 1e-9 * min_height))
    return low, high, widened


def _panel_id_column(forecast: pd.DataFrame, id_column: str | None,
                     series: object) -> str | None:
    """The id column of a long (panel) forecast, or None for a forecast of one series."""
    if id_column is not None:
        if id_column not in forecast.columns:
            raise ValueError(
                f"id_column {id_column!r} is not a column of forecast; its columns are "
                f"{list(forecast.columns)}."
            )
        return id_column
    if isinstance(forecast.index, (pd.DatetimeIndex, pd.PeriodIndex)) or forecast.empty:
        return None
    columns = list(forecast.columns)
    if _DEFAULT_ID_COLUMN in columns:
        return _DEFAULT_ID_COLUMN
    first = columns[0]
    if first in _BAND_COLUMNS:
        return None
    if (series is not None or _DEFAULT_TIME_COLUMN in columns
            or not pd.api.types.is_numeric_dtype(forecast[first])):
        return first
    return None


def _time_column(frame: pd.DataFrame, id_column: str, time_column: str | None) -> str:
    """The time column of a long frame: given, 'ds', or the column after the id."""
    columns = list(frame.columns)
    if time_column is not None:
        if time_column not in columns:
            raise ValueError(
                f"time_column {time_column!r} is not a column of forecast; its columns are "
                f"{columns}."
            )
        return time_column
    if _DEFAULT_TIME_COLUMN in columns:
        return _DEFAULT_TIME_COLUMN
    position = columns.index(id_column) + 1
    if position >= len(columns):
        raise ValueError(
            f"the long forecast has no time column after its id column {id_column!r}; name "
            "it with time_column=..."
        )
    return columns[position]


def _pick_series(ids: list, series: object, id_column: str, what: str) -> object:
    """``series``, checked against the ids of a panel."""
    if series is None:
        raise ValueError(
            f"{what} holds {len(ids)} series (id column {id_column!r}); pick one with "
            f"series=..., e.g. series={ids[0]!r}. Ids: {_show_ids(ids)}."
        )
    if series not in ids:
        raise ValueError(
            f"series {series!r} is not in the {what}'s id column {id_column!r}; ids: "
            f"{_show_ids(ids)}."
        )
    return series


def _one_series(history: Any, forecast: pd.DataFrame, series: object, id_column: str,
                time_column: str | None) -> tuple[Any, pd.DataFrame]:
    """History and forecast of one series of a panel."""
    ids = list(pd.unique(forecast[id_column]))
    series = _pick_series(ids, series, id_column, "forecast")
    time_col = _time_column(forecast, id_column, time_column)
    mine = forecast[forecast[id_column] == series].drop(columns=[id_column])
    mine = mine.set_index(time_col)
    if isinstance(history, Mapping):
        if series not in history:
            raise ValueError(
                f"series {series!r} is not a key of the history dict; keys: "
                f"{_show_ids(list(history))}."
            )
        history = history[series]
    elif isinstance(history, pd.DataFrame) and id_column in history.columns:
        part = history[history[id_column] == series].drop(columns=[id_column])
        if part.empty:
            raise ValueError(
                f"series {series!r} has no rows in history (id column {id_column!r}); ids: "
                f"{_show_ids(list(pd.unique(history[id_column])))}."
            )
        if time_col in part.columns:
            part = part.set_index(time_col)
        history = part.sort_index()
    return history, mine


def _resolve_target(history: pd.Series | pd.DataFrame, forecast: pd.DataFrame,
                    target: str | None) -> tuple[pd.Series, pd.Series, str]:
    """The history and point-forecast series to draw, and the target's name."""
    point_columns = [c for c in forecast.columns if c not in _BAND_COLUMNS]
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


# ---------------------------------------------------------------------------------------
# Forecast
# ---------------------------------------------------------------------------------------
def plot_forecast(history: pd.Series | pd.DataFrame | Mapping,
                  forecast: pd.DataFrame | pd.Series, *, target: str | None = None,
                  ax: Axes | None = None, last: int | None = None, unit: str | None = None,
                  coverage: float | None = None, clip_at_zero: bool | None = None,
                  covariates: str | Sequence[str] | None = None,
                  covariate_ax: Axes | None = None, series: Any = None,
                  id_column: str | None = None, time_column: str | None = None) -> Axes:
    """Plot the recent history, the point forecast and its prediction interval.

    Parameters
    ----------
    history : pandas.Series, pandas.DataFrame or dict
        Observed values indexed by a :class:`pandas.DatetimeIndex`, a
        :class:`pandas.PeriodIndex` or integer steps (e.g. the frame the forecaster was
        fitted on). For a panel: the long DataFrame (id column, time column or index,
        values) or a dict of series by id, or directly the selected series' history.
    forecast : pandas.DataFrame or pandas.Series
        Output of :meth:`tsrnn.RNNForecaster.predict`. One series: indexed like
        ``history``, a point-forecast column (named after the target) and optional
        ``lower`` and ``upper`` columns, drawn as a band. A panel: the long frame
        (id, time, target, ``lower``, ``upper`` columns); pick the series with
        ``series``.
    target : str, optional
        Column to draw. Default: the name of a Series ``history``, else the only point
        column of ``forecast``, else the only column of ``history``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new pyplot figure (with two panels when
        ``covariates`` are given).
    last : int, optional
        Draw only the last ``last`` observations of the history (default: all).
    unit : str, optional
        Unit of the target, shown on the y axis as ``"target (unit)"`` (default: the
        target's name alone).
    coverage : float, optional
        Nominal coverage of the interval in (0, 1), e.g. the forecaster's
        ``coverage``; the legend then says "90% prediction interval".
    clip_at_zero : bool, optional
        Draw the forecast and the interval at ``max(0, value)``. Default: when every
        observed value of the target's history is >= 0 (counts, sales, sunspots).
        The legend says "clipped at 0" where that changed what is drawn.
    covariates : str or sequence of str, optional
        Columns of ``history`` to draw in a second panel below the target, sharing
        its time axis (their history only).
    covariate_ax : matplotlib.axes.Axes, optional
        Where to draw ``covariates`` when ``ax`` is given, e.g. from
        ``new_figure(2, 1, sharex=True, height_ratios=(3, 1))``; it is made to share
        ``ax``'s x axis.
    series : object, optional
        The id of the series to draw from a panel forecast (required for a panel).
    id_column, time_column : str, optional
        Columns of a long panel forecast. Default: ``'unique_id'`` if present, else
        the first column; ``'ds'`` if present, else the column after the id.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes of the target (the figure is ``ax.figure``; with covariates in a new
        figure, their Axes is ``ax.figure.axes[1]``).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    TypeError
        If ``history`` or ``forecast`` is not pandas data with a datetime, period or
        integer index, or their indexes are of different kinds.
    ValueError
        If ``target`` or a covariate is not a column, the target is ambiguous,
        ``last`` is not a positive int, ``coverage`` is not in (0, 1), a panel
        forecast has no ``series`` (the message lists the ids), or covariates are
        asked for on a given ``ax`` without ``covariate_ax``.

    See Also
    --------
    plot_backtest : forecasts from past origins against the actual values.
    plot_backtest_errors : errors by forecast step from a backtest.

    Notes
    -----
    The interval is shaded with an outlined edge and drawn at least
    ``MIN_BAND_FRACTION`` (2.5%) of the y axis tall, so that a narrow interval on a
    series of large amplitude still shows; the legend then says "narrower than
    drawn". The forecast line starts at the last observation when it directly
    precedes the forecast; a dotted vertical line marks that origin.

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
    >>> ax = plot_forecast(history, forecast, last=24, unit="degrees C", coverage=0.9)
    >>> [line.get_label() for line in ax.get_lines()][:2]
    ['history', 'forecast']
    >>> ax.get_ylabel()
    'temp (degrees C)'
    >>> [text.get_text() for text in ax.get_legend().get_texts()][-1]
    '90% prediction interval'
    """
    _require_matplotlib()
    from matplotlib.colors import to_rgba

    if isinstance(forecast, pd.Series):
        forecast = forecast.to_frame()
    if not isinstance(forecast, pd.DataFrame):
        raise TypeError(
            "forecast must be a pandas Series or DataFrame (the output of "
            f"RNNForecaster.predict); got {type(forecast).__name__}."
        )
    if not isinstance(history, (pd.Series, pd.DataFrame, Mapping)):
        raise TypeError(
            "history must be a pandas Series or DataFrame (for a panel also a dict of "
            f"series by id); got {type(history).__name__}."
        )
    if last is not None and (isinstance(last, bool) or not isinstance(last, numbers.Integral)
                             or last < 1):
        raise ValueError(f"last must be a positive int or None; got {last!r}.")
    _check_coverage(coverage)
    _check_unit(unit)
    _check_flag("clip_at_zero", clip_at_zero)

    id_col = _panel_id_column(forecast, id_column, series)
    if id_col is not None:
        history, forecast = _one_series(history, forecast, series, id_col, time_column)
    elif series is not None:
        raise ValueError(
            f"series={series!r} picks one series of a panel forecast (a long frame with "
            "id and time columns); this forecast is one series, indexed by "
            f"{type(forecast.index).__name__}."
        )
    if isinstance(history, Mapping):
        raise TypeError(
            "history is a dict of series but forecast is one series; pass the series' "
            "own history, or the panel's long forecast with series=..."
        )
    series_y, point, name = _resolve_target(history, forecast, target)
    hx, kind = _to_x(series_y.index, "history")
    fx, forecast_kind = _to_x(point.index, "forecast")
    if kind != forecast_kind:
        raise TypeError(
            f"history and forecast must be indexed alike; history has "
            f"{type(series_y.index).__name__} and forecast {type(point.index).__name__}."
        )
    names = [covariates] if isinstance(covariates, str) else list(covariates or [])
    if names:
        columns = list(history.columns) if isinstance(history, pd.DataFrame) else []
        missing = [c for c in names if c not in columns]
        if missing:
            raise ValueError(
                f"covariate(s) {missing} not in history; its columns are {columns}."
            )
    elif covariate_ax is not None:
        raise ValueError("covariate_ax= is where covariates=... are drawn; no covariates "
                         "were given.")

    hy = series_y.to_numpy(dtype=np.float64)
    clip = _nonnegative(hy) if clip_at_zero is None else bool(clip_at_zero)
    rows = slice(None) if last is None else slice(-int(last), None)
    hx, hy = hx[rows], hy[rows]

    if names:
        if ax is None:
            import matplotlib.pyplot as plt

            _, (ax, covariate_ax) = plt.subplots(
                2, 1, sharex=True, figsize=COVARIATES_FIGSIZE, layout="constrained",
                height_ratios=COVARIATES_HEIGHT_RATIOS)
        elif covariate_ax is None:
            raise ValueError(
                "covariates need a second Axes below ax: pass covariate_ax=..., e.g. from "
                "`fig, (ax, covariate_ax) = tsrnn.plotting.new_figure(2, 1, sharex=True, "
                "height_ratios=(3, 1))`, or leave ax=None."
            )
        elif not covariate_ax.get_shared_x_axes().joined(ax, covariate_ax):
            covariate_ax.sharex(ax)
            ax.tick_params(labelbottom=False)
    else:
        ax = _new_axes(ax)

    ax.plot(hx, hy, color=_HISTORY_COLOR, lw=1.2, label="history")
    py = point.to_numpy(dtype=np.float64)
    drawn = np.maximum(py, 0.0) if clip else py
    clipped = bool(np.any(drawn[np.isfinite(py)] != py[np.isfinite(py)]))
    # join the forecast to the last observation, if it directly precedes the forecast
    joined = bool(len(hx) and len(fx) and hx[-1] < fx[0])
    if joined:
        x, y = np.concatenate([hx[-1:], fx]), np.concatenate([hy[-1:], drawn])
    else:
        x, y = fx, drawn
    ax.plot(x, y, color=_FORECAST_COLOR, lw=1.8,
            label="forecast (clipped at 0)" if clipped else "forecast")
    if joined:  # the forecast origin
        ax.axvline(hx[-1], color="0.6", lw=0.8, ls=":", label="_origin")
    if set(_BAND_COLUMNS) <= set(forecast.columns):
        lower = forecast["lower"].to_numpy(dtype=np.float64)
        upper = forecast["upper"].to_numpy(dtype=np.float64)
        finite = np.isfinite(lower) & np.isfinite(upper)
        if finite.any():
            low, high = lower[finite], upper[finite]
            notes = []
            if clip:
                if np.any(low < 0):
                    notes.append("clipped at 0")
                low, high = np.maximum(low, 0.0), np.maximum(high, 0.0)
            ax.relim()
            ax.autoscale_view()
            y0, y1 = ax.get_ylim()
            height = max(y1, float(high.max())) - min(y0, float(low.min()))
            low, high, widened = _widen(low, high, MIN_BAND_FRACTION * height,
                                        0.0 if clip else None)
            if widened:
                notes.insert(0, "narrower than drawn")
            label = "prediction interval"
            if coverage is not None:
                label = f"{_percent(coverage)} {label}"
            if notes:
                label += f" ({', '.join(notes)})"
            ax.fill_between(fx[finite], low, high, facecolor=to_rgba(_FORECAST_COLOR, BAND_ALPHA),
                            edgecolor=to_rgba(_FORECAST_COLOR, BAND_EDGE_ALPHA), lw=0.8,
                            label=label)
    title = name if id_col is None else f"{name}, series {series!r}"
    ax.set_title(f"{title}: history and {len(point)}-step forecast")
    ax.set_ylabel(_ylabel(name, unit))
    ax.grid(True, alpha=0.3)
    _legend(ax)
    bottom = ax
    if names:
        bottom = covariate_ax
        palette = [c for c in (f"C{k}" for k in range(10)) if c != _FORECAST_COLOR]
        for k, column in enumerate(names):
            values = history[column].to_numpy(dtype=np.float64)[rows]
            covariate_ax.plot(hx, values, color=palette[k % len(palette)], lw=1.0,
                              label=str(column))
        if joined:
            covariate_ax.axvline(hx[-1], color="0.6", lw=0.8, ls=":", label="_origin")
        covariate_ax.set_ylabel(str(names[0]) if len(names) == 1 else "covariates")
        covariate_ax.grid(True, alpha=0.3)
        _legend(covariate_ax, loc="upper left", ncols=min(len(names), 4))
    _time_axis(bottom, [hx, fx], kind, series_y.index.name)
    return ax


def _check_coverage(coverage: object) -> None:
    if coverage is None:
        return
    if isinstance(coverage, bool) or not isinstance(coverage, numbers.Real):
        raise TypeError(f"coverage must be a float in (0, 1) or None; got {coverage!r}.")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1) or None; got {coverage!r}.")


# ---------------------------------------------------------------------------------------
# Backtests
# ---------------------------------------------------------------------------------------
def plot_backtest(result: BacktestResult | pd.DataFrame, n_origins: int = 4,
                  series: Any = None, *, ax: Axes | None = None,
                  baseline: str | None = "best", target: str | None = None,
                  unit: str | None = None, clip_at_zero: bool | None = None) -> Axes:
    """Plot the model's backtest forecasts from a few origins against the actual values.

    The actual series is drawn over the evaluated span (the timestamps some origin
    forecast, broken where origins leave a gap), and the model's forecasts from
    ``n_origins`` evenly spaced origins (the first and the last included), each as a
    short line starting at its origin (marked by a dotted vertical line). Optionally
    a baseline's forecasts from the same origins, for comparison.

    Parameters
    ----------
    result : BacktestResult or pandas.DataFrame
        A result of :func:`tsrnn.backtest`, or its ``forecasts`` table (columns
        ``origin``, ``step``, ``timestamp``, ``actual`` and one per model; for a panel
        the id column first).
    n_origins : int, default=4
        How many origins to draw forecasts from (all of them if there are fewer).
    series : object, optional
        For a panel, the id of the series to draw (default: the first).
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new pyplot figure.
    baseline : str or None, default='best'
        Baseline drawn (dashed) beside the model: ``'best'`` for the one with the
        smallest mean absolute error on this series, a baseline's name (``'naive'``,
        ``'seasonal_naive'``, ``'ridge'``), or None for none.
    target : str, optional
        Name of the forecast variable, for the title and y axis (default ``'value'``).
    unit : str, optional
        Unit of the target, shown on the y axis.
    clip_at_zero : bool, optional
        Draw forecasts at ``max(0, value)``. Default: when every actual value of the
        series is >= 0; the legend says "clipped at 0" where that changed anything.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    TypeError
        If ``result`` is neither a BacktestResult nor a DataFrame.
    ValueError
        If the table lacks the backtest columns or is empty, ``n_origins`` is not a
        positive int, ``series`` is not an id of the panel (the message lists the
        ids), or ``baseline`` is not a baseline of the table.

    See Also
    --------
    plot_backtest_errors : the error of every model by forecast step.
    plot_forecast : history, forecast and interval.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, pandas as pd
    >>> from tsrnn.plotting import plot_backtest
    >>> stamps = pd.date_range("2024-01-01", periods=12, freq="D")
    >>> table = pd.DataFrame({
    ...     "origin": np.repeat(stamps[[0, 3, 6, 9]] - pd.Timedelta("1D"), 3),
    ...     "step": np.tile([1, 2, 3], 4), "timestamp": stamps,
    ...     "actual": np.arange(12.0), "tsrnn": np.arange(12.0) + 0.5,
    ...     "naive": np.repeat([-1.0, 2.0, 5.0, 8.0], 3)})
    >>> ax = plot_backtest(table, n_origins=2)
    >>> [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    ['actual', 'tsrnn forecasts (2 of 4 origins)', 'naive (best baseline, clipped at 0)']
    """
    _require_matplotlib()
    table = getattr(result, "forecasts", result)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            "result must be a BacktestResult or its forecasts DataFrame; got "
            f"{type(result).__name__}."
        )
    missing = [c for c in (*BACKTEST_KEYS, MODEL_NAME) if c not in table.columns]
    if missing:
        raise ValueError(
            f"the backtest forecasts lack the column(s) {missing}; its columns are "
            f"{list(table.columns)}."
        )
    if table.empty:
        raise ValueError("the backtest forecasts table is empty: nothing to plot.")
    if (isinstance(n_origins, bool) or not isinstance(n_origins, numbers.Integral)
            or n_origins < 1):
        raise ValueError(f"n_origins must be a positive int; got {n_origins!r}.")
    _check_unit(unit)
    _check_flag("clip_at_zero", clip_at_zero)
    first = table.columns[0]
    id_col = None if first in (*BACKTEST_KEYS, MODEL_NAME) else first
    if id_col is not None:
        ids = list(pd.unique(table[id_col]))
        series = ids[0] if series is None else _pick_series(ids, series, id_col, "backtest")
        table = table[table[id_col] == series]
    elif series is not None:
        raise ValueError(f"series={series!r} picks one series of a panel backtest; this "
                         "backtest has one series.")
    baselines = [c for c in table.columns if c not in (*BACKTEST_KEYS, MODEL_NAME, id_col)]
    if baseline == "best":
        errors = {b: float((table[b] - table["actual"]).abs().mean()) for b in baselines}
        errors = {b: e for b, e in errors.items() if np.isfinite(e)}
        chosen_baseline = min(errors, key=errors.get) if errors else None
    elif baseline is None or baseline in baselines:
        chosen_baseline = baseline
    else:
        raise ValueError(
            f"baseline must be 'best', None or one of {baselines}; got {baseline!r}."
        )

    actual = table.drop_duplicates("timestamp").sort_values("timestamp")
    ax_x, kind = _to_x(pd.Index(actual["timestamp"]), "the backtest's timestamps")
    ay = actual["actual"].to_numpy(dtype=np.float64)
    clip = _nonnegative(ay) if clip_at_zero is None else bool(clip_at_zero)
    actual_at = dict(zip(ax_x.tolist(), ay))
    origins = pd.Index(table["origin"].unique()).sort_values()
    origin_x, _ = _to_x(origins, "the backtest's origins")
    # where the evaluated span has a gap: before the first step of an origin whose own
    # row was not evaluated (origins further apart than the horizon)
    starts = table[table["step"] == table["step"].min()]
    start_x, _ = _to_x(pd.Index(starts["timestamp"]), "the backtest's timestamps")
    start_origin, _ = _to_x(pd.Index(starts["origin"]), "the backtest's origins")
    gaps = sorted({int(np.searchsorted(ax_x, s)) for s, o in zip(start_x, start_origin)
                   if o.item() not in actual_at and s > ax_x[0]})
    line_x = np.insert(ax_x, gaps, ax_x[np.array(gaps, dtype=int) - 1]) if gaps else ax_x
    line_y = np.insert(ay, gaps, np.nan) if gaps else ay

    ax = _new_axes(ax)
    ax.plot(line_x, line_y, color=_HISTORY_COLOR, lw=1.2, label="actual",
            marker="." if len(ax_x) <= 120 else None, ms=3)
    picked = np.unique(np.round(np.linspace(0, len(origins) - 1,
                                            min(n_origins, len(origins)))).astype(int))
    shown = table[table["origin"].isin(origins[picked])]
    models = [MODEL_NAME] + ([chosen_baseline] if chosen_baseline else [])
    labels = {}
    for model in models:
        notes = [f"{len(picked)} of {len(origins)} origins"] if model == MODEL_NAME else []
        if model != MODEL_NAME and baseline == "best":
            notes.append("best baseline")
        if clip and bool((shown[model] < 0).any()):
            notes.append("clipped at 0")
        text = f"{model} forecasts" if model == MODEL_NAME else str(model)
        labels[model] = f"{text} ({', '.join(notes)})" if notes else text
    drawn_x = [ax_x]
    for k, i in enumerate(picked):
        rows = shown[shown["origin"] == origins[i]].sort_values("step")
        x, _ = _to_x(pd.Index(rows["timestamp"]), "the backtest's timestamps")
        start = actual_at.get(origin_x[i].item())
        if start is not None:
            x = np.concatenate([origin_x[i:i + 1], x])
        drawn_x.append(x)
        for model in models:
            y = rows[model].to_numpy(dtype=np.float64)
            if clip:
                y = np.maximum(y, 0.0)
            if start is not None:
                y = np.concatenate([[start], y])
            ours = model == MODEL_NAME
            ax.plot(x, y, color=_FORECAST_COLOR if ours else _BASELINE_COLOR,
                    lw=1.8 if ours else 1.2, ls="-" if ours else "--",
                    zorder=3 if ours else 2, label=labels[model] if k == 0 else f"_{model}")
        ax.axvline(origin_x[i], color="0.6", lw=0.8, ls=":", label="_origin")
    name = target or "value"
    title = f"Backtest of {name}: forecasts from {len(picked)} of {len(origins)} origins"
    if id_col is not None:
        title += f", series {series!r}"
    ax.set_title(title)
    ax.set_ylabel(_ylabel(name, unit))
    ax.grid(True, alpha=0.3)
    _legend(ax)
    _time_axis(ax, drawn_x + [origin_x[picked]], kind)
    return ax


def plot_backtest_errors(result: BacktestResult | pd.DataFrame, ax: Axes | None = None, *,
                         log_scale: bool | None = None, unit: str | None = None) -> Axes:
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
    unit : str, optional
        Unit of the target (and so of the errors), shown on the y axis.

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
    plot_backtest : the forecasts from a few origins against the actual values.
    plot_forecast : history, forecast and interval.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from tsrnn.plotting import plot_backtest_errors
    >>> table = pd.DataFrame({"tsrnn": [0.5, 0.8], "naive": [0.6, 1.1]},
    ...                      index=pd.Index([1, 2], name="step"))
    >>> ax = plot_backtest_errors(table, unit="kW")
    >>> [line.get_label() for line in ax.get_lines()]
    ['naive', 'tsrnn']
    >>> ax.get_ylabel()
    'mean absolute error (kW)'
    """
    _require_matplotlib()
    _check_unit(unit)
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
    ylabel = _ylabel("mean absolute error", unit)
    ax.set_ylabel(ylabel)
    ax.set_title("Backtest: error by forecast step")
    if len(steps) <= 24:
        ax.set_xticks(steps)
    values = table.to_numpy(dtype=np.float64)
    positive = values[np.isfinite(values) & (values > 0)]
    if log_scale is None:
        log_scale = bool(positive.size) and positive.max() > LOG_SCALE_RATIO * positive.min()
    if log_scale and positive.size:
        ax.set_yscale("log")
        ax.set_ylabel(f"{ylabel}, log scale")
    else:
        ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return ax
