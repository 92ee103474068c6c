"""Parity with PyTorch: the same weights in torch.nn.RNN/LSTM/GRU(batch_first=True) plus
an nn.Linear head on the last step give the same predictions and the same gradient of
every parameter, with weights moved in both directions by the layout's names.

Tolerance, per array ``a`` (ours) against ``b`` (torch)::

    max|a - b| <= tol * max(max|b|, 1e-3)

i.e. relative to the array's largest magnitude (floored so near-zero arrays compare
absolutely); tol = 1e-5 in float32 and 1e-10 in float64.
"""

import numpy as np
import pytest

from tsrnn import network

torch = pytest.importorskip("torch")

CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
CELL_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]
TOL = {np.float32: 1e-5, np.float64: 1e-10}
B, T, F, H, O = 5, 9, 3, 6, 2


class TorchNet(torch.nn.Module):
    def __init__(self, cell, nonlinearity, num_layers, dtype):
        super().__init__()
        kw = dict(input_size=F, hidden_size=H, num_layers=num_layers, batch_first=True)
        if cell == "rnn":
            self.rnn = torch.nn.RNN(nonlinearity=nonlinearity, **kw)
        else:
            self.rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](**kw)
        self.head = torch.nn.Linear(H, O)
        self.to(dtype)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])

    def named(self):
        """Parameters by tsrnn's layout names ('weight_ih_l0', ..., 'head.weight')."""
        out = {name: p for name, p in self.rnn.named_parameters()}
        out.update({f"head.{name}": p for name, p in self.head.named_parameters()})
        return out


def assert_close(a, b, tol, what):
    b = np.asarray(b)
    scale = max(float(np.max(np.abs(b))), 1e-3)
    err = float(np.max(np.abs(a - b)))
    assert err <= tol * scale, f"{what}: max abs diff {err:.3e} > {tol:.0e} * {scale:.3e}"


def compare(cell, nonlinearity, num_layers, dtype, direction):
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    torch.manual_seed(0)
    net = TorchNet(cell, nonlinearity, num_layers, tdtype)
    layout = network.ParameterLayout(cell, F, H, num_layers, O)
    named = net.named()
    assert sorted(named) == sorted(n for n, _ in layout.shapes())
    if direction == "torch_to_tsrnn":
        flat = np.zeros(layout.size, dtype=dtype)
        views = layout.views(flat)
        for name, p in named.items():
            views[name][...] = p.detach().numpy()
    else:
        flat = layout.init(np.random.default_rng(1), dtype=dtype)
        with torch.no_grad():
            for name, view in layout.views(flat).items():
                assert tuple(named[name].shape) == view.shape
                named[name].copy_(torch.from_numpy(view.copy()))
    rng = np.random.default_rng(2)
    X = rng.standard_normal((B, T, F)).astype(dtype)
    y = rng.standard_normal((B, O)).astype(dtype)
    code = network.cell_code(cell, nonlinearity)
    tol = TOL[dtype]

    pred = network.predict(layout, flat, X, cell_id=code)
    value, grad = network.loss_and_grad(layout, flat, X, y, cell_id=code)
    t_pred = net(torch.from_numpy(X))
    # tsrnn's squared_error is half the mean squared error
    t_loss = 0.5 * torch.nn.functional.mse_loss(t_pred, torch.from_numpy(y))
    t_loss.backward()
    assert_close(pred, t_pred.detach().numpy(), tol, "predictions")
    assert value == pytest.approx(float(t_loss.detach()), rel=tol)
    grads = layout.views(grad)
    for name, p in named.items():
        assert_close(grads[name], p.grad.numpy(), tol, f"grad {name}")


@pytest.mark.parametrize("direction", ["torch_to_tsrnn", "tsrnn_to_torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(("cell", "nl"), CELLS, ids=CELL_IDS)
def test_parity_with_torch(cell, nl, num_layers, dtype, direction):
    compare(cell, nl, num_layers, dtype, direction)
