"""The network: parameter layout and initialisation, layer stacking, linear head, loss.

One flat parameter vector holds every weight; :class:`ParameterLayout` gives named
views of it with PyTorch's names and shapes (``weight_ih_l0``, ..., ``head.weight``).
:func:`predict` and :func:`loss_and_grad` stack the recurrent layers of
:mod:`tsrnn._kernels.cpu`, put a linear head on the last time step of the top layer
and return predictions, or the loss and the flat gradient. Inputs are batch-first
``(B, T, F)`` here and time-major inside the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np

from tsrnn._kernels import cpu

CELLS = ("rnn", "lstm", "gru")
LOSSES = ("squared_error", "absolute_error", "huber")
HUBER_DELTA = 1.0


def cell_code(cell: str, nonlinearity: str = "tanh") -> int:
    """Kernel code of a cell name ('rnn' with its nonlinearity, 'lstm', 'gru')."""
    if cell == "rnn":
        return cpu.RNN_RELU if nonlinearity == "relu" else cpu.RNN_TANH
    return cpu.CELL_CODES[cell]


@dataclass(frozen=True)
class ParameterLayout:
    """Names, shapes and offsets of every parameter in the flat vector.

    Parameters
    ----------
    cell : {'rnn', 'lstm', 'gru'}
    input_size : int
        Number of input features F.
    hidden_size : int
        Hidden units H per layer.
    num_layers : int
        Stacked recurrent layers.
    n_outputs : int
        Outputs of the linear head.
    """

    cell: str
    input_size: int
    hidden_size: int
    num_layers: int
    n_outputs: int

    @property
    def gates(self) -> int:
        return {"rnn": 1, "lstm": 4, "gru": 3}[self.cell]

    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every parameter in storage order, PyTorch's names."""
        G, H = self.gates, self.hidden_size
        out = []
        for k in range(self.num_layers):
            F = self.input_size if k == 0 else H
            out += [
                (f"weight_ih_l{k}", (G * H, F)),
                (f"weight_hh_l{k}", (G * H, H)),
                (f"bias_ih_l{k}", (G * H,)),
                (f"bias_hh_l{k}", (G * H,)),
            ]
        out += [("head.weight", (self.n_outputs, H)), ("head.bias", (self.n_outputs,))]
        return out

    @cached_property
    def _slices(self) -> tuple[tuple[str, tuple[int, ...], int, int], ...]:
        """(name, shape, start, stop) in the flat vector, computed once per layout."""
        out, offset = [], 0
        for name, shape in self.shapes():
            n = int(np.prod(shape))
            out.append((name, shape, offset, offset + n))
            offset += n
        return tuple(out)

    @property
    def size(self) -> int:
        return self._slices[-1][3]

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named views into ``flat`` (writing a view writes the flat vector)."""
        if flat.shape != (self.size,):
            raise ValueError(
                f"flat parameter vector must have shape ({self.size},); got {flat.shape}."
            )
        return {name: flat[start:stop].reshape(shape)
                for name, shape, start, stop in self._slices}

    def weight_mask(self) -> np.ndarray:
        """Boolean mask of the flat vector: True on weights (L2 applies), False on biases."""
        mask = np.zeros(self.size, dtype=bool)
        offset = 0
        for name, shape in self.shapes():
            n = int(np.prod(shape))
            mask[offset:offset + n] = "weight" in name
            offset += n
        return mask

    def init(self, rng: np.random.Generator, dtype=np.float64) -> np.ndarray:
        """A flat vector initialised as PyTorch does.

        Recurrent weights and biases ~ U(-1/sqrt(H), 1/sqrt(H)) (``torch.nn.RNN``);
        the head ~ U(-1/sqrt(H), 1/sqrt(H)) (``torch.nn.Linear``, fan-in H).
        """
        bound = 1.0 / np.sqrt(self.hidden_size)
        return rng.uniform(-bound, bound, size=self.size).astype(dtype)


#: Fewest rows in a chunk of the inference kernel.
MIN_INFER_CHUNK_ROWS = 32


def _n_chunks(batch_size: int, hidden_size: int) -> int:
    """Batch chunks of the inference kernel, at least MIN_INFER_CHUNK_ROWS rows each.
    Results do not depend on it (so it may follow the thread count); a batch of one
    chunk runs without a parallel region.

    Two per thread below H = 256 (scheduled dynamically, a thread slowed by another
    process on a shared machine hands work over); one per thread from H = 256, where
    BLAS gains from wider products. At least 32 rows: the products run along the rows
    (W1: 381k samples/s in chunks of 32 rows, 341k in chunks of 16). Training chunks
    are fixed by the shapes alone (:func:`tsrnn._kernels.cpu.train_chunk_rows`).
    """
    per_thread = 2 if hidden_size < 256 else 1
    return max(1, min(per_thread * numba.get_num_threads(),
                      batch_size // MIN_INFER_CHUNK_ROWS))


def _to_time_major(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(X.transpose(1, 0, 2))


def _layers(p, layout):
    return [(p[f"weight_ih_l{k}"], p[f"weight_hh_l{k}"], p[f"bias_ih_l{k}"],
             p[f"bias_hh_l{k}"]) for k in range(layout.num_layers)]


def _dropout_mask(rng, shape, dropout, dtype):
    """Inverted dropout: keep with probability 1 - dropout, scaled at training time."""
    return (rng.random(shape) >= dropout).astype(dtype) / dtype.type(1 - dropout)


#: The product matrices of the last model predicted with: (key, copy of its flat
#: parameters, matrices). Reused while the parameters are equal (a compare costs
#: less than building them: a third of a one-window W1 predict).
_LAST_MATRICES: list = [None]


def _product_matrices(layout, flat, cell_id, layers):
    key = (layout, cell_id, flat.dtype)
    entry = _LAST_MATRICES[0]
    if entry is not None and entry[0] == key and np.array_equal(entry[1], flat):
        return entry[2]
    matrices = cpu.product_matrices(cell_id, layers, flat.dtype)
    _LAST_MATRICES[0] = (key, flat.copy(), matrices)  # one assignment: thread-safe
    return matrices


def predict(layout: ParameterLayout, flat: np.ndarray, X: np.ndarray,
            cell_id: int | None = None, batch_size: int = 1024) -> np.ndarray:
    """Predictions (B, n_outputs) for batch-first inputs ``X`` (B, T, F).

    Batches of ``batch_size`` samples run one after another through
    :func:`tsrnn._kernels.cpu.stack_predict`: one kernel call for all of them, every
    layer and the head fused per chunk of a batch, nothing cached for a backward. A
    row's prediction is bit-identical whatever batch it is in, its position, the
    batch size and the thread count (every CPU, every OpenBLAS core type).
    """
    if cell_id is None:
        cell_id = cell_code(layout.cell)
    p = layout.views(flat)
    batch = max(1, min(int(batch_size), X.shape[0]))
    layers = _layers(p, layout)
    return cpu.stack_predict(cell_id, X, layers, p["head.weight"], p["head.bias"], batch,
                             n_chunks=_n_chunks(batch, layout.hidden_size),
                             matrices=_product_matrices(layout, flat, cell_id, layers))


def loss_value_and_grad(loss: str, pred: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss over samples and outputs, and its gradient with respect to ``pred``.

    'squared_error' is half the mean squared error (as scikit-learn's MLP),
    'absolute_error' the mean absolute error, 'huber' the mean Huber loss with
    delta 1 (on standardised targets).
    """
    diff = pred - y
    n = diff.size
    if loss == "squared_error":
        return float(0.5 * np.mean(diff * diff)), diff / n
    if loss == "absolute_error":
        return float(np.mean(np.abs(diff))), np.sign(diff) / n
    if loss == "huber":
        a = np.abs(diff)
        quad = a <= HUBER_DELTA
        value = np.where(quad, 0.5 * diff * diff, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))
        grad = np.where(quad, diff, HUBER_DELTA * np.sign(diff))
        return float(np.mean(value)), grad / n
    raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}.")


