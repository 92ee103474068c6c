"""ONNX export of a fitted :class:`~tsrnn.RNNRegressor`.

:func:`to_onnx` writes the whole of ``predict`` as one ONNX graph: the input
scaling, one ONNX ``LSTM`` / ``GRU`` / ``RNN`` operator per layer (PyTorch's gate
order converted to ONNX's), the linear head on the last time step and the output
scaling. onnxruntime then reproduces ``RNNRegressor.predict`` for any batch size.

``onnx`` is an optional dependency (``pip install "tsrnn[onnx]"``, which also
installs ``onnxruntime``); it is imported when :func:`to_onnx` is called.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from tsrnn._files import write_atomically

if TYPE_CHECKING:  # pragma: no cover - typing only
    import onnx

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "to_onnx"]

#: Opset written by default: run by onnxruntime >= 1.14 and most other runtimes.
DEFAULT_OPSET = 17
#: Oldest opset written (``Squeeze``/``Unsqueeze`` take their axes as an input from 13,
#: and the recurrent operators have their current definition from 14).
MIN_OPSET = 14

#: ONNX gate blocks taken from PyTorch's blocks, in ONNX's order.
#: LSTM: PyTorch i, f, g, o -> ONNX i, o, f, c.
LSTM_GATE_ORDER = (0, 3, 1, 2)
#: GRU: PyTorch r, z, n -> ONNX z, r, h (with ``linear_before_reset=1``, PyTorch's
#: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))).
GRU_GATE_ORDER = (1, 0, 2)

#: Losses after which ``predict`` is the plain head output; another loss (e.g. one
#: that post-processes predictions) is refused until this module learns it.
PLAIN_OUTPUT_LOSSES = ("squared_error", "absolute_error", "huber")

#: Constructor parameters whose effect on ``predict`` this module reproduces...
INFERENCE_PARAMS = ("cell", "hidden_size", "num_layers", "nonlinearity", "dtype",
                    "standardize", "device", "loss")
#: ...and those that only shape training. Any other parameter must be at its default.
TRAINING_PARAMS = ("solver", "alpha", "batch_size", "learning_rate", "learning_rate_init",
                   "max_iter", "shuffle", "random_state", "tol", "verbose", "warm_start",
                   "momentum", "nesterovs_momentum", "early_stopping", "validation_fraction",
                   "beta_1", "beta_2", "epsilon", "n_iter_no_change", "clip_norm", "dropout",
                   "bptt_steps", "n_jobs")

_ONNX_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_ONNX_ACTIVATION = {"tanh": "Tanh", "relu": "Relu"}


def to_onnx(model: Any, path: str | os.PathLike | None = None, *,
            opset: int = DEFAULT_OPSET, n_timesteps: int | None = None,
            recurrent_dtype: str = "float32") -> "onnx.ModelProto":
    """Export a fitted :class:`~tsrnn.RNNRegressor` as an ONNX model.

    The graph computes what :meth:`RNNRegressor.predict` computes: the input scaling
    ``(X - mean) / scale`` per feature, one ONNX ``LSTM``, ``GRU`` or ``RNN``
    operator per layer, the linear head (``Gemm``) on the last time step of the top
    layer and the output scaling ``pred * scale + mean`` per output.

    Parameters
    ----------
    model : RNNRegressor
        A fitted regressor (``fit``, ``partial_fit``, ``load_state_dict`` or
        ``load``).
    path : str or path-like, optional
        Where to write the model. The file is written to a temporary file
        ``.<name>.<random>.tmp`` beside ``path``, synced and renamed into place, so
        a failure leaves any previous file at ``path`` intact. None writes nothing.
    opset : int, default=17
        ONNX opset of the default domain, from 14 to the newest the installed
        ``onnx`` knows. 17 runs on onnxruntime >= 1.14.
    n_timesteps : int, optional
        Fix the sequence length in the graph's input shape. Only for models fitted
        on 3-D input, where it is dynamic by default (any length runs, as with
        ``predict``). A model fitted on 2-D input always takes the fitted number of
        columns, as ``predict`` does; passing another value raises.
    recurrent_dtype : {'float32', 'float64'}, default='float32'
        Precision of the recurrent operators. onnxruntime's CPU kernels of
        ``LSTM``, ``GRU`` and ``RNN`` exist for float only (checked with
        onnxruntime 1.32), so a ``dtype='float64'`` model runs them in float32 by
        default: its inputs are scaled and its head and output scaling computed in
        float64, the layers' weights and activations rounded to float32. Its
        predictions then agree with ``predict`` as a float32 model's do (to about
        1e-5 of the output scale), not to float64 rounding. 'float64' keeps such a
        model double throughout: a valid ONNX graph that double-capable runtimes
        (e.g. ``onnx.reference.ReferenceEvaluator``) run to float64 rounding, but
        that onnxruntime's CPU provider refuses. A float32 model only takes
        'float32'.

    Returns
    -------
    model_proto : onnx.ModelProto
        Checked with ``onnx.checker.check_model(..., full_check=True)``. One input
        ``"X"``, float64, of shape ``(batch, n_timesteps)`` for a model fitted on 2-D
        input (one univariate sequence per row, oldest step first) or ``(batch,
        time, n_features)`` otherwise; one output ``"y"``, float64, of shape
        ``(batch,)`` when ``n_outputs_ == 1`` and ``(batch, n_outputs)`` otherwise.
        The batch axis is dynamic.

    Raises
    ------
    ImportError
        If ``onnx`` is not installed.
    sklearn.exceptions.NotFittedError
        If ``model`` is not fitted.
    TypeError
        If ``model`` is not an RNNRegressor, or an argument has the wrong type.
    ValueError
        If an argument is out of range, or the model uses a setting the export
        cannot reproduce (a loss whose predictions are post-processed, or a
        constructor parameter this module does not know, at a non-default value).

    Notes
    -----
    The input and output are float64 for float32 models too, like ``predict``'s:
    the scaling then runs in float64 exactly as in ``predict`` (its mean can be
    large against its scale, e.g. prices) and only the network runs in float32.
    Cast float32 data with ``X.astype(np.float64)``.

    Unlike ``predict``, the graph does not check its input for NaN or infinity:
    they propagate to the predictions.

    Examples
    --------
    >>> import numpy as np
    >>> from tsrnn import RNNRegressor
    >>> from tsrnn.export import to_onnx
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 10, 2))
    >>> y = X[:, -1, 0] + 0.5 * X[:, -2, 1]
    >>> model = RNNRegressor(hidden_size=8, max_iter=5, random_state=0).fit(X, y)
    >>> proto = to_onnx(model)  # doctest: +SKIP
    >>> import onnxruntime as ort  # doctest: +SKIP
    >>> session = ort.InferenceSession(proto.SerializeToString(),
    ...                                providers=["CPUExecutionProvider"])  # doctest: +SKIP
    >>> pred = session.run(None, {"X": X[:3]})[0]  # doctest: +SKIP
    >>> bool(np.allclose(pred, model.predict(X[:3]), atol=1e-5))  # doctest: +SKIP
    True
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise ImportError(
            'ONNX export needs the onnx package: pip install "tsrnn[onnx]" (installs onnx '
            "and onnxruntime)."
        ) from exc

    spec = _ModelSpec.from_model(model, n_timesteps=n_timesteps,
                                 recurrent_dtype=recurrent_dtype)
    opset = _check_opset(opset, onnx.defs.onnx_opset_version())
    proto = _build(spec, opset, helper, numpy_helper)
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        data = proto.SerializeToString()
        write_atomically(path, lambda fh: fh.write(data))
    return proto


