"""Saving and loading models in a format that never unpickles code; state dicts.

A model file is a NumPy ``.npz`` archive: named arrays and one JSON metadata entry
(``__metadata__``) that names the format and its version. Loading reads arrays with
``allow_pickle=False`` and JSON, so a file cannot run code. Writing goes to a
temporary file in the target folder, flushed to disk and renamed into place, so a
crash or an error during :func:`write_archive` leaves the previous file as it was.

State dicts map PyTorch's parameter names (``weight_ih_l0``, ..., ``head.weight``) to
arrays; :func:`state_dict` and :func:`flat_from_state_dict` convert between them and
the flat parameter vector of a :class:`~tsrnn.network.ParameterLayout`.

The estimators' own formats (what their metadata holds) are defined here too:
:func:`save_regressor` and :func:`load_regressor` for :class:`~tsrnn.RNNRegressor`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tsrnn import network

__all__ = ["REGRESSOR_FORMAT", "FORMAT_VERSION", "flat_from_state_dict", "load_regressor",
           "read_archive", "save_regressor", "state_dict", "write_archive"]

#: Identifies files written by :meth:`RNNRegressor.save`.
REGRESSOR_FORMAT = "tsrnn.RNNRegressor"
#: Newest format version this tsrnn writes and reads.
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"


# --------------------------------------------------------------------------
# the container
# --------------------------------------------------------------------------


def write_archive(path: str | os.PathLike, fmt: str, meta: dict,
                  arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` and JSON ``meta`` (with format name and version) to ``path``.

    Atomic: the archive is written to a temporary file beside ``path`` and renamed
    over it only once complete.
    """
    from tsrnn import __version__

    path = Path(path)
    header = {"format": fmt, "format_version": FORMAT_VERSION, "tsrnn_version": __version__,
              **meta}
    payload = dict(arrays)
    payload[METADATA_KEY] = np.array(json.dumps(header, allow_nan=False))
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_archive(path: str | os.PathLike, fmt: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of an archive written by :func:`write_archive` as ``fmt``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not such an archive, is corrupt, or was written in a newer
        format version.
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
    if METADATA_KEY not in arrays:
        raise ValueError(f"{path} is not a tsrnn model file: no metadata entry.")
    try:
        meta = json.loads(str(arrays.pop(METADATA_KEY)))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} has corrupt tsrnn metadata: {exc}.") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ValueError(
            f"{path} is not a tsrnn model file (format "
            f"{meta.get('format') if isinstance(meta, dict) else None!r})."
        )
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by tsrnn {meta.get('tsrnn_version')} in format version "
            f"{meta['format_version']}; this tsrnn reads up to {FORMAT_VERSION}. "
            "Upgrade tsrnn."
        )
    return meta, arrays


def plain(value: Any):
    """A JSON-friendly version of a scalar: NumPy scalars as Python numbers,
    non-finite floats as None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


# --------------------------------------------------------------------------
# state dicts
# --------------------------------------------------------------------------


def state_dict(layout: network.ParameterLayout, flat: np.ndarray) -> dict[str, np.ndarray]:
    """``{name: array}`` copies of the parameters, PyTorch's names and shapes."""
    return {k: v.copy() for k, v in layout.views(flat).items()}


def flat_from_state_dict(layout: network.ParameterLayout, state: dict, dtype,
                         description: str) -> np.ndarray:
    """The flat vector of ``layout`` filled from ``state``, after checking names,
    shapes and finiteness; ``description`` names the model in messages."""
    state = {k: np.asarray(v) for k, v in dict(state).items()}
    expected = dict(layout.shapes())
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"state dict does not match {description}: missing {missing}, unexpected "
            f"{unexpected}."
        )
    for name, shape in expected.items():
        if state[name].shape != shape:
            raise ValueError(
                f"state dict entry {name!r} has shape {state[name].shape}; expected {shape}."
            )
        if not np.all(np.isfinite(state[name])):
            raise ValueError(f"state dict entry {name!r} contains NaN or infinity.")
    flat = np.empty(layout.size, dtype=np.dtype(dtype))
    views = layout.views(flat)
    for name in expected:
        views[name][...] = state[name]
    return flat


# --------------------------------------------------------------------------
# RNNRegressor's format
# --------------------------------------------------------------------------

#: Fitted scalars saved in the metadata, by attribute name.
REGRESSOR_SCALARS = ("n_outputs_", "n_iter_", "t_", "_n_input_features", "_input_ndim",
                     "best_loss_", "best_validation_score_", "n_timesteps_in_",
                     "_learning_rate", "n_features_in_")


def save_regressor(model, path: str | os.PathLike) -> None:
    """Write a fitted :class:`~tsrnn.RNNRegressor` (see :meth:`RNNRegressor.save`)."""
    params = {k: plain(v) for k, v in model.get_params(deep=False).items()}
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None
    meta = {
        "params": params,
        "fitted": {k: plain(getattr(model, k, None)) for k in REGRESSOR_SCALARS},
        "device": getattr(model, "device_", "cpu"),
        "loss_curve": [float(v) for v in model.loss_curve_],
        "validation_scores": (None if model.validation_scores_ is None
                              else [float(v) for v in model.validation_scores_]),
        "history": model.history_,
        "feature_names_in": (None if not hasattr(model, "feature_names_in_")
                             else [str(n) for n in model.feature_names_in_]),
    }
    arrays = {f"param:{k}": v for k, v in model.state_dict().items()}
    arrays.update(x_mean=model._x_mean, x_scale=model._x_scale, y_mean=model._y_mean,
                  y_scale=model._y_scale)
    write_archive(path, REGRESSOR_FORMAT, meta, arrays)


def load_regressor(cls, path: str | os.PathLike):
    """Read a model written by :func:`save_regressor` (see :meth:`RNNRegressor.load`)."""
    meta, arrays = read_archive(path, REGRESSOR_FORMAT)
    try:
        model = cls(**meta["params"])
        fitted = meta["fitted"]
        for key in ("_n_input_features", "n_outputs_"):
            setattr(model, key, int(fitted[key]))
        state = {k[len("param:"):]: v for k, v in arrays.items() if k.startswith("param:")}
        model.load_state_dict(state)
        model._restore_fitted(
            fitted={k: fitted[k] for k in REGRESSOR_SCALARS},
            scaling=(arrays["x_mean"], arrays["x_scale"], arrays["y_mean"],
                     arrays["y_scale"]),
            loss_curve=list(meta["loss_curve"]),
            validation_scores=meta["validation_scores"],
            history=list(meta["history"]),
            # files written before device_ existed come from CPU fits
            device=meta.get("device", "cpu"),
            feature_names=meta["feature_names_in"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is a corrupt tsrnn model file: {exc}") from None
    return model
