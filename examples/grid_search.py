"""Tune an RNNRegressor with scikit-learn: Pipeline + GridSearchCV + TimeSeriesSplit.

Data: ``seattle-weather`` (NOAA daily weather in Seattle 2012-2015, 1461 days), shipped
with tsrnn. Task: tomorrow's maximum temperature from the last two weeks of maximum and
minimum temperature, precipitation and wind.

:func:`tsrnn.windowing.make_windows` turns the daily frame into windows ``X`` of shape
(n_windows, 14 days, 4 variables) and targets ``y`` (the next day's ``temp_max``). From
there everything is plain scikit-learn, because :class:`tsrnn.RNNRegressor` is a
scikit-learn regressor:

* a :class:`~sklearn.pipeline.Pipeline` of a feature step (optionally appending each
  variable's day-to-day change, a :class:`~sklearn.preprocessing.FunctionTransformer`
  over the 3-D windows) and the recurrent network;
* :class:`~sklearn.model_selection.GridSearchCV` over the cell type, hidden size and
  the feature step;
* :class:`~sklearn.model_selection.TimeSeriesSplit`, so every validation fold lies after
  its training folds (shuffled K-fold would leak the future into training);
* a final test on the last 20% of the windows (March to December 2015), held out of the
  search, beside a naive forecast (today's value) and ridge regression on the same
  windows.

Run it from the repository root (seconds on two idle cores)::

    python examples/grid_search.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from tsrnn import RNNRegressor
from tsrnn.datasets import load_dataset
from tsrnn.windowing import make_windows, train_test_split_windows

LOOKBACK = 14  # days of history per window
FEATURES = ["temp_max", "temp_min", "precipitation", "wind"]
TARGET = "temp_max"


def add_changes(X: np.ndarray, changes: bool = True) -> np.ndarray:
    """Append each variable's change since the previous day to the windows.

    Parameters
    ----------
    X : ndarray of shape (n_windows, n_timesteps, n_features)
    changes : bool, default=True
        False returns ``X`` unchanged (so the grid can switch the step off).

    Returns
    -------
    ndarray of shape (n_windows, n_timesteps, 2 * n_features) or ``X``
    """
    if not changes:
        return X
    diff = np.diff(X, axis=1, prepend=X[:, :1])  # 0 on the first day of each window
    return np.concatenate([X, diff], axis=2)


def main() -> None:
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    started = time.perf_counter()
    weather = load_dataset("seattle-weather")
    windows = make_windows(weather, LOOKBACK, 1, target=TARGET, features=FEATURES)
    X, y = windows.X, windows.y.ravel()
    X_train, X_test, y_train, y_test = train_test_split_windows(X, y, test_size=0.2)
    test_origins = windows.origins[-len(X_test):]
    print(f"seattle-weather: {len(weather)} days -> {len(X)} windows of shape {X.shape[1:]}; "
          f"search on {len(X_train)}, test on {len(X_test)} "
          f"(origins {test_origins[0]:%Y-%m-%d} .. {test_origins[-1]:%Y-%m-%d})")

    pipeline = Pipeline([
        ("features", FunctionTransformer(add_changes)),
        ("rnn", RNNRegressor(max_iter=40, batch_size=64, learning_rate_init=0.005,
                             early_stopping=True, n_iter_no_change=6, random_state=0)),
    ])
    grid = {
        "features__kw_args": [{"changes": False}, {"changes": True}],
        "rnn__cell": ["lstm", "gru"],
        "rnn__hidden_size": [8, 24],
    }
    search = GridSearchCV(pipeline, grid, cv=TimeSeriesSplit(n_splits=3),
                          scoring="neg_mean_absolute_error", n_jobs=1, refit=True)
    search.fit(X_train, y_train)

    results = pd.DataFrame(search.cv_results_)
    table = pd.DataFrame({
        "changes": [p["changes"] for p in results["param_features__kw_args"]],
        "cell": results["param_rnn__cell"],
        "hidden": results["param_rnn__hidden_size"],
        "cv MAE": -results["mean_test_score"],
        "std": results["std_test_score"],
        "fit s": results["mean_fit_time"],
        "rank": results["rank_test_score"],
    }).sort_values("rank")
    print(f"\nGridSearchCV, {len(results)} candidates x 3 time-ordered folds "
          f"(MAE in degrees C):\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nBest: {search.best_params_}")

    # Test on the held-out tail (2015), beside two simple baselines.
    rnn_mae = mean_absolute_error(y_test, search.predict(X_test))
    naive_mae = mean_absolute_error(y_test, X_test[:, -1, FEATURES.index(TARGET)])
    ridge = RidgeCV(alphas=np.logspace(-2, 3, 12)).fit(X_train.reshape(len(X_train), -1),
                                                        y_train)
    ridge_mae = mean_absolute_error(y_test, ridge.predict(X_test.reshape(len(X_test), -1)))
    print(f"\nTest MAE, next-day temp_max ({len(X_test)} days):")
    for name, mae in [("best RNN pipeline", rnn_mae), ("ridge on the windows", ridge_mae),
                      ("naive (today's value)", naive_mae)]:
        print(f"  {name:<22} {mae:.3f} C")
    print(f"\nTotal time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
