"""RNNForecaster: pandas in, pandas out forecasting of one series or many (a panel).

Here time meets models: :mod:`tsrnn.forecasting.panel` validates the series and cuts
their windows as index arrays, an :class:`~tsrnn.estimator.RNNRegressor` learns them,
and forecasts come back stamped with future timestamps.

One series or many: a single Series or DataFrame is a panel of one series and gets
single-series answers (a DataFrame indexed by the forecast timestamps); a long
DataFrame with ``id_column``, a dict of series or a wide DataFrame (``target=[...]``)
trains one *global* network on the windows of every series, and gets long answers
(one row per series and forecast timestamp).

Inputs of one window, per time step (columns of ``X``)::

    target | past covariates | calendar | future covariates | static | series id | is_future

* the target, normalised per window (see ``normalization``), so every series of a
  panel is on the same footing whatever its level and scale;
* past covariates (``exog``): observed up to the forecast origin only, standardised per
  series on its training part;
* calendar features (sine/cosine of hour, day of week/year) of each step's
  timestamp, known in advance by construction;
* known-future covariates (``future_covariates``): when given, the window is
  extended by the forecast steps, whose rows carry these covariates and the
  calendar, with the target and past covariates zeroed and ``is_future = 1``, so
  the network reads the future values it may rely on;
* static covariates (per-series values, ``static=`` in :meth:`RNNForecaster.fit`),
  standardised across series, and with ``series_identity=True`` a one-hot code of the
  series: the same at every step.

With ``highway=True`` (the default) a ridge regression on the window's target
lags is fitted first and the network learns what it leaves unexplained; the
forecast is their sum. This is LSTNet's linear "highway" (Lai et al., 2018): the
linear part carries the scale-sensitive autoregressive signal that a network
trained by SGD approximates poorly, the network adds the non-linear rest.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tsrnn import windowing
from tsrnn.estimator import RNNRegressor
from tsrnn.forecasting.intervals import conformal_quantile, naive_shrinkage
from tsrnn.forecasting.panel import Panel, PanelWindows, to_panel
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
#: Windows gathered at once when a panel's windows are turned into arrays.
CHUNK_WINDOWS = 8192
#: Most training (and calibration) windows the 'auto' normalisation probe looks at.
PROBE_WINDOWS = 20000


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


def _chunks(rows: np.ndarray, size: int = CHUNK_WINDOWS):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def _spread(rows: np.ndarray, most: int) -> np.ndarray:
    """At most ``most`` of ``rows``, evenly spread (all of them when there are fewer)."""
    if len(rows) <= most:
        return rows
    return rows[np.unique(np.linspace(0, len(rows) - 1, most).round().astype(np.int64))]


#: The span of training data a calendar feature needs under calendar='auto': two cycles.
CALENDAR_MIN_SPAN = {"hour": pd.Timedelta(days=2), "day_of_week": pd.Timedelta(days=14),
                     "day_of_year": pd.Timedelta(days=730)}


@dataclass
class _Design:
    """Column roles of a fitted forecaster.

    ``columns`` are the per-row columns of the design values (target, past covariates,
    calendar, future covariates); ``extras`` the per-series constant ones appended to
    every step (static covariates, one-hot series identity).
    """

    target: str
    exog: list[str]
    calendar: list[str]
    future: list[str]
    extras: list[str] = field(default_factory=list)

    @property
    def known(self) -> list[str]:
        return self.calendar + self.future + self.extras

    @property
    def columns(self) -> list[str]:
        return [self.target] + self.exog + self.calendar + self.future

    @property
    def covariates(self) -> list[str]:
        """Columns scaled per series: the past and future covariates."""
        return self.exog + self.future

    @property
    def extended(self) -> bool:
        return bool(self.future)


class RNNForecaster(BaseEstimator):
    """Forecast one time series, or many with one global network: pandas in, pandas out.

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
        Calendar features from the timestamps. 'auto' considers hour, day of week
        and day of year for sub-daily data, day of week and day of year for daily
        data, day of year for anything coarser or irregular (trading days), and
        keeps those whose cycle the training data covers at least twice (hour: 2
        days, day of week: 2 weeks, day of year: 2 years).
    coverage : float or None, default=0.9
        Nominal coverage of the prediction intervals: split conformal, from the
        absolute errors on the newest ``calibration_fraction`` of windows (held
        out of training) in units of each window's scale, so intervals widen
        when the recent series is more volatile. None: no intervals, no hold-out.
    calibration_fraction : float, default=0.1
        Share of the windows (of each series) held out to calibrate the intervals.
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
    series_identity : bool, default=False
        Panels: give the network a one-hot code of the series at every step, so a
        global model can also learn what is particular to each series (it then
        forecasts only the series it was fitted on).
    cell, hidden_size, num_layers, max_iter, learning_rate_init, batch_size, early_stopping
        Passed to :class:`~tsrnn.RNNRegressor` (defaults tuned for forecasting:
        see ``REGRESSOR_DEFAULTS``); None keeps the forecaster default. A batch size
        larger than the training windows is reduced to them.
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
    static_ : list of str
        Static covariate columns (panels).
    calendar_ : list of str
        Calendar feature columns used.
    freq_ : pandas.DateOffset or None
        Frequency of the training data (None for a trading-day calendar).
    ids_ : list
        Series the model was fitted on (``[None]`` for a single series).
    is_panel_ : bool
        Fitted on a panel (answers are long DataFrames).
    normalization_ : str
        The normalisation used ('auto' resolved).
    shrinkage_ : ndarray of shape (horizon,) or None
        Per-step damping weights (``shrink_to_naive``).
    scale_floor_ : ndarray of shape (n_series,)
        Smallest window scale of each fitted series (1% of the median scale of its
        training windows): flat windows are normalised by it.
    highway_coef_ : ndarray of shape (lookback, n_steps) or None
        Ridge weights of the highway on the normalised target lags.
    highway_intercept_ : ndarray of shape (n_steps,) or None
    residuals_ : ndarray of shape (n_calibration, horizon) or None
        Absolute forecast errors on the calibration windows, divided by each
        window's scale (see ``normalization``).
    last_timestamp_ : pandas.Timestamp
        End of the training data (of the last-ending series of a panel).
    n_training_windows_ : int

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

    Many series in long format train one network and answer in long format:

    >>> long = pd.concat([pd.DataFrame({"store": s, "ds": idx, "y": temp.to_numpy() * k})
    ...                   for s, k in (("a", 1.0), ("b", 3.0))])
    >>> fc = RNNForecaster(lookback=24, horizon=6, max_iter=2, random_state=0)
    >>> out = fc.fit(long, id_column="store").predict()
    >>> list(out.columns), len(out)
    (['store', 'ds', 'y', 'lower', 'upper'], 12)
    """

    def __init__(self, lookback: int = 48, horizon: int = 24, *, strategy: str = "direct",
                 normalization: str = "auto", calendar="auto", coverage: float | None = 0.9,
                 calibration_fraction: float = 0.1, highway: bool = True,
                 highway_alpha: float = 1.0, shrink_to_naive: bool = True,
                 series_identity: bool = False,
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
        self.series_identity = series_identity
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
        _check_coverage(self.coverage)
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
            candidates = ["hour", "day_of_week", "day_of_year"]
        elif typical == pd.Timedelta(days=1) and not looks_like_trading_days(index):
            candidates = ["day_of_week", "day_of_year"]
        else:
            candidates = ["day_of_year"]
        # a feature whose cycle the training data does not repeat cannot be learnt, only
        # overfitted (one year of daily data gives day_of_year one value per day)
        span = index[-1] - index[0] if len(index) else pd.Timedelta(0)
        return [c for c in candidates if span >= CALENDAR_MIN_SPAN[c]]

    @staticmethod
    def _calendar_frame(index: pd.DatetimeIndex, choice: list[str]) -> pd.DataFrame:
        if not choice:
            return pd.DataFrame(index=index)
        return windowing.calendar_features(index, hour="hour" in choice,
                                           day_of_week="day_of_week" in choice,
                                           day_of_year="day_of_year" in choice)

    # ------------------------------------------------------------------- fit

    def fit(self, data, target: str | None = None, exog=None, future_covariates=None,
            fill: str | None = None, *, id_column: str | None = None,
            time_column: str | None = None, static=None) -> "RNNForecaster":
        """Fit the network on the windows of one series or of every series of a panel.

        Parameters
        ----------
        data : pandas.Series, pandas.DataFrame or dict of them
            One series: a Series or DataFrame with a sorted, gap-free
            :class:`pandas.DatetimeIndex` (or a trading-day calendar). Many series
            (a panel, one network for all): a long DataFrame with ``id_column``
            (timestamps in the index or in ``time_column``), a dict ``{id: Series or
            DataFrame}``, or a wide DataFrame with ``target`` a list of its columns.
            Series of a panel share a frequency and their columns, and may differ in
            length and start.
        target : str or list of str, optional
            Column to forecast (default: the Series, or the only column); a list
            names the series of a wide DataFrame.
        exog : str or list of str, optional
            Past covariates: inputs observed up to the forecast origin.
        future_covariates : str or list of str, optional
            Covariates known in advance; :meth:`predict` then needs their values
            for the forecast steps (``future=``).
        fill : {None, 'ffill', 'interpolate'}, optional
            Repair missing timestamps or NaNs instead of raising (see
            :func:`tsrnn.windowing.make_windows`), per series.
        id_column, time_column : str, optional
            Long format: the column naming each row's series, and the column of
            timestamps (default: the index, or a column named 'ds').
        static : pandas.DataFrame, optional
            Panels: per-series covariates, indexed by series id (one row per series,
            numeric columns).

        Returns
        -------
        self : RNNForecaster
        """
        self._check_params()
        exog = _as_list(exog, "exog")
        future = _as_list(future_covariates, "future_covariates")
        _check_roles(target, exog, future)
        if self.strategy == "recursive" and exog:
            raise ValueError(
                f"strategy='recursive' cannot use past covariates {exog}: their future "
                "values are unknown when the forecasts are fed back. Use strategy='direct', "
                "or pass them as future_covariates if they are known in advance."
            )
        raw, target = _input_panel(data, target, exog + future, id_column, time_column, fill)
        if target in exog or target in future:
            raise ValueError(f"the target {target!r} cannot also be a covariate.")
        longest = raw.index[int(np.argmax(raw.lengths))]
        # integer steps have no calendar
        choice = [] if raw.index_kind == "range" else self._calendar_choice(longest)
        calendar = list(self._calendar_frame(longest[:0], choice).columns)
        clash = sorted(set(calendar) & set(raw.columns))
        if clash:
            raise ValueError(
                f"data columns {clash} clash with calendar feature names; rename them or set "
                "calendar=None."
            )
        static_names, static_values, static_stats = _static_features(static, raw)
        identity = ([f"series={i}" for i in raw.ids]
                    if self.series_identity and not raw.single else [])
        design = _Design(target, exog, calendar, future, static_names + identity)

        # windows per series: the newest of each calibrate, the ones before train
        L, H = self.lookback, self.horizon
        counts = np.maximum(raw.lengths - L - H + 1, 0)
        if counts.sum() == 0:
            shortest = int(raw.lengths.max())
            raise ValueError(
                f"data has {shortest} rows but lookback + horizon = {L} + {H} = {L + H} rows "
                "are needed for one window."
            )
        calibrate = self.coverage is not None or self.shrink_to_naive
        n_cal = (np.ceil(self.calibration_fraction * counts).astype(np.int64) if calibrate
                 else np.zeros_like(counts))
        gap = H - 1 if calibrate else 0
        n_train = np.maximum(counts - n_cal - gap, 0)
        if calibrate and (n_train.sum() < 2 or n_cal.sum() < 1):
            n = int(counts.sum())
            raise ValueError(
                f"{n} windows are too few to hold out {int(n_cal.sum())} for calibrating "
                f"intervals (plus a gap of horizon - 1 = {H - 1}); use a longer series, a "
                "smaller lookback/horizon, or coverage=None and shrink_to_naive=False."
            )
        # covariates are scaled per series on the rows its training windows read
        train_rows = np.where(n_train > 0, n_train + L - 1, raw.lengths)
        cov_stats = _covariate_stats(raw, len(design.covariates), train_rows)
        values = self._design_values(raw, design, cov_stats, choice)
        windows = PanelWindows.of(values, L, H)
        extras = _extras(static_values, len(identity), np.arange(raw.n_series))
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        train = np.concatenate([first[s] + np.arange(n_train[s])
                                for s in range(raw.n_series)]).astype(np.int64)
        cal = np.concatenate([first[s] + counts[s] - np.arange(n_cal[s], 0, -1)
                              for s in range(raw.n_series)]).astype(np.int64)
        # time order across series, so that early stopping validates on the newest
        stamps = _origin_stamps(windows, train)
        train = train[np.argsort(stamps, kind="stable")]
        if len(train) < 2:
            raise ValueError(f"only {len(train)} training windows; use a longer series.")

        floors = _scale_floors(windows, np.concatenate([train, cal]))
        source = _WindowSource(self, windows, extras, design, floors)
        mode = self._choose_normalization(source, train, cal)
        highway = self._fit_highway(source, train, mode) if self.highway else None
        X, y = source.training_arrays(train, mode, highway)
        regressor = self._regressor()
        n_fit = len(X) - (math.ceil(regressor.validation_fraction * len(X))
                          if regressor.early_stopping else 0)
        if regressor.batch_size != "auto" and regressor.batch_size > n_fit:
            regressor.set_params(batch_size=max(1, n_fit))  # small data: one batch
        regressor.fit(X, y)
        residuals = weights = None
        if len(cal):
            preds = np.concatenate([
                self._forecast_windows(regressor, design, source.past(rows),
                                       source.known_future(rows), H, highway,
                                       source.norm(rows, mode))
                for rows in _chunks(cal)])
            last = np.concatenate([source.past(rows)[:, -1, 0] for rows in _chunks(cal)])
            y_cal = np.concatenate([windows.targets(rows) for rows in _chunks(cal)])
            # residuals in units of each window's scale (see _WindowSource.scales): the
            # series of a panel weigh alike, and under 'scaled' interval widths follow
            # the volatility of the window being forecast (normalised conformal)
            cal_scale = np.concatenate([source.scales(rows, mode) for rows in _chunks(cal)])
            if self.shrink_to_naive:  # each series' errors in its typical steps
                typical = np.concatenate([source.scales(rows, "window")
                                          for rows in _chunks(cal)])
                weights = naive_shrinkage(last / typical, preds / typical[:, None],
                                          y_cal / typical[:, None])
                preds = last[:, None] + weights[None, :] * (preds - last[:, None])
            residuals = np.abs(y_cal - preds) / cal_scale[:, None]
        # commit
        self.regressor_ = regressor
        self.normalization_, self.scale_floor_ = mode, floors
        self.shrinkage_ = weights
        self.highway_coef_ = None if highway is None else highway[0]
        self.highway_intercept_ = None if highway is None else highway[1]
        self.design_ = design
        self._calendar_choice_ = choice
        self.target_ = design.target
        self.exog_ = list(design.exog)
        self.future_covariates_ = list(design.future)
        self.static_ = list(static_names)
        self.calendar_ = list(design.calendar)
        self.freq_ = raw.freq
        self.ids_ = list(raw.ids)
        self.is_panel_ = not raw.single
        self.residuals_ = residuals
        self.last_timestamp_ = max(ix[-1] for ix in raw.index)
        self._history = raw.tail(L)
        self._covariate_stats = cov_stats
        self._static_values = static_values
        self._static_stats = static_stats
        self._n_identity = len(identity)
        self.n_training_windows_ = int(len(train))
        return self

    # -------------------------------------------------------------- arrays

    def _design_values(self, raw: Panel, design: _Design, cov_stats, choice) -> Panel:
        """Design columns of a raw panel (target, exog, future): calendar features
        (``choice``) inserted, covariates scaled with ``cov_stats`` ((mean, scale) per
        series)."""
        k0 = 1 + len(design.exog)
        parts = []
        for s in range(raw.n_series):
            rows = raw.rows(s)
            calendar = self._calendar_frame(raw.index[s], choice)
            covariates = (rows[:, 1:] - cov_stats[0][s]) / cov_stats[1][s]
            parts.append(np.concatenate([rows[:, :1], covariates[:, :k0 - 1],
                                         calendar.to_numpy(dtype=np.float64),
                                         covariates[:, k0 - 1:]], axis=1))
        values = np.concatenate(parts) if parts else np.empty((0, len(design.columns)))
        return raw.with_values(values, design.columns)

    def _normalize(self, X: np.ndarray, norm=None):
        """Per-window normalisation of the target column.

        ``norm`` is ``(mode, floor)``: the normalisation and the smallest window
        scale (a number, or one per window). Returns the normalised copy of ``X`` and
        the per-window ``level`` and ``scale`` (n,) that map normalised targets
        back: ``y = level + scale * y_n``.
        """
        mode, floor = norm
        X = X.copy()
        target = X[:, :, 0]
        n = len(X)
        if mode == "none":
            return X, np.zeros(n), np.ones(n)
        level = target[:, -1].copy()
        if mode == "window":
            X[:, :, 0] = target - level[:, None]
            return X, level, np.ones(n)
        scale = _window_scale(target)
        # a flat window has no scale of its own: fall back to the floor
        scale = np.maximum(scale, floor)
        if mode == "scaled":
            X[:, :, 0] = (target - level[:, None]) / scale[:, None]
        else:  # difference
            X[:, 1:, 0] = np.diff(target, axis=1) / scale[:, None]
            X[:, 0, 0] = 0.0
        return X, level, scale

    def _choose_normalization(self, source, train, cal) -> str:
        """'auto': the normalisation under which a ridge on the target lags forecasts
        the held-out calibration windows best ('window' or 'scaled')."""
        if self.normalization != "auto":
            return self.normalization
        if not len(cal):
            return "window"
        train, cal = _spread(train, PROBE_WINDOWS), _spread(cal, PROBE_WINDOWS)
        errors = {}
        X_train, y_train = source.past(train), source.windows.targets(train)
        X_cal, y_cal = source.past(cal), source.windows.targets(cal)
        # errors in units of each series' typical step: series of a panel weigh alike
        cal_scale = source.scales(cal, "window")
        for mode in ("window", "scaled"):
            Xt, level, scale = self._normalize(X_train, source.norm(train, mode))
            yt = (y_train - level[:, None]) / scale[:, None]
            coef, intercept = _ridge(Xt[:, :, 0], yt, float(self.highway_alpha))
            Xc, level, scale = self._normalize(X_cal, source.norm(cal, mode))
            pred = (Xc[:, :, 0] @ coef + intercept) * scale[:, None] + level[:, None]
            errors[mode] = float(np.mean(np.abs(pred - y_cal) / cal_scale[:, None]))
        return min(errors, key=errors.get)

    def _fit_highway(self, source, train, mode):
        """Ridge on the normalised target lags of every training window, from sums
        accumulated chunk by chunk: (coef (lookback, n_steps), intercept (n_steps,))."""
        sums = None
        for rows in _chunks(train):
            lags, y = source.normalized(rows, mode)
            lags = self._highway_features(lags)
            sums = _RidgeSums(lags.shape[1], y.shape[1]) if sums is None else sums
            sums.add(lags, y)
        return sums.solve(float(self.highway_alpha))

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

    # ------------------------------------------------------ fitted series

    def _series_inputs(self, raw: Panel):
        """Per-series covariate statistics, extras and scale floors for the series of
        ``raw``: the fitted ones for known ids; for new ids, from their own rows (a
        ValueError if the model needs what only a fitted series has)."""
        n_cov = len(self.design_.covariates)
        means = np.zeros((raw.n_series, n_cov))
        scales = np.ones((raw.n_series, n_cov))
        positions = []
        if self.is_panel_ == raw.single:
            kind = "a panel" if self.is_panel_ else "a single series"
            raise ValueError(f"the model was fitted on {kind}; give history in the same "
                             "form (with the same id column for a panel).")
        own = _covariate_stats(raw, n_cov, raw.lengths)
        own_floors = _scale_floors(PanelWindows.of(raw, min(self.lookback, int(
            raw.lengths.min())), 0), None)
        floors = np.empty(raw.n_series)
        for s, series_id in enumerate(raw.ids):
            position = self.ids_.index(series_id) if series_id in self.ids_ else None
            if position is None and (self._static_values is not None or self._n_identity):
                need = "static covariates" if self._static_values is not None else \
                    "series_identity=True"
                raise ValueError(
                    f"series {series_id!r} was not in the training data; a model fitted "
                    f"with {need} forecasts only the series it was fitted on."
                )
            if position is None:
                means[s], scales[s] = own[0][s], own[1][s]
                floors[s] = own_floors[s]
            else:
                means[s] = self._covariate_stats[0][position]
                scales[s] = self._covariate_stats[1][position]
                floors[s] = self.scale_floor_[position]
            positions.append(-1 if position is None else position)
        extras = _extras(self._static_values, self._n_identity, np.asarray(positions))
        return (means, scales), extras, floors

    def _forecast_at(self, raw: Panel, series: np.ndarray, origins: np.ndarray,
                     coverage: float | None, horizon: int | None = None, stamps=None,
                     future_values: np.ndarray | None = None):
        """Forecasts made at rows ``origins`` of series ``series`` of ``raw`` (raw
        columns target, exog, future), with interval half-widths at ``coverage``
        (None without intervals): two (n, horizon) arrays.

        Known-future inputs come from ``raw``'s rows after each origin, or, for
        forecasts from the end of the data, from ``stamps`` (a DatetimeIndex of the
        fitted horizon per forecast) and ``future_values`` (n, horizon, n_future).
        """
        design, L = self.design_, self.lookback
        horizon = self.horizon if horizon is None else horizon
        cov_stats, extras, floors = self._series_inputs(raw)
        values = self._design_values(raw, design, cov_stats, self._calendar_choice_)
        series = np.asarray(series, dtype=np.int64)
        start = values.indptr[series] + origins - L + 1
        windows = PanelWindows(values, L, self.horizon, series, start.astype(np.int64))
        source = _WindowSource(self, windows, extras, design, floors)
        rows = np.arange(len(windows))
        known_rows = None
        if stamps is not None and (design.extended or self.strategy == "recursive"):
            k0 = 1 + len(design.exog)
            known_rows = np.stack([
                np.concatenate([
                    self._calendar_frame(stamps[i], self._calendar_choice_).to_numpy(
                        dtype=np.float64),
                    (future_values[i] - cov_stats[0][s][k0 - 1:]) / cov_stats[1][s][k0 - 1:]
                    if future_values is not None else np.zeros((len(stamps[i]), 0))],
                    axis=1)
                for i, s in enumerate(series)])
        X_past = source.past(rows)
        known = source.known_future(rows, known_rows)
        pred = self._forecast_windows(self.regressor_, design, X_past, known, horizon,
                                      self._fitted_highway(),
                                      source.norm(rows, self.normalization_), self.shrinkage_)
        if self.residuals_ is None or coverage is None:
            return pred, None
        width = conformal_quantile(self.residuals_[:, :horizon], coverage)
        return pred, width[None, :] * source.scales(rows, self.normalization_)[:, None]

    # --------------------------------------------------------------- predict

    def predict(self, horizon: int | None = None, *, history=None, future=None,
                coverage: float | None = None, ids=None) -> pd.DataFrame:
        """Forecast the steps after the training data, or after ``history``.

        Parameters
        ----------
        horizon : int, optional
            Steps to forecast, at most the fitted ``horizon`` (default: all).
        history : pandas.Series, pandas.DataFrame or dict, optional
            Newer observations (target, past covariates and known-future
            covariates, same columns and frequency as in ``fit``; for a panel, the
            same form with the same id column) ending where the forecast should
            start; at least ``lookback`` rows per series. The model is not refitted.
        future : pandas.DataFrame or dict, optional
            Values of the known-future covariates for the forecast timestamps
            (required when the model was fitted with ``future_covariates``); for a
            panel, in the long form of the training data or a dict by series id.
        coverage : float, optional
            Interval coverage for this call, in (0, 1) (default: the fitted
            ``coverage``).
        ids : list, optional
            Panels: the series to forecast (default: all).

        Returns
        -------
        pandas.DataFrame
            One series: indexed by the forecast timestamps; a column named after the
            target with the point forecasts, and ``lower``/``upper`` when intervals
            are available. A panel: long, one row per series and timestamp, columns
            id, timestamp, target, ``lower``, ``upper``.
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
        _check_coverage(coverage)
        coverage = self.coverage if coverage is None else coverage
        if history is None:
            raw = self._history
        else:
            raw = self._history_panel(history)
        if ids is not None:
            if not self.is_panel_:
                raise ValueError("ids= selects series of a panel; this model was fitted on "
                                 "one series.")
            raw = raw.subset([raw.position(i) for i in ids])
        short = [i for i, n in zip(raw.ids, raw.lengths) if n < self.lookback]
        if short:
            raise ValueError(
                f"history needs at least lookback = {self.lookback} rows per series; "
                f"{_name(short[0])} has {int(raw.lengths[raw.ids.index(short[0])])}."
            )
        # known-future inputs cover the fitted horizon, whatever is asked for
        stamps = [self._future_stamps(ix, self.horizon) for ix in raw.index]
        future_values = self._future_values(raw, future, stamps) if design.future else None
        series = np.arange(raw.n_series)
        pred, width = self._forecast_at(raw, series, raw.lengths - 1, coverage, horizon,
                                        stamps, future_values)
        frames = []
        for s in series:
            out = pd.DataFrame({design.target: pred[s]},
                               index=raw.original_index(stamps[s][:horizon]))
            if width is not None:
                out["lower"] = pred[s] - width[s]
                out["upper"] = pred[s] + width[s]
            frames.append(out)
        if not self.is_panel_:
            return frames[0]
        return _long(frames, raw)

    def _history_panel(self, history) -> Panel:
        """Validated newer observations in the fitted form (last ``lookback`` rows)."""
        design = self.design_
        needed = design.exog + design.future
        if self.is_panel_:
            id_column = self._history.id_column
            if isinstance(history, pd.Series) or (
                    isinstance(history, pd.DataFrame) and id_column not in history.columns):
                raise ValueError(
                    f"the model was fitted on a panel: give history in long format with its "
                    f"id column {id_column!r}, or as a dict of series by id."
                )
            long_id = id_column if isinstance(history, pd.DataFrame) else None
            raw, _ = to_panel(history, target=design.target, columns=needed,
                              id_column=long_id, time_column=self._history.time_column)
        else:
            recent = as_frame(history)
            if isinstance(history, pd.Series):
                recent = recent.set_axis([design.target], axis=1)
            missing = [c for c in [design.target] + needed if c not in recent.columns]
            if missing:
                raise ValueError(
                    f"history lacks column(s) {missing}; it needs {[design.target] + needed} "
                    "as in fit."
                )
            raw, _ = to_panel(recent, target=design.target, columns=needed)
        if raw.index_kind != self._history.index_kind:
            raise TypeError(
                f"history has a {raw.index_kind} index but the model was fitted on a "
                f"{self._history.index_kind} index."
            )
        if self.freq_ is not None and raw.freq is not None and raw.freq != self.freq_:
            raise ValueError(
                f"history has frequency {raw.freq.freqstr!r} but the model was fitted on "
                f"{self.freq_.freqstr!r} data; resample it to {self.freq_.freqstr!r}."
            )
        if (self.freq_ is None) != (raw.freq is None) and all(len(ix) > 2 for ix in raw.index):
            fitted = "a trading-day calendar" if self.freq_ is None else repr(self.freq_.freqstr)
            given = "a trading-day calendar" if raw.freq is None else repr(raw.freq.freqstr)
            raise ValueError(f"history is {given} but the model was fitted on {fitted} data.")
        return raw.tail(self.lookback)

    def _future_stamps(self, index: pd.DatetimeIndex, horizon: int) -> pd.DatetimeIndex:
        window = index[-self.lookback:]
        if self.freq_ is not None:
            return windowing.future_index(window, horizon, freq=self.freq_)
        return windowing.future_index(window, horizon)

    def _future_values(self, raw: Panel, future, stamps) -> np.ndarray:
        """Known-future covariates for each series' forecast stamps: (n, horizon, k)."""
        design = self.design_
        if future is None:
            raise ValueError(
                f"the model uses known-future covariates {design.future}: pass their "
                f"values for the forecast timestamps with future=... (from {stamps[0][0]})."
            )
        if self.is_panel_:
            id_column = self._history.id_column
            if isinstance(future, pd.DataFrame):
                if id_column not in future.columns:
                    raise ValueError(f"future lacks the id column {id_column!r}.")
                frame = future
                time_column = self._history.time_column
                if time_column in frame.columns:
                    frame = frame.set_index(time_column)
                by_id = {k: g.drop(columns=[id_column])
                         for k, g in frame.groupby(id_column, sort=False)}
            elif isinstance(future, dict):
                by_id = dict(future)
            else:
                raise TypeError("future must be a long DataFrame or a dict of DataFrames "
                                f"for a panel; got {type(future).__name__}.")
        else:
            by_id = {None: as_frame(future)}
        out = np.empty((raw.n_series, len(stamps[0]), len(design.future)))
        for s, series_id in enumerate(raw.ids):
            frame = by_id.get(series_id)
            where = "" if series_id is None else f" of series {series_id!r}"
            if frame is None:
                raise ValueError(f"future has no rows{where}.")
            missing = [c for c in design.future if c not in frame.columns]
            if missing:
                raise ValueError(f"future lacks column(s) {missing}{where}.")
            aligned = frame[design.future].reindex(stamps[s])
            if aligned.isna().any().any():
                absent = aligned.index[aligned.isna().any(axis=1)][0]
                raise ValueError(
                    f"future has no value (or NaN) for {absent}{where}; it must cover the "
                    f"{len(stamps[s])} forecast timestamps {stamps[s][0]} .. {stamps[s][-1]}."
                )
            out[s] = aligned.to_numpy(dtype=np.float64)
        return out


    # ------------------------------------------------------------ persistence

    def save(self, path) -> None:
        """Write the fitted forecaster to ``path`` (NumPy ``.npz`` with JSON metadata).

        The file holds numbers and JSON only (the network in
        :meth:`RNNRegressor.save`'s format, the forecaster's fitted state and the last
        ``lookback`` rows of every series): loading it never runs code, unlike
        pickle, and :meth:`predict` of the loaded model gives the same forecasts. It
        is written to a temporary file and renamed into place, so a failure leaves
        any previous file at ``path`` intact.

        Parameters
        ----------
        path : str or path-like

        Raises
        ------
        ValueError
            If the forecaster cannot be stored (series ids that are not strings or
            numbers, NaN or infinite parameters); nothing is written then.
        """
        from tsrnn.forecasting.saving import save_forecaster

        check_is_fitted(self, "regressor_")
        save_forecaster(self, path)

    @classmethod
    def load(cls, path) -> "RNNForecaster":
        """Read a forecaster written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        RNNForecaster

        Raises
        ------
        ValueError
            If the file is not a tsrnn forecaster file, is corrupt or inconsistent, or
            was written in a newer format version.
        """
        from tsrnn.forecasting.saving import load_forecaster

        return load_forecaster(cls, path)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


