"""Forecast accuracy of the RNNForecaster defaults on the shipped datasets.

Rolling-origin backtests beside naive, seasonal-naive and ridge-on-lags baselines,
all on the same origins; prints one markdown table per dataset (the README quotes
them). A second backtest of the network alone (``highway=False``,
``shrink_to_naive=False``) on the same origins shows what the linear highway and the
shrinkage contribute. Run: ``python benchmarks/accuracy.py`` (under a minute on 2 cores).
"""

import argparse
import time
import warnings

import pandas as pd

from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster, backtest
from tsrnn.datasets import load_seattle_temps, load_sp500

CASES = {
    "seattle-temps": dict(load=load_seattle_temps, target="temp", lookback=72, horizon=24),
    "sp500": dict(load=load_sp500, target="close", lookback=20, horizon=5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="*", default=list(CASES))
    parser.add_argument("--initial", type=float, default=0.75,
                        help="share of the rows before the first origin")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    for name in args.datasets:
        case = CASES[name]
        frame = case["load"]()
        forecaster = RNNForecaster(lookback=case["lookback"], horizon=case["horizon"],
                                   random_state=args.seed)
        started = time.perf_counter()
        result = backtest(forecaster, frame, target=case["target"], initial=args.initial)
        alone = backtest(forecaster.set_params(highway=False, shrink_to_naive=False), frame,
                         target=case["target"], initial=args.initial)
        forecaster.set_params(highway=True, shrink_to_naive=True)
        same = alone.per_origin["origin"].unique(), result.per_origin["origin"].unique()
        assert len(same[0]) == len(same[1]) and (same[0] == same[1]).all()
        network_alone = alone.overall.loc[["tsrnn"]].rename(index={"tsrnn": "network alone"})
        result.overall = pd.concat([result.overall, network_alone])
        origins = result.per_origin["origin"]
        print(f"\n### {name}: {case['target']}, horizon {case['horizon']}, lookback "
              f"{case['lookback']}, {origins.nunique()} origins from {origins.min():%Y-%m-%d} "
              f"to {origins.max():%Y-%m-%d} (seasonality {result.seasonality})\n")
        print(result.to_markdown())
        print("\n(tsrnn: the defaults, network + linear highway + shrinkage to naive; "
              "network alone: highway=False, shrink_to_naive=False.)")
        hit = result.interval_hit_rate
        print(f"\n{forecaster.coverage:.0%} interval coverage on the test origins: "
              f"{hit:.1%}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
