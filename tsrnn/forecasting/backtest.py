"""Rolling-origin backtests of a forecaster beside the baselines, on the same origins."""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tsrnn import metrics as _metrics
from tsrnn import windowing
from tsrnn.forecasting import baselines
from tsrnn.forecasting.baselines import BASELINES
from tsrnn.forecasting.forecaster import RNNForecaster, _input_panel
from tsrnn.forecasting.seasonality import seasonal_period

__all__ = ["BacktestResult", "backtest"]

MODEL_NAME = "tsrnn"
#: Fewest origins before a backtest names a winner.
MIN_ORIGINS_FOR_A_WINNER = 5
DEFAULT_METRICS = ("mae", "rmse", "smape", "mase")


@dataclass
class BacktestResult:
    """Rolling-origin evaluation of a forecaster beside baselines.

    Attributes
    ----------
    overall : pandas.DataFrame
        One row per model (``tsrnn``, ``naive``, ``seasonal_naive``, ``ridge``), one
        column per metric: the mean over origins.
    per_origin : pandas.DataFrame
        One row per (origin, model) with the metrics of that forecast.
    by_horizon : pandas.DataFrame
        Mean absolute error per forecast step (rows 1..horizon) and model (columns).
    forecasts : pandas.DataFrame
        Every forecast: origin, step, timestamp, actual value and one column per model.
    seasonality : int
        Season length used by seasonal naive and MASE.
    seconds : float
        Wall-clock time of the backtest.
    coverage : float or None
        Nominal coverage of the model's prediction intervals (None: no intervals).
    interval_hit_rate : float or None
        Share of actual values inside the model's intervals over every origin and step.
    refits : int
        How many times the model was fitted.
    n_series : int
        Series evaluated (1 for a single series; panels: ``per_origin`` and
        ``forecasts`` then carry the id column).
    notes : list of str
        Remarks on the run (e.g. origins dropped), for the report.
    """

    overall: pd.DataFrame
    per_origin: pd.DataFrame
    by_horizon: pd.DataFrame
    forecasts: pd.DataFrame
    seasonality: int
    seconds: float
    coverage: float | None = None
    interval_hit_rate: float | None = None
    refits: int = 1
    notes: list = field(default_factory=list)
    n_series: int = 1

    @property
    def n_origins(self) -> int:
        """Forecasts evaluated per model: (series, origin) pairs."""
        return int(len(self.per_origin) // max(1, self.overall.shape[0]))

    def winners(self, confidence: float = 0.95) -> dict:
        """Per metric, the model with the lowest mean when it beats every other model
        by more than the noise across origins, else None.

        The test is paired: for each other model, the per-origin differences of the
        metric (other minus best) must have a mean above ``z`` standard errors, with z
        the two-sided normal quantile of ``confidence`` (1.96 at 95%). With fewer than
        MIN_ORIGINS_FOR_A_WINNER origins no model is declared the winner.
        """
        from statistics import NormalDist

        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        keys = [c for c in self.per_origin.columns if c not in ("model", *DEFAULT_METRICS)]
        out = {}
        for metric in self.overall.columns:
            table = self.per_origin.pivot_table(index=keys, columns="model", values=metric,
                                                aggfunc="first")
            best = self.overall[metric].idxmin()
            if pd.isna(best) or len(table) < MIN_ORIGINS_FOR_A_WINNER:
                out[metric] = None
                continue
            clear = True
            for other in self.overall.index:
                if other == best:
                    continue
                diff = (table[other] - table[best]).dropna().to_numpy()
                se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.inf
                if not diff.mean() > z * se:
                    clear = False
                    break
            out[metric] = best if clear else None
        return out

    def to_markdown(self, digits: int = 4) -> str:
        """The overall table as GitHub markdown.

        The best value of a metric is bold only when that model beats every other by
        more than the noise across origins (:meth:`winners`); a note under the table
        says how many origins were evaluated and when no winner is clear.
        """
        table = self.overall
        header = "| model | " + " | ".join(table.columns) + " |"
        rule = "| --- | " + " | ".join("---:" for _ in table.columns) + " |"
        best = self.winners()
        rows = []
        for model, row in table.iterrows():
            cells = []
            for col, value in row.items():
                text = f"{value:.{digits}g}"
                cells.append(f"**{text}**" if best[col] == model else text)
            rows.append(f"| {model} | " + " | ".join(cells) + " |")
        return "\n".join([header, rule, *rows, "", self.caption()])

    def caption(self) -> str:
        """One sentence on what the table rests on."""
        n = self.n_origins
        if self.n_series > 1:
            text = f"{n} forecasts (origins of {self.n_series} series)"
        else:
            text = f"{n} forecast origin{'s' if n != 1 else ''}"
        if n < MIN_ORIGINS_FOR_A_WINNER:
            return (f"{text}: too few to tell models apart (at least "
                    f"{MIN_ORIGINS_FOR_A_WINNER} are needed); no winner is marked.")
        unclear = [m for m, w in self.winners().items() if w is None]
        if unclear:
            return (f"{text}; bold: better than every other model beyond the noise "
                    f"across origins (paired, 95%); no clear winner on {', '.join(unclear)}.")
        return f"{text}; bold: better than every other model beyond the noise across " \
               "origins (paired, 95%)."

    def __str__(self) -> str:
        return self.overall.to_string(float_format=lambda v: f"{v:.4g}")


def backtest(forecaster: RNNForecaster, data, *, target=None, exog=None,
             future_covariates=None, initial: float | int = 0.7, step: int | None = None,
             refit: bool | int = False, seasonality: int | None = None,
             max_origins: int | None = None, progress=None, id_column: str | None = None,
             time_column: str | None = None, static=None) -> BacktestResult:
    """Rolling-origin evaluation of ``forecaster`` beside naive baselines.

    The first ``initial`` rows (a fraction or a count) of each series train the model;
    forecast origins then start at the end of that span and advance by ``step`` rows
    (default: the horizon) while a full horizon of actual values follows. Every
    model is evaluated on exactly the same origins. On a panel one global model is
    fitted on the initial spans of every series, and the metrics average over every
    (series, origin), each series' MASE scaled by its own seasonal-naive error.

    Parameters
    ----------
    forecaster : RNNForecaster
        Unfitted template (it is cloned; the argument is not modified).
    data : pandas.Series, pandas.DataFrame or dict
        One series or a panel, as for :meth:`RNNForecaster.fit`.
    target, exog, future_covariates, id_column, time_column, static
        As for :meth:`RNNForecaster.fit`.
    initial : float or int, default=0.7
        Training span before the first origin: a fraction of the rows in (0, 1) or
        a number of rows (per series).
    step : int, optional
        Rows between consecutive origins (default ``horizon``).
    refit : bool or int, default=False
        False: fit once on the initial span. True: refit at every origin on all
        data before it. An int k: refit every k origins.
    seasonality : int, optional
        Season length for seasonal naive and MASE (default from the frequency:
        :func:`seasonal_period`).
    max_origins : int, optional
        Use only the last ``max_origins`` origins (of each series), >= 1.
    progress : callable, optional
        Called as ``progress(done, total)`` after each block of origins.

    Returns
    -------
    BacktestResult
    """
    from sklearn.base import clone

    started = time.perf_counter()
    template = clone(forecaster)
    template._check_params()
    L, H = template.lookback, template.horizon
    step = H if step is None else _positive_int("step", step)
    if max_origins is not None:
        max_origins = _positive_int("max_origins", max_origins)
    if isinstance(refit, bool):
        block = None if refit is False else 1
    else:
        block = _positive_int("refit", refit) if refit != 0 else None
    exog_list, future_list = _names(exog), _names(future_covariates)
    raw, target = _input_panel(data, target, exog_list + future_list, id_column,
                               time_column, None)
    notes = []
    origins = _origins(raw, initial, step, max_origins, L, H, notes)
    n_blocks = max(len(o) for o in origins)
    block = n_blocks if block is None else block
    if seasonality is not None:
        m = _positive_int("seasonality", seasonality)
    elif raw.index_kind == "range":
        m = 1  # integer steps: no season to assume
    else:
        m = seasonal_period(raw.index[int(np.argmax(raw.lengths))])

    per_origin, forecasts = [], []
    hits, n_interval = 0, 0
    refits = 0
    for k0 in range(0, n_blocks, block):
        members = [s for s in range(raw.n_series) if len(origins[s]) > k0]
        train_rows = np.array([origins[s][k0] + 1 for s in members])
        sub = raw.subset(members)
        model = clone(template).fit(sub.head(train_rows), exog=exog_list,
                                    future_covariates=future_list, static=static)
        refits += 1
        block_origins = [origins[s][k0:k0 + block] for s in members]
        series = np.repeat(np.arange(len(members)), [len(o) for o in block_origins])
        rows = np.concatenate(block_origins)
        pred, half_width = model._forecast_at(sub, series, rows, model.coverage)
        if half_width is not None:
            actual_all = np.stack([sub.rows(s)[o + 1:o + 1 + H, 0]
                                   for s, o in zip(series, rows)])
            inside = np.abs(actual_all - pred) <= half_width
            hits += int(inside.sum())
            n_interval += inside.size
        offset = 0
        for j, s in enumerate(members):
            mine = slice(offset, offset + len(block_origins[j]))
            offset += len(block_origins[j])
            _score_series(raw, s, block_origins[j], int(train_rows[j]), pred[mine], L, H, m,
                          len(exog_list), per_origin, forecasts)
        if progress is not None:
            progress(min(k0 + block, n_blocks), n_blocks)

    per_origin = pd.DataFrame(per_origin)
    forecasts = pd.DataFrame(forecasts)
    if raw.single:
        per_origin = per_origin.drop(columns=["series"])
        forecasts = forecasts.drop(columns=["series"])
    else:
        per_origin = per_origin.rename(columns={"series": raw.id_column})
        forecasts = forecasts.rename(columns={"series": raw.id_column})
    order = [MODEL_NAME, *BASELINES]
    overall = (per_origin.groupby("model")[list(DEFAULT_METRICS)].mean()
               .reindex(order))
    by_horizon = pd.DataFrame({
        name: (forecasts[name] - forecasts["actual"]).abs().groupby(forecasts["step"]).mean()
        for name in order
    })
    return BacktestResult(
        overall=overall, per_origin=per_origin, by_horizon=by_horizon, forecasts=forecasts,
        seasonality=m, seconds=time.perf_counter() - started,
        coverage=template.coverage,
        interval_hit_rate=(hits / n_interval) if n_interval else None,
        refits=refits, notes=notes, n_series=raw.n_series,
    )


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}.")
    return int(value)