def loss_and_grad(layout: ParameterLayout, flat: np.ndarray, X: np.ndarray, y: np.ndarray,
                  *, loss: str = "squared_error", alpha: float = 0.0,
                  cell_id: int | None = None, bptt_steps: int | None = None,
                  dropout: float = 0.0, rng: np.random.Generator | None = None,
                  ) -> tuple[float, np.ndarray]:
    """Loss of one minibatch and its gradient with respect to the flat parameters.

    Parameters
    ----------
    layout : ParameterLayout
    flat : (P,) array
        Parameters, float32 or float64 (the dtype of ``X`` and ``y``).
    X : (B, T, F) array
    y : (B, n_outputs) array
    loss : {'squared_error', 'absolute_error', 'huber'}
    alpha : float
        L2 penalty on the weights (not biases): ``0.5 * alpha * ||W||^2 / B`` is
        added to the loss, as scikit-learn's MLP does.
    cell_id : int, optional
        Kernel cell code (for 'rnn' it carries the nonlinearity).
    bptt_steps : int, optional
        Truncated BPTT window; None for full BPTT.
    dropout : float
        Dropout probability between layers and before the head.
    rng : numpy Generator
        Needed when ``dropout > 0``.

    Returns
    -------
    loss : float
    grad : (P,) array, dtype of ``flat``
    """
    if cell_id is None:
        cell_id = cell_code(layout.cell)
    with cpu.kernel_context():
        return _loss_and_grad(layout, flat, X, y, loss=loss, alpha=alpha, cell_id=cell_id,
                              bptt_steps=bptt_steps, dropout=dropout, rng=rng)


