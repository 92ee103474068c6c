"""From pandas time series to supervised windows, and the time-aware helpers around them.

This is the only place (with :mod:`tsrnn.forecasting`) where time indexes meet model
inputs. It knows nothing about networks: it produces float arrays

* ``X`` of shape ``(n_windows, lookback, n_features)`` -- the inputs,
* ``y`` of shape ``(n_windows, horizon)`` -- the values that follow each input window,

plus the forecast origin of every window, and it refuses, with a message naming the
offending timestamp or column, data on which windows would silently mean something else
(unsorted or duplicated timestamps, missing timestamps, NaN values).

Frequency rules (shared by :func:`make_windows`, :func:`future_index`)
------------------------------------------------------------------------
1. ``index.freq`` if set, else the frequency pandas infers from the whole index: the data
   are *regular*.
2. Otherwise, a *trading-day calendar* -- every timestamp on a weekday at the same time of
   day, mostly one day apart, never more than ``MAX_TRADING_GAP`` apart (exchange
   holidays, e.g. the S&P 500) -- is accepted as is: windows run over consecutive rows
   and :func:`future_index` extends it with business days (``pandas.offsets.BDay``).
3. Otherwise, if the timestamps all sit on a regular grid (the most common step, or a
   calendar frequency such as month starts) with some grid points absent, those are
   *missing timestamps*: an error, or with ``fill=`` a reindex to the full grid.
4. Anything else is irregular and refused: resample first.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "MAX_TRADING_GAP",
    "SlidingWindowTransformer",
    "Windows",
    "calendar_features",
    "future_index",
    "last_window",
    "log_returns",
    "make_windows",
    "rolling_volatility",
    "temporal_train_test_split",
    "train_test_split_windows",
]

FillMethod = Literal["ffill", "interpolate"]
_FILL_METHODS = (None, "ffill", "interpolate")

#: Longest step (calendar days) still read as an exchange closure in a trading-day calendar.
#: The longest S&P 500 closure 1999-2018 is 7 days (2001-09-10 to 09-17); some exchanges
#: close for a week around holidays, hence the margin.
MAX_TRADING_GAP = pd.Timedelta(days=14)

#: Name given to the column of an unnamed Series.
UNNAMED_SERIES = "y"

# Bounds the work spent materialising a candidate grid for an index that does not fit one.
_MAX_GRID_FACTOR = 100
_N_LOCAL_INFER = 20
# A stride no dataset reaches: make_windows then returns only the last window.
_ONE_WINDOW = 2**62


# ---------------------------------------------------------------------------------------
# Small validators
# ---------------------------------------------------------------------------------------
def _check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as int if it is an integer >= minimum (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} ({value!r}).")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value}.")
    return int(value)


def _check_pandas(data: object, name: str = "data") -> None:
    if not isinstance(data, (pd.Series, pd.DataFrame)):
        raise TypeError(f"{name} must be a pandas Series or DataFrame; got {type(data).__name__}.")
    _check_datetime_index(data.index, f"{name}.index")


def _check_datetime_index(index: object, name: str = "index") -> None:
    """Require a sorted DatetimeIndex without NaT or duplicates; name the first offender."""
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(
            f"{name} must be a pandas DatetimeIndex; got {type(index).__name__}. "
            "Set one with data.set_index(pd.to_datetime(...))."
        )
    if index.hasnans:
        position = int(np.flatnonzero(index.isna())[0])
        raise ValueError(f"{name} contains NaT (first at position {position}).")
    if len(index) < 2:
        return
    if index.has_duplicates:  # before order: rows of several series (long format)
        k = int(np.flatnonzero(index.duplicated())[0])
        raise ValueError(
            f"{name} has duplicated timestamps; the first is {index[k]} (position {k}). "
            "If the rows hold several series (long format), name the column that tells "
            "them apart: RNNForecaster.fit(..., id_column=...) or tsrnn forecast "
            "--id-column; otherwise aggregate the duplicates, e.g. "
            "data.groupby(level=0).mean()."
        )
    steps = np.diff(index.asi8)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        k = int(bad[0]) + 1
        raise ValueError(
            f"{name} is not sorted: {index[k]} (position {k}) comes after {index[k - 1]}. "
            "Sort it first with data.sort_index()."
        )


def _freq_label(offset: BaseOffset | None) -> str:
    return "None" if offset is None else repr(offset.freqstr)


# ---------------------------------------------------------------------------------------
# Frequency detection
# ---------------------------------------------------------------------------------------
def _infer_offset(index: pd.DatetimeIndex) -> BaseOffset | None:
    """``index.freq`` or pandas' inferred frequency, as an offset (None if neither)."""
    if index.freq is not None:
        return index.freq
    if len(index) < 3:
        return None
    with warnings.catch_warnings():
        # pandas 3 warns that infer_freq will return an offset instead of a string;
        # to_offset accepts both, so the result is the same on pandas 2 and 3.
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(index)
    return None if freq is None else to_offset(freq)