class _WindowSource:
    """A panel's windows with the design's per-series extras: raw past windows,
    known-future rows, normalised network inputs and targets, chunk by chunk."""

    def __init__(self, forecaster, windows, extras, design, floors):
        self.forecaster, self.windows = forecaster, windows
        self.extras, self.design = extras, design
        self.floors = floors

    def norm(self, rows, mode: str):
        """``(mode, floor per window)`` for :meth:`RNNForecaster._normalize`."""
        return mode, self.floors[self.windows.series[rows]]

    def past(self, rows) -> np.ndarray:
        """Raw past windows (n, L, F) with the extras appended to every step."""
        X = self.windows.past(rows)
        if self.extras.shape[1] == 0:
            return X
        extra = np.broadcast_to(self.extras[self.windows.series[rows]][:, None, :],
                                (len(rows), X.shape[1], self.extras.shape[1]))
        return np.concatenate([X, extra], axis=2)

    def known_future(self, rows, known_rows=None) -> np.ndarray | None:
        """Known inputs (calendar, future covariates, extras) of the horizon after
        each window, or None when the design does not read them. ``known_rows``
        (n, horizon, k) gives calendar and future covariates where the panel does not
        reach past the windows (forecasts from the end of the data)."""
        design, fc = self.design, self.forecaster
        if not design.extended and fc.strategy == "direct":
            return None
        k0 = 1 + len(design.exog)
        known = (self.windows.future_rows(rows, slice(k0, len(design.columns)))
                 if known_rows is None else known_rows)
        if self.extras.shape[1]:
            extra = np.broadcast_to(self.extras[self.windows.series[rows]][:, None, :],
                                    (len(rows), known.shape[1], self.extras.shape[1]))
            known = np.concatenate([known, extra], axis=2)
        return known

    def scales(self, rows, mode: str) -> np.ndarray:
        """What the errors of windows ``rows`` are measured in (residuals, intervals,
        shrinkage): under 'scaled' and 'difference' each window's own scale, as the
        normalisation divides by it; otherwise its series' typical scale (the median
        of its windows' scales, 100 floors), the same for every window of a series."""
        if mode in ("scaled", "difference"):
            target = self.windows.past(rows)[:, :, 0]
            return np.maximum(_window_scale(target), self.floors[self.windows.series[rows]])
        return 100.0 * self.floors[self.windows.series[rows]]

    def normalized(self, rows, mode: str):
        """Normalised network inputs and targets of windows ``rows``."""
        fc = self.forecaster
        n_steps = fc.horizon if fc.strategy == "direct" else 1
        X, (level, scale) = fc._model_inputs(self.past(rows), self.known_future(rows),
                                             self.design, n_steps, self.norm(rows, mode))
        y = (self.windows.targets(rows)[:, :n_steps] - level[:, None]) / scale[:, None]
        return X, y

    def training_arrays(self, rows, mode, highway):
        """The network's training inputs and targets (what the highway leaves)."""
        parts_X, parts_y = [], []
        for chunk in _chunks(rows):
            X, y = self.normalized(chunk, mode)
            if highway is not None:
                y = y - (self.forecaster._highway_features(X) @ highway[0] + highway[1])
            parts_X.append(X)
            parts_y.append(y)
        return np.concatenate(parts_X), np.concatenate(parts_y)


