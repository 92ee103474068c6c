"""Season lengths implied by a time index's frequency."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsrnn import windowing

__all__ = ["seasonal_period"]


def seasonal_period(index: pd.DatetimeIndex) -> int:
    """Season length in steps implied by an index's frequency.

    Sub-daily data: the steps in a day when that is a whole number of at most 1440
    (hourly: 24, half-hourly: 48, 15 minutes: 96); daily: 7 (a week); business/trading
    days: 5; weekly: 52; monthly: 12; quarterly: 4; anything else (yearly, multiples
    such as every 2 days, irregular): 1 (no season).
    """
    offset = windowing._infer_offset(index)
    if offset is None:
        return 5 if looks_like_trading_days(index) else 1
    offsets = pd.offsets
    if isinstance(offset, offsets.Tick) and offset.nanos < pd.Timedelta(days=1).value:
        steps, remainder = divmod(pd.Timedelta(days=1).value, offset.nanos)
        return int(steps) if remainder == 0 and steps <= 1440 else 1
    if offset.n != 1:
        return 1
    if isinstance(offset, offsets.Day):
        return 7
    if isinstance(offset, (offsets.BusinessDay, offsets.CustomBusinessDay)):
        return 5
    if isinstance(offset, offsets.Week):
        return 52
    if isinstance(offset, (offsets.MonthEnd, offsets.MonthBegin, offsets.BusinessMonthEnd,
                           offsets.BusinessMonthBegin)):
        return 12
    if isinstance(offset, (offsets.QuarterEnd, offsets.QuarterBegin,
                           offsets.BQuarterEnd, offsets.BQuarterBegin)):
        return 4
    return 1


def looks_like_trading_days(index: pd.DatetimeIndex) -> bool:
    return len(index) > 2 and bool(np.all(index.day_of_week < 5))