def _is_trading_calendar(index: pd.DatetimeIndex) -> bool:
    """Weekdays only, one time of day, mostly one day apart, no step over MAX_TRADING_GAP."""
    if len(index) < 2:
        return False
    wall = index.tz_localize(None) if index.tz is not None else index
    if (wall.day_of_week >= 5).any():
        return False
    time_of_day = wall - wall.normalize()
    if (time_of_day != time_of_day[0]).any():
        return False
    steps = wall[1:] - wall[:-1]
    if steps.max() > MAX_TRADING_GAP:
        return False
    return bool((steps == pd.Timedelta(days=1)).mean() >= 0.5)


def _step_offset(step: pd.Timedelta) -> BaseOffset:
    # Whole days read better as 'D' than as '24h' in messages.
    if step % pd.Timedelta(days=1) == pd.Timedelta(0):
        return to_offset(f"{step.days}D")
    return to_offset(step)


def _candidate_offsets(index: pd.DatetimeIndex) -> list[BaseOffset]:
    """Plausible grid frequencies of an index with holes: its commonest step, then calendar
    frequencies (month ends, quarters, ...) inferred from short gap-free runs."""
    steps = pd.Series(index[1:] - index[:-1])
    candidates = [_step_offset(steps.value_counts().index[0])]
    for start in range(min(len(index) - 2, _N_LOCAL_INFER)):
        offset = _infer_offset(pd.DatetimeIndex(index[start : start + 3]))
        if offset is not None and offset not in candidates:
            candidates.append(offset)
    return candidates


def _grid(index: pd.DatetimeIndex, offset: BaseOffset) -> pd.DatetimeIndex | None:
    """The full grid of ``offset`` from first to last timestamp if ``index`` lies on it."""
    span = index[-1] - index[0]
    try:
        expected = span / pd.Timedelta(offset)
    except (TypeError, ValueError):  # calendar offsets (months...) have no fixed length
        expected = 0.0
    if expected > _MAX_GRID_FACTOR * len(index) + 10_000:
        return None
    grid = pd.date_range(index[0], index[-1], freq=offset, name=index.name)
    if len(grid) < len(index) or not index.isin(grid).all():
        return None
    return grid


@dataclass(frozen=True, eq=False)
class _Calendar:
    kind: Literal["regular", "trading", "gaps", "unknown"]
    freq: BaseOffset | None
    grid: pd.DatetimeIndex | None = None  # full regular index when kind == "gaps"


def _calendar(index: pd.DatetimeIndex) -> _Calendar:
    """Classify a sorted, duplicate-free index by the module's frequency rules."""
    if len(index) < 2:
        return _Calendar("unknown", index.freq)
    offset = _infer_offset(index)
    if offset is not None:
        return _Calendar("regular", offset)
    if _is_trading_calendar(index):
        return _Calendar("trading", None)
    for candidate in _candidate_offsets(index):
        grid = _grid(index, candidate)
        if grid is None:
            continue
        if len(grid) == len(index):
            return _Calendar("regular", candidate)
        return _Calendar("gaps", candidate, grid)
    steps = index[1:] - index[:-1]
    common = pd.Series(steps).value_counts().index[0]
    k = int(np.flatnonzero(steps != common)[0])
    raise ValueError(
        f"The index is irregular: no frequency fits its timestamps. The most common step is "
        f"{common}, but {index[k]} -> {index[k + 1]} is {steps[k]}. Resample to a regular "
        f"frequency first, e.g. data.resample('{_step_offset(common).freqstr}').mean()."
    )


# ---------------------------------------------------------------------------------------
# make_windows
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Windows:
    """Windows cut from a time series by :func:`make_windows`.

    Unpacks as a 3-tuple: ``X, y, origins = make_windows(...)``.

    Attributes
    ----------
    X : numpy.ndarray of shape (n_windows, lookback, n_features), float64
        Input windows, C-contiguous; ``X[i, t, j]`` is feature ``feature_names[j]`` at row
        ``starts[i] + t`` of ``index``.
    y : numpy.ndarray of shape (n_windows, horizon), float64
        Targets: ``y[i, k]`` is the target column at row ``starts[i] + lookback + k``, i.e.
        ``k + 1`` rows after the origin. Shape ``(n_windows, 0)`` when ``horizon=0``.
    origins : pandas.DatetimeIndex of length n_windows
        Forecast origin of each window: the timestamp of its last input row. Everything up
        to and including the origin is known; ``y[i]`` lies strictly after it.
    feature_names : tuple of str
        Columns of the last axis of ``X``, in order.
    target : str or None
        Target column (None only when ``horizon=0`` and ``features`` was given).
    freq : pandas.DateOffset or None
        Frequency of the (possibly reindexed) data; None for a trading-day calendar or a
        one-row index, where consecutive rows are consecutive steps.
    index : pandas.DatetimeIndex
        Index of the validated data the windows were cut from (after ``fill``).
    starts : numpy.ndarray of shape (n_windows,), int64
        Row of ``index`` where each window's input starts.
    lookback, horizon : int
        Window lengths used.
    """

    X: np.ndarray
    y: np.ndarray
    origins: pd.DatetimeIndex
    feature_names: tuple[str, ...]
    target: str | None
    freq: BaseOffset | None
    index: pd.DatetimeIndex
    starts: np.ndarray
    lookback: int
    horizon: int

    def __iter__(self):
        return iter((self.X, self.y, self.origins))

    @property
    def n_windows(self) -> int:
        """Number of windows."""
        return int(self.X.shape[0])

    def target_index(self, i: int) -> pd.DatetimeIndex:
        """Timestamps of ``y[i]`` (the ``horizon`` rows following origin ``i``).

        Parameters
        ----------
        i : int
            Window number (negative values count from the end).

        Returns
        -------
        pandas.DatetimeIndex
            ``horizon`` timestamps, all after ``origins[i]``.
        """
        start = int(self.starts[i]) + self.lookback
        return self.index[start : start + self.horizon]


