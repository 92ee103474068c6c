"""Forecast Seattle's hourly temperature 24 hours ahead, backtested against baselines.

Data: ``seattle-temps`` (NOAA hourly temperature for 2010, degrees Fahrenheit, 8760
rows), shipped with tsrnn.

The script

1. backtests an LSTM forecaster (3 days of history in, 24 hours out): fitted once on the
   first 75% of the year (to 1 October), then asked for a 24-hour forecast every 24
   hours after that, beside the naive (last value), seasonal-naive (same hour yesterday)
   and ridge-on-lags baselines;
2. refits on the whole year and forecasts the first 24 hours of 2011, with a 90%
   prediction interval;
3. saves a figure with the forecast and the backtest errors by hour ahead.

Run it from the repository root (seconds on two idle cores)::

    python examples/forecast_weather.py
    python examples/forecast_weather.py --max-iter 60 --output weather.png   # longer fit
"""

from __future__ import annotations

import argparse
import time
import warnings

from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster, backtest
from tsrnn.datasets import load_dataset

LOOKBACK = 72  # three days of hourly history
HORIZON = 24  # one day ahead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=20,
                        help="training epochs per fit (default: 20)")
    parser.add_argument("--output", default="forecast_weather.png",
                        help="figure to write (default: forecast_weather.png)")
    args = parser.parse_args()
    # A few epochs stop before the optimiser converges: expected here, not worth a warning.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    temps = load_dataset("seattle-temps")
    print(f"seattle-temps: {len(temps)} hourly rows, {temps.index[0]} .. {temps.index[-1]}, "
          f"{temps['temp'].min():.1f} .. {temps['temp'].max():.1f} F")

    forecaster = RNNForecaster(
        lookback=LOOKBACK, horizon=HORIZON, cell="lstm", hidden_size=32,
        max_iter=args.max_iter, coverage=0.9, random_state=0,
        regressor_params={"batch_size": 128},
    )

    # 1. Backtest: one fit on January to September, a forecast every 24 h after that.
    started = time.perf_counter()
    result = backtest(
        forecaster, temps, target="temp", initial=0.75, refit=False,
        progress=lambda done, total: print(f"  backtest: {done}/{total} origins"),
    )
    n_origins = result.forecasts["origin"].nunique()
    print(f"\nBacktest over {n_origins} daily origins ({result.seconds:.0f} s):\n")
    print(result.to_markdown())
    print(f"\n90% interval contained {result.interval_hit_rate:.1%} of the actual values.")
    steps = [1, 6, 12, 24]
    print("\nMAE (F) by hours ahead:")
    print(result.by_horizon.loc[steps].round(3).to_string())

    # 2. Refit on the whole year, forecast the next day.
    forecaster.fit(temps, target="temp")
    forecast = forecaster.predict()
    print(f"\nForecast for {forecast.index[0]:%Y-%m-%d} (every 3rd hour):")
    print(forecast.iloc[::3].round(2).to_string())

    # 3. Figure: forecast with the last week of history, and the backtest errors.
    try:
        from tsrnn import plotting

        fig, (ax_forecast, ax_errors) = plotting.new_figure(2, 1, figsize=(10, 8))
        plotting.plot_forecast(temps, forecast, target="temp", ax=ax_forecast, last=7 * 24)
        ax_forecast.set_ylabel("temperature (F)")
        plotting.plot_backtest_errors(result, ax=ax_errors)
        plotting.save_figure(fig, args.output)
        print(f"\nSaved {args.output}")
    except ImportError as exc:
        print(f"\nNo figure: {exc}")
    print(f"Total time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
