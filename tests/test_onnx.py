"""ONNX export (tsrnn.export.to_onnx): onnxruntime reproduces RNNRegressor.predict.

Every cell, 1 and 2 layers, 2-D and 3-D input, 1 and 3 outputs, standardisation on and
off, float32 and float64; batch sizes 1 and 37; other sequence lengths than fit's. The
models are fitted (so their scalers are real) and then given larger random weights, so
that the predictions spread over a good part of the output scale: a wrong gate order, a
missing scaling or a wrong head would show far above the tolerance (checked below by
breaking the gate order on purpose).
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import stat
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tsrnn import RNNRegressor, export  # noqa: E402
from tsrnn.export import to_onnx  # noqa: E402

CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
CELL_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]
HIDDEN = 6
N_FIT, T_FIT = 48, 7
#: Per-feature offsets and spreads, far from 0 and 1 so the input scaling matters.
X_MEAN = np.array([3.0, -2.0, 1.0])
X_SPREAD = np.array([2.0, 0.5, 1.5])
Y_MEAN, Y_SPREAD = 10.0, 4.0
#: float32 agreement with predict, relative to the output scale (the issue's 1e-5).
FLOAT32_RTOL = 1e-5
#: float64 agreement of the all-double graph (onnx's reference evaluator).
FLOAT64_RTOL = 1e-12

MATRIX = list(itertools.product(CELLS, (1, 2), (2, 3), (1, 3), (True, False)))
MATRIX_IDS = [f"{CELL_IDS[CELLS.index(c)]}-L{L}-{nd}d-O{O}-{'std' if s else 'raw'}"
              for c, L, nd, O, s in MATRIX]


def _inputs(ndim: int, n: int, T: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = X_MEAN + X_SPREAD * rng.standard_normal((n, T, 3))
    return X[:, :, 0].copy() if ndim == 2 else X


def _targets(n: int, n_outputs: int, seed: int) -> np.ndarray:
    y = Y_MEAN + Y_SPREAD * np.random.default_rng(seed).standard_normal((n, n_outputs))
    return y[:, 0] if n_outputs == 1 else y


@functools.lru_cache(maxsize=None)
def _model(cell, nonlinearity, num_layers, ndim, n_outputs, standardize, dtype):
    """A fitted model with large random weights; fresh for every configuration."""
    X, y = _inputs(ndim, N_FIT, T_FIT, 0), _targets(N_FIT, n_outputs, 1)
    model = RNNRegressor(cell=cell, nonlinearity=nonlinearity, hidden_size=HIDDEN,
                         num_layers=num_layers, max_iter=1, batch_size=16,
                         standardize=standardize, dtype=dtype, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch on purpose
        model.fit(X, y)
    rng = np.random.default_rng(2)
    bound = 0.8 if cell == "rnn" else 1.5
    model.load_state_dict({
        name: rng.uniform(-1.0, 1.0, size=value.shape) * (1.0 if name.startswith("head")
                                                           else bound)
        for name, value in model.state_dict().items()})
    # the test's own premise: predictions spread over the output scale
    spread = np.std(model.predict(_inputs(ndim, 64, T_FIT, 3)).reshape(64, -1), axis=0)
    assert np.all(spread > 0.01 * Y_SPREAD), spread
    return model


def _session(source) -> "ort.InferenceSession":
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # shared machines; threads do not change results
    options.inter_op_num_threads = 1
    if isinstance(source, onnx.ModelProto):
        source = source.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest |got - expected| over the scale of the targets (Y_SPREAD)."""
    return float(np.max(np.abs(got - expected)) / Y_SPREAD)


def _check_against_predict(model, run, ndim, rtol, lengths=None):
    lengths = lengths or ([T_FIT] if ndim == 2 else [T_FIT, 13, 3])
    for n in (1, 37):
        for T in lengths:
            X = _inputs(ndim, n, T, seed=10 + n + T)
            expected = model.predict(X)
            got = run(X)
            assert got.dtype == np.float64
            assert got.shape == expected.shape, (got.shape, expected.shape)
            err = _relative_error(got, expected)
            assert err <= rtol, f"batch {n}, {T} steps: relative error {err:.3g} > {rtol}"


# --------------------------------------------------------------------------
# onnxruntime against predict
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell_nl,num_layers,ndim,n_outputs,standardize", MATRIX,
                         ids=MATRIX_IDS)
