"""Saving and loading models in a format that never unpickles code; state dicts.

A model file is a NumPy ``.npz`` archive: one uncompressed ``.npy`` member per
array and one JSON metadata member (``__metadata__``) that names the format and its
version. Writing goes to a temporary file in the target folder, flushed to disk and
renamed into place, so a crash, a kill or an error during :func:`write_archive`
leaves the previous file as it was.

Reading trusts nothing, in the spirit of safetensors' bounded header: before a byte
of array data is read, :func:`open_archive` bounds the zip directory (entry count and
size), refuses duplicate, unexpected, non-``.npy``, compressed, encrypted or
overlapping members, and checks each member's declared size against the size the
metadata implies; each ``.npy`` header (dtype, shape, order) is checked before its
data is read, and the data's length and CRC after. Arrays are parsed from their
bytes (never through pickle) and the metadata is plain JSON. The estimators' formats
then check every metadata field against every other and against the weights. Every
malformed file is a ``ValueError`` naming the file and the problem.

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
import struct
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tsrnn import network
from tsrnn._files import write_atomically

__all__ = ["REGRESSOR_FORMAT", "FORMAT_VERSION", "MAX_METADATA_BYTES", "Archive",
           "flat_from_state_dict", "load_regressor", "open_archive", "save_regressor",
           "state_dict", "write_archive"]

#: Identifies files written by :meth:`RNNRegressor.save`.
REGRESSOR_FORMAT = "tsrnn.RNNRegressor"
#: Newest format version this tsrnn writes and reads (it reads every version from 1).
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"

#: Largest metadata member read (the JSON is stored as UTF-32 text, 4 bytes per
#: character; about 200,000 epochs of history fit). :func:`save_regressor` refuses to
#: write more.
MAX_METADATA_BYTES = 128 * 2**20
#: Most members a model file may have (4 per recurrent layer, then 7 more).
MAX_MEMBERS = 65534
#: Largest zip central directory read (about 100 bytes per member).
MAX_DIRECTORY_BYTES = 16 * 2**20
#: Largest ``.npy`` header read (``np.save`` writes 64 to 128 bytes).
MAX_NPY_HEADER_BYTES = 4096
#: Largest integer accepted in metadata (counters, sizes, integer parameters).
MAX_INT = 2**63 - 1
#: Longest string accepted in a parameter (feature names are bounded by the metadata).
MAX_PARAM_STRING = 256

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_LOCAL_HEADER_BYTES = 30


class _Unreadable(ValueError):
    """Not a zip archive we can read (reported as "not a readable tsrnn model file")."""


class _Foreign(ValueError):
    """A readable archive of something else (reported as "not a tsrnn model file")."""


class _Corrupt(ValueError):
    """A tsrnn archive whose content is inconsistent (reported as "corrupt")."""


def _as_value_error(path: Path, exc: ValueError) -> ValueError:
    """The one ``ValueError`` a caller sees for a problem ``exc`` in ``path``."""
    if isinstance(exc, _Unreadable):
        return ValueError(f"{path} is not a readable tsrnn model file: {exc}")
    if isinstance(exc, _Foreign):
        return ValueError(f"{path} is not a tsrnn model file: {exc}")
    return ValueError(f"{path} is a corrupt tsrnn model file: {exc}")


def _describe(value: Any) -> str:
    """A short description of a JSON value for messages (never recursive)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


def _names(names) -> str:
    """Member or key names for a message: at most 5, each at most 60 characters."""
    names = sorted(names)
    shown = [repr(n if len(n) <= 60 else n[:57] + "...") for n in names[:5]]
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return "[" + ", ".join(shown) + "]" + more


# --------------------------------------------------------------------------
# the container: writing
# --------------------------------------------------------------------------


