"""tsrnn: Numba-accelerated recurrent networks for time-series forecasting."""

__version__ = "0.1.0"

from tsrnn.estimator import RNNRegressor, TrainingDivergedError  # noqa: E402
from tsrnn.forecasting import RNNForecaster, backtest  # noqa: E402

__all__ = ["RNNForecaster", "RNNRegressor", "TrainingDivergedError", "__version__", "backtest"]