def _as_frame(data: pd.Series | pd.DataFrame) -> pd.DataFrame:
    if isinstance(data, pd.Series):
        return data.to_frame(name=UNNAMED_SERIES if data.name is None else data.name)
    return data


def _resolve_columns(
    frame: pd.DataFrame,
    is_series: bool,
    target: str | None,
    features: str | list[str] | None,
    need_target: bool,
) -> tuple[str | None, list[str]]:
    """Pick the target column and the input columns, naming what is wrong if they clash."""
    columns = list(frame.columns)

    def check(name: object, role: str) -> None:
        if name not in columns:
            raise ValueError(f"{role} column {name!r} is not in the data; columns are {columns}.")

    if target is None and (need_target or features is None):
        if len(columns) != 1:
            raise ValueError(
                f"target must be given for a DataFrame with {len(columns)} columns; "
                f"columns are {columns}."
            )
        target = columns[0]
    if target is not None:
        if is_series and target != columns[0]:
            raise ValueError(
                f"target {target!r} does not match the Series name {columns[0]!r}; "
                "leave target=None for a Series."
            )
        check(target, "target")
    if features is None:
        features = [target]
    elif isinstance(features, str) or not isinstance(features, (list, tuple, pd.Index)):
        features = [features]
    features = list(features)
    if not features:
        raise ValueError("features must name at least one column; got an empty list.")
    for name in features:
        check(name, "feature")
    if len(set(features)) != len(features):
        raise ValueError(f"features contains duplicated columns: {features}.")
    for name in dict.fromkeys(features + ([target] if target is not None else [])):
        dtype = frame[name].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise TypeError(f"column {name!r} must be numeric to be windowed; its dtype is {dtype}.")
    return target, features


def _first_nonfinite(frame: pd.DataFrame) -> tuple[object, pd.Timestamp, int, str] | None:
    """(column, first timestamp, count, kind) of the first column with NaN/inf, or None."""
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            kind = "NaN" if np.isnan(values[k]) else "inf"
            return name, frame.index[k], int(bad.sum()), kind
    return None


def _prepare(
    data: pd.Series | pd.DataFrame,
    *,
    target: str | None,
    features: str | list[str] | None,
    fill: FillMethod | None,
    need_target: bool,
) -> tuple[pd.DataFrame, str | None, list[str], BaseOffset | None]:
    """Validate the index and the used columns; reindex and fill if asked."""
    _check_pandas(data)
    if fill not in _FILL_METHODS:
        raise ValueError(f"fill must be one of {_FILL_METHODS}; got {fill!r}.")
    frame = _as_frame(data)
    is_series = isinstance(data, pd.Series)
    target, features = _resolve_columns(frame, is_series, target, features, need_target)
    used = list(dict.fromkeys(features + ([target] if target is not None else [])))
    frame = frame[used]

    calendar = _calendar(frame.index)
    if calendar.kind == "gaps":
        missing = calendar.grid.difference(frame.index)
        if fill is None:
            raise ValueError(
                f"data has {len(missing)} missing timestamp(s) relative to its frequency "
                f"{_freq_label(calendar.freq)}; the first is {missing[0]}. Pass fill='ffill' or "
                "fill='interpolate' to reindex to that frequency and fill them."
            )
        frame = frame.reindex(calendar.grid)

    problem = _first_nonfinite(frame)
    if problem is not None and fill is not None:
        name, when, _, kind = problem
        if kind == "inf":
            raise ValueError(f"column {name!r} contains inf (first at {when}); fill only replaces NaN.")
        if fill == "ffill":
            frame = frame.ffill()
        else:
            frame = frame.interpolate(method="linear", limit_area="inside")
        problem = _first_nonfinite(frame)
        if problem is not None:
            name, when, count, kind = problem
            edge = "before the first valid value" if fill == "ffill" else "at the start or end"
            raise ValueError(
                f"column {name!r} still has {count} {kind} value(s) after fill={fill!r} (first at "
                f"{when}): values {edge} cannot be filled. Trim the data, e.g. data.dropna()."
            )
    if problem is not None:
        name, when, count, kind = problem
        raise ValueError(
            f"column {name!r} contains {count} {kind} value(s); the first is at {when}. "
            "Pass fill='ffill' or fill='interpolate', or clean the data first."
        )
    return frame, target, features, calendar.freq


