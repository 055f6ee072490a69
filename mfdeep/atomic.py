"""Atomic file writes: a file under its final name is always complete.

Every result file of the command line (reports, figures, simulation arrays,
sweep task files) goes through :func:`atomic_write`: the data go to a
temporary file in the same folder, are flushed and fsynced, and the
temporary file is renamed over the target. A reader therefore sees the old
file or the new one, never a half-written one, whatever kills the writer.
"""

from __future__ import annotations

import os
import pathlib
import tempfile


def _umask():
    """The process's umask, read without changing it where Linux allows
    (``/proc/self/status``); elsewhere set and restored at once."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # pragma: no cover (not Linux)
    os.umask(mask)
    return mask


def folder_problem(path):
    """Why ``path`` cannot be (or become) a folder of results, or None.

    A path that is a file, or lies below a file, cannot; one that does not
    exist yet can (it is created when the results are written).
    """
    path = pathlib.Path(path)
    if path.exists():
        return None if path.is_dir() else f"{str(path)!r} is a file, not a folder"
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{str(path)!r} lies below the file {str(parent)!r}"
            return None
    return None


def atomic_write(path, data):
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The target; its folder must exist.
    data : str, bytes or callable
        Text (written as UTF-8), bytes, or a function ``write(fh)`` that
        writes to a binary file object (``numpy.savez``, say).

    Notes
    -----
    The temporary file ``.<name>.<random>.tmp`` is removed if the write
    fails; after a SIGKILL it may be left behind, but never under the
    target's name. The file gets the usual mode (``0666 & ~umask``), not
    the private mode of ``mkstemp``.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