class _RidgeSums:
    """Ridge regression with an intercept from sums accumulated batch by batch.

    Centres with the running means (Chan et al.'s pairwise update), so the normal
    equations stay well conditioned on levels far from zero.
    """

    def __init__(self, n_features: int, n_targets: int):
        self.n = 0
        self.x_mean = np.zeros(n_features)
        self.y_mean = np.zeros(n_targets)
        self.xx = np.zeros((n_features, n_features))
        self.xy = np.zeros((n_features, n_targets))

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        m = X.shape[0]
        if m == 0:
            return
        bx, by = X.mean(axis=0), y.mean(axis=0)
        Xc, yc = X - bx, y - by
        n = self.n
        total = n + m
        dx, dy = bx - self.x_mean, by - self.y_mean
        self.xx += Xc.T @ Xc + np.outer(dx, dx) * (n * m / total)
        self.xy += Xc.T @ yc + np.outer(dx, dy) * (n * m / total)
        self.x_mean += dx * (m / total)
        self.y_mean += dy * (m / total)
        self.n = total

    def solve(self, alpha: float):
        A = self.xx + alpha * np.eye(self.xx.shape[0])
        coef = np.linalg.solve(A, self.xy)
        return coef, self.y_mean - self.x_mean @ coef


def _ridge(X: np.ndarray, y: np.ndarray, alpha: float):
    sums = _RidgeSums(X.shape[1], y.shape[1])
    sums.add(X, y)
    return sums.solve(alpha)


