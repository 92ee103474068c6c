"""Hand-computed tests for tsrnn.metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tsrnn.metrics import mae, mape, mase, rmse, smape

Y_TRUE = [1.0, 2.0, 4.0]
Y_PRED = [2.0, 2.0, 1.0]  # errors -1, 0, 3


def test_mae_rmse_1d():
    assert mae(Y_TRUE, Y_PRED) == pytest.approx(4 / 3)
    assert rmse(Y_TRUE, Y_PRED) == pytest.approx(math.sqrt(10 / 3))
    assert isinstance(mae(Y_TRUE, Y_PRED), float)


def test_perfect_forecast_is_zero():
    y = np.array([3.0, -1.0, 2.5])
    for metric in (mae, rmse, mape, smape):
        assert metric(y, y) == 0.0
    assert mase(y, y, y_train=[1.0, 2.0]) == 0.0


def test_2d_uniform_and_raw_values():
    y_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    y_pred = np.array([[2.0, 2.0], [3.0, 0.0]])  # abs errors [[1, 0], [0, 4]]
    assert mae(y_true, y_pred) == pytest.approx(1.25)
    np.testing.assert_allclose(mae(y_true, y_pred, multioutput="raw_values"), [0.5, 2.0])
    # rmse per column: sqrt(1/2), sqrt(16/2); uniform average = their mean (scikit-learn convention)
    per_column = [math.sqrt(0.5), math.sqrt(8.0)]
    np.testing.assert_allclose(rmse(y_true, y_pred, multioutput="raw_values"), per_column)
    assert rmse(y_true, y_pred) == pytest.approx(np.mean(per_column))
    np.testing.assert_allclose(mae(Y_TRUE, Y_PRED, multioutput="raw_values"), [4 / 3])


def test_mape_percent():
    # |10/100| = 10 %, |10/200| = 5 %  -> 7.5 %
    assert mape([100.0, 200.0], [110.0, 190.0]) == pytest.approx(7.5)
    assert mape([-2.0], [-1.0]) == pytest.approx(50.0)


def test_mape_zero_in_y_true_raises():
    with pytest.raises(ValueError, match=r"mape is undefined when y_true is zero.*position 1"):
        mape([1.0, 0.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"position \(1, 0\)"):
        mape([[1.0, 2.0], [0.0, 1.0]], [[1.0, 2.0], [1.0, 1.0]])


def test_smape_hand_computed_and_bounds():
    # 2*200/400 = 1 -> 100 %; 0/0 -> 0 by convention; mean 50 %
    assert smape([100.0, 0.0], [300.0, 0.0]) == pytest.approx(50.0)
    # opposite signs or a zero reach the 200 % bound
    assert smape([1.0, 0.0], [-1.0, 5.0]) == pytest.approx(200.0)
    # 2*1/(1+2) = 2/3
    assert smape([1.0], [2.0]) == pytest.approx(200.0 / 3)
    rng = np.random.default_rng(0)
    value = smape(rng.normal(size=50), rng.normal(size=50))
    assert 0.0 <= value <= 200.0


def test_mase_hand_computed():
    # naive in-sample MAE of [1, 2, 4] = mean(1, 2) = 1.5; forecast MAE = mean(1, 2) = 1.5
    assert mase([5.0, 6.0], [4.0, 8.0], y_train=[1.0, 2.0, 4.0]) == pytest.approx(1.0)
    # seasonality 2: |3-1|, |4-2|, |7-3| -> scale 8/3; MAE 2 -> 0.75
    assert mase([10.0], [12.0], y_train=[1.0, 2.0, 3.0, 4.0, 7.0], seasonality=2) == pytest.approx(0.75)
    # 2-D y: scale from the 1-D training series
    np.testing.assert_allclose(
        mase([[1.0, 2.0]], [[2.0, 5.0]], y_train=[0.0, 2.0], multioutput="raw_values"), [0.5, 1.5]
    )


def test_mase_errors():
    with pytest.raises(ValueError, match=r"more than seasonality=3 values.*got 3"):
        mase([1.0], [1.0], y_train=[1.0, 2.0, 3.0], seasonality=3)
    with pytest.raises(ValueError, match="is zero"):
        mase([1.0], [2.0], y_train=[5.0, 5.0, 5.0])
    with pytest.raises(ValueError, match=r"y_train must be 1-D.*\(2, 2\)"):
        mase([1.0], [2.0], y_train=[[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"y_train contains 1 non-finite.*position 1"):
        mase([1.0], [2.0], y_train=[1.0, np.nan, 3.0])
    with pytest.raises(TypeError, match="seasonality must be an int"):
        mase([1.0], [2.0], y_train=[1.0, 2.0, 3.0], seasonality=1.0)
    with pytest.raises(ValueError, match="seasonality must be >= 1"):
        mase([1.0], [2.0], y_train=[1.0, 2.0, 3.0], seasonality=0)


@pytest.mark.parametrize("metric", [mae, rmse, mape, smape])
def test_input_errors(metric):
    with pytest.raises(ValueError, match=r"same shape; got \(3,\) and \(2,\)"):
        metric([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        metric([], [])
    with pytest.raises(ValueError, match=r"y_pred contains 1 non-finite value\(s\); the first is nan at position 2"):
        metric([1.0, 2.0, 3.0], [1.0, 2.0, np.nan])
    with pytest.raises(ValueError, match=r"y_true contains .* inf at position \(0, 1\)"):
        metric([[1.0, np.inf]], [[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"1-D \(n,\) or 2-D \(n, horizon\); got shape \(1, 1, 1\)"):
        metric(np.ones((1, 1, 1)), np.ones((1, 1, 1)))
    with pytest.raises(ValueError, match="multioutput must be one of"):
        metric([1.0], [1.0], multioutput="variance_weighted")
    with pytest.raises(TypeError, match="y_true must be numeric"):
        metric(["a"], [1.0])


def test_accepts_pandas():
    s = pd.Series(Y_TRUE)
    assert mae(s, pd.Series(Y_PRED)) == pytest.approx(4 / 3)
