"""RNNRegressor: a recurrent network with scikit-learn's regressor API."""

from __future__ import annotations

import functools
import io
import json
import math
import os
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numba
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from tsrnn import network
from tsrnn._kernels.optim import Optimizer, clip_grad_norm
from tsrnn._validation import (
    Boolean,
    InstanceOf,
    Interval,
    NoneValue,
    Options,
    validate_params,
)

__all__ = ["RNNRegressor", "TrainingDivergedError"]

#: Identifies files written by :meth:`RNNRegressor.save`.
FILE_FORMAT = "tsrnn.RNNRegressor"
FILE_FORMAT_VERSION = 1

#: Numba's default "workqueue" threading layer aborts the process when two
#: Python threads launch parallel kernels at once; fits in threads (joblib's
#: threading backend) therefore take turns at the kernels, batch by batch.
_KERNEL_LOCK = threading.Lock()

#: Seconds an epoch must run before verbose mode shows a progress bar.
PROGRESS_AFTER_SECONDS = 2.0


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite and no good weights were left."""


def _effective_threads(n_jobs: int | None) -> int:
    """Numba threads for a fit: ``n_jobs``, or all cores unless a parent limited us.

    joblib's process workers set ``OMP_NUM_THREADS`` to their share of the cores;
    Numba does not read it, so honour it here to avoid oversubscription under
    ``GridSearchCV(n_jobs=...)``.
    """
    available = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        limit = os.environ.get("OMP_NUM_THREADS", "")
        n = int(limit) if limit.isdigit() and int(limit) > 0 else available
    elif n_jobs < 0:
        n = available + 1 + n_jobs
    else:
        n = n_jobs
    return max(1, min(n, available))


# --------------------------------------------------------------------------
# epoch runners: what an epoch does on each device; RNNRegressor._train keeps
# the bookkeeping (shuffling, stopping rules, checkpoints, history) for both.
# --------------------------------------------------------------------------


class _CpuEpochs:
    """Epochs on the Numba CPU kernels; the weights are a NumPy vector updated in place.

    Kernel calls take :data:`_KERNEL_LOCK` batch by batch (see there).
    """

    def __init__(self, layout, params, cell_id, optimizer, X_train, y_train, X_val, *,
                 loss, alpha, clip_norm, bptt_steps, dropout, rng):
        self.layout, self.params, self.cell_id = layout, params, cell_id
        self.optimizer = optimizer
        self.X_train, self.y_train, self.X_val = X_train, y_train, X_val
        self.loss, self.alpha, self.clip_norm = loss, alpha, clip_norm
        self.bptt_steps, self.dropout, self.rng = bptt_steps, dropout, rng
        self._saved = {}

    def run_epoch(self, batches, progress=None):
        """One pass over ``batches`` (index arrays into the training set).

        Returns ``(mean loss, None)``, or ``(None, (batch, value))`` when batch number
        ``batch`` had a non-finite loss or gradient (it and later batches are not
        applied) or the weights were not finite at the end (the last batch, NaN).
        """
        total = 0.0
        for i, idx in enumerate(batches):
            xb, yb = self.X_train[idx], self.y_train[idx]
            with _KERNEL_LOCK:
                value, grad = network.loss_and_grad(
                    self.layout, self.params, xb, yb, loss=self.loss, alpha=self.alpha,
                    cell_id=self.cell_id, bptt_steps=self.bptt_steps,
                    dropout=self.dropout, rng=self.rng,
                )
            if self.clip_norm is not None:
                norm = clip_grad_norm(grad, float(self.clip_norm))
            else:
                norm = float(np.sqrt(np.sum(grad.astype(np.float64) ** 2)))
            if not (math.isfinite(value) and math.isfinite(norm)):
                return None, (i, value)
            self.optimizer.step(self.params, grad)
            total += value * len(idx)
            if progress is not None:
                progress(i + 1)
        if not self.params_finite():
            return None, (len(batches) - 1, float("nan"))
        return total / self.X_train.shape[0], None

    def predict_val(self) -> np.ndarray:
        with _KERNEL_LOCK:
            return network.predict(self.layout, self.params, self.X_val, cell_id=self.cell_id)

    def checkpoint(self, name: str) -> None:
        self._saved[name] = self.params.copy()

    def get_params(self, name: str | None = None) -> np.ndarray:
        """The current weights, or checkpoint ``name``."""
        return self.params if name is None else self._saved[name]

    def params_finite(self) -> bool:
        return bool(np.all(np.isfinite(self.params)))

    def finish(self) -> None:
        """Nothing to bring back: the optimiser's state lives on the host."""


