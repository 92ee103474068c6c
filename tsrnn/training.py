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
(the best on validation, or the last good one after a divergence or an interrupt),
the weights and the optimiser that produced them stay consistent; the counters,
history and random state go back to that epoch with them (:func:`fit_loop`).

A divergence is a loss that is not finite or exceeds ``DIVERGENCE_FACTOR`` times the
fit's reference loss (:class:`DivergenceRule`). Scaling never overflows silently
(:class:`Standardization`), and :func:`check_fit_memory` refuses parameters whose
buffers cannot fit in the machine's memory before anything is allocated.
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
from tsrnn._kernels import cpu
from tsrnn._kernels.optim import Optimizer, clip_grad_norm

__all__ = ["CpuRunner", "CudaRunner", "DivergenceRule", "FitState",
           "InsufficientMemoryError", "LoopSettings", "Standardization",
           "TrainingDivergedError", "check_fit_memory", "effective_threads", "fit_loop",
           "resume", "start_fresh"]

#: Numba's default "workqueue" threading layer aborts the process when two Python
#: threads launch parallel kernels at once; fits in threads (joblib's threading
#: backend) therefore take turns at the kernels, batch by batch.
KERNEL_LOCK = threading.Lock()

#: Seconds an epoch must run before verbose mode shows a progress bar.
PROGRESS_AFTER_SECONDS = 2.0
#: Without a terminal, the progress of a long epoch is a plain line this often.
PLAIN_PROGRESS_SECONDS = 10.0

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
    """Context manager: ``numba.set_num_threads(n)`` inside, the previous count after
    (neither call is made when the count is already ``n``)."""

    __slots__ = ("n", "previous")

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.previous = numba.get_num_threads()
        if self.previous != self.n:
            numba.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.previous != self.n:
            numba.set_num_threads(self.previous)
        return False


# --------------------------------------------------------------------------
# scaling and splitting: the arrays a fit trains on
# --------------------------------------------------------------------------


#: Rows of X are scaled a block at a time, so that the float64 temporaries of scaling
#: take about this many bytes rather than two float64 copies of the whole input.
SCALE_BLOCK_BYTES = 8 * 2 ** 20


