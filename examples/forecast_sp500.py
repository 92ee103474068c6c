"""Forecast S&P 500 volatility and closes 5 trading days ahead, against naive baselines.

Data: ``sp500`` (daily S&P 500 index 1999-2018, 5031 trading days), shipped with tsrnn.

Two forecasting problems on the same prices:

1. **Volatility.** The 21-day rolling volatility of daily log returns (annualised), the
   quantity risk models forecast. Volatility clusters, so its recent path and the
   recent absolute returns (a past covariate) carry information about the next week.
2. **Closing prices.** The close 5 trading days ahead. Prices are close to a random
   walk, so the naive forecast (the last close) is the honest benchmark: expect to tie
   it, not to beat it by much.

Each is backtested (fitted once on the first 75% of the days, a 5-day forecast every 5
days after that) beside the naive, seasonal-naive (same weekday last week) and
ridge-on-lags baselines, then refitted on all data to forecast the first week of 2019.

Run it from the repository root (seconds on two idle cores)::

    python examples/forecast_sp500.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster, backtest
from tsrnn.datasets import load_dataset
from tsrnn.windowing import log_returns, rolling_volatility

HORIZON = 5  # trading days: one week
VOL_WINDOW = 21  # trading days: one month
TRADING_DAYS = 252


def volatility_frame(closes: pd.Series) -> pd.DataFrame:
    """Annualised 21-day volatility and absolute daily log return, in percent."""
    returns = log_returns(closes)
    frame = pd.DataFrame({
        "volatility": 100 * rolling_volatility(returns, VOL_WINDOW, annualize=TRADING_DAYS),
        "abs_return": 100 * returns.abs(),
    })
    return frame.dropna()


def report(title: str, result) -> None:
    """Print a backtest's table and how the forecaster compares with the naive forecast."""
    overall = result.overall
    gain = 1 - overall.loc["tsrnn", "mae"] / overall.loc["naive", "mae"]
    print(f"\n## {title}: {result.forecasts['origin'].nunique()} origins x {HORIZON} days "
          f"({result.seconds:.0f} s)\n")
    print(result.to_markdown())
    print(f"\nMAE vs naive: {gain:+.1%} (positive = better than the last value). "
          f"90% interval hit rate: {result.interval_hit_rate:.1%}.")
    print("MAE by days ahead:", ", ".join(
        f"{step}: {mae:.3g}" for step, mae in result.by_horizon["tsrnn"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=20,
                        help="training epochs per fit (default: 20)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    started = time.perf_counter()

    sp500 = load_dataset("sp500")
    closes = sp500["close"]
    print(f"sp500: {len(sp500)} trading days, {sp500.index[0]:%Y-%m-%d} .. "
          f"{sp500.index[-1]:%Y-%m-%d}, close {closes.iloc[0]:.0f} -> {closes.iloc[-1]:.0f}")

    # 1. Volatility, with the absolute returns as a past covariate.
    vol = volatility_frame(closes)
    print(f"volatility: {vol['volatility'].min():.1f}% .. {vol['volatility'].max():.1f}% "
          f"annualised (median {vol['volatility'].median():.1f}%)")
    vol_forecaster = RNNForecaster(lookback=63, horizon=HORIZON, cell="gru", hidden_size=32,
                                   max_iter=args.max_iter, random_state=0,
                                   regressor_params={"batch_size": 128})
    result = backtest(vol_forecaster, vol, target="volatility", exog="abs_return",
                      initial=0.75)
    report("Volatility (annualised %, 21-day window)", result)
    vol_forecaster.fit(vol, target="volatility", exog="abs_return")
    print("\nVolatility forecast for the first week of 2019 (%):")
    print(vol_forecaster.predict().round(2).to_string())

    # 2. Closing prices. normalization='window' (the default) scales every window by its
    #    own last value and step size, so the model follows the price level up the trend.
    close_forecaster = RNNForecaster(lookback=20, horizon=HORIZON, cell="lstm",
                                     hidden_size=32, max_iter=args.max_iter, random_state=0,
                                     regressor_params={"batch_size": 128})
    result = backtest(close_forecaster, sp500, target="close", initial=0.75)
    report("Close (index points)", result)
    close_forecaster.fit(sp500, target="close")
    forecast = close_forecaster.predict()
    forecast["change_%"] = 100 * (forecast["close"] / closes.iloc[-1] - 1)
    print(f"\nClose forecast after {closes.index[-1]:%Y-%m-%d} (last close "
          f"{closes.iloc[-1]:.2f}; dates are business days, exchange holidays included):")
    print(forecast.round(2).to_string())
    move = forecast["change_%"].iloc[-1]
    if abs(move) < 0.01:
        print("Predicted 5-day move: none (< 0.01%): the forecaster keeps to the last "
              "close, the random-walk forecast.")
    else:
        print(f"Predicted 5-day move: {'up' if move > 0 else 'down'} {abs(move):.2f}%.")
    print(f"\nTotal time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
