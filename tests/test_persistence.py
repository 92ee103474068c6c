"""Model files: everything ``load`` reads is checked, ``save`` is atomic, NumPy scalars
as parameters round trip.

The fuzz tests start from files written by ``save`` and change one thing at a time: a
metadata field, an array, a zip member, the zip directory, the bytes. Every result
must be a ``ValueError`` that names the file and the problem, or a model that
predicts exactly as the original.
"""

import base64
import copy
import io
import json
import os
import pickle
import re
import select
import signal
import stat
import struct
import subprocess
import sys
import time
import warnings
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from tsrnn import RNNRegressor, persistence

ROOT = Path(__file__).resolve().parents[1]

# Messages of exceptions that escaped a check (a bug) rather than a check's own.
ESCAPED = re.compile(r"\b(TypeError|KeyError|AttributeError|IndexError|RecursionError|"
                     r"MemoryError|OverflowError|UnicodeDecodeError)\b")


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


@pytest.fixture(scope="module")
def models():
    """Two fitted models that differ in every way the format cares about, and inputs
    to compare their predictions on."""
    rng = np.random.default_rng(0)
    X2 = pd.DataFrame(rng.normal(size=(60, 6)), columns=[f"lag{i}" for i in range(6)])
    y2 = X2.to_numpy()[:, -1] + 0.1 * rng.normal(size=60)
    lstm = _fit(RNNRegressor(hidden_size=4, max_iter=3, random_state=0), X2, y2)
    X3 = rng.normal(size=(60, 5, 2))
    y3 = np.stack([X3[:, -1, 0], X3[:, -2, 1]], axis=1)
    gru = _fit(RNNRegressor(cell="gru", hidden_size=3, num_layers=2, dtype="float64",
                            early_stopping=True, validation_fraction=0.2, max_iter=3,
                            random_state=0), X3, y3)
    return {"lstm2d": (lstm, rng.normal(size=(7, 6))),
            "gru3d": (gru, rng.normal(size=(7, 5, 2)))}


@pytest.fixture(scope="module")
def saved(models, tmp_path_factory):
    """The bytes ``save`` writes for each model."""
    folder = tmp_path_factory.mktemp("saved")
    out = {}
    for name, (model, _) in models.items():
        model.save(folder / f"{name}.npz")
        out[name] = (folder / f"{name}.npz").read_bytes()
    return out


