"""The epoch loop shared by every estimator: fit state, fresh start and resume, stopping.

An estimator validates its data and parameters, then hands the arrays to this module:

* :func:`start_fresh` and :func:`resume` produce the :class:`FitState` a fit starts
  from (weights, optimiser, random state, history, best scores);
* a *runner* (:class:`CpuRunner` or :class:`CudaRunner`, side by side below, with the
  same interface) owns the device's copy of the weights and runs epochs of minibatches;
* :func:`fit_loop` reads top-down: for each epoch :func:`run_single_epoch` (batches
  through the runner), then the validation score, the stopping rule, the checkpoints
  and the history record; divergence and interrupts are handled in one place each.

Nothing of an earlier fit is modified: :func:`resume` copies what it continues from,
so an estimator that commits the returned state only at the end stays as it was when
a fit fails.

Checkpoints hold the weights *and* the optimiser's state, so whichever epoch is kept
(the best on validation, or the last finite one after a divergence or an interrupt),
the weights and the optimiser that produced them stay consistent.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numba
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from tsrnn import network
from tsrnn._kernels.optim import Optimizer, clip_grad_norm

__all__ = ["CpuRunner", "CudaRunner", "FitState", "LoopSettings", "Standardization",
           "TrainingDivergedError", "effective_threads", "fit_loop", "resume",
           "start_fresh"]

#: Numba's default "workqueue" threading layer aborts the process when two Python
#: threads launch parallel kernels at once; fits in threads (joblib's threading
#: backend) therefore take turns at the kernels, batch by batch.
KERNEL_LOCK = threading.Lock()

#: Seconds an epoch must run before verbose mode shows a progress bar.
PROGRESS_AFTER_SECONDS = 2.0

#: Below this, the adaptive schedule stops instead of dividing the learning rate again.
MIN_ADAPTIVE_LEARNING_RATE = 1e-6


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite and no good weights were left."""


def effective_threads(n_jobs: int | None) -> int:
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


class numba_threads:
    """Context manager: ``numba.set_num_threads(n)`` inside, the previous count after."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.previous = numba.get_num_threads()
        numba.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        numba.set_num_threads(self.previous)
        return False


# --------------------------------------------------------------------------
# scaling and splitting: the arrays a fit trains on
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Standardization:
    """Per-feature input and per-output target scaling, fitted on the training part.

    ``transform`` maps raw arrays to what the network sees; ``inverse_y`` maps network
    outputs back. Identity (zeros and ones) when standardisation is off.
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, enabled: bool) -> "Standardization":
        """From the training part: ``X`` (n, T, F), ``y`` (n, O)."""
        if not enabled:
            return cls.identity(X.shape[2], y.shape[1])
        x_mean = X.mean(axis=(0, 1))
        x_scale = X.std(axis=(0, 1))
        y_mean = y.mean(axis=0)
        y_scale = y.std(axis=0)
        x_scale[x_scale == 0] = 1.0
        y_scale[y_scale == 0] = 1.0
        return cls(*(np.asarray(a, dtype=np.float64) for a in (x_mean, x_scale, y_mean,
                                                                y_scale)))

    @classmethod
    def identity(cls, n_features: int, n_outputs: int) -> "Standardization":
        return cls(np.zeros(n_features), np.ones(n_features), np.zeros(n_outputs),
                   np.ones(n_outputs))

    def transform_X(self, X: np.ndarray, dtype) -> np.ndarray:
        return np.ascontiguousarray((X - self.x_mean) / self.x_scale, dtype=dtype)

    def transform_y(self, y: np.ndarray, dtype) -> np.ndarray:
        return np.ascontiguousarray((y - self.y_mean) / self.y_scale, dtype=dtype)

    def inverse_y(self, y: np.ndarray) -> np.ndarray:
        return y.astype(np.float64) * self.y_scale + self.y_mean


def validation_size(n_samples: int, early_stopping: bool, validation_fraction: float,
                    incremental: bool) -> int:
    """Samples held out at the end (time order: the newest validate); 0 without
    early stopping and in ``partial_fit``."""
    if not early_stopping or incremental:
        return 0
    n_val = int(math.ceil(validation_fraction * n_samples))
    if n_val < 2 or n_samples - n_val < 1:
        raise ValueError(
            f"early_stopping needs at least 2 validation samples and 1 training "
            f"sample; validation_fraction={validation_fraction} of "
            f"{n_samples} samples gives {n_val} for validation. Increase "
            "'validation_fraction' or the size of your dataset."
        )
    return n_val