def write_archive(path: str | os.PathLike, fmt: str, meta: dict,
                  arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` and JSON ``meta`` (with format name and version) to ``path``.

    Atomic: the archive is written to a temporary file ``.<name>.<random>.tmp`` in
    the folder of ``path`` (following a symbolic link at ``path``), flushed to disk
    and renamed over ``path`` only once complete; the folder is then synced so the
    rename survives a power loss. On any failure, ``KeyboardInterrupt`` included,
    the temporary file is removed and ``path`` is untouched. Only a kill (SIGKILL,
    power loss) can leave a temporary file behind; it never replaces ``path`` and
    can be deleted. A file replaced keeps its permission bits; a new one gets the
    usual ones (umask).

    Parameters
    ----------
    path : str or path-like
    fmt : str
        Format name stored in the metadata (e.g. :data:`REGRESSOR_FORMAT`).
    meta : dict
        JSON-serialisable metadata (no NaN or infinity).
    arrays : dict of str to ndarray
        Numeric arrays, stored uncompressed as ``<key>.npy``.

    Raises
    ------
    ValueError
        If the metadata is not strict JSON or larger than :data:`MAX_METADATA_BYTES`.
    """
    from tsrnn import __version__

    path = Path(path)
    header = {"format": fmt, "format_version": FORMAT_VERSION, "tsrnn_version": __version__,
              **meta}
    text = json.dumps(header, allow_nan=False)
    if 4 * len(text) > MAX_METADATA_BYTES - MAX_NPY_HEADER_BYTES:
        raise ValueError(
            f"cannot save to {path}: the metadata would take {4 * len(text)} bytes, more "
            f"than a model file may hold ({MAX_METADATA_BYTES - MAX_NPY_HEADER_BYTES})."
        )
    payload = dict(arrays)
    payload[METADATA_KEY] = np.array(text)
    write_atomically(path, lambda fh: np.savez(fh, **payload))


# --------------------------------------------------------------------------
# the container: reading
# --------------------------------------------------------------------------


class Archive:
    """A model archive opened by :func:`open_archive`: directory checked, metadata read.

    Attributes
    ----------
    path : Path
    metadata : dict
        The parsed JSON metadata (format name and version checked).
    members : set of str
        Array keys in the archive (member names without ``.npy``), metadata excluded.
    """

    def __init__(self, path: Path, fh, zf: zipfile.ZipFile, infos: dict, metadata: dict):
        self.path = path
        self._fh = fh
        self._zf = zf
        self._infos = infos
        self.metadata = metadata
        self.members = set(infos) - {METADATA_KEY}

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def close(self) -> None:
        self._zf.close()
        self._fh.close()

    def read_arrays(self, shapes: dict[str, tuple[int, ...]],
                    origin: str = "") -> dict[str, np.ndarray]:
        """The arrays named in ``shapes``, each checked to have exactly that shape.

        The archive must hold exactly these members (and the metadata). Each member
        must be a float32 or float64 ``.npy`` in C order whose size in the zip
        directory is its header plus ``prod(shape) * itemsize`` bytes; all of that is
        checked before its data is read.

        Parameters
        ----------
        shapes : dict of str to tuple of int
            Expected arrays (keys without ``.npy``) and their shapes.
        origin : str
            Where the expected shapes come from, appended to messages about them
            (e.g. "(expected from params hidden_size=8, ...)").

        Raises
        ------
        ValueError
            Naming the file and the member at fault.
        """
        try:
            missing = set(shapes) - self.members
            unexpected = self.members - set(shapes)
            hint = f" {origin}" if origin else ""
            if missing:
                raise _Corrupt(f"missing arrays {_names(missing)}{hint}.")
            if unexpected:
                raise _Corrupt(f"unexpected members "
                               f"{_names(n + '.npy' for n in unexpected)}{hint}.")
            for key, shape in shapes.items():
                limit = math.prod(shape) * 8 + MAX_NPY_HEADER_BYTES
                size = self._infos[key].file_size
                if size > limit:
                    raise _Corrupt(
                        f"member '{key}.npy' declares {size} bytes; an array of shape "
                        f"{shape}{hint} takes at most {limit}."
                    )
            return {key: self._read_npy(key, shape, "f", hint)
                    for key, shape in shapes.items()}
        except ValueError as exc:
            raise _as_value_error(self.path, exc) from None

    def _read_npy(self, key: str, shape: tuple[int, ...] | None, kinds: str,
                  hint: str = "") -> np.ndarray:
        info = self._infos[key]
        where = f"member '{key}.npy'"
        try:
            with self._zf.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(
                        member, max_header_size=MAX_NPY_HEADER_BYTES)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(
                        member, max_header_size=MAX_NPY_HEADER_BYTES)
                else:
                    raise _Corrupt(f"{where} has .npy format version {version}; "
                                   "expected 1.0 or 2.0.")
                got_shape, fortran, dtype = header
                if dtype.hasobject:
                    raise _Corrupt(f"{where} holds Python objects (dtype {dtype}); a model "
                                   "file holds numbers only and is never unpickled.")
                if dtype.kind not in kinds or dtype.fields is not None or dtype.shape:
                    raise _Corrupt(f"{where} has dtype {dtype}; expected "
                                   + ("float32 or float64." if kinds == "f" else
                                      "a unicode string."))
                if kinds == "f" and dtype.itemsize not in (4, 8):
                    raise _Corrupt(f"{where} has dtype {dtype}; expected float32 or "
                                   "float64.")
                if shape is not None and got_shape != shape:
                    raise _Corrupt(f"{where} has shape {got_shape}; expected "
                                   f"{shape}{hint}.")
                if fortran and len(got_shape) > 1:
                    raise _Corrupt(f"{where} is stored in Fortran order; model files "
                                   "store arrays in C order.")
                nbytes = math.prod(got_shape) * dtype.itemsize
                if member.tell() + nbytes != info.file_size:
                    raise _Corrupt(
                        f"{where} holds {info.file_size - member.tell()} bytes of data; "
                        f"its header (shape {got_shape}, {dtype}) implies {nbytes}."
                    )
                data = member.read(nbytes)
                if len(data) != nbytes or member.read(1):  # read to the end: checks the CRC
                    raise _Corrupt(f"{where} is truncated.")
        except _Corrupt:
            raise
        except (ValueError, zipfile.BadZipFile, EOFError, OSError, NotImplementedError,
                RuntimeError, struct.error, SyntaxError, RecursionError) as exc:
            raise _Corrupt(f"{where} cannot be read: {exc}") from None
        return np.frombuffer(data, dtype=dtype).reshape(got_shape)


def open_archive(path: str | os.PathLike, fmt: str) -> Archive:
    """Open a model archive written by :func:`write_archive` as ``fmt``.

    Checks the zip directory (bounded entry count and size, no duplicate,
    non-``.npy``, compressed, encrypted or overlapping members), then reads and parses
    the metadata member (at most :data:`MAX_METADATA_BYTES`) and checks the format
    name and version. Array data is not read: see :meth:`Archive.read_arrays`.

    Parameters
    ----------
    path : str or path-like
    fmt : str
        Expected format name.

    Returns
    -------
    archive : Archive
        Close it (or use it as a context manager).

    Raises
    ------
    FileNotFoundError, PermissionError, IsADirectoryError
        If ``path`` cannot be opened.
    ValueError
        If the file is not such an archive, is malformed, or was written in a newer
        format version.
    """
    path = Path(path)
    fh = open(path, "rb")
    zf = None
    try:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise _Unreadable("the file is empty.")
        directory_start = _check_zip_directory(fh, size)
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                NotImplementedError, struct.error, OverflowError) as exc:
            raise _Unreadable(f"{exc}") from None
        infos = _check_members(zf.infolist(), size, directory_start)
        if METADATA_KEY not in infos:
            raise _Foreign(f"no metadata member '{METADATA_KEY}.npy'.")
        meta = _read_metadata(path, fh, zf, infos)
        _check_format(meta, fmt)
        return Archive(path, fh, zf, infos, meta)
    except ValueError as exc:
        if zf is not None:
            zf.close()
        fh.close()
        raise _as_value_error(path, exc) from None
    except BaseException:
        if zf is not None:
            zf.close()
        fh.close()
        raise


def _check_zip_directory(fh, size: int) -> int:
    """Offset of the central directory, after bounding its entry count and size.

    Reads the end-of-directory record (and its zip64 version) itself, before
    :mod:`zipfile` parses the directory: a forged directory of millions of entries is
    refused without building them. The directory must end where the end record
    (or the zip64 one) begins, and nothing but the record's comment may follow it:
    no data prepended or appended.
    """
    tail_length = min(size, _EOCD.size + 0xFFFF)
    fh.seek(size - tail_length)
    tail = fh.read(tail_length)
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or at + _EOCD.size > len(tail):
        raise _Unreadable("no zip directory (not a zip file, or truncated).")
    (_, _, _, _, entries, directory_size, directory_start,
     comment_length) = _EOCD.unpack_from(tail, at)
    end_record = size - tail_length + at
    if at + _EOCD.size + comment_length != len(tail):
        raise _Unreadable("the zip end record does not end the file (truncated, or "
                          "data appended).")
    directory_end = end_record
    locator_at = end_record - _ZIP64_LOCATOR.size
    if locator_at >= 0:
        fh.seek(locator_at)
        locator = fh.read(_ZIP64_LOCATOR.size)
        if locator[:4] == _ZIP64_LOCATOR_SIGNATURE:
            _, _, record_at, _ = _ZIP64_LOCATOR.unpack(locator)
            if record_at + _ZIP64_EOCD.size > locator_at:
                raise _Unreadable("the zip64 end record is out of place.")
            fh.seek(record_at)
            record = fh.read(_ZIP64_EOCD.size)
            if record[:4] != _ZIP64_EOCD_SIGNATURE:
                raise _Unreadable("the zip64 end record is missing.")
            (_, _, _, _, _, _, _, entries, directory_size,
             directory_start) = _ZIP64_EOCD.unpack(record)
            directory_end = record_at
    if entries > MAX_MEMBERS or directory_size > MAX_DIRECTORY_BYTES:
        raise _Unreadable(
            f"the zip directory declares {entries} entries in {directory_size} bytes; a "
            f"model file has at most {MAX_MEMBERS} in {MAX_DIRECTORY_BYTES}."
        )
    if directory_start + directory_size != directory_end:
        raise _Unreadable("the zip directory is not where its end record says (truncated, "
                          "or data prepended).")
    return directory_start


def _check_members(infos: list[zipfile.ZipInfo], size: int,
                   directory_start: int) -> dict[str, zipfile.ZipInfo]:
    """``{key: info}`` after refusing duplicate, non-``.npy``, compressed, encrypted,
    oversized and overlapping members."""
    counts = Counter(info.filename for info in infos)
    duplicates = [name for name, n in counts.items() if n > 1]
    if duplicates:
        raise _Corrupt(f"duplicate members {_names(duplicates)}.")
    not_npy = [info.filename for info in infos if not info.filename.endswith(".npy")]
    if not_npy:
        raise _Corrupt(f"members that are not .npy arrays: {_names(not_npy)}.")
    for info in infos:
        where = f"member {info.filename!r}"
        if info.flag_bits & 0x1:
            raise _Corrupt(f"{where} is encrypted.")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _Corrupt(f"{where} is compressed (zip method {info.compress_type}); "
                           "model files store members uncompressed, as save writes them.")
        if info.file_size != info.compress_size:
            raise _Corrupt(f"{where} declares {info.file_size} bytes uncompressed but "
                           f"stores {info.compress_size}.")
        if info.file_size > size:
            raise _Corrupt(f"{where} declares {info.file_size} bytes; the whole file has "
                           f"{size}.")
    # Members may not overlap one another or the directory: every stored byte belongs
    # to one member (the local header's extra field is not counted: a lower bound).
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset < end:
            raise _Corrupt(f"member {info.filename!r} overlaps the member before it.")
        end = (info.header_offset + _LOCAL_HEADER_BYTES
               + len(info.orig_filename) + info.compress_size)  # >= 1 byte a character
    if end > directory_start:
        raise _Corrupt("the last member overlaps the zip directory.")
    return {info.filename[:-len(".npy")]: info for info in infos}


def _read_metadata(path: Path, fh, zf: zipfile.ZipFile, infos: dict) -> dict:
    info = infos[METADATA_KEY]
    if info.file_size > MAX_METADATA_BYTES:
        raise _Corrupt(f"the metadata member declares {info.file_size} bytes; at most "
                       f"{MAX_METADATA_BYTES} are read.")
    archive = Archive(path, fh, zf, infos, {})
    array = archive._read_npy(METADATA_KEY, (), "U")
    try:
        text = array.item()
    except (ValueError, UnicodeError) as exc:
        raise _Corrupt(f"the metadata is not valid text: {exc}") from None
    try:
        meta = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise _Corrupt("the metadata JSON is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, too many digits, duplicate keys
        raise _Corrupt(f"the metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise _Foreign(f"the metadata is {_describe(meta)}, not an object.")
    return meta


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        duplicates = [k for k, n in Counter(k for k, _ in pairs).items() if n > 1]
        raise ValueError(f"duplicate keys {_names(duplicates)}")
    return out


def _check_format(meta: dict, fmt: str) -> None:
    if meta.get("format") != fmt:
        raise _Foreign(f"format {_describe(meta.get('format'))}, expected {fmt!r}.")
    version = meta.get("format_version")
    if not _is_int(version) or version < 1:
        raise _Corrupt(f"format_version is {_describe(version)}; expected an integer "
                       ">= 1.")
    if version > FORMAT_VERSION:
        raise _Corrupt(
            f"format_version is {version}: written by tsrnn "
            f"{_describe(meta.get('tsrnn_version'))} in a newer format; this tsrnn reads up "
            f"to format version {FORMAT_VERSION}. Upgrade tsrnn."
        )
    if not isinstance(meta.get("tsrnn_version"), str):
        raise _Corrupt(f"tsrnn_version is {_describe(meta.get('tsrnn_version'))}; "
                       "expected a string.")


# --------------------------------------------------------------------------
# JSON field checks (raise _Corrupt naming the field)
# --------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_field(where: str, value: Any, low: int = 0) -> int:
    if not _is_int(value) or not low <= value <= MAX_INT:
        raise _Corrupt(f"{where} is {_describe(value)}; expected an integer in "
                       f"[{low}, 2**63 - 1].")
    return value


def _finite_field(where: str, value: Any, *, positive: bool = False,
                  nonnegative: bool = False) -> float:
    if not _is_real(value) or not math.isfinite(value) or (positive and value <= 0) or (
            nonnegative and value < 0):
        what = "a positive" if positive else "a non-negative" if nonnegative else "a"
        raise _Corrupt(f"{where} is {_describe(value)}; expected {what} finite number.")
    return float(value)


def _object_field(where: str, value: Any, keys) -> dict:
    """``value`` as a dict with exactly ``keys``."""
    if not isinstance(value, dict):
        raise _Corrupt(f"{where} is {_describe(value)}; expected an object.")
    missing, unexpected = set(keys) - set(value), set(value) - set(keys)
    if missing:
        raise _Corrupt(f"{where} lacks {_names(missing)}.")
    if unexpected:
        raise _Corrupt(f"{where} has unexpected keys {_names(unexpected)}.")
    return value


def _list_field(where: str, value: Any) -> list:
    if not isinstance(value, list):
        raise _Corrupt(f"{where} is {_describe(value)}; expected a list.")
    return value


def plain(value: Any):
    """A JSON-friendly version of a scalar: NumPy scalars as Python numbers and
    strings, non-finite floats as None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.str_):
        return str(value)
    return value


# --------------------------------------------------------------------------
# state dicts
# --------------------------------------------------------------------------


def state_dict(layout: network.ParameterLayout, flat: np.ndarray) -> dict[str, np.ndarray]:
    """``{name: array}`` copies of the parameters, PyTorch's names and shapes."""
    return {k: v.copy() for k, v in layout.views(flat).items()}


def flat_from_state_dict(layout: network.ParameterLayout, state: dict, dtype,
                         description: str) -> np.ndarray:
    """The flat vector of ``layout`` filled from ``state``.

    Checks names, shapes and dtypes (real numbers), then finiteness *after* the
    cast to ``dtype`` (float64 weights beyond float32's range are refused), then
    magnitudes: in each row of every weight matrix, the absolute values plus the
    biases of that row must sum to a number ``dtype`` can hold, so that no
    pre-activation of inputs and hidden states within [-1, 1] (and no partial sum of
    one, whatever the summation order) overflows. ``description`` names the model in
    messages.

    Raises
    ------
    ValueError
        On the first entry that fails, naming it.
    """
    dtype = np.dtype(dtype)
    state = {k: np.asarray(v) for k, v in dict(state).items()}
    expected = dict(layout.shapes())
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected), key=str)
    if missing or unexpected:
        raise ValueError(
            f"state dict does not match {description}: missing {missing}, unexpected "
            f"{unexpected}."
        )
    for name, shape in expected.items():  # every shape before allocating anything
        value = state[name]
        if value.shape != shape:
            raise ValueError(
                f"state dict entry {name!r} has shape {value.shape}; expected {shape}."
            )
        if value.dtype.kind not in "fiu":
            raise ValueError(
                f"state dict entry {name!r} has dtype {value.dtype}; expected real "
                "numbers (float32 or float64)."
            )
    flat = np.empty(layout.size, dtype=dtype)
    views = layout.views(flat)
    for name in expected:
        value = state[name]
        with np.errstate(over="ignore", invalid="ignore"):
            views[name][...] = value
        if not np.all(np.isfinite(views[name])):
            where = ("contains NaN or infinity" if not np.all(np.isfinite(value)) else
                     f"has values beyond {dtype}'s range (largest "
                     f"{np.finfo(dtype).max:.3g})")
            raise ValueError(f"state dict entry {name!r} {where}.")
    _check_magnitudes(layout, views, dtype)
    return flat


def _check_magnitudes(layout: network.ParameterLayout, views: dict, dtype: np.dtype) -> None:
    """Row sums of |weights| + |biases| within ``dtype``'s range (see
    :func:`flat_from_state_dict`)."""
    largest = float(np.finfo(dtype).max)
    rows = [(f"weight_ih_l{k}", f"weight_hh_l{k}", f"bias_ih_l{k}", f"bias_hh_l{k}")
            for k in range(layout.num_layers)] + [("head.weight", None, "head.bias", None)]
    with np.errstate(over="ignore", invalid="ignore"):
        for names in rows:
            total = np.zeros(views[names[0]].shape[0])
            for name in names:
                if name is None:
                    continue
                a = np.abs(views[name].astype(np.float64))
                total += a.sum(axis=1) if a.ndim == 2 else a
            bad = np.flatnonzero(~(total <= largest))
            if bad.size:
                raise ValueError(
                    f"state dict entries {', '.join(repr(n) for n in names if n)}: the "
                    f"absolute values in row {bad[0]} sum to {total[bad[0]]:.3g}, beyond "
                    f"{dtype}'s range ({largest:.3g}); the layer's outputs would overflow."
                )


# --------------------------------------------------------------------------
# RNNRegressor's format
# --------------------------------------------------------------------------

#: Fitted scalars saved in the metadata, by attribute name.
REGRESSOR_SCALARS = ("n_outputs_", "n_iter_", "t_", "_n_input_features", "_input_ndim",
                     "best_loss_", "best_validation_score_", "n_timesteps_in_",
                     "_learning_rate", "n_features_in_")
#: Top-level metadata keys of format version 1 ('device' may be absent: files written
#: before ``device_`` existed come from CPU fits).
REGRESSOR_KEYS = ("format", "format_version", "tsrnn_version", "params", "fitted",
                  "device", "loss_curve", "validation_scores", "history",
                  "feature_names_in")
#: Constructor parameters every format-version-1 file holds. Parameters added to
#: RNNRegressor later may be absent from older files and then take their defaults.
REGRESSOR_V1_PARAMS = (
    "alpha", "batch_size", "beta_1", "beta_2", "bptt_steps", "cell", "clip_norm",
    "device", "dropout", "dtype", "early_stopping", "epsilon", "hidden_size",
    "learning_rate", "learning_rate_init", "loss", "max_iter", "momentum",
    "n_iter_no_change", "n_jobs", "nesterovs_momentum", "nonlinearity", "num_layers",
    "random_state", "shuffle", "solver", "standardize", "tol", "validation_fraction",
    "verbose", "warm_start")
HISTORY_KEYS = ("epoch", "train_loss", "valid_loss", "seconds")
SCALING_KEYS = ("x_mean", "x_scale", "y_mean", "y_scale")
DEVICES = ("cpu", "cuda")


def save_regressor(model, path: str | os.PathLike) -> None:
    """Write a fitted :class:`~tsrnn.RNNRegressor` (see :meth:`RNNRegressor.save`).

    The metadata and arrays are first put through the same checks as
    :func:`load_regressor`, so a file that is written can be read back.

    Raises
    ------
    ValueError
        If a parameter cannot be stored (NaN or infinite floats; JSON has neither),
        if the model's parameters or state fail the checks, or if the metadata is
        too large. Nothing is written then.
    """
    path = Path(path)
    meta, arrays = regressor_record(model, path)
    write_archive(path, REGRESSOR_FORMAT, meta, arrays)


def regressor_record(model, path: Path) -> tuple[dict, dict]:
    """``(meta, arrays)`` of a fitted regressor as :func:`save_regressor` stores them,
    checked as :func:`load_regressor` will check them (``path`` names the file in
    messages). Formats that hold a regressor inside (the forecaster's) reuse it."""
    try:
        model._check_params()
    except ValueError as exc:
        raise ValueError(f"cannot save to {path}: {exc}") from None
    params = {}
    for key, value in model.get_params(deep=False).items():
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            raise ValueError(
                f"cannot save to {path}: the {key!r} parameter is {float(value)!r}, which a "
                "model file cannot hold (its metadata is JSON, without NaN or infinity); "
                "set a finite value" + (" or None" if key == "clip_norm" else "")
                + " with set_params before saving."
            )
        params[key] = plain(value)
    if not _is_int(params["random_state"]) and params["random_state"] is not None:
        params["random_state"] = None  # a RandomState instance: documented in save
    meta = {
        "params": params,
        "fitted": {k: plain(getattr(model, k, None)) for k in REGRESSOR_SCALARS},
        "device": getattr(model, "device_", "cpu"),
        "loss_curve": [plain(v) for v in model.loss_curve_],
        "validation_scores": (None if model.validation_scores_ is None
                              else [plain(v) for v in model.validation_scores_]),
        "history": [{k: plain(v) for k, v in record.items()} for record in model.history_],
        "feature_names_in": (None if not hasattr(model, "feature_names_in_")
                             else [str(n) for n in model.feature_names_in_]),
    }
    arrays = {f"param:{k}": v for k, v in model.state_dict().items()}
    arrays.update(x_mean=model._x_mean, x_scale=model._x_scale, y_mean=model._y_mean,
                  y_scale=model._y_scale)
    try:
        seen = as_loaded(REGRESSOR_FORMAT, meta)
        spec = regressor_spec(type(model), seen, n_members=len(arrays) + 1)
        _regressor_arrays(spec, {k: np.asarray(v) for k, v in arrays.items()})
    except ValueError as exc:
        raise ValueError(f"cannot save to {path}: the model does not pass the checks "
                         f"load makes: {exc}") from None
    return meta, arrays


def as_loaded(fmt: str, meta: dict) -> dict:
    """``meta`` as :func:`open_archive` will return it: through JSON (types as read
    back), with the keys :func:`write_archive` adds. Savers check this before writing."""
    return json.loads(json.dumps({"format": fmt, "format_version": FORMAT_VERSION,
                                  "tsrnn_version": "", **meta}, allow_nan=False))


def load_regressor(cls, path: str | os.PathLike):
    """Read a model written by :func:`save_regressor` (see :meth:`RNNRegressor.load`).

    Every check is made before the model is built; see the module docstring.
    """
    path = Path(path)
    with open_archive(path, REGRESSOR_FORMAT) as archive:
        try:
            spec = regressor_spec(cls, archive.metadata,
                                  n_members=len(archive.members) + 1)
        except ValueError as exc:
            raise _as_value_error(path, exc) from None
        arrays = archive.read_arrays(spec["shapes"], spec["origin"])
    try:
        return regressor_from_spec(spec, arrays)
    except ValueError as exc:
        raise _as_value_error(path, exc) from None


def regressor_from_spec(spec: dict, arrays: dict[str, np.ndarray]):
    """The fitted regressor of :func:`regressor_spec` and the arrays it asked for."""
    state, scaling = _regressor_arrays(spec, arrays)
    model = spec["model"]
    model.load_state_dict(state)
    model._restore_fitted(
        fitted=spec["fitted"], scaling=scaling, loss_curve=spec["loss_curve"],
        validation_scores=spec["validation_scores"], history=spec["history"],
        device=spec["device"], feature_names=spec["feature_names"],
    )
    return model


def regressor_spec(cls, meta: dict, *, n_members: int) -> dict:
    """Everything in a regressor's metadata, checked field by field and against each
    other:
    the unfitted model (parameters validated), the expected array shapes and the
    fitted values. ``n_members`` (metadata included) bounds ``num_layers`` before
    shapes are built."""
    required = set(REGRESSOR_KEYS) - {"device"}
    missing = required - set(meta)
    unexpected = set(meta) - set(REGRESSOR_KEYS)
    if missing:
        raise _Corrupt(f"the metadata lacks {_names(missing)}.")
    if unexpected:
        raise _Corrupt(f"the metadata has unexpected keys {_names(unexpected)}.")

    model = _regressor_model(cls, meta["params"])
    fitted = _regressor_fitted(meta["fitted"])

    device = meta.get("device", "cpu")
    if device not in DEVICES:
        raise _Corrupt(f"device is {_describe(device)}; expected one of {DEVICES}.")

    loss_curve = [_finite_field(f"loss_curve[{i}]", v)
                  for i, v in enumerate(_list_field("loss_curve", meta["loss_curve"]))]
    n_iter = fitted["n_iter_"]
    if len(loss_curve) != n_iter:
        raise _Corrupt(f"loss_curve has {len(loss_curve)} entries but fitted.n_iter_ is "
                       f"{n_iter}.")
    if fitted["t_"] < n_iter:
        raise _Corrupt(f"fitted.t_ (samples seen) is {fitted['t_']}, fewer than the "
                       f"{n_iter} epochs run.")
    best_loss = fitted["best_loss_"]
    if best_loss is not None and best_loss not in loss_curve:
        raise _Corrupt(f"fitted.best_loss_ is {best_loss!r}, not a loss of loss_curve.")

    scores = meta["validation_scores"]
    if scores is not None:
        scores = [None if v is None else _finite_field(f"validation_scores[{i}]", v)
                  for i, v in enumerate(_list_field("validation_scores", scores))]
        if len(scores) > n_iter:
            raise _Corrupt(f"validation_scores has {len(scores)} entries, more than the "
                           f"{n_iter} epochs run.")
    best_score = fitted["best_validation_score_"]
    if best_score is not None and (scores is None or best_score not in scores):
        raise _Corrupt(f"fitted.best_validation_score_ is {best_score!r}, not a score of "
                       "validation_scores.")

    history = _regressor_history(meta["history"], loss_curve)

    names = meta["feature_names_in"]
    if names is not None:
        names = _list_field("feature_names_in", names)
        bad = [i for i, n in enumerate(names) if not isinstance(n, str)]
        if bad:
            raise _Corrupt(f"feature_names_in[{bad[0]}] is {_describe(names[bad[0]])}; "
                           "expected a string.")
        if len(names) != fitted["n_features_in_"]:
            raise _Corrupt(f"feature_names_in has {len(names)} names but "
                           f"fitted.n_features_in_ is {fitted['n_features_in_']}.")

    num_layers = model.num_layers
    if num_layers > n_members:  # bounds the loop in layout.shapes()
        raise _Corrupt(f"params.num_layers={num_layers} implies {4 * num_layers + 7} "
                       f"members; the file has {n_members}.")
    layout = network.ParameterLayout(model.cell, fitted["_n_input_features"],
                                     model.hidden_size, num_layers, fitted["n_outputs_"])
    shapes = {f"param:{name}": shape for name, shape in layout.shapes()}
    F, O = layout.input_size, layout.n_outputs
    shapes.update(x_mean=(F,), x_scale=(F,), y_mean=(O,), y_scale=(O,))
    origin = (f"(expected from params cell={model.cell!r}, hidden_size={model.hidden_size}, "
              f"num_layers={num_layers} and fitted _n_input_features={F}, "
              f"n_outputs_={O})")
    return {"model": model, "layout": layout, "shapes": shapes, "origin": origin,
            "fitted": fitted,
            "device": device, "loss_curve": loss_curve, "validation_scores": scores,
            "history": history, "feature_names": names}


def _regressor_model(cls, params: Any):
    """An unfitted ``cls`` with the saved parameters, validated as ``fit`` would."""
    if not isinstance(params, dict):
        raise _Corrupt(f"params is {_describe(params)}; expected an object.")
    known = set(cls._get_param_names())
    unexpected = set(params) - known
    missing = (set(REGRESSOR_V1_PARAMS) & known) - set(params)
    if unexpected:
        raise _Corrupt(f"params has unknown parameters {_names(unexpected)}.")
    if missing:
        raise _Corrupt(f"params lacks {_names(missing)}.")
    for key, value in params.items():
        where = f"params.{key}"
        if isinstance(value, str):
            if len(value) > MAX_PARAM_STRING:
                raise _Corrupt(f"{where} is {_describe(value)}; too long.")
        elif _is_int(value):
            if abs(value) > MAX_INT:
                raise _Corrupt(f"{where} is {_describe(value)}; out of range.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise _Corrupt(f"{where} is {value!r}; a model file holds finite numbers only "
                           "(save refuses NaN and infinity).")
        elif not (value is None or isinstance(value, (bool, float))):
            raise _Corrupt(f"{where} is {_describe(value)}; expected a number, string, "
                           "boolean or null.")
    model = cls(**params)
    try:
        model._check_params()
    except ValueError as exc:
        raise _Corrupt(f"params: {exc}") from None
    return model


def _regressor_fitted(fitted: Any) -> dict:
    """The fitted scalars, each checked, and checked against each other."""
    fitted = dict(_object_field("fitted", fitted, REGRESSOR_SCALARS))
    for key in ("n_outputs_", "_n_input_features", "n_features_in_"):
        fitted[key] = _int_field(f"fitted.{key}", fitted[key], low=1)
    for key in ("n_iter_", "t_"):
        fitted[key] = _int_field(f"fitted.{key}", fitted[key])
    ndim = fitted["_input_ndim"]
    if ndim not in (2, 3) or not _is_int(ndim):
        raise _Corrupt(f"fitted._input_ndim is {_describe(ndim)}; expected 2 or 3.")
    if fitted["n_timesteps_in_"] is not None or ndim == 2:
        fitted["n_timesteps_in_"] = _int_field("fitted.n_timesteps_in_",
                                               fitted["n_timesteps_in_"], low=1)
    fitted["_learning_rate"] = _finite_field("fitted._learning_rate",
                                             fitted["_learning_rate"], positive=True)
    for key in ("best_loss_", "best_validation_score_"):
        if fitted[key] is not None:
            fitted[key] = _finite_field(f"fitted.{key}", fitted[key])
    n_in, n_features = fitted["_n_input_features"], fitted["n_features_in_"]
    if ndim == 3 and n_features != n_in:
        raise _Corrupt(f"fitted.n_features_in_ is {n_features} but a model fitted on 3-D X "
                       f"(fitted._input_ndim = 3) reads that many input features, and "
                       f"fitted._n_input_features is {n_in}.")
    if ndim == 2:
        if n_in != 1:
            raise _Corrupt(f"fitted._n_input_features is {n_in} but a model fitted on "
                           "2-D X (fitted._input_ndim = 2) reads 1 input feature.")
        if n_features != fitted["n_timesteps_in_"]:
            raise _Corrupt(f"fitted.n_features_in_ is {n_features} but a model fitted on "
                           f"2-D X (fitted._input_ndim = 2) has one feature per time step "
                           f"and fitted.n_timesteps_in_ is {fitted['n_timesteps_in_']}.")
    return fitted


def _regressor_history(history: Any, loss_curve: list[float]) -> list[dict]:
    """History records, one per epoch, matching ``loss_curve``."""
    history = _list_field("history", history)
    if len(history) != len(loss_curve):
        raise _Corrupt(f"history has {len(history)} records but loss_curve has "
                       f"{len(loss_curve)} entries.")
    out = []
    for i, record in enumerate(history):
        where = f"history[{i}]"
        record = _object_field(where, record, HISTORY_KEYS)
        if record["epoch"] != i + 1 or not _is_int(record["epoch"]):
            raise _Corrupt(f"{where}.epoch is {_describe(record['epoch'])}; expected "
                           f"{i + 1}.")
        train_loss = _finite_field(f"{where}.train_loss", record["train_loss"])
        if train_loss != loss_curve[i]:
            raise _Corrupt(f"{where}.train_loss is {train_loss!r} but loss_curve[{i}] is "
                           f"{loss_curve[i]!r}.")
        valid_loss = record["valid_loss"]
        if valid_loss is not None:
            valid_loss = _finite_field(f"{where}.valid_loss", valid_loss)
        out.append({"epoch": i + 1, "train_loss": train_loss, "valid_loss": valid_loss,
                    "seconds": _finite_field(f"{where}.seconds", record["seconds"],
                                             nonnegative=True)})
    return out


def _regressor_arrays(spec: dict, arrays: dict[str, np.ndarray]):
    """``(state dict, scaling)`` from the arrays read, after checking the scaling
    and that the outputs it produces stay finite.

    Means must be finite; scales finite and at least the smallest normal float64
    (so that ``1 / scale`` is finite). For cells whose hidden state lies in [-1, 1]
    (all but ``cell='rnn', nonlinearity='relu'``), ``|head output| <= sum |head.weight
    row| + |head.bias|``, and that bound times ``y_scale`` plus ``|y_mean|`` must be
    finite: predictions are then finite whatever the input.
    """
    layout, model = spec["layout"], spec["model"]
    for key, shape in spec["shapes"].items():
        a = arrays[key]
        if a.shape != shape or a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8):
            raise _Corrupt(f"array {key!r} has shape {a.shape} and dtype {a.dtype}; "
                           f"expected {shape}, float32 or float64.")
    scaling = tuple(np.array(arrays[k], dtype=np.float64) for k in SCALING_KEYS)
    smallest = np.finfo(np.float64).tiny
    for key, values in zip(SCALING_KEYS, scaling):
        bad = ~np.isfinite(values) if key.endswith("mean") else ~(
            np.isfinite(values) & (values >= smallest))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            expected = "finite" if key.endswith("mean") else (
                f"finite and positive (at least {smallest:.3g})")
            raise _Corrupt(f"{key}[{i}] is {float(values[i])!r}; expected {expected}.")
    state = {k[len("param:"):]: v for k, v in arrays.items() if k.startswith("param:")}
    flat = flat_from_state_dict(layout, state, model.dtype, "the model's parameters")
    if not (model.cell == "rnn" and model.nonlinearity == "relu"):
        views = layout.views(flat)
        w = np.abs(views["head.weight"].astype(np.float64)).sum(axis=1)
        b = np.abs(views["head.bias"].astype(np.float64))
        with np.errstate(over="ignore", invalid="ignore"):
            bound = (w + b) * scaling[3] + np.abs(scaling[2])
        bad = np.flatnonzero(~np.isfinite(bound))
        if bad.size:
            o = int(bad[0])
            raise _Corrupt(f"output {o} can reach {(w + b)[o]:.3g} * y_scale "
                           f"({scaling[3][o]:.3g}) + |y_mean| ({abs(scaling[2][o]):.3g}), "
                           "beyond float64's range: predictions would overflow.")
    return state, scaling