def test_onnxruntime_reproduces_predict(cell_nl, num_layers, ndim, n_outputs,
                                        standardize, dtype):
    model = _model(*cell_nl, num_layers, ndim, n_outputs, standardize, dtype)
    proto = to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    session = _session(proto)
    _check_against_predict(model, lambda X: session.run(None, {"X": X})[0], ndim,
                           FLOAT32_RTOL)


@pytest.mark.parametrize("cell_nl,num_layers,ndim,n_outputs,standardize", MATRIX,
                         ids=MATRIX_IDS)
def test_float64_graph_matches_predict_to_double_rounding(cell_nl, num_layers, ndim,
                                                          n_outputs, standardize):
    """recurrent_dtype='float64': double throughout, run by onnx's reference evaluator
    (onnxruntime's CPU provider has no double LSTM/GRU/RNN kernels)."""
    from onnx.reference import ReferenceEvaluator

    model = _model(*cell_nl, num_layers, ndim, n_outputs, standardize, "float64")
    proto = to_onnx(model, recurrent_dtype="float64")
    onnx.checker.check_model(proto, full_check=True)
    assert {init.data_type for init in proto.graph.initializer} <= {
        onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64}
    assert all(a.i == onnx.TensorProto.DOUBLE for n in proto.graph.node if n.op_type == "Cast"
               for a in n.attribute)
    evaluator = ReferenceEvaluator(proto, new_ops=_reference_relu_rnn())
    _check_against_predict(model, lambda X: evaluator.run(None, {"X": X})[0], ndim,
                           FLOAT64_RTOL, lengths=[T_FIT] if ndim == 2 else [T_FIT, 13])


def _reference_relu_rnn() -> list:
    """onnx's reference RNN knows Tanh and Affine only; add Relu (the spec's
    ``Relu(x) = max(0, x)``)."""
    try:
        from onnx.reference.ops.op_rnn import CommonRNN
    except ImportError:  # pragma: no cover - onnx moved it
        pytest.skip("onnx.reference.ops.op_rnn.CommonRNN not found")

    class RNN(CommonRNN):
        op_domain = ""

        def choose_act(self, name, alpha, beta):
            if name in ("Relu", "relu"):
                return lambda x: np.maximum(x, 0)
            return super().choose_act(name, alpha, beta)

    return [RNN]


@pytest.mark.parametrize("cell,order_name,wrong", [
    ("lstm", "LSTM_GATE_ORDER", (0, 1, 2, 3)),  # PyTorch's order left as it is
    ("lstm", "LSTM_GATE_ORDER", (0, 2, 1, 3)),  # i, g, f, o
    ("gru", "GRU_GATE_ORDER", (0, 1, 2)),       # r and z not swapped
])
def test_a_wrong_gate_order_is_caught(monkeypatch, cell, order_name, wrong):
    """The comparison above has teeth: a gate order that is off fails it by far."""
    model = _model(cell, "tanh", 1, 3, 1, True, "float32")
    monkeypatch.setattr(export, order_name, wrong)
    session = _session(to_onnx(model))
    X = _inputs(3, 37, T_FIT, 5)
    assert _relative_error(session.run(None, {"X": X})[0], model.predict(X)) > 1e-2


def test_output_scaling_is_in_the_graph():
    """With standardize=True the raw network output is far from predict: the graph's
    scaling nodes are what make it agree."""
    model = _model("gru", "tanh", 1, 3, 3, True, "float32")
    assert not np.allclose(model._y_mean, 0) and not np.allclose(model._x_mean, 0)
    ops = [n.op_type for n in to_onnx(model).graph.node]
    assert ops[:2] == ["Sub", "Div"] and ops[-3:-1] == ["Mul", "Add"], ops
    raw = to_onnx(_model("gru", "tanh", 1, 3, 3, False, "float32"))
    assert not {"Sub", "Div", "Mul", "Add"} & {n.op_type for n in raw.graph.node}


# --------------------------------------------------------------------------
# the graph
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cell_nl", CELLS, ids=CELL_IDS)
def test_graph_uses_onnx_recurrent_operators(cell_nl):
    cell, nonlinearity = cell_nl
    proto = to_onnx(_model(cell, nonlinearity, 2, 3, 1, True, "float32"))
    nodes = proto.graph.node
    op = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
    recurrent = [n for n in nodes if n.op_type == op]
    assert len(recurrent) == 2
    assert not {"Loop", "Scan", "MatMul"} & {n.op_type for n in nodes}
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
             for n in recurrent]
    for a in attrs:
        assert a["hidden_size"] == HIDDEN
        if cell == "gru":
            assert a["linear_before_reset"] == 1
        if cell == "rnn":
            assert a["activations"] == [nonlinearity.capitalize().encode()]
    assert [n.op_type for n in nodes].count("Gemm") == 1


