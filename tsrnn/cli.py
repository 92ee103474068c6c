"""The ``tsrnn`` command: forecast a shipped dataset or a CSV file from the shell.

Usage::

    tsrnn datasets
    tsrnn forecast --dataset seattle-temps --horizon 24
    tsrnn forecast --csv load.csv --time-column timestamp --target load --exog temperature
    tsrnn forecast --csv sales.csv --id-column store --save model.npz
    tsrnn predict --model model.npz --csv newer.csv

``tsrnn forecast`` fits an :class:`~tsrnn.RNNForecaster` on the whole series (or on
every series of a long CSV with ``--id-column``: one global network) and forecasts the
next ``horizon`` steps with a prediction interval, backtests the same configuration
(fitted once on the first ``--initial`` share of the rows, evaluated at every later
origin) beside naive, seasonal-naive and ridge baselines, and writes into
``--output-dir``:

* ``<name>_forecast.csv``: the forecast (timestamp, point forecast, lower, upper; a
  panel's in long format, with the id column first);
* ``<name>_metrics.csv`` and ``<name>_backtest.csv``: the backtest table and every
  backtest forecast;
* ``<name>_forecast.png`` and ``<name>_backtest_errors.png``: plots (with matplotlib).

``--save MODEL`` also writes the fitted forecaster; ``tsrnn predict --model MODEL
--csv NEWER.csv`` forecasts from newer observations with it, without refitting.

Before fitting, the command checks that it can write every output; results (metrics
table, forecast) are printed before the files are written, so an error at the end
loses nothing. Results go to stdout (``--json``: one JSON document), progress to
stderr (``--quiet``: nothing but errors), so ``tsrnn forecast ... > report.md`` keeps a
clean report. Mistakes in the arguments or the data end with a one-line message on
stderr, phrased in the command's own options, and exit status 2.

Defaults: ``--max-iter 20`` epochs (early stopping may end sooner), ``--batch-size
128`` (at most the number of training windows), LSTM with 32 hidden units, lookback
three horizons, every backtest origin after the first 75% of the rows. ``tsrnn forecast
--dataset seattle-temps --horizon 24`` takes 15-70 s on two cores. Raise
``--max-iter`` for harder series.

The module imports only the standard library at import time, so ``tsrnn --help``
answers at once; NumPy, pandas and the models load when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tsrnn._files import write_text_atomically

if TYPE_CHECKING:  # pragma: no cover - typing only
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
#: Share of rows that --fill may add before the command warns that the time column
#: may have been misread (or needs --freq).
FILL_WARNING_SHARE = 0.05
AGGREGATIONS = ("mean", "sum", "last", "first", "min", "max", "median")


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
_positive_float = _number_type(float, lambda v: 0 < v < float("inf"), "a positive number")


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


def _frequency(text: str) -> str:
    from pandas.tseries.frequencies import to_offset

    try:
        to_offset(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a pandas frequency such as h, 30min, D, W, MS, QS; got {text!r}"
        ) from None
    return text


# ---------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------
def _add_source_options(parser: argparse.ArgumentParser, *, training: bool) -> None:
    data = parser.add_argument_group("data")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="NAME",
                        help="a shipped dataset (see 'tsrnn datasets')")
    source.add_argument("--csv", metavar="PATH", help="a CSV file with a time column")
    data.add_argument("--time-column", metavar="COLUMN",
                      help="timestamp column of the CSV (default: its first column)")
    data.add_argument("--id-column", metavar="COLUMN",
                      help="column naming the series of a long CSV with many series "
                           "(one global network for all of them)")
    data.add_argument("--date-format", metavar="FORMAT",
                      help="strftime format of the time column, e.g. %%d/%%m/%%Y (default: "
                           "inferred; ambiguous day/month dates are read the way that gives "
                           "regular steps)")
    data.add_argument("--dayfirst", action="store_true",
                      help="read dates such as 01/02/1960 as 1 February")
    data.add_argument("--freq", type=_frequency, metavar="FREQ",
                      help="resample to this frequency (h, D, W, MS, ...) with --agg")
    data.add_argument("--agg", choices=AGGREGATIONS, default="mean",
                      help="how --freq combines the rows of a period")
    if training:
        data.add_argument("--target", metavar="COLUMN",
                          help="column to forecast (default: the dataset's default target; "
                               "for a CSV, its only numeric column)")
        data.add_argument("--exog", type=_column_list, metavar="A,B",
                          help="comma-separated past covariates (observed up to the "
                               "forecast origin)")
    data.add_argument("--fill", choices=("ffill", "interpolate"),
                      help="repair missing timestamps and NaNs instead of stopping")


def _add_output_options(group, *, default_dir: bool = True) -> None:
    group.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR if default_dir else None,
                       metavar="DIR", help="where the CSV and PNG files go (created if "
                                           "needed)")
    group.add_argument("--json", action="store_true",
                       help="print the results as one JSON document instead of markdown")
    group.add_argument("--quiet", action="store_true",
                       help="print nothing but results and errors (no progress, no notes)")
    group.add_argument("--traceback", action="store_true",
                       help="show the full traceback of an error (for bug reports)")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``tsrnn`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        Parser with the sub-commands ``datasets``, ``forecast`` and ``predict``. Its
        ``error`` raises an internal exception instead of exiting; :func:`main` turns it
        into exit status 2.
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
        help="fit, backtest against baselines and forecast a series (or many)",
        description=(
            "Fit an RNNForecaster on a shipped dataset or a CSV file (one series, or many "
            "with --id-column), forecast the next HORIZON steps with a prediction "
            "interval, backtest it beside naive, seasonal-naive and ridge baselines, and "
            "write the forecast (CSV) and plots (PNG) to the output directory."
        ),
        formatter_class=_HelpFormatter,
    )
    _add_source_options(fc, training=True)
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
                       help="minibatch size (at most the number of training windows)")
    model.add_argument("--learning-rate", type=_positive_float, default=None,
                       help="Adam step size (default: the forecaster's, 0.003)")
    model.add_argument("--coverage", type=_coverage, default=DEFAULT_COVERAGE,
                       help="prediction-interval coverage, or 'none' for no interval")
    model.add_argument("--seed", type=_non_negative_int, default=DEFAULT_SEED,
                       help="random seed (same seed, same results)")
    model.add_argument("--save", metavar="MODEL",
                       help="also write the fitted forecaster here, for 'tsrnn predict'")

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
    out.add_argument("--unit", metavar="TEXT",
                     help="unit of the target for plot labels (default: the column name)")
    out.add_argument("--series", metavar="ID",
                     help="with --id-column: the series to plot (default: the first)")
    _add_output_options(out)

    pr = commands.add_parser(
        "predict",
        help="forecast with a saved model from newer data, without refitting",
        description=(
            "Load a forecaster written by 'tsrnn forecast --save' and forecast the steps "
            "after the newer observations of a CSV file or dataset (the same columns and "
            "frequency as in training, at least LOOKBACK rows per series)."
        ),
        formatter_class=_HelpFormatter,
    )
    pr.add_argument("--model", required=True, metavar="MODEL",
                    help="a file written by 'tsrnn forecast --save'")
    _add_source_options(pr, training=False)
    pr.add_argument("--horizon", type=_positive_int,
                    help="steps to forecast (default: the model's horizon)")
    pr.add_argument("--coverage", type=_coverage, default=None,
                    help="interval coverage for this forecast (default: the model's)")
    _add_output_options(pr.add_argument_group("output"), default_dir=False)
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
    """Results to stdout; progress and notes to stderr (silenced by --quiet)."""

    quiet: bool
    out: TextIO
    err: TextIO

    def result(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def progress(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.err, flush=True)

    def note(self, text: str) -> None:
        if not self.quiet:
            print(f"{PROG}: {text}", file=self.err, flush=True)


def _format_time(stamp, daily: bool) -> str:
    import pandas as pd

    if not isinstance(stamp, (pd.Timestamp,)):
        return str(stamp)
    return stamp.strftime("%Y-%m-%d") if daily else stamp.strftime("%Y-%m-%d %H:%M")


def _is_daily(index) -> bool:
    import pandas as pd

    if not isinstance(index, pd.DatetimeIndex):
        return True
    return bool(len(index)) and bool((index == index.normalize()).all())


@contextlib.contextmanager
def _training_output(console: _Console):
    """Send the regressor's epoch lines (stdout) to stderr; collect warnings."""
    sink = console.err if not console.quiet else io.StringIO()  # --quiet: dropped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(sink):
            yield
    from sklearn.exceptions import ConvergenceWarning

    seen = set()
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            continue  # reported once, in words, by the caller (see _max_iter_note)
        if issubclass(w.category, (DeprecationWarning, FutureWarning)):
            continue  # addressed to developers, not to users of the command
        text = _cli_words(str(w.message))
        if text not in seen:
            seen.add(text)
            console.note(f"warning: {text}")