def _moments(A: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over ``axis``, as NumPy computes them; where those
    overflow (finite data beyond about 1e154, or 1.8e19 in float32: the squares or the
    sums leave the range), recomputed in float64 on the data divided by their largest
    magnitude, which cannot overflow. Data in range keep NumPy's bits."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is handled below
        mean, std = A.mean(axis=axis), A.std(axis=axis)
    if np.all(np.isfinite(mean)) and np.all(np.isfinite(std)):
        return mean, std
    peak = np.max(np.abs(A), axis=axis, keepdims=True).astype(np.float64)
    peak[peak == 0] = 1.0
    scaled = A / peak
    peak = peak.reshape(np.shape(mean))
    return scaled.mean(axis=axis) * peak, scaled.std(axis=axis) * peak


@dataclass(frozen=True)
class Standardization:
    """Per-feature input and per-output target scaling, fitted on the training part.

    ``transform`` maps raw arrays to what the network sees; ``inverse_y`` maps network
    outputs back. Identity (zeros and ones) when standardisation is off.

    Overflow is an error naming its cause, never a silent inf: statistics of finite
    data always come out finite (:func:`_moments`), and a scaled array that leaves the
    range of its dtype, or predictions that overflow on the way back to the units of
    ``y``, raise ``ValueError``.
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
        x_mean, x_scale = _moments(X, (0, 1))
        y_mean, y_scale = _moments(y, 0)
        x_scale[x_scale == 0] = 1.0
        y_scale[y_scale == 0] = 1.0
        return cls(*(np.asarray(a, dtype=np.float64) for a in (x_mean, x_scale, y_mean,
                                                                y_scale)))

    @classmethod
    def identity(cls, n_features: int, n_outputs: int) -> "Standardization":
        return cls(np.zeros(n_features), np.ones(n_features), np.zeros(n_outputs),
                   np.ones(n_outputs))

    @property
    def is_identity(self) -> bool:
        return (not np.any(self.x_mean) and bool(np.all(self.x_scale == 1))
                and not np.any(self.y_mean) and bool(np.all(self.y_scale == 1)))

    def transform_X(self, X: np.ndarray, dtype, advice: str = "") -> np.ndarray:
        """``(X - x_mean) / x_scale`` as a C-contiguous array of ``dtype``, computed in
        float64 a block of rows at a time (the bits of a whole-array computation)."""
        return _scaled(X, self.x_mean, self.x_scale, dtype, "X", advice)

    def transform_y(self, y: np.ndarray, dtype, advice: str = "") -> np.ndarray:
        return _scaled(y, self.y_mean, self.y_scale, dtype, "y", advice)

    def inverse_y(self, y: np.ndarray) -> np.ndarray:
        """Network outputs (n, O) back in the units of ``y``, float64; ValueError if
        they are not finite or overflow."""
        with np.errstate(over="ignore", invalid="ignore"):
            out = y.astype(np.float64) * self.y_scale + self.y_mean
        if not np.isfinite(out).all():
            raise ValueError(_inverse_overflow_message(y, self))
        return out


def _scaled(A, mean, scale, dtype, name, advice):
    """``(A - mean) / scale`` in float64, cast to ``dtype`` (C order), in blocks of
    rows; a value that overflows is a ValueError naming ``name``."""
    dtype = np.dtype(dtype)
    n = A.shape[0]
    rows = max(1, SCALE_BLOCK_BYTES // (8 * max(1, A.size // max(1, n))))
    with np.errstate(over="ignore", invalid="ignore"):
        if n <= rows:  # one block (predict's fast path): no copy beyond the result
            out = np.ascontiguousarray((A - mean) / scale, dtype=dtype)
            if not np.isfinite(out).all():
                out = _scaled_in_range(A, mean, scale, dtype, name, advice)
            return out
        out = np.empty(A.shape, dtype=dtype)
        for start in range(0, n, rows):
            block = out[start:start + rows]
            shifted = A[start:start + rows] - mean  # one float64 temporary per block
            block[...] = np.divide(shifted, scale, out=shifted)
            if not np.isfinite(block).all():
                block[...] = _scaled_in_range(A[start:start + rows], mean, scale, dtype,
                                              name, advice)
    return out


def _scaled_in_range(A, mean, scale, dtype, name, advice):
    """The values whose ``A - mean`` overflowed float64 (finite data near the ends of
    the range, on both sides of the mean) as ``A / scale - mean / scale``; the others
    as computed first. ValueError if a value still overflows ``dtype``."""
    plain = (A - mean) / scale
    wide = ~np.isfinite(plain)
    if wide.any():
        plain[wide] = (A / scale - mean / scale)[wide]
    out = np.ascontiguousarray(plain, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError(_scaling_overflow_message(A, mean, scale, dtype, name, advice))
    return out


def _scaling_overflow_message(A, mean, scale, dtype, name, advice):
    with np.errstate(over="ignore", invalid="ignore"):
        peak = float(np.max(np.abs(A)))
        z = float(np.max(np.abs(np.asarray(A, dtype=np.float64) - mean) / scale))
    identity = not np.any(mean) and bool(np.all(scale == 1))
    what = "" if identity else f" after standardisation ({z:.3g} after scaling)"
    return (f"{name} has values that overflow {dtype.name}{what}: the largest |{name}| is "
            f"{peak:.3g} and {dtype.name} holds up to {np.finfo(dtype).max:.3g}.{advice}")


def _inverse_overflow_message(pred, scaling):
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(pred)
        if not np.all(finite):
            return ("The network's outputs are not finite (NaN or infinity): its weights "
                    "or the scaled inputs are out of range.")
        peak = float(np.max(np.abs(pred.astype(np.float64))))
    return (f"Predictions overflow float64 on the way back to the units of y: network "
            f"outputs up to {peak:.3g} times the target scale up to "
            f"{float(np.max(scaling.y_scale)):.3g} (plus a mean up to "
            f"{float(np.max(np.abs(scaling.y_mean))):.3g}) exceed {np.finfo(np.float64).max:.3g}.")


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
# memory: refuse what cannot fit before allocating it
# --------------------------------------------------------------------------


class InsufficientMemoryError(MemoryError, ValueError):
    """The parameters imply more memory than the machine has (refused before any
    allocation; catchable as MemoryError or ValueError)."""


def memory_limit_bytes() -> int | None:
    """The machine's physical memory, or the cgroup's limit when lower (None if
    unknown)."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    limits = [v for v in limits if v > 0]
    return min(limits) if limits else None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def fit_memory(layout: network.ParameterLayout, n_train: int, n_timesteps: int,
               batch_size: int, bptt_steps: int | None, dtype) -> dict[str, int]:
    """Bytes a CPU fit allocates, roughly, by cause.

    ``parameters``: the flat weights, their gradient and per-chunk gradient parts, the
    product matrices, the optimiser's state and two checkpoints of both (about
    ``10 + chunks`` copies of the parameters). ``workspace``: what the forward keeps for
    BPTT per batch, ``(K + 3) x rows x layers x (3H + 1 + max(F, H) + G'H)`` values with K
    the kept steps. ``data``: the standardised training copy of X.
    """
    itemsize = np.dtype(dtype).itemsize
    H, L, F = layout.hidden_size, layout.num_layers, layout.input_size
    G = 4 if layout.cell == "gru" else layout.gates
    B = max(1, min(int(batch_size), int(n_train)))
    per = cpu.train_chunk_rows(B, H)
    chunks = -(-B // per)
    rows = chunks * per
    K = n_timesteps if bptt_steps is None else max(1, min(int(bptt_steps), n_timesteps))
    per_step = 3 * H + 1 + max(F, H if L > 1 else 0) + G * H
    return {
        "parameters": layout.size * itemsize * (10 + chunks),
        "workspace": (K + 3) * rows * L * per_step * itemsize,
        "data": n_train * n_timesteps * F * itemsize,
    }


def check_fit_memory(layout: network.ParameterLayout, n_train: int, n_timesteps: int,
                     batch_size: int, bptt_steps: int | None, dtype, owner: str,
                     limit: int | None = None) -> None:
    """Raise :class:`InsufficientMemoryError` naming the estimate and the parameter to
    change when :func:`fit_memory` exceeds ``limit`` (default: the machine's memory)."""
    limit = memory_limit_bytes() if limit is None else limit
    if limit is None:
        return
    need = fit_memory(layout, n_train, n_timesteps, batch_size, bptt_steps, dtype)
    total = sum(need.values())
    if total <= limit:
        return
    cause = max(need, key=need.get)
    have = f"more than the {format_bytes(limit)} of memory of this machine"
    if cause == "parameters":
        raise InsufficientMemoryError(
            f"{owner} with hidden_size={layout.hidden_size}, num_layers={layout.num_layers} "
            f"({layout.size:,} parameters for {layout.input_size} features and "
            f"{layout.n_outputs} outputs) needs about {format_bytes(total)} to train, "
            f"{format_bytes(need['parameters'])} of it for the parameters, their gradients "
            f"and the optimiser's state, {have}. Lower hidden_size (or num_layers)."
        )
    if cause == "workspace":
        raise InsufficientMemoryError(
            f"{owner} needs about {format_bytes(total)} to train, "
            f"{format_bytes(need['workspace'])} of it for the backpropagation workspace of "
            f"batches of {min(batch_size, n_train)} sequences of {n_timesteps} steps "
            f"(batch_size={batch_size}, n_timesteps={n_timesteps}, bptt_steps={bptt_steps}, "
            f"hidden_size={layout.hidden_size}, num_layers={layout.num_layers}), {have}. "
            "Lower batch_size, or set bptt_steps to backpropagate through fewer steps."
        )
    raise InsufficientMemoryError(
        f"{owner} needs about {format_bytes(total)} to train, "
        f"{format_bytes(need['data'])} of it for a {np.dtype(dtype).name} copy of the "
        f"{n_train} training sequences of {n_timesteps} steps and {layout.input_size} "
        f"features, {have}. Train on fewer or shorter sequences (partial_fit on parts "
        "of the data), or use dtype='float32'."
    )


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


#: A batch whose loss exceeds this many times the fit's reference loss counts as a
#: divergence, as a NaN or infinite one does (see :class:`DivergenceRule`).
DIVERGENCE_FACTOR = 1e4


class DivergenceRule:
    """Which batch losses count as diverged.

    A loss diverged when it is not finite, or when it exceeds ``DIVERGENCE_FACTOR``
    (1e4) times the *reference*: the larger of ``null_loss`` (the loss of predicting
    the mean training target, given by the estimator) and the first non-zero batch loss
    of this fit (the loss at its starting weights, to rounding). A model 1e4 times worse
    than a constant, or than where the fit started (errors 100 times the targets'
    spread for the squared error), is not trained but broken; with a finite-loss
    criterion alone, an SGD divergence through 1e24 kept such an epoch as the "last
    good" one. Normal training, spikes included, stays orders of magnitude below.
    """

    def __init__(self, null_loss: float | None = None):
        self.null_loss = null_loss if null_loss is not None and math.isfinite(null_loss) \
            else 0.0
        self.reference = None

    def exceeded(self, value: float) -> bool:
        """Whether a finite batch loss ``value`` is above the limit (the first non-zero
        loss sets the reference)."""
        if self.reference is None:
            reference = max(float(value), self.null_loss)
            if reference > 0:
                self.reference = reference
            return False
        return value > DIVERGENCE_FACTOR * self.reference


@dataclass
class EpochResult:
    """The outcome of one pass over the batches.

    ``loss`` is the mean training loss (None on divergence); ``diverged`` names the
    first batch (0-based) that diverged, ``value`` its loss and ``reference`` the
    reference loss it exceeded (None when it was not finite).
    """

    loss: float | None
    diverged: int | None = None
    value: float = math.nan
    reference: float | None = None


class CpuRunner:
    """Epochs on the Numba CPU kernels; the weights are a NumPy vector updated in place.

    Kernel calls take :data:`KERNEL_LOCK` batch by batch (see there). A batch whose
    training kernels have a single chunk runs on one thread: waking a second one costs
    milliseconds on a busy machine and there is nothing for it to do (training results
    do not depend on the thread count).
    """

    def __init__(self, layout, params, cell_id, optimizer, X_train, y_train, X_val, *,
                 loss, alpha, clip_norm, bptt_steps, dropout, rng, null_loss=None):
        self.layout, self.params, self.cell_id = layout, params, cell_id
        self.optimizer = optimizer
        self.X_train, self.y_train, self.X_val = X_train, y_train, X_val
        self.loss, self.alpha, self.clip_norm = loss, alpha, clip_norm
        self.bptt_steps, self.dropout, self.rng = bptt_steps, dropout, rng
        self.divergence = DivergenceRule(null_loss)
        self._saved = {}

    def _threads(self, batches) -> int:
        n = numba.get_num_threads()
        if not batches:
            return n
        rows = len(batches[0])  # the largest batch
        chunks = -(-rows // cpu.train_chunk_rows(rows, self.layout.hidden_size))
        return max(1, min(n, chunks))

    def run_epoch(self, batches, progress=None) -> EpochResult:
        """One pass over ``batches`` (index arrays into the training set).

        A batch that diverges (:class:`DivergenceRule`: a non-finite loss or gradient,
        or a loss far above the reference) is not applied, and neither is any later
        one; weights that are not finite at the end count as a divergence at the last
        batch.
        """
        total = 0.0
        with numba_threads(self._threads(batches)):
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
                if self.divergence.exceeded(value):
                    return EpochResult(None, i, value, self.divergence.reference)
                self.optimizer.step(self.params, grad)
                total += value * len(idx)
                if progress is not None:
                    progress(i + 1)
        if not self.params_finite():
            return EpochResult(None, len(batches) - 1, math.nan)
        return EpochResult(float(total) / self.X_train.shape[0])

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
                 loss, alpha, clip_norm, bptt_steps, null_loss=None):
        from tsrnn import cuda_backend

        self.optimizer = optimizer
        self.divergence = DivergenceRule(null_loss)
        self.trainer = cuda_backend.CudaTrainer(
            layout, params, cell_id, X_train, y_train, optimizer, loss=loss, alpha=alpha,
            clip_norm=clip_norm, bptt_steps=bptt_steps, X_val=X_val,
        )

    def run_epoch(self, batches, progress=None) -> EpochResult:
        """As :meth:`CpuRunner.run_epoch`; no progress bar (one call runs the epoch).
        The trainer stops at a non-finite batch itself; a loss above the divergence
        limit is seen after the epoch, which :func:`fit_loop` then discards whole."""
        trainer = self.trainer
        loss = trainer.run_epoch(batches)
        if trainer.diverged_batch is not None:
            i = trainer.diverged_batch
            return EpochResult(None, i, float(trainer.batch_losses[i]))
        if not trainer.params_finite:
            return EpochResult(None, len(batches) - 1, math.nan)
        for i, value in enumerate(trainer.batch_losses[:len(batches)]):
            if self.divergence.exceeded(float(value)):
                return EpochResult(None, i, float(value), self.divergence.reference)
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


@dataclass(frozen=True)
class _Mark:
    """The bookkeeping of a fit state at the end of a good epoch (or at the start)."""

    n_epochs: int
    n_scores: int | None
    n_history: int
    samples_seen: int
    best_loss: float
    best_validation_score: float | None
    rng_state: tuple

    @classmethod
    def of(cls, state: FitState) -> "_Mark":
        return cls(len(state.loss_curve),
                   None if state.validation_scores is None else len(state.validation_scores),
                   len(state.history), state.samples_seen, state.best_loss,
                   state.best_validation_score, state.random_state.get_state())

    def restore(self, state: FitState) -> None:
        del state.loss_curve[self.n_epochs:]
        if self.n_scores is not None:
            del state.validation_scores[self.n_scores:]
        del state.history[self.n_history:]
        state.samples_seen = self.samples_seen
        state.best_loss = self.best_loss
        state.best_validation_score = self.best_validation_score
        state.random_state.set_state(self.rng_state)


def fit_loop(state: FitState, runner, settings: LoopSettings, n_train: int, *,
             have_good_start: bool) -> FitState:
    """Run the epochs of one fit and return the state to commit.

    The returned state is always that of the end of one epoch (or of the start):
    weights, optimiser state, counters, history and random state belong together. An
    epoch is recorded in one piece (a Ctrl-C during its bookkeeping takes effect after
    it); after an interrupt or a divergence the loop goes back to the last good epoch
    whole, drawing of the shuffles included, so continuing from it runs as if the fit
    had been asked for exactly that many epochs.

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
        If the loss diverges (:class:`DivergenceRule`) before any good weights exist.
    KeyboardInterrupt
        If interrupted before any epoch of this fit ended (nothing to keep).
    """
    from tsrnn._warmup import sigint_deferred

    optimizer = state.optimizer
    early = settings.validate is not None
    printer = EpochPrinter(state.n_epochs + settings.max_epochs)
    # checkpoints: "best" (validation), "last_good" (end of the last good epoch; a
    # resumed fit's starting weights count as good), with `good` their bookkeeping
    if early:
        runner.checkpoint("best")
    have_last_good = have_good_start
    if have_last_good:
        runner.checkpoint("last_good")
    good = _Mark.of(state)
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
                    good.restore(state)  # the diverged epoch's shuffle too
                    stopped = True
                    break
                valid_loss = score = None
                if early:
                    valid_loss, score = settings.validate(runner.predict_val())
                with sigint_deferred():  # the epoch's record, in one piece
                    state.samples_seen += n_train
                    state.loss_curve.append(result.loss)
                    if early:
                        state.validation_scores.append(score)
                        improved = score >= state.best_validation_score + settings.tol
                        if score > state.best_validation_score:
                            state.best_validation_score = score
                            runner.checkpoint("best")
                    else:
                        improved = result.loss <= state.best_loss - settings.tol
                        state.best_loss = min(state.best_loss, result.loss)
                    runner.checkpoint("last_good")
                    have_last_good = True
                    epochs_done += 1
                    state.history.append({"epoch": epoch + 1, "train_loss": result.loss,
                                          "valid_loss": valid_loss,
                                          "seconds": time.perf_counter() - t_start})
                    good = _Mark.of(state)
                no_improvement = 0 if improved else no_improvement + 1
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
        good.restore(state)

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
    """A divergence: raise without good weights, else warn (the loop keeps the last
    good ones)."""
    where = f"at epoch {epoch + 1}, batch {result.diverged + 1}"
    if result.reference is not None:
        what = (f"the training loss reached {result.value:.4g} {where}, more than "
                f"{DIVERGENCE_FACTOR:g} times its reference {result.reference:.4g} (the "
                "larger of the loss of predicting the mean target and the fit's first "
                "batch loss)")
    else:
        what = f"the training loss became {result.value} {where}"
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
        """A callback ``progress(done)`` for the batches of one epoch, or None.

        On a terminal: a bar redrawn in place (``\\r``) with the time left. Anywhere else
        (a log file, a notebook's captured stream): a plain line at most every
        PLAIN_PROGRESS_SECONDS, so a log gets no carriage returns."""
        if total <= 1:
            return None
        stream = sys.stderr
        on_terminal = bool(getattr(stream, "isatty", lambda: False)())
        every = 0.5 if on_terminal else PLAIN_PROGRESS_SECONDS
        t_start = time.perf_counter()
        last_draw = [0.0]

        def draw(done):
            elapsed = time.perf_counter() - t_start
            if elapsed < PROGRESS_AFTER_SECONDS:
                return
            if done < total and elapsed - last_draw[0] < every:
                return
            if done == total and not on_terminal:
                return  # the epoch line follows
            last_draw[0] = elapsed
            left = elapsed * (total - done) / done
            text = f"{done}/{total} batches, {elapsed:.1f} s, about {left:.0f} s left"
            if on_terminal:
                width = 30
                filled = int(width * done / total)
                bar = "#" * filled + "." * (width - filled)
                end = "\n" if done == total else ""
                print(f"\repoch {epoch + 1} [{bar}] {text}\033[K", end=end, file=stream,
                      flush=True)
            else:
                print(f"epoch {epoch + 1}: {text}", file=stream, flush=True)

        return draw


def make_runner(device: str, layout: network.ParameterLayout, state: FitState, cell_id: int,
                X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray | None, *,
                loss: str, alpha: float, clip_norm: float | None, bptt_steps: int | None,
                dropout: float, null_loss: float | None = None):
    """The runner of ``device`` ('cpu' or 'cuda') for this fit, training
    ``state.params`` in place (CPU) or a device copy of them (CUDA).

    Draws the dropout generator's seed from ``state.random_state`` on every device, so
    that the shuffling that follows is the same wherever the fit runs. ``null_loss``
    (the loss of predicting the mean target) feeds the :class:`DivergenceRule`.
    """
    dropout_rng = np.random.default_rng(state.random_state.randint(2**31 - 1))
    state.optimizer.learning_rate = state.learning_rate
    kwargs = dict(loss=loss, alpha=alpha, clip_norm=clip_norm, bptt_steps=bptt_steps,
                  null_loss=null_loss)
    if device == "cuda":
        return CudaRunner(layout, state.params, cell_id, state.optimizer, X_train, y_train,
                          X_val, **kwargs)
    return CpuRunner(layout, state.params, cell_id, state.optimizer, X_train, y_train,
                     X_val, dropout=dropout, rng=dropout_rng, **kwargs)
