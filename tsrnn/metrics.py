"""Point-forecast accuracy metrics: MAE, RMSE, MAPE, sMAPE and MASE.

Every metric takes ``y_true`` and ``y_pred`` of the same shape, either 1-D ``(n,)`` or
2-D ``(n, horizon)`` (one row per forecast origin, one column per step ahead), and
returns a float. With ``multioutput="raw_values"`` a 2-D input gives one value per column,
i.e. the error at each lead time. Inputs must be finite and non-empty: a NaN is an error,
never silently skipped.
"""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["mae", "mape", "mase", "rmse", "smape"]

MultiOutput = Literal["uniform_average", "raw_values"]
_MULTIOUTPUT = ("uniform_average", "raw_values")


def _as_float_array(values: ArrayLike, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be numeric array-like; could not convert it to float: {exc}"
        ) from exc
    if array.ndim == 0:
        array = array.reshape(1)
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        where = position[0] if len(position) == 1 else position
        raise ValueError(
            f"{name} contains {int(bad.sum())} non-finite value(s); the first is "
            f"{float(array[position])} at position {where}."
        )


def _check_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Convert to float arrays and check shape, emptiness and finiteness."""
    true = _as_float_array(y_true, "y_true")
    pred = _as_float_array(y_pred, "y_pred")
    for name, array in (("y_true", true), ("y_pred", pred)):
        if array.ndim > 2:
            raise ValueError(
                f"{name} must be 1-D (n,) or 2-D (n, horizon); got shape {array.shape}."
            )
    if true.shape != pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape; got {true.shape} and {pred.shape}."
        )
    if true.size == 0:
        raise ValueError(f"y_true and y_pred are empty (shape {true.shape}); need at least one value.")
    _check_finite(true, "y_true")
    _check_finite(pred, "y_pred")
    return true, pred


def _reduce(values: np.ndarray, multioutput: MultiOutput) -> float | np.ndarray:
    """Average per-element scores into one float, or per column for 'raw_values'."""
    if multioutput not in _MULTIOUTPUT:
        raise ValueError(
            f"multioutput must be one of {_MULTIOUTPUT}; got {multioutput!r}."
        )
    columns = values.reshape(values.shape[0], -1).mean(axis=0)
    if multioutput == "raw_values":
        return columns
    return float(columns.mean())


def mae(
    y_true: ArrayLike, y_pred: ArrayLike, *, multioutput: MultiOutput = "uniform_average"
) -> float | np.ndarray:
    """Mean absolute error.

    Parameters
    ----------
    y_true : array-like of shape (n,) or (n, horizon)
        Observed values.
    y_pred : array-like of the same shape as y_true
        Forecasts.
    multioutput : {'uniform_average', 'raw_values'}, default='uniform_average'
        ``'raw_values'`` returns one MAE per column (per lead time) as an array of shape
        ``(horizon,)`` (``(1,)`` for 1-D input); ``'uniform_average'`` their mean.

    Returns
    -------
    float or numpy.ndarray
        ``mean(|y_true - y_pred|)``, in the units of the data.

    Raises
    ------
    ValueError
        On a shape mismatch, empty input, more than two dimensions, or NaN/inf values.

    Examples
    --------
    >>> mae([1.0, 2.0, 4.0], [2.0, 2.0, 1.0])
    1.3333333333333333
    """
    true, pred = _check_pair(y_true, y_pred)
    return _reduce(np.abs(true - pred), multioutput)


def rmse(
    y_true: ArrayLike, y_pred: ArrayLike, *, multioutput: MultiOutput = "uniform_average"
) -> float | np.ndarray:
    """Root mean squared error.

    Parameters
    ----------
    y_true : array-like of shape (n,) or (n, horizon)
        Observed values.
    y_pred : array-like of the same shape as y_true
        Forecasts.
    multioutput : {'uniform_average', 'raw_values'}, default='uniform_average'
        ``'raw_values'`` returns one RMSE per column (lead time); ``'uniform_average'``
        the mean of those per-column RMSEs, as scikit-learn's
        ``root_mean_squared_error`` does (not the RMSE of all values pooled).

    Returns
    -------
    float or numpy.ndarray
        ``sqrt(mean((y_true - y_pred) ** 2))`` per column, in the units of the data.

    Raises
    ------
    ValueError
        On a shape mismatch, empty input, more than two dimensions, or NaN/inf values.

    Examples
    --------
    >>> rmse([1.0, 2.0, 4.0], [2.0, 2.0, 1.0])
    1.8257418583505538
    """
    true, pred = _check_pair(y_true, y_pred)
    if multioutput not in _MULTIOUTPUT:
        raise ValueError(f"multioutput must be one of {_MULTIOUTPUT}; got {multioutput!r}.")
    per_column = np.sqrt(_reduce((true - pred) ** 2, "raw_values"))
    return per_column if multioutput == "raw_values" else float(per_column.mean())


def mape(
    y_true: ArrayLike, y_pred: ArrayLike, *, multioutput: MultiOutput = "uniform_average"
) -> float | np.ndarray:
    """Mean absolute percentage error, in percent.

    Parameters
    ----------
    y_true : array-like of shape (n,) or (n, horizon)
        Observed values; none may be zero.
    y_pred : array-like of the same shape as y_true
        Forecasts.
    multioutput : {'uniform_average', 'raw_values'}, default='uniform_average'
        Per-column values or their mean, as in :func:`mae`.

    Returns
    -------
    float or numpy.ndarray
        ``100 * mean(|y_true - y_pred| / |y_true|)``: 0 is perfect, with no upper bound.

    Raises
    ------
    ValueError
        If any ``y_true`` is zero (the percentage error is undefined there; use
        :func:`smape` or :func:`mase` for series that cross zero), and on the input
        problems listed for :func:`mae`.

    Notes
    -----
    No epsilon is added to the denominator: doing so would turn an undefined value into an
    arbitrary huge one.

    Examples
    --------
    >>> mape([100.0, 200.0], [110.0, 190.0])
    7.5
    """
    true, pred = _check_pair(y_true, y_pred)
    zero = true == 0
    if zero.any():
        position = tuple(int(i) for i in np.argwhere(zero)[0])
        where = position[0] if len(position) == 1 else position
        raise ValueError(
            f"mape is undefined when y_true is zero; y_true has {int(zero.sum())} zero(s), the "
            f"first at position {where}. Use smape or mase for series that reach zero."
        )
    return _reduce(100.0 * np.abs(true - pred) / np.abs(true), multioutput)


def smape(
    y_true: ArrayLike, y_pred: ArrayLike, *, multioutput: MultiOutput = "uniform_average"
) -> float | np.ndarray:
    """Symmetric mean absolute percentage error, in percent (0 to 200).

    Parameters
    ----------
    y_true : array-like of shape (n,) or (n, horizon)
        Observed values.
    y_pred : array-like of the same shape as y_true
        Forecasts.
    multioutput : {'uniform_average', 'raw_values'}, default='uniform_average'
        Per-column values or their mean, as in :func:`mae`.

    Returns
    -------
    float or numpy.ndarray
        ``100 * mean(2 |y_true - y_pred| / (|y_true| + |y_pred|))``, between 0 and 200.

    Raises
    ------
    ValueError
        On the input problems listed for :func:`mae`.

    Notes
    -----
    This is the M3/M4 competition definition. A term where both ``y_true`` and ``y_pred``
    are zero is a perfect forecast and counts as 0 (the formula would give 0/0).

    Examples
    --------
    >>> smape([100.0, 0.0], [300.0, 0.0])
    50.0
    """
    true, pred = _check_pair(y_true, y_pred)
    denominator = np.abs(true) + np.abs(pred)
    numerator = 2.0 * np.abs(true - pred)
    # Both zero means a perfect forecast: define the term as 0 instead of 0/0.
    terms = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    return _reduce(100.0 * terms, multioutput)


def mase(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    y_train: ArrayLike,
    seasonality: int = 1,
    multioutput: MultiOutput = "uniform_average",
) -> float | np.ndarray:
    """Mean absolute scaled error (Hyndman & Koehler, 2006).

    Parameters
    ----------
    y_true : array-like of shape (n,) or (n, horizon)
        Observed values over the forecast period.
    y_pred : array-like of the same shape as y_true
        Forecasts.
    y_train : array-like of shape (n_train,)
        The in-sample (training) series, in time order, used for the scale.
    seasonality : int, default=1
        Season length ``m`` of the naive benchmark: 1 is the naive (random walk) forecast,
        24 a daily season in hourly data, 7 a weekly one in daily data.
    multioutput : {'uniform_average', 'raw_values'}, default='uniform_average'
        Per-column values or their mean, as in :func:`mae`.

    Returns
    -------
    float or numpy.ndarray
        ``mae(y_true, y_pred) / mean(|y_train[m:] - y_train[:-m]|)``. Below 1 beats the
        in-sample one-step seasonal-naive forecast on average.

    Raises
    ------
    ValueError
        If ``y_train`` is not 1-D, has ``seasonality`` or fewer values, contains NaN/inf,
        or is constant at lag ``m`` (scale zero, MASE undefined); and on the input
        problems listed for :func:`mae`.
    TypeError
        If ``seasonality`` is not an integer.

    References
    ----------
    .. [1] R. J. Hyndman and A. B. Koehler, "Another look at measures of forecast
       accuracy", International Journal of Forecasting 22(4), 679-688, 2006.

    Examples
    --------
    >>> mase([5.0, 6.0], [4.0, 8.0], y_train=[1.0, 2.0, 4.0])
    1.0
    """
    true, pred = _check_pair(y_true, y_pred)
    if isinstance(seasonality, bool) or not isinstance(seasonality, numbers.Integral):
        raise TypeError(
            f"seasonality must be an int; got {type(seasonality).__name__} ({seasonality!r})."
        )
    if seasonality < 1:
        raise ValueError(f"seasonality must be >= 1; got {seasonality}.")
    train = _as_float_array(y_train, "y_train")
    if train.ndim != 1:
        raise ValueError(f"y_train must be 1-D (n_train,); got shape {train.shape}.")
    if train.size <= seasonality:
        raise ValueError(
            f"y_train needs more than seasonality={seasonality} values to compute the "
            f"seasonal-naive scale; got {train.size}."
        )
    _check_finite(train, "y_train")
    scale = float(np.mean(np.abs(train[seasonality:] - train[:-seasonality])))
    if scale == 0.0:
        raise ValueError(
            f"mase is undefined: the in-sample seasonal-naive MAE of y_train (seasonality="
            f"{seasonality}) is zero, i.e. y_train is constant at that lag."
        )
    return _reduce(np.abs(true - pred) / scale, multioutput)
