"""Holt-Winters exponential smoothing (ETS), the classical model the forecaster combines
its network with.

:meth:`HoltWinters.fit` tries up to six models -- no trend or an additive damped trend,
times no season, an additive or a multiplicative one (multiplicative only for positive
series; a season only with two full cycles and a few points more) -- and keeps the one
with the lowest AICc. Smoothing parameters, the damping and the initial level and trend
are fitted by minimising the one-step squared error (L-BFGS-B within the usual bounds,
damping in [0.8, 0.98]); initial seasons come from the first two cycles. The recursion
is compiled (:mod:`tsrnn._kernels.ets`), so a fit takes milliseconds.

A fitted model carries its state before the first observation; :meth:`HoltWinters.filter`
runs the recursion over any stretch of data from a given state, and
:meth:`HoltWinters.forecast` gives the h-step forecasts from the states at chosen rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from tsrnn._kernels import ets as _ets

__all__ = ["HoltWinters"]

#: Damping range of an additive damped trend (as forecast::ets).
PHI_BOUNDS = (0.8, 0.98)
SMOOTHING_BOUNDS = (1e-4, 0.9999)
#: Points beyond two full cycles a seasonal model needs.
SEASON_MARGIN = 4


@dataclass(frozen=True)
class HoltWinters:
    """A fitted Holt-Winters model and its state before its first observation.

    Attributes
    ----------
    trend : {0, 1}
        No trend, or an additive damped trend.
    seasonal : {0, 1, 2}
        No season, additive, multiplicative.
    m : int
        Season length (1 without a season).
    alpha, beta, gamma, phi : float
        Smoothing of level, trend, season; damping of the trend.
    level, slope : float
        State before the first observation.
    season : ndarray of shape (m,)
        The m seasons before the first observation, oldest first.
    aicc : float
        Of the fit.
    """

    trend: int
    seasonal: int
    m: int
    alpha: float
    beta: float
    gamma: float
    phi: float
    level: float
    slope: float
    season: np.ndarray
    aicc: float

    @property
    def spec(self) -> str:
        """'A' / 'Ad' / 'N' trend and 'N' / 'A' / 'M' season, as in ETS notation."""
        return ("Ad" if self.trend else "N") + "-" + "NAM"[self.seasonal]

    # ------------------------------------------------------------------ fit

    @classmethod
    def fit(cls, y: np.ndarray, m: int) -> HoltWinters | None:
        """The model of lowest AICc for ``y`` (n,) with season length ``m``, or None
        when no model can be fitted (fewer than 4 finite points, or none converges)."""
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 1 or y.size < 4 or not np.all(np.isfinite(y)):
            return None
        scale = float(np.mean(np.abs(y)))
        if not scale > 0:
            return None
        ys = y / scale  # the model is scale-equivariant; fit on a unit scale
        seasonal_options = [_ets.NO_SEASON]
        if m > 1 and ys.size >= 2 * m + SEASON_MARGIN:
            seasonal_options.append(_ets.ADDITIVE)
            if np.all(ys > 0):
                seasonal_options.append(_ets.MULTIPLICATIVE)
        best = None
        for seasonal in seasonal_options:
            for trend in (0, 1):
                model = _fit_spec(ys, m if seasonal else 1, trend, seasonal)
                if model is not None and (best is None or model.aicc < best.aicc):
                    best = model
        if best is None:
            return None
        rescale = scale if best.seasonal != _ets.MULTIPLICATIVE else 1.0
        return replace(best, level=best.level * scale, slope=best.slope * scale,
                       season=best.season * rescale)

    # ------------------------------------------------------------ filtering

    def filter(self, y: np.ndarray, state=None):
        """States after each observation of ``y`` (n,), starting from ``state``
        ``(level, slope, season (m,))`` or the model's initial state: ``(level (n,),
        slope (n,), season (n + m,))`` with ``season[t + m]`` updated at row t."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        level0, slope0, season0 = (self.level, self.slope, self.season) if state is None \
            else state
        n = y.shape[0]
        level, slope = np.empty(n), np.empty(n)
        season = np.empty(n + self.m)
        _ets.holt_winters_states(y, self.alpha, self.beta, self.gamma, self.phi,
                                 float(level0), float(slope0),
                                 np.ascontiguousarray(season0, dtype=np.float64),
                                 self.trend, self.seasonal, level, slope, season)
        return level, slope, season

    def end_state(self, states):
        """``(level, slope, season)`` after the last row of :meth:`filter`'s states: the
        start state for the rows that follow."""
        level, slope, season = states
        return float(level[-1]), float(slope[-1]), season[-self.m:].copy()

    def forecast(self, states, rows: np.ndarray, horizon: int) -> np.ndarray:
        """Forecasts (n_rows, horizon) made after observing each of ``rows``."""
        level, slope, season = states
        h = np.arange(1, horizon + 1)
        phi = self.phi if self.trend else 1.0
        damped = np.cumsum(phi ** h)
        base = level[rows][:, None] + slope[rows][:, None] * damped[None, :]
        if not self.seasonal:
            return base
        back = self.m * np.ceil(h / self.m).astype(np.int64)
        s = season[rows[:, None] + h[None, :] - back[None, :] + self.m]
        return base * s if self.seasonal == _ets.MULTIPLICATIVE else base + s


