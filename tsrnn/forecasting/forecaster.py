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
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import Ridge
from sklearn.utils.validation import check_is_fitted

from tsrnn import windowing
from tsrnn.estimator import RNNRegressor
from tsrnn.forecasting.intervals import conformal_quantile, naive_shrinkage
from tsrnn.forecasting.seasonality import looks_like_trading_days

__all__ = ["RNNForecaster"]

CALENDAR_CHOICES = ("hour", "day_of_week", "day_of_year")
NORMALIZATIONS = ("auto", "window", "scaled", "difference", "none")
STRATEGIES = ("direct", "recursive")
IS_FUTURE = "is_future"
#: RNNRegressor parameters a forecaster sets by default (others via ``regressor_params``).
REGRESSOR_DEFAULTS = dict(cell="lstm", hidden_size=32, num_layers=1, max_iter=15,
                          learning_rate_init=0.003, batch_size=128, early_stopping=True,
                          validation_fraction=0.1, n_iter_no_change=8)



def as_frame(data) -> pd.DataFrame:
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
        if typical == pd.Timedelta(days=1) and not looks_like_trading_days(index):
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
        frame = as_frame(data)
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

    # ------------------------------------------------------------- backtests

    def _design_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame``'s model columns in the fitted design's order (target, past
        covariates, calendar features, known-future covariates)."""
        design = self.design_
        raw = frame[[design.target] + design.exog + design.future]
        calendar = self._calendar_frame(frame.index, self._calendar_choice_)
        return pd.concat([raw, calendar], axis=1)[design.columns]

    def _forecast_origins(self, values: np.ndarray, origins: np.ndarray):
        """Forecasts made at rows ``origins`` of ``values`` (a :meth:`_design_frame` as
        an array, covering a horizon past each origin when known-future inputs are
        needed), and their interval half-widths at the fitted coverage (None without
        intervals): two (n, horizon) arrays."""
        design, H = self.design_, self.horizon
        X_past = past_windows(values, origins, self.lookback)
        known = None
        if design.extended or self.strategy == "recursive":
            rows = origins[:, None] + np.arange(1, H + 1)[None, :]
            known = values[rows][:, :, 1 + len(design.exog):]
        pred = self._forecast_windows(self.regressor_, design, X_past, known, H,
                                      self._fitted_highway(), None, self.shrinkage_)
        if self.residuals_ is None or self.coverage is None:
            return pred, None
        _, _, scale = self._normalize(X_past)
        width = conformal_quantile(self.residuals_, self.coverage)
        return pred, width[None, :] * scale[:, None]

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
            recent = as_frame(history)
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
            future = as_frame(future)
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


def past_windows(values: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
    """The ``lookback`` rows of ``values`` up to and including each origin row:
    (n_origins, lookback, n_columns)."""
    return np.stack([values[o - lookback + 1:o + 1] for o in origins])


def _fill(frame: pd.DataFrame, fill: str) -> pd.DataFrame:
    """Reindex to the regular grid and fill, as make_windows does."""
    windows = windowing.make_windows(frame, 1, 0, features=list(frame.columns), fill=fill)
    grid = windows.index
    frame = frame.reindex(grid)
    frame = frame.ffill() if fill == "ffill" else frame.interpolate(method="time")
    return frame
