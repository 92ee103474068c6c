"""Writing files so that they are never left half-written.

Every file tsrnn writes (model archives, ONNX graphs, forecasts, backtests, plots) goes
through :func:`write_atomically`: the content is written to a temporary file beside the
target, flushed to disk and renamed over the target only once complete.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(fh)`` on a temporary file, then rename it over ``path``.

    The temporary file is ``.<name>.<random>.tmp`` in the folder of ``path`` (following
    a symbolic link at ``path``); once ``write`` returns it is flushed to disk and
    renamed over ``path``, and the folder is synced so the rename survives a power
    loss. On any failure, ``KeyboardInterrupt`` included, the temporary file is removed
    and ``path`` is untouched. Only a kill (SIGKILL, power loss) can leave a temporary
    file behind; it never replaces ``path`` and can be deleted. A file replaced keeps
    its permission bits; a new one gets the usual ones (umask).

    Parameters
    ----------
    path : str or path-like
        The file to create or replace; its folder must exist.
    write : callable
        Writes the whole content to the binary file object it is given.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    folder = target.parent
    tmp = None
    try:
        fd, tmp = _create_temporary(folder, target.name)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _keep_mode(target, tmp)
        os.replace(tmp, target)
        tmp = None
    except BaseException:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise
    _sync_folder(folder)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """:func:`write_atomically` for a text file (UTF-8, newlines as given)."""
    data = text.encode("utf-8")
    write_atomically(path, lambda fh: fh.write(data))


def _create_temporary(folder: Path, name: str) -> tuple[int, str]:
    """``(fd, path)`` of a new, exclusively created file ``.<name>.<random>.tmp``.

    ``os.open`` with mode 0o666 lets the umask decide the permissions, as for any new
    file (``tempfile.mkstemp`` would make it 0o600).
    """
    while True:
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                           | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def _keep_mode(target: Path, tmp: str) -> None:
    """Give ``tmp`` the permission bits of the file it replaces, if there is one."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return
    try:
        os.chmod(tmp, mode)
    except OSError:
        pass


def _sync_folder(folder: Path) -> None:
    """fsync a folder so that a rename in it is durable (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
