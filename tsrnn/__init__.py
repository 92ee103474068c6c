"""tsrnn: Numba-accelerated recurrent networks for time-series forecasting."""

__version__ = "0.1.0"

from tsrnn.estimator import RNNRegressor, TrainingDivergedError  # noqa: E402

__all__ = ["RNNRegressor", "TrainingDivergedError", "__version__"]
