"""The ``tsrnn`` command: forecast a shipped dataset or a CSV file from the shell.

Usage::

    tsrnn datasets
    tsrnn forecast --dataset seattle-temps --horizon 24
    tsrnn forecast --csv load.csv --time-column timestamp --target load --exog temperature

``tsrnn forecast`` fits an :class:`~tsrnn.RNNForecaster` on the whole series and
forecasts the next ``horizon`` steps with a prediction interval, backtests the same
configuration (fitted once on the first ``--initial`` share of the rows, evaluated at
every later origin) beside naive, seasonal-naive and ridge baselines, and writes into
``--output-dir``:

* ``<name>_forecast.csv``: the forecast (timestamp, point forecast, lower, upper);
* ``<name>_metrics.csv`` and ``<name>_backtest.csv``: the backtest table and every
  backtest forecast;
* ``<name>_forecast.png`` and ``<name>_backtest_errors.png``: plots (with matplotlib).

Results (metrics table, forecast, written paths) go to stdout; progress (stages, the
network's epoch lines, the backtest's progress) to stderr, so ``tsrnn forecast ... >
report.md`` keeps a clean report. Mistakes in the arguments or the data end with a
one-line message on stderr and exit status 2.

Defaults: ``--max-iter 20`` epochs (early stopping may end sooner), ``--batch-size
128``, LSTM with 32 hidden units, lookback three horizons, every backtest origin after
the first 75% of the rows. ``tsrnn forecast --dataset seattle-temps --horizon 24`` (two
fits of about 6500 and 8700 windows of 72 steps) takes about 15 s on two idle cores with
the current kernels (about 0.3 s per epoch; shared, busy machines can be several times
slower), leaving a wide margin under a two-minute budget. More epochs did not help
there: backtest MAE 0.0688 / 0.0687 / 0.0693 / 0.0694 with 8 / 15 / 30 / 60 epochs,
because the forecaster's linear highway carries most of the signal. Raise ``--max-iter``
for harder series.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

__all__ = ["CLIError", "build_parser", "default_horizon", "default_lookback", "main"]

PROG = "tsrnn"
#: Exit status for mistakes in the arguments or the input data (as argparse uses).
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130

# Training defaults of the command, chosen to stay well within 2-3 minutes on 2 busy
# cores for the shipped datasets (see the module docstring).
DEFAULT_CELL = "lstm"
DEFAULT_HIDDEN_SIZE = 32
DEFAULT_MAX_ITER = 20
DEFAULT_BATCH_SIZE = 128
DEFAULT_COVERAGE = 0.9
DEFAULT_INITIAL = 0.75
DEFAULT_SEED = 0
DEFAULT_OUTPUT_DIR = "tsrnn-output"
#: Longest default lookback: BPTT time grows linearly with it; 168 = a week of hours.
MAX_DEFAULT_LOOKBACK = 168
#: Horizon when the data have no season to go by (irregular, trading days aside).
FALLBACK_HORIZON = 10
#: Longest default horizon (weekly data would otherwise forecast a whole year).
MAX_DEFAULT_HORIZON = 52


class CLIError(Exception):
    """A mistake in the command-line arguments or the input data (exit status 2)."""


class _ArgumentParser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of exiting, so ``main`` can return a status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(self, message)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to option help unless X is None or the help names a default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" not in text and action.default is not None and action.default is not False
                and action.default is not argparse.SUPPRESS and action.option_strings):
            text += " (default: %(default)s)"
        return text


class _UsageError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


# ---------------------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------------------
def _number_type(convert: Callable[[str], Any], accept: Callable[[Any], bool],
                 expected: str) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert`` the text, then require ``accept(value)``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text}")
        return value
    return parse


_positive_int = _number_type(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number_type(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number_type(float, lambda v: v > 0 and np.isfinite(v), "a positive number")


def _coverage(text: str) -> float | None:
    if text.strip().lower() in ("none", "off", "0"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a probability in (0, 1) or 'none'; got {text!r}"
        ) from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a probability in (0, 1) (e.g. 0.9) or 'none'; got {text}"
        )
    return value


def _initial(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction in (0, 1) or a number of rows; got {text!r}"
        ) from None
    if 0 < value < 1:
        return value
    if value >= 1 and value == int(value):
        return int(value)
    raise argparse.ArgumentTypeError(
        f"expected a fraction in (0, 1) (e.g. 0.75) or a whole number of rows; got {text}"
    )


def _column_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    names = [name for name in names if name]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return names


# ---------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """Build the ``tsrnn`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        Parser with the sub-commands ``datasets`` and ``forecast``. Its ``error`` raises
        an internal exception instead of exiting; :func:`main` turns it into exit status 2.
    """
    from tsrnn import __version__

    parser = _ArgumentParser(
        prog=PROG,
        description="Numba-accelerated recurrent networks for time-series forecasting.",
        epilog="Run 'tsrnn <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="<command>",
                                     parser_class=_ArgumentParser)
    commands.required = True

    commands.add_parser("datasets", help="list the shipped datasets",
                        description="List the datasets shipped with tsrnn.")

    wu = commands.add_parser(
        "warmup", help="compile the kernels ahead of time (e.g. in a Docker build)",
        description=("Compile (or load from Numba's cache) every kernel that fit and "
                     "predict use, so that later processes start warm; prints where the "
                     "compiled code is cached (NUMBA_CACHE_DIR chooses the folder)."),
        formatter_class=_HelpFormatter)
    wu.add_argument("--dtype", dest="dtypes", action="append",
                    choices=("float32", "float64"),
                    help="dtype to compile for; repeat for both (default: float32)")

    fc = commands.add_parser(
        "forecast",
        help="fit, backtest against baselines and forecast a series",
        description=(
            "Fit an RNNForecaster on a shipped dataset or a CSV file, forecast the next "
            "HORIZON steps with a prediction interval, backtest it beside naive, "
            "seasonal-naive and ridge baselines, and write the forecast (CSV) and plots "
            "(PNG) to the output directory."
        ),
        formatter_class=_HelpFormatter,
    )
    data = fc.add_argument_group("data")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="NAME",
                        help="a shipped dataset (see 'tsrnn datasets')")
    source.add_argument("--csv", metavar="PATH", help="a CSV file with a time column")
    data.add_argument("--target", metavar="COLUMN",
                      help="column to forecast (default: the dataset's default target; "
                           "for a CSV, its only numeric column)")
    data.add_argument("--time-column", metavar="COLUMN",
                      help="timestamp column of the CSV (default: its first column)")
    data.add_argument("--exog", type=_column_list, metavar="A,B",
                      help="comma-separated past covariates (observed up to the forecast "
                           "origin)")
    data.add_argument("--fill", choices=("ffill", "interpolate"),
                      help="repair missing timestamps and NaNs instead of stopping")

    model = fc.add_argument_group("model")
    model.add_argument("--horizon", type=_positive_int,
                       help="steps to forecast (default: one season: 24 hourly, 7 daily, "
                            f"5 trading days, 12 monthly; else {FALLBACK_HORIZON})")
    model.add_argument("--lookback", type=_positive_int,
                       help="input window in steps (default: 3 x horizon, at most "
                            f"{MAX_DEFAULT_LOOKBACK} and a fifth of the rows)")
    model.add_argument("--cell", choices=("lstm", "gru", "rnn"), default=DEFAULT_CELL,
                       help="recurrent cell")
    model.add_argument("--hidden-size", type=_positive_int, default=DEFAULT_HIDDEN_SIZE,
                       help="hidden units")
    model.add_argument("--max-iter", type=_positive_int, default=DEFAULT_MAX_ITER,
                       help="training epochs (at most; early stopping may end sooner)")
    model.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE,
                       help="minibatch size")
    model.add_argument("--learning-rate", type=_positive_float, default=None,
                       help="Adam step size (default: the forecaster's, 0.003)")
    model.add_argument("--coverage", type=_coverage, default=DEFAULT_COVERAGE,
                       help="prediction-interval coverage, or 'none' for no interval")
    model.add_argument("--seed", type=_non_negative_int, default=DEFAULT_SEED,
                       help="random seed (same seed, same results)")

    bt = fc.add_argument_group("backtest")
    bt.add_argument("--initial", type=_initial, default=DEFAULT_INITIAL,
                    help="training span before the first backtest origin: a fraction of "
                         "the rows or a number of rows")
    bt.add_argument("--backtest-origins", type=_positive_int, default=None, metavar="N",
                    help="evaluate only the last N origins (default: every origin after "
                         "the training span, one horizon apart)")
    bt.add_argument("--no-backtest", action="store_true",
                    help="skip the backtest (one fit instead of two)")

    out = fc.add_argument_group("output")
    out.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, metavar="DIR",
                     help="where the CSV and PNG files go (created if needed)")
    out.add_argument("--quiet", action="store_true",
                     help="no progress output (results and paths are still printed)")
    out.add_argument("--traceback", action="store_true",
                     help="show the full traceback of an error (for bug reports)")
    return parser


# ---------------------------------------------------------------------------------------
# Defaults that depend on the data
# ---------------------------------------------------------------------------------------
def default_horizon(index: pd.DatetimeIndex) -> int:
    """Default forecast horizon: one seasonal cycle of the data.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Timestamps of the series.

    Returns
    -------
    int
        24 for hourly, 7 for daily, 5 for trading-day, 12 for monthly, 4 for quarterly
        data, 52 for weekly; ``FALLBACK_HORIZON`` when the data show no season.
    """
    from tsrnn.forecasting import seasonal_period

    season = seasonal_period(index)
    if season <= 1:
        return FALLBACK_HORIZON
    return int(min(season, MAX_DEFAULT_HORIZON))


def default_lookback(horizon: int, n_rows: int) -> int:
    """Default input window: three horizons, capped.

    Parameters
    ----------
    horizon : int
        Forecast horizon in steps.
    n_rows : int
        Rows of the series.

    Returns
    -------
    int
        ``3 * horizon``, at most ``MAX_DEFAULT_LOOKBACK`` (training time grows linearly
        with the window) and at most a fifth of the rows (so enough windows remain to
        train, calibrate the interval and backtest), and at least 2.
    """
    return int(max(2, min(3 * horizon, MAX_DEFAULT_LOOKBACK, n_rows // 5)))


# ---------------------------------------------------------------------------------------
# Output helpers
# ---------------------------------------------------------------------------------------
@dataclass
class _Console:
    """Results to stdout, progress to stderr (silenced by --quiet)."""

    quiet: bool
    out: TextIO
    err: TextIO

    def result(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def progress(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.err, flush=True)

    def note(self, text: str) -> None:
        print(f"{PROG}: {text}", file=self.err, flush=True)


def _format_time(stamp: pd.Timestamp, daily: bool) -> str:
    return stamp.strftime("%Y-%m-%d") if daily else stamp.strftime("%Y-%m-%d %H:%M")


def _is_daily(index: pd.DatetimeIndex) -> bool:
    return bool(len(index)) and bool((index == index.normalize()).all())


@contextlib.contextmanager
def _training_output(console: _Console):
    """Send the regressor's epoch lines (stdout) to stderr; collect warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(console.err):
            yield
    from sklearn.exceptions import ConvergenceWarning

    seen = set()
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            continue  # reported once, in words, by the caller (see _max_iter_note)
        if issubclass(w.category, (DeprecationWarning, FutureWarning)):
            continue  # addressed to developers, not to users of the command
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            console.note(f"warning: {text}")


# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------
def _cmd_datasets(args: argparse.Namespace, console: _Console) -> int:
    from tsrnn.datasets import list_datasets

    table = list_datasets()
    rows = []
    for _, row in table.iterrows():
        daily = row["start"] == row["start"].normalize() and row["end"] == row["end"].normalize()
        rows.append({
            "name": row["name"],
            "frequency": row["frequency"],
            "rows": str(row["rows"]),
            "start": _format_time(row["start"], daily),
            "end": _format_time(row["end"], daily),
            "default target": row["target"],
            "columns": row["columns"],
        })
    header = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in header}
    right = {"rows"}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(cells[h].rjust(widths[h]) if h in right else cells[h].ljust(widths[h])
                         for h in header).rstrip()

    console.result(line({h: h for h in header}))
    console.result(line({h: "-" * widths[h] for h in header}))
    for row in rows:
        console.result(line(row))
    console.result()
    console.result(f"Forecast one with: {PROG} forecast --dataset {rows[-1]['name']} "
                   "--horizon 24")
    return 0


def _load_csv(path: str, time_column: str | None) -> pd.DataFrame:
    file = Path(path)
    if not file.is_file():
        raise CLIError(f"--csv: no such file: {path}")
    try:
        raw = pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CLIError(f"--csv: cannot read {path} as CSV: {exc}") from None
    if raw.shape[1] < 2:
        raise CLIError(
            f"--csv: {path} has {raw.shape[1]} column(s) {list(raw.columns)}; it needs a "
            "time column and at least one value column."
        )
    given = time_column
    if time_column is None:
        time_column = str(raw.columns[0])
    elif time_column not in raw.columns:
        raise CLIError(
            f"--time-column: {time_column!r} is not a column of {path}; its columns are "
            f"{list(map(str, raw.columns))}."
        )
    column = raw[time_column]
    hint = "; name the time column with --time-column." if given is None else "."
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise CLIError(
            f"--time-column: column {time_column!r} of {path} holds numbers, not "
            f"timestamps{hint}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
            stamps = pd.to_datetime(column)
    except (ValueError, TypeError) as exc:
        raise CLIError(
            f"--time-column: cannot read column {time_column!r} of {path} as timestamps "
            f"({exc}){hint}"
        ) from None
    if stamps.isna().any():
        k = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise CLIError(
            f"--time-column: column {time_column!r} of {path} has an empty timestamp in data "
            f"row {k + 1}."
        )
    frame = raw.drop(columns=[time_column])
    frame.index = pd.DatetimeIndex(stamps, name=time_column)
    return frame


def _numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])]


def _check_columns(frame: pd.DataFrame, names: list[str], option: str, source: str) -> None:
    columns = list(map(str, frame.columns))
    for name in names:
        if name not in frame.columns:
            raise CLIError(
                f"{option}: column {name!r} is not in {source}; its columns are {columns}."
            )
        if not pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(
                frame[name]):
            raise CLIError(
                f"{option}: column {name!r} of {source} is not numeric (dtype "
                f"{frame[name].dtype}); numeric columns are {_numeric_columns(frame)}."
            )


def _fill_frame(frame: pd.DataFrame, fill: str) -> pd.DataFrame:
    """Reindex to the regular grid and fill NaNs, with make_windows' own rules."""
    from tsrnn.windowing import make_windows

    columns = list(frame.columns)
    windows = make_windows(frame, 1, 0, features=columns, fill=fill)
    return pd.DataFrame(windows.X[:, 0, :], index=windows.index, columns=columns)


def _load_data(args: argparse.Namespace, console: _Console) -> tuple[pd.DataFrame, str, str]:
    """The frame (target + exog columns), the target and a name for the output files."""
    if args.dataset is not None:
        from tsrnn.datasets import default_target, load_dataset

        try:
            frame = load_dataset(args.dataset)
            target = args.target or default_target(args.dataset)
        except ValueError as exc:
            raise CLIError(f"--dataset: {exc} See '{PROG} datasets'.") from None
        name = args.dataset.strip().lower().replace("_", "-")
        source = f"dataset {name!r}"
        if args.time_column is not None:
            raise CLIError("--time-column applies to --csv input only.")
    else:
        frame = _load_csv(args.csv, args.time_column)
        name = Path(args.csv).stem
        source = args.csv
        if args.target is not None:
            target = args.target
        else:
            numeric = _numeric_columns(frame)
            if len(numeric) != 1:
                raise CLIError(
                    f"--target: {source} has {len(numeric)} numeric columns {numeric}; say "
                    "which one to forecast with --target."
                )
            target = numeric[0]
    exog = list(args.exog or [])
    _check_columns(frame, [target], "--target", source)
    _check_columns(frame, exog, "--exog", source)
    if target in exog:
        raise CLIError(f"--exog: the target {target!r} cannot also be a covariate.")
    if len(set(exog)) != len(exog):
        raise CLIError(f"--exog: a column is listed twice in {exog}.")
    frame = frame[[target, *exog]].astype(np.float64)
    if not frame.index.is_monotonic_increasing:
        console.note(f"note: sorted the rows of {source} by time.")
        frame = frame.sort_index(kind="stable")
    if args.fill is not None:
        frame = _fill_frame(frame, args.fill)
    return frame, target, name


def _max_iter_note(console: _Console, forecaster: Any, stage: str) -> None:
    regressor = forecaster.regressor_
    if regressor.n_iter_ >= regressor.max_iter:
        console.progress(
            f"  ({stage}: used all {regressor.max_iter} epochs of --max-iter; more epochs "
            "may fit better)"
        )


def _cmd_forecast(args: argparse.Namespace, console: _Console) -> int:
    from tsrnn.forecasting import RNNForecaster, backtest, seasonal_period

    frame, target, name = _load_data(args, console)
    n_rows = len(frame)
    horizon = args.horizon if args.horizon is not None else default_horizon(frame.index)
    lookback = (args.lookback if args.lookback is not None
                else default_lookback(horizon, n_rows))
    if lookback + horizon + 2 > n_rows:
        raise CLIError(
            f"--lookback {lookback} + --horizon {horizon} need at least "
            f"{lookback + horizon + 2} rows; the data have {n_rows}. Use a shorter lookback "
            "or horizon."
        )
    daily = _is_daily(frame.index)
    exog = list(args.exog or [])
    console.progress(
        f"{PROG} forecast: {name}, target {target!r}"
        + (f", past covariates {exog}" if exog else "")
        + f", {n_rows} rows {_format_time(frame.index[0], daily)} .. "
          f"{_format_time(frame.index[-1], daily)}"
    )
    console.progress(
        f"model: {args.cell} hidden_size={args.hidden_size}, lookback={lookback}, "
        f"horizon={horizon}, max_iter={args.max_iter}, batch_size={args.batch_size}, "
        f"coverage={args.coverage}, seed={args.seed}"
    )
    forecaster = RNNForecaster(
        lookback=lookback, horizon=horizon, cell=args.cell, hidden_size=args.hidden_size,
        max_iter=args.max_iter, batch_size=args.batch_size,
        learning_rate_init=args.learning_rate, coverage=args.coverage,
        random_state=args.seed, verbose=0 if args.quiet else 1,
    )
    output_dir = Path(args.output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"--output-dir: cannot create {output_dir}: {exc.strerror}.") from None
    n_stages = 2 if args.no_backtest else 3
    stage = 1

    # --- backtest ------------------------------------------------------------------
    result = None
    if not args.no_backtest:
        n_initial = int(n_rows * args.initial) if isinstance(args.initial, float) else args.initial
        if not lookback + horizon + 2 <= n_initial <= n_rows - horizon:
            raise CLIError(
                f"--initial {args.initial} gives a backtest training span of {n_initial} of "
                f"{n_rows} rows; it needs at least lookback + horizon + 2 = "
                f"{lookback + horizon + 2} rows and must leave at least a horizon ({horizon}) "
                "of rows to test. Change --initial, shorten --lookback/--horizon, or pass "
                "--no-backtest."
            )
        console.progress(
            f"[{stage}/{n_stages}] backtest: fitting on the first {n_initial} rows, then "
            f"forecasting every {horizon} steps after them"
        )
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            console.progress(f"  backtest: {done}/{total} origins forecast "
                             f"({time.perf_counter() - started:.1f} s)")

        with _training_output(console):
            result = backtest(forecaster, frame, target=target, exog=exog or None,
                              initial=args.initial, refit=False,
                              max_origins=args.backtest_origins, progress=progress)
        stage += 1

    # --- final fit and forecast ----------------------------------------------------
    console.progress(f"[{stage}/{n_stages}] fitting on all {n_rows} rows")
    started = time.perf_counter()
    with _training_output(console):
        forecaster.fit(frame, target=target, exog=exog or None)
    console.progress(f"  fitted in {time.perf_counter() - started:.1f} s "
                     f"({forecaster.regressor_.n_iter_} epochs, "
                     f"{forecaster.n_training_windows_} training windows)")
    _max_iter_note(console, forecaster, "final fit")
    forecast = forecaster.predict()
    stage += 1

    # --- outputs -------------------------------------------------------------------
    console.progress(f"[{stage}/{n_stages}] writing results to {output_dir}")
    written = _write_outputs(output_dir, name, frame, forecast, result, target, lookback,
                             horizon, console)

    if result is not None:
        season = seasonal_period(frame.index)
        console.result(
            f"## Backtest: {name}, {target!r}, {result.forecasts['origin'].nunique()} "
            f"origins x {horizon} steps (seasonal naive: season {season})"
        )
        console.result()
        console.result(result.to_markdown())
        console.result()
        if result.interval_hit_rate is not None and args.coverage is not None:
            console.result(
                f"Prediction interval: {result.interval_hit_rate:.1%} of actual values inside "
                f"(nominal {args.coverage:.0%})."
            )
        console.result(f"Backtest time: {result.seconds:.1f} s.")
        console.result()
    console.result(f"## Forecast: {target!r}, {horizon} steps after "
                   f"{_format_time(frame.index[-1], daily)}")
    console.result()
    console.result(forecast.to_string(float_format=lambda v: f"{v:.6g}"))
    console.result()
    console.result("Wrote:")
    for path in written:
        console.result(f"  {path}")
    return 0


def _write_outputs(output_dir: Path, name: str, frame: pd.DataFrame, forecast: pd.DataFrame,
                   result: Any, target: str, lookback: int, horizon: int,
                   console: _Console) -> list[str]:
    index_label = frame.index.name or "timestamp"
    written = []
    path = output_dir / f"{name}_forecast.csv"
    forecast.to_csv(path, index_label=index_label)
    written.append(str(path))
    if result is not None:
        path = output_dir / f"{name}_metrics.csv"
        result.overall.to_csv(path, index_label="model")
        written.append(str(path))
        path = output_dir / f"{name}_backtest.csv"
        result.forecasts.to_csv(path, index=False)
        written.append(str(path))
    try:
        from tsrnn import plotting

        fig, ax = plotting.new_figure()
        plotting.plot_forecast(frame[[target]], forecast, target=target, ax=ax,
                               last=max(2 * lookback, 5 * horizon))
        ax.set_title(f"{name}: {target}, {horizon}-step forecast")
        path = output_dir / f"{name}_forecast.png"
        written.append(plotting.save_figure(fig, path))
        if result is not None:
            fig, ax = plotting.new_figure()
            plotting.plot_backtest_errors(result, ax=ax)
            ax.set_title(f"{name}: backtest error by forecast step "
                         f"({result.forecasts['origin'].nunique()} origins)")
            path = output_dir / f"{name}_backtest_errors.png"
            written.append(plotting.save_figure(fig, path))
    except ImportError as exc:
        console.note(f"plots skipped: {exc}")
    return written


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------
def _cmd_warmup(args: argparse.Namespace, console: _Console) -> int:
    from tsrnn._warmup import warmup

    dtypes = tuple(dict.fromkeys(args.dtypes or ["float32"]))
    report = warmup(dtypes, verbose=len(dtypes) > 1)
    what = (f"{len(report['compiled'])} functions compiled" if report["compiled"]
            else "all loaded from the cache")
    console.result(f"kernels ready for {', '.join(report['dtypes'])} in "
                   f"{report['seconds']:.1f} s ({what}); cache: {report['cache_dir']}")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, _Console], int]] = {
    "datasets": _cmd_datasets,
    "forecast": _cmd_forecast,
    "warmup": _cmd_warmup,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tsrnn`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a mistake in the arguments or the input data
        (with a one-line message on stderr, no traceback), 130 after Ctrl-C.

    Examples
    --------
    From a shell::

        tsrnn datasets
        tsrnn forecast --dataset seattle-temps --horizon 24
        tsrnn forecast --dataset sp500 --horizon 5 --output-dir sp500-out
        python -m tsrnn forecast --csv data.csv --time-column date --target sales
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    console = _Console(quiet=getattr(args, "quiet", False), out=sys.stdout, err=sys.stderr)
    prog = f"{PROG} {args.command}"
    try:
        with warnings.catch_warnings():
            # deprecations are addressed to developers, not to users of the command
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return _COMMANDS[args.command](args, console)
    except CLIError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        # Raised by tsrnn on data it cannot use (gaps, NaNs, too few rows, ...). Other
        # exceptions (TypeError included: the command builds every argument itself) are
        # bugs and keep their traceback.
        if getattr(args, "traceback", False):
            raise
        message = str(exc)
        if "fill=" in message:
            message += " On the command line: --fill interpolate (or --fill ffill)."
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
