"""tsrnn: Numba-accelerated recurrent networks for time-series forecasting."""

__version__ = "0.1.0"

__all__ = ["__version__"]