def _names(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _origins(raw, initial, step, max_origins, L, H, notes) -> list[np.ndarray]:
    """Origin rows (last observed row of each forecast) of every series."""
    if isinstance(initial, bool) or not isinstance(initial, numbers.Real):
        raise TypeError(f"initial must be a fraction in (0, 1) or a number of rows; got "
                        f"{initial!r}.")
    fraction = isinstance(initial, float)
    if fraction and not 0 < initial < 1:
        raise ValueError(f"initial as a fraction must be in (0, 1); got {initial}.")
    out, skipped = [], []
    for s, n_rows in enumerate(raw.lengths):
        n_initial = int(n_rows * initial) if fraction else int(initial)
        if n_initial < L + H + 2 or n_initial > n_rows - H:
            if raw.single:
                raise ValueError(
                    f"initial={initial} gives {n_initial} training rows of {n_rows}; it "
                    f"needs at least lookback + horizon + 2 = {L + H + 2} and must leave a "
                    f"horizon ({H}) to test."
                )
            skipped.append(raw.ids[s])
            out.append(np.empty(0, dtype=np.int64))
            continue
        origins = np.arange(n_initial - 1, n_rows - H, step)
        out.append(origins if max_origins is None else origins[-max_origins:])
    if skipped:
        if len(skipped) == raw.n_series:
            raise ValueError(
                f"initial={initial} leaves no series with at least lookback + horizon + 2 = "
                f"{L + H + 2} training rows and a horizon ({H}) to test."
            )
        notes.append(f"{len(skipped)} series too short for initial={initial} were left "
                     f"out: {skipped[:5]}{' ...' if len(skipped) > 5 else ''}.")
    return out


def _score_series(raw, s, origins, train_end, pred, L, H, m, n_exog, per_origin,
                  forecasts):
    """Baselines and metrics of series ``s`` at ``origins`` (model forecasts ``pred``),
    appended to the record lists. The ridge baseline reads the same covariates as the
    model: past ones over the window, known-future ones over the horizon."""
    rows = raw.rows(s)
    y = rows[:, 0]
    steps = np.arange(1, H + 1)
    actual = y[origins[:, None] + steps[None, :]]
    past_columns, future_columns = rows[:, :1 + n_exog], rows[:, 1 + n_exog:]
    train = windowing._window_array(past_columns[:train_end], L, H, 1)
    train_y = sliding_window_view(y[L:train_end], H)
    past = np.stack([past_columns[o - L + 1:o + 1] for o in origins])
    train_future = test_future = None
    if future_columns.shape[1]:
        starts = np.arange(len(train))
        train_future = future_columns[starts[:, None] + L + np.arange(H)[None, :]]
        test_future = future_columns[origins[:, None] + steps[None, :]]
    base = {
        "naive": baselines.naive(y[origins], H),
        "seasonal_naive": baselines.seasonal_naive(y, origins, H, m),
        "ridge": baselines.ridge_lags(train, train_y, past, H, train_future, test_future),
    }
    scale_series = y[:train_end]
    if len(scale_series) <= m:
        raise ValueError(f"training span too short for seasonality {m}.")
    scale = np.mean(np.abs(scale_series[m:] - scale_series[:-m]))
    index = raw.original_index(raw.index[s])
    series_id = raw.ids[s]
    for i, origin in enumerate(origins):
        stamp = index[origin]
        for name, p in [(MODEL_NAME, pred[i])] + [(k, v[i]) for k, v in base.items()]:
            err = actual[i] - p
            per_origin.append({
                "series": series_id, "origin": stamp, "model": name,
                "mae": float(np.mean(np.abs(err))),
                "rmse": float(np.sqrt(np.mean(err ** 2))),
                "smape": float(_metrics.smape(actual[i], p)),
                "mase": float(np.mean(np.abs(err)) / scale) if scale > 0 else np.nan,
            })
        for k in range(H):
            record = {"series": series_id, "origin": stamp, "step": k + 1,
                      "timestamp": index[origin + k + 1],
                      "actual": actual[i, k], MODEL_NAME: pred[i, k]}
            record.update({name: v[i, k] for name, v in base.items()})
            forecasts.append(record)