def _initial_state(y: np.ndarray, m: int, trend: int, seasonal: int):
    """Level, slope and seasons before the first observation, from the first cycles."""
    if seasonal:
        cycles = y[:2 * m].reshape(2, m)
        means = cycles.mean(axis=1)
        level = means[0]
        slope = (means[1] - means[0]) / m if trend else 0.0
        if seasonal == _ets.MULTIPLICATIVE:
            season = (cycles / means[:, None]).mean(axis=0)
            season = season / season.mean()
        else:
            season = (cycles - means[:, None]).mean(axis=0)
            season = season - season.mean()
        return level, slope, season
    k = min(y.size, 10)
    slope = float(np.mean(np.diff(y[:k]))) if trend and k > 1 else 0.0
    return float(y[0]), slope, np.zeros(1)


def _fit_spec(y: np.ndarray, m: int, trend: int, seasonal: int) -> HoltWinters | None:
    """Least squares fit of one model (AICc attached), None if it fails."""
    from scipy.optimize import minimize

    level0, slope0, season0 = _initial_state(y, m, trend, seasonal)
    names = ["alpha"] + (["beta", "phi"] if trend else []) + (["gamma"] if seasonal else [])
    start = {"alpha": 0.5, "beta": 0.1, "phi": 0.95, "gamma": 0.1}
    bounds = {"alpha": SMOOTHING_BOUNDS, "beta": SMOOTHING_BOUNDS, "phi": PHI_BOUNDS,
              "gamma": SMOOTHING_BOUNDS}
    spread = float(np.std(y)) + 1e-12
    x0 = [start[n] for n in names] + [level0] + ([slope0] if trend else [])
    box = [bounds[n] for n in names] + [(level0 - 3 * spread, level0 + 3 * spread)] + (
        [(-spread, spread)] if trend else [])

    def unpack(x):
        p = dict(zip(names, x))
        return (p["alpha"], p.get("beta", 0.0), p.get("gamma", 0.0), p.get("phi", 1.0),
                x[len(names)], x[len(names) + 1] if trend else 0.0)

    def objective(x):
        alpha, beta, gamma, phi, level, slope = unpack(x)
        return _ets.holt_winters_sse(y, alpha, beta, gamma, phi, level, slope, season0,
                                     trend, seasonal)

    if not math.isfinite(objective(np.asarray(x0))):
        return None
    result = minimize(objective, np.asarray(x0), method="L-BFGS-B", bounds=box)
    sse = float(result.fun)
    n = y.size
    k = len(x0) + (m - 1 if seasonal else 0)
    if not math.isfinite(sse) or n - k - 1 <= 0:
        return None
    aic = n * math.log(max(sse, 1e-300) / n) + 2 * k
    aicc = aic + 2 * k * (k + 1) / (n - k - 1)
    alpha, beta, gamma, phi, level, slope = unpack(result.x)
    return HoltWinters(trend, seasonal, m, float(alpha), float(beta), float(gamma),
                       float(phi), float(level), float(slope),
                       np.asarray(season0, dtype=np.float64), float(aicc))
