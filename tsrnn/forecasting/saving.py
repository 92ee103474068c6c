"""The file format of a fitted :class:`~tsrnn.RNNForecaster`.

The container is :mod:`tsrnn.persistence`'s: an uncompressed ``.npz`` of float arrays
and one JSON metadata member, written atomically, checked before a byte of data is
read, never unpickled. Inside: the network in :class:`~tsrnn.RNNRegressor`'s own
format (its metadata under ``"regressor"``, its arrays under ``regressor/``), and the
forecaster's fitted state: column roles, calendar, normalisation, per-series floors
and covariate scaling, highway, shrinkage, conformal residuals and the last
``lookback`` rows of every series (what ``predict()`` starts from).

Loading checks every field against every other and against the network (its inputs,
outputs and steps must be what the forecaster's design implies), and every malformed
file is a ``ValueError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from tsrnn import __version__, persistence
from tsrnn.persistence import (
    FORMAT_VERSION,
    REGRESSOR_FORMAT,
    _as_value_error,
    _Corrupt,
    _describe,
    _int_field,
    _is_int,
    _list_field,
    _object_field,
    open_archive,
    plain,
    write_archive,
)

__all__ = ["FORECASTER_FORMAT", "load_forecaster", "save_forecaster"]

#: Identifies files written by :meth:`RNNForecaster.save`.
FORECASTER_FORMAT = "tsrnn.RNNForecaster"
TOP_KEYS = ("format", "format_version", "tsrnn_version", "params", "regressor", "fitted")
FITTED_KEYS = ("target", "exog", "future", "calendar", "calendar_choice", "extras",
               "static", "n_identity", "normalization", "freq", "ids", "is_panel",
               "last_timestamp", "n_training_windows", "n_calibration", "has_shrinkage",
               "has_highway", "has_static", "history")
HISTORY_KEYS = ("lengths", "stamps", "unit", "tz", "index_name", "id_column", "time_column", "index_kind",
                "period_freq")
REGRESSOR_PREFIX = "regressor/"
MAX_NAME = 256


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------


def save_forecaster(fc, path: str | os.PathLike) -> None:
    """Write a fitted forecaster (see :meth:`RNNForecaster.save`); its metadata and
    arrays pass the checks of :func:`load_forecaster` first, or nothing is written."""
    path = Path(path)
    reg_meta, reg_arrays = persistence.regressor_record(fc.regressor_, path)
    reg_meta = {"format": REGRESSOR_FORMAT, "format_version": FORMAT_VERSION,
                "tsrnn_version": __version__, **reg_meta}
    params = _params_record(fc, path)
    history = fc._history
    for series_id in history.ids:
        if not (series_id is None or isinstance(series_id, (str, bool))
                or _is_int(series_id) or isinstance(series_id, float)):
            raise ValueError(f"cannot save to {path}: series id {series_id!r} is a "
                             f"{type(series_id).__name__}; a model file holds ids that are "
                             "strings or numbers.")
    design = fc.design_
    tz = history.index[0].tz
    fitted = {
        "target": design.target, "exog": list(design.exog), "future": list(design.future),
        "calendar": list(design.calendar), "calendar_choice": list(fc._calendar_choice_),
        "extras": list(design.extras), "static": list(fc.static_),
        "n_identity": int(fc._n_identity), "normalization": fc.normalization_,
        "freq": None if fc.freq_ is None else fc.freq_.freqstr,
        "ids": [plain(i) for i in history.ids], "is_panel": bool(fc.is_panel_),
        "last_timestamp": int(pd.Timestamp(fc.last_timestamp_).value),
        "n_training_windows": int(fc.n_training_windows_),
        "n_calibration": None if fc.residuals_ is None else int(fc.residuals_.shape[0]),
        "has_shrinkage": fc.shrinkage_ is not None,
        "has_highway": fc.highway_coef_ is not None,
        "has_static": fc._static_values is not None,
        "history": {
            "lengths": [int(n) for n in history.lengths],
            "stamps": [[int(v) for v in ix.asi8] for ix in history.index],
            "unit": history.index[0].unit,
            "index_name": (None if history.index[0].name is None
                           else str(history.index[0].name)),
            "tz": None if tz is None else str(tz),
            "id_column": str(history.id_column), "time_column": str(history.time_column),
            "index_kind": history.index_kind,
            "period_freq": (None if history.period_freq is None
                            else history.period_freq.freqstr),
        },
    }
    arrays = {REGRESSOR_PREFIX + k: v for k, v in reg_arrays.items()}
    arrays.update(scale_floor=fc.scale_floor_, covariate_mean=fc._covariate_stats[0],
                  covariate_scale=fc._covariate_stats[1], history_values=history.values)
    optional = {"shrinkage": fc.shrinkage_, "highway_coef": fc.highway_coef_,
                "highway_intercept": fc.highway_intercept_, "residuals": fc.residuals_,
                "static_values": fc._static_values}
    if fc._static_stats is not None:
        optional.update(static_mean=fc._static_stats[0], static_scale=fc._static_stats[1])
    arrays.update({k: v for k, v in optional.items() if v is not None})
    meta = {"params": params, "regressor": reg_meta, "fitted": fitted}
    try:
        spec = _spec(type(fc), persistence.as_loaded(FORECASTER_FORMAT, meta),
                     n_members=len(arrays) + 1)
        _build(spec, {k: np.asarray(v) for k, v in arrays.items()})
    except ValueError as exc:
        raise ValueError(f"cannot save to {path}: the forecaster does not pass the checks "
                         f"load makes: {exc}") from None
    write_archive(path, FORECASTER_FORMAT, meta, arrays)


def _params_record(fc, path: Path) -> dict:
    params = {}
    for key, value in fc.get_params(deep=False).items():
        if key == "regressor_params":
            value = None if value is None else {str(k): plain(v) for k, v in value.items()}
            if value is not None and any(isinstance(v, (dict, list)) or not (
                    v is None or isinstance(v, (str, bool, int, float)))
                    for v in value.values()):
                raise ValueError(f"cannot save to {path}: regressor_params holds values "
                                 "that are not numbers, strings or booleans.")
        elif key == "calendar" and value not in ("auto", None):
            value = [str(v) for v in value] if not isinstance(value, str) else [value]
        else:
            value = plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"cannot save to {path}: the {key!r} parameter is {value!r}, "
                             "which a model file cannot hold (JSON has no NaN or infinity).")
        params[key] = value
    if not (params["random_state"] is None or _is_int(params["random_state"])):
        params["random_state"] = None  # a RandomState instance, as for the regressor
    return params


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------


def load_forecaster(cls, path: str | os.PathLike):
    """Read a forecaster written by :func:`save_forecaster`."""
    path = Path(path)
    with open_archive(path, FORECASTER_FORMAT) as archive:
        try:
            spec = _spec(cls, archive.metadata, n_members=len(archive.members) + 1)
        except ValueError as exc:
            raise _as_value_error(path, exc) from None
        arrays = archive.read_arrays(spec["shapes"], spec["origin"])
    try:
        return _build(spec, arrays)
    except ValueError as exc:
        raise _as_value_error(path, exc) from None


def _names_field(where: str, value: Any) -> list[str]:
    value = _list_field(where, value)
    for i, name in enumerate(value):
        if not isinstance(name, str) or len(name) > MAX_NAME:
            raise _Corrupt(f"{where}[{i}] is {_describe(name)}; expected a column name.")
    return value


def _string_field(where: str, value: Any, options=None) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or (
            options is not None and value not in options):
        expected = f"one of {options}" if options is not None else "a string"
        raise _Corrupt(f"{where} is {_describe(value)}; expected {expected}.")
    return value


def _offset_field(where: str, value: Any):
    if value is None:
        return None
    text = _string_field(where, value)
    try:
        return to_offset(text)
    except (ValueError, TypeError):
        raise _Corrupt(f"{where} is {_describe(value)}; not a pandas frequency.") from None


def _spec(cls, meta: dict, *, n_members: int) -> dict:
    """Every metadata field checked, and checked against the others: the unfitted
    forecaster, the regressor's spec, the expected arrays and the fitted values."""
    from tsrnn.forecasting.forecaster import NORMALIZATIONS, _Design

    _object_field("the metadata", meta, TOP_KEYS)
    fc = _forecaster(cls, meta["params"])
    if not isinstance(meta["regressor"], dict):
        raise _Corrupt(f"regressor is {_describe(meta['regressor'])}; expected an object.")
    regressor = persistence.regressor_spec(type(fc._regressor()), meta["regressor"],
                                           n_members=n_members)
    f = _object_field("fitted", meta["fitted"], FITTED_KEYS)
    design = _Design(
        target=_string_field("fitted.target", f["target"]),
        exog=_names_field("fitted.exog", f["exog"]),
        calendar=_names_field("fitted.calendar", f["calendar"]),
        future=_names_field("fitted.future", f["future"]),
        extras=_names_field("fitted.extras", f["extras"]),
    )
    choice = _names_field("fitted.calendar_choice", f["calendar_choice"])
    expected_calendar = list(fc._calendar_frame(pd.DatetimeIndex([]), choice).columns) \
        if all(c in ("hour", "day_of_week", "day_of_year") for c in choice) else None
    if expected_calendar != design.calendar:
        raise _Corrupt(f"fitted.calendar {design.calendar} does not match "
                       f"fitted.calendar_choice {choice}.")
    ids = _list_field("fitted.ids", f["ids"])
    for i, series_id in enumerate(ids):
        if isinstance(series_id, (list, dict)):
            raise _Corrupt(f"fitted.ids[{i}] is {_describe(series_id)}; expected a string "
                           "or a number.")
    if not ids or len({json.dumps(i) for i in ids}) != len(ids):
        raise _Corrupt("fitted.ids must name at least one series, each once.")
    is_panel = f["is_panel"]
    if not isinstance(is_panel, bool) or (not is_panel and ids != [None]):
        raise _Corrupt(f"fitted.is_panel is {_describe(is_panel)} with ids "
                       f"{_describe(ids)}; a single series has ids [null].")
    n_series = len(ids)
    static = _names_field("fitted.static", f["static"])
    n_identity = _int_field("fitted.n_identity", f["n_identity"])
    if n_identity not in (0, n_series) or design.extras[:len(static)] != static \
            or len(design.extras) != len(static) + n_identity:
        raise _Corrupt(f"fitted.extras {design.extras} do not match the static covariates "
                       f"{static} and n_identity {n_identity} of {n_series} series.")
    for key in ("has_shrinkage", "has_highway", "has_static"):
        if not isinstance(f[key], bool):
            raise _Corrupt(f"fitted.{key} is {_describe(f[key])}; expected a boolean.")
    if f["has_static"] != bool(static):
        raise _Corrupt("fitted.has_static does not match fitted.static.")
    normalization = _string_field("fitted.normalization", f["normalization"],
                                  tuple(n for n in NORMALIZATIONS if n != "auto"))
    freq = _offset_field("fitted.freq", f["freq"])
    last = _int_field("fitted.last_timestamp", f["last_timestamp"])
    n_windows = _int_field("fitted.n_training_windows", f["n_training_windows"], low=2)
    n_cal = f["n_calibration"]
    if n_cal is not None:
        n_cal = _int_field("fitted.n_calibration", n_cal, low=1)
    history = _history_spec(f["history"], n_series, fc.lookback, freq)

    # the network must read and write what the design implies
    L, H = fc.lookback, fc.horizon
    n_steps = H if fc.strategy == "direct" else 1
    n_inputs = len(design.columns) + len(design.extras) + int(design.extended)
    fitted = regressor["fitted"]
    timesteps = L + H if design.extended else L
    if fitted["n_outputs_"] != n_steps or fitted["_n_input_features"] != n_inputs or \
            fitted["_input_ndim"] != 3 or fitted["n_timesteps_in_"] != timesteps:
        raise _Corrupt(
            f"the network has {fitted['n_outputs_']} outputs, {fitted['_n_input_features']} "
            f"inputs and {fitted['n_timesteps_in_']} steps; the forecaster's design implies "
            f"{n_steps}, {n_inputs} and {timesteps}."
        )
    n_cov = len(design.covariates)
    shapes = {REGRESSOR_PREFIX + k: v for k, v in regressor["shapes"].items()}
    shapes.update(scale_floor=(n_series,), covariate_mean=(n_series, n_cov),
                  covariate_scale=(n_series, n_cov),
                  history_values=(sum(history["lengths"]), 1 + n_cov))
    if f["has_shrinkage"]:
        shapes["shrinkage"] = (H,)
    if f["has_highway"]:
        shapes.update(highway_coef=(L, n_steps), highway_intercept=(n_steps,))
    if n_cal is not None:
        shapes["residuals"] = (n_cal, H)
    if static:
        shapes.update(static_values=(n_series, len(static)), static_mean=(len(static),),
                      static_scale=(len(static),))
    origin = (f"(expected from lookback={L}, horizon={H}, strategy={fc.strategy!r} and "
              f"{n_series} series)")
    return {"forecaster": fc, "regressor": regressor, "design": design, "choice": choice,
            "ids": ids, "is_panel": is_panel, "static": static, "n_identity": n_identity,
            "normalization": normalization, "freq": freq, "last": last,
            "n_windows": n_windows, "history": history, "shapes": shapes, "origin": origin}