def make_windows(
    data: pd.Series | pd.DataFrame,
    lookback: int,
    horizon: int = 1,
    *,
    target: str | None = None,
    features: str | list[str] | None = None,
    stride: int = 1,
    fill: FillMethod | None = None,
) -> Windows:
    """Cut a time series into (input window, following values) pairs.

    Window ``i`` uses rows ``[s, s + lookback)`` as input and rows
    ``[s + lookback, s + lookback + horizon)`` of the target as output, so a target value
    is never inside its own input window.

    Parameters
    ----------
    data : pandas.Series or pandas.DataFrame
        Time series with a sorted :class:`pandas.DatetimeIndex`. An unnamed Series is
        treated as a column named ``'y'``.
    lookback : int
        Input window length in rows (>= 1).
    horizon : int, default=1
        Number of future target values per window (>= 0). ``horizon=0`` produces input
        windows only, the last one ending at the last row (for forecasting from the latest
        data); ``y`` then has shape ``(n_windows, 0)``.
    target : str, optional
        Column to forecast. Defaults to the Series itself, or to the only column of a
        one-column DataFrame; required for a multi-column DataFrame unless ``horizon=0`` and
        ``features`` is given.
    features : str or list of str, optional
        Input columns, in order. Default ``[target]``: past values of the target. When
        given, exactly these columns are used: the target is *not* added automatically
        (list it to include its past values; leave it out to predict it from other
        variables only).
    stride : int, default=1
        Step in rows between the starts of consecutive windows (>= 1). Windows are aligned
        to the end of the data: the last window always uses the most recent rows, and with
        ``stride > 1`` up to ``stride - 1`` of the earliest rows go unused.
    fill : {None, 'ffill', 'interpolate'}, default=None
        How to repair missing data instead of raising. The data are first reindexed to the
        full regular grid of their frequency (missing timestamps become NaN rows; not done
        for trading-day calendars, which have no regular grid), then NaN values of the used
        columns are forward-filled (``'ffill'``) or linearly interpolated between their
        neighbouring rows (``'interpolate'``). NaNs that cannot be filled (before the first
        value; for ``'interpolate'`` also after the last) still raise, and so does inf.

    Returns
    -------
    Windows
        ``X`` (n_windows, lookback, n_features) float64, ``y`` (n_windows, horizon)
        float64 and ``origins`` (the timestamp of each window's last input row), plus
        metadata; unpacks as ``X, y, origins``. ``n_windows = (n_rows - lookback - horizon)
        // stride + 1``.

    Raises
    ------
    TypeError
        If ``data`` is not a Series/DataFrame with a DatetimeIndex, a used column is not
        numeric, or ``lookback``, ``horizon`` or ``stride`` is not an int.
    ValueError
        If the index is unsorted or has duplicates or NaT (naming the first offending
        timestamp); has missing timestamps relative to its frequency and ``fill`` is None
        (naming the first missing one); is irregular; a used column has NaN (naming column
        and first timestamp) and ``fill`` is None, or has inf; a column is unknown; there
        are fewer than ``lookback + horizon`` rows; or a length is out of range.

    See Also
    --------
    last_window : the most recent input window only.
    future_index : timestamps of the steps after the data, to stamp forecasts.
    SlidingWindowTransformer : the same windows on plain arrays, inside a Pipeline.

    Notes
    -----
    Frequency: see the module docstring. Regular data must have every timestamp of their
    frequency (given by ``index.freq`` or inferred); a trading-day calendar such as the
    S&P 500 (weekdays minus holidays, ``freq=None``) is accepted and windowed over
    consecutive rows, so one step means "next trading day" and a window may straddle a
    weekend. Its ``Windows.freq`` is None.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0], name="v",
    ...               index=pd.date_range("2024-01-01", periods=5, freq="D"))
    >>> X, y, origins = make_windows(s, lookback=2, horizon=2)
    >>> X[:, :, 0].tolist(), y.tolist()
    ([[1.0, 2.0], [2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]])
    >>> [str(t.date()) for t in origins]
    ['2024-01-02', '2024-01-03']
    """
    lookback = _check_int("lookback", lookback, 1)
    horizon = _check_int("horizon", horizon, 0)
    stride = _check_int("stride", stride, 1)
    frame, target, features, freq = _prepare(
        data, target=target, features=features, fill=fill, need_target=horizon > 0
    )
    n_rows = len(frame)
    if n_rows < lookback + horizon:
        raise ValueError(
            f"data has {n_rows} rows but lookback + horizon = {lookback} + {horizon} = "
            f"{lookback + horizon} rows are needed for one window."
        )
    last_start = n_rows - lookback - horizon
    starts = np.arange(last_start % stride, last_start + 1, stride, dtype=np.int64)

    values = frame[features].to_numpy(dtype=np.float64)
    # (n_rows - lookback + 1, n_features, lookback) view -> (n_windows, lookback, n_features) copy
    X = np.ascontiguousarray(sliding_window_view(values, lookback, axis=0)[starts].transpose(0, 2, 1))
    if horizon > 0:
        target_values = frame[target].to_numpy(dtype=np.float64)
        y = np.ascontiguousarray(sliding_window_view(target_values[lookback:], horizon)[starts])
    else:
        y = np.empty((len(starts), 0), dtype=np.float64)
    origins = pd.DatetimeIndex(frame.index[starts + lookback - 1], freq=None)
    return Windows(
        X=X,
        y=y,
        origins=origins,
        feature_names=tuple(features),
        target=target,
        freq=freq,
        index=frame.index,
        starts=starts,
        lookback=lookback,
        horizon=horizon,
    )


