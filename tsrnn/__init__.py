"""tsrnn: Numba-accelerated recurrent networks for time-series forecasting."""

__version__ = "0.1.0"

__all__ = ["RNNForecaster", "RNNRegressor", "TrainingDivergedError", "__version__", "backtest",
           "warmup"]

# Every public name is loaded on first access (PEP 562): the estimator brings NumPy,
# Numba and scikit-learn (~1 s), the forecasting package pandas' time machinery and
# sklearn.linear_model (~0.3 s more), so `tsrnn --help` and a script that only fits an
# RNNRegressor pay for nothing they do not use. warmup (tsrnn._warmup) compiles the
# kernels ahead of time.
_LAZY = {"RNNRegressor": "tsrnn.estimator", "TrainingDivergedError": "tsrnn.estimator",
         "RNNForecaster": "tsrnn.forecasting", "backtest": "tsrnn.forecasting",
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
