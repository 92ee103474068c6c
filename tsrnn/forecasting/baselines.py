"""Classical baselines that every backtest reports beside the model, on the same origins."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge

__all__ = ["BASELINES", "naive", "ridge_lags", "seasonal_naive"]

BASELINES = ("naive", "seasonal_naive", "ridge")


def naive(y_hist_last: np.ndarray, horizon: int) -> np.ndarray:
    return np.repeat(y_hist_last[:, None], horizon, axis=1)


def seasonal_naive(target: np.ndarray, origin_rows: np.ndarray, horizon: int,
                    m: int) -> np.ndarray:
    steps = np.arange(1, horizon + 1)
    back = m * np.ceil(steps / m).astype(int)
    rows = origin_rows[:, None] + steps[None, :] - back[None, :]
    return target[rows]


def ridge_lags(train_X, train_y, test_X, horizon, train_future=None, test_future=None):
    """Ridge regression on the window's lags, forecasting the change from its last value.

    ``X`` windows are (n, lookback, 1 + n_exog): the target's lags (relative to the
    last value) and the past covariates' lags; ``future`` (n, horizon, n_future) the
    known-future covariates of the forecast steps. Covariate features are standardised
    on the training windows, so the baseline sees the same inputs as the network.
    """
    def features(X, future):
        lags = X[:, :, 0]
        parts = [lags - lags[:, -1:], X[:, :, 1:].reshape(len(X), -1)]
        if future is not None:
            parts.append(future.reshape(len(X), -1))
        return parts[0], np.concatenate(parts[1:], axis=1)

    own, cov = features(train_X, train_future)
    mean, std = cov.mean(axis=0), cov.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def design(X, future):
        own, cov = features(X, future)
        return np.concatenate([own, (cov - mean) / std], axis=1)

    model = Ridge(alpha=1.0).fit(design(train_X, train_future), train_y - train_X[:, -1, :1])
    pred = model.predict(design(test_X, test_future)).reshape(len(test_X), horizon)
    return pred + test_X[:, -1, :1]