def test_input_and_output_shapes():
    def dims(value_info):
        return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]

    proto3 = to_onnx(_model("lstm", "tanh", 1, 3, 3, True, "float32"))
    assert dims(proto3.graph.input[0]) == ["batch", "time", 3]
    assert dims(proto3.graph.output[0]) == ["batch", 3]
    proto2 = to_onnx(_model("lstm", "tanh", 1, 2, 1, True, "float32"))
    assert dims(proto2.graph.input[0]) == ["batch", T_FIT]
    assert dims(proto2.graph.output[0]) == ["batch"]
    for proto in (proto2, proto3):
        assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
        assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def test_n_timesteps_fixes_the_sequence_length():
    model = _model("gru", "tanh", 1, 3, 1, True, "float32")
    proto = to_onnx(model, n_timesteps=9)
    assert proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 9
    session = _session(proto)
    X = _inputs(3, 5, 9, 0)
    assert _relative_error(session.run(None, {"X": X})[0], model.predict(X)) <= FLOAT32_RTOL
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"X": _inputs(3, 5, 8, 0)})


def test_n_timesteps_of_a_2d_model_must_be_the_fitted_one():
    model = _model("gru", "tanh", 1, 2, 1, True, "float32")
    assert to_onnx(model, n_timesteps=T_FIT).graph.input[0].type.tensor_type.shape.dim[
        1].dim_value == T_FIT
    with pytest.raises(ValueError, match=f"fitted on 2-D X with {T_FIT} time steps"):
        to_onnx(model, n_timesteps=T_FIT + 1)


def test_metadata():
    model = _model("rnn", "relu", 2, 3, 3, True, "float64")
    proto = to_onnx(model)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["cell"] == "rnn" and props["nonlinearity"] == "relu"
    assert props["num_layers"] == "2" and props["hidden_size"] == str(HIDDEN)
    assert props["n_outputs"] == "3" and props["n_features"] == "3"
    assert props["dtype"] == "float64" and props["recurrent_dtype"] == "float32"
    assert proto.producer_name == "tsrnn"
    assert proto.opset_import[0].version == export.DEFAULT_OPSET


@pytest.mark.parametrize("opset", [export.MIN_OPSET, 20])
def test_other_opsets_run(opset):
    model = _model("lstm", "tanh", 2, 3, 1, True, "float32")
    proto = to_onnx(model, opset=opset)
    assert proto.opset_import[0].version == opset
    X = _inputs(3, 37, T_FIT, 4)
    got = _session(proto).run(None, {"X": X})[0]
    assert _relative_error(got, model.predict(X)) <= FLOAT32_RTOL


def test_newest_opset_is_valid():
    newest = onnx.defs.onnx_opset_version()
    proto = to_onnx(_model("gru", "tanh", 1, 3, 1, True, "float32"), opset=newest)
    onnx.checker.check_model(proto, full_check=True)