def predict(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # numpy X, model fitted on a frame
        return model.predict(X)


def load_outcome(path, original, X):
    """('refused', message) for a clean ValueError, ('same', None) for a model that
    predicts exactly as ``original``; anything else fails the test."""
    try:
        loaded = RNNRegressor.load(path)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith(str(path)), message
        assert not ESCAPED.search(message), message
        return "refused", message
    np.testing.assert_array_equal(predict(loaded, X), predict(original, X))
    return "same", None


# ------------------------------------------------------------------ zip helpers


def members_of(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def build_zip(members, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names, on purpose
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, payload in members:
                zf.writestr(name, payload)
    return buf.getvalue()


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=True)
    return buf.getvalue()


def read_npy(payload: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(payload), allow_pickle=False)


def replaced(members, name, payload):
    """``members`` with ``name`` replaced by ``payload`` (None: removed)."""
    return [(n, payload if n == name else p) for n, p in members
            if not (n == name and payload is None)]


def metadata_of(members) -> dict:
    return json.loads(str(read_npy(dict(members)["__metadata__.npy"])))


_CD = {"flag_bits": (8, "<H"), "compress_type": (10, "<H"), "compress_size": (20, "<L"),
       "file_size": (24, "<L"), "header_offset": (42, "<L")}


def patch_directory(data: bytes, member: str, **fields) -> bytes:
    """``data`` with fields of ``member``'s central directory entry overwritten."""
    buf = bytearray(data)
    eocd = data.rfind(b"PK\x05\x06")
    n, _, pos = struct.unpack_from("<HLL", data, eocd + 10)
    for _ in range(n):
        assert buf[pos:pos + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack_from("<3H", buf, pos + 28)
        if bytes(buf[pos + 46:pos + 46 + name_len]).decode() == member:
            for key, value in fields.items():
                offset, fmt = _CD[key]
                struct.pack_into(fmt, buf, pos + offset, value)
            return bytes(buf)
        pos += 46 + name_len + extra_len + comment_len
    raise KeyError(member)


def header_offset(data: bytes, member: str) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.getinfo(member).header_offset


def with_zip64_end(data: bytes) -> bytes:
    """The same archive with a zip64 end record (what a file over 4 GiB has)."""
    eocd = data.rfind(b"PK\x05\x06")
    _, _, _, n_disk, n_total, size, offset, _ = struct.unpack_from("<4s4H2LH", data, eocd)
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n_disk, n_total,
                         size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                      0xFFFFFFFF, 0)
    return data[:eocd] + record + locator + end


def with_end_fields(data: bytes, *, entries=None, size=None) -> bytes:
    buf = bytearray(data)
    eocd = data.rfind(b"PK\x05\x06")
    if entries is not None:
        struct.pack_into("<2H", buf, eocd + 8, entries, entries)
    if size is not None:
        struct.pack_into("<L", buf, eocd + 12, size)
    return bytes(buf)


@pytest.fixture
def opened(monkeypatch):
    """Names of the zip members that load opens (to show what it never reads)."""
    names = []
    real = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        names.append(getattr(name, "filename", name))
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return names


# ------------------------------------------------------- fuzz: metadata fields

DELETE = object()
NEST = "__nested 10,000 deep__"
NESTED = "[" * 10_000 + "]" * 10_000
BAD_VALUES = {
    "deleted": DELETE, "a string": "x", "true": True, "a list": [1], "an object": {"a": 1},
    "null": None, "1.5": 1.5, "3": 3, "NaN": float("nan"), "inf": float("inf"),
    "-inf": float("-inf"), "1e308": 1e308, "10**30": 10**30, "-1": -1, "0": 0,
    "an empty list": [], "nested 10,000 deep": NEST,
}


def metadata_fields(meta: dict) -> list[tuple]:
    """Paths of every field: top-level keys, every parameter and fitted scalar, the
    first item of each list and every key of the first history record."""
    fields = [(k,) for k in meta]
    fields += [("params", k) for k in meta["params"]]
    fields += [("fitted", k) for k in meta["fitted"]]
    for key in ("loss_curve", "validation_scores", "history", "feature_names_in"):
        if meta[key]:
            fields.append((key, 0))
    fields += [("history", 0, k) for k in meta["history"][0]]
    return fields


def set_field(meta: dict, field: tuple, value) -> dict:
    out = copy.deepcopy(meta)
    target = out
    for key in field[:-1]:
        target = target[key]
    if value is DELETE:
        del target[field[-1]]
    else:
        target[field[-1]] = value
    return out


def encode(meta: dict) -> bytes:
    text = json.dumps(meta, allow_nan=True).replace(json.dumps(NEST), NESTED)
    return npy(np.array(text))


def field_name(field: tuple, deleted: bool) -> str:
    """What a message about ``field`` must mention (a list, when an item is deleted)."""
    if isinstance(field[-1], int):
        if deleted:
            return field[-2]
        return f"{field[-2]}[{field[-1]}]"
    return field[-1]


@pytest.mark.parametrize("name", ["lstm2d", "gru3d"])
def test_fuzz_every_metadata_field(name, models, saved, tmp_path):
    original, X = models[name]
    members = members_of(saved[name])
    meta = metadata_of(members)
    path = tmp_path / "mutated.npz"
    outcomes = Counter()
    for field in metadata_fields(meta):
        for label, value in BAD_VALUES.items():
            mutated = encode(set_field(meta, field, value))
            path.write_bytes(build_zip(replaced(members, "__metadata__.npy", mutated)))
            outcome, message = load_outcome(path, original, X)
            if outcome == "refused":
                expected = ("nested too deeply" if value is NEST else field_name(field, value is DELETE))
                assert expected in message, (field, label, message)
            outcomes[outcome] += 1
    # both kinds happen: most mutations are refused, harmless ones load unchanged
    assert outcomes["refused"] > 10 * outcomes["same"] > 0, outcomes


def test_metadata_json_is_strict(models, saved, tmp_path):
    original, X = models["lstm2d"]
    members = members_of(saved["lstm2d"])
    text = str(read_npy(dict(members)["__metadata__.npy"]))
    path = tmp_path / "m.npz"
    cases = {
        "duplicate keys": ('{"format": "x", ' + text[1:], "duplicate keys"),
        "not JSON": (text[:-1], "not valid JSON"),
        "an array": ("[1, 2]", "not an object"),
        "too many digits": (text.replace('"t_": ', '"t_": ' + "9" * 5000 + ", \"x\": "),
                            "not valid JSON"),
        "newer version": (text.replace('"format_version": 1', '"format_version": 2'),
                          "reads up to format version 1. Upgrade tsrnn"),
        "foreign format": (text.replace("tsrnn.RNNRegressor", "other"),
                           "not a tsrnn model file: format 'other'"),
    }
    for label, (body, expected) in cases.items():
        meta_member = npy(np.array(body))
        path.write_bytes(build_zip(replaced(members, "__metadata__.npy", meta_member)))
        with pytest.raises(ValueError, match=re.escape(expected)):
            RNNRegressor.load(path)
    for label, payload in {"bytes": npy(np.array(text.encode())),
                           "shape (1,)": npy(np.array([text])),
                           "object": npy(np.array(text, dtype=object))}.items():
        path.write_bytes(build_zip(replaced(members, "__metadata__.npy", payload)))
        with pytest.raises(ValueError, match="__metadata__.npy"):
            RNNRegressor.load(path)


# --------------------------------------------------------------- fuzz: arrays


def array_mutations(key: str, a: np.ndarray, model_dtype: str):
    """(label, replacement or None for deleted) of one array."""
    yield "deleted", None
    yield "int64", a.astype(np.int64)
    yield "object (pickled)", a.astype(object)
    yield "float16", a.astype(np.float16)
    yield "complex", a.astype(np.complex128)
    yield "bool", a.astype(bool)
    if a.dtype == np.float32:
        yield "float64, same values", a.astype(np.float64)  # must load, unchanged
    yield "an extra axis", a[..., None]
    yield "one value fewer", a.ravel()[:-1]
    yield "a scalar", a.ravel()[0]
    yield "empty", a.ravel()[:0]
    if a.ndim == 2 and min(a.shape) > 1:
        yield "Fortran order", np.asfortranarray(a + 0)
        if a.shape[0] != a.shape[1]:
            yield "transposed", np.ascontiguousarray(a.T)
    for value in (np.nan, np.inf, -np.inf):
        b = a.copy()
        b.flat[0] = value
        yield f"{value} at [0]", b
    if key.endswith("scale"):
        for value in (0.0, -1.0, 1e-320):
            b = a.copy()
            b.flat[0] = value
            yield f"scale {value}", b
    if key.startswith("param:") and model_dtype == "float32":
        b = a.astype(np.float64)
        b.flat[0] = 1e39
        yield "1e39 in float64 weights of a float32 model", b
    if key.startswith("param:") and model_dtype == "float64" and a.ndim == 2:
        b = a.copy()
        b[0, :] = 1e308  # the row's sum overflows
        yield "a row of 1e308", b


@pytest.mark.parametrize("name", ["lstm2d", "gru3d"])
def test_fuzz_every_array(name, models, saved, tmp_path):
    original, X = models[name]
    members = members_of(saved[name])
    path = tmp_path / "mutated.npz"
    outcomes = Counter()
    for member, payload in members:
        if member == "__metadata__.npy":
            continue
        key = member[:-len(".npy")]
        for label, value in array_mutations(key, read_npy(payload), original.dtype):
            mutated = None if value is None else npy(value)
            path.write_bytes(build_zip(replaced(members, member, mutated)))
            outcome, message = load_outcome(path, original, X)
            if outcome == "refused":
                assert key.split(":")[-1] in message, (key, label, message)
            else:
                assert label == "float64, same values", (key, label)
            outcomes[outcome] += 1
    assert outcomes["refused"] > 100, outcomes


def test_pickled_member_is_never_unpickled(models, saved, tmp_path):
    """An object array whose pickle would run code is refused without running it."""
    original, X = models["lstm2d"]
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    members = members_of(saved["lstm2d"])
    hostile = np.empty(1, dtype=object)
    hostile[0] = Payload()
    path = tmp_path / "m.npz"
    for member in ("x_mean.npy", "__metadata__.npy"):
        path.write_bytes(build_zip(replaced(members, member, npy(hostile))))
        with pytest.raises(ValueError, match="Python objects"):
            RNNRegressor.load(path)
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match="not a readable tsrnn model file"):
        RNNRegressor.load(path)
    assert not marker.exists()


# ---------------------------------------------------- fuzz: members and the zip


def test_fuzz_members_and_zip_directory(models, saved, tmp_path, opened):
    original, X = models["lstm2d"]
    data = saved["lstm2d"]
    members = members_of(data)
    good_array = npy(np.zeros(3))
    second = members[1][0]
    cases = {
        "extra member": (build_zip(members + [("extra.npy", good_array)]),
                         "unexpected members ['extra.npy']"),
        "extra layer": (build_zip(members + [("param:weight_ih_l1.npy", good_array)]),
                        "unexpected members ['param:weight_ih_l1.npy']"),
        "not .npy": (build_zip(members + [("notes.txt", b"hello")]), "'notes.txt'"),
        "folder": (build_zip(members + [("sub/", b"")]), "'sub/'"),
        "duplicate array": (build_zip(members + [members[-2]]), "duplicate members"),
        "duplicate metadata": (build_zip([members[-1]] + members), "duplicate members"),
        "compressed": (build_zip(members, zipfile.ZIP_DEFLATED), "is compressed"),
        "prepended bytes": (b"#!/bin/sh\n" + data, "data prepended"),
        "appended bytes": (data + b"\0" * 10, "does not end the file"),
        "encrypted": (patch_directory(data, "x_mean.npy", flag_bits=1), "encrypted"),
        "overlapping": (patch_directory(data, second,
                                        header_offset=header_offset(data, members[0][0])),
                        "overlaps"),
        "too many entries": (with_end_fields(data, entries=0xFFFF), "declares 65535 entries"),
        "huge directory": (with_end_fields(data, size=2**30), "in 1073741824 bytes"),
        "empty": (b"", "the file is empty"),
        "text": (b"hello, world\n", "no zip directory"),
        "random bytes": (np.random.default_rng(0).bytes(5000), "no zip directory"),
        "gzip": (zlib.compress(data), "no zip directory"),
        "one .npy": (npy(np.zeros(3)), "no zip directory"),
        "foreign npz": (build_zip([("weights.npy", good_array)]),
                        "not a tsrnn model file: no metadata member '__metadata__.npy'"),
    }
    path = tmp_path / "m.npz"
    opened.clear()
    for label, (payload, expected) in cases.items():
        path.write_bytes(payload)
        with pytest.raises(ValueError, match=re.escape(expected)) as info:
            RNNRegressor.load(path)
        assert str(info.value).startswith(str(path)), (label, info.value)
    # refused before any array was read (unexpected members need the metadata first)
    assert set(opened) <= {"__metadata__.npy"}, opened

    harmless = {"zip64 end record": with_zip64_end(data),
                "comment": build_zip(members)[:-2] + b"\x02\x00hi"}
    for label, payload in harmless.items():
        path.write_bytes(payload)
        assert load_outcome(path, original, X)[0] == "same", label


@pytest.mark.parametrize("member", ["x_mean.npy", "param:weight_hh_l0.npy",
                                    "__metadata__.npy"])
def test_huge_declared_sizes_are_refused_without_reading(member, saved, tmp_path, opened):
    data = saved["lstm2d"]
    path = tmp_path / "m.npz"
    forged = {
        "uncompressed 2 GiB": (patch_directory(data, member, file_size=2**31),
                               "declares 2147483648 bytes uncompressed but stores"),
        "2 GiB stored": (patch_directory(data, member, file_size=2**31,
                                         compress_size=2**31),
                         "declares 2147483648 bytes; the whole file has"),
        "deflated in the directory": (patch_directory(data, member, compress_type=8),
                                      "is compressed (zip method 8)"),
    }
    opened.clear()
    for label, (payload, expected) in forged.items():
        path.write_bytes(payload)
        with pytest.raises(ValueError, match=re.escape(expected)):
            RNNRegressor.load(path)
    assert member not in opened


def test_size_bounded_by_the_metadata_before_reading(saved, tmp_path, opened):
    """A stored member larger than its shape allows is refused before it is opened."""
    members = members_of(saved["lstm2d"])
    big = npy(np.zeros(300_000))  # 2.4 MB where x_mean has 1 value
    path = tmp_path / "m.npz"
    path.write_bytes(build_zip(replaced(members, "x_mean.npy", big)))
    opened.clear()
    with pytest.raises(ValueError, match=r"member 'x_mean.npy' declares \d+ bytes; an "
                                         r"array of shape \(1,\)"):
        RNNRegressor.load(path)
    assert "x_mean.npy" not in opened


def test_real_zip_bomb_is_refused_without_inflating(saved, tmp_path, opened):
    members = members_of(saved["lstm2d"])
    bomb = b"\0" * (64 * 2**20)  # deflates to 64 kB
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in members:
            if name == "x_mean.npy":
                zf.writestr(name, bomb, compress_type=zipfile.ZIP_DEFLATED)
            else:
                zf.writestr(name, payload)
    path = tmp_path / "m.npz"
    path.write_bytes(buf.getvalue())
    assert path.stat().st_size < 2**20
    opened.clear()
    with pytest.raises(ValueError, match="'x_mean.npy' is compressed"):
        RNNRegressor.load(path)
    assert opened == []


def test_metadata_size_is_bounded_on_both_sides(models, saved, tmp_path, monkeypatch,
                                                opened):
    model, _ = models["lstm2d"]
    path = tmp_path / "m.npz"
    path.write_bytes(saved["lstm2d"])
    monkeypatch.setattr(persistence, "MAX_METADATA_BYTES", 4096)
    with pytest.raises(ValueError, match="the metadata member declares .* at most 4096"):
        RNNRegressor.load(path)
    assert opened == []
    with pytest.raises(ValueError, match="metadata would take"):
        model.save(path)
    assert path.read_bytes() == saved["lstm2d"]


def test_truncated_files_are_refused(models, saved, tmp_path):
    original, X = models["gru3d"]
    data = saved["gru3d"]
    path = tmp_path / "m.npz"
    cuts = sorted(set(range(0, len(data), max(1, len(data) // 60)))
                  | {1, 4, 30, len(data) - 23, len(data) - 22, len(data) - 1})
    for cut in cuts:
        path.write_bytes(data[:cut])
        assert load_outcome(path, original, X)[0] == "refused", cut


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_flipped_bytes(data, models, saved, tmp_path):
    """Any byte changed anywhere: refused, or no effect (timestamps, padding...)."""
    original, X = models["gru3d"]
    raw = bytearray(saved["gru3d"])
    at = data.draw(st.integers(0, len(raw) - 1), label="offset")
    raw[at] ^= data.draw(st.integers(1, 255), label="xor")
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(raw))
    load_outcome(path, original, X)


# ------------------------------------------------------------- what loads back

FITTED = ("n_features_in_", "n_timesteps_in_", "n_outputs_", "n_iter_", "t_", "loss_",
          "loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_",
          "history_", "device_", "_input_ndim", "_n_input_features", "_learning_rate",
          "_x_mean", "_x_scale", "_y_mean", "_y_scale")


def assert_same_model(loaded, model, X):
    assert loaded.get_params() == model.get_params()
    for key in FITTED:
        a, b = getattr(loaded, key), getattr(model, key)
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=key)
        elif isinstance(b, float) and np.isnan(b):
            assert np.isnan(a), key
        else:
            assert a == b, key
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        assert not hasattr(loaded, "feature_names_in_")
    else:
        np.testing.assert_array_equal(loaded.feature_names_in_, names)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v, err_msg=k)
    np.testing.assert_array_equal(predict(loaded, X), predict(model, X))


@pytest.fixture(scope="module")
def more_models(models):
    """Models from other paths: a state dict only, warm start, partial_fit, relu."""
    rng = np.random.default_rng(1)
    X3, y3 = rng.normal(size=(40, 4, 3)), rng.normal(size=40)
    gru = models["gru3d"][0]
    from_state = RNNRegressor(cell="gru", hidden_size=3, num_layers=2).load_state_dict(
        gru.state_dict())
    partial = RNNRegressor(hidden_size=4, random_state=0)
    for _ in range(3):
        partial.partial_fit(X3, y3)
    warm = _fit(RNNRegressor(hidden_size=4, max_iter=2, random_state=0, warm_start=True,
                             early_stopping=True), X3, y3)
    warm.set_params(early_stopping=False)
    _fit(warm, X3, y3)  # validation scores of the first fit, losses of both
    relu = _fit(RNNRegressor(cell="rnn", nonlinearity="relu", hidden_size=5, max_iter=2,
                             random_state=0, standardize=False), X3, y3)
    return {"state dict only": (from_state, rng.normal(size=(5, 5, 2))),
            "partial_fit": (partial, X3[:5]), "warm start": (warm, X3[:5]),
            "relu": (relu, X3[:5])}


@pytest.mark.parametrize("name", ["lstm2d", "gru3d", "state dict only", "partial_fit",
                                  "warm start", "relu"])
def test_round_trip_keeps_everything(name, models, more_models, tmp_path):
    model, X = {**models, **more_models}[name]
    model.save(tmp_path / "a.npz")
    loaded = RNNRegressor.load(tmp_path / "a.npz")
    assert_same_model(loaded, model, X)
    loaded.save(tmp_path / "b.npz")  # and the loaded model saves the same file
    assert metadata_of(members_of((tmp_path / "a.npz").read_bytes())) == metadata_of(
        members_of((tmp_path / "b.npz").read_bytes()))


def test_loaded_model_keeps_training(models, tmp_path):
    """The state a file restores is consistent enough to resume (early stopping
    included, whose best score is stored)."""
    model, X = models["gru3d"]
    model.save(tmp_path / "m.npz")
    loaded = RNNRegressor.load(tmp_path / "m.npz")
    rng = np.random.default_rng(2)
    X3 = rng.normal(size=(30, 5, 2))
    y3 = np.stack([X3[:, -1, 0], X3[:, -2, 1]], axis=1)
    _fit(loaded.set_params(warm_start=True), X3, y3)
    assert loaded.n_iter_ > model.n_iter_
    assert np.all(np.isfinite(loaded.predict(X)))
    from_state = RNNRegressor(hidden_size=3, cell="gru", num_layers=2).load_state_dict(
        model.state_dict())
    from_state.partial_fit(X3, y3)  # n_timesteps_in_ exists (None) after load_state_dict
    assert from_state.n_iter_ == 1


# Files written by tsrnn at commit b49faa1 (the format as main wrote it), zlib + base64,
# with the predictions that tsrnn gave on the inputs below.
MAIN_GRU3D = (
    "eNrNWg1QVNcVfuBPAqigQnSmHQdNM5gGzO7ytyB7d2JtbUaTENExFsibZffBYpfddfeBoGP8IaGoncTGqChxSiKZ"
    "NKlS25RxBPZunZqOASTBOnZq7EybpEna4s9MY4jGSN+L55qzt3efIJhhnevbfXvPd893/t5Z7i1cOmFihnTzNVeq"
    "Knl6xRC87pOSJb8j4KjKX6dUVrhVudIte0wLvP66GClJOgky7Lrr8ZWPFa6OkWqkDWkuJegMpOWnphWUZ6Wlp6aV"
    "+wJqwOGVfQGXot//kcMTVLT7QbfDr2if5+elp1oeTE/dmHrHr/iOwWvkcv81+uSDbTSx+MuQ9eH9toT2Z2ls0fTw"
    "3Nd6u3o2xtvtLyeG5WU+WtrQsnDriyVky3dfJc1/bQnVxf2BvH813v7L1Gn2wgh75IczY6Paw43tMQAyA2Nkj8xR"
    "2qNnVwNduWViqHPyWtJ5SLV90f0hue4+Saof2k4Kz8Xau578ksY/XGE76j9VoAy+0DW0foMtXX6U1L8909Z9Pc5+"
    "44EEe3bHblLc+xb5ynqQPnVlPvn5ig9p2W92kyW7w7ZK916y+ZV7ydCcBM5mr/x7r4fZLPmWzcoqHcHICGoFidax"
    "sdjo7KVZ7J0TZ8iedw5Q82dTbG8t6iUpk/ppuHmK/WCBFJ746X/p4R+20Eim2883vxeFqXs8M+0pOLIwtvdFuktt"
    "ta0/00dONL1OC6St5Per+0Pl5hnhjxbPJZFMzzeevWxYF8zjNQ+OFu0l7aWnyCNt/bSu9jK9kFdPqub+xfb8jsPk"
    "qfg/0+6Lc+iSqcmh+n1S+Impl+iqeR+Rj9XDttmrbnQeKT9Grmc9RJ5LaqebLm4ixwdOhHw9LfQHBxPstvZ86gn+"
    "k+ZZuolbeZ4WX6m3RdoscebiPMPaMW5t9m7qMdulkvrQrM4W2vjSVXr683M04404Ylv2Km1rKwp9P+Motbftp7OW"
    "XqOvr2kh19qGaOo/fkYKL+yhro5nadMHrQULi39HZ6e8TK2h50JFfRtJyob7qbWvmf74Tck+Y22cfSj9p7at98/g"
    "ase5F04vMqgd5vGaUa7+/3T1NTvI+RsVoe9tP0kHPz/e8czfp9D4RbUFl4KJ4YazB7nosE89lmxQO8Yt0/bvbCHd"
    "hafIH8PTwyvmXyE/WfImOT1NCR24kE58dT3k3XWfcrXjkR3FCmOacoupW3G4FtxMBka1CUSaxoKqZfRpkP7+ETrQ"
    "X0efOb6frN3cQX9x8Wnal97I0dv2p8+OMHozI+np3mTkGkGgcWzIjdqPvwqeCSnb4jky9cuLtjEy8RqZWrlKcXgZ"
    "h50wb6cxB+u3xaF0yQeDh2LfDq/0vvTrOftaw5FcVtXuKGBcEr7mEnQ6PMp4JbN6/sevNZy7YJe6pq356tAAVxjP"
    "NuyLxY6pG9eOWb4nv6Ni09nw9DdWuzc90cI55l+dzqvYMXXj2zGp1vcG/3bxkp2W/Db7kwOfcI4p8aY8ysgkaWRk"
    "zTGqw+VQHbLMGH0x6+ZsdhUzWmnONlmGRWqUlOI3aDrM00a5NnzaCGijShsObajwXb42UuG9fi8I87wwFmhjuTYe"
    "h6G/V7RRAfMUkAmiNXSsdIQbbX1ZGzWAEQCMSpjr5fQzc5giXUeCp783AT8zXE0C3f2gbwCuVYCLsZid9e89IOOG"
    "z3ieCa3DBs+rDNnHCTgy4rIe+PFcdJlqkPMJeJSBnApzZVhbpF/eMGQtBrJ5UTD8gKEiTipg+wV29QInDwyM5wQ5"
    "9h1vDxaf1QJbOEGmEtaVYS0coxgvG/kN47hAhxrAckbxjRPWEenigjV9MMeH/Bgtdnh5fW4dyIvWLwe+PhRbmciH"
    "GE9B8e4BXOwrpqcfOHvB1nhNFdleEeD7UTx7DPJdn5sBnK0cjhvkXcgP3mHkSiaH4+E4ezleMsp91cC/jEMQ5YkX"
    "+XG0a8poTuVt4kNUV5idg4I8mwf31oLPHKi2u2BtVlMDBnWe1fZapK+KZI38UAW4VciXKuhTNcw65Y2yLs5vGdVV"
    "B7K5Iog/UxT8NYBVNsKa5UXPS6yfD2pIEPBHYgujXPOiuPSg+MGxV4nqh6gfYDZyC/ztRTrJsIYDsPAzGONaOIwA"
    "WsOFeMtcLqnDyOUg6FkNNa8c5dpwbcb6GA/XS4iety7UE8wT4KgcN2Zzl0F9MtJNRbqNtK+oQf1JJdJH5XokGezG"
    "/OIUzBGtbRGsx2xXhmoPz7cc6RUUcF6H7CaKi4CgFoowNwp60krUj7BaJ+rrmF3ws9mP3rO8NYpzo9pkFNOqYI5e"
    "93K4eTK3hpfTkflVQX6v5np4I/2NcL0opqtuw6eMq4Gy4Nkkj6CmivBGEutB9PwOoGetUX5lo57ECv7IBpvp11xt"
    "ZMGcTLhnhveZUeJCRfZTovTG2AeyoEfl/TXa3uZ2PYV3mHFlpLdFkJtj0VeLYsqJdKsRYBYjzszHOch/OeBvC3xn"
    "Ad+zK4sF7GMeLxv9PrLA3BxkX4yVDd/n3gYvC+bkwHwT3MtGuDmAa4Jr6SieD6KcCRrY0oR0yoFrHsqHLNAxF9kj"
    "D3HL5uqRCNfKyZuRXXPhMxvMB7noc/pdyvXSKL9b8O+pgKD/KkbPHwX9NnSiXszobyMsr3HeGf0GGOu4jxZTw9Uj"
    "BwbzKbZpJrpvQX7OQvrwvZjC/U5zCdY2C/6OYYX7OHdYrPL9lklQz4brQ8td8OFoa81Y+pCtl4VyhsWUhbO3SfA8"
    "G64Pcf6ytazITyxurJz/cpBt7tSHmXfJh3dS38fahww/C4YF1YhM9D6Hs+lY+DCLq+cWlJcmrlZbUf03gx9LBb1/"
    "tH6F9bMOrhfDPYxRb6qvV7g0JjZjQuRpq5Nwhuo+6ZvX5hj9f/HZKx5DP6E0AGcHIjGSYqQo55V4DP3ETivsMSdH"
    "YCyOlYTnd3gE/SSMGGHBBEl4LoZH0E+YiHnMnihFOW/CY+gnLsQYyyZJUc5f8Bj6CQQxk82TJeF5BB5B39kXI6y5"
    "RxLu8/MI+o55E2yEp0QgrLhXEu+f8xD6rnQjbDfPjIDIjJNEe9Q8gL4TvBN24eIjY1P7+M2+MC+n77oyuYQIud6v"
    "5W5t9fGC+g6neMF9Gk5d1AX13UTxgsoUCe8t8oL6zp2+I6ePpAhBy1Tp//bxCpdOmqx/m6j969Ji2vOA/ul/wdxz"
    "wg=="
)

MAIN_LSTM2D = (
    "eNrNWX9oG3UUv67rNlqdhWV1DCtZRTIhrUnatGltLyrTf2q7KK2ipZyX5NJkJJfs7tIfG9WJxRVFETacoMi6IsgU"
    "nbAhG1tSQd0fzoIim6CCU1AnTjbaTWGMebe+73z39XuXxGTSwLeX3H3f573Pe+/7vq/3DfVWr2zmlj6buMtjI/5r"
    "8GngHFxGVMRU15iUGIlrQiIuJD0tcmaiiqvn9oMMue7pH+wLPVnFjXI7XVFJjSiuLqerO9bmcjtdsbSiKaIspJWo"
    "ZNx/WEyqkn5fjYsZSf+9OeB2eu9xOyed//lT67j4ac9U+4f8mVMLua8/9+fey77B3/naj7ndBx7Icd+8nQuZeNaf"
    "H2iz5BnHPOdAZq5CPH1l8jxy/5Vc7SdPn/j5wX09v/U9yi+ORPiBkzl+9vfzuaG39vCHT+/jzz53ld9y2Bt8sXEz"
    "f7Gtm//oJ0f+yOqHcgc/XsOb/RDa/UUt8YPjhh/CCVG9qdEuzwe6F5xDNXnXxq947yuX+FO9XXzoh3vzDd2N+Q+y"
    "Z06MfXe528yy5p1Lr1uwjC9nluf65nPug3cEuxPu/H1Hb8nftVAXHF6bz3371Nnc4o5NVE7fvTC+QFiuv8EyLonR"
    "lqXEJjSnQWS6EjS95ad0/969PVte2ErRufLEyb8InXVmOkbkCJkpEJiqDJmyY3bbVF3eTGT+1WcPECK1OpFxISWJ"
    "conBCPxf9l97/tjLg4eOBs0cbj0+s0g41F3noEbEpLRcScxu7Njw2do/KBKPz85dwIGYWNaBeHfm9m3BZ45RHK4O"
    "zP+CAzGxvAPxpfbIn9Pvn6NIbO8K7iIk6nUSgh4ITYyKmigIhMmiY2k2ubKZDHpbPZ1FkSmTSu1O3YYmfcT0kdaH"
    "oo+UPkR9aPCsSx9O+G7cU2GeDKNFH4/pox+G8V3SxwjMk0BGRToMLDfCtdIv6GMUMBTASMBcmbLPS2GybC0Fz/ju"
    "AX5euHoYtmfAXgWuKcDFWMTPxvMkyMThN57nQXrIoHmFkX8igCMgLjuAH83FkMmCXJrBIwxyGswVQDfLvs4iZH02"
    "sp0WGBnA0BAnDbAzDL/KwCkJA+NFQI48o/2RRPgphj8iMCcBugXQh/MUY/pR7DBOFOwYBayIRXwioCfLsCUKOtMw"
    "J41iaZU/tLwxdwLkWfpjwDeN8qsVxRHjSSjnk4CL40XszABnGeoB1hlD60EFTFpHBuV10mbdG3ObgXeAwomDfBTF"
    "Qi5izfgonCTFW6a4CagGaDYxJhxUtF5kFMtydQpoTqJAjrDqC/GzylhvTXBvO+SfiGp8FHST2qrY1HtS48eRvRqS"
    "tYtDCnBTKJYa2JMqsl7JFnrxGhdQfRWRzyVG/nks8LcBVrjE2iWjfRPbl4Y6ogJ+Kb7QACPLWGsyysskyh+cewlU"
    "Q1h9AfFRnBFvGdkkgA4RsPBebLefK0hHFPEWqLXEWnttFJYKdmahDsXQWivWZ6SfSVI9BWvfjaLeoImBo1HciM+j"
    "NvXJzjYN2VZqfzGK6nIC2aNRvZIAfiNxiTDmsHSz9BHfhVHtkUrcL8aQ31h5oTBqIQtzktGbJlBfQmodq78jfsH7"
    "cwZ9J+vWLs/tapNdXdQYc9oZtUmgdMiUjSSuEop7lurl7ey3w5VRTqcK8AlTNVBg7E2CRY61g12kzwzA8MP9AFy9"
    "MLcV5vngeyE7SlkjKtr3FbRHl7IXCAg7xdgbMsgfCSRjVwOFCvQ0hXoJuch8KmT35E3oqVm5FEG2jTIwh6gc88Hv"
    "Dsgbkmcd8DwA9gdQrgXg6q5wzg6XUcdZOVpKv0J6bNz/K4xeYQjVSgn9LxNBfYPd//MkF3Gu2PWrlY6VlV8L2WHn"
    "O7Lv4P8NojZcPGC/BzhhHgEqhzoRr1b0zE+tqWJj4qtwTCpVo5dDTEgsPJTNPvA/7rnaEEc/zCMxGWb0H1a1k+yp"
    "IrUv4HpKr78m1H+PWLzTws+9BZ77CjxvhXvDwC/UW7Wiudp8OrsfzqcauH8+u6qMv+yzWhrDOPmcg/NMM8avNEbc"
    "CsM4NSR2OEwYF6o45hkijWCcyLERTq/gmOdzNIJx2jUNb7rXmxCOV3Pssy8awjhhmoKjo3UmiJdWcqzzJhrAONkh"
    "NtSaAAZqOHTOQ8sZpylErs4kt2EVh89WaEHjBIOt8HtdcMJSoXFqwFY4s5rDZwi0oPGm3ngDb4x6k2BsDfev9/ah"
    "3ppV3HUVddwhPY5vNhq//gZfKn1D"
)
MAIN_GRU3D_PRED = [[-0.432699365350256, 0.07296349741572014],
                   [-0.3519739756030138, 0.1306238565785562],
                   [-0.263506009130764, 0.1932704742159338]]
MAIN_LSTM2D_PRED = [-0.28788900185287514, -0.2839235138791923, -0.2852731359419264]


@pytest.mark.parametrize("name", ["GRU3D", "LSTM2D"])
def test_files_written_by_format_version_1_load(name, tmp_path):
    """Files written before this hardening still load (so the format stays version 1)
    and predict as they did."""
    path = tmp_path / "old.npz"
    path.write_bytes(zlib.decompress(base64.b64decode(globals()[f"MAIN_{name}"])))
    model = RNNRegressor.load(path)
    if name == "GRU3D":
        X, expected = np.linspace(-1, 1, 30).reshape(3, 5, 2), MAIN_GRU3D_PRED
        assert model.n_features_in_ == 2 and len(model.validation_scores_) == 3
    else:
        X, expected = np.linspace(-1, 1, 12).reshape(3, 4), MAIN_LSTM2D_PRED
        assert list(model.feature_names_in_) == ["lag0", "lag1", "lag2", "lag3"]
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-6, atol=1e-7)
    model.save(tmp_path / "again.npz")
    np.testing.assert_array_equal(RNNRegressor.load(tmp_path / "again.npz").predict(X),
                                  model.predict(X))