#: Python advice in library messages, and what to do on the command line instead.
_ADVICE = [
    (r"Pass fill='ffill' or fill='interpolate'(, or clean the data first)?",
     "Pass --fill interpolate (or --fill ffill)"),
    (r"pass fill='ffill' or fill='interpolate'", "pass --fill interpolate (or --fill ffill)"),
    (r"RNNForecaster\.fit\(\.\.\., id_column=\.\.\.\) or tsrnn forecast --id-column",
     "--id-column"),
    (r"aggregate the duplicates, e\.g\. data\.groupby\(level=0\)\.mean\(\)",
     "aggregate the duplicates with --freq STEP --agg mean"),
    (r"Resample to a regular frequency first, e\.g\. data\.resample\('([^']*)'\)\.mean\(\)",
     r"Resample to a regular frequency with --freq \1 (and --agg)"),
    (r"Resample them to one frequency first\.", "Resample them with --freq."),
    (r"Sort it first with data\.sort_index\(\)\.", "Sort the rows by time."),
    (r"Trim the data, e\.g\. data\.dropna\(\)\.", "Remove those rows from the data."),
    (r"or coverage=None and shrink_to_naive=False", "or --coverage none"),
    (r"a smaller lookback/horizon", "a smaller --lookback/--horizon"),
    (r"Increase 'validation_fraction' or the size of your dataset\.",
     "Use a longer series or a smaller --lookback/--horizon."),
    (r"with target=\.\.\.", "with --target"),
]