def _loss_and_grad(layout, flat, X, y, *, loss, alpha, cell_id, bptt_steps, dropout, rng):
    p = layout.views(flat)
    x = _to_time_major(X)
    T, B, _ = x.shape
    H, L = layout.hidden_size, layout.num_layers
    dtype = X.dtype
    masks = None
    if dropout > 0 and L > 1:  # between layers, then on the head's input
        masks = np.stack([_dropout_mask(rng, (T, B, H), dropout, dtype)
                          for _ in range(L - 1)])
    _, cache = cpu.stack_forward(cell_id, x, _layers(p, layout), window=bptt_steps,
                                 masks=masks)
    top_last = cache.h_top
    head_mask = _dropout_mask(rng, (B, H), dropout, dtype) if dropout > 0 else None
    if head_mask is not None:
        top_last = top_last * head_mask
    pred = top_last @ p["head.weight"].T + p["head.bias"]
    value, dpred = loss_value_and_grad(loss, pred, y)
    dpred = dpred.astype(dtype, copy=False)
    grad = np.zeros_like(flat)
    g = layout.views(grad)
    g["head.weight"][...] = dpred.T @ top_last
    g["head.bias"][...] = dpred.sum(axis=0)
    dlast = dpred @ p["head.weight"]
    if head_mask is not None:
        dlast *= head_mask
    grads, _, _, _ = cpu.stack_backward(cell_id, cache, dlast[None])
    for k, (dw_ih, dw_hh, db_ih, db_hh) in enumerate(grads):
        g[f"weight_ih_l{k}"][...] = dw_ih
        g[f"weight_hh_l{k}"][...] = dw_hh
        g[f"bias_ih_l{k}"][...] = db_ih
        g[f"bias_hh_l{k}"][...] = db_hh
    if alpha > 0:
        mask = layout.weight_mask()
        value += 0.5 * alpha * float(np.sum(flat[mask].astype(np.float64) ** 2)) / B
        grad[mask] += (alpha / B) * flat[mask]
    return value, grad