def _scale_floors(windows: PanelWindows, rows: np.ndarray | None) -> np.ndarray:
    """Per series: 1% of the median positive scale of its windows ``rows`` (all when
    None), 1 where it has none; flat windows are normalised by it."""
    rows = np.arange(len(windows)) if rows is None else rows
    floors = np.ones(windows.panel.n_series)
    if not len(rows):
        return floors
    scale = np.concatenate([_window_scale(windows.past(chunk)[:, :, 0])
                            for chunk in _chunks(rows)])
    series = windows.series[rows]
    keep = scale > 0
    order = np.argsort(series[keep], kind="stable")
    series, scale = series[keep][order], scale[keep][order]
    if not len(series):
        return floors
    bounds = np.flatnonzero(np.diff(series)) + 1
    for s, group in zip(series[np.r_[0, bounds]], np.split(scale, bounds)):
        floors[s] = 0.01 * float(np.median(group))
    return floors


def _window_scale(target: np.ndarray) -> np.ndarray:
    """Mean absolute step of each window's target (n,), 0 for one-step windows."""
    if target.shape[1] < 2:
        return np.zeros(target.shape[0])
    return np.mean(np.abs(np.diff(target, axis=1)), axis=1)


def _check_coverage(coverage) -> None:
    if coverage is None:
        return
    if isinstance(coverage, bool) or not isinstance(coverage, numbers.Real) \
            or not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1) or None; got {coverage!r}.")