def resolve_batch_size(batch_size: int | str, n_train: int) -> int:
    """'auto' is ``min(200, n_train)``; a larger int is clipped with a warning."""
    if batch_size == "auto":
        return min(200, n_train)
    if batch_size > n_train:
        warnings.warn(
            f"batch_size={batch_size} is larger than the {n_train} training "
            "samples; it is clipped to the sample size.", UserWarning,
        )
    return min(batch_size, n_train)


# --------------------------------------------------------------------------
# the state of a fit
# --------------------------------------------------------------------------


@dataclass
class FitState:
    """What one fit hands to the next: weights, optimiser, random state, history.

    Attributes
    ----------
    params : (P,) ndarray
        Flat weights (:class:`tsrnn.network.ParameterLayout`).
    optimizer : Optimizer or None
        Solver, hyperparameters, step count and state arrays (None: none kept, e.g.
        weights loaded from a state dict; a resumed fit then starts a new one).
    learning_rate : float
        Current step size (the adaptive schedule lowers it).
    random_state : numpy.random.RandomState
        Drives shuffling and dropout; continues across resumed fits.
    loss_curve : list of float
        Training loss per epoch.
    validation_scores : list of float or None
        Validation score per epoch (None without early stopping).
    best_loss : float
        Lowest training loss (inf before the first epoch).
    best_validation_score : float or None
        Highest validation score (-inf before the first; None without early stopping).
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``valid_loss``, ``seconds``.
    samples_seen : int
        Training samples processed over all epochs.
    """

    params: np.ndarray
    optimizer: Optimizer | None
    learning_rate: float
    random_state: np.random.RandomState
    loss_curve: list = field(default_factory=list)
    validation_scores: list | None = None
    best_loss: float = math.inf
    best_validation_score: float | None = None
    history: list = field(default_factory=list)
    samples_seen: int = 0

    @property
    def n_epochs(self) -> int:
        return len(self.loss_curve)


def start_fresh(layout: network.ParameterLayout, random_state, dtype,
                make_optimizer: Callable[[int, np.dtype], Optimizer],
                early_stopping: bool) -> FitState:
    """A new fit: weights initialised from ``random_state`` (an int, a RandomState or
    None), a new optimiser, empty history."""
    random_state = check_random_state(random_state)
    init_rng = np.random.default_rng(random_state.randint(2**31 - 1))
    optimizer = make_optimizer(layout.size, dtype)
    return FitState(
        params=layout.init(init_rng, dtype=dtype),
        optimizer=optimizer,
        learning_rate=optimizer.learning_rate,
        random_state=random_state,
        validation_scores=[] if early_stopping else None,
        best_validation_score=-math.inf if early_stopping else None,
    )


def resume(previous: FitState, dtype, make_optimizer: Callable[[int, np.dtype], Optimizer],
           early_stopping: bool) -> FitState:
    """Continue ``previous`` (warm start, ``partial_fit``), which is not modified.

    Weights and optimiser state are cast to ``dtype``. The optimiser is rebuilt from the
    current hyperparameters; its state carries over when the solver is the same,
    otherwise it starts afresh; the learning rate always carries over.
    """
    params = previous.params.astype(dtype, copy=True)
    optimizer = make_optimizer(params.size, dtype)
    old = previous.optimizer
    if old is not None and old.solver == optimizer.solver:
        optimizer.set_state(old.get_state())
        optimizer.state = [s.astype(dtype) for s in optimizer.state]
    optimizer.learning_rate = float(previous.learning_rate)
    validation_scores = (list(previous.validation_scores)
                         if previous.validation_scores is not None else None)
    best_validation_score = previous.best_validation_score
    if early_stopping and validation_scores is None:
        validation_scores, best_validation_score = [], -math.inf
    return FitState(
        params=params,
        optimizer=optimizer,
        learning_rate=optimizer.learning_rate,
        random_state=copy.deepcopy(previous.random_state),
        loss_curve=list(previous.loss_curve),
        validation_scores=validation_scores,
        best_loss=previous.best_loss,
        best_validation_score=best_validation_score,
        history=[dict(h) for h in previous.history],
        samples_seen=previous.samples_seen,
    )


# --------------------------------------------------------------------------
# runners: what an epoch does on each device
# --------------------------------------------------------------------------


@dataclass
class EpochResult:
    """The outcome of one pass over the batches.

    ``loss`` is the mean training loss (None on divergence); ``diverged`` names the
    first batch (0-based) with a non-finite loss or gradient, and ``value`` its loss.
    """

    loss: float | None
    diverged: int | None = None
    value: float = math.nan


