"""tsrnn: Numba-accelerated recurrent networks for time-series forecasting."""

__version__ = "0.1.0"

from tsrnn.estimator import RNNRegressor, TrainingDivergedError  # noqa: E402

__all__ = ["RNNForecaster", "RNNRegressor", "TrainingDivergedError", "__version__", "backtest",
           "warmup"]

# RNNForecaster and backtest live in tsrnn.forecasting, which imports pandas' time
# machinery and sklearn.linear_model (~0.3 s). They are loaded on first access
# (PEP 562), so `import tsrnn; tsrnn.RNNRegressor().fit(...)` does not pay for them.
# warmup (tsrnn._warmup) compiles the kernels ahead of time; loaded the same way.
_LAZY = {"RNNForecaster": "tsrnn.forecasting", "backtest": "tsrnn.forecasting",
         "warmup": "tsrnn._warmup"}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tsrnn' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
