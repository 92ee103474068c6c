"""Many series at once: a validated panel in one contiguous array, and its windows.

A :class:`Panel` holds series of one frequency and the same columns, possibly of
different lengths and start dates, as one float64 array of rows plus row offsets per
series (``values``, ``indptr``: the layout of a CSR matrix's rows), so that the windows
of every series are index arrays into it rather than copies (:class:`PanelWindows`).

:func:`to_panel` accepts what forecasters already use:

* a long DataFrame, one row per (series id, timestamp): ``id_column`` names the series,
  the timestamps are the index or ``time_column`` (statsforecast's ``unique_id, ds, y``);
* a dict ``{id: Series or DataFrame}`` (Darts-style lists of series, with names);
* a wide DataFrame, one column per series (``target=[...]`` names the columns);
* a single Series or DataFrame: a panel of one series (``single=True``), which the
  forecaster answers in the single-series formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from pandas.tseries.offsets import BaseOffset

from tsrnn import windowing

__all__ = ["DEFAULT_ID_COLUMN", "DEFAULT_TIME_COLUMN", "Panel", "PanelWindows", "to_panel"]

#: Name of the id column of long outputs when the input did not name one.
DEFAULT_ID_COLUMN = "unique_id"
#: Name of the timestamp column of long outputs when the input did not name one.
DEFAULT_TIME_COLUMN = "ds"
_DAY_NS = 86_400_000_000_000

#: Name of the value column of a wide panel's or unnamed series' target.
DEFAULT_TARGET = windowing.UNNAMED_SERIES


@dataclass(frozen=True, eq=False)
class Panel:
    """Series with the same columns and frequency, stored row after row.

    Attributes
    ----------
    ids : tuple
        Series identifiers, in order (``(None,)`` for a single series).
    index : tuple of pandas.DatetimeIndex
        Timestamps of each series (regular, gap-free after any ``fill``).
    columns : tuple of str
        Column names of ``values``; the first is the target.
    values : ndarray of shape (n_rows, n_columns), float64
        Every series' rows, series after series.
    indptr : ndarray of shape (n_series + 1,), int64
        Series ``s`` is ``values[indptr[s]:indptr[s + 1]]``.
    freq : pandas.DateOffset or None
        Common frequency (None for trading-day calendars).
    single : bool
        Built from one Series or DataFrame (answers keep single-series shapes).
    id_column, time_column : str
        Column names for long outputs.
    index_kind : {'datetime', 'period', 'range'}
        What the input's index was. A PeriodIndex is held as the periods' start
        timestamps, an integer (Range) index as days from 1970-01-01, and answers
        are given back in the input's kind (:meth:`original_index`).
    period_freq : pandas.DateOffset or None
        The PeriodIndex's frequency ('period').
    """

    ids: tuple
    index: tuple
    columns: tuple
    values: np.ndarray
    indptr: np.ndarray
    freq: BaseOffset | None
    single: bool
    id_column: str = DEFAULT_ID_COLUMN
    time_column: str = DEFAULT_TIME_COLUMN
    index_kind: str = "datetime"
    period_freq: object = None

    @property
    def n_series(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def rows(self, s: int) -> np.ndarray:
        """Series ``s``'s rows (a view)."""
        return self.values[self.indptr[s]:self.indptr[s + 1]]

    def frame(self, s: int) -> pd.DataFrame:
        """Series ``s`` as a DataFrame indexed by its timestamps."""
        return pd.DataFrame(self.rows(s), index=self.index[s], columns=list(self.columns))

    def position(self, series_id) -> int:
        """The position of ``series_id`` in :attr:`ids` (ValueError naming it if absent)."""
        try:
            return self.ids.index(series_id)
        except ValueError:
            shown = list(self.ids[:10]) + (["..."] if len(self.ids) > 10 else [])
            raise ValueError(f"unknown series id {series_id!r}; the ids are {shown}.") from None

    def with_values(self, values: np.ndarray, columns) -> Panel:
        """The same series and timestamps with other columns (same row count)."""
        if values.shape != (self.values.shape[0], len(columns)):
            raise ValueError(
                f"values must have shape ({self.values.shape[0]}, {len(columns)}); got "
                f"{values.shape}."
            )
        return replace(self, columns=tuple(columns), values=np.ascontiguousarray(values))

    def tail(self, n: int) -> Panel:
        """The last ``n`` rows of every series (fewer where a series is shorter)."""
        keep = np.minimum(self.lengths, n)
        indptr = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
        rows = np.concatenate([np.arange(self.indptr[s + 1] - keep[s], self.indptr[s + 1])
                               for s in range(self.n_series)])
        index = tuple(ix[len(ix) - k:] for ix, k in zip(self.index, keep))
        return replace(self, index=index, values=np.ascontiguousarray(self.values[rows]),
                       indptr=indptr)

    def head(self, n_rows: np.ndarray) -> Panel:
        """The first ``n_rows[s]`` rows of each series ``s``."""
        n_rows = np.minimum(np.asarray(n_rows, dtype=np.int64), self.lengths)
        indptr = np.concatenate([[0], np.cumsum(n_rows)]).astype(np.int64)
        rows = np.concatenate([np.arange(self.indptr[s], self.indptr[s] + n_rows[s])
                               for s in range(self.n_series)])
        index = tuple(ix[:k] for ix, k in zip(self.index, n_rows))
        return replace(self, index=index, values=np.ascontiguousarray(self.values[rows]),
                       indptr=indptr)

    def subset(self, positions) -> Panel:
        """The series at ``positions`` (in that order)."""
        positions = [int(p) for p in positions]
        parts = [self.rows(p) for p in positions]
        lengths = [len(p) for p in parts]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        values = (np.concatenate(parts) if parts
                  else np.empty((0, len(self.columns))))
        return replace(self, ids=tuple(self.ids[p] for p in positions),
                       index=tuple(self.index[p] for p in positions),
                       values=np.ascontiguousarray(values), indptr=indptr)

    def original_index(self, stamps: pd.DatetimeIndex):
        """``stamps`` (internal timestamps) in the kind of index the input had."""
        if self.index_kind == "period":
            return stamps.to_period(self.period_freq)
        if self.index_kind == "range":
            return pd.Index(stamps.asi8 // _DAY_NS, dtype=np.int64, name=stamps.name)
        return stamps


def _describe(series_id) -> str:
    return "the series" if series_id is None else f"series {series_id!r}"


def _series_frames(data, *, id_column, time_column, target):
    """``(ids, frames, single, id_column_out, target)`` from any accepted input.

    The frames are indexed by their timestamps, not yet validated.
    """
    if isinstance(data, Mapping):
        if id_column is not None:
            raise ValueError("id_column applies to a long DataFrame, not to a dict of series.")
        if not data:
            raise ValueError("the dict of series is empty.")
        ids, frames = [], []
        for key, value in data.items():
            if isinstance(value, pd.Series):
                name = target if isinstance(target, str) else (
                    value.name if value.name is not None else DEFAULT_TARGET)
                value = value.to_frame(name=name)
            elif not isinstance(value, pd.DataFrame):
                raise TypeError(
                    f"the dict's value for {key!r} must be a pandas Series or DataFrame; got "
                    f"{type(value).__name__}."
                )
            ids.append(key)
            frames.append(value)
        return ids, frames, False, DEFAULT_ID_COLUMN, target
    if isinstance(data, pd.Series):
        if id_column is not None:
            raise ValueError("id_column needs a long DataFrame; got a Series.")
        name = DEFAULT_TARGET if data.name is None else data.name
        return [None], [data.to_frame(name=name)], True, DEFAULT_ID_COLUMN, target
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            "data must be a pandas Series or DataFrame with a DatetimeIndex, a long DataFrame "
            f"with an id column, or a dict of series; got {type(data).__name__}."
        )
    if id_column is not None:
        if id_column not in data.columns:
            raise ValueError(
                f"id_column {id_column!r} is not a column; columns are {list(data.columns)}."
            )
        frame = data
        if time_column is not None:
            if time_column not in frame.columns:
                raise ValueError(
                    f"time_column {time_column!r} is not a column; columns are "
                    f"{list(frame.columns)}."
                )
            frame = frame.set_index(time_column)
        elif DEFAULT_TIME_COLUMN in frame.columns:
            frame = frame.set_index(DEFAULT_TIME_COLUMN)
        if not (isinstance(frame.index, (pd.DatetimeIndex, pd.PeriodIndex))
                or pd.api.types.is_integer_dtype(frame.index.dtype)):
            raise TypeError(
                "a long DataFrame needs its timestamps (or periods, or integer steps) as "
                "the index or in a column named by time_column (or "
                f"'{DEFAULT_TIME_COLUMN}'); got a {type(frame.index).__name__}."
            )
        if frame[id_column].isna().any():
            raise ValueError(f"id_column {id_column!r} has missing ids.")
        ids, frames = [], []
        for key, group in frame.groupby(id_column, sort=False):
            ids.append(key)
            frames.append(group.drop(columns=[id_column]))
        return ids, frames, False, id_column, target
    if isinstance(target, (list, tuple)):  # wide: one column per series
        missing = [c for c in target if c not in data.columns]
        if missing:
            raise ValueError(
                f"target column(s) {missing} not in data; columns are {list(data.columns)}."
            )
        if not target:
            raise ValueError("target=[] names no series.")
        frames = [data[[c]].rename(columns={c: DEFAULT_TARGET}) for c in target]
        return list(target), frames, False, DEFAULT_ID_COLUMN, DEFAULT_TARGET
    return [None], [data], True, DEFAULT_ID_COLUMN, target