class CpuRunner:
    """Epochs on the Numba CPU kernels; the weights are a NumPy vector updated in place.

    Kernel calls take :data:`KERNEL_LOCK` batch by batch (see there).
    """

    def __init__(self, layout, params, cell_id, optimizer, X_train, y_train, X_val, *,
                 loss, alpha, clip_norm, bptt_steps, dropout, rng):
        self.layout, self.params, self.cell_id = layout, params, cell_id
        self.optimizer = optimizer
        self.X_train, self.y_train, self.X_val = X_train, y_train, X_val
        self.loss, self.alpha, self.clip_norm = loss, alpha, clip_norm
        self.bptt_steps, self.dropout, self.rng = bptt_steps, dropout, rng
        self._saved = {}

    def run_epoch(self, batches, progress=None) -> EpochResult:
        """One pass over ``batches`` (index arrays into the training set).

        A batch with a non-finite loss or gradient is not applied, and neither is any
        later one; weights that are not finite at the end count as a divergence at
        the last batch.
        """
        total = 0.0
        for i, idx in enumerate(batches):
            xb, yb = self.X_train[idx], self.y_train[idx]
            with KERNEL_LOCK:
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
                return EpochResult(None, i, value)
            self.optimizer.step(self.params, grad)
            total += value * len(idx)
            if progress is not None:
                progress(i + 1)
        if not self.params_finite():
            return EpochResult(None, len(batches) - 1, math.nan)
        return EpochResult(total / self.X_train.shape[0])

    def predict_val(self) -> np.ndarray:
        with KERNEL_LOCK:
            return network.predict(self.layout, self.params, self.X_val, cell_id=self.cell_id)

    def checkpoint(self, name: str) -> None:
        """Save the weights and the optimiser's state (step count included) as ``name``."""
        self._saved[name] = (self.params.copy(), self.optimizer.get_state())

    def restore(self, name: str) -> None:
        """Make checkpoint ``name`` the current weights and optimiser state."""
        params, opt_state = self._saved[name]
        self.params[...] = params
        self.optimizer.set_state(opt_state)

    def params_finite(self) -> bool:
        return bool(np.all(np.isfinite(self.params)))

    def finish(self) -> np.ndarray:
        """The current weights, as a NumPy vector (the optimiser lives on the host)."""
        return self.params


class CudaRunner:
    """Epochs on the GPU through :class:`tsrnn.cuda_backend.CudaTrainer`.

    Data, weights, optimiser state and checkpoints stay on the device; an epoch brings
    back its batch losses and status words only, a checkpoint is a device-side copy.
    The trainer reads ``optimizer.learning_rate`` every epoch, so the adaptive schedule
    works unchanged; :meth:`finish` copies weights and optimiser state back once.
    """

    def __init__(self, layout, params, cell_id, optimizer, X_train, y_train, X_val, *,
                 loss, alpha, clip_norm, bptt_steps):
        from tsrnn import cuda_backend

        self.optimizer = optimizer
        self.trainer = cuda_backend.CudaTrainer(
            layout, params, cell_id, X_train, y_train, optimizer, loss=loss, alpha=alpha,
            clip_norm=clip_norm, bptt_steps=bptt_steps, X_val=X_val,
        )

    def run_epoch(self, batches, progress=None) -> EpochResult:
        """As :meth:`CpuRunner.run_epoch`; no progress bar (one call runs the epoch)."""
        trainer = self.trainer
        loss = trainer.run_epoch(batches)
        if trainer.diverged_batch is not None:
            i = trainer.diverged_batch
            return EpochResult(None, i, float(trainer.batch_losses[i]))
        if not trainer.params_finite:
            return EpochResult(None, len(batches) - 1, math.nan)
        return EpochResult(loss)

    def predict_val(self) -> np.ndarray:
        return self.trainer.predict()

    def checkpoint(self, name: str) -> None:
        self.trainer.checkpoint(name)

    def restore(self, name: str) -> None:
        self.trainer.restore(name)

    def params_finite(self) -> bool:
        # a host copy: only asked after an interruption, when the epoch's flag is stale
        return bool(np.all(np.isfinite(self.trainer.get_params())))

    def finish(self) -> np.ndarray:
        self.trainer.sync_optimizer()
        return self.trainer.get_params()


