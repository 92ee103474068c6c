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


def ridge_lags(train_X, train_y, test_X, horizon):
    """Ridge regression on the target's lags, relative to the window's last value."""
    def features(X):
        lags = X[:, :, 0]
        return lags - lags[:, -1:]

    model = Ridge(alpha=1.0).fit(features(train_X), train_y - train_X[:, -1, :1])
    return model.predict(features(test_X)).reshape(len(test_X), horizon) + test_X[:, -1, :1]