def _cli_words(message: str) -> str:
    """A library message with its Python advice replaced by the command's options."""
    for pattern, replacement in _ADVICE:
        message = re.sub(pattern, replacement, message)
    return message


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------
@dataclass
class _Data:
    """What a command reads: one series indexed by time, or a long panel."""

    frame: Any
    target: str
    name: str
    source: str
    exog: list = field(default_factory=list)
    id_column: str | None = None
    time_column: str | None = None

    @property
    def is_panel(self) -> bool:
        return self.id_column is not None

    def series(self):
        """``{id: DataFrame indexed by time}`` (one entry, key None, for one series)."""
        if not self.is_panel:
            return {None: self.frame}
        return {k: g.drop(columns=[self.id_column]).set_index(self.time_column)
                for k, g in self.frame.groupby(self.id_column, sort=False)}

    def longest_index(self):
        return max((s.index for s in self.series().values()), key=len)


def _cmd_datasets(args: argparse.Namespace, console: _Console) -> int:
    from tsrnn.datasets import list_datasets

    table = list_datasets()
    rows = []
    for _, row in table.iterrows():
        daily = row["start"] == row["start"].normalize() and row["end"] == row["end"].normalize()
        rows.append({
            "name": row["name"],
            "frequency": row["frequency"],
            "series": str(row["series"]),
            "rows": str(row["rows"]),
            "start": _format_time(row["start"], daily),
            "end": _format_time(row["end"], daily),
            "default target": row["target"],
            "columns": row["columns"],
        })
    header = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in header}
    right = {"rows", "series"}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(cells[h].rjust(widths[h]) if h in right else cells[h].ljust(widths[h])
                         for h in header).rstrip()

    console.result(line({h: h for h in header}))
    console.result(line({h: "-" * widths[h] for h in header}))
    for row in rows:
        console.result(line(row))
    console.result()
    single = table.loc[table["kind"] == "series", "name"].tolist()
    panels = table.loc[table["kind"] == "panel", "name"].tolist()
    example = "seattle-temps" if "seattle-temps" in single else (single or panels)[0]
    console.result(f"Forecast one with: {PROG} forecast --dataset {example} --horizon 24")
    if panels:
        console.result(f"A panel (many series, one model for all): {PROG} forecast "
                       f"--dataset {panels[0]} --horizon 12")
    return 0