def to_panel(data, *, target=None, columns=(), id_column=None, time_column=None,
             fill=None) -> tuple[Panel, str]:
    """Validate ``data`` (any accepted form, see the module docstring) into a Panel.

    Parameters
    ----------
    data : Series, DataFrame or dict of Series/DataFrame
    target : str or list of str, optional
        Column to forecast; a list names the series of a wide DataFrame. Default: the
        Series, or the only column other than the id column.
    columns : sequence of str
        Other columns to keep after the target (covariates), in order.
    id_column, time_column : str, optional
        For a long DataFrame.
    fill : {None, 'ffill', 'interpolate'}
        Repair missing timestamps and NaNs per series, as
        :func:`tsrnn.windowing.make_windows`.

    Returns
    -------
    panel : Panel
        Columns ``[target, *columns]``.
    target : str
    """
    ids, frames, single, id_out, target = _series_frames(
        data, id_column=id_column, time_column=time_column, target=target)
    if target is None:
        names = [c for c in frames[0].columns if c not in columns]
        if len(names) != 1:
            raise ValueError(
                f"data has {len(names)} columns {names}; say which to forecast with "
                "target=..."
            )
        target = names[0]
    wanted = [target] + list(columns)
    if len(set(map(str, wanted))) != len(wanted):
        raise ValueError(f"columns {wanted} repeat a name.")
    seen = set()
    index, parts, freqs, kinds = [], [], [], set()
    for series_id, frame in zip(ids, frames):
        if series_id in seen:
            raise ValueError(f"series id {series_id!r} appears twice.")
        seen.add(series_id)
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            where = "" if single else f" for {_describe(series_id)}"
            raise ValueError(
                f"column(s) {missing} not in data{where}; columns are {list(frame.columns)}."
            )
        frame, kind, period_freq = _as_datetime_index(frame, series_id)
        kinds.add(kind)
        try:
            clean, _, _, freq = windowing._prepare(frame[wanted], target=target,
                                                   features=wanted, fill=fill,
                                                   need_target=True)
        except (TypeError, ValueError) as exc:
            if single:
                raise
            raise type(exc)(f"{_describe(series_id)}: {exc}") from None
        index.append(clean.index)
        parts.append(clean[wanted].to_numpy(dtype=np.float64))
        freqs.append(freq)
    if len(kinds) > 1:
        raise TypeError(f"the series mix kinds of index ({sorted(kinds)}); give them all "
                        "timestamps, periods or integer steps.")
    _check_common_frequency(ids, index, freqs)
    lengths = [len(p) for p in parts]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    panel = Panel(tuple(ids), tuple(index), tuple(str(c) if not isinstance(c, str) else c
                                                  for c in wanted),
                  np.ascontiguousarray(np.concatenate(parts)), indptr,
                  next((f for f in freqs if f is not None), None), single, id_out,
                  time_column or DEFAULT_TIME_COLUMN, kind, period_freq)
    return panel, panel.columns[0]