def last_window(
    data: pd.Series | pd.DataFrame,
    lookback: int,
    *,
    target: str | None = None,
    features: str | list[str] | None = None,
    fill: FillMethod | None = None,
) -> Windows:
    """The most recent input window, to forecast from the end of the data.

    Parameters
    ----------
    data : pandas.Series or pandas.DataFrame
        As for :func:`make_windows` (validated the same way, over all rows).
    lookback : int
        Input window length in rows.
    target, features, fill
        As for :func:`make_windows`; ``target`` only selects the default features.

    Returns
    -------
    Windows
        One window: ``X`` of shape (1, lookback, n_features), ``y`` of shape (1, 0) and
        ``origins`` holding the last timestamp of ``data``.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.Series([1.0, 2.0, 3.0], index=pd.date_range("2024-01-01", periods=3, freq="h"))
    >>> w = last_window(s, 2)
    >>> w.X.shape, w.X[0, :, 0].tolist(), str(w.origins[0])
    ((1, 2, 1), [2.0, 3.0], '2024-01-01 02:00:00')
    """
    # End-aligned windows with a stride longer than the (possibly reindexed) data leave
    # exactly the last one.
    return make_windows(data, lookback, 0, target=target, features=features, stride=_ONE_WINDOW, fill=fill)


# ---------------------------------------------------------------------------------------
# scikit-learn transformer
# ---------------------------------------------------------------------------------------
def _window_array(values: np.ndarray, lookback: int, horizon: int, stride: int) -> np.ndarray:
    n_rows = values.shape[0]
    if n_rows < lookback + horizon:
        raise ValueError(
            f"X has {n_rows} time steps but lookback + horizon = {lookback} + {horizon} = "
            f"{lookback + horizon} are needed for one window."
        )
    last_start = n_rows - lookback - horizon
    starts = np.arange(last_start % stride, last_start + 1, stride)
    view = sliding_window_view(values, lookback, axis=0)[starts]
    # (n_windows, n_features, lookback) view -> (n_windows, lookback, n_features) copy
    return np.ascontiguousarray(view.transpose(0, 2, 1))


