"""scikit-learn's own estimator checks, for each cell with its default parameters and
with a small model (``hidden_size=4``, where float32 rounding once made predictions
depend on the batch for every cell)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from tsrnn import RNNRegressor

CELLS = ("lstm", "gru", "rnn")

# Every check must pass with these parameters; none is expected to fail.
EXPECTED_FAILED_CHECKS: dict = {}


@parametrize_with_checks(
    [RNNRegressor(cell=cell, random_state=0) for cell in CELLS]
    + [RNNRegressor(cell=cell, hidden_size=4, max_iter=5, random_state=0) for cell in CELLS],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