def _parse_times(column, name: str, path: str, args, console: _Console):
    """Timestamps of a CSV column: with --date-format or --dayfirst as given; else
    inferred, and where day and month are ambiguous (both <= 12 in every row), the
    reading that gives regular steps."""
    import pandas as pd

    from tsrnn import windowing

    def parse(**kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
            return pd.to_datetime(column, **kwargs)

    if args.date_format is not None:
        try:
            return parse(format=args.date_format)
        except (ValueError, TypeError) as exc:
            raise CLIError(f"--date-format: column {name!r} of {path} does not match "
                           f"{args.date_format!r} ({exc}).") from None
    if args.dayfirst:
        return parse(dayfirst=True)
    stamps = parse()
    text = column.astype(str)
    fields = text.str.extract(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2,4})")
    if fields.notna().all().all() and len(text) > 2:
        first, second = fields[0].astype(int), fields[1].astype(int)
        if (first <= 12).all() and (second <= 12).all() and (first != second).any():
            try:
                swapped = parse(dayfirst=True)
            except (ValueError, TypeError):
                return stamps
            regular = {}
            for label, candidate in (("month-first", stamps), ("day-first", swapped)):
                index = pd.DatetimeIndex(candidate).sort_values()
                try:
                    regular[label] = windowing._infer_offset(index) is not None
                except ValueError:
                    regular[label] = False
            if regular["day-first"] and not regular["month-first"]:
                console.note(f"note: read {name!r} day-first ({text.iloc[0]} as "
                             f"{swapped.iloc[0]:%d %B %Y}), which gives regular steps; pass "
                             "--date-format to say otherwise.")
                return swapped
            if regular["day-first"] and regular["month-first"]:
                raise CLIError(
                    f"--time-column: dates such as {text.iloc[0]!r} in {name!r} read both "
                    "day-first and month-first; say which with --dayfirst or --date-format "
                    "(e.g. %d/%m/%Y)."
                )
    return stamps


def _load_csv(path: str, args, console: _Console):
    import pandas as pd

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
    time_column = args.time_column
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
        stamps = _parse_times(column, time_column, path, args, console)
    except (ValueError, TypeError) as exc:
        raise CLIError(
            f"--time-column: cannot read column {time_column!r} of {path} as timestamps "
            f"({exc}){hint} Or give the format with --date-format."
        ) from None
    if stamps.isna().any():
        k = int(stamps.isna().to_numpy().nonzero()[0][0])
        raise CLIError(
            f"--time-column: column {time_column!r} of {path} has an empty timestamp in data "
            f"row {k + 1}."
        )
    frame = raw.drop(columns=[time_column])
    frame.index = pd.DatetimeIndex(stamps, name=time_column)
    return frame


def _numeric_columns(frame) -> list[str]:
    import pandas as pd

    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])]


def _check_columns(frame, names: list[str], option: str, source: str) -> None:
    import pandas as pd

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