@pytest.mark.parametrize("cell,nonlinearity", CELLS, ids=CELL_IDS)
def test_weights_from_pytorch_give_pytorchs_predictions(cell, nonlinearity):
    """Independent of tsrnn's kernels: a torch network, its weights loaded into an
    unfitted RNNRegressor (no scaling, dynamic length), exported, run by onnxruntime."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    F, H, L, O = 3, 5, 2, 2
    rnn_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    rnn = rnn_cls(F, H, num_layers=L, batch_first=True, **kwargs).double()
    head = torch.nn.Linear(H, O).double()
    with torch.no_grad():
        for p in list(rnn.parameters()):
            p.uniform_(-0.9, 0.9)
    state = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    state.update({f"head.{k}": v.detach().numpy() for k, v in head.state_dict().items()})
    model = RNNRegressor(cell=cell, nonlinearity=nonlinearity, hidden_size=H,
                         num_layers=L).load_state_dict(state)
    X = np.random.default_rng(0).standard_normal((37, 11, F))
    with torch.no_grad():
        expected = head(rnn(torch.from_numpy(X))[0][:, -1]).numpy()
    got = _session(to_onnx(model)).run(None, {"X": X})[0]
    assert np.max(np.abs(got - expected)) / np.std(expected) <= FLOAT32_RTOL * 10


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


def test_unfitted_model_raises_not_fitted():
    with pytest.raises(NotFittedError):
        to_onnx(RNNRegressor())


def test_not_a_regressor_raises_type_error():
    from sklearn.linear_model import Ridge

    with pytest.raises(TypeError, match="RNNRegressor; got Ridge"):
        to_onnx(Ridge())


@pytest.mark.parametrize("opset,exc,match", [
    (13, ValueError, r"opset must be in \[14, "),
    (10_000, ValueError, "opset must be in"),
    ("17", TypeError, "opset must be an int; got str"),
    (True, TypeError, "opset must be an int; got bool"),
])
def test_bad_opset(opset, exc, match):
    with pytest.raises(exc, match=match):
        to_onnx(_model("lstm", "tanh", 1, 3, 1, True, "float32"), opset=opset)


@pytest.mark.parametrize("n_timesteps,exc,match", [
    (0, ValueError, "n_timesteps must be at least 1; got 0"),
    (2.5, TypeError, "n_timesteps must be an int or None; got float"),
])
def test_bad_n_timesteps(n_timesteps, exc, match):
    with pytest.raises(exc, match=match):
        to_onnx(_model("lstm", "tanh", 1, 3, 1, True, "float32"), n_timesteps=n_timesteps)


def test_bad_recurrent_dtype():
    with pytest.raises(ValueError, match="recurrent_dtype must be 'float32' or 'float64'"):
        to_onnx(_model("lstm", "tanh", 1, 3, 1, True, "float64"), recurrent_dtype="float16")
    with pytest.raises(ValueError, match="needs a dtype='float64' model"):
        to_onnx(_model("lstm", "tanh", 1, 3, 1, True, "float32"), recurrent_dtype="float64")


def test_refuses_a_loss_it_does_not_know():
    model = copy.deepcopy(_model("lstm", "tanh", 1, 3, 1, True, "float32"))
    model.loss = "quantile"  # e.g. a loss whose predictions are rearranged
    with pytest.raises(ValueError, match="loss='quantile'"):
        to_onnx(model)


def test_refuses_a_parameter_it_does_not_know_unless_default(monkeypatch):
    model = copy.deepcopy(_model("lstm", "tanh", 1, 3, 1, True, "float32"))
    monkeypatch.setattr(export, "TRAINING_PARAMS",
                        tuple(p for p in export.TRAINING_PARAMS if p != "tol"))
    to_onnx(model)  # tol at its default: assumed not to change predict
    model.tol = 0.5
    with pytest.raises(ValueError, match="does not know whether tol=0.5 changes predict"):
        to_onnx(model)


def test_missing_onnx_says_how_to_install(monkeypatch):
    model = _model("lstm", "tanh", 1, 3, 1, True, "float32")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(ImportError, match=r'pip install "tsrnn\[onnx\]"'):
        to_onnx(model)


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------


def test_file_round_trip(tmp_path):
    model = _model("gru", "tanh", 2, 3, 3, True, "float32")
    path = tmp_path / "model.onnx"
    proto = to_onnx(model, path)
    assert path.read_bytes() == proto.SerializeToString()
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    X = _inputs(3, 37, 13, 6)
    got = _session(str(path)).run(None, {"X": X})[0]
    assert _relative_error(got, model.predict(X)) <= FLOAT32_RTOL
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]  # no temporary file left


def test_file_is_replaced_atomically_and_keeps_its_mode(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    model = _model("lstm", "tanh", 1, 2, 1, True, "float32")
    to_onnx(model, str(path))
    assert onnx.load(str(path)).producer_name == "tsrnn"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    with pytest.raises(ValueError, match="opset"):
        to_onnx(model, path, opset=1)  # fails before writing: the file stays
    assert onnx.load(str(path)).producer_name == "tsrnn"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(export.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        to_onnx(_model("lstm", "tanh", 1, 2, 1, True, "float32"), path)
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_estimator_method_is_the_exporter(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 6)).astype(np.float32), rng.standard_normal(30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RNNRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    path = tmp_path / "m.onnx"
    proto = model.to_onnx(path, opset=export.DEFAULT_OPSET)
    assert onnx.load(str(path)) == proto
