"""Atomic writes, the one helper every writer uses: a temp file (or directory) beside the target, then ``os.replace``
(atomic on POSIX), so a crash never leaves a half-written file under the real name.

    with atomic_path("out/episode.mp4", suffix=".mp4") as tmp: write(tmp)      # any writer that takes a path
    atomic_write_text("out/result.json", text)                                  # small files
    with atomic_directory("models/mine") as tmp: save_everything_into(tmp)      # a whole directory
"""

from __future__ import annotations

import os
import shutil
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


def normalize_permissions(root: str | os.PathLike) -> None:
    """Give ``root`` and everything below it the usual permissions (directories ``0o777 & ~umask``, files
    ``0o666 & ~umask``): ``mkdtemp`` makes 0o700 directories and some writers (safetensors) 0o600 files."""
    umask = os.umask(0)
    os.umask(umask)
    root = Path(root)
    os.chmod(root, 0o777 & ~umask)
    for path in root.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


@contextmanager
def atomic_directory(directory: str | os.PathLike) -> Iterator[Path]:
    """Write a directory atomically: yields a temp sibling to fill; on success it replaces ``directory`` (an old one
    is moved aside first), on error it is deleted. The result gets the usual permissions
    (:func:`normalize_permissions`)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        yield tmp
        normalize_permissions(tmp)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def removed_if_left_empty(directory: str | os.PathLike) -> Iterator[Path]:
    """Run work that writes into ``directory``: if it fails, the directories this call found missing (so the work
    created them) are removed again when no file was written under them. A failed command leaves no empty output
    directory behind; one that existed before is never removed."""
    path = Path(directory).expanduser()
    top, parent = None, path.absolute()
    while not parent.exists() and parent != parent.parent:
        parent, top = parent.parent, parent
    try:
        yield path
    except BaseException:
        if top is not None and top.is_dir() and not any(not p.is_dir() or p.is_symlink() for p in top.rglob("*")):
            shutil.rmtree(top, ignore_errors=True)
        raise