# --------------------------------------------------------------------------
# what is exported
# --------------------------------------------------------------------------


class _ModelSpec:
    """Everything the graph needs, read from the model and checked."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    @classmethod
    def from_model(cls, model, *, n_timesteps, recurrent_dtype) -> "_ModelSpec":
        from tsrnn.estimator import RNNRegressor

        if not isinstance(model, RNNRegressor):
            raise TypeError(
                f"to_onnx exports a fitted tsrnn RNNRegressor; got {type(model).__name__}."
            )
        check_is_fitted(model, "_fit_state")
        _check_exportable(model)
        dtype = np.dtype(model.dtype)
        if recurrent_dtype not in ("float32", "float64"):
            raise ValueError(
                "recurrent_dtype must be 'float32' or 'float64'; got "
                f"{recurrent_dtype!r}."
            )
        if recurrent_dtype == "float64" and dtype != np.float64:
            raise ValueError(
                f"recurrent_dtype='float64' needs a dtype='float64' model; this one is "
                f"{model.dtype}, whose predictions are computed in float32. Use "
                "recurrent_dtype='float32'."
            )
        input_ndim = getattr(model, "_input_ndim", 3)
        fitted_steps = getattr(model, "n_timesteps_in_", None)
        if n_timesteps is not None:
            if isinstance(n_timesteps, bool) or not isinstance(n_timesteps,
                                                               (int, np.integer)):
                raise TypeError(
                    f"n_timesteps must be an int or None; got "
                    f"{type(n_timesteps).__name__}."
                )
            n_timesteps = int(n_timesteps)
            if n_timesteps < 1:
                raise ValueError(f"n_timesteps must be at least 1; got {n_timesteps}.")
        if input_ndim == 2:
            if n_timesteps is not None and n_timesteps != fitted_steps:
                raise ValueError(
                    f"the model was fitted on 2-D X with {fitted_steps} time steps "
                    f"(columns), and predict takes exactly that many; got "
                    f"n_timesteps={n_timesteps}. Leave n_timesteps=None."
                )
            n_timesteps = int(fitted_steps)
        layout = model._layout()
        params = model.state_dict()
        x_mean, x_scale, y_mean, y_scale = (
            np.asarray(getattr(model, name), dtype=np.float64).reshape(-1)
            for name in ("_x_mean", "_x_scale", "_y_mean", "_y_scale"))
        if x_mean.shape != (layout.input_size,) or x_scale.shape != (layout.input_size,):
            raise ValueError(
                f"the model's input scaling has shape {x_mean.shape} / {x_scale.shape} "
                f"for {layout.input_size} input features; the model is inconsistent."
            )
        if y_mean.shape != (layout.n_outputs,) or y_scale.shape != (layout.n_outputs,):
            raise ValueError(
                f"the model's output scaling has shape {y_mean.shape} / {y_scale.shape} "
                f"for {layout.n_outputs} outputs; the model is inconsistent."
            )
        return cls(
            cell=layout.cell, nonlinearity=model.nonlinearity,
            hidden_size=layout.hidden_size, num_layers=layout.num_layers,
            n_features=layout.input_size, n_outputs=layout.n_outputs,
            input_ndim=input_ndim, n_timesteps=n_timesteps, dtype=dtype,
            recurrent_dtype=np.dtype(recurrent_dtype), params=params,
            x_mean=x_mean, x_scale=x_scale, y_mean=y_mean, y_scale=y_scale,
        )


def _check_exportable(model) -> None:
    """Refuse settings whose effect on ``predict`` the graph would not reproduce."""
    params = model.get_params(deep=False)
    if params.get("loss") not in PLAIN_OUTPUT_LOSSES:
        raise ValueError(
            f"to_onnx cannot export a model with loss={params.get('loss')!r}: it exports "
            f"the plain head output, which is what predict returns for loss in "
            f"{PLAIN_OUTPUT_LOSSES}."
        )
    known = set(INFERENCE_PARAMS) | set(TRAINING_PARAMS)
    defaults = {name: p.default
                for name, p in inspect.signature(type(model).__init__).parameters.items()}
    unknown = [name for name in params if name not in known
               and not _is_default(params[name], defaults.get(name, inspect.Parameter.empty))]
    if unknown:
        settings = ", ".join(f"{name}={params[name]!r}" for name in sorted(unknown))
        raise ValueError(
            f"to_onnx does not know whether {settings} changes predict, so it cannot "
            "promise the exported graph reproduces it; refit with the default value, or "
            "teach tsrnn.export this parameter."
        )


def _is_default(value, default) -> bool:
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except (TypeError, ValueError):  # e.g. arrays
        return False


def _check_opset(opset, newest: int) -> int:
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int; got {type(opset).__name__}.")
    opset = int(opset)
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset must be in [{MIN_OPSET}, {newest}] (the newest the installed onnx "
            f"knows); got {opset}."
        )
    return opset


# --------------------------------------------------------------------------
# the graph
# --------------------------------------------------------------------------


def _onnx_gate_blocks(weight: np.ndarray, cell: str, hidden_size: int) -> np.ndarray:
    """Rows (or entries) of a PyTorch-ordered (G*H, ...) array in ONNX's gate order."""
    order = {"lstm": LSTM_GATE_ORDER, "gru": GRU_GATE_ORDER}.get(cell)
    if order is None:
        return weight
    blocks = [weight[g * hidden_size:(g + 1) * hidden_size] for g in order]
    return np.concatenate(blocks, axis=0)


