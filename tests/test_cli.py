"""End-to-end tests of the ``tsrnn`` command (subprocesses), plus its argument checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tsrnn
from tsrnn import cli
from tsrnn.cli import default_horizon, default_lookback, main

REPO_ROOT = Path(tsrnn.__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODELS = ["tsrnn", "naive", "seasonal_naive", "ridge"]
# Small, fast settings: two short fits of a tiny network.
FAST = ["--horizon", "6", "--lookback", "24", "--max-iter", "2", "--hidden-size", "8",
        "--backtest-origins", "20"]


def run_cli(*args: str, cwd: Path | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python -m tsrnn ARGS`` in a fresh interpreter, this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                      env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, "-m", "tsrnn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _assert_pngs(paths):
    for path in paths:
        assert path.is_file(), f"{path} not written"
        assert path.read_bytes()[:8] == PNG_MAGIC


# --------------------------------------------------------------------------- end to end
def test_forecast_shipped_dataset_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("forecast", "--dataset", "seattle-temps", *FAST, "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr

    # metrics table with the baselines, as markdown
    assert "| model | mae | rmse | smape | mase |" in proc.stdout
    for model in MODELS:
        assert f"| {model} |" in proc.stdout or f"| **{model}** |" in proc.stdout
    assert "Prediction interval:" in proc.stdout
    # progress on stderr: stages, the backtest callback, epoch lines
    assert "backtest: 20/20 origins" in proc.stderr
    assert "Epoch 1/2" in proc.stderr and "Epoch 1/2" not in proc.stdout
    assert "Traceback" not in proc.stderr

    # the forecast CSV: 6 hourly timestamps right after the data end, with the interval
    csv = out / "seattle-temps_forecast.csv"
    forecast = pd.read_csv(csv, index_col=0, parse_dates=True)
    assert list(forecast.columns) == ["temp", "lower", "upper"]
    assert forecast.index.name == "time"
    expected = pd.date_range("2011-01-01 00:00", periods=6, freq="h")
    pd.testing.assert_index_equal(forecast.index, expected, check_names=False,
                                  check_freq=False)
    assert (forecast["lower"] <= forecast["temp"]).all()
    assert (forecast["temp"] <= forecast["upper"]).all()
    assert np.isfinite(forecast.to_numpy()).all()

    metrics = pd.read_csv(out / "seattle-temps_metrics.csv", index_col=0)
    assert list(metrics.index) == MODELS
    assert list(metrics.columns) == ["mae", "rmse", "smape", "mase"]
    backtest_rows = pd.read_csv(out / "seattle-temps_backtest.csv")
    assert len(backtest_rows) == 20 * 6
    _assert_pngs([out / "seattle-temps_forecast.png",
                  out / "seattle-temps_backtest_errors.png"])
    # every written path is printed
    for name in ["seattle-temps_forecast.csv", "seattle-temps_forecast.png",
                 "seattle-temps_backtest_errors.png"]:
        assert str(out / name) in proc.stdout


def test_forecast_csv_input_with_exog(tmp_path):
    n = 400
    stamps = pd.date_range("2024-03-01", periods=n, freq="h")
    rng = np.random.default_rng(0)
    temp = 10 + 5 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 0.3, n)
    frame = pd.DataFrame({
        "ts": stamps.strftime("%Y-%m-%d %H:%M"),
        "load": np.round(50 + 2 * temp + rng.normal(0, 1, n), 3),
        "temperature": np.round(temp, 3),
        "site": "north",  # a text column the command must leave alone
    })
    path = tmp_path / "load.csv"
    frame.to_csv(path, index=False)

    proc = run_cli("forecast", "--csv", str(path), "--time-column", "ts", "--target", "load",
                   "--exog", "temperature", *FAST, "--output-dir", "out", "--quiet",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Epoch" not in proc.stderr  # --quiet
    assert "| naive |" in proc.stdout and "| seasonal_naive |" in proc.stdout

    forecast = pd.read_csv(tmp_path / "out" / "load_forecast.csv", index_col="ts",
                           parse_dates=True)
    assert list(forecast.columns) == ["load", "lower", "upper"]
    pd.testing.assert_index_equal(
        forecast.index, pd.date_range(stamps[-1], periods=7, freq="h")[1:], check_names=False,
        check_freq=False,
    )
    _assert_pngs([tmp_path / "out" / "load_forecast.png",
                  tmp_path / "out" / "load_backtest_errors.png"])


def test_datasets_command():
    proc = run_cli("datasets")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:7] == ["name", "frequency", "series", "rows", "start", "end",
                                    "default"]
    table = "\n".join(lines)
    for name, rows, target in [("sp500", "5031", "close"),
                               ("seattle-weather", "1461", "temp_max"),
                               ("seattle-temps", "8760", "temp")]:
        row = next(line for line in lines if line.startswith(name + " "))
        assert rows in row.split() and target in row.split()
    assert "2010-01-01 00:00" in table and "1999-01-04" in table
    panel = next(line for line in lines if line.startswith("us-employment "))
    assert panel.split()[2] == "22"  # series
    # the first hint is a single series (it used to name a panel), the second a panel
    assert "forecast --dataset seattle-temps" in lines[-2]
    assert lines[-1].startswith("A panel") and "--dataset us-employment" in lines[-1]


def test_bad_argument_in_subprocess_exits_2_without_traceback():
    proc = run_cli("forecast", "--dataset", "seattle_tempz")
    assert proc.returncode == 2
    assert "Unknown dataset 'seattle_tempz'" in proc.stderr
    assert "'seattle-temps'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


# --------------------------------------------------------------------------- in process
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["forecast"], "one of the arguments --dataset --csv is required"),
        (["forecast", "--dataset", "nope"], "valid names are: 'sp500', 'seattle-weather'"),
        (["forecast", "--dataset", "sp500", "--target", "price"],
         "column 'price' is not in dataset 'sp500'; its columns are ['open', 'high'"),
        (["forecast", "--dataset", "seattle-weather", "--exog", "wind,fog"],
         "--exog: column 'fog' is not in dataset 'seattle-weather'"),
        (["forecast", "--dataset", "seattle-weather", "--exog", "weather"],
         "column 'weather' of dataset 'seattle-weather' is not numeric"),
        (["forecast", "--dataset", "sp500", "--horizon", "0"],
         "argument --horizon: expected a positive integer; got 0"),
        (["forecast", "--dataset", "sp500", "--coverage", "1.5"],
         "argument --coverage: expected a probability in (0, 1)"),
        (["forecast", "--dataset", "sp500", "--initial", "1.5"],
         "argument --initial: expected a fraction in (0, 1)"),
        (["forecast", "--dataset", "sp500", "--cell", "transformer"],
         "argument --cell: invalid choice: 'transformer'"),
        (["forecast", "--dataset", "sp500", "--csv", "x.csv"],
         "not allowed with argument --dataset"),
        (["forecast", "--dataset", "sp500", "--time-column", "date"],
         "--time-column applies to --csv input only"),
        (["forecast", "--csv", "does-not-exist.csv"], "--csv: no such file: does-not-exist.csv"),
        (["forecast", "--dataset", "seattle-weather", "--horizon", "400", "--lookback", "300"],
         "--initial 0.75 gives a backtest training span of 1095 of 1461 rows"),
        (["forecast", "--dataset", "seattle-weather", "--lookback", "1500"],
         "need at least 1509 rows; the data have 1461"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_errors_name_the_columns(tmp_path, capsys):
    two = _write_csv(tmp_path / "two.csv",
                     "date,a,b\n2024-01-01,1,2\n2024-01-02,3,4\n2024-01-03,5,6\n")
    assert main(["forecast", "--csv", str(two)]) == 2
    assert "2 numeric columns ['a', 'b']; say which one to forecast with --target" in (
        capsys.readouterr().err)
    assert main(["forecast", "--csv", str(two), "--target", "c"]) == 2
    assert "column 'c' is not in" in capsys.readouterr().err
    assert main(["forecast", "--csv", str(two), "--time-column", "when"]) == 2
    assert "'when' is not a column of" in capsys.readouterr().err
    assert main(["forecast", "--csv", str(two), "--time-column", "a", "--target", "b"]) == 2
    assert "column 'a' of" in capsys.readouterr().err
    words = _write_csv(tmp_path / "words.csv", "when,a\nyesterday,1\ntoday,2\n")
    assert main(["forecast", "--csv", str(words)]) == 2
    assert "cannot read column 'when'" in capsys.readouterr().err


def test_gaps_need_fill_then_work(tmp_path, capsys):
    stamps = pd.date_range("2024-01-01", periods=300, freq="h")
    values = np.sin(np.arange(300) / 5.0) + 0.01 * np.arange(300)
    frame = pd.DataFrame({"time": stamps, "y": values}).drop(index=[150, 151])
    path = tmp_path / "gappy.csv"
    frame.to_csv(path, index=False)
    common = ["forecast", "--csv", str(path), "--horizon", "4", "--lookback", "12",
              "--max-iter", "1", "--hidden-size", "4", "--no-backtest", "--quiet",
              "--output-dir", str(tmp_path / "out")]
    assert main(common) == 2
    err = capsys.readouterr().err
    assert "2 missing timestamp(s)" in err and "--fill interpolate" in err
    assert main([*common, "--fill", "interpolate"]) == 0
    out = capsys.readouterr().out
    assert "## Backtest" not in out  # --no-backtest
    forecast = pd.read_csv(tmp_path / "out" / "gappy_forecast.csv", index_col=0)
    assert len(forecast) == 4
    assert not (tmp_path / "out" / "gappy_backtest_errors.png").exists()


def test_no_interval_with_coverage_none(tmp_path, capsys):
    argv = ["forecast", "--dataset", "seattle-weather", "--horizon", "3", "--lookback", "9",
            "--max-iter", "1", "--hidden-size", "4", "--coverage", "none",
            "--backtest-origins", "5", "--quiet", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Prediction interval" not in out and "| ridge |" in out
    forecast = pd.read_csv(tmp_path / "seattle-weather_forecast.csv", index_col="date")
    assert list(forecast.columns) == ["temp_max"]
    assert list(forecast.index) == ["2016-01-01", "2016-01-02", "2016-01-03"]


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert "forecast" in capsys.readouterr().out
    assert main(["forecast", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ["--dataset", "--csv", "--horizon", "--lookback", "--max-iter",
                   "--coverage", "--backtest-origins", "--output-dir", "--quiet", "--exog"]:
        assert option in text
    assert main(["--version"]) == 0
    assert tsrnn.__version__ in capsys.readouterr().out


# --------------------------------------------------------------------------- defaults
@pytest.mark.parametrize(
    ("freq", "periods", "expected"),
    [("h", 100, 24), ("D", 100, 7), ("B", 100, 5), ("MS", 40, 12), ("QS", 20, 4),
     ("W", 120, 52), ("s", 100, cli.FALLBACK_HORIZON)],
)
def test_default_horizon_is_one_season(freq, periods, expected):
    index = pd.date_range("2020-01-06", periods=periods, freq=freq)
    assert default_horizon(index) == expected


def test_default_lookback_is_capped():
    assert default_lookback(24, 8760) == 72
    assert default_lookback(5, 5031) == 15
    assert default_lookback(100, 10_000) == cli.MAX_DEFAULT_LOOKBACK
    assert default_lookback(24, 100) == 20  # a fifth of the rows
    assert default_lookback(1, 3) == 2


# --------------------------------------------------------------------------- new options
def _hourly_panel_csv(path: Path, n=240) -> Path:
    rng = np.random.default_rng(1)
    rows = []
    for store, level in (("north", 10.0), ("south", 40.0)):
        stamps = pd.date_range("2024-01-01", periods=n, freq="h")
        sales = level + 3 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 0.3, n)
        rows.append(pd.DataFrame({"when": stamps, "store": store, "sales": sales}))
    pd.concat(rows).to_csv(path, index=False)
    return path


QUICK = ["--horizon", "6", "--lookback", "24", "--max-iter", "1", "--hidden-size", "4"]


def test_no_command_prints_the_help(capsys):
    assert main([]) == 0
    assert "forecast" in capsys.readouterr().out
    proc = run_cli()
    assert proc.returncode == 0 and "<command>" in proc.stdout


def test_panel_csv_forecast_save_and_predict_without_refit(tmp_path, capsys):
    path = _hourly_panel_csv(tmp_path / "shops.csv")
    model = tmp_path / "model.npz"
    argv = ["forecast", "--csv", str(path), "--time-column", "when", "--id-column", "store",
            *QUICK, "--backtest-origins", "5", "--quiet", "--output-dir",
            str(tmp_path / "out"), "--save", str(model)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: nothing but errors
    assert "10 forecasts (origins of 2 series)" in captured.out
    forecast = pd.read_csv(tmp_path / "out" / "shops_forecast.csv")
    assert list(forecast.columns) == ["store", "when", "sales", "lower", "upper"]
    assert forecast.groupby("store").size().to_dict() == {"north": 6, "south": 6}
    assert model.is_file()
    newer = pd.read_csv(path)
    newer = newer[newer["when"] < "2024-01-08"]
    newer.to_csv(tmp_path / "newer.csv", index=False)
    assert main(["predict", "--model", str(model), "--csv", str(tmp_path / "newer.csv"),
                 "--time-column", "when", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["forecast"]) == 12
    assert report["forecast"][0]["when"].startswith("2024-01-08 00:00")


def test_json_report_has_the_metrics_and_the_forecast(tmp_path, capsys):
    argv = ["forecast", "--dataset", "seattle-temps", *QUICK, "--backtest-origins", "6",
            "--json", "--quiet", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backtest"]["origins"] == 6
    assert set(report["backtest"]["metrics"]) == set(MODELS)
    assert len(report["forecast"]) == 6 and "temp" in report["forecast"][0]


def test_day_first_dates_are_read_the_regular_way(tmp_path, capsys):
    months = pd.date_range("1990-01-01", periods=144, freq="MS")
    values = 100 + 10 * np.sin(np.arange(144) * np.pi / 6) + np.arange(144) * 0.5
    path = tmp_path / "monthly.csv"
    pd.DataFrame({"date": months.strftime("%d/%m/%Y"), "y": values}).to_csv(path, index=False)
    argv = ["forecast", "--csv", str(path), "--horizon", "6", "--lookback", "12",
            "--max-iter", "1", "--hidden-size", "4", "--no-backtest",
            "--output-dir", str(tmp_path / "out")]
    assert main(argv) == 0
    assert "day-first" in capsys.readouterr().err
    forecast = pd.read_csv(tmp_path / "out" / "monthly_forecast.csv", index_col=0,
                           parse_dates=True)
    assert forecast.index[0] == pd.Timestamp("2002-01-01")
    assert main([*argv, "--date-format", "%d/%m/%Y", "--quiet"]) == 0
    capsys.readouterr()
    assert main([*argv, "--date-format", "%Y-%m-%d"]) == 2
    assert "--date-format: column 'date'" in capsys.readouterr().err


def test_freq_aggregates_and_a_large_fill_is_flagged(tmp_path, capsys):
    stamps = pd.date_range("2024-01-01", periods=960, freq="30min")
    frame = pd.DataFrame({"t": stamps, "kwh": 1.0 + np.sin(np.arange(960) / 10.0) ** 2})
    path = tmp_path / "meter.csv"
    frame.to_csv(path, index=False)
    common = ["forecast", "--csv", str(path), *QUICK, "--no-backtest",
              "--output-dir", str(tmp_path / "out")]
    assert main([*common, "--freq", "h", "--agg", "sum", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "480 rows" not in out  # the report shows the forecast, not the row count
    forecast = pd.read_csv(tmp_path / "out" / "meter_forecast.csv", index_col=0,
                           parse_dates=True)
    assert (forecast.index[1] - forecast.index[0]) == pd.Timedelta(hours=1)
    sparse = frame.iloc[::3]  # every third row: --fill would invent two thirds
    sparse.to_csv(path, index=False)
    assert main([*common, "--freq", "30min", "--fill", "interpolate"]) == 0
    assert "invented" in capsys.readouterr().err


def test_outputs_are_checked_before_fitting_and_errors_speak_in_options(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    started = time.perf_counter()
    assert main(["forecast", "--dataset", "seattle-temps", *QUICK,
                 "--output-dir", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "--output-dir: cannot write into" in err
    assert time.perf_counter() - started < 60  # refused before any fit (not timed tight)
    assert main(["forecast", "--dataset", "seattle-temps", *QUICK, "--no-backtest",
                 "--output-dir", str(tmp_path), "--save", str(blocker / "m.npz")]) == 2
    assert "--save: cannot write into" in capsys.readouterr().err
    path = _hourly_panel_csv(tmp_path / "long.csv")
    assert main(["forecast", "--csv", str(path), "--time-column", "when", "--target",
                 "sales", *QUICK, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--id-column" in err and "groupby" not in err and "fill=" not in err


def test_help_imports_nothing_heavy():
    # `tsrnn --help` answers at once: no NumPy, Numba, pandas or scikit-learn behind it
    script = ("import sys, contextlib, io\n"
              "from tsrnn.cli import main\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              "    code = main(['--help'])\n"
              "heavy = sorted(m for m in ('numpy', 'numba', 'pandas', 'sklearn', 'scipy')\n"
              "               if m in sys.modules)\n"
              "print(code, heavy)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.split(None, 1) == ["0", "[]\n"], done.stdout + done.stderr
    import tsrnn
    assert tsrnn.RNNRegressor.__module__ == "tsrnn.estimator"  # the lazy names still resolve
