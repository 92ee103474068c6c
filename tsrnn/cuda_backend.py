"""Training and inference on an NVIDIA GPU through the kernels of :mod:`tsrnn._kernels.cuda`.

This module never imports ``numba.cuda`` at import time: :func:`cuda_available` and the
classes import :mod:`tsrnn._kernels.cuda` when first used, so importing tsrnn costs
nothing on machines without a GPU.

The estimator's loop for ``device='cuda'``::

    trainer = CudaTrainer(layout, params, cell_id, X_train, y_train, optimizer,
                          loss=..., alpha=..., clip_norm=..., bptt_steps=..., X_val=X_val)
    for epoch in ...:
        epoch_loss = trainer.run_epoch(batches)   # list of index arrays into X_train
        if trainer.diverged_batch is not None or not trainer.params_finite: ...
        pred_val = trainer.predict()              # X_val, already on the device
        trainer.checkpoint("best")                # device-side copies, no transfer
    params = trainer.get_params("best")           # numpy, once at the end
    trainer.sync_optimizer()                      # optimizer.state back to numpy

Weights, optimiser state and data are copied to the device once; an epoch sends the
batch indices and brings back one loss per batch and two status words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tsrnn.network import LOSSES, ParameterLayout, cell_code

#: Rows per inference chunk on the device.
PREDICT_BATCH = 1024


def _kernels():
    from tsrnn._kernels import cuda as kc

    return kc


def cuda_available() -> tuple[bool, str]:
    """Whether the CUDA backend can run here, and why (or why not), in one line.

    True under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), where it is correct but
    very slow.
    """
    try:
        kc = _kernels()
    except Exception as exc:  # numba.cuda missing or broken
        return False, f"numba.cuda could not be imported: {exc}"
    return kc.device_status()


# ----------------------------------------------------------------------------
# device workspaces
# ----------------------------------------------------------------------------


@dataclass
class _Views:
    """Device views of one batch size B into the flat workspaces."""

    B: int
    x: object = None
    yb: object = None
    zeros: object = None
    pred: object = None
    dpred: object = None
    dlast: object = None
    dh_carry: object = None
    dc_carry: object = None
    h_out: list = field(default_factory=list)
    gates: list = field(default_factory=list)
    extra: list = field(default_factory=list)
    dzh: list = field(default_factory=list)
    c_carry: list = field(default_factory=list)
    dh: list = field(default_factory=list)


class _Workspace:
    """Flat device buffers for batches of up to ``B_max`` rows, with cached per-B views.

    ``train=True`` keeps every layer's outputs, gates and states for BPTT (window K);
    ``train=False`` (inference) ping-pongs two output buffers and shares one gate
    buffer of K = PREDICT_BLOCK_STEPS steps between layers.
    """

    def __init__(self, kc, layout: ParameterLayout, T: int, B_max: int, K: int, dtype,
                 train: bool):
        self.kc = kc
        self.T, self.B_max, self.K, self.train = T, B_max, K, train
        self.dtype = np.dtype(dtype)
        self.L = layout.num_layers
        self.F = layout.input_size
        self.H = layout.hidden_size
        self.GH = layout.gates * layout.hidden_size
        self.O = layout.n_outputs
        self.cell = layout.cell
        T, B, F, H, GH, O, L = T, B_max, self.F, self.H, self.GH, self.O, self.L
        n_state = L if train else 1
        n_out = L if train else min(L, 2)
        empty = lambda n: kc.device_empty(max(n, 1), self.dtype)  # noqa: E731
        self.buf = {
            "x": empty(T * B * F),
            "zeros": kc.device_zeros(B * H, self.dtype),
            "pred": empty(B * O),
            "h_out": [empty(T * B * H) for _ in range(n_out)],
            "gates": [empty(K * B * GH) for _ in range(n_state)],
            "extra": [empty(K * B * H) for _ in range(n_state)],
            "c_carry": [empty(B * H) for _ in range(n_state)],
        }
        if train:
            self.buf.update({
                "yb": empty(B * O),
                "dpred": empty(B * O),
                "dlast": empty(B * H),
                "dh_carry": empty(B * H),
                "dc_carry": empty(B * H),
                "dzh": [empty(K * B * GH) for _ in range(L)] if self.cell == "gru" else [],
                "dh": [empty(K * B * H) for _ in range(2 if L > 1 else 0)],
            })
        self._views = {}

    def views(self, B: int) -> _Views:
        if B > self.B_max:
            raise ValueError(f"batch of {B} rows exceeds the workspace's {self.B_max}.")
        v = self._views.get(B)
        if v is not None:
            return v
        T, K, F, H, GH, O = self.T, self.K, self.F, self.H, self.GH, self.O

        def view(buf, *shape):
            return buf[:int(np.prod(shape))].reshape(*shape)

        b = self.buf
        v = _Views(B)
        v.x = view(b["x"], T, B, F)
        v.zeros = view(b["zeros"], B, H)
        v.pred = view(b["pred"], B, O)
        v.h_out = [view(a, T, B, H) for a in b["h_out"]]
        v.gates = [view(a, K, B, GH) for a in b["gates"]]
        v.extra = [view(a, K, B, H) for a in b["extra"]]
        v.c_carry = [view(a, B, H) for a in b["c_carry"]]
        if self.train:
            v.yb = view(b["yb"], B, O)
            v.dpred = view(b["dpred"], B, O)
            v.dlast = view(b["dlast"], B, H)
            v.dh_carry = view(b["dh_carry"], B, H)
            v.dc_carry = view(b["dc_carry"], B, H)
            v.dzh = [view(a, K, B, GH) for a in b["dzh"]] or v.gates
            v.dh = [view(a, K, B, H) for a in b["dh"]]
        self._views[B] = v
        return v


def _param_views(layout: ParameterLayout, flat_dev) -> dict:
    """Named device views of a flat device vector (PyTorch names and shapes)."""
    out, offset = {}, 0
    for name, shape in layout.shapes():
        n = int(np.prod(shape))
        out[name] = flat_dev[offset:offset + n].reshape(*shape)
        offset += n
    return out


def _check_layout_params(layout: ParameterLayout, params: np.ndarray) -> np.ndarray:
    params = np.asarray(params)
    if params.dtype not in (np.float32, np.float64):
        raise TypeError(f"params must be float32 or float64; got {params.dtype}.")
    if params.shape != (layout.size,):
        raise ValueError(f"params must have shape ({layout.size},) for this layout; "
                         f"got {params.shape}.")
    return np.ascontiguousarray(params)


def _check_X(layout: ParameterLayout, X, dtype, name="X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 3 or X.shape[2] != layout.input_size:
        raise ValueError(f"{name} must be 3-D (n_samples, n_timesteps, {layout.input_size}); "
                         f"got shape {X.shape}.")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} needs at least one sample and one time step; got shape "
                         f"{X.shape}.")
    return np.ascontiguousarray(X, dtype=dtype)


def _forward_stack(kc, cell_id, layout, p, v):
    """Run every layer and the head on the device (input ``v.x``, output ``v.pred``);
    returns each layer's c_start and the top layer's last hidden state."""
    c_starts = []
    inp = v.x
    L = layout.num_layers
    for k in range(L):
        h_out = v.h_out[k % len(v.h_out)]
        j = k % len(v.gates)
        c_start = kc.layer_forward(
            cell_id, inp, v.zeros, p[f"weight_ih_l{k}"], p[f"weight_hh_l{k}"],
            p[f"bias_ih_l{k}"], p[f"bias_hh_l{k}"], h_out, v.gates[j], v.extra[j],
            v.c_carry[j],
        )
        c_starts.append(c_start)
        inp = h_out
    top_last = inp[inp.shape[0] - 1]
    kc.gemm_nt(top_last, p["head.weight"], v.pred, bias=p["head.bias"])
    return c_starts, top_last


class _Predictor:
    """Inference on device-resident parameters, in chunks of ``batch_size`` rows."""

    def __init__(self, kc, layout, cell_id, dtype):
        self.kc, self.layout, self.cell_id = kc, layout, cell_id
        self.dtype = np.dtype(dtype)
        self._ws = None

    def run(self, p, X_dev, batch_size=PREDICT_BATCH) -> np.ndarray:
        kc = self.kc
        N, T, _ = X_dev.shape
        Bp = max(1, min(int(batch_size), N))
        K = max(1, min(kc.PREDICT_BLOCK_STEPS, T))
        ws = self._ws
        if ws is None or ws.T != T or ws.B_max < Bp or ws.K != K:
            ws = self._ws = _Workspace(kc, self.layout, T, Bp, K, self.dtype, train=False)
        idx = kc.to_device(np.arange(N, dtype=np.int64))
        out = np.empty((N, self.layout.n_outputs), dtype=self.dtype)
        for start in range(0, N, Bp):
            stop = min(start + Bp, N)
            v = ws.views(stop - start)
            kc.gather_time_major(X_dev, idx[start:stop], v.x)
            _forward_stack(kc, self.cell_id, self.layout, p, v)
            out[start:stop] = v.pred.copy_to_host()
        return out


def predict(layout: ParameterLayout, flat: np.ndarray, X: np.ndarray,
            cell_id: int | None = None, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Predictions (n_samples, n_outputs) on the GPU, as :func:`tsrnn.network.predict`.

    ``flat`` and ``X`` (batch-first, n_samples x T x F) are copied to the device; the
    dtype of ``flat`` sets the computation's.
    """
    kc = _kernels()
    flat = _check_layout_params(layout, flat)
    X = _check_X(layout, X, flat.dtype)
    if cell_id is None:
        cell_id = cell_code(layout.cell)
    flat_dev = kc.to_device(flat)
    return _Predictor(kc, layout, cell_id, flat.dtype).run(
        _param_views(layout, flat_dev), kc.to_device(X), batch_size)