def _forecaster(cls, params: Any):
    """An unfitted forecaster with the saved parameters, validated as ``fit`` would."""
    if not isinstance(params, dict):
        raise _Corrupt(f"params is {_describe(params)}; expected an object.")
    known = set(cls._get_param_names())
    unexpected, missing = set(params) - known, known - set(params)
    if unexpected or missing:
        raise _Corrupt(f"params has unknown parameters {sorted(unexpected)} or lacks "
                       f"{sorted(missing)}.")
    for key, value in params.items():
        if key in ("regressor_params", "calendar") and isinstance(value, (dict, list)):
            items = value.values() if isinstance(value, dict) else value
            if any(isinstance(v, (dict, list)) for v in items):
                raise _Corrupt(f"params.{key} holds nested values.")
        elif isinstance(value, (dict, list)):
            raise _Corrupt(f"params.{key} is {_describe(value)}; expected a scalar.")
        elif isinstance(value, str) and len(value) > MAX_NAME:
            raise _Corrupt(f"params.{key} is {_describe(value)}; too long.")
    fc = cls(**params)
    try:
        fc._check_params()
        fc._regressor()
    except (TypeError, ValueError) as exc:
        raise _Corrupt(f"params: {exc}") from None
    return fc


def _history_spec(value: Any, n_series: int, lookback: int, freq) -> dict:
    h = _object_field("fitted.history", value, HISTORY_KEYS)
    lengths = _list_field("fitted.history.lengths", h["lengths"])
    stamps = _list_field("fitted.history.stamps", h["stamps"])
    if len(lengths) != n_series or len(stamps) != n_series:
        raise _Corrupt(f"fitted.history describes {len(lengths)} series; the model has "
                       f"{n_series}.")
    index = []
    for s, (n, st) in enumerate(zip(lengths, stamps)):
        n = _int_field(f"fitted.history.lengths[{s}]", n, low=1)
        if n > lookback:
            raise _Corrupt(f"fitted.history.lengths[{s}] is {n}, more than lookback "
                           f"{lookback}.")
        st = _list_field(f"fitted.history.stamps[{s}]", st)
        if len(st) != n or not all(_is_int(v) and abs(v) < 2**63 for v in st) or \
                any(b <= a for a, b in zip(st, st[1:])):
            raise _Corrupt(f"fitted.history.stamps[{s}] must hold {n} increasing integer "
                           "timestamps.")
        index.append(st)
    tz = h["tz"]
    if tz is not None:
        _string_field("fitted.history.tz", tz)
    unit = _string_field("fitted.history.unit", h["unit"], ("s", "ms", "us", "ns"))
    name = h["index_name"]
    if name is not None:
        _string_field("fitted.history.index_name", name)
    kind = _string_field("fitted.history.index_kind", h["index_kind"],
                         ("datetime", "period", "range"))
    try:
        index = [pd.DatetimeIndex(np.asarray(st, dtype=np.int64).astype(
            f"datetime64[{unit}]"), name=name) for st in index]
        if tz is not None:
            index = [ix.tz_localize("UTC").tz_convert(tz) for ix in index]
    except (ValueError, TypeError, OverflowError, KeyError) as exc:  # KeyError: unknown tz
        raise _Corrupt(f"fitted.history: unusable timestamps or time zone ({exc}).") from None
    return {"lengths": [len(ix) for ix in index], "index": index,
            "id_column": _string_field("fitted.history.id_column", h["id_column"]),
            "time_column": _string_field("fitted.history.time_column", h["time_column"]),
            "index_kind": kind,
            "period_freq": _offset_field("fitted.history.period_freq", h["period_freq"])}


def _finite_array(name: str, a: np.ndarray, *, low: float | None = None,
                  high: float | None = None, positive: bool = False) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    bad = ~np.isfinite(a)
    if low is not None:
        bad |= a < low
    if high is not None:
        bad |= a > high
    if positive:
        bad |= a <= 0
    if bad.any():
        where = np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), a.shape)
        raise _Corrupt(f"{name}{list(where)} is {float(a[where])!r}; out of range.")
    return a


def _build(spec: dict, arrays: dict[str, np.ndarray]):
    """The fitted forecaster of ``spec`` and its arrays, after the value checks."""
    from tsrnn.forecasting.panel import Panel

    fc = spec["forecaster"]
    n = len(REGRESSOR_PREFIX)
    regressor = persistence.regressor_from_spec(
        spec["regressor"], {k[n:]: v for k, v in arrays.items() if k.startswith(
            REGRESSOR_PREFIX)})
    floors = _finite_array("scale_floor", arrays["scale_floor"], positive=True)
    cov_mean = _finite_array("covariate_mean", arrays["covariate_mean"])
    cov_scale = _finite_array("covariate_scale", arrays["covariate_scale"], positive=True)
    values = _finite_array("history_values", arrays["history_values"])
    h = spec["history"]
    indptr = np.concatenate([[0], np.cumsum(h["lengths"])]).astype(np.int64)
    design = spec["design"]
    history = Panel(tuple(spec["ids"]), tuple(h["index"]),
                    tuple([design.target] + design.covariates), values, indptr,
                    spec["freq"], not spec["is_panel"], h["id_column"], h["time_column"],
                    h["index_kind"], h["period_freq"])
    fc.regressor_ = regressor
    fc.normalization_ = spec["normalization"]
    fc.scale_floor_ = floors
    fc.shrinkage_ = (_finite_array("shrinkage", arrays["shrinkage"], low=0.0, high=1.0)
                     if "shrinkage" in arrays else None)
    fc.highway_coef_ = (_finite_array("highway_coef", arrays["highway_coef"])
                        if "highway_coef" in arrays else None)
    fc.highway_intercept_ = (_finite_array("highway_intercept", arrays["highway_intercept"])
                             if "highway_intercept" in arrays else None)
    fc.design_ = design
    fc._calendar_choice_ = spec["choice"]
    fc.target_ = design.target
    fc.exog_ = list(design.exog)
    fc.future_covariates_ = list(design.future)
    fc.static_ = list(spec["static"])
    fc.calendar_ = list(design.calendar)
    fc.freq_ = spec["freq"]
    fc.ids_ = list(spec["ids"])
    fc.is_panel_ = spec["is_panel"]
    fc.residuals_ = (_finite_array("residuals", arrays["residuals"], low=0.0)
                     if "residuals" in arrays else None)
    fc.last_timestamp_ = pd.Timestamp(spec["last"], tz=h["index"][0].tz).as_unit(
        h["index"][0].unit)
    fc._history = history
    fc._covariate_stats = (cov_mean, cov_scale)
    fc._static_values = (_finite_array("static_values", arrays["static_values"])
                         if "static_values" in arrays else None)
    fc._static_stats = ((_finite_array("static_mean", arrays["static_mean"]),
                         _finite_array("static_scale", arrays["static_scale"], positive=True))
                        if "static_mean" in arrays else None)
    fc._n_identity = spec["n_identity"]
    fc.n_training_windows_ = spec["n_windows"]
    return fc
