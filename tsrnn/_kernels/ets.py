"""Holt-Winters exponential smoothing: the recursion, compiled.

Numerics only (float64 arrays and scalars). Conventions of statsmodels'
``ExponentialSmoothing`` (level ``l``, trend ``b`` damped by ``phi``, season ``s`` of
period ``m``, additive or multiplicative)::

    prev_t = l_{t-1} + phi b_{t-1}
    fitted_t = prev_t (+ or *) s_{t-m}
    l_t = alpha (y_t (- or /) s_{t-m}) + (1 - alpha) prev_t
    b_t = beta (l_t - l_{t-1}) + (1 - beta) phi b_{t-1}
    s_t = gamma (y_t (- or /) prev_t) + (1 - gamma) s_{t-m}

``seasonal`` is 0 (none), 1 (additive) or 2 (multiplicative); ``trend`` 0 (none) or 1
(additive, damped by ``phi``; phi = 1 undamped). ``s0`` holds the m seasons before the
first observation, oldest first.
"""

import numpy as np
from numba import njit

NO_SEASON = 0
ADDITIVE = 1
MULTIPLICATIVE = 2


@njit(cache=True)
def holt_winters_sse(y, alpha, beta, gamma, phi, l0, b0, s0, trend, seasonal):
    """Sum of squared one-step errors over ``y`` (n,); inf if a state stops being
    finite or a multiplicative season reaches zero."""
    m = s0.shape[0]
    season = s0.copy()
    level, slope = l0, b0 if trend else 0.0
    if not trend:
        phi = 1.0
    sse = 0.0
    for t in range(y.shape[0]):
        j = t % m if seasonal else 0
        st = season[j] if seasonal else 0.0
        prev = level + phi * slope
        if seasonal == MULTIPLICATIVE:
            if st == 0.0 or prev == 0.0:
                return np.inf
            fitted = prev * st
            new_level = alpha * (y[t] / st) + (1.0 - alpha) * prev
            season[j] = gamma * (y[t] / prev) + (1.0 - gamma) * st
        elif seasonal == ADDITIVE:
            fitted = prev + st
            new_level = alpha * (y[t] - st) + (1.0 - alpha) * prev
            season[j] = gamma * (y[t] - prev) + (1.0 - gamma) * st
        else:
            fitted = prev
            new_level = alpha * y[t] + (1.0 - alpha) * prev
        if trend:
            slope = beta * (new_level - level) + (1.0 - beta) * phi * slope
        level = new_level
        err = y[t] - fitted
        sse += err * err
        if not np.isfinite(sse):
            return np.inf
    return sse


@njit(cache=True)
def holt_winters_states(y, alpha, beta, gamma, phi, l0, b0, s0, trend, seasonal,
                        level_out, slope_out, season_out):
    """Filter ``y`` (n,) and write the states after each observation: ``level_out``,
    ``slope_out`` (n,) and ``season_out`` (n + m,): ``season_out[:m] = s0`` and
    ``season_out[t + m]`` the season updated at step t."""
    m = s0.shape[0]
    for j in range(m):
        season_out[j] = s0[j]
    level, slope = l0, b0 if trend else 0.0
    if not trend:
        phi = 1.0
    for t in range(y.shape[0]):
        st = season_out[t] if seasonal else 0.0
        prev = level + phi * slope
        if seasonal == MULTIPLICATIVE:
            new_level = alpha * (y[t] / st) + (1.0 - alpha) * prev
            season_out[t + m] = gamma * (y[t] / prev) + (1.0 - gamma) * st
        elif seasonal == ADDITIVE:
            new_level = alpha * (y[t] - st) + (1.0 - alpha) * prev
            season_out[t + m] = gamma * (y[t] - prev) + (1.0 - gamma) * st
        else:
            new_level = alpha * y[t] + (1.0 - alpha) * prev
            season_out[t + m] = st
        if trend:
            slope = beta * (new_level - level) + (1.0 - beta) * phi * slope
        level = new_level
        level_out[t] = level
        slope_out[t] = slope