# --------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopSettings:
    """How :func:`fit_loop` runs: the estimator's parameters, resolved for this fit.

    ``validate(pred_val)`` returns ``(valid_loss, score)`` for predictions on the
    held-out samples (higher scores are better); ``divergence_advice`` ends the
    message of a divergence.
    """

    max_epochs: int
    batch_size: int
    shuffle: bool
    tol: float
    n_iter_no_change: int
    adaptive: bool
    incremental: bool
    max_iter: int
    verbose: int
    n_threads: int
    divergence_advice: str
    validate: Callable[[np.ndarray], tuple[float, float]] | None = None


def epoch_batches(random_state, n_train: int, batch_size: int, shuffle: bool) -> list:
    """Index arrays of one epoch's minibatches (sorted within each batch when shuffled:
    contiguous-ish gathers; the order within a batch does not matter)."""
    order = random_state.permutation(n_train) if shuffle else np.arange(n_train)
    n_batches = int(math.ceil(n_train / batch_size))
    batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]
    if shuffle:
        batches = [np.sort(idx) for idx in batches]
    return batches


def run_single_epoch(runner, state: FitState, settings: LoopSettings, n_train: int,
                     epoch: int, printer: "EpochPrinter") -> EpochResult:
    """Shuffle, cut the batches and run them (with a progress bar when verbose)."""
    batches = epoch_batches(state.random_state, n_train, settings.batch_size,
                            settings.shuffle)
    progress = printer.progress(epoch, len(batches)) if settings.verbose else None
    return runner.run_epoch(batches, progress)


def fit_loop(state: FitState, runner, settings: LoopSettings, n_train: int, *,
             have_good_start: bool) -> FitState:
    """Run the epochs of one fit and return the state to commit.

    Parameters
    ----------
    state : FitState
        Where the fit starts, from :func:`start_fresh` or :func:`resume` (which copy
        whatever they take from an earlier fit), updated in place and returned.
    runner : CpuRunner or CudaRunner
        Holds the data, the weights and the optimiser for this fit.
    settings : LoopSettings
    n_train : int
        Training samples (the runner's ``X_train`` rows).
    have_good_start : bool
        Whether the starting weights count as good (a resumed fit's do): a divergence
        or interrupt before the first epoch ends then keeps them.

    Raises
    ------
    TrainingDivergedError
        If the loss becomes non-finite before any good weights exist.
    KeyboardInterrupt
        If interrupted before any epoch of this fit ended (nothing to keep).
    """
    optimizer = state.optimizer
    early = settings.validate is not None
    printer = EpochPrinter(state.n_epochs + settings.max_epochs)
    # checkpoints: "best" (validation), "last_good" (end of the last finite epoch; a
    # resumed fit's starting weights count as good)
    if early:
        runner.checkpoint("best")
    have_last_good = have_good_start
    if have_last_good:
        runner.checkpoint("last_good")
    keep = None  # checkpoint to return instead of the current weights
    stopped = False
    epochs_done = 0
    no_improvement = 0
    start_epoch = state.n_epochs
    try:
        with numba_threads(settings.n_threads):
            for epoch in range(start_epoch, start_epoch + settings.max_epochs):
                t_start = time.perf_counter()
                result = run_single_epoch(runner, state, settings, n_train, epoch, printer)
                if result.loss is None:
                    _diverged(epoch, result, have_last_good, settings.divergence_advice)
                    keep = "last_good"
                    stopped = True
                    break
                state.samples_seen += n_train
                state.loss_curve.append(result.loss)
                valid_loss = None
                if early:
                    valid_loss, score = settings.validate(runner.predict_val())
                    state.validation_scores.append(score)
                    improved = score >= state.best_validation_score + settings.tol
                    if score > state.best_validation_score:
                        state.best_validation_score = score
                        runner.checkpoint("best")
                else:
                    improved = result.loss <= state.best_loss - settings.tol
                    state.best_loss = min(state.best_loss, result.loss)
                no_improvement = 0 if improved else no_improvement + 1
                runner.checkpoint("last_good")
                have_last_good = True
                epochs_done += 1
                state.history.append({"epoch": epoch + 1, "train_loss": result.loss,
                                      "valid_loss": valid_loss,
                                      "seconds": time.perf_counter() - t_start})
                if settings.verbose:
                    printer.epoch(state.history[-1])
                if no_improvement > settings.n_iter_no_change and not settings.incremental:
                    if _lower_learning_rate(optimizer, settings, early, printer):
                        no_improvement = 0
                        continue
                    stopped = True
                    break
            else:
                if not settings.incremental and not stopped:
                    warnings.warn(
                        f"Stochastic optimizer: maximum iterations ({settings.max_iter}) "
                        "reached and the optimization hasn't converged yet.",
                        ConvergenceWarning,
                    )
    except KeyboardInterrupt:
        if epochs_done == 0:
            raise  # nothing of this fit to keep: the caller stays as it was
        warnings.warn("Training interrupted by user.", UserWarning)
        keep = "last_good"

    if early and state.validation_scores:
        keep = "best"  # early stopping keeps the best validation weights
    if keep is not None:
        runner.restore(keep)
    state.params = runner.finish()
    state.learning_rate = optimizer.learning_rate
    return state