class SlidingWindowTransformer(TransformerMixin, BaseEstimator):
    """Turn a multivariate time series into overlapping input windows.

    A scikit-learn transformer, so windowing can be the first step of a
    :class:`~sklearn.pipeline.Pipeline` in front of an estimator that takes 3-D input
    (e.g. :class:`tsrnn.RNNRegressor`). It works on plain rows in time order and ignores
    any index: timestamp checks are :func:`make_windows`' job.

    Parameters
    ----------
    lookback : int
        Window length in time steps (>= 1).
    horizon : int, default=0
        Number of final time steps left after the last window (>= 0). With ``horizon=h``
        the windows are exactly ``make_windows(frame, lookback, h, stride=stride).X``, so
        they line up with targets from :meth:`target_windows` (or ``make_windows(...).y``).
        Use ``horizon=0`` for windows ending at the last row (prediction).
    stride : int, default=1
        Step between window starts (>= 1); windows are aligned to the end of the data.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns seen in :meth:`fit`.
    feature_names_in_ : numpy.ndarray of shape (n_features_in_,)
        Column names seen in :meth:`fit`, if ``X`` was a DataFrame with string columns.

    See Also
    --------
    make_windows : windows and targets from pandas data, with timestamp validation.

    Notes
    -----
    ``transform`` maps ``(n_time, n_features)`` to ``(n_windows, lookback, n_features)``
    with ``n_windows = (n_time - lookback - horizon) // stride + 1``; the number of rows
    changes, so ``y`` given to a Pipeline must already be windowed (one row per window).
    float32 input stays float32, anything else becomes float64; NaN and inf are rejected.

    Examples
    --------
    >>> import numpy as np
    >>> from tsrnn.windowing import SlidingWindowTransformer
    >>> series = np.arange(10.0).reshape(5, 2)       # 5 time steps, 2 features
    >>> windows = SlidingWindowTransformer(lookback=3).fit_transform(series)
    >>> windows.shape
    (3, 3, 2)
    >>> windows[0, :, 0].tolist()
    [0.0, 2.0, 4.0]
    """

    def __init__(self, lookback: int, horizon: int = 0, stride: int = 1) -> None:
        self.lookback = lookback
        self.horizon = horizon
        self.stride = stride

    def _check_params(self) -> tuple[int, int, int]:
        return (
            _check_int("lookback", self.lookback, 1),
            _check_int("horizon", self.horizon, 0),
            _check_int("stride", self.stride, 1),
        )

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> SlidingWindowTransformer:
        """Check the parameters and record the number (and names) of features.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_time, n_features)
            Time series, rows in time order.
        y : ignored
            Present for Pipeline compatibility.

        Returns
        -------
        SlidingWindowTransformer
            The fitted transformer.
        """
        self._check_params()
        validate_data(self, X, reset=True, dtype=(np.float64, np.float32), ensure_2d=True)
        return self

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Cut ``X`` into windows.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_time, n_features)
            Time series with the same number of features as in :meth:`fit`.

        Returns
        -------
        numpy.ndarray of shape (n_windows, lookback, n_features)
            C-contiguous windows.

        Raises
        ------
        ValueError
            If the feature count differs from fit, or ``n_time < lookback + horizon``.
        """
        check_is_fitted(self)
        lookback, horizon, stride = self._check_params()
        values = validate_data(self, X, reset=False, dtype=(np.float64, np.float32), ensure_2d=True)
        return _window_array(values, lookback, horizon, stride)

    def target_windows(self, y: ArrayLike) -> np.ndarray:
        """The ``horizon`` values following each window of :meth:`transform`.

        Parameters
        ----------
        y : array-like of shape (n_time,)
            Target series aligned with the rows of ``X``.

        Returns
        -------
        numpy.ndarray of shape (n_windows, horizon)
            Row ``i`` holds the targets right after window ``i``.

        Raises
        ------
        ValueError
            If ``horizon`` is 0, ``y`` is not 1-D, has NaN/inf, or is too short.
        """
        lookback, horizon, stride = self._check_params()
        if horizon == 0:
            raise ValueError("target_windows needs horizon >= 1; this transformer has horizon=0.")
        values = np.asarray(y, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"y must be 1-D (n_time,); got shape {values.shape}.")
        if not np.isfinite(values).all():
            k = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"y contains a non-finite value at position {k}.")
        if values.shape[0] < lookback + horizon:
            raise ValueError(
                f"y has {values.shape[0]} time steps but lookback + horizon = {lookback} + "
                f"{horizon} = {lookback + horizon} are needed for one window."
            )
        last_start = values.shape[0] - lookback - horizon
        starts = np.arange(last_start % stride, last_start + 1, stride)
        return np.ascontiguousarray(sliding_window_view(values[lookback:], horizon)[starts])


# ---------------------------------------------------------------------------------------
# Temporal splits
# ---------------------------------------------------------------------------------------
def _n_test(test_size: float | int, n: int, unit: str) -> int:
    if isinstance(test_size, bool):
        raise TypeError(f"test_size must be a float in (0, 1) or an int; got {test_size!r}.")
    if isinstance(test_size, numbers.Integral):
        if not 1 <= test_size < n:
            raise ValueError(f"test_size={test_size} {unit} must be in [1, {n - 1}] for {n} {unit}.")
        return int(test_size)
    if isinstance(test_size, numbers.Real):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"A float test_size must be in (0, 1); got {test_size}.")
        n_test = math.ceil(test_size * n)
        if n_test >= n:
            raise ValueError(f"test_size={test_size} leaves no training {unit} out of {n}.")
        return n_test
    raise TypeError(
        f"test_size must be a float in (0, 1), an int or a timestamp; got {type(test_size).__name__}."
    )


def temporal_train_test_split(
    data: pd.Series | pd.DataFrame,
    test_size: float | int | str | pd.Timestamp | datetime | date | np.datetime64 = 0.2,
) -> tuple[pd.Series | pd.DataFrame, pd.Series | pd.DataFrame]:
    """Split a time series into an earlier training part and a later test part.

    Parameters
    ----------
    data : pandas.Series or pandas.DataFrame
        Time series with a sorted, duplicate-free DatetimeIndex.
    test_size : float, int or timestamp, default=0.2
        A float in (0, 1) is the fraction of rows in the test part (rounded up, as
        scikit-learn's ``train_test_split``); an int the number of test rows; a timestamp
        (``pd.Timestamp``, ``datetime``, ``date``, ``np.datetime64`` or a string pandas
        parses) the first test time: rows at or after it are test rows. A naive timestamp
        on a tz-aware index is read in the index's time zone.

    Returns
    -------
    train, test : same type as data
        ``data.iloc[:n_train]`` and ``data.iloc[n_train:]``: no shuffling, no overlap.

    Raises
    ------
    TypeError
        If data has no DatetimeIndex or test_size has an unsupported type.
    ValueError
        If either part would be empty, or the index is unsorted or has duplicates.

    Notes
    -----
    To evaluate forecasts with a ``lookback``, the first test forecasts need the last
    ``lookback`` training rows as input; that is not leakage, those values are known at
    the forecast origin.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.Series(range(10), index=pd.date_range("2024-01-01", periods=10, freq="D"))
    >>> train, test = temporal_train_test_split(s, test_size=0.3)
    >>> len(train), len(test), str(test.index[0].date())
    (7, 3, '2024-01-08')
    >>> train, test = temporal_train_test_split(s, test_size="2024-01-05")
    >>> len(train), len(test)
    (4, 6)
    """
    _check_pandas(data)
    n = len(data)
    if n < 2:
        raise ValueError(f"data needs at least 2 rows to split; got {n}.")
    if isinstance(test_size, (str, pd.Timestamp, datetime, date, np.datetime64)):
        split_at = pd.Timestamp(test_size)
        if data.index.tz is not None and split_at.tz is None:
            split_at = split_at.tz_localize(data.index.tz)
        n_train = int(data.index.searchsorted(split_at, side="left"))
        if not 0 < n_train < n:
            raise ValueError(
                f"test_size={split_at} leaves an empty {'training' if n_train == 0 else 'test'} part: "
                f"data spans {data.index[0]} to {data.index[-1]}."
            )
    else:
        n_train = n - _n_test(test_size, n, "rows")
    return data.iloc[:n_train], data.iloc[n_train:]


def train_test_split_windows(
    X: ArrayLike,
    y: ArrayLike,
    test_size: float | int = 0.2,
    *,
    gap: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split time-ordered windows so that no test target was seen in training.

    Parameters
    ----------
    X : array-like of shape (n_windows, ...)
        Input windows in time order (as from :func:`make_windows`).
    y : array-like of shape (n_windows,) or (n_windows, horizon)
        Their targets.
    test_size : float or int, default=0.2
        Fraction (in (0, 1), rounded up) or number of windows in the test part: the last
        ones.
    gap : int, optional
        Windows dropped between the training and the test part. Default ``horizon - 1``
        (``y.shape[1] - 1``; 0 for 1-D ``y``).

    Returns
    -------
    X_train, X_test, y_train, y_test : numpy.ndarray
        ``X[:n_train]``, ``X[-n_test:]`` and likewise for ``y``, with
        ``n_train = n_windows - n_test - gap``.

    Raises
    ------
    ValueError
        If X and y disagree in length, or no training window would remain.

    Notes
    -----
    Consecutive windows (stride 1) share targets: the targets of window ``i`` are rows
    ``i + lookback .. i + lookback + horizon - 1``, which are also targets of windows
    ``i + 1 .. i + horizon - 1``. Dropping ``horizon - 1`` windows makes the first test
    target come strictly after the last training target, so a test score never rewards
    memorised targets. With stride ``s`` the minimum gap is ``ceil(horizon / s) - 1``; the
    default is safe for every stride. Test *inputs* may still contain rows that were
    training targets: at the test forecast origin those values are observed history.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.arange(10.0).reshape(10, 1, 1), np.arange(20.0).reshape(10, 2)
    >>> X_tr, X_te, y_tr, y_te = train_test_split_windows(X, y, test_size=3)
    >>> len(X_tr), len(X_te)                     # one window dropped: horizon 2 - 1
    (6, 3)
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0 or y.ndim not in (1, 2):
        raise ValueError(
            f"X must have a window axis and y must be 1-D or 2-D; got shapes {X.shape} and {y.shape}."
        )
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"X and y must have the same number of windows; got {n} and {y.shape[0]}.")
    horizon = y.shape[1] if y.ndim == 2 else 1
    gap = max(horizon - 1, 0) if gap is None else _check_int("gap", gap, 0)
    if n < 2:
        raise ValueError(f"Need at least 2 windows to split; got {n}.")
    n_test = _n_test(test_size, n, "windows")
    n_train = n - n_test - gap
    if n_train < 1:
        raise ValueError(
            f"No training windows left: {n} windows - {n_test} test - gap {gap} = {n_train}. "
            "Reduce test_size or gap, or make more windows."
        )
    return X[:n_train], X[n - n_test :], y[:n_train], y[n - n_test :]


# ---------------------------------------------------------------------------------------
# Feature helpers
# ---------------------------------------------------------------------------------------
def log_returns(prices: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Logarithmic returns ``log(p_t / p_{t-1})``.

    Parameters
    ----------
    prices : pandas.Series or pandas.DataFrame
        Strictly positive prices with a sorted DatetimeIndex.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        Same columns/name, one row shorter: the first timestamp has no previous price.
        NaN prices give NaN returns (next to them), left for the caller to handle.

    Raises
    ------
    ValueError
        If a price is zero or negative (naming column and timestamp).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> p = pd.Series([100.0, 110.0, 99.0], index=pd.date_range("2024-01-01", periods=3, freq="D"))
    >>> np.round(log_returns(p).to_numpy(), 4).tolist()
    [0.0953, -0.1054]
    """
    _check_pandas(prices, "prices")
    frame = _as_frame(prices)
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = values <= 0
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"log_returns needs positive prices; column {name!r} is {values[k]} "
                f"at {frame.index[k]}."
            )
    return np.log(prices.astype(np.float64)).diff().iloc[1:]


