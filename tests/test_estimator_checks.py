"""scikit-learn's own estimator checks, for each cell with its default parameters."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from tsrnn import RNNRegressor

CELLS = ("lstm", "gru", "rnn")

# Every check must pass with the default parameters; none is expected to fail.
EXPECTED_FAILED_CHECKS: dict = {}


@parametrize_with_checks(
    [RNNRegressor(cell=cell, random_state=0) for cell in CELLS],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
