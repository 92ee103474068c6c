"""Rolling-origin backtests of a forecaster beside the baselines, on the same origins."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tsrnn import metrics as _metrics
from tsrnn import windowing
from tsrnn.forecasting import baselines
from tsrnn.forecasting.baselines import BASELINES
from tsrnn.forecasting.forecaster import RNNForecaster, as_frame, past_windows
from tsrnn.forecasting.seasonality import seasonal_period

__all__ = ["BacktestResult", "backtest"]

MODEL_NAME = "tsrnn"
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

    def to_markdown(self, digits: int = 4) -> str:
        """The overall table as GitHub markdown (best value per metric in bold)."""
        table = self.overall
        header = "| model | " + " | ".join(table.columns) + " |"
        rule = "| --- | " + " | ".join("---:" for _ in table.columns) + " |"
        best = table.idxmin()
        rows = []
        for model, row in table.iterrows():
            cells = []
            for col, value in row.items():
                text = f"{value:.{digits}g}"
                cells.append(f"**{text}**" if best[col] == model else text)
            rows.append(f"| {model} | " + " | ".join(cells) + " |")
        return "\n".join([header, rule, *rows])

    def __str__(self) -> str:
        return self.overall.to_string(float_format=lambda v: f"{v:.4g}")


def backtest(forecaster: RNNForecaster, data, *, target: str | None = None, exog=None,
             future_covariates=None, initial: float | int = 0.7, step: int | None = None,
             refit: bool | int = False, seasonality: int | None = None,
             max_origins: int | None = None, progress=None) -> BacktestResult:
    """Rolling-origin evaluation of ``forecaster`` beside naive baselines.

    The first ``initial`` rows (a fraction or a count) train the model; forecast
    origins then start at the end of that span and advance by ``step`` rows
    (default: the horizon) while a full horizon of actual values follows. Every
    model is evaluated on exactly the same origins.

    Parameters
    ----------
    forecaster : RNNForecaster
        Unfitted template (it is cloned; the argument is not modified).
    data : pandas.Series or pandas.DataFrame
    target, exog, future_covariates
        As for :meth:`RNNForecaster.fit`.
    initial : float or int, default=0.7
        Training span before the first origin: a fraction of the rows in (0, 1) or
        a number of rows.
    step : int, optional
        Rows between consecutive origins (default ``horizon``).
    refit : bool or int, default=False
        False: fit once on the initial span. True: refit at every origin on all
        data before it. An int k: refit every k origins.
    seasonality : int, optional
        Season length for seasonal naive and MASE (default from the frequency:
        :func:`seasonal_period`).
    max_origins : int, optional
        Use only the last ``max_origins`` origins.
    progress : callable, optional
        Called as ``progress(done, total)`` after each block of origins.

    Returns
    -------
    BacktestResult
    """
    from sklearn.base import clone

    started = time.perf_counter()
    frame = as_frame(data)
    template = clone(forecaster)
    template._check_params()
    L, H = template.lookback, template.horizon
    step = H if step is None else int(step)
    if step < 1:
        raise ValueError(f"step must be >= 1; got {step}.")
    n_rows = len(frame)
    if isinstance(initial, float) and not isinstance(initial, bool):
        if not 0 < initial < 1:
            raise ValueError(f"initial as a fraction must be in (0, 1); got {initial}.")
        n_initial = int(n_rows * initial)
    else:
        n_initial = int(initial)
    if n_initial < L + H + 2 or n_initial > n_rows - H:
        raise ValueError(
            f"initial={initial} gives {n_initial} training rows of {n_rows}; it needs at "
            f"least lookback + horizon + 2 = {L + H + 2} and must leave a horizon ({H}) to "
            "test."
        )
    # origin = row index of the last observed row
    origins = np.arange(n_initial - 1, n_rows - H, step)
    if max_origins is not None:
        origins = origins[-int(max_origins):]
    if refit is True:
        block = 1
    elif refit is False or refit == 0:
        block = len(origins)
    else:
        block = int(refit)
    m = seasonal_period(frame.index) if seasonality is None else int(seasonality)

    per_origin, forecasts = [], []
    hits, n_interval = 0, 0
    refits = 0
    for b0 in range(0, len(origins), block):
        block_origins = origins[b0:b0 + block]
        train_end = block_origins[0] + 1
        model = clone(template).fit(frame.iloc[:train_end], target=target, exog=exog,
                                    future_covariates=future_covariates)
        refits += 1
        design = model.design_
        full = model._design_frame(frame)
        values = full.to_numpy(dtype=np.float64)
        y_all = values[:, 0]
        X_past = past_windows(values, block_origins, L)
        pred, half_width = model._forecast_origins(values, block_origins)
        actual = y_all[block_origins[:, None] + np.arange(1, H + 1)[None, :]]
        # baselines on the same origins, fitted on the same training span
        train_windows = windowing.make_windows(full.iloc[:train_end], L, H,
                                               target=design.target, features=design.columns)
        base = {
            "naive": baselines.naive(y_all[block_origins], H),
            "seasonal_naive": baselines.seasonal_naive(y_all, block_origins, H, m),
            "ridge": baselines.ridge_lags(train_windows.X, train_windows.y, X_past, H),
        }
        scale_series = y_all[:train_end]
        if len(scale_series) <= m:
            raise ValueError(f"training span too short for seasonality {m}.")
        scale = np.mean(np.abs(scale_series[m:] - scale_series[:-m]))
        if half_width is not None:
            inside = np.abs(actual - pred) <= half_width
            hits += int(inside.sum())
            n_interval += inside.size
        for i, origin in enumerate(block_origins):
            stamp = frame.index[origin]
            for name, p in [(MODEL_NAME, pred[i])] + [(k, v[i]) for k, v in base.items()]:
                err = actual[i] - p
                per_origin.append({
                    "origin": stamp, "model": name,
                    "mae": float(np.mean(np.abs(err))),
                    "rmse": float(np.sqrt(np.mean(err ** 2))),
                    "smape": float(_metrics.smape(actual[i], p)),
                    "mase": float(np.mean(np.abs(err)) / scale) if scale > 0 else np.nan,
                })
            for k in range(H):
                record = {"origin": stamp, "step": k + 1,
                          "timestamp": frame.index[origin + k + 1],
                          "actual": actual[i, k], MODEL_NAME: pred[i, k]}
                record.update({name: v[i, k] for name, v in base.items()})
                forecasts.append(record)
        if progress is not None:
            progress(min(b0 + block, len(origins)), len(origins))

    per_origin = pd.DataFrame(per_origin)
    order = [MODEL_NAME, *BASELINES]
    overall = (per_origin.groupby("model")[list(DEFAULT_METRICS)].mean()
               .reindex(order))
    forecasts = pd.DataFrame(forecasts)
    by_horizon = pd.DataFrame({
        name: (forecasts[name] - forecasts["actual"]).abs().groupby(forecasts["step"]).mean()
        for name in order
    })
    return BacktestResult(
        overall=overall, per_origin=per_origin, by_horizon=by_horizon, forecasts=forecasts,
        seasonality=m, seconds=time.perf_counter() - started,
        coverage=template.coverage,
        interval_hit_rate=(hits / n_interval) if n_interval else None,
        refits=refits,
    )