class _CudaEpochs:
    """Epochs on the GPU through :class:`tsrnn.cuda_backend.CudaTrainer`.

    Data, weights, optimiser state and checkpoints stay on the device; an epoch brings
    back its batch losses and status words only, a checkpoint is a device-side copy.
    The trainer reads ``optimizer.learning_rate`` every epoch, so the adaptive schedule
    works unchanged; :meth:`finish` copies the optimiser state back once.
    """

    def __init__(self, layout, params, cell_id, optimizer, X_train, y_train, X_val, *,
                 loss, alpha, clip_norm, bptt_steps):
        from tsrnn import cuda_backend

        self.trainer = cuda_backend.CudaTrainer(
            layout, params, cell_id, X_train, y_train, optimizer, loss=loss, alpha=alpha,
            clip_norm=clip_norm, bptt_steps=bptt_steps, X_val=X_val,
        )

    def run_epoch(self, batches, progress=None):
        """As :meth:`_CpuEpochs.run_epoch`; no progress bar (one call runs the epoch)."""
        trainer = self.trainer
        loss = trainer.run_epoch(batches)
        if trainer.diverged_batch is not None:
            i = trainer.diverged_batch
            return None, (i, float(trainer.batch_losses[i]))
        if not trainer.params_finite:
            return None, (len(batches) - 1, float("nan"))
        return loss, None

    def predict_val(self) -> np.ndarray:
        return self.trainer.predict()

    def checkpoint(self, name: str) -> None:
        self.trainer.checkpoint(name)

    def get_params(self, name: str | None = None) -> np.ndarray:
        return self.trainer.get_params(name)

    def params_finite(self) -> bool:
        # a host copy: only asked after an interruption, when the epoch's flag is stale
        return bool(np.all(np.isfinite(self.trainer.get_params())))

    def finish(self) -> None:
        self.trainer.sync_optimizer()


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

    def _validate_input(self, X, y=None, *, reset: bool):
        """Validated ``X`` as (n, T, F) float array (and ``y`` as (n, O)).

        Records ``n_features_in_``/``feature_names_in_``/``n_timesteps_in_`` on
        reset; otherwise checks the feature axis against them.
        """
        dtype = (np.float64, np.float32)
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
        self._check_params()
        if y is None:
            raise ValueError(
                "RNNRegressor requires y to be passed, but the target y is None."
            )
        fitted = hasattr(self, "_params")
        first_pass = not fitted or (not self.warm_start and not incremental)
        device = self._resolve_device()
        dtype = np.dtype(self.dtype)

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
            state = self._train(X, y, first_pass=first_pass, incremental=incremental,
                                dtype=dtype, device=device)
        except BaseException:
            self._restore_inputs(saved_inputs)
            raise
        state["_input_ndim"] = input_ndim
        for name, value in state.items():
            setattr(self, name, value)
        return self

    def _restore_inputs(self, saved_inputs):
        for k in ("n_features_in_", "feature_names_in_"):
            if k in saved_inputs:
                setattr(self, k, saved_inputs[k])
            elif hasattr(self, k):
                delattr(self, k)

    def _train(self, X, y, *, first_pass, incremental, dtype, device):
        """Run the epochs; returns every attribute to set, touching nothing on ``self``."""
        n_samples = X.shape[0]
        n_outputs = y.shape[1]

        # time-ordered hold-out: the newest samples validate
        n_val = 0
        if self.early_stopping and not incremental:
            n_val = int(math.ceil(self.validation_fraction * n_samples))
            if n_val < 2 or n_samples - n_val < 1:
                raise ValueError(
                    f"early_stopping needs at least 2 validation samples and 1 training "
                    f"sample; validation_fraction={self.validation_fraction} of "
                    f"{n_samples} samples gives {n_val} for validation. Increase "
                    "'validation_fraction' or the size of your dataset."
                )
        n_train = n_samples - n_val

        if first_pass:
            random_state = check_random_state(self.random_state)
            if self.standardize:
                x_mean = X[:n_train].mean(axis=(0, 1))
                x_scale = X[:n_train].std(axis=(0, 1))
                y_mean = y[:n_train].mean(axis=0)
                y_scale = y[:n_train].std(axis=0)
                x_scale[x_scale == 0] = 1.0
                y_scale[y_scale == 0] = 1.0
            else:
                x_mean = np.zeros(X.shape[2])
                x_scale = np.ones(X.shape[2])
                y_mean = np.zeros(n_outputs)
                y_scale = np.ones(n_outputs)
            layout = network.ParameterLayout(self.cell, X.shape[2], self.hidden_size,
                                             self.num_layers, n_outputs)
            init_rng = np.random.default_rng(random_state.randint(2**31 - 1))
            params = layout.init(init_rng, dtype=dtype)
            optimizer = self._new_optimizer(layout.size, dtype)
            learning_rate = float(self.learning_rate_init)
            history = []
            loss_curve = []
            t_seen = 0
            best_loss = np.inf
            validation_scores = [] if self.early_stopping else None
            best_validation_score = -np.inf if self.early_stopping else None
            no_improvement = 0
        else:
            random_state = self._random_state
            x_mean, x_scale = self._x_mean, self._x_scale
            y_mean, y_scale = self._y_mean, self._y_scale
            layout = self._layout()
            if layout.input_size != X.shape[2]:
                raise ValueError(
                    f"X has {X.shape[2]} features, but RNNRegressor is expecting "
                    f"{layout.input_size} features as input."
                )
            params = self._params.astype(dtype, copy=True)
            optimizer = self._new_optimizer(layout.size, dtype)
            if self._optimizer_state is not None and self._optimizer_state["solver"] == self.solver:
                optimizer.set_state(self._optimizer_state)
                optimizer.state = [s.astype(dtype) for s in optimizer.state]
            learning_rate = float(self._learning_rate if incremental or self.warm_start
                                  else self.learning_rate_init)
            history = list(self.history_)
            loss_curve = list(self.loss_curve_)
            t_seen = self.t_
            best_loss = self.best_loss_ if self.best_loss_ is not None else np.inf
            validation_scores = (list(self.validation_scores_)
                                 if self.validation_scores_ is not None else None)
            best_validation_score = self.best_validation_score_
            if self.early_stopping and validation_scores is None:
                validation_scores, best_validation_score = [], -np.inf
            no_improvement = 0
        Xs = np.ascontiguousarray((X - x_mean) / x_scale, dtype=dtype)
        ys = np.ascontiguousarray((y - y_mean) / y_scale, dtype=dtype)
        X_train, y_train = Xs[:n_train], ys[:n_train]
        X_val, y_val = Xs[n_train:], ys[n_train:]

        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn(
                    f"batch_size={self.batch_size} is larger than the {n_train} training "
                    "samples; it is clipped to the sample size.", UserWarning,
                )
            batch_size = min(self.batch_size, n_train)

        cell_id = network.cell_code(self.cell, self.nonlinearity)
        dropout_rng = np.random.default_rng(random_state.randint(2**31 - 1))
        optimizer.learning_rate = learning_rate
        max_epochs = 1 if incremental else self.max_iter
        start_epoch = len(loss_curve)
        kwargs = dict(loss=self.loss, alpha=self.alpha, clip_norm=self.clip_norm,
                      bptt_steps=self.bptt_steps)
        if device == "cuda":
            runner = _CudaEpochs(layout, params, cell_id, optimizer, X_train, y_train,
                                 X_val if n_val else None, **kwargs)
        else:
            runner = _CpuEpochs(layout, params, cell_id, optimizer, X_train, y_train, X_val,
                                dropout=self.dropout, rng=dropout_rng, **kwargs)
        # checkpoints: "best" (validation), "last_good" (end of the last finite epoch;
        # a warm start's initial weights count as good)
        if n_val:
            runner.checkpoint("best")
        have_last_good = not first_pass
        if have_last_good:
            runner.checkpoint("last_good")
        keep = None  # checkpoint to return instead of the current weights
        stopped = False
        interrupted = False
        n_threads = _effective_threads(self.n_jobs)
        previous_threads = numba.get_num_threads()
        try:
            numba.set_num_threads(n_threads)
            for epoch in range(start_epoch, start_epoch + max_epochs):
                t_start = time.perf_counter()
                self._last_draw = -1.0
                order = (random_state.permutation(n_train) if self.shuffle
                         else np.arange(n_train))
                n_batches = int(math.ceil(n_train / batch_size))
                batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]
                if self.shuffle:
                    # contiguous-ish gathers; the order within a batch is irrelevant
                    batches = [np.sort(idx) for idx in batches]
                progress = None
                if self.verbose and n_batches > 1:
                    progress = functools.partial(self._progress, epoch, total=n_batches,
                                                 t_start=t_start)
                epoch_loss, bad = runner.run_epoch(batches, progress)
                if bad is not None:
                    self._diverged(epoch, *bad, have_last_good=have_last_good)
                    keep = "last_good"
                    stopped = True
                    break
                t_seen += n_train
                loss_curve.append(epoch_loss)
                valid_loss = None
                if n_val:
                    pred_val = runner.predict_val()
                    valid_loss, _ = network.loss_value_and_grad(self.loss, pred_val, y_val)
                    score = _r2(y_val, pred_val)
                    validation_scores.append(score)
                    if score < best_validation_score + self.tol:
                        no_improvement += 1
                    else:
                        no_improvement = 0
                    if score > best_validation_score:
                        best_validation_score = score
                        runner.checkpoint("best")
                else:
                    if epoch_loss > best_loss - self.tol:
                        no_improvement += 1
                    else:
                        no_improvement = 0
                    if epoch_loss < best_loss:
                        best_loss = epoch_loss
                runner.checkpoint("last_good")
                have_last_good = True
                seconds = time.perf_counter() - t_start
                history.append({"epoch": epoch + 1, "train_loss": epoch_loss,
                                "valid_loss": valid_loss, "seconds": seconds})
                if self.verbose:
                    self._print_epoch(history[-1], start_epoch + max_epochs)
                if no_improvement > self.n_iter_no_change and not incremental:
                    what = "Validation score" if n_val else "Training loss"
                    reason = (f"{what} did not improve more than tol={self.tol} for "
                              f"{self.n_iter_no_change} consecutive epochs.")
                    if self.learning_rate == "adaptive" and optimizer.learning_rate > 1e-6:
                        optimizer.learning_rate /= 5.0  # read by the next epoch on any device
                        no_improvement = 0
                        if self.verbose:
                            print(f"{reason} Setting learning rate to "
                                  f"{optimizer.learning_rate:f}", flush=True)
                        continue
                    if self.verbose:
                        print(f"{reason} Stopping.", flush=True)
                    stopped = True
                    break
            else:
                if not incremental and not stopped:
                    warnings.warn(
                        f"Stochastic optimizer: maximum iterations ({self.max_iter}) reached "
                        "and the optimization hasn't converged yet.", ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            if not have_last_good and not runner.params_finite():
                raise
            warnings.warn("Training interrupted by user.", UserWarning)
            interrupted = True
        finally:
            numba.set_num_threads(previous_threads)

        if n_val and validation_scores:
            keep = "best"  # early stopping keeps the best validation weights
        elif interrupted and have_last_good:
            keep = "last_good"
        params = runner.get_params(keep)
        runner.finish()

        opt_state = optimizer.get_state()
        opt_state["solver"] = self.solver
        return {
            "_params": params,
            "_optimizer_state": opt_state,
            "_learning_rate": optimizer.learning_rate,
            "_random_state": random_state,
            "_x_mean": np.asarray(x_mean, dtype=np.float64),
            "_x_scale": np.asarray(x_scale, dtype=np.float64),
            "_y_mean": np.asarray(y_mean, dtype=np.float64),
            "_y_scale": np.asarray(y_scale, dtype=np.float64),
            "_n_input_features": X.shape[2],
            "device_": device,
            "n_outputs_": n_outputs,
            "n_timesteps_in_": X.shape[1] if first_pass else self.n_timesteps_in_,
            "loss_curve_": loss_curve,
            "loss_": loss_curve[-1] if loss_curve else float("nan"),
            "best_loss_": None if self.early_stopping else best_loss,
            "validation_scores_": validation_scores if self.early_stopping else None,
            "best_validation_score_": best_validation_score if self.early_stopping else None,
            "history_": history,
            "n_iter_": len(loss_curve),
            "t_": t_seen,
        }

    # --------------------------------------------------------------- helpers

    def _new_optimizer(self, size, dtype):
        return Optimizer(self.solver, size, dtype, learning_rate=self.learning_rate_init,
                         momentum=self.momentum, nesterov=self.nesterovs_momentum,
                         beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                         rho=self.beta_2 if self.solver == "rmsprop" else 0.99)

    def _layout(self) -> network.ParameterLayout:
        return network.ParameterLayout(self.cell, self._n_input_features, self.hidden_size,
                                       self.num_layers, self.n_outputs_)

    def _diverged(self, epoch, batch, value, *, have_last_good):
        """Handle a non-finite loss: raise without good weights, else warn (the caller
        keeps the last good ones)."""
        advice = (f"Try a lower learning_rate_init (now {self.learning_rate_init}) or set "
                  f"clip_norm (now {self.clip_norm}), and check that X and y are on a "
                  "reasonable scale (standardize=True).")
        what = f"the training loss became {value} at epoch {epoch + 1}, batch {batch + 1}"
        if not have_last_good:
            raise TrainingDivergedError(
                f"Training diverged: {what}, before any epoch completed. {advice}"
            )
        warnings.warn(
            f"Training diverged: {what}; training stopped and the weights of the last "
            f"good epoch were kept. {advice}", RuntimeWarning,
        )

    def _progress(self, epoch, done, total, t_start):
        elapsed = time.perf_counter() - t_start
        if elapsed < PROGRESS_AFTER_SECONDS:
            return
        # redraw at most twice a second, and always at the end of the epoch
        if done < total and elapsed - getattr(self, "_last_draw", -1.0) < 0.5:
            return
        self._last_draw = elapsed
        width = 30
        filled = int(width * done / total)
        bar = "#" * filled + "." * (width - filled)
        end = "\n" if done == total else ""
        print(f"\repoch {epoch + 1} [{bar}] {done}/{total} batches {elapsed:.1f} s", end=end,
              file=sys.stderr, flush=True)

    @staticmethod
    def _print_epoch(record, last_epoch):
        valid = record["valid_loss"]
        valid_text = f", validation loss {valid:.6f}" if valid is not None else ""
        print(f"Epoch {record['epoch']}/{last_epoch}: train loss {record['train_loss']:.6f}"
              f"{valid_text}, {record['seconds']:.2f} s", flush=True)

    # --------------------------------------------------------------- predict

    def predict(self, X) -> np.ndarray:
        """Predict targets for sequences ``X``.

        A model trained on the GPU (``device_ == 'cuda'``) predicts on the GPU when one
        is usable here and ``device`` is not 'cpu'; otherwise, e.g. after loading it on
        a machine without a GPU, on the CPU from the same NumPy weights (equal to
        rounding).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or (n_samples, n_timesteps)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            float64 predictions in the units of ``y``.
        """
        check_is_fitted(self, "_params")
        X, _, _ = self._validate_input(X, reset=False)
        dtype = self._params.dtype
        Xs = np.ascontiguousarray((X - self._x_mean) / self._x_scale, dtype=dtype)
        cell_id = network.cell_code(self.cell, self.nonlinearity)
        if self._predicts_on_gpu():
            from tsrnn import cuda_backend

            pred = cuda_backend.predict(self._layout(), self._params, Xs, cell_id=cell_id)
        else:
            threads = _effective_threads(self.n_jobs)
            previous = numba.get_num_threads()
            try:
                numba.set_num_threads(threads)
                with _KERNEL_LOCK:
                    pred = network.predict(self._layout(), self._params, Xs, cell_id=cell_id)
            finally:
                numba.set_num_threads(previous)
        pred = pred.astype(np.float64) * self._y_scale + self._y_mean
        return pred.ravel() if self.n_outputs_ == 1 else pred

    def _predicts_on_gpu(self) -> bool:
        # models fitted before device_ existed trained on the CPU
        if getattr(self, "device_", "cpu") != "cuda" or self.device == "cpu":
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
        check_is_fitted(self, "_params")
        return {k: v.copy() for k, v in self._layout().views(self._params).items()}

    def load_state_dict(self, state: dict) -> "RNNRegressor":
        """Load parameters by PyTorch name (e.g. from a ``torch.nn.LSTM`` + ``Linear``).

        On a fitted model the names and shapes must match and the scalers are
        kept. On an unfitted model the input features and outputs are read from
        the shapes of ``weight_ih_l0`` and ``head.weight``, and no scaling is
        applied (the weights are taken to act on raw inputs and targets).

        Parameters
        ----------
        state : dict of str to array-like

        Returns
        -------
        self : RNNRegressor
        """
        self._check_params()
        state = {k: np.asarray(v) for k, v in dict(state).items()}
        fitted = hasattr(self, "_params")
        if fitted:
            layout = self._layout()
        else:
            for name in ("weight_ih_l0", "head.weight"):
                if name not in state or state[name].ndim != 2:
                    raise ValueError(f"state dict lacks a 2-D {name!r} entry.")
            layout = network.ParameterLayout(self.cell, state["weight_ih_l0"].shape[1],
                                             self.hidden_size, self.num_layers,
                                             state["head.weight"].shape[0])
        expected = dict(layout.shapes())
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"state dict does not match a {self.cell} with hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers}: missing {missing}, unexpected {unexpected}."
            )
        for name, shape in expected.items():
            if state[name].shape != shape:
                raise ValueError(
                    f"state dict entry {name!r} has shape {state[name].shape}; expected {shape}."
                )
            if not np.all(np.isfinite(state[name])):
                raise ValueError(f"state dict entry {name!r} contains NaN or infinity.")
        flat = np.empty(layout.size, dtype=np.dtype(self.dtype))
        views = layout.views(flat)
        for name in expected:
            views[name][...] = state[name]
        if not fitted:
            self._x_mean = np.zeros(layout.input_size)
            self._x_scale = np.ones(layout.input_size)
            self._y_mean = np.zeros(layout.n_outputs)
            self._y_scale = np.ones(layout.n_outputs)
            self._n_input_features = layout.input_size
            self.n_features_in_ = layout.input_size
            self.n_outputs_ = layout.n_outputs
            self._input_ndim = 3
            self.loss_curve_, self.history_ = [], []
            self.n_iter_, self.t_ = 0, 0
            self.best_loss_, self.validation_scores_, self.best_validation_score_ = None, None, None
            self._optimizer_state, self._learning_rate = None, self.learning_rate_init
            self._random_state = check_random_state(self.random_state)
            self.device_ = "cpu"
        self._params = flat
        return self

    # ----------------------------------------------------------- persistence

    _FITTED_SCALARS = ("n_outputs_", "n_iter_", "t_", "_n_input_features", "_input_ndim",
                       "best_loss_", "best_validation_score_", "n_timesteps_in_",
                       "_learning_rate", "n_features_in_")

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (NumPy ``.npz`` with JSON metadata).

        The file holds arrays and JSON only: loading it never runs code, unlike
        pickle.

        Parameters
        ----------
        path : str or path-like
        """
        check_is_fitted(self, "_params")
        from tsrnn import __version__

        params = {k: v for k, v in self.get_params(deep=False).items()}
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None
        meta = {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "tsrnn_version": __version__,
            "params": params,
            "fitted": {k: _plain(getattr(self, k, None)) for k in self._FITTED_SCALARS},
            "device": getattr(self, "device_", "cpu"),
            "loss_curve": [float(v) for v in self.loss_curve_],
            "validation_scores": (None if self.validation_scores_ is None
                                  else [float(v) for v in self.validation_scores_]),
            "history": self.history_,
            "feature_names_in": (None if not hasattr(self, "feature_names_in_")
                                 else [str(n) for n in self.feature_names_in_]),
        }
        arrays = {f"param:{k}": v for k, v in self.state_dict().items()}
        arrays.update(x_mean=self._x_mean, x_scale=self._x_scale, y_mean=self._y_mean,
                      y_scale=self._y_scale)
        arrays["__metadata__"] = np.array(json.dumps(meta))
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RNNRegressor":
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        model : RNNRegressor

        Raises
        ------
        ValueError
            If the file is not a tsrnn model file, is corrupt, or was written by a
            newer, incompatible format version.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
            raise ValueError(
                f"{path} is not a readable tsrnn model file ({type(exc).__name__}: {exc})."
            ) from None
        if "__metadata__" not in arrays:
            raise ValueError(f"{path} is not a tsrnn model file: no metadata entry.")
        try:
            meta = json.loads(str(arrays.pop("__metadata__")))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} has corrupt tsrnn metadata: {exc}.") from None
        if not isinstance(meta, dict) or meta.get("format") != FILE_FORMAT:
            raise ValueError(
                f"{path} is not a tsrnn model file (format "
                f"{meta.get('format') if isinstance(meta, dict) else None!r})."
            )
        if meta.get("format_version", 0) > FILE_FORMAT_VERSION:
            raise ValueError(
                f"{path} was written by tsrnn {meta.get('tsrnn_version')} in format version "
                f"{meta['format_version']}; this tsrnn reads up to {FILE_FORMAT_VERSION}. "
                "Upgrade tsrnn."
            )
        try:
            model = cls(**meta["params"])
            fitted = meta["fitted"]
            for key in ("_n_input_features", "n_outputs_"):
                setattr(model, key, int(fitted[key]))
            state = {k[len("param:"):]: v for k, v in arrays.items() if k.startswith("param:")}
            model.load_state_dict(state)
            for key in cls._FITTED_SCALARS:
                setattr(model, key, fitted[key])
            # files written before device_ existed come from CPU fits
            model.device_ = meta.get("device", "cpu")
            if model.device_ not in ("cpu", "cuda"):
                raise ValueError(f"unknown device {model.device_!r}")
            model._x_mean = arrays["x_mean"]
            model._x_scale = arrays["x_scale"]
            model._y_mean = arrays["y_mean"]
            model._y_scale = arrays["y_scale"]
            model.loss_curve_ = list(meta["loss_curve"])
            model.loss_ = model.loss_curve_[-1] if model.loss_curve_ else float("nan")
            model.validation_scores_ = meta["validation_scores"]
            model.history_ = list(meta["history"])
            if meta["feature_names_in"] is not None:
                model.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} is a corrupt tsrnn model file: {exc}") from None
        return model


def _plain(value: Any):
    """JSON-friendly version of a fitted scalar."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R² averaged over outputs (as ``sklearn.metrics.r2_score``'s default)."""
    y_true = y_true.astype(np.float64)
    y_pred = y_pred.astype(np.float64)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res > 0, 0.0, 1.0))
    return float(scores.mean())