def _as_datetime_index(frame: pd.DataFrame, series_id):
    """``(frame, kind, period_freq)`` with timestamps in the index: a PeriodIndex
    becomes its periods' start times, an integer index (a RangeIndex, or integers
    with a constant step) days from 1970-01-01; anything else is left to the
    timestamp checks."""
    index = frame.index
    if isinstance(index, pd.PeriodIndex):
        return frame.set_axis(index.to_timestamp(how="start"), axis=0), "period", index.freq
    if pd.api.types.is_integer_dtype(index.dtype) and not isinstance(index, pd.DatetimeIndex):
        if len(index) > 1 and len(np.unique(np.diff(index.to_numpy()))) > 1:
            raise ValueError(
                f"{_describe(series_id)} has an integer index whose step is not constant; "
                "give it timestamps, or steps of one size."
            )
        stamps = pd.to_datetime(index.to_numpy(dtype=np.int64) * _DAY_NS)
        return frame.set_axis(pd.DatetimeIndex(stamps, name=index.name), axis=0), "range", None
    return frame, "datetime", None


def _check_common_frequency(ids, index, freqs) -> None:
    """Series of one panel share a frequency (one-row series have none of their own)."""
    known = [(i, f) for i, (f, ix) in enumerate(zip(freqs, index)) if len(ix) > 1]
    if not known:
        return
    first_i, first = known[0]
    for i, freq in known[1:]:
        if freq != first:
            raise ValueError(
                f"all series must share one frequency: {_describe(ids[first_i])} has "
                f"{windowing._freq_label(first)} but {_describe(ids[i])} has "
                f"{windowing._freq_label(freq)}. Resample them to one frequency first."
            )


@dataclass(frozen=True, eq=False)
class PanelWindows:
    """Every (input window, following values) pair of a panel, as index arrays.

    Window ``i`` reads rows ``start[i] : start[i] + lookback`` of ``panel.values`` and
    its targets are the target column at the next ``horizon`` rows; it belongs to
    series ``series[i]``, whose origin (last input row) is ``origin[i]`` rows into the
    series. Windows are in series order, oldest first within a series.
    """

    panel: Panel
    lookback: int
    horizon: int
    series: np.ndarray
    start: np.ndarray

    @classmethod
    def of(cls, panel: Panel, lookback: int, horizon: int) -> PanelWindows:
        counts = np.maximum(panel.lengths - lookback - horizon + 1, 0)
        series = np.repeat(np.arange(panel.n_series), counts)
        first = np.repeat(panel.indptr[:-1] - np.concatenate([[0], np.cumsum(counts)[:-1]]),
                          counts)
        start = first + np.arange(int(counts.sum()))
        return cls(panel, lookback, horizon, series.astype(np.int64), start.astype(np.int64))

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def counts(self) -> np.ndarray:
        """Windows per series."""
        return np.bincount(self.series, minlength=self.panel.n_series)

    @property
    def origin(self) -> np.ndarray:
        """Row of each window's last input within its series."""
        return self.start - self.panel.indptr[self.series] + self.lookback - 1

    def past(self, rows: np.ndarray) -> np.ndarray:
        """Inputs of windows ``rows``: (n, lookback, n_columns) float64."""
        steps = self.start[rows][:, None] + np.arange(self.lookback)[None, :]
        return self.panel.values[steps]

    def future_rows(self, rows: np.ndarray, columns: slice) -> np.ndarray:
        """``columns`` of the ``horizon`` rows after windows ``rows``: (n, horizon, k)."""
        steps = self.start[rows][:, None] + self.lookback + np.arange(self.horizon)[None, :]
        return self.panel.values[steps][:, :, columns]

    def targets(self, rows: np.ndarray) -> np.ndarray:
        """Targets of windows ``rows``: (n, horizon) float64."""
        steps = self.start[rows][:, None] + self.lookback + np.arange(self.horizon)[None, :]
        return self.panel.values[steps, 0]