def rolling_volatility(
    returns: pd.Series | pd.DataFrame,
    window: int,
    annualize: float | None = None,
) -> pd.Series | pd.DataFrame:
    """Rolling standard deviation of returns over the last ``window`` rows.

    Parameters
    ----------
    returns : pandas.Series or pandas.DataFrame
        Returns with a sorted DatetimeIndex, e.g. from :func:`log_returns`.
    window : int
        Number of rows per estimate (>= 2), including the current row: the value at time t
        uses only returns up to t, so it is known at t.
    annualize : float, optional
        Periods per year to scale by ``sqrt(annualize)``, e.g. 252 for daily trading data.
        None returns the per-period volatility.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        Sample standard deviation (ddof=1), same index; the first ``window - 1`` rows are
        NaN (drop them, e.g. with ``.dropna()``, before :func:`make_windows`).

    Examples
    --------
    >>> import pandas as pd
    >>> r = pd.Series([0.01, -0.01, 0.01, -0.01],
    ...               index=pd.date_range("2024-01-01", periods=4, freq="D"))
    >>> rolling_volatility(r, 2).round(6).tolist()
    [nan, 0.014142, 0.014142, 0.014142]
    """
    _check_pandas(returns, "returns")
    window = _check_int("window", window, 2)
    volatility = returns.astype(np.float64).rolling(window, min_periods=window).std(ddof=1)
    if annualize is None:
        return volatility
    if isinstance(annualize, bool) or not isinstance(annualize, numbers.Real):
        raise TypeError(f"annualize must be a number of periods per year or None; got {annualize!r}.")
    if not annualize > 0:
        raise ValueError(f"annualize must be > 0 periods per year; got {annualize}.")
    return volatility * math.sqrt(annualize)