def _prepared_series(frame, args, console: _Console, where: str):
    """One series' frame: sorted, resampled (--freq), filled (--fill)."""
    import numpy as np
    import pandas as pd

    from tsrnn.windowing import make_windows

    if not frame.index.is_monotonic_increasing:
        console.note(f"note: sorted the rows of {where} by time.")
        frame = frame.sort_index(kind="stable")
    if args.freq is not None:
        frame = frame.resample(args.freq).agg(args.agg)
    if args.fill is not None:
        before = int(frame.notna().all(axis=1).sum())  # rows that need no filling
        columns = list(frame.columns)
        windows = make_windows(frame, 1, 0, features=columns, fill=args.fill)
        frame = pd.DataFrame(windows.X[:, 0, :], index=windows.index, columns=columns)
        added = len(frame) - before
        if added > FILL_WARNING_SHARE * max(before, 1):
            console.note(
                f"warning: --fill {args.fill} filled {added} rows beside the {before} complete "
                f"ones of {where} ({added / max(before, 1):.0%} invented); check how the time column was read "
                "(--date-format, --dayfirst) or aggregate with --freq."
            )
    return frame.astype(np.float64)


def _load_data(args: argparse.Namespace, console: _Console, *, target=None,
               exog=()) -> _Data:
    """The data of a command: target and covariate columns, validated and prepared."""
    import pandas as pd

    id_column = args.id_column
    time_column = None
    if args.dataset is not None:
        from tsrnn import datasets

        try:
            frame = datasets.load_dataset(args.dataset)
            target = target or datasets.default_target(args.dataset)
        except ValueError as exc:
            raise CLIError(f"--dataset: {exc} See '{PROG} datasets'.") from None
        name = args.dataset.strip().lower().replace("_", "-")
        source = f"dataset {name!r}"
        if args.time_column is not None:
            raise CLIError("--time-column applies to --csv input only.")
        if "unique_id" in frame.columns and "ds" in frame.columns:  # a shipped panel
            id_column = id_column or "unique_id"
            frame = frame.set_index("ds")
    else:
        frame = _load_csv(args.csv, args, console)
        name = Path(args.csv).stem
        source = args.csv
    if id_column is not None and id_column not in frame.columns:
        raise CLIError(f"--id-column: {id_column!r} is not a column of {source}; its "
                       f"columns are {list(map(str, frame.columns))}.")
    if target is None:
        numeric = [c for c in _numeric_columns(frame) if c != id_column]
        if len(numeric) != 1:
            raise CLIError(
                f"--target: {source} has {len(numeric)} numeric columns {numeric}; say "
                "which one to forecast with --target."
            )
        target = numeric[0]
    exog = list(exog)
    _check_columns(frame, [target], "--target", source)
    _check_columns(frame, exog, "--exog", source)
    if target in exog:
        raise CLIError(f"--exog: the target {target!r} cannot also be a covariate.")
    if len(set(exog)) != len(exog):
        raise CLIError(f"--exog: a column is listed twice in {exog}.")
    columns = [target, *exog]
    if id_column is None:
        frame = _prepared_series(frame[columns], args, console, source)
        return _Data(frame, target, name, source, exog)
    time_column = frame.index.name or "ds"
    parts = []
    for key, group in frame.groupby(id_column, sort=False):
        part = _prepared_series(group[columns], args, console, f"series {key!r} of {source}")
        part = part.reset_index(names=time_column)
        part.insert(0, id_column, key)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    return _Data(frame, target, name, source, exog, id_column, time_column)


def _max_iter_note(console: _Console, forecaster: Any, stage: str) -> None:
    regressor = forecaster.regressor_
    if regressor.n_iter_ >= regressor.max_iter:
        console.progress(
            f"  ({stage}: used all {regressor.max_iter} epochs of --max-iter; more epochs "
            "may fit better)"
        )


