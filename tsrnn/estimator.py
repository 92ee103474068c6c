"""RNNRegressor: a recurrent network with scikit-learn's regressor API.

This module is the scikit-learn surface only: parameters, input validation, ``fit``,
``partial_fit``, ``predict``, ``score``, state dicts and ``save``/``load``. The epoch
loop lives in :mod:`tsrnn.training`, the file format in :mod:`tsrnn.persistence`.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from tsrnn import _warmup, network, persistence, training
from tsrnn._kernels.optim import Optimizer
from tsrnn._validation import (
    Boolean,
    InstanceOf,
    Interval,
    NoneValue,
    Options,
    validate_params,
)
from tsrnn.training import KERNEL_LOCK, TrainingDivergedError
from tsrnn.training import effective_threads as _effective_threads

__all__ = ["RNNRegressor", "TrainingDivergedError"]

#: Identifies files written by :meth:`RNNRegressor.save`.
FILE_FORMAT = persistence.REGRESSOR_FORMAT
FILE_FORMAT_VERSION = persistence.FORMAT_VERSION


#: Constructor parameters that shape the network; recorded at fit (``_architecture``).
ARCHITECTURE = ("cell", "hidden_size", "num_layers", "nonlinearity", "dtype")

#: predict works through X in blocks of rows, a multiple of this: network.predict's
#: batch (1024 rows), so that the kernel meets exactly the batches of a whole-array
#: call and every row's bits are those of predicting X at once.
PREDICT_ALIGN = 1024
#: About this many bytes of float64 per block (validated, scaled, predicted together).
PREDICT_BLOCK_BYTES = 16 * 2 ** 20
#: Inputs with at most this many values may take predict's fast path.
FAST_PATH_MAX_VALUES = 2 ** 16
#: Fewer rows than this make one chunk of the inference kernel whatever the thread
#: count (each chunk has at least network.MIN_INFER_CHUNK_ROWS rows), so predict runs
#: them on one thread: waking a second one costs 0.1-10 ms on a busy machine.
SINGLE_CHUNK_ROWS = 2 * network.MIN_INFER_CHUNK_ROWS


def _predict_blocks(n: int, values_per_row: int):
    """(start, stop) of predict's blocks: PREDICT_ALIGN-multiples of rows, the last
    one taking a remainder shorter than PREDICT_ALIGN."""
    rows = PREDICT_BLOCK_BYTES // (8 * max(1, values_per_row))
    rows = max(PREDICT_ALIGN, rows // PREDICT_ALIGN * PREDICT_ALIGN)
    starts = list(range(0, n, rows)) or [0]
    if len(starts) > 1 and n - starts[-1] < PREDICT_ALIGN:
        starts.pop()
    return [(a, b) for a, b in zip(starts, starts[1:] + [n])]


def _scaling_advice(standardize: bool, first_pass: bool, dtype) -> str:
    if not standardize:
        return (" Set standardize=True, use dtype='float64', or rescale it."
                if dtype == np.float32 else " Set standardize=True or rescale it.")
    if first_pass:
        return " Rescale it."
    return (" The model scales with the statistics of its first fit; these values lie "
            "far outside them: rescale, or refit with warm_start=False.")


class _FittedPredictor:
    """What predict needs from a fit, derived once per fit instead of per call: the
    layout, the weights, the scaling, the kernel's cell code and the fitted input
    shape. Lives in :data:`_RUNTIMES`, never on the estimator (pickle, clone)."""

    __slots__ = (
        "advice",
        "architecture",
        "cell_id",
        "dtype",
        "layout",
        "n_features",
        "n_input_features",
        "n_outputs",
        "names",
        "ndim",
        "params",
        "scaling",
        "state",
        "x_mean",
        "x_scale",
        "y_mean",
        "y_scale",
    )

    def __init__(self, est: "RNNRegressor"):
        d = est.__dict__
        self.state = d["_fit_state"]
        self.params = self.state.params
        self.x_mean, self.x_scale = d["_x_mean"], d["_x_scale"]
        self.y_mean, self.y_scale = d["_y_mean"], d["_y_scale"]
        self.architecture = d.get("_architecture")
        self.n_outputs = d["n_outputs_"]
        self.ndim = d.get("_input_ndim")
        self.n_input_features = d["_n_input_features"]
        # the fast path checks committed attributes only (n_features_in_ is rewritten
        # at the start of a fit in another thread)
        self.n_features = (self.n_input_features if self.ndim == 3
                           else d.get("n_timesteps_in_"))
        self.names = d.get("feature_names_in_")
        self.layout = est._layout()
        arch = est._fitted_architecture()
        self.cell_id = network.cell_code(arch["cell"], arch["nonlinearity"])
        self.dtype = self.params.dtype
        self.scaling = training.Standardization(self.x_mean, self.x_scale, self.y_mean,
                                                self.y_scale)
        self.advice = (" The model was fitted on data with per-feature means "
                       f"{np.array2string(self.x_mean, precision=3, threshold=6)} and "
                       "standard deviations "
                       f"{np.array2string(self.x_scale, precision=3, threshold=6)}: rescale X.")

    def is_current(self, est: "RNNRegressor") -> bool:
        d = est.__dict__
        state = d.get("_fit_state")
        return (state is self.state and state.params is self.params
                and d.get("_x_mean") is self.x_mean and d.get("_x_scale") is self.x_scale
                and d.get("_y_mean") is self.y_mean and d.get("_y_scale") is self.y_scale
                and d.get("_architecture") is self.architecture
                and d.get("n_outputs_") == self.n_outputs
                and d.get("_input_ndim") == self.ndim
                and d.get("_n_input_features") == self.n_input_features
                and d.get("feature_names_in_") is self.names)

    def fast_input(self, X):
        """``X`` as (n, T, F) when it is a small, native-float, C-contiguous ndarray of
        the fitted shape with finite values (what the full validation would accept
        unchanged); None otherwise, and the full validation decides (and words any
        error)."""
        if (type(X) is not np.ndarray or self.names is not None or X.ndim != self.ndim
                or X.dtype.char not in "fd" or not X.dtype.isnative
                or not X.flags.c_contiguous or X.size > FAST_PATH_MAX_VALUES
                or X.shape[0] < 1):
            return None
        if X.ndim == 2:
            if X.shape[1] != self.n_features:
                return None
            X = X[:, :, None]
        elif X.shape[1] < 1 or X.shape[2] != self.n_features:
            return None
        if not np.isfinite(X).all():
            return None
        return X


class _Runtime:
    """Per-estimator locks and predict cache (see :func:`_runtime`)."""

    __slots__ = ("__weakref__", "commit_lock", "fit_lock", "predictor")

    def __init__(self):
        self.fit_lock = threading.RLock()  # one fit/partial_fit at a time
        self.commit_lock = threading.Lock()  # fitted attributes change all at once
        self.predictor = None


#: Runtime objects by estimator, outside the estimators so that pickling, clone and
#: deepcopy never see a lock (a copy gets its own).
_RUNTIMES: "weakref.WeakKeyDictionary[RNNRegressor, _Runtime]" = weakref.WeakKeyDictionary()
_RUNTIMES_LOCK = threading.Lock()


def _runtime(est) -> _Runtime:
    try:
        return _RUNTIMES[est]
    except KeyError:
        with _RUNTIMES_LOCK:
            return _RUNTIMES.setdefault(est, _Runtime())



def _native(value):
    """A NumPy scalar hyperparameter as the Python number it holds: under NumPy 2's
    promotion rules ``np.float32(lr) * x`` stays float32, so a float32 learning rate
    would train differently from the same value written as a Python float (and from
    the model after a save/load round trip)."""
    return value.item() if isinstance(value, np.generic) else value


class RNNRegressor(RegressorMixin, BaseEstimator):
    """Recurrent neural network regressor (vanilla RNN, LSTM or GRU) on sequences.

    A stack of recurrent layers reads each input sequence; a linear head on the
    last time step of the top layer gives the outputs. The recurrent layers have
    PyTorch's equations, parameter names and shapes (:meth:`state_dict`), and run
    on JIT-compiled Numba kernels.

    Parameters
    ----------
    cell : {'rnn', 'lstm', 'gru'}, default='lstm'
        Recurrent cell.
    hidden_size : int, default=32
        Hidden units per layer.
    num_layers : int, default=1
        Stacked recurrent layers.
    nonlinearity : {'tanh', 'relu'}, default='tanh'
        Activation of ``cell='rnn'`` (ignored otherwise).
    loss : {'squared_error', 'absolute_error', 'huber'}, default='squared_error'
        Training loss on the (standardised) targets. 'squared_error' is half the
        mean squared error, as in :class:`~sklearn.neural_network.MLPRegressor`;
        'huber' uses delta 1.
    solver : {'adam', 'sgd', 'rmsprop'}, default='adam'
        Optimiser.
    alpha : float, default=0.0001
        L2 penalty on the weights (not biases), scaled as MLPRegressor's.
    batch_size : int or 'auto', default='auto'
        Minibatch size; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'adaptive'}, default='constant'
        'adaptive' divides the learning rate by 5 each time the training loss (or
        the validation score with ``early_stopping``) stops improving by ``tol`` for
        ``n_iter_no_change`` epochs, and stops when it falls below 1e-6.
    learning_rate_init : float, default=0.001
        Initial step size.
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Shuffle the samples each epoch (the time order inside each sequence is
        always kept).
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout. Two fits with the same integer
        give bit-identical models.
    tol : float, default=1e-4
        Improvement threshold of the stopping rule.
    verbose : bool or int, default=False
        Print one line per epoch (epoch, training loss, validation loss, seconds),
        and, on the CPU, a progress bar on epochs that take longer than a few seconds.
    warm_start : bool, default=False
        Continue from the previous fit's weights.
    momentum : float, default=0.9
        Momentum of 'sgd'.
    nesterovs_momentum : bool, default=True
        Nesterov momentum for 'sgd'.
    early_stopping : bool, default=False
        Hold out the last ``validation_fraction`` of the samples (time order, not
        random) and stop when their R² stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
        Fraction held out for ``early_stopping``.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates. ``beta_2`` is also RMSprop's decay.
    epsilon : float, default=1e-8
        Numerical stability term of Adam and RMSprop.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    clip_norm : float or None, default=5.0
        Clip the global gradient norm to this value (the remedy for exploding
        gradients); None disables clipping.
    dropout : float, default=0.0
        Dropout probability between stacked layers and before the head (training
        only).
    bptt_steps : int or None, default=None
        Truncated backpropagation through time: gradients flow back through the
        last ``bptt_steps`` time steps only, and the memory for BPTT grows with it
        rather than with the sequence length. None is full BPTT.
    dtype : {'float32', 'float64'}, default='float32'
        Precision of weights and computation.
    device : {'cpu', 'cuda', 'auto'}, default='cpu'
        Where to train. 'cuda' trains on an NVIDIA GPU through
        :class:`tsrnn.cuda_backend.CudaTrainer` (weights, optimiser state and data
        stay on the device for the whole fit) and raises ``RuntimeError`` when no
        usable GPU is found; dropout is not implemented there. 'auto' uses the GPU
        when :func:`tsrnn.cuda_backend.cuda_available` says so and ``dropout=0``,
        the CPU otherwise. Results match the CPU's to rounding, not bit for bit.
        Prediction follows ``device_`` (see :meth:`predict`).
    standardize : bool, default=True
        Scale inputs per feature and targets per output to zero mean and unit
        variance inside ``fit`` and undo it in ``predict``.
    n_jobs : int or None, default=None
        Numba threads. None uses all cores, or the share a joblib worker was
        given; negative values count back from all cores.

    Attributes
    ----------
    loss_ : float
        Training loss of the last epoch.
    best_loss_ : float or None
        Lowest training loss (None with ``early_stopping``).
    loss_curve_ : list of float
        Training loss of every epoch.
    validation_scores_ : list of float or None
        R² on the held-out tail per epoch (``early_stopping`` only).
    best_validation_score_ : float or None
        Best of ``validation_scores_``.
    history_ : list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``valid_loss``, ``seconds``.
    n_iter_ : int
        Epochs run.
    t_ : int
        Samples seen during training.
    n_features_in_ : int
        Features seen in ``fit``: the feature axis of 3-D ``X``; for 2-D ``X``
        (one univariate sequence per row) the number of columns, as for every
        scikit-learn estimator.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame ``X``.
    n_timesteps_in_ : int
        Sequence length seen in ``fit``.
    n_outputs_ : int
        Outputs (e.g. forecast horizon).
    coefs_ : dict
        Parameters by PyTorch name (same arrays as :meth:`state_dict`).
    device_ : {'cpu', 'cuda'}
        Device the last ``fit``/``partial_fit`` trained on ('auto' resolved). The
        fitted weights are NumPy arrays wherever they were trained.

    See Also
    --------
    sklearn.neural_network.MLPRegressor : the feed-forward counterpart.
    tsrnn.RNNForecaster : pandas in, pandas out forecasting around this model.

    Notes
    -----
    ``X`` is ``(n_samples, n_timesteps, n_features)``, or ``(n_samples,
    n_timesteps)`` read as one univariate sequence per row. ``y`` is
    ``(n_samples,)`` or ``(n_samples, n_outputs)``. With 3-D input the sequence
    length may differ between ``fit`` and ``predict``; with 2-D input the column
    count must match, as scikit-learn requires.

    ``set_params`` on a fitted model affects the next fit only: ``predict`` uses the
    architecture (``cell``, ``hidden_size``, ``num_layers``, ``nonlinearity``,
    ``dtype``) the model was fitted with, and continuing it with another one
    (``partial_fit``, ``warm_start=True``) is a ``ValueError``. Calls of ``fit`` and
    ``partial_fit`` on one estimator from several threads run one after another.
    Parameters whose training buffers cannot fit in memory are refused before any
    allocation (:class:`tsrnn.training.InsufficientMemoryError`, a ``MemoryError``
    and a ``ValueError``).

    References
    ----------
    Hochreiter and Schmidhuber, "Long short-term memory", Neural Computation, 1997.
    Cho et al., "Learning phrase representations using RNN encoder-decoder for
    statistical machine translation", EMNLP 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from tsrnn import RNNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 10, 2))
    >>> y = X[:, -1, 0] + 0.5 * X[:, -2, 1]
    >>> model = RNNRegressor(hidden_size=8, max_iter=5, random_state=0).fit(X, y)
    >>> model.predict(X[:3]).shape
    (3,)
    """

    _constraints = {
        "cell": [Options("rnn", "lstm", "gru")],
        "hidden_size": [Interval(int, 1, None)],
        "num_layers": [Interval(int, 1, None)],
        "nonlinearity": [Options("tanh", "relu")],
        "loss": [Options(*network.LOSSES)],
        "solver": [Options("adam", "sgd", "rmsprop")],
        "alpha": [Interval(float, 0.0, None)],
        "batch_size": [Interval(int, 1, None), Options("auto")],
        "learning_rate": [Options("constant", "adaptive")],
        "learning_rate_init": [Interval(float, 0.0, None, closed="neither")],
        "max_iter": [Interval(int, 1, None)],
        "shuffle": [Boolean()],
        "random_state": [Interval(int, 0, 2**32 - 1), InstanceOf(np.random.RandomState),
                         NoneValue()],
        "tol": [Interval(float, 0.0, None)],
        "verbose": [Interval(int, 0, None), Boolean()],
        "warm_start": [Boolean()],
        "momentum": [Interval(float, 0.0, 1.0)],
        "nesterovs_momentum": [Boolean()],
        "early_stopping": [Boolean()],
        "validation_fraction": [Interval(float, 0.0, 1.0, closed="neither")],
        "beta_1": [Interval(float, 0.0, 1.0, closed="left")],
        "beta_2": [Interval(float, 0.0, 1.0, closed="left")],
        "epsilon": [Interval(float, 0.0, None, closed="neither")],
        "n_iter_no_change": [Interval(int, 1, None)],
        "clip_norm": [Interval(float, 0.0, None, closed="neither"), NoneValue()],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
        "bptt_steps": [Interval(int, 1, None), NoneValue()],
        "dtype": [Options("float32", "float64")],
        "device": [Options("cpu", "cuda", "auto")],
        "standardize": [Boolean()],
        "n_jobs": [Interval(int, None, None), NoneValue()],
    }

    def __init__(
        self,
        *,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        loss: str = "squared_error",
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state=None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        clip_norm: float | None = 5.0,
        dropout: float = 0.0,
        bptt_steps: int | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        standardize: bool = True,
        n_jobs: int | None = None,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.clip_norm = clip_norm
        self.dropout = dropout
        self.bptt_steps = bptt_steps
        self.dtype = dtype
        self.device = device
        self.standardize = standardize
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ tags

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.regressor_tags.poor_score = True
        tags.target_tags.multi_output = True
        return tags

    # ------------------------------------------------------------ validation

    def _validate_input(self, X, y=None, *, reset: bool, keep_integers: bool = False):
        """Validated ``X`` as (n, T, F) float array (and ``y`` as (n, O)).

        Records ``n_features_in_``/``feature_names_in_``/``n_timesteps_in_`` on
        reset; otherwise checks the feature axis against them. ``keep_integers``
        leaves an integer or boolean ndarray as it is instead of copying it to float64
        (predict converts it block by block, to the same values).
        """
        dtype = (np.float64, np.float32)
        if keep_integers and isinstance(X, np.ndarray) and X.dtype.kind in "iub":
            dtype = None
        ndim = getattr(X, "ndim", None)
        if ndim is None and not hasattr(X, "__array__"):
            try:
                ndim = np.asarray(X, dtype=object).ndim
            except ValueError:  # ragged nested lists
                ndim = None
        if ndim is not None and ndim not in (2, 3):
            shape = getattr(X, "shape", None)
            if shape is None:
                shape = np.asarray(X, dtype=object).shape
            hint = (" Reshape your data with X.reshape(1, -1) if it is a single "
                    "univariate sequence." if len(shape) == 1 else "")
            raise ValueError(
                "X must be 2-D (n_samples, n_timesteps) or 3-D (n_samples, n_timesteps, "
                f"n_features); got shape {tuple(shape)}.{hint}"
            )
        fitted_ndim = getattr(self, "_input_ndim", None)
        if not reset and fitted_ndim is not None and ndim is not None and ndim != fitted_ndim:
            shape = tuple(getattr(X, "shape", np.asarray(X, dtype=object).shape))
            if fitted_ndim == 2:
                raise ValueError(
                    f"X is 3-D but the model was fitted on 2-D X (n_samples, n_timesteps); "
                    f"got shape {shape}."
                )
            raise ValueError(
                f"X is 2-D but the model was fitted on 3-D X (n_samples, n_timesteps, "
                f"n_features); got shape {shape}. Reshape to (n_samples, n_timesteps, 1) "
                "for a univariate series."
            )
        if ndim == 3:
            if y is None:
                X = check_array(X, allow_nd=True, dtype=dtype, ensure_min_features=1,
                                input_name="X")
            else:
                X = check_array(X, allow_nd=True, dtype=dtype, input_name="X")
                y = check_array(y, ensure_2d=False, dtype=dtype, input_name="y")
                if y.shape[0] != X.shape[0]:
                    raise ValueError(
                        f"X and y have different numbers of samples: X has {X.shape[0]}, "
                        f"y has {y.shape[0]}."
                    )
            if X.shape[1] < 1 or X.shape[2] < 1:
                raise ValueError(
                    f"X needs at least 1 time step and 1 feature; got shape {X.shape}."
                )
            n_features = X.shape[2]
            if reset:
                self.n_features_in_ = n_features
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            elif n_features != self.n_features_in_:
                raise ValueError(
                    f"X has {n_features} features (axis 2), but RNNRegressor is expecting "
                    f"{self.n_features_in_} features as input."
                )
            ndim = 3
        else:
            if y is None:
                X = validate_data(self, X, reset=reset, dtype=dtype)
            else:
                X, y = validate_data(self, X, y, reset=reset, dtype=dtype, y_numeric=True,
                                     multi_output=True)
            X = X[:, :, None]
            ndim = 2
        if y is not None:
            if y.ndim == 2 and y.shape[1] == 0:
                raise ValueError(f"y has no outputs: shape {y.shape}.")
            if y.ndim > 2:
                raise ValueError(
                    f"y must be 1-D (n_samples,) or 2-D (n_samples, n_outputs); got shape "
                    f"{y.shape}."
                )
            if not np.all(np.isfinite(y)):
                raise ValueError("Input y contains NaN or infinity.")
            y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, y, ndim

    def _check_params(self):
        validate_params(type(self).__name__, self.get_params(deep=False), self._constraints)

    # ------------------------------------------------------------------- fit

    def fit(self, X, y) -> "RNNRegressor":
        """Fit the model to sequences ``X`` and targets ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or (n_samples, n_timesteps)
            Input sequences, oldest step first.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : RNNRegressor
            Fitted estimator.
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y) -> "RNNRegressor":
        """One pass over ``X`` in minibatches, keeping the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or (n_samples, n_timesteps)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : RNNRegressor
        """
        return self._fit(X, y, incremental=True)

    def _resolve_device(self) -> str:
        """'cpu' or 'cuda' for this fit; raises before anything is touched.

        A configuration the GPU cannot run is a ``ValueError`` whatever the machine;
        a missing GPU is a ``RuntimeError`` naming the cause.
        """
        if self.device == "cpu":
            return "cpu"
        if self.dropout > 0:
            if self.device == "auto":
                return "cpu"  # dropout exists on the CPU only
            raise ValueError(
                f"dropout={self.dropout} is not implemented for device='cuda'; set "
                "dropout=0, or use device='cpu' or device='auto' (which trains on the CPU "
                "when dropout > 0)."
            )
        from tsrnn import cuda_backend

        ok, reason = cuda_backend.cuda_available()
        if ok:
            return "cuda"
        if self.device == "auto":
            return "cpu"
        raise RuntimeError(f"device='cuda' was requested but no usable GPU was found: {reason}")


    def _fit(self, X, y, incremental: bool):
        # One fit at a time per estimator: partial_fit calls from two threads both
        # count instead of one silently overwriting the other's result.
        runtime = _runtime(self)
        with runtime.fit_lock, _warmup.compile_guard("fit"):
            return self._fit_serialised(X, y, incremental, runtime)

    def _fit_serialised(self, X, y, incremental, runtime):
        self._check_params()
        if y is None:
            raise ValueError(
                "RNNRegressor requires y to be passed, but the target y is None."
            )
        fitted = hasattr(self, "_fit_state")
        first_pass = not fitted or (not self.warm_start and not incremental)
        if not first_pass:
            self._check_same_architecture(incremental)
        device = self._resolve_device()

        # Validation records input attributes; put them back if anything fails, so
        # that a failing fit leaves the fitted model exactly as it was.
        saved_inputs = {k: getattr(self, k) for k in ("n_features_in_", "feature_names_in_")
                        if hasattr(self, k)}
        try:
            X, y, input_ndim = self._validate_input(X, y, reset=first_pass)
            if not first_pass and y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"y has {y.shape[1]} outputs but the model was fitted with "
                    f"{self.n_outputs_}; refit with warm_start=False to change it."
                )
            fitted_attributes = self._train(X, y, first_pass=first_pass,
                                            incremental=incremental, device=device)
        except BaseException:
            self._restore_inputs(saved_inputs)
            raise
        fitted_attributes["_input_ndim"] = input_ndim
        # all at once for predict in other threads; a Ctrl-C takes effect after it
        with runtime.commit_lock, _warmup.sigint_deferred():
            for name, value in fitted_attributes.items():
                setattr(self, name, value)
        return self

    def _restore_inputs(self, saved_inputs):
        for k in ("n_features_in_", "feature_names_in_"):
            if k in saved_inputs:
                setattr(self, k, saved_inputs[k])
            elif hasattr(self, k):
                delattr(self, k)

    # ---------------------------------------------------------- architecture

    def _current_architecture(self) -> dict:
        """The parameters that shape the network, as set now."""
        return {"cell": self.cell, "hidden_size": int(self.hidden_size),
                "num_layers": int(self.num_layers), "nonlinearity": self.nonlinearity,
                "dtype": str(self.dtype)}

    def _fitted_architecture(self) -> dict:
        """The architecture the weights were trained with, recorded at fit (and by
        :meth:`load_state_dict`); models pickled before it was recorded use the
        current parameters."""
        return self.__dict__.get("_architecture") or self._current_architecture()

    def _check_same_architecture(self, incremental: bool) -> None:
        """Continuing a fit needs the architecture its weights belong to."""
        fitted, now = self._fitted_architecture(), self._current_architecture()
        keys = [k for k in ARCHITECTURE if k != "nonlinearity" or "rnn" in (fitted["cell"],
                                                                              now["cell"])]
        changed = [f"{k} from {fitted[k]!r} to {now[k]!r}" for k in keys
                   if fitted[k] != now[k]]
        if not changed:
            return
        how = "partial_fit" if incremental else "fit with warm_start=True"
        raise ValueError(
            f"{how} continues the fitted model, but its architecture changed since it "
            f"was fitted ({', '.join(changed)}) and its weights do not carry over. Refit "
            "with warm_start=False (fit, not partial_fit) to train the new architecture, "
            "or set the parameters back."
        )

    # ------------------------------------------------------------- training

    def _train(self, X, y, *, first_pass, incremental, device) -> dict:
        """Train through :mod:`tsrnn.training`; returns every attribute to set,
        touching nothing on ``self``."""
        dtype = np.dtype(self.dtype)
        n_val = training.validation_size(X.shape[0], self.early_stopping,
                                         self.validation_fraction, incremental)
        n_train = X.shape[0] - n_val
        batch_size = training.resolve_batch_size(self.batch_size, n_train)
        if first_pass:
            layout = network.ParameterLayout(self.cell, X.shape[2], self.hidden_size,
                                             self.num_layers, y.shape[1])
        else:
            layout = self._layout()
            if layout.input_size != X.shape[2]:
                raise ValueError(
                    f"X has {X.shape[2]} features, but RNNRegressor is expecting "
                    f"{layout.input_size} features as input."
                )
        # before anything of the size of the model is allocated
        training.check_fit_memory(layout, n_train, X.shape[1], batch_size, self.bptt_steps,
                                  dtype, type(self).__name__)
        if first_pass:
            scaling = training.Standardization.fit(X[:n_train], y[:n_train], self.standardize)
            state = training.start_fresh(layout, self.random_state, dtype,
                                         self._new_optimizer, self.early_stopping)
        else:
            scaling = self._scaling()
            state = training.resume(self._fit_state, dtype, self._new_optimizer,
                                    self.early_stopping)
        advice = _scaling_advice(self.standardize, first_pass, dtype)
        Xs = scaling.transform_X(X, dtype, advice)
        ys = scaling.transform_y(y, dtype, advice)
        y_val = ys[n_train:]
        settings = training.LoopSettings(
            max_epochs=1 if incremental else self.max_iter,
            batch_size=batch_size,
            shuffle=self.shuffle, tol=_native(self.tol), n_iter_no_change=self.n_iter_no_change,
            adaptive=self.learning_rate == "adaptive", incremental=incremental,
            max_iter=self.max_iter, verbose=self.verbose,
            n_threads=_effective_threads(self.n_jobs),
            divergence_advice=(
                f"Try a lower learning_rate_init (now {self.learning_rate_init}) or set "
                f"clip_norm (now {self.clip_norm}), and check that X and y are on a "
                "reasonable scale (standardize=True)."),
            validate=(lambda pred: (network.loss_value_and_grad(self.loss, pred, y_val)[0],
                                    _r2(y_val, pred))) if n_val else None,
        )
        y_train = ys[:n_train]
        null_loss = network.loss_value_and_grad(
            self.loss, np.broadcast_to(y_train.mean(axis=0, dtype=np.float64), y_train.shape),
            y_train)[0]
        runner = training.make_runner(
            device, layout, state, network.cell_code(self.cell, self.nonlinearity),
            Xs[:n_train], y_train, Xs[n_train:] if n_val else None, loss=self.loss,
            alpha=_native(self.alpha), clip_norm=_native(self.clip_norm), bptt_steps=self.bptt_steps,
            dropout=self.dropout, null_loss=null_loss,
        )
        state = training.fit_loop(state, runner, settings, n_train,
                                  have_good_start=not first_pass)
        # a model from load_state_dict has no sequence length yet: its first fit sets it
        keep_timesteps = (not first_pass
                          and getattr(self, "n_timesteps_in_", None) is not None)
        return {
            "_fit_state": state,
            "_x_mean": scaling.x_mean,
            "_x_scale": scaling.x_scale,
            "_y_mean": scaling.y_mean,
            "_y_scale": scaling.y_scale,
            "_n_input_features": X.shape[2],
            "device_": device,
            "n_outputs_": y.shape[1],
            "n_timesteps_in_": self.n_timesteps_in_ if keep_timesteps else X.shape[1],
            **self._public_history(state),
        }

    def _public_history(self, state: training.FitState) -> dict:
        """The fitted attributes that describe training, from the fit's state, and the
        architecture trained (the current parameters: a resumed fit checked that they
        did not change). :meth:`load_state_dict` sets these on a model it creates."""
        curve = state.loss_curve
        return {
            "loss_curve_": curve,
            "loss_": curve[-1] if curve else float("nan"),
            "best_loss_": None if self.early_stopping else state.best_loss,
            "validation_scores_": state.validation_scores if self.early_stopping else None,
            "best_validation_score_": (state.best_validation_score if self.early_stopping
                                       else None),
            "history_": state.history,
            "n_iter_": len(curve),
            "t_": state.samples_seen,
            "_architecture": self._current_architecture(),
        }

    # --------------------------------------------------------------- helpers

    def _new_optimizer(self, size, dtype):
        return Optimizer(self.solver, size, dtype,
                         learning_rate=_native(self.learning_rate_init),
                         momentum=_native(self.momentum), nesterov=self.nesterovs_momentum,
                         beta_1=_native(self.beta_1), beta_2=_native(self.beta_2),
                         epsilon=_native(self.epsilon),
                         rho=_native(self.beta_2) if self.solver == "rmsprop" else 0.99)

    def _layout(self) -> network.ParameterLayout:
        """The fitted network's layout (architecture recorded at fit)."""
        arch = self._fitted_architecture()
        return network.ParameterLayout(arch["cell"], self._n_input_features,
                                       arch["hidden_size"], arch["num_layers"],
                                       self.n_outputs_)

    def _scaling(self) -> training.Standardization:
        return training.Standardization(self._x_mean, self._x_scale, self._y_mean,
                                        self._y_scale)

    @property
    def _params(self) -> np.ndarray:
        """The flat weights (of the fit state); AttributeError when not fitted."""
        return self._fit_state.params

    @property
    def _learning_rate(self) -> float:
        return self._fit_state.learning_rate

    @property
    def _optimizer_state(self) -> dict | None:
        """The optimiser's step count, state arrays and solver (None if none kept)."""
        optimizer = self._fit_state.optimizer
        if optimizer is None:
            return None
        return {**optimizer.get_state(), "solver": optimizer.solver}

    # --------------------------------------------------------------- predict

    def predict(self, X) -> np.ndarray:
        """Predict targets for sequences ``X``.

        A model trained on the GPU (``device_ == 'cuda'``) predicts on the GPU when one
        is usable here and ``device`` is not 'cpu'; otherwise, e.g. after loading it on
        a machine without a GPU, on the CPU from the same NumPy weights (equal to
        rounding).

        Memory beyond the result is bounded by a block of rows (a few thousand
        windows, at most about 16 MiB of float64), not by the number of samples.
        Prediction always uses the architecture the model was fitted with, whatever
        ``set_params`` changed since.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or (n_samples, n_timesteps)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            float64 predictions in the units of ``y``.
        """
        if "_fit_state" not in self.__dict__:
            check_is_fitted(self, "_fit_state")  # raises NotFittedError
        runtime = _runtime(self)
        with runtime.commit_lock:  # a consistent view of the fitted attributes
            fitted = runtime.predictor
            if fitted is None or not fitted.is_current(self):
                fitted = runtime.predictor = _FittedPredictor(self)
        with _warmup.compile_guard("predict"):
            X3 = fitted.fast_input(X)
            if X3 is not None:  # a small float ndarray of the fitted shape, validated
                pred = self._predict_rows(fitted, X3)
            else:
                X3, _, _ = self._validate_input(X, reset=False, keep_integers=True)
                pred = np.empty((X3.shape[0], fitted.n_outputs))
                for start, stop in _predict_blocks(X3.shape[0], X3.shape[1] * X3.shape[2]):
                    pred[start:stop] = self._predict_rows(fitted, X3[start:stop])
        return pred.ravel() if fitted.n_outputs == 1 else pred

    def _predict_rows(self, fitted: "_FittedPredictor", X3: np.ndarray) -> np.ndarray:
        """Scale a block of validated (n, T, F) rows, run the network, scale back."""
        Xs = fitted.scaling.transform_X(X3, fitted.dtype, fitted.advice)
        if self._predicts_on_gpu():
            from tsrnn import cuda_backend

            out = cuda_backend.predict(fitted.layout, fitted.params, Xs,
                                       cell_id=fitted.cell_id)
        else:
            n_threads = _effective_threads(self.n_jobs)
            if Xs.shape[0] < SINGLE_CHUNK_ROWS:
                n_threads = 1  # one chunk whatever the threads: wake none
            with training.numba_threads(n_threads), KERNEL_LOCK:
                out = network.predict(fitted.layout, fitted.params, Xs,
                                      cell_id=fitted.cell_id)
        return fitted.scaling.inverse_y(out)

    def _predicts_on_gpu(self) -> bool:
        # models fitted before device_ existed trained on the CPU
        if self.__dict__.get("device_", "cpu") != "cuda" or self.device == "cpu":
            return False
        from tsrnn import cuda_backend

        return cuda_backend.cuda_available()[0]

    # ------------------------------------------------------------ parameters

    @property
    def coefs_(self) -> dict:
        """Parameters by PyTorch name (copies)."""
        return self.state_dict()

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters as ``{name: array}`` with ``torch.nn.LSTM``/``GRU``/``RNN`` names.

        Returns
        -------
        state : dict
            ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
            per layer and ``head.weight``, ``head.bias`` (copies). The weights act on
            standardised inputs and targets when ``standardize=True``.
        """
        check_is_fitted(self, "_fit_state")
        return persistence.state_dict(self._layout(), self._params)

    def load_state_dict(self, state: dict) -> "RNNRegressor":
        """Load parameters by PyTorch name (e.g. from a ``torch.nn.LSTM`` + ``Linear``).

        On a fitted model the names and shapes must match and the scalers are
        kept; the optimiser's state, which belongs to the previous weights, is
        dropped (a warm-started fit starts a new one). On an unfitted model the
        input features and outputs are read from the shapes of ``weight_ih_l0`` and
        ``head.weight``, no scaling is applied (the weights are taken to act on raw
        inputs and targets), 3-D input is expected and ``n_timesteps_in_`` is None.

        Parameters
        ----------
        state : dict of str to array-like
            Real-valued arrays; they are cast to ``dtype``.

        Returns
        -------
        self : RNNRegressor

        Raises
        ------
        ValueError
            If names, shapes or dtypes do not match, if a value is NaN or infinite
            after the cast to ``dtype`` (float64 weights beyond float32's range), or
            if a row of weights is so large that the layer's outputs would overflow.
            The model is left as it was.
        """
        self._check_params()
        state = {k: np.asarray(v) for k, v in dict(state).items()}
        fitted = hasattr(self, "_fit_state")
        if fitted:
            layout = self._layout()
        else:
            for name in ("weight_ih_l0", "head.weight"):
                if name not in state or state[name].ndim != 2:
                    raise ValueError(f"state dict lacks a 2-D {name!r} entry.")
            layout = network.ParameterLayout(self.cell, state["weight_ih_l0"].shape[1],
                                             self.hidden_size, self.num_layers,
                                             state["head.weight"].shape[0])
        flat = persistence.flat_from_state_dict(
            layout, state, self.dtype,
            f"a {self.cell} with hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}")
        if fitted:
            self._fit_state.params = flat
            self._fit_state.optimizer = None
            return self
        scaling = training.Standardization.identity(layout.input_size, layout.n_outputs)
        self._x_mean, self._x_scale = scaling.x_mean, scaling.x_scale
        self._y_mean, self._y_scale = scaling.y_mean, scaling.y_scale
        self._n_input_features = layout.input_size
        self.n_features_in_ = layout.input_size
        self.n_outputs_ = layout.n_outputs
        self.n_timesteps_in_ = None
        self._input_ndim = 3
        self._fit_state = training.FitState(
            params=flat, optimizer=None, learning_rate=_native(self.learning_rate_init),
            random_state=check_random_state(self.random_state),
        )
        for name, value in self._public_history(self._fit_state).items():
            setattr(self, name, value)
        self.best_loss_, self.validation_scores_, self.best_validation_score_ = None, None, None
        self.device_ = "cpu"
        return self

    def _restore_fitted(self, *, fitted: dict, scaling, loss_curve, validation_scores,
                        history, device, feature_names) -> None:
        """Set what :func:`tsrnn.persistence.load_regressor` read and checked (after
        :meth:`load_state_dict` on this unfitted model). Nothing passed is modified."""
        fitted = dict(fitted)
        state = self._fit_state
        state.learning_rate = float(fitted.pop("_learning_rate"))
        state.loss_curve = list(loss_curve)
        state.history = [dict(record) for record in history]
        state.samples_seen = int(fitted["t_"])
        state.validation_scores = (None if validation_scores is None
                                   else list(validation_scores))
        best_score = fitted["best_validation_score_"]
        # with early stopping the state's best starts at -inf (stored as null)
        state.best_validation_score = (-float("inf") if best_score is None
                                       and validation_scores is not None else best_score)
        best_loss = fitted["best_loss_"]
        state.best_loss = float("inf") if best_loss is None else float(best_loss)
        for key, value in fitted.items():
            setattr(self, key, value)
        self._x_mean, self._x_scale, self._y_mean, self._y_scale = scaling
        self.device_ = device
        self.loss_curve_ = state.loss_curve
        self.loss_ = state.loss_curve[-1] if state.loss_curve else float("nan")
        self.validation_scores_ = state.validation_scores
        self.history_ = state.history
        if feature_names is not None:
            self.feature_names_in_ = np.asarray(feature_names, dtype=object)

    # ----------------------------------------------------------- export

    def to_onnx(self, path: str | os.PathLike | None = None, **options: Any):
        """Export the fitted model as an ONNX graph that reproduces :meth:`predict`.

        A shortcut for :func:`tsrnn.export.to_onnx` (``pip install "tsrnn[onnx]"``),
        which documents the graph and the ``options`` (``opset``, ``n_timesteps``,
        ``recurrent_dtype``).

        Parameters
        ----------
        path : str or path-like, optional
            Where to write the model (whole or not at all); None writes nothing.
        **options
            Passed to :func:`tsrnn.export.to_onnx`.

        Returns
        -------
        onnx.ModelProto
        """
        from tsrnn.export import to_onnx

        return to_onnx(self, path, **options)

    # ----------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (NumPy ``.npz`` with JSON metadata).

        The file holds arrays and JSON only: loading it never runs code, unlike
        pickle. It is written to a temporary file ``.<name>.<random>.tmp`` beside
        ``path``, synced and renamed into place, so an exception, Ctrl-C or a kill
        leaves any previous file at ``path`` intact (a kill or power loss may leave
        the temporary file, which can be deleted).

        Parameters are stored as JSON: NumPy scalars (e.g. ``hidden_size`` from a
        ``GridSearchCV`` grid of ``np.arange``) as plain numbers, restored by
        :meth:`load` as Python numbers. A ``RandomState`` instance as
        ``random_state`` cannot be stored and is saved as None.

        Parameters
        ----------
        path : str or path-like

        Raises
        ------
        ValueError
            If a parameter is invalid or a NaN or infinite float (JSON has neither),
            or the model's state would not load back; nothing is written then.
        """
        check_is_fitted(self, "_fit_state")
        persistence.save_regressor(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RNNRegressor":
        """Read a model written by :meth:`save`.

        The file is checked before anything in it is trusted: the zip directory
        (sizes bounded, no unexpected, duplicate or compressed members), every
        metadata field (types, ranges, the constructor parameters as ``fit``
        validates them) against every other, and every array's dtype and shape
        (before its data is read) against the metadata, then its values (finite
        after the cast to ``dtype``, scales positive).

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        model : RNNRegressor

        Raises
        ------
        FileNotFoundError, PermissionError, IsADirectoryError
            If ``path`` cannot be opened.
        ValueError
            If the file is not a tsrnn model file, is malformed or inconsistent in any
            way (the message names the file and the problem), or was written by a
            newer, incompatible format version.
        """
        return persistence.load_regressor(cls, path)


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R² averaged over outputs (as ``sklearn.metrics.r2_score``'s default)."""
    y_true = y_true.astype(np.float64)
    y_pred = y_pred.astype(np.float64)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res > 0, 0.0, 1.0))
    return float(scores.mean())
