"""Tests for tsrnn.datasets: shapes, columns, ranges and frequencies of the shipped CSVs."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsrnn import datasets
from tsrnn.datasets import (
    default_target,
    list_datasets,
    load_dataset,
    load_seattle_temps,
    load_seattle_weather,
    load_sp500,
)

DATA_DIR = Path(__file__).resolve().parent.parent / "datasets"


def test_sp500_shape_columns_range():
    sp = load_sp500()
    assert sp.shape == (5031, 6)
    assert sp.columns.tolist() == ["open", "high", "low", "close", "adj_close", "volume"]
    assert sp.index.name == "date"
    assert isinstance(sp.index, pd.DatetimeIndex)
    assert sp.index.is_monotonic_increasing and not sp.index.has_duplicates
    assert sp.index[0] == pd.Timestamp("1999-01-04")
    assert sp.index[-1] == pd.Timestamp("2018-12-31")
    # trading days: no freq fits (documented)
    assert sp.index.freq is None
    assert (sp.index.day_of_week < 5).all()
    assert sp["volume"].dtype == np.int64
    assert all(sp[c].dtype == np.float64 for c in ["open", "high", "low", "close", "adj_close"])
    assert sp.loc["1999-01-04", "open"] == pytest.approx(1229.23)
    assert sp.loc["2018-12-31", "close"] == pytest.approx(2506.85)
    assert (sp["high"] >= sp["low"]).all()
    assert not sp.isna().any().any()


def test_seattle_weather_shape_columns_freq():
    w = load_seattle_weather()
    assert w.shape == (1461, 5)
    assert w.columns.tolist() == ["precipitation", "temp_max", "temp_min", "wind", "weather"]
    assert w.index.name == "date"
    assert w.index.freqstr == "D"
    assert w.index[0] == pd.Timestamp("2012-01-01")
    assert w.index[-1] == pd.Timestamp("2015-12-31")
    assert isinstance(w["weather"].dtype, pd.CategoricalDtype)
    assert sorted(w["weather"].cat.categories) == ["drizzle", "fog", "rain", "snow", "sun"]
    assert w.loc["2012-01-01", "temp_max"] == pytest.approx(12.8)
    assert not w.isna().any().any()


def test_seattle_temps_filled_is_regular_hourly():
    t = load_seattle_temps()
    assert t.shape == (8760, 1)
    assert t.columns.tolist() == ["temp"]
    assert t.index.name == "time"
    assert t.index.freqstr == "h"
    assert t.index[0] == pd.Timestamp("2010-01-01 00:00")
    assert t.index[-1] == pd.Timestamp("2010-12-31 23:00")
    # the one missing source hour, linearly interpolated between 43.0 and 42.2
    assert t.loc["2010-03-14 03:00", "temp"] == pytest.approx(42.6)
    assert not t["temp"].isna().any()


def test_seattle_temps_raw_keeps_the_gap():
    raw = load_seattle_temps(fill_missing=False)
    assert raw.shape == (8759, 1)
    assert raw.index.freq is None
    full = pd.date_range("2010-01-01", "2010-12-31 23:00", freq="h")
    missing = full.difference(raw.index)
    assert missing.tolist() == [pd.Timestamp("2010-03-14 03:00")]
    assert not raw.index.has_duplicates


@pytest.mark.parametrize(
    "name, loader",
    [("sp500", load_sp500), ("seattle-weather", load_seattle_weather), ("seattle-temps", load_seattle_temps)],
)
def test_load_dataset_matches_loader(name, loader):
    pd.testing.assert_frame_equal(load_dataset(name), loader())
    pd.testing.assert_frame_equal(load_dataset(name.upper().replace("-", "_")), loader())


def test_load_dataset_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown dataset 'sp600'.*'sp500', 'seattle-weather', 'seattle-temps'"):
        load_dataset("sp600")
    with pytest.raises(TypeError, match="must be a str"):
        load_dataset(3)


def test_list_datasets():
    table = list_datasets()
    assert table["name"].tolist() == ["sp500", "seattle-weather", "seattle-temps"]
    assert set(table.columns) >= {"name", "description", "frequency", "rows", "start", "end", "target"}
    assert table["rows"].tolist() == [5031, 1461, 8760]
    assert table["target"].tolist() == ["close", "temp_max", "temp"]
    assert table.loc[2, "start"] == pd.Timestamp("2010-01-01")
    assert table.loc[0, "end"] == pd.Timestamp("2018-12-31")
    for _, row in table.iterrows():
        assert row["target"] in load_dataset(row["name"]).columns
        assert default_target(row["name"]) == row["target"]


def test_csv_files_are_compact():
    # rounded as the source: at most 2 decimals for prices, 1 for weather
    text = (DATA_DIR / "sp500.csv").read_text().splitlines()
    assert text[0] == "date,open,high,low,close,adj_close,volume"
    for line in text[1:50]:
        for field in line.split(",")[1:6]:
            assert len(field.partition(".")[2]) <= 2, line
    for name in ["seattle_weather.csv", "seattle_temps.csv"]:
        for line in (DATA_DIR / name).read_text().splitlines()[1:50]:
            for field in line.split(",")[1:]:
                if field[:1].isdigit() or field[:1] == "-":
                    assert len(field.partition(".")[2]) <= 1, line
    assert (DATA_DIR / "__init__.py").is_file()
    assert (DATA_DIR / "README.md").is_file()


def test_loads_from_installed_package_data(tmp_path, monkeypatch):
    """The wheel layout: CSVs are package data of ``tsrnn._data``, found via importlib.resources."""
    package_dir = tmp_path / "fake_data"
    package_dir.mkdir()
    (package_dir / "__init__.py").write_text("")
    shutil.copy(DATA_DIR / "seattle_weather.csv", package_dir / "seattle_weather.csv")
    # a marker value so the test proves the packaged file (not the checkout) was read
    csv = package_dir / "seattle_weather.csv"
    csv.write_text(csv.read_text().replace("2012-01-01,0.0,12.8", "2012-01-01,0.0,99.9", 1))
    spec = importlib.util.spec_from_file_location(
        "tsrnn._data", package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "tsrnn._data", module)
    assert load_seattle_weather().loc["2012-01-01", "temp_max"] == pytest.approx(99.9)
    # a file the package lacks falls back to the checkout
    assert len(load_sp500()) == 5031


def test_missing_file_message():
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        datasets._data_file("nope.csv")