def _writable(folder: Path, option: str) -> None:
    """Create ``folder`` and prove a file can be written in it, before any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tsrnn-write-check-"):
            pass
    except OSError as exc:
        raise CLIError(f"{option}: cannot write into {folder}: "
                       f"{exc.strerror or exc}.") from None


# ---------------------------------------------------------------------------------------
# forecast
# ---------------------------------------------------------------------------------------
def _cmd_forecast(args: argparse.Namespace, console: _Console) -> int:
    from tsrnn.forecasting import RNNForecaster, backtest, seasonal_period

    data = _load_data(args, console, target=args.target, exog=args.exog or [])
    index = data.longest_index()
    n_rows = len(index)
    horizon = args.horizon if args.horizon is not None else default_horizon(index)
    lookback = (args.lookback if args.lookback is not None
                else default_lookback(horizon, n_rows))
    if lookback + horizon + 2 > n_rows:
        raise CLIError(
            f"--lookback {lookback} + --horizon {horizon} need at least "
            f"{lookback + horizon + 2} rows; the data have {n_rows}. Use a shorter lookback "
            "or horizon."
        )
    output_dir = Path(args.output_dir)
    _writable(output_dir, "--output-dir")
    if args.save is not None:
        _writable(Path(args.save).resolve().parent, "--save")
    plot_series = _plot_series(args, data)

    daily = _is_daily(index)
    series_text = (f", {data.frame[data.id_column].nunique()} series (--id-column "
                   f"{data.id_column!r})" if data.is_panel else "")
    console.progress(
        f"{PROG} forecast: {data.name}, target {data.target!r}"
        + (f", past covariates {data.exog}" if data.exog else "") + series_text
        + f", {len(data.frame)} rows {_format_time(index[0], daily)} .. "
          f"{_format_time(index[-1], daily)}"
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
    panel_kw = (dict(id_column=data.id_column, time_column=data.time_column)
                if data.is_panel else {})
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
            f"[{stage}/{n_stages}] backtest: fitting on the first {n_initial} rows"
            + (" of each series" if data.is_panel else "")
            + f", then forecasting every {horizon} steps after them"
        )
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            console.progress(f"  backtest: {done}/{total} origins forecast "
                             f"({time.perf_counter() - started:.1f} s)")

        with _training_output(console):
            result = backtest(forecaster, data.frame, target=data.target,
                              exog=data.exog or None, initial=args.initial, refit=False,
                              max_origins=args.backtest_origins, progress=progress,
                              **panel_kw)
        stage += 1

    # --- final fit and forecast ----------------------------------------------------
    console.progress(f"[{stage}/{n_stages}] fitting on all {len(data.frame)} rows")
    started = time.perf_counter()
    with _training_output(console):
        forecaster.fit(data.frame, target=data.target, exog=data.exog or None, **panel_kw)
    console.progress(f"  fitted in {time.perf_counter() - started:.1f} s "
                     f"({forecaster.regressor_.n_iter_} epochs, "
                     f"{forecaster.n_training_windows_} training windows)")
    _max_iter_note(console, forecaster, "final fit")
    forecast = forecaster.predict()
    stage += 1

    # --- results first, then files ---------------------------------------------------
    if args.json:
        console.result(json.dumps(_json_report(data, forecast, result, horizon,
                                               args.coverage), indent=2, default=str))
    else:
        _print_report(console, data, forecast, result, horizon, args.coverage,
                      seasonal_period(index), daily)
    console.progress(f"[{stage}/{n_stages}] writing results to {output_dir}")
    written = _write_outputs(output_dir, data, forecast, result, lookback, horizon,
                             console, unit=args.unit, plot_series=plot_series)
    if args.save is not None:
        forecaster.save(args.save)
        written.append(str(args.save))
    _print_written(console, written, args.json)
    return 0


def _plot_series(args, data: _Data):
    """The id of the series to plot (panels), checked before any work."""
    if not data.is_panel:
        if args.series is not None:
            raise CLIError("--series picks a series of a panel; the data are one series "
                           "(use --id-column for a long CSV).")
        return None
    ids = list(data.frame[data.id_column].unique())
    if args.series is None:
        return ids[0]
    for series_id in ids:
        if str(series_id) == args.series:
            return series_id
    raise CLIError(f"--series: {args.series!r} is not a series of {data.source}; the ids "
                   f"are {ids[:10]}{' ...' if len(ids) > 10 else ''}.")


def _print_report(console, data, forecast, result, horizon, coverage, season, daily):
    if result is not None:
        console.result(
            f"## Backtest: {data.name}, {data.target!r}, {result.n_origins} forecasts x "
            f"{horizon} steps (seasonal naive: season {season})"
        )
        console.result()
        console.result(result.to_markdown())
        console.result()
        if result.interval_hit_rate is not None and coverage is not None:
            n_values = result.n_origins * horizon
            console.result(
                f"Prediction interval: {result.interval_hit_rate:.1%} of {n_values} actual "
                f"values inside (nominal {coverage:.0%})"
                + ("; too few values to judge the coverage." if n_values < 100 else ".")
            )
        console.result(f"Backtest time: {result.seconds:.1f} s.")
        console.result()
    last = data.longest_index()[-1]
    console.result(f"## Forecast: {data.target!r}, {horizon} steps after "
                   f"{_format_time(last, daily)}")
    console.result()
    console.result(forecast.to_string(float_format=lambda v: f"{v:.6g}"))
    console.result()


def _json_report(data, forecast, result, horizon, coverage) -> dict:
    import math

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    records = (forecast.reset_index() if not data.is_panel else forecast).to_dict("records")
    report = {"target": data.target, "horizon": horizon,
              "forecast": [{k: clean(v) for k, v in r.items()} for r in records]}
    if result is not None:
        report["backtest"] = {
            "origins": result.n_origins, "series": result.n_series,
            "metrics": {model: {m: clean(float(v)) for m, v in row.items()}
                        for model, row in result.overall.iterrows()},
            "winners": result.winners(),
            "interval_coverage": coverage,
            "interval_hit_rate": result.interval_hit_rate,
            "seconds": result.seconds,
        }
    return report


def _print_written(console, written, as_json: bool) -> None:
    if as_json:
        for path in written:
            console.progress(f"  wrote {path}")
        return
    console.result("Wrote:")
    for path in written:
        console.result(f"  {path}")


def _write_forecast(output_dir: Path, data: _Data, forecast) -> str:
    """Write ``<name>_forecast.csv`` (whole or not at all); return its path."""
    path = output_dir / f"{data.name}_forecast.csv"
    if data.is_panel:
        text = forecast.to_csv(index=False)
    else:
        text = forecast.to_csv(index_label=data.frame.index.name or "timestamp")
    write_text_atomically(path, text)
    return str(path)


def _write_outputs(output_dir: Path, data: _Data, forecast, result, lookback: int,
                   horizon: int, console: _Console, *, unit=None,
                   plot_series=None) -> list[str]:
    written = []
    written.append(_write_forecast(output_dir, data, forecast))
    if result is not None:
        path = output_dir / f"{data.name}_metrics.csv"
        write_text_atomically(path, result.overall.to_csv(index_label="model"))
        written.append(str(path))
        path = output_dir / f"{data.name}_backtest.csv"
        write_text_atomically(path, result.forecasts.to_csv(index=False))
        written.append(str(path))
    try:
        written += _plots(output_dir, data, forecast, result, lookback, horizon, unit,
                          plot_series)
    except ImportError as exc:
        console.note(f"plots skipped: {exc}")
    return written


def _plots(output_dir, data, forecast, result, lookback, horizon, unit, plot_series):
    from tsrnn import plotting

    target = data.target
    history, shown = data.frame, forecast
    title = f"{data.name}: {target}"
    if data.is_panel:
        history = data.series()[plot_series]
        shown = forecast[forecast[data.id_column] == plot_series].set_index(
            data.time_column).drop(columns=[data.id_column])
        title += f", series {plot_series}"
    written = []
    fig, ax = plotting.new_figure()
    plotting.plot_forecast(history[[target]], shown, target=target, ax=ax,
                           last=max(2 * lookback, 5 * horizon))
    ax.set_title(f"{title}, {horizon}-step forecast")
    if unit is not None:
        ax.set_ylabel(f"{target} ({unit})")
    written.append(plotting.save_figure(fig, output_dir / f"{data.name}_forecast.png"))
    if result is not None:
        fig, ax = plotting.new_figure()
        plotting.plot_backtest_errors(result, ax=ax)
        ax.set_title(f"{data.name}: backtest error by forecast step "
                     f"({result.n_origins} forecasts)")
        written.append(plotting.save_figure(fig, output_dir /
                                            f"{data.name}_backtest_errors.png"))
    return written


# ---------------------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------------------
def _cmd_predict(args: argparse.Namespace, console: _Console) -> int:
    from tsrnn.forecasting import RNNForecaster

    model_path = Path(args.model)
    if not model_path.is_file():
        raise CLIError(f"--model: no such file: {args.model}")
    try:
        forecaster = RNNForecaster.load(model_path)
    except ValueError as exc:
        raise CLIError(f"--model: {exc}") from None
    if args.id_column is None and forecaster.is_panel_:
        args.id_column = forecaster._history.id_column
    data = _load_data(args, console, target=forecaster.target_,
                      exog=forecaster.exog_ + forecaster.future_covariates_)
    if forecaster.is_panel_ != data.is_panel:
        kind = "many series" if forecaster.is_panel_ else "one series"
        raise CLIError(f"--model: {args.model} was fitted on {kind}; give the data the same "
                       "way (--id-column for a long CSV).")
    if args.output_dir is not None:
        _writable(Path(args.output_dir), "--output-dir")
    history = data.frame
    if data.is_panel:
        history = history.rename(columns={data.id_column: forecaster._history.id_column,
                                          data.time_column: forecaster._history.time_column})
    forecast = forecaster.predict(horizon=args.horizon, history=history,
                                  coverage=args.coverage)
    horizon = args.horizon or forecaster.horizon
    if args.json:
        console.result(json.dumps(_json_report(data, forecast, None, horizon, None),
                                  indent=2, default=str))
    else:
        _print_report(console, data, forecast, None, horizon, None, None,
                      _is_daily(data.longest_index()))
    if args.output_dir is not None:
        path = _write_forecast(Path(args.output_dir), data, forecast)
        _print_written(console, [path], args.json)
    return 0


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
    "predict": _cmd_predict,
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
        Exit status: 0 on success (and for ``--help``, or no command, which prints the
        help), 2 for a mistake in the arguments or the input data (with a one-line
        message on stderr, no traceback), 130 after Ctrl-C.

    Examples
    --------
    From a shell (``python -m tsrnn`` is the same command)::

        tsrnn datasets
        tsrnn forecast --dataset seattle-temps --horizon 24
        tsrnn forecast --dataset sp500 --horizon 5 --output-dir sp500-out --save sp500.npz
        tsrnn predict --model sp500.npz --csv newer.csv --time-column date
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
    if args.command is None:
        parser.print_help(sys.stdout)
        return 0
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
    except (ValueError, TypeError) as exc:
        # Raised by tsrnn on data it cannot use (gaps, NaNs, too few rows, columns of
        # the wrong type, ...). Other exceptions are bugs and keep their traceback.
        if getattr(args, "traceback", False) or not _is_data_error(exc):
            raise
        print(f"{prog}: error: {_cli_words(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _is_data_error(exc: Exception) -> bool:
    """Whether ``exc`` reports a problem with the input (raised inside tsrnn with a
    message for users) rather than a bug: every ValueError, and TypeErrors raised by
    tsrnn's own checks."""
    if isinstance(exc, ValueError):
        return True
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "tsrnn" in tb.tb_frame.f_code.co_filename


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
