"""RNNForecaster: pandas in, pandas out forecasting, with backtests against baselines.

Here time meets models: :mod:`tsrnn.windowing` cuts the series into windows, an
:class:`~tsrnn.estimator.RNNRegressor` learns them, and forecasts come back stamped
with future timestamps.

Inputs of one window, per time step (columns of ``X``)::

    target | past covariates | calendar features | future covariates | is_future

* the target, normalised per window (see ``normalization``);
* past covariates (``exog``): observed up to the forecast origin only;
* calendar features (sine/cosine of hour, day of week/year) of each step's
  timestamp, known in advance by construction;
* known-future covariates (``future_covariates``): when given, the window is
  extended by the forecast steps, whose rows carry these covariates and the
  calendar, with the target and past covariates zeroed and ``is_future = 1``, so
  the network reads the future values it may rely on.

With ``highway=True`` (the default) a ridge regression on the window's target
lags is fitted first and the network learns what it leaves unexplained; the
forecast is their sum. This is LSTNet's linear "highway" (Lai et al., 2018): the
linear part carries the scale-sensitive autoregressive signal that a network
trained by SGD approximates poorly, the network adds the non-linear rest.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import Ridge
from sklearn.utils.validation import check_is_fitted

from tsrnn import metrics as _metrics
from tsrnn import windowing
from tsrnn.estimator import RNNRegressor

__all__ = ["RNNForecaster", "BacktestResult", "backtest", "seasonal_period"]

CALENDAR_CHOICES = ("hour", "day_of_week", "day_of_year")
NORMALIZATIONS = ("auto", "window", "scaled", "difference", "none")
STRATEGIES = ("direct", "recursive")
IS_FUTURE = "is_future"
#: RNNRegressor parameters a forecaster sets by default (others via ``regressor_params``).
REGRESSOR_DEFAULTS = dict(cell="lstm", hidden_size=32, num_layers=1, max_iter=15,
                          learning_rate_init=0.003, batch_size=128, early_stopping=True,
                          validation_fraction=0.1, n_iter_no_change=8)


def seasonal_period(index: pd.DatetimeIndex) -> int:
    """Season length in steps implied by an index's frequency.

    Sub-daily data: the steps in a day when that is a whole number of at most 1440
    (hourly: 24, half-hourly: 48, 15 minutes: 96); daily: 7 (a week); business/trading
    days: 5; weekly: 52; monthly: 12; quarterly: 4; anything else (yearly, multiples
    such as every 2 days, irregular): 1 (no season).
    """
    freq = index.freq or (pd.infer_freq(index) if len(index) >= 3 else None)
    if freq is None:
        return 5 if _looks_like_trading_days(index) else 1
    offset = pd.tseries.frequencies.to_offset(freq)
    offsets = pd.offsets
    if isinstance(offset, offsets.Tick) and offset.nanos < pd.Timedelta(days=1).value:
        steps, remainder = divmod(pd.Timedelta(days=1).value, offset.nanos)
        return int(steps) if remainder == 0 and steps <= 1440 else 1
    if offset.n != 1:
        return 1
    if isinstance(offset, offsets.Day):
        return 7
    if isinstance(offset, (offsets.BusinessDay, offsets.CustomBusinessDay)):
        return 5
    if isinstance(offset, offsets.Week):
        return 52
    if isinstance(offset, (offsets.MonthEnd, offsets.MonthBegin, offsets.BusinessMonthEnd,
                           offsets.BusinessMonthBegin)):
        return 12
    if isinstance(offset, (offsets.QuarterEnd, offsets.QuarterBegin,
                           offsets.BQuarterEnd, offsets.BQuarterBegin)):
        return 4
    return 1


def _looks_like_trading_days(index: pd.DatetimeIndex) -> bool:
    return len(index) > 2 and bool(np.all(index.day_of_week < 5))


def _as_frame(data) -> pd.DataFrame:
    if isinstance(data, pd.Series):
        return data.to_frame(name=windowing.UNNAMED_SERIES if data.name is None else data.name)
    if isinstance(data, pd.DataFrame):
        return data
    raise TypeError(
        f"data must be a pandas Series or DataFrame with a DatetimeIndex; got "
        f"{type(data).__name__}."
    )


def _as_list(value, name) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{name} must be a column name or a list of column names; got "
                        f"{value!r}.") from None


@dataclass
class _Design:
    """Column roles of a fitted forecaster."""

    target: str
    exog: list[str]
    calendar: list[str]
    future: list[str]

    @property
    def known(self) -> list[str]:
        return self.calendar + self.future

    @property
    def columns(self) -> list[str]:
        return [self.target] + self.exog + self.calendar + self.future

    @property
    def extended(self) -> bool:
        return bool(self.future)


class RNNForecaster(BaseEstimator):
    """Forecast a time series with a recurrent network: pandas in, pandas out.

    Parameters
    ----------
    lookback : int, default=48
        Input window length in time steps.
    horizon : int, default=24
        Steps forecast ahead (the most :meth:`predict` can give).
    strategy : {'direct', 'recursive'}, default='direct'
        'direct': one network outputs all ``horizon`` steps at once.
        'recursive': a one-step network fed its own forecasts ``horizon`` times
        (cannot use past covariates, whose future values are unknown).
    normalization : {'auto', 'window', 'scaled', 'difference', 'none'}, default='auto'
        How each window is normalised (and the forecasts mapped back).
        'window': inputs and targets relative to the window's last target value,
        so trending series (prices) are forecast beyond the range seen in
        training. 'scaled': as 'window', then divided by the window's own scale
        (its mean absolute step), for series whose swings grow with their level.
        'difference': inputs are the window's steps in those units, targets as
        for 'scaled'. 'none': levels, globally standardised (bounded, stationary
        series only). 'auto' picks 'window' or 'scaled', whichever lets a ridge on
        the target lags forecast the held-out calibration windows better.
    calendar : 'auto', None or list of {'hour', 'day_of_week', 'day_of_year'}, default='auto'
        Calendar features from the timestamps. 'auto' picks hour and day of year
        for sub-daily data, day of week and day of year for daily data, day of
        year for anything coarser or irregular.
    coverage : float or None, default=0.9
        Nominal coverage of the prediction intervals: split conformal, from the
        absolute errors on the newest ``calibration_fraction`` of windows (held
        out of training) in units of each window's scale, so intervals widen
        when the recent series is more volatile. None: no intervals, no hold-out.
    calibration_fraction : float, default=0.1
        Share of the windows held out to calibrate the intervals.
    highway : bool, default=True
        Add a linear autoregressive component (ridge on the target lags of each
        window, normalised as the network's inputs) and train the network on its
        residuals. False: the network alone.
    highway_alpha : float, default=1.0
        Ridge penalty of the highway.
    shrink_to_naive : bool, default=True
        Damp each forecast step's predicted change from the last value by a
        weight in [0, 1], estimated by least squares on the held-out calibration
        windows: a model without out-of-sample skill (a random walk such as daily
        stock prices) then falls back to the naive forecast instead of adding
        noise to it, while a skilful one keeps weights near 1.
    cell, hidden_size, num_layers, max_iter, learning_rate_init, batch_size, early_stopping
        Passed to :class:`~tsrnn.RNNRegressor` (defaults tuned for forecasting:
        see ``REGRESSOR_DEFAULTS``); None keeps the forecaster default.
    random_state : int, RandomState or None, default=None
    verbose : bool or int, default=False
    regressor_params : dict, optional
        Any other :class:`~tsrnn.RNNRegressor` parameter (e.g. ``dropout``,
        ``n_jobs``, ``device``).

    Attributes
    ----------
    regressor_ : RNNRegressor
        The fitted network.
    target_ : str
    exog_ : list of str
        Past covariates.
    future_covariates_ : list of str
    calendar_ : list of str
        Calendar feature columns used.
    freq_ : pandas.DateOffset or None
        Frequency of the training data (None for a trading-day calendar).
    normalization_ : str
        The normalisation used ('auto' resolved).
    shrinkage_ : ndarray of shape (horizon,) or None
        Per-step damping weights (``shrink_to_naive``).
    scale_floor_ : float
        Smallest window scale used by the normalisation.
    highway_coef_ : ndarray of shape (lookback, n_steps) or None
        Ridge weights of the highway on the normalised target lags.
    highway_intercept_ : ndarray of shape (n_steps,) or None
    residuals_ : ndarray of shape (n_calibration, horizon) or None
        Absolute forecast errors on the calibration windows, divided by each
        window's scale (see ``normalization``).
    last_timestamp_ : pandas.Timestamp
        End of the training data (where ``predict()`` starts by default).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from tsrnn import RNNForecaster
    >>> idx = pd.date_range("2024-01-01", periods=400, freq="h")
    >>> temp = pd.Series(10 + 5 * np.sin(2 * np.pi * np.arange(400) / 24), index=idx,
    ...                  name="temp")
    >>> fc = RNNForecaster(lookback=24, horizon=6, max_iter=3, random_state=0).fit(temp)
    >>> forecast = fc.predict()
    >>> list(forecast.columns), len(forecast), str(forecast.index[0])
    (['temp', 'lower', 'upper'], 6, '2024-01-17 16:00:00')
    """

    def __init__(self, lookback: int = 48, horizon: int = 24, *, strategy: str = "direct",
                 normalization: str = "auto", calendar="auto", coverage: float | None = 0.9,
                 calibration_fraction: float = 0.1, highway: bool = True,
                 highway_alpha: float = 1.0, shrink_to_naive: bool = True,
                 cell: str | None = None,
                 hidden_size: int | None = None, num_layers: int | None = None,
                 max_iter: int | None = None, learning_rate_init: float | None = None,
                 batch_size: int | str | None = None, early_stopping: bool | None = None,
                 random_state=None, verbose: bool | int = False,
                 regressor_params: dict | None = None):
        self.lookback = lookback
        self.horizon = horizon
        self.strategy = strategy
        self.normalization = normalization
        self.calendar = calendar
        self.coverage = coverage
        self.calibration_fraction = calibration_fraction
        self.highway = highway
        self.highway_alpha = highway_alpha
        self.shrink_to_naive = shrink_to_naive
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.random_state = random_state
        self.verbose = verbose
        self.regressor_params = regressor_params

    # ------------------------------------------------------------ parameters

    def _check_params(self):
        for name in ("lookback", "horizon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int; got {value!r}.")
            if value < 1:
                raise ValueError(f"{name} must be >= 1; got {value}.")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}; got {self.strategy!r}.")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}; got {self.normalization!r}."
            )
        if self.coverage is not None and not (0 < self.coverage < 1):
            raise ValueError(f"coverage must be in (0, 1) or None; got {self.coverage!r}.")
        if not (0 < self.calibration_fraction < 1):
            raise ValueError(
                f"calibration_fraction must be in (0, 1); got {self.calibration_fraction!r}."
            )
        if self.calendar not in ("auto", None):
            bad = [c for c in _as_list(self.calendar, "calendar") if c not in CALENDAR_CHOICES]
            if bad:
                raise ValueError(
                    f"calendar entries must be among {CALENDAR_CHOICES}; got {bad}."
                )

    def _regressor(self) -> RNNRegressor:
        params = dict(REGRESSOR_DEFAULTS)
        for name in ("cell", "hidden_size", "num_layers", "max_iter", "learning_rate_init",
                     "batch_size", "early_stopping"):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        params.update(random_state=self.random_state, verbose=self.verbose)
        extra = dict(self.regressor_params or {})
        unknown = set(extra) - set(RNNRegressor().get_params())
        if unknown:
            raise ValueError(
                f"regressor_params has unknown RNNRegressor parameters {sorted(unknown)}."
            )
        params.update(extra)
        return RNNRegressor(**params)

    def _calendar_choice(self, index: pd.DatetimeIndex) -> list[str]:
        if self.calendar is None:
            return []
        if self.calendar != "auto":
            return _as_list(self.calendar, "calendar")
        step = index[1:] - index[:-1] if len(index) > 1 else pd.TimedeltaIndex([])
        typical = step.median() if len(step) else pd.Timedelta(days=1)
        if typical < pd.Timedelta(days=1):
            return ["hour", "day_of_year"]
        if typical == pd.Timedelta(days=1) and not _looks_like_trading_days(index):
            return ["day_of_week", "day_of_year"]
        return ["day_of_year"]

    @staticmethod
    def _calendar_frame(index: pd.DatetimeIndex, choice: list[str]) -> pd.DataFrame:
        if not choice:
            return pd.DataFrame(index=index)
        return windowing.calendar_features(index, hour="hour" in choice,
                                           day_of_week="day_of_week" in choice,
                                           day_of_year="day_of_year" in choice)

    # ------------------------------------------------------------------- fit

    def fit(self, data, target: str | None = None, exog=None, future_covariates=None,
            fill: str | None = None) -> "RNNForecaster":
        """Fit the network on windows of ``data``.

        Parameters
        ----------
        data : pandas.Series or pandas.DataFrame
            History with a sorted, gap-free :class:`pandas.DatetimeIndex` (or a
            trading-day calendar).
        target : str, optional
            Column to forecast (default: the Series, or the only column).
        exog : str or list of str, optional
            Past covariates: inputs observed up to the forecast origin.
        future_covariates : str or list of str, optional
            Covariates known in advance; :meth:`predict` then needs their values
            for the forecast steps (``future=``).
        fill : {None, 'ffill', 'interpolate'}, optional
            Repair missing timestamps or NaNs instead of raising (see
            :func:`tsrnn.windowing.make_windows`).

        Returns
        -------
        self : RNNForecaster
        """
        self._check_params()
        frame = _as_frame(data)
        design, frame = self._design(frame, target, exog, future_covariates, fill)
        if self.strategy == "recursive" and design.exog:
            raise ValueError(
                f"strategy='recursive' cannot use past covariates {design.exog}: their future "
                "values are unknown when the forecasts are fed back. Use strategy='direct', "
                "or pass them as future_covariates if they are known in advance."
            )
        windows = windowing.make_windows(frame, self.lookback, self.horizon,
                                         target=design.target, features=design.columns)
        values = frame[design.columns].to_numpy(dtype=np.float64)
        n = windows.n_windows
        n_cal = 0
        if self.coverage is not None or self.shrink_to_naive:
            n_cal = int(math.ceil(self.calibration_fraction * n))
            # calibration targets must not be training targets: skip horizon - 1 windows
            if n - n_cal - (self.horizon - 1) < 2 or n_cal < 1:
                raise ValueError(
                    f"{n} windows are too few to hold out {n_cal} for calibrating intervals "
                    f"(plus a gap of horizon - 1 = {self.horizon - 1}); use a longer series, a "
                    "smaller lookback/horizon, or coverage=None and shrink_to_naive=False."
                )
        n_train = n - n_cal - (self.horizon - 1 if n_cal else 0)
        regressor = self._regressor()
        _, _, train_scale = self._normalize(windows.X[:n_train], ("scaled", 0.0))
        positive = train_scale[train_scale > 0]
        floor = 0.01 * float(np.median(positive)) if positive.size else 1.0
        norm = (self._choose_normalization(windows, n_train, n_cal, floor), floor)
        X, y = self._training_arrays(windows, values, design, slice(0, n_train), norm)
        if len(X) < 2:
            raise ValueError(f"only {len(X)} training windows; use a longer series.")
        highway = None
        if self.highway:
            lags = self._highway_features(X)
            ridge = Ridge(alpha=float(self.highway_alpha)).fit(lags, y)
            n_steps = y.shape[1]
            highway = (np.asarray(ridge.coef_).reshape(n_steps, -1).T.copy(),
                       np.asarray(ridge.intercept_, dtype=float).reshape(n_steps).copy())
            y = y - (lags @ highway[0] + highway[1])
        regressor.fit(X, y)
        residuals = weights = None
        if n_cal:
            cal = slice(n - n_cal, n)
            X_cal, y_cal = windows.X[cal], windows.y[cal]
            preds = self._forecast_windows(regressor, design, X_cal,
                                           self._known_future(windows, values, design, cal),
                                           self.horizon, highway, norm)
            if self.shrink_to_naive:
                weights = naive_shrinkage(X_cal[:, -1, 0], preds, y_cal)
                last = X_cal[:, -1, 0][:, None]
                preds = last + weights[None, :] * (preds - last)
            # in units of each window's scale, so that interval widths follow the
            # volatility of the window being forecast (normalised conformal)
            _, _, cal_scale = self._normalize(X_cal, norm)
            residuals = np.abs(y_cal - preds) / cal_scale[:, None]
        # commit
        self.regressor_ = regressor
        self.normalization_, self.scale_floor_ = norm
        self.shrinkage_ = weights
        self.highway_coef_ = None if highway is None else highway[0]
        self.highway_intercept_ = None if highway is None else highway[1]
        self.design_ = design
        self.target_ = design.target
        self.exog_ = list(design.exog)
        self.future_covariates_ = list(design.future)
        self.calendar_ = list(design.calendar)
        self.freq_ = windows.freq
        self.residuals_ = residuals
        self.last_timestamp_ = frame.index[-1]
        self.history_ = frame[[design.target] + design.exog + design.future].iloc[
            -(self.lookback + 1):].copy()
        self.n_training_windows_ = int(len(X))
        return self

    def _design(self, frame, target, exog, future_covariates, fill):
        """Validate column roles; return them and the frame with calendar columns."""
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise TypeError(
                f"data must have a DatetimeIndex; got {type(frame.index).__name__}."
            )
        if target is None:
            if frame.shape[1] != 1:
                raise ValueError(
                    f"data has {frame.shape[1]} columns {list(frame.columns)}; say which to "
                    "forecast with target=..."
                )
            target = frame.columns[0]
        exog = _as_list(exog, "exog")
        future = _as_list(future_covariates, "future_covariates")
        for role, names in (("target", [target]), ("exog", exog),
                            ("future_covariates", future)):
            missing = [c for c in names if c not in frame.columns]
            if missing:
                raise ValueError(
                    f"{role} column(s) {missing} not in data; columns are {list(frame.columns)}."
                )
        both = sorted(set(exog) & set(future))
        if both:
            raise ValueError(
                f"column(s) {both} given both as past covariates (exog) and as known-future "
                "covariates (future_covariates); a column is one or the other."
            )
        if target in exog or target in future:
            raise ValueError(f"the target {target!r} cannot also be a covariate.")
        frame = frame[[target] + exog + future]
        if fill is not None:
            frame = _fill(frame, fill)
        choice = self._calendar_choice(frame.index)
        calendar = self._calendar_frame(frame.index, choice)
        clash = sorted(set(calendar.columns) & set(frame.columns))
        if clash:
            raise ValueError(
                f"data columns {clash} clash with calendar feature names; rename them or set "
                "calendar=None."
            )
        frame = pd.concat([frame, calendar], axis=1)
        design = _Design(str(target) if not isinstance(target, str) else target, exog,
                         list(calendar.columns), future)
        self._calendar_choice_ = choice
        return design, frame

    # -------------------------------------------------------------- arrays

    def _known_future(self, windows, values, design, rows) -> np.ndarray | None:
        """Known-future columns for the forecast steps of the selected windows."""
        if not design.extended and self.strategy == "direct":
            return None
        k0 = 1 + len(design.exog)
        starts = windows.starts[rows] + self.lookback
        steps = starts[:, None] + np.arange(self.horizon)[None, :]
        return values[steps][:, :, k0:]

    def _normalize(self, X: np.ndarray, norm=None):
        """Per-window normalisation of the target column.

        ``norm`` is ``(mode, floor)``: the normalisation and the smallest window
        scale (default: the fitted ones). Returns the normalised copy of ``X`` and
        the per-window ``level`` and ``scale`` (n,) that map normalised targets
        back: ``y = level + scale * y_n``.
        """
        mode, floor = norm if norm is not None else (self.normalization_, self.scale_floor_)
        X = X.copy()
        target = X[:, :, 0]
        n = len(X)
        if mode == "none":
            return X, np.zeros(n), np.ones(n)
        level = target[:, -1].copy()
        if mode == "window":
            X[:, :, 0] = target - level[:, None]
            return X, level, np.ones(n)
        scale = (np.mean(np.abs(np.diff(target, axis=1)), axis=1) if target.shape[1] > 1
                 else np.zeros(n))
        # a flat window has no scale of its own: fall back to the floor
        scale = np.maximum(scale, floor)
        if mode == "scaled":
            X[:, :, 0] = (target - level[:, None]) / scale[:, None]
        else:  # difference
            X[:, 1:, 0] = np.diff(target, axis=1) / scale[:, None]
            X[:, 0, 0] = 0.0
        return X, level, scale

    def _choose_normalization(self, windows, n_train, n_cal, floor) -> str:
        """'auto': the normalisation under which a ridge on the target lags forecasts
        the held-out calibration windows best ('window' or 'scaled')."""
        if self.normalization != "auto":
            return self.normalization
        if not n_cal:
            return "window"
        errors = {}
        train = slice(0, n_train)
        cal = slice(len(windows.X) - n_cal, len(windows.X))
        for mode in ("window", "scaled"):
            Xt, level, scale = self._normalize(windows.X[train], (mode, floor))
            yt = (windows.y[train] - level[:, None]) / scale[:, None]
            probe = Ridge(alpha=float(self.highway_alpha)).fit(Xt[:, :, 0], yt)
            Xc, level, scale = self._normalize(windows.X[cal], (mode, floor))
            pred = probe.predict(Xc[:, :, 0]) * scale[:, None] + level[:, None]
            errors[mode] = float(np.mean(np.abs(pred - windows.y[cal])))
        return min(errors, key=errors.get)

    def _model_inputs(self, X_past, known_future, design, n_steps, norm=None):
        """Normalised network inputs and (level, scale) from raw past windows."""
        Xn, level, scale = self._normalize(X_past, norm)
        if design.extended:
            n, L, F = Xn.shape
            ext = np.zeros((n, L + n_steps, F + 1))
            ext[:, :L, :F] = Xn
            k0 = 1 + len(design.exog)
            ext[:, L:, k0:F] = known_future[:, :n_steps]
            ext[:, L:, F] = 1.0
            Xn = ext
        return Xn, (level, scale)

    def _training_arrays(self, windows, values, design, rows, norm):
        n_steps = self.horizon if self.strategy == "direct" else 1
        known = self._known_future(windows, values, design, rows)
        X, (level, scale) = self._model_inputs(windows.X[rows], known, design, n_steps,
                                               norm)
        y = (windows.y[rows][:, :n_steps] - level[:, None]) / scale[:, None]
        return X, y

    def _highway_features(self, X: np.ndarray) -> np.ndarray:
        """The normalised target lags of each window (the highway's inputs)."""
        return X[:, :self.lookback, 0]

    def _model_output(self, regressor, highway, X):
        """Network output plus the highway, in normalised units (n, n_steps)."""
        pred = regressor.predict(X).reshape(len(X), -1)
        if highway is not None:
            pred = pred + self._highway_features(X) @ highway[0] + highway[1]
        return pred

    def _fitted_highway(self):
        if self.highway_coef_ is None:
            return None
        return self.highway_coef_, self.highway_intercept_

    def _forecast_windows(self, regressor, design, X_past, known_future, horizon,
                          highway=None, norm=None, weights=None):
        """Forecasts (n, horizon) in data units from raw past windows (n, L, F).

        ``weights`` (horizon,) damp each step's predicted change from the last
        value (see ``shrink_to_naive``); None applies none.
        """
        pred = self._raw_forecast(regressor, design, X_past, known_future, horizon,
                                  highway, norm)
        if weights is not None:
            last = X_past[:, -1, 0][:, None]
            pred = last + weights[None, :horizon] * (pred - last)
        return pred

    def _raw_forecast(self, regressor, design, X_past, known_future, horizon, highway,
                      norm):
        if self.strategy == "direct":
            X, (level, scale) = self._model_inputs(X_past, known_future, design,
                                                   self.horizon, norm)
            pred = self._model_output(regressor, highway, X)
            return pred[:, :horizon] * scale[:, None] + level[:, None]
        window = X_past.copy()
        out = np.empty((len(window), horizon))
        k0 = 1 + len(design.exog)
        for k in range(horizon):
            step_known = None if known_future is None else known_future[:, k:k + 1]
            X, (level, scale) = self._model_inputs(window, step_known, design, 1, norm)
            step = self._model_output(regressor, highway, X).reshape(-1) * scale + level
            out[:, k] = step
            window[:, :-1] = window[:, 1:]
            window[:, -1, 0] = step
            if known_future is not None:
                window[:, -1, k0:] = known_future[:, k]
        return out

    # --------------------------------------------------------------- predict

    def predict(self, horizon: int | None = None, *, history=None, future=None,
                coverage: float | None = None) -> pd.DataFrame:
        """Forecast the steps after the training data, or after ``history``.

        Parameters
        ----------
        horizon : int, optional
            Steps to forecast, at most the fitted ``horizon`` (default: all).
        history : pandas.Series or pandas.DataFrame, optional
            Newer observations (target, past covariates and known-future
            covariates, same columns as in ``fit``) ending where the forecast should
            start; at least ``lookback`` rows. The model is not refitted.
        future : pandas.DataFrame, optional
            Values of the known-future covariates for the forecast timestamps
            (required when the model was fitted with ``future_covariates``).
        coverage : float, optional
            Interval coverage for this call (default: the fitted ``coverage``).

        Returns
        -------
        pandas.DataFrame
            Indexed by the forecast timestamps; a column named after the target
            with the point forecasts, and ``lower``/``upper`` when intervals are
            available.
        """
        check_is_fitted(self, "regressor_")
        design = self.design_
        horizon = self.horizon if horizon is None else horizon
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral):
            raise TypeError(f"horizon must be an int; got {horizon!r}.")
        if not 1 <= horizon <= self.horizon:
            raise ValueError(
                f"horizon must be between 1 and the fitted horizon {self.horizon}; got "
                f"{horizon}. Refit with a longer horizon to forecast further."
            )
        if history is None:
            recent = self.history_
        else:
            recent = _as_frame(history)
            needed = [design.target] + design.exog + design.future
            missing = [c for c in needed if c not in recent.columns]
            if missing:
                raise ValueError(
                    f"history lacks column(s) {missing}; it needs {needed} as in fit."
                )
            recent = recent[needed]
        if not isinstance(recent.index, pd.DatetimeIndex):
            raise TypeError("history must have a DatetimeIndex.")
        frame = pd.concat([recent, self._calendar_frame(recent.index,
                                                        self._calendar_choice_)], axis=1)
        window = windowing.last_window(frame, self.lookback, features=design.columns)
        if self.freq_ is not None:
            stamps = windowing.future_index(window.index, horizon, freq=self.freq_)
            stamps_full = windowing.future_index(window.index, self.horizon, freq=self.freq_)
        else:
            stamps = windowing.future_index(window.index, horizon)
            stamps_full = windowing.future_index(window.index, self.horizon)
        known = self._future_known(stamps_full, future, design)
        pred = self._forecast_windows(self.regressor_, design, window.X, known, horizon,
                                      self._fitted_highway(), None, self.shrinkage_)[0]
        out = pd.DataFrame({design.target: pred}, index=stamps)
        coverage = self.coverage if coverage is None else coverage
        if coverage is not None and self.residuals_ is not None:
            _, _, scale = self._normalize(window.X)
            width = conformal_quantile(self.residuals_[:, :horizon], coverage) * scale[0]
            out["lower"] = pred - width
            out["upper"] = pred + width
        return out

    def _future_known(self, stamps, future, design) -> np.ndarray | None:
        if not design.extended and self.strategy == "direct":
            return None
        calendar = self._calendar_frame(stamps, self._calendar_choice_)
        parts = [calendar.to_numpy(dtype=np.float64)]
        if design.future:
            if future is None:
                raise ValueError(
                    f"the model uses known-future covariates {design.future}: pass their "
                    f"values for the forecast timestamps with future=... (from {stamps[0]})."
                )
            future = _as_frame(future)
            missing = [c for c in design.future if c not in future.columns]
            if missing:
                raise ValueError(f"future lacks column(s) {missing}.")
            aligned = future[design.future].reindex(stamps)
            if aligned.isna().any().any():
                absent = aligned.index[aligned.isna().any(axis=1)][0]
                raise ValueError(
                    f"future has no value (or NaN) for {absent}; it must cover the "
                    f"{len(stamps)} forecast timestamps {stamps[0]} .. {stamps[-1]}."
                )
            parts.append(aligned.to_numpy(dtype=np.float64))
        return np.concatenate(parts, axis=1)[None]


def _fill(frame: pd.DataFrame, fill: str) -> pd.DataFrame:
    """Reindex to the regular grid and fill, as make_windows does."""
    windows = windowing.make_windows(frame, 1, 0, features=list(frame.columns), fill=fill)
    grid = windows.index
    frame = frame.reindex(grid)
    frame = frame.ffill() if fill == "ffill" else frame.interpolate(method="time")
    return frame


def naive_shrinkage(last: np.ndarray, pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per-step weight w in [0, 1] minimising ||actual - last - w (pred - last)||^2.

    Parameters
    ----------
    last : (n,) last observed values; pred, actual : (n, horizon).
    """
    change = pred - last[:, None]
    moved = actual - last[:, None]
    denom = np.sum(change * change, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(denom > 0, np.sum(change * moved, axis=0) / denom, 0.0)
    return np.clip(w, 0.0, 1.0)


def conformal_quantile(residuals: np.ndarray, coverage: float) -> np.ndarray:
    """Per-step split-conformal half-width: the ceil((n+1) coverage)-th smallest residual.

    Infinite when there are too few residuals for the requested coverage.
    """
    n = residuals.shape[0]
    rank = int(math.ceil((n + 1) * coverage))
    if rank > n:
        return np.full(residuals.shape[1], np.inf)
    return np.sort(residuals, axis=0)[rank - 1]


# ---------------------------------------------------------------------------
# backtest
# ---------------------------------------------------------------------------

MODEL_NAME = "tsrnn"
BASELINES = ("naive", "seasonal_naive", "ridge")
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


def _naive(y_hist_last: np.ndarray, horizon: int) -> np.ndarray:
    return np.repeat(y_hist_last[:, None], horizon, axis=1)


def _seasonal_naive(target: np.ndarray, origin_rows: np.ndarray, horizon: int,
                    m: int) -> np.ndarray:
    steps = np.arange(1, horizon + 1)
    back = m * np.ceil(steps / m).astype(int)
    rows = origin_rows[:, None] + steps[None, :] - back[None, :]
    return target[rows]


def _ridge_lags(train_X, train_y, test_X, horizon):
    """Ridge regression on the target's lags, relative to the window's last value."""
    def features(X):
        lags = X[:, :, 0]
        return lags - lags[:, -1:]

    model = Ridge(alpha=1.0).fit(features(train_X), train_y - train_X[:, -1, :1])
    return model.predict(features(test_X)).reshape(len(test_X), horizon) + test_X[:, -1, :1]


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
    frame = _as_frame(data)
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
        full = pd.concat([frame[design.columns[:1] + design.exog + design.future],
                          model._calendar_frame(frame.index, model._calendar_choice_)], axis=1)
        values = full[design.columns].to_numpy(dtype=np.float64)
        y_all = values[:, 0]
        X_past = np.stack([values[o - L + 1:o + 1] for o in block_origins])
        known = None
        if design.extended or model.strategy == "recursive":
            rows = block_origins[:, None] + np.arange(1, H + 1)[None, :]
            known = values[rows][:, :, 1 + len(design.exog):]
        pred = model._forecast_windows(model.regressor_, design, X_past, known, H,
                                       model._fitted_highway(), None, model.shrinkage_)
        actual = y_all[block_origins[:, None] + np.arange(1, H + 1)[None, :]]
        # baselines on the same origins, fitted on the same training span
        train_windows = windowing.make_windows(full.iloc[:train_end], L, H,
                                               target=design.target, features=design.columns)
        base = {
            "naive": _naive(y_all[block_origins], H),
            "seasonal_naive": _seasonal_naive(y_all, block_origins, H, m),
            "ridge": _ridge_lags(train_windows.X, train_windows.y, X_past, H),
        }
        scale_series = y_all[:train_end]
        if len(scale_series) <= m:
            raise ValueError(f"training span too short for seasonality {m}.")
        scale = np.mean(np.abs(scale_series[m:] - scale_series[:-m]))
        if model.residuals_ is not None and model.coverage is not None:
            _, _, window_scale = model._normalize(X_past)
            width = conformal_quantile(model.residuals_, model.coverage)
            inside = np.abs(actual - pred) <= width[None, :] * window_scale[:, None]
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
