"""Regenerate the CSV files in this folder from data shipped inside installed packages.

Run from the repository root with the development environment::

    python datasets/make_datasets.py

Sources (no network access: both packages ship these files in their wheels):

* ``arch`` (``arch.data.sp500.load()``, file ``arch/data/sp500/sp500.csv.gz``) -> ``sp500.csv``
* ``vega_datasets`` (``local_data.seattle_weather()``, file ``_data/seattle-weather.csv``)
  -> ``seattle_weather.csv``
* ``vega_datasets`` (``local_data.seattle_temps()``, file ``_data/seattle-temps.csv``)
  -> ``seattle_temps.csv``

This script is a maintenance tool: the ``tsrnn`` package never imports it, and it needs
``arch`` and ``vega_datasets``, which are not dependencies of ``tsrnn``.
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


def main() -> None:
    """Write the three CSV files next to this script."""
    make_sp500().to_csv(HERE / "sp500.csv", date_format="%Y-%m-%d")
    make_seattle_weather().to_csv(HERE / "seattle_weather.csv", date_format="%Y-%m-%d")
    make_seattle_temps().to_csv(HERE / "seattle_temps.csv", date_format="%Y-%m-%d %H:%M")
    for name in ("sp500.csv", "seattle_weather.csv", "seattle_temps.csv"):
        path = HERE / name
        print(f"{name}: {sum(1 for _ in path.open()) - 1} rows, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