def _check_roles(target, exog, future) -> None:
    both = sorted(set(exog) & set(future))
    if both:
        raise ValueError(
            f"column(s) {both} given both as past covariates (exog) and as known-future "
            "covariates (future_covariates); a column is one or the other."
        )
    if isinstance(target, (list, tuple)) and (exog or future):
        raise ValueError(
            "a wide DataFrame (target=[...], one column per series) cannot carry "
            "covariates; give the panel in long format with id_column=... instead."
        )


def _input_panel(data, target, columns, id_column, time_column, fill):
    if isinstance(data, Panel):
        return data, data.columns[0]
    if isinstance(data, (pd.Series, pd.DataFrame)) and id_column is None and \
            not isinstance(target, (list, tuple)) and \
            not isinstance(data.index, (pd.DatetimeIndex, pd.PeriodIndex)) and \
            not pd.api.types.is_integer_dtype(data.index.dtype):
        raise TypeError(
            f"data must have a DatetimeIndex, a PeriodIndex or integer steps; got "
            f"{type(data.index).__name__}. For many series in long format, pass "
            "id_column=... (and time_column=...)."
        )
    return to_panel(data, target=target, columns=columns, id_column=id_column,
                    time_column=time_column, fill=fill)


def _covariate_stats(raw: Panel, n_cov: int, n_rows: np.ndarray):
    """(mean, scale) of each series' covariates over its first ``n_rows[s]`` rows:
    two (n_series, n_cov) arrays; scale 1 where a covariate is constant there."""
    means = np.zeros((raw.n_series, n_cov))
    scales = np.ones((raw.n_series, n_cov))
    if n_cov == 0:
        return means, scales
    for s in range(raw.n_series):
        part = raw.rows(s)[:max(int(n_rows[s]), 1), 1:]
        means[s] = part.mean(axis=0)
        std = part.std(axis=0)
        scales[s] = np.where(std > 0, std, 1.0)
    return means, scales