# ----------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------


class CudaTrainer:
    """Minibatch training of a ParameterLayout network with everything on the GPU.

    Parameters
    ----------
    layout : ParameterLayout
    params : (P,) float32 or float64 array
        Initial flat parameters; their dtype sets the computation's. Copied.
    cell_id : int
        Kernel cell code (``network.cell_code(cell, nonlinearity)``).
    X : (n_samples, T, F) array
        Training inputs, batch-first; copied to the device once (cast to the dtype).
    y : (n_samples, n_outputs) array
    optimizer : tsrnn._kernels.optim.Optimizer or None
        Solver, hyperparameters and state. Its ``learning_rate`` and ``t`` are read at
        the start of each epoch and ``t`` is written back at its end (so the
        estimator's adaptive learning rate works unchanged); :meth:`sync_optimizer`
        copies the state arrays back. None allows :meth:`loss_and_grad` and
        :meth:`predict` only.
    loss : {'squared_error', 'absolute_error', 'huber'}
    alpha : float
        L2 penalty, as :func:`tsrnn.network.loss_and_grad`.
    clip_norm : float or None
        Clip the gradient norm of each batch, as :func:`optim.clip_grad_norm`.
    bptt_steps : int or None
        Truncated BPTT window; None for full BPTT.
    dropout : float
        Must be 0: dropout is not implemented on the GPU.
    X_val : array, optional
        Validation inputs kept on the device for :meth:`predict` without arguments.

    Attributes
    ----------
    batch_losses : ndarray
        Loss of each batch of the last epoch (L2 included).
    diverged_batch : int or None
        Index of the first batch of the last epoch whose loss or gradient norm was not
        finite; that batch and every later one were not applied.
    params_finite : bool
        Whether every parameter was finite at the end of the last epoch.
    t : int
        Optimiser steps taken.
    """

    def __init__(self, layout: ParameterLayout, params: np.ndarray, cell_id: int,
                 X: np.ndarray, y: np.ndarray, optimizer=None, *,
                 loss: str = "squared_error", alpha: float = 0.0,
                 clip_norm: float | None = None, bptt_steps: int | None = None,
                 dropout: float = 0.0, X_val: np.ndarray | None = None):
        if dropout > 0:
            raise ValueError(
                f"dropout={dropout} is not implemented for device='cuda'; set dropout=0 "
                "or train with device='cpu'."
            )
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}.")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {alpha}.")
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0 or None; got {clip_norm}.")
        if bptt_steps is not None and int(bptt_steps) < 1:
            raise ValueError(f"bptt_steps must be >= 1 or None; got {bptt_steps}.")
        if optimizer is not None and optimizer.solver not in ("adam", "sgd", "rmsprop"):
            raise ValueError(f"unknown solver {optimizer.solver!r}.")
        kc = self._kc = _kernels()
        params = _check_layout_params(layout, params)
        self.dtype = params.dtype
        X = _check_X(layout, X, self.dtype)
        y = np.ascontiguousarray(np.asarray(y, dtype=self.dtype))
        if y.ndim != 2 or y.shape != (X.shape[0], layout.n_outputs):
            raise ValueError(f"y must have shape ({X.shape[0]}, {layout.n_outputs}); got "
                             f"{y.shape}.")
        self.layout = layout
        self.cell_id = int(cell_id)
        self.loss = loss
        self.alpha = float(alpha)
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.n_samples, self.T, _ = X.shape
        self.K = self.T if bptt_steps is None else max(1, min(int(bptt_steps), self.T))
        self.optimizer = optimizer
        self.t = 0 if optimizer is None else int(optimizer.t)

        self._params = kc.to_device(params)
        self._grad = kc.device_zeros(layout.size, self.dtype)
        self._p = _param_views(layout, self._params)
        self._g = _param_views(layout, self._grad)
        self._mask = kc.to_device(layout.weight_mask().astype(np.uint8))
        self._X = kc.to_device(X)
        self._y = kc.to_device(y)
        self._X_val = None if X_val is None else kc.to_device(_check_X(layout, X_val,
                                                                       self.dtype, "X_val"))
        self._state = []
        if optimizer is not None:
            self._state = [kc.to_device(np.asarray(s, dtype=self.dtype)) for s in optimizer.state]
            if any(s.shape != (layout.size,) for s in self._state):
                raise ValueError("optimizer state does not match the parameter vector.")
        self._rpartial = kc.device_empty(kc.MAX_BLOCKS, np.float64)
        self._clip_scale = kc.device_zeros(1, np.float64)
        self._status = kc.device_zeros(2, np.int64)
        self._flags = kc.device_zeros(1, np.float64)
        self._checkpoints = {}
        self._ws = None
        self._partial = None
        self._predictor = _Predictor(kc, layout, self.cell_id, self.dtype)
        self.batch_losses = np.empty(0)
        self.diverged_batch = None
        self.params_finite = True

    # ------------------------------------------------------------ workspaces

    def _ensure_workspace(self, B: int):
        if self._ws is not None and self._ws.B_max >= B:
            return
        kc, lay = self._kc, self.layout
        self._ws = _Workspace(kc, lay, self.T, B, self.K, self.dtype, train=True)
        G, H, F, O = lay.gates, lay.hidden_size, lay.input_size, lay.n_outputs
        R = self.K * B
        need = max(kc.partial_size(R, G * H, max(F, H)), kc.partial_size(R, G * H, 1),
                   kc.partial_size(B, O, H), kc.partial_size(B, O, 1))
        self._partial = kc.device_empty(need, self.dtype)

    # ------------------------------------------------------------ one batch

    def _batch(self, index: int, idx_dev, B: int, losses, update: bool):
        kc, lay = self._kc, self.layout
        L, K = lay.num_layers, self.K
        v = self._ws.views(B)
        p, g = self._p, self._g
        kc.gather_time_major(self._X, idx_dev, v.x)
        kc.gather_rows(self._y, idx_dev, v.yb)
        c_starts, top_last = _forward_stack(kc, self.cell_id, lay, p, v)
        kc.loss_grad(kc.LOSS_CODES[self.loss], v.pred, v.yb, v.dpred, self._rpartial,
                     losses, index)
        # head
        kc.gemm_tn(v.dpred, top_last, g["head.weight"], self._partial)
        kc.colsum(v.dpred, g["head.bias"], self._partial)
        kc.gemm_nn(v.dpred, p["head.weight"], v.dlast)
        # layers, top down; the top layer's output gradient sits on its last step
        dh_steps = [v.zeros] * (K - 1) + [v.dlast]
        for k in range(L - 1, -1, -1):
            x_k = v.x if k == 0 else v.h_out[k - 1]
            dx = v.dh[k % 2] if k > 0 else None
            kc.layer_backward(
                self.cell_id, x_k, v.zeros, v.h_out[k], v.gates[k], v.extra[k], v.dzh[k],
                c_starts[k], p[f"weight_ih_l{k}"], p[f"weight_hh_l{k}"], dh_steps,
                v.dh_carry, v.dc_carry, g[f"weight_ih_l{k}"], g[f"weight_hh_l{k}"],
                g[f"bias_ih_l{k}"], g[f"bias_hh_l{k}"], dx, self._partial,
            )
            if dx is not None:
                dh_steps = [dx[s] for s in range(K)]
        if self.alpha > 0:
            kc.l2_penalty(self._params, self._mask, self.alpha, B, self._grad,
                          self._rpartial, losses, index)
        kc.grad_norm_status(self._grad, self.clip_norm, losses, index, self._status,
                            self._clip_scale, self._rpartial)
        if update:
            self._update()

    def _update(self):
        kc, opt = self._kc, self.optimizer
        self.t += 1
        if opt.solver == "adam":
            kc.adam_update(self._params, self._grad, self._state[0], self._state[1],
                           opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon, self.t,
                           self._clip_scale, self._status)
        elif opt.solver == "sgd":
            kc.sgd_update(self._params, self._grad, self._state[0], opt.learning_rate,
                          opt.momentum, opt.nesterov, self._clip_scale, self._status)
        else:
            kc.rmsprop_update(self._params, self._grad, self._state[0], opt.learning_rate,
                              opt.rho, opt.epsilon, self._clip_scale, self._status)

    def _indices(self, batches):
        arrays = []
        for i, b in enumerate(batches):
            b = np.asarray(b)
            if b.ndim != 1 or b.size == 0 or not np.issubdtype(b.dtype, np.integer):
                raise ValueError(f"batch {i} must be a non-empty 1-D integer index array; "
                                 f"got dtype {b.dtype}, shape {b.shape}.")
            if b.min() < 0 or b.max() >= self.n_samples:
                raise ValueError(f"batch {i} has indices outside [0, {self.n_samples}).")
            arrays.append(b.astype(np.int64))
        if not arrays:
            raise ValueError("batches is empty.")
        return arrays

    # ------------------------------------------------------------ public API

    def run_epoch(self, batches) -> float:
        """One pass over ``batches`` (index arrays into X): forward, BPTT, clipping,
        update, all on the device. Returns the mean loss over samples (each batch's
        loss weighted by its size, L2 included), as the CPU loop of the estimator.
        """
        if self.optimizer is None:
            raise ValueError("run_epoch needs an optimizer; none was given.")
        kc = self._kc
        arrays = self._indices(batches)
        sizes = np.array([a.size for a in arrays])
        self._ensure_workspace(int(sizes.max()))
        idx_dev = kc.to_device(np.concatenate(arrays))
        losses = kc.device_zeros(len(arrays), np.float64)
        self._status.copy_to_device(np.zeros(2, dtype=np.int64))
        self.t = int(self.optimizer.t)
        t_start = self.t
        offset = 0
        for i, B in enumerate(sizes):
            B = int(B)
            self._batch(i, idx_dev[offset:offset + B], B, losses, update=True)
            offset += B
        kc.count_nonfinite(self._params, self._rpartial, self._flags, 0)
        self.batch_losses = losses.copy_to_host()
        status = self._status.copy_to_host()
        self.params_finite = bool(self._flags.copy_to_host()[0] == 0)
        if status[0]:
            self.diverged_batch = int(status[1])
            self.t = t_start + self.diverged_batch
        else:
            self.diverged_batch = None
        self.optimizer.t = self.t
        return float(np.dot(self.batch_losses, sizes) / sizes.sum())

    def loss_and_grad(self, idx) -> tuple[float, np.ndarray]:
        """Loss and flat gradient (before clipping) of one batch, without an update.

        The device twin of :func:`tsrnn.network.loss_and_grad` (for tests and checks).
        """
        kc = self._kc
        (idx,) = self._indices([idx])
        self._ensure_workspace(idx.size)
        losses = kc.device_zeros(1, np.float64)
        self._batch(0, kc.to_device(idx), idx.size, losses, update=False)
        return float(losses.copy_to_host()[0]), self._grad.copy_to_host()

    def predict(self, X=None, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Predictions for X (numpy, copied to the device) or, without X, for X_val."""
        if X is None:
            if self._X_val is None:
                raise ValueError("predict() without X needs X_val at construction.")
            X_dev = self._X_val
        else:
            X_dev = self._kc.to_device(_check_X(self.layout, X, self.dtype))
        return self._predictor.run(self._p, X_dev, batch_size)

    def get_params(self, name: str | None = None) -> np.ndarray:
        """The current flat parameters, or checkpoint ``name``, as a numpy array."""
        if name is None:
            return self._params.copy_to_host()
        return self._checkpoints[name]["params"].copy_to_host()

    def set_params(self, flat: np.ndarray) -> None:
        """Overwrite the device parameters with ``flat``."""
        flat = np.ascontiguousarray(_check_layout_params(self.layout, flat), dtype=self.dtype)
        self._params.copy_to_device(flat)

    def checkpoint(self, name: str) -> None:
        """Copy the current parameters and optimiser state (arrays and step count) to
        device-side checkpoint ``name``."""
        saved = self._checkpoints.get(name)
        if saved is None:
            empty = self._kc.device_empty
            saved = self._checkpoints[name] = {
                "params": empty(self.layout.size, self.dtype),
                "state": [empty(self.layout.size, self.dtype) for _ in self._state],
            }
        saved["params"].copy_to_device(self._params)
        for dst, src in zip(saved["state"], self._state):
            dst.copy_to_device(src)
        saved["t"] = self.t

    def restore(self, name: str) -> None:
        """Make checkpoint ``name`` the current parameters and optimiser state."""
        saved = self._checkpoints[name]
        self._params.copy_to_device(saved["params"])
        for dst, src in zip(self._state, saved["state"]):
            dst.copy_to_device(src)
        self.t = saved["t"]
        if self.optimizer is not None:
            self.optimizer.t = self.t

    def optimizer_state(self) -> list[np.ndarray]:
        """The optimiser's state arrays as numpy (Adam: m, v; SGD: velocity; RMSprop: s)."""
        return [s.copy_to_host() for s in self._state]

    def sync_optimizer(self) -> None:
        """Write ``t`` and the state arrays back into the optimizer given at construction."""
        if self.optimizer is None:
            return
        self.optimizer.t = self.t
        self.optimizer.state = self.optimizer_state()


def loss_and_grad(layout: ParameterLayout, flat: np.ndarray, X: np.ndarray, y: np.ndarray,
                  *, loss: str = "squared_error", alpha: float = 0.0,
                  cell_id: int | None = None, bptt_steps: int | None = None,
                  ) -> tuple[float, np.ndarray]:
    """One minibatch's loss and flat gradient on the GPU, as
    :func:`tsrnn.network.loss_and_grad` (no dropout). Copies everything; for tests."""
    if cell_id is None:
        cell_id = cell_code(layout.cell)
    trainer = CudaTrainer(layout, flat, cell_id, X, y, None, loss=loss, alpha=alpha,
                          bptt_steps=bptt_steps)
    return trainer.loss_and_grad(np.arange(np.asarray(X).shape[0]))