# ------------------------------------------------------------------ parameters


def test_numpy_scalar_parameters_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 6)), rng.normal(size=40)
    params = dict(cell=np.str_("gru"), hidden_size=np.int64(4), num_layers=np.int32(1),
                  alpha=np.float64(1e-3), learning_rate_init=np.float32(0.01),
                  batch_size=np.int64(16), max_iter=np.int64(2), random_state=np.int64(7),
                  shuffle=True, verbose=np.int8(0), clip_norm=np.float64(2.0),
                  tol=np.float16(1e-3))
    model = _fit(RNNRegressor(**params), X, y)
    model.save(tmp_path / "m.npz")
    loaded = RNNRegressor.load(tmp_path / "m.npz")
    got = loaded.get_params()
    for key, value in params.items():
        assert got[key] == value, key
        assert type(got[key]) in (int, float, bool, str), (key, type(got[key]))
    assert got["random_state"] == 7
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    # a refit from the loaded parameters gives the same model: the seed survived
    np.testing.assert_array_equal(_fit(loaded, X, y).predict(X), model.predict(X))


def test_grid_search_over_numpy_ranges_saves(tmp_path):
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(40, 5)), rng.normal(size=40)
    search = GridSearchCV(RNNRegressor(max_iter=2, random_state=np.int64(7)),
                          {"hidden_size": np.arange(2, 4), "alpha": np.array([1e-4])}, cv=2)
    _fit(search, X, y)
    search.best_estimator_.save(tmp_path / "best.npz")
    loaded = RNNRegressor.load(tmp_path / "best.npz")
    assert loaded.random_state == 7 and type(loaded.hidden_size) is int
    assert loaded.hidden_size == search.best_params_["hidden_size"]