def calendar_features(
    index: pd.DatetimeIndex,
    hour: bool = True,
    day_of_week: bool = False,
    day_of_year: bool = True,
) -> pd.DataFrame:
    """Cyclical sine/cosine encodings of the time of day, week and year.

    Computed from the timestamps alone, so they are known for future timestamps too (use
    them with :func:`future_index`).

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Timestamps (wall-clock fields are used for tz-aware indexes).
    hour : bool, default=True
        Add ``hour_sin``, ``hour_cos``: phase ``2 pi (hour + minute/60 + second/3600) / 24``.
    day_of_week : bool, default=False
        Add ``dow_sin``, ``dow_cos``: phase ``2 pi (day_of_week + fraction of day) / 7``,
        Monday 00:00 = 0.
    day_of_year : bool, default=True
        Add ``doy_sin``, ``doy_cos``: phase ``2 pi (day_of_year - 1 + fraction of day) /
        days_in_year`` (365 or 366), so 1 January 00:00 = 0 every year.

    Returns
    -------
    pandas.DataFrame
        float64 columns in the order hour, dow, doy, on the same index.

    Raises
    ------
    TypeError
        If index is not a DatetimeIndex.
    ValueError
        If all three encodings are disabled.

    Examples
    --------
    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=2, freq="6h")
    >>> calendar_features(idx, day_of_year=False).round(3).to_numpy().tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"index must be a pandas DatetimeIndex; got {type(index).__name__}.")
    if not (hour or day_of_week or day_of_year):
        raise ValueError("calendar_features needs at least one of hour, day_of_week, day_of_year.")
    fraction_of_day = (
        index.hour.to_numpy() / 24.0
        + index.minute.to_numpy() / 1440.0
        + (index.second.to_numpy() + index.microsecond.to_numpy() / 1e6) / 86400.0
    )
    phases: dict[str, np.ndarray] = {}
    if hour:
        phases["hour"] = fraction_of_day
    if day_of_week:
        phases["dow"] = (index.day_of_week.to_numpy() + fraction_of_day) / 7.0
    if day_of_year:
        days_in_year = np.where(index.is_leap_year, 366.0, 365.0)
        phases["doy"] = (index.day_of_year.to_numpy() - 1 + fraction_of_day) / days_in_year
    columns: dict[str, np.ndarray] = {}
    for name, phase in phases.items():
        columns[f"{name}_sin"] = np.sin(2.0 * np.pi * phase)
        columns[f"{name}_cos"] = np.cos(2.0 * np.pi * phase)
    return pd.DataFrame(columns, index=index, dtype=np.float64)


def future_index(
    index: pd.DatetimeIndex,
    periods: int,
    *,
    freq: str | BaseOffset | None = None,
) -> pd.DatetimeIndex:
    """The ``periods`` timestamps that follow ``index``, to stamp forecasts.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Sorted, duplicate-free timestamps of the observed data.
    periods : int
        Number of future timestamps (>= 1).
    freq : str or pandas.DateOffset, optional
        Step to use; overrides the rules below.

    Returns
    -------
    pandas.DatetimeIndex
        ``periods`` timestamps after ``index[-1]``, with ``freq`` set, same name and time
        zone.

    Raises
    ------
    TypeError
        If index is not a DatetimeIndex or periods is not an int.
    ValueError
        If no frequency can be determined (irregular index, or a single timestamp) and
        ``freq`` is not given.

    Notes
    -----
    The step is, in order: ``freq``; ``index.freq``; the frequency pandas infers; business
    days (``pandas.offsets.BDay``) when the index is a trading-day calendar (weekdays only,
    see the module docstring), keeping its time of day -- BDay skips weekends but not
    exchange holidays, so a stamped forecast may fall on a holiday; the regular grid of an
    index with missing timestamps. For a trading calendar, ``make_windows`` targets are the
    next rows of the data, so forecast step ``k`` means "k trading days ahead" and this
    stamps it with the k-th business day.

    Examples
    --------
    >>> import pandas as pd
    >>> future_index(pd.date_range("2024-01-01", periods=3, freq="h"), 2).strftime("%H:%M").tolist()
    ['03:00', '04:00']
    >>> trading = pd.DatetimeIndex(["2024-12-23", "2024-12-24", "2024-12-26", "2024-12-27"])
    >>> future_index(trading, 2).strftime("%a %d").tolist()    # BDay: skips the weekend
    ['Mon 30', 'Tue 31']
    """
    _check_datetime_index(index)
    periods = _check_int("periods", periods, 1)
    if len(index) == 0:
        raise ValueError("index is empty; there is no last timestamp to extend.")
    if freq is not None:
        offset = to_offset(freq)
    else:
        try:
            calendar = _calendar(index)
        except ValueError as exc:
            raise ValueError(f"{exc} Or pass future_index(..., freq=...).") from exc
        if calendar.kind == "trading":
            offset = pd.offsets.BDay()
        elif calendar.freq is not None:
            offset = calendar.freq
        else:
            raise ValueError(
                f"Cannot determine the frequency of an index with {len(index)} timestamp(s); "
                "pass freq=..."
            )
    first = index[-1] + offset
    return pd.date_range(first, periods=periods, freq=offset, name=index.name)