def _lower_learning_rate(optimizer, settings, early, printer) -> bool:
    """The stopping rule fired: divide the rate by 5 ('adaptive', above the minimum;
    returns True) or stop (returns False)."""
    what = "Validation score" if early else "Training loss"
    reason = (f"{what} did not improve more than tol={settings.tol} for "
              f"{settings.n_iter_no_change} consecutive epochs.")
    if settings.adaptive and optimizer.learning_rate > MIN_ADAPTIVE_LEARNING_RATE:
        optimizer.learning_rate /= 5.0  # read by the next epoch on any device
        if settings.verbose:
            printer.line(f"{reason} Setting learning rate to {optimizer.learning_rate:f}")
        return True
    if settings.verbose:
        printer.line(f"{reason} Stopping.")
    return False


def _diverged(epoch, result, have_last_good, advice):
    """A non-finite loss: raise without good weights, else warn (the loop keeps the
    last good ones)."""
    what = (f"the training loss became {result.value} at epoch {epoch + 1}, batch "
            f"{result.diverged + 1}")
    if not have_last_good:
        raise TrainingDivergedError(
            f"Training diverged: {what}, before any epoch completed. {advice}"
        )
    warnings.warn(
        f"Training diverged: {what}; training stopped and the weights of the last "
        f"good epoch were kept. {advice}", RuntimeWarning,
    )


class EpochPrinter:
    """The one place verbose training output goes: epoch lines on stdout, a progress
    bar on stderr for epochs that take longer than PROGRESS_AFTER_SECONDS."""

    def __init__(self, last_epoch: int):
        self.last_epoch = last_epoch

    def line(self, text: str) -> None:
        print(text, flush=True)

    def epoch(self, record: dict) -> None:
        valid = record["valid_loss"]
        valid_text = f", validation loss {valid:.6f}" if valid is not None else ""
        self.line(f"Epoch {record['epoch']}/{self.last_epoch}: train loss "
                  f"{record['train_loss']:.6f}{valid_text}, {record['seconds']:.2f} s")

    def progress(self, epoch: int, total: int):
        """A callback ``progress(done)`` for the batches of one epoch, or None."""
        if total <= 1:
            return None
        t_start = time.perf_counter()
        last_draw = [-1.0]

        def draw(done):
            elapsed = time.perf_counter() - t_start
            if elapsed < PROGRESS_AFTER_SECONDS:
                return
            # redraw at most twice a second, and always at the end of the epoch
            if done < total and elapsed - last_draw[0] < 0.5:
                return
            last_draw[0] = elapsed
            width = 30
            filled = int(width * done / total)
            bar = "#" * filled + "." * (width - filled)
            end = "\n" if done == total else ""
            print(f"\repoch {epoch + 1} [{bar}] {done}/{total} batches {elapsed:.1f} s",
                  end=end, file=sys.stderr, flush=True)

        return draw


def make_runner(device: str, layout: network.ParameterLayout, state: FitState, cell_id: int,
                X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray | None, *,
                loss: str, alpha: float, clip_norm: float | None, bptt_steps: int | None,
                dropout: float):
    """The runner of ``device`` ('cpu' or 'cuda') for this fit, training
    ``state.params`` in place (CPU) or a device copy of them (CUDA).

    Draws the dropout generator's seed from ``state.random_state`` on every device, so
    that the shuffling that follows is the same wherever the fit runs.
    """
    dropout_rng = np.random.default_rng(state.random_state.randint(2**31 - 1))
    state.optimizer.learning_rate = state.learning_rate
    kwargs = dict(loss=loss, alpha=alpha, clip_norm=clip_norm, bptt_steps=bptt_steps)
    if device == "cuda":
        return CudaRunner(layout, state.params, cell_id, state.optimizer, X_train, y_train,
                          X_val, **kwargs)
    return CpuRunner(layout, state.params, cell_id, state.optimizer, X_train, y_train,
                     X_val, dropout=dropout, rng=dropout_rng, **kwargs)