def test_random_state_instance_is_saved_as_none(models, tmp_path):
    model, X = models["lstm2d"]
    model = copy.deepcopy(model).set_params(random_state=np.random.RandomState(0))
    model.save(tmp_path / "m.npz")
    loaded = RNNRegressor.load(tmp_path / "m.npz")
    assert loaded.random_state is None
    np.testing.assert_array_equal(predict(loaded, X), predict(model, X))


@pytest.mark.parametrize("params, expected", [
    (dict(tol=float("inf")), "the 'tol' parameter is inf"),
    (dict(clip_norm=np.float64(np.inf)), "set a finite value or None"),
    (dict(alpha=float("nan")), "The 'alpha' parameter of RNNRegressor"),
    (dict(hidden_size=-1), "The 'hidden_size' parameter of RNNRegressor"),
])
def test_save_refuses_what_load_would_refuse_and_writes_nothing(params, expected, models,
                                                                tmp_path):
    model, _ = models["lstm2d"]
    path = tmp_path / "m.npz"
    model.save(path)
    good = path.read_bytes()
    bad = copy.deepcopy(model).set_params(**params)
    with pytest.raises(ValueError, match=re.escape(expected)):
        bad.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_save_refuses_an_inconsistent_model(models, tmp_path):
    model, _ = models["lstm2d"]
    bad = copy.deepcopy(model)
    bad._x_scale = np.zeros_like(bad._x_scale)
    with pytest.raises(ValueError, match=r"cannot save to .*x_scale\[0\] is 0.0"):
        bad.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ load_state_dict


