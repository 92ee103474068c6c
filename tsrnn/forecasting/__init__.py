"""Forecasting: where time meets models.

* :mod:`~tsrnn.forecasting.forecaster`: :class:`RNNForecaster`, pandas in, pandas out;
* :mod:`~tsrnn.forecasting.intervals`: conformal interval widths and shrinkage to naive,
  calibrated on held-out windows;
* :mod:`~tsrnn.forecasting.baselines`: naive, seasonal naive, ridge on lags;
* :mod:`~tsrnn.forecasting.backtest`: rolling-origin evaluation beside the baselines;
* :mod:`~tsrnn.forecasting.seasonality`: season lengths from a frequency.
"""

from tsrnn.forecasting.backtest import BacktestResult, backtest
from tsrnn.forecasting.forecaster import RNNForecaster
from tsrnn.forecasting.intervals import conformal_quantile, naive_shrinkage
from tsrnn.forecasting.seasonality import seasonal_period

__all__ = ["BacktestResult", "RNNForecaster", "backtest", "conformal_quantile",
           "naive_shrinkage", "seasonal_period"]

# Public names report this package as their home (for pickles, reprs and the API docs),
# wherever inside it they are defined.
for _obj in (BacktestResult, RNNForecaster, backtest, conformal_quantile, naive_shrinkage,
             seasonal_period):
    _obj.__module__ = __name__
del _obj
