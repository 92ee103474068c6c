"""Parameter updates on flat vectors: SGD (momentum, Nesterov), Adam, RMSprop, clipping.

Every update works in place on a flat parameter vector ``params``, its gradient
``grad`` and the optimiser's state arrays (same shape and dtype). L2 weight decay
is part of the gradient (see :func:`tsrnn.network.loss_and_grad`), as in
scikit-learn's MLP. Equations follow ``torch.optim`` (SGD with ``dampening=0``,
Adam without amsgrad, RMSprop without centring).
"""

import math

import numpy as np
from numba import njit


@njit(cache=True)
def grad_norm(grad):
    """Euclidean norm of ``grad``, accumulated in float64."""
    total = 0.0
    for i in range(grad.shape[0]):
        g = float(grad[i])
        total += g * g
    return math.sqrt(total)


@njit(cache=True)
def clip_grad_norm(grad, max_norm):
    """Scale ``grad`` in place so that its norm is at most ``max_norm``.

    Returns the norm before clipping (non-finite if the gradient is).
    """
    norm = grad_norm(grad)
    if norm > max_norm and math.isfinite(norm):
        scale = max_norm / (norm + 1e-6)
        for i in range(grad.shape[0]):
            grad[i] *= scale
    return norm


@njit(cache=True)
def sgd_step(params, grad, velocity, lr, momentum, nesterov):
    """SGD with momentum: ``v = momentum * v + g``; ``p -= lr * (g + momentum * v)``
    with Nesterov, else ``p -= lr * v``.
    """
    for i in range(params.shape[0]):
        g = grad[i]
        if momentum != 0.0:
            v = momentum * velocity[i] + g
            velocity[i] = v
            if nesterov:
                g = g + momentum * v
            else:
                g = v
        params[i] -= lr * g


@njit(cache=True)
def adam_step(params, grad, m, v, lr, beta_1, beta_2, epsilon, t):
    """Adam step number ``t`` (1-based), with bias correction."""
    bc1 = 1.0 - beta_1 ** t
    bc2 = 1.0 - beta_2 ** t
    step = lr / bc1
    for i in range(params.shape[0]):
        g = grad[i]
        mi = beta_1 * m[i] + (1.0 - beta_1) * g
        vi = beta_2 * v[i] + (1.0 - beta_2) * g * g
        m[i] = mi
        v[i] = vi
        params[i] -= step * mi / (math.sqrt(vi / bc2) + epsilon)


@njit(cache=True)
def rmsprop_step(params, grad, square_avg, lr, rho, epsilon):
    """RMSprop: ``s = rho * s + (1 - rho) g^2``; ``p -= lr * g / (sqrt(s) + eps)``."""
    for i in range(params.shape[0]):
        g = grad[i]
        s = rho * square_avg[i] + (1.0 - rho) * g * g
        square_avg[i] = s
        params[i] -= lr * g / (math.sqrt(s) + epsilon)


class Optimizer:
    """Holds an optimiser's state arrays and applies its update to a flat vector.

    Parameters
    ----------
    solver : {'adam', 'sgd', 'rmsprop'}
    size : int
        Length of the flat parameter vector.
    dtype : numpy dtype
    learning_rate : float
    momentum, nesterov : for 'sgd'
    beta_1, beta_2, epsilon : for 'adam' (``beta_2`` is RMSprop's decay ``rho``)
    """

    def __init__(self, solver, size, dtype, *, learning_rate, momentum=0.9,
                 nesterov=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8, rho=0.99):
        self.solver = solver
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.rho = float(rho)
        self.t = 0
        self.state = [np.zeros(size, dtype=dtype) for _ in range(2 if solver == "adam" else 1)]

    def step(self, params, grad):
        """Apply one update in place."""
        self.t += 1
        if self.solver == "adam":
            adam_step(params, grad, self.state[0], self.state[1], self.learning_rate,
                      self.beta_1, self.beta_2, self.epsilon, self.t)
        elif self.solver == "sgd":
            sgd_step(params, grad, self.state[0], self.learning_rate, self.momentum,
                     self.nesterov)
        elif self.solver == "rmsprop":
            rmsprop_step(params, grad, self.state[0], self.learning_rate, self.rho,
                         self.epsilon)
        else:
            raise ValueError(f"unknown solver {self.solver!r}")

    def get_state(self) -> dict:
        """Plain-value snapshot (arrays copied) for restoring or pickling."""
        return {"t": self.t, "state": [s.copy() for s in self.state]}

    def set_state(self, snapshot: dict) -> None:
        self.t = int(snapshot["t"])
        self.state = [s.copy() for s in snapshot["state"]]