def _static_features(static, raw: Panel):
    """Static covariates aligned with the panel's series, standardised across them:
    (names, values (n_series, k) or None, (mean, scale) or None)."""
    if static is None:
        return [], None, None
    if raw.single:
        raise ValueError("static covariates describe the series of a panel; this data is "
                         "one series (pass id_column=..., a dict, or a wide DataFrame).")
    if not isinstance(static, pd.DataFrame):
        raise TypeError(f"static must be a DataFrame indexed by series id; got "
                        f"{type(static).__name__}.")
    missing = [i for i in raw.ids if i not in static.index]
    if missing:
        raise ValueError(f"static has no row for series {missing[:5]}.")
    if static.index.has_duplicates:
        raise ValueError("static has several rows for one series id.")
    for name in static.columns:
        if not pd.api.types.is_numeric_dtype(static[name]):
            raise TypeError(f"static column {name!r} must be numeric; its dtype is "
                            f"{static[name].dtype}.")
    values = static.loc[list(raw.ids)].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("static contains NaN or infinity.")
    mean, std = values.mean(axis=0), values.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    names = [f"static:{c}" for c in static.columns]
    return names, (values - mean) / std, (mean, std)


def _extras(static_values, n_identity: int, positions: np.ndarray) -> np.ndarray:
    """Per-series constant inputs (n, k): standardised static covariates and the
    one-hot identity of the fitted series at ``positions`` (-1: not fitted)."""
    parts = []
    if static_values is not None:
        parts.append(static_values[positions])
    if n_identity:
        onehot = np.zeros((len(positions), n_identity))
        known = positions >= 0
        onehot[np.flatnonzero(known), positions[known]] = 1.0
        parts.append(onehot)
    if not parts:
        return np.zeros((len(positions), 0))
    return np.concatenate(parts, axis=1)


def _origin_stamps(windows: PanelWindows, rows: np.ndarray) -> np.ndarray:
    """Origin timestamps (int64 nanoseconds) of windows ``rows``."""
    stamps = np.concatenate([ix.asi8 for ix in windows.panel.index])
    return stamps[windows.start[rows] + windows.lookback - 1]


def _name(series_id) -> str:
    return "the series" if series_id is None else f"series {series_id!r}"


def _long(frames, raw: Panel) -> pd.DataFrame:
    """Per-series forecast frames as one long DataFrame (id, timestamp, values)."""
    parts = []
    for series_id, frame in zip(raw.ids, frames):
        part = frame.reset_index(names=raw.time_column)
        part.insert(0, raw.id_column, series_id)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