def _build(spec: _ModelSpec, opset: int, helper, numpy_helper) -> "onnx.ModelProto":
    from onnx import TensorProto

    from tsrnn import __version__

    tensor_type = {np.dtype(np.float32): TensorProto.FLOAT,
                   np.dtype(np.float64): TensorProto.DOUBLE}
    rec_dtype = spec.recurrent_dtype
    head_dtype = spec.dtype  # float64 models keep their head in float64
    H = spec.hidden_size
    nodes, inits = [], []

    def const(name, array, dtype):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def node(op, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, name=f"{op}_{len(nodes)}", **attrs))
        return outputs[0]

    # input: (batch, time, features) float64; 2-D models take (batch, time)
    if spec.input_ndim == 2:
        input_shape = ["batch", spec.n_timesteps]
        x = node("Unsqueeze", ["X", const("axis_2", [2], np.int64)], ["X_3d"])
    else:
        input_shape = ["batch", spec.n_timesteps or "time", spec.n_features]
        x = "X"
    if not (np.all(spec.x_mean == 0.0) and np.all(spec.x_scale == 1.0)):
        x = node("Sub", [x, const("x_mean", spec.x_mean, np.float64)], ["X_centred"])
        x = node("Div", [x, const("x_scale", spec.x_scale, np.float64)], ["X_scaled"])
    x = node("Cast", [x], ["X_cast"], to=tensor_type[rec_dtype])
    x = node("Transpose", [x], ["X_time_major"], perm=[1, 0, 2])  # (time, batch, F)

    op = _ONNX_OP[spec.cell]
    attrs = {"hidden_size": H, "direction": "forward"}
    if spec.cell == "rnn":
        attrs["activations"] = [_ONNX_ACTIVATION[spec.nonlinearity]]
    elif spec.cell == "gru":
        attrs["linear_before_reset"] = 1
    for k in range(spec.num_layers):
        p = {name: spec.params[f"{name}_l{k}"]
             for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        W = const(f"W_l{k}", _onnx_gate_blocks(p["weight_ih"], spec.cell, H)[None], rec_dtype)
        R = const(f"R_l{k}", _onnx_gate_blocks(p["weight_hh"], spec.cell, H)[None], rec_dtype)
        B = const(f"B_l{k}", np.concatenate([_onnx_gate_blocks(p["bias_ih"], spec.cell, H),
                                             _onnx_gate_blocks(p["bias_hh"], spec.cell, H)]
                                            )[None], rec_dtype)
        if k < spec.num_layers - 1:  # the whole sequence feeds the next layer
            y_seq = node(op, [x, W, R, B], [f"Y_l{k}"], **attrs)  # (time, 1, batch, H)
            x = node("Squeeze", [y_seq, const(f"axis_1_l{k}", [1], np.int64)], [f"X_l{k + 1}"])
        else:  # the top layer: its last hidden state only, (1, batch, H)
            node(op, [x, W, R, B], ["", "Y_h_top"], **attrs)
    h = node("Squeeze", ["Y_h_top", const("axis_0", [0], np.int64)], ["h_last"])  # (batch, H)
    if head_dtype != rec_dtype:
        h = node("Cast", [h], ["h_last_cast"], to=tensor_type[head_dtype])
    out = node("Gemm", [h, const("head.weight", spec.params["head.weight"], head_dtype),
                        const("head.bias", spec.params["head.bias"], head_dtype)],
               ["head_out"], transB=1)  # (batch, O)
    if head_dtype != np.float64:
        out = node("Cast", [out], ["head_out_cast"], to=TensorProto.DOUBLE)
    if not (np.all(spec.y_mean == 0.0) and np.all(spec.y_scale == 1.0)):
        out = node("Mul", [out, const("y_scale", spec.y_scale, np.float64)], ["y_scaled"])
        out = node("Add", [out, const("y_mean", spec.y_mean, np.float64)], ["y_shifted"])
    if spec.n_outputs == 1:
        output_shape = ["batch"]
        node("Squeeze", [out, const("axis_1", [1], np.int64)], ["y"])
    else:
        output_shape = ["batch", spec.n_outputs]
        node("Identity", [out], ["y"])

    layout_doc = ("(batch, n_timesteps): one univariate sequence per row"
                  if spec.input_ndim == 2 else "(batch, time, n_features)")
    graph = helper.make_graph(
        nodes, "tsrnn_RNNRegressor",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, input_shape,
                                       doc_string=f"input sequences {layout_doc}, oldest "
                                                  "step first")],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, output_shape,
                                       doc_string="predictions in the units of y")],
        inits,
        doc_string=(f"tsrnn RNNRegressor: {spec.num_layers} x {spec.cell} "
                    f"(hidden_size={H}), linear head, input and output scaling"),
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph, opset_imports=opsets, producer_name="tsrnn", producer_version=__version__,
        ir_version=helper.find_min_ir_version_for(opsets),
        doc_string="RNNRegressor.predict exported by tsrnn.export.to_onnx",
    )
    helper.set_model_props(proto, {
        "cell": spec.cell,
        "nonlinearity": spec.nonlinearity if spec.cell == "rnn" else "",
        "hidden_size": str(H),
        "num_layers": str(spec.num_layers),
        "n_features": str(spec.n_features),
        "n_outputs": str(spec.n_outputs),
        "input_ndim": str(spec.input_ndim),
        "n_timesteps": "" if spec.n_timesteps is None else str(spec.n_timesteps),
        "dtype": spec.dtype.name,
        "recurrent_dtype": rec_dtype.name,
    })
    return proto


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