def test_load_state_dict_checks_values_after_the_cast(models):
    model, X = models["lstm2d"]
    model = copy.deepcopy(model)
    before = predict(model, X)
    state = model.state_dict()
    cases = {
        "beyond float32's range": {"weight_ih_l0": state["weight_ih_l0"].astype(np.float64)
                                   * 1e39},
        "contains NaN": {"head.bias": state["head.bias"] * np.nan},
        "dtype complex128": {"head.bias": state["head.bias"].astype(complex)},
        "dtype object": {"head.bias": state["head.bias"].astype(object)},
        "would overflow": {"weight_hh_l0": np.full_like(state["weight_hh_l0"], 3e38)},
    }
    for expected, change in cases.items():
        with pytest.raises(ValueError, match=expected):
            model.load_state_dict({**state, **change})
        np.testing.assert_array_equal(predict(model, X), before)  # left as it was
    model.load_state_dict({k: v.astype(np.float64) for k, v in state.items()})
    np.testing.assert_array_equal(predict(model, X), before)
    assert model._fit_state.optimizer is None  # its moments were for other weights


def test_outputs_that_would_overflow_are_refused(models, saved, tmp_path):
    members = members_of(saved["gru3d"])
    path = tmp_path / "m.npz"
    members = replaced(members, "y_scale.npy", npy(np.array([1e308, 1.0])))
    members = replaced(members, "y_mean.npy", npy(np.array([1.79e308, 0.0])))
    path.write_bytes(build_zip(members))
    with pytest.raises(ValueError, match="output 0 can reach .* predictions would overflow"):
        RNNRegressor.load(path)


