"""Atomic single-file writes: write a temp file beside the target, then ``os.replace`` it (atomic on POSIX), so a
crash never leaves a half-written file under the real name. Directory saves use
:func:`vjepa2_ac.checkpoint.atomic_directory`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp", fsync: bool = False,
                mode: int = 0o644) -> Iterator[Path]:
    """Yield a temp path in ``path``'s directory; on a clean exit it becomes ``path``, on an error it is deleted.

    suffix: the temp file's extension (writers that pick a format from it, e.g. PyAV, need the real one).
    fsync: flush the file and its directory to disk before returning (checkpoints, indexes).
    mode: permissions of the final file (``mkstemp`` creates 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        if fsync:
            _fsync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful replace


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (fsync'd by default)."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass
