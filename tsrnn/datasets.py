"""Loaders for the real time series shipped with tsrnn.

The CSV files live in the repository's top-level ``datasets/`` folder, which an installed
wheel exposes as the package ``tsrnn._data``; ``datasets/README.md`` documents the source
and licence of each file. Every loader returns a :class:`pandas.DataFrame` with a sorted
:class:`pandas.DatetimeIndex`, with ``freq`` set where the timestamps are regular.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DATASET_NAMES",
    "default_target",
    "list_datasets",
    "load_dataset",
    "load_seattle_temps",
    "load_seattle_weather",
    "load_sp500",
]

SP500_FILE = "sp500.csv"
SEATTLE_WEATHER_FILE = "seattle_weather.csv"
SEATTLE_TEMPS_FILE = "seattle_temps.csv"


def _data_file(filename: str) -> Any:
    """Return a readable handle (Traversable or Path) for a shipped CSV.

    In an installed wheel the CSVs are package data of ``tsrnn._data``; in a source
    checkout that package does not exist, and the files sit in ``<repo>/datasets``.
    """
    try:
        from importlib.resources import files

        resource = files("tsrnn._data").joinpath(filename)
        if resource.is_file():
            return resource
    except ModuleNotFoundError:
        pass
    path = Path(__file__).resolve().parent.parent / "datasets" / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"tsrnn dataset file {filename!r} not found in package 'tsrnn._data' nor at {path}; "
            "the installation is incomplete."
        )
    return path


def _read_csv(filename: str, index_col: str, **kwargs: Any) -> pd.DataFrame:
    with _data_file(filename).open("r", encoding="utf-8") as fh:
        frame = pd.read_csv(fh, index_col=index_col, **kwargs)
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index), name=index_col)
    return frame.sort_index()


def load_sp500() -> pd.DataFrame:
    """Load the S&P 500 index, daily, 1999-01-04 to 2018-12-31.

    Returns
    -------
    pandas.DataFrame
        5031 rows indexed by trading day (``DatetimeIndex`` named ``"date"``) with float
        columns ``open``, ``high``, ``low``, ``close``, ``adj_close`` (index points; for an
        index ``adj_close`` equals ``close``) and int64 ``volume``.

    Notes
    -----
    The index holds NYSE trading days only: weekends, exchange holidays and unscheduled
    closures (2001-09-11 to 09-14, Hurricane Sandy 2012-10-29/30, ...) are absent. That
    calendar is neither daily nor business-daily (``pandas.offsets.BDay`` would invent 185
    holidays), so ``index.freq`` is ``None``. :func:`tsrnn.windowing.make_windows` accepts
    such trading-day calendars and windows them over consecutive rows, and
    :func:`tsrnn.windowing.future_index` extends them with business days.

    Source: Yahoo Finance ``^GSPC`` via the ``arch`` package; see ``datasets/README.md``.

    Examples
    --------
    >>> from tsrnn.datasets import load_sp500
    >>> sp = load_sp500()
    >>> sp.shape, sp.index[0].date(), sp.index[-1].date(), sp.index.freq
    ((5031, 6), datetime.date(1999, 1, 4), datetime.date(2018, 12, 31), None)
    """
    frame = _read_csv(SP500_FILE, "date")
    prices = ["open", "high", "low", "close", "adj_close"]
    frame[prices] = frame[prices].astype(np.float64)
    frame["volume"] = frame["volume"].astype(np.int64)
    return frame


def load_seattle_weather() -> pd.DataFrame:
    """Load Seattle daily weather, 2012-01-01 to 2015-12-31.

    Returns
    -------
    pandas.DataFrame
        1461 rows, one per calendar day (``DatetimeIndex`` named ``"date"``, ``freq="D"``),
        with float columns ``precipitation`` (mm), ``temp_max`` and ``temp_min`` (degrees
        Celsius), ``wind`` (m/s) and the categorical column ``weather`` (``drizzle``,
        ``fog``, ``rain``, ``snow``, ``sun``).

    Notes
    -----
    No day is missing and no value is NaN. Units are not stated by the source package;
    those above are the ones the values imply (see ``datasets/README.md``).

    Source: NOAA, via the ``vega_datasets`` package.

    Examples
    --------
    >>> from tsrnn.datasets import load_seattle_weather
    >>> w = load_seattle_weather()
    >>> w.shape, w.index.freqstr
    ((1461, 5), 'D')
    """
    frame = _read_csv(SEATTLE_WEATHER_FILE, "date")
    numeric = ["precipitation", "temp_max", "temp_min", "wind"]
    frame[numeric] = frame[numeric].astype(np.float64)
    categories = sorted(frame["weather"].unique())
    frame["weather"] = frame["weather"].astype(pd.CategoricalDtype(categories))
    # Assigning freq validates that every calendar day is present.
    frame.index.freq = "D"
    return frame


def load_seattle_temps(*, fill_missing: bool = True) -> pd.DataFrame:
    """Load Seattle hourly temperature for 2010.

    Parameters
    ----------
    fill_missing : bool, default=True
        The source lacks one hour, 2010-03-14 03:00 (the US daylight-saving spring-forward
        date). If True, that hour is inserted and linearly interpolated between its
        neighbours (43.0 and 42.2 -> 42.6), giving a regular hourly index with
        ``freq="h"``. If False, the 8759 source rows are returned unchanged with
        ``freq=None``.

    Returns
    -------
    pandas.DataFrame
        8760 rows (8759 if ``fill_missing=False``) indexed by hour (``DatetimeIndex`` named
        ``"time"``, 2010-01-01 00:00 to 2010-12-31 23:00) with one float column ``temp``
        in degrees Fahrenheit.

    Notes
    -----
    The timestamps are naive local wall-clock hours: the spring-forward hour is missing and
    the autumn fall-back hour (2010-11-07 01:00) appears once, not twice. No other hour is
    missing or duplicated, and no value is NaN.

    Source: NOAA, via the ``vega_datasets`` package.

    Examples
    --------
    >>> from tsrnn.datasets import load_seattle_temps
    >>> t = load_seattle_temps()
    >>> t.shape, t.index.freqstr, float(t.loc["2010-03-14 03:00", "temp"])
    ((8760, 1), 'h', 42.6)
    """
    frame = _read_csv(SEATTLE_TEMPS_FILE, "time")
    frame["temp"] = frame["temp"].astype(np.float64)
    if not fill_missing:
        return frame
    full = pd.date_range(frame.index[0], frame.index[-1], freq="h", name="time")
    frame = frame.reindex(full)
    # Interpolated values keep the source's one-decimal precision.
    frame["temp"] = frame["temp"].interpolate(method="linear", limit_area="inside").round(1)
    return frame


@dataclass(frozen=True)
class _DatasetInfo:
    loader: Callable[[], pd.DataFrame]
    description: str
    frequency: str
    target: str


_REGISTRY: dict[str, _DatasetInfo] = {
    "sp500": _DatasetInfo(
        load_sp500,
        "S&P 500 index daily OHLC prices and volume (Yahoo Finance ^GSPC, via arch)",
        "trading days (freq=None)",
        "close",
    ),
    "seattle-weather": _DatasetInfo(
        load_seattle_weather,
        "Seattle daily precipitation, min/max temperature, wind and weather type (NOAA)",
        "D",
        "temp_max",
    ),
    "seattle-temps": _DatasetInfo(
        load_seattle_temps,
        "Seattle hourly temperature in degrees Fahrenheit (NOAA)",
        "h",
        "temp",
    ),
}

DATASET_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def _normalize_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"Dataset name must be a str; got {type(name).__name__}.")
    key = name.strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(
            f"Unknown dataset {name!r}; valid names are: {', '.join(repr(n) for n in DATASET_NAMES)}."
        )
    return key


def load_dataset(name: str) -> pd.DataFrame:
    """Load a shipped dataset by name.

    Parameters
    ----------
    name : {'sp500', 'seattle-weather', 'seattle-temps'}
        Dataset name; underscores are accepted in place of hyphens, case is ignored.

    Returns
    -------
    pandas.DataFrame
        The frame returned by the matching ``load_*`` function (with default arguments).

    Raises
    ------
    ValueError
        If ``name`` is not one of the valid names (the message lists them).
    TypeError
        If ``name`` is not a string.

    See Also
    --------
    list_datasets : names, sizes, time ranges and default targets.

    Examples
    --------
    >>> from tsrnn.datasets import load_dataset
    >>> load_dataset("seattle-temps").columns.tolist()
    ['temp']
    """
    return _REGISTRY[_normalize_name(name)].loader()


def default_target(name: str) -> str:
    """Return the column a dataset is forecast on by default.

    Parameters
    ----------
    name : {'sp500', 'seattle-weather', 'seattle-temps'}
        Dataset name, as for :func:`load_dataset`.

    Returns
    -------
    str
        ``'close'``, ``'temp_max'`` or ``'temp'``.
    """
    return _REGISTRY[_normalize_name(name)].target


def list_datasets() -> pd.DataFrame:
    """Describe the shipped datasets.

    Each dataset is loaded to report its actual size and range (a few tens of
    milliseconds in total).

    Returns
    -------
    pandas.DataFrame
        One row per dataset with columns ``name``, ``description``, ``frequency`` (a pandas
        frequency string, or ``'trading days (freq=None)'``), ``rows``, ``start``, ``end``
        (:class:`pandas.Timestamp`), ``target`` (default target column) and ``columns``
        (comma-separated column names).

    Examples
    --------
    >>> from tsrnn.datasets import list_datasets
    >>> list_datasets()["name"].tolist()
    ['sp500', 'seattle-weather', 'seattle-temps']
    """
    rows = []
    for name, info in _REGISTRY.items():
        frame = info.loader()
        rows.append(
            {
                "name": name,
                "description": info.description,
                "frequency": info.frequency,
                "rows": len(frame),
                "start": frame.index[0],
                "end": frame.index[-1],
                "target": info.target,
                "columns": ", ".join(map(str, frame.columns)),
            }
        )
    return pd.DataFrame(rows)