# ---------------------------------------------------------------- atomic save


@pytest.mark.parametrize("where", ["savez", "fsync", "replace"])
@pytest.mark.parametrize("error", [OSError("disk full (simulated)"), KeyboardInterrupt()])
def test_failing_save_keeps_the_old_file_and_leaves_nothing(where, error, models,
                                                            tmp_path, monkeypatch):
    model, X = models["lstm2d"]
    path = tmp_path / "model.npz"
    model.save(path)
    good = path.read_bytes()
    other = copy.deepcopy(model)
    other.load_state_dict({k: v + 1 for k, v in model.state_dict().items()})
    real_savez = np.savez

    def failing(*args, **kwargs):
        if where == "savez":  # half the archive is written, then the failure
            buf = io.BytesIO()
            real_savez(buf, **kwargs)
            args[0].write(buf.getvalue()[:len(buf.getvalue()) // 2])
        raise error

    target = {"savez": (persistence.np, "savez"), "fsync": (persistence.os, "fsync"),
              "replace": (persistence.os, "replace")}[where]
    monkeypatch.setattr(*target, failing)
    with pytest.raises(type(error)):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    np.testing.assert_array_equal(predict(RNNRegressor.load(path), X), predict(model, X))


CHILD = r"""
import io, os, sys, time
import numpy as np
from tsrnn import RNNRegressor, persistence

mode, target = sys.argv[1], sys.argv[2]
sources = [RNNRegressor.load(p) for p in sys.argv[3:]]
if mode == "loop":
    print("saving", flush=True)
    i = 0
    while True:
        sources[i % len(sources)].save(target)
        i += 1
real_savez = np.savez

def pause():
    print("paused", flush=True)
    time.sleep(300)

if mode == "mid-write":
    def savez(fh, **arrays):
        buf = io.BytesIO()
        real_savez(buf, **arrays)
        fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        fh.flush()
        os.fsync(fh.fileno())
        pause()
    persistence.np.savez = savez
else:  # complete and synced, not yet renamed
    persistence.os.replace = lambda src, dst: pause()
sources[0].save(target)
"""


def start_child(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def wait_for_line(proc, timeout=120.0) -> bytes:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the child did not report in time"
    return proc.stdout.readline().strip()


def kill(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


LEFTOVER = re.compile(r"\.model\.npz\.[0-9a-f]{12}\.tmp")


def perturbed(model, seed):
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(model)
    out.load_state_dict({k: v + rng.normal(scale=0.1, size=v.shape)
                         for k, v in model.state_dict().items()})
    return out


@pytest.mark.parametrize("moment", ["mid-write", "before-rename"])
def test_sigkill_during_save_keeps_the_old_file(moment, models, tmp_path):
    model, X = models["gru3d"]
    path = tmp_path / "model.npz"
    model.save(path)
    good = path.read_bytes()
    perturbed(model, 0).save(tmp_path / "new.npz")
    proc = start_child(moment, path, tmp_path / "new.npz", cwd=tmp_path)
    try:
        assert wait_for_line(proc) == b"paused"
    finally:
        kill(proc)
    assert path.read_bytes() == good
    np.testing.assert_array_equal(RNNRegressor.load(path).predict(X), model.predict(X))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("model.npz",
                                                                      "new.npz")]
    assert len(leftovers) == 1 and LEFTOVER.fullmatch(leftovers[0]), leftovers
    # the leftover gets in the way of nothing: the next save replaces the file
    perturbed(model, 1).save(path)
    np.testing.assert_array_equal(RNNRegressor.load(path).predict(X),
                                  perturbed(model, 1).predict(X))


def test_sigkill_at_random_moments_of_saves_in_a_loop(tmp_path):
    """A bigger model saved over and over, killed at unplanned moments: the file is
    always one of the complete models."""
    rng = np.random.default_rng(5)
    shapes = RNNRegressor(hidden_size=160, num_layers=2)
    base = {}
    for k in range(2):
        F = 3 if k == 0 else 160
        base |= {f"weight_ih_l{k}": rng.normal(scale=0.05, size=(640, F)),
                 f"weight_hh_l{k}": rng.normal(scale=0.05, size=(640, 160)),
                 f"bias_ih_l{k}": np.zeros(640), f"bias_hh_l{k}": np.zeros(640)}
    base |= {"head.weight": rng.normal(scale=0.05, size=(1, 160)), "head.bias": np.zeros(1)}
    variants = [copy.deepcopy(shapes).load_state_dict({k: v + s for k, v in base.items()})
                for s in (0.0, 0.01)]
    X = rng.normal(size=(3, 4, 3))
    expected = [m.predict(X) for m in variants]
    path = tmp_path / "model.npz"
    sources = []
    for i, m in enumerate(variants):
        sources.append(tmp_path / f"v{i}.npz")
        m.save(sources[-1])
    variants[0].save(path)
    for delay in (0.05, 0.3, 0.8):
        proc = start_child("loop", path, *sources, cwd=tmp_path)
        try:
            assert wait_for_line(proc) == b"saving"
            time.sleep(delay)
        finally:
            kill(proc)
        pred = RNNRegressor.load(path).predict(X)
        assert any(np.array_equal(pred, e) for e in expected)
    names = {p.name for p in tmp_path.iterdir()} - {"model.npz", "v0.npz", "v1.npz"}
    assert all(LEFTOVER.fullmatch(n) for n in names), names


def test_save_keeps_permissions_and_follows_symlinks(models, tmp_path):
    model, X = models["lstm2d"]
    old = os.umask(0o022)
    try:
        model.save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == 0o644  # not mkstemp's 0o600
    os.chmod(tmp_path / "m.npz", 0o640)
    model.save(tmp_path / "m.npz")
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == 0o640
    (tmp_path / "link.npz").symlink_to(tmp_path / "m.npz")
    perturbed(model, 2).save(tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink()
    np.testing.assert_array_equal(predict(RNNRegressor.load(tmp_path / "m.npz"), X),
                                  predict(perturbed(model, 2), X))
