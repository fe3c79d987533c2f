"""Atomic file writes: a temporary file in the same folder, fsync, then os.replace.

A reader (Asterisk reloading, a test) sees either the old file or the new one, never half of one.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

FILE_MODE = 0o640
PRIVATE_MODE = 0o600


def write_atomic(path: Path, text: str, mode: int = FILE_MODE) -> bool:
    """Write `text` to `path` atomically with `mode`. Returns False when the content was already there."""
    path = Path(path)
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask does not apply to fchmod
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    return True


def write_files(directory: Path, files: Mapping[str, str], private: Iterable[str] = ()) -> list[Path]:
    """Write every `name -> text` into `directory`; names in `private` get mode 0600. Returns changed paths."""
    private = set(private)
    changed = []
    for name, text in sorted(files.items()):
        path = Path(directory) / name
        if write_atomic(path, text, PRIVATE_MODE if name in private else FILE_MODE):
            changed.append(path)
    return changed
