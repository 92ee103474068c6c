"""Slow, obvious NumPy references for the recurrent cells (batch-first, PyTorch's equations)."""

import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def reference_layer(cell, x, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
    """Hidden states (B, T, H) of one layer started from zero states; x is (B, T, F)."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h = np.zeros((B, H), dtype=x.dtype)
    c = np.zeros((B, H), dtype=x.dtype)
    out = np.empty((B, T, H), dtype=x.dtype)
    for t in range(T):
        gi = x[:, t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        if cell == "rnn":
            pre = gi + gh
            h = np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0)
        elif cell == "lstm":
            i, f, g, o = np.split(gi + gh, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        elif cell == "gru":
            ir, iz, in_ = np.split(gi, 3, axis=1)
            hr, hz, hn = np.split(gh, 3, axis=1)
            r = _sigmoid(ir + hr)
            z = _sigmoid(iz + hz)
            n = np.tanh(in_ + r * hn)
            h = (1 - z) * n + z * h
        out[:, t] = h
    return out


def reference_predict(params, cell, num_layers, X, nonlinearity="tanh"):
    """Stacked layers + linear head on the last step, from a {name: array} dict."""
    x = X
    for k in range(num_layers):
        x = reference_layer(cell, x, params[f"weight_ih_l{k}"], params[f"weight_hh_l{k}"],
                            params[f"bias_ih_l{k}"], params[f"bias_hh_l{k}"], nonlinearity)
    return x[:, -1] @ params["head.weight"].T + params["head.bias"]
