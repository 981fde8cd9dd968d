"""Small file helpers: atomic writes that never leave a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same dir, fsync, replace).

    The file gets permission bits ``mode`` before it becomes visible under its name; a private
    ``mode`` (nothing for group and others) also makes it private on Windows, where permission
    bits mean nothing (``osenv.protect``: an ACL for the user, SYSTEM and Administrators only).
    """
    from mlops_env import osenv

    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if osenv.is_windows() and not mode & 0o077:
            osenv.protect(Path(tmp), directory=False)
        osenv.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def file_lock(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (made if missing). When another run holds it for
    longer than ``timeout`` seconds (0: not at all), raise ``BusyError`` saying the other run
    is ``what`` (e.g. "working on 'course'")."""
    from filelock import FileLock, Timeout

    from mlops_env.errors import BusyError

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        waited = f" (waited {timeout:.0f} s)" if timeout else ""
        raise BusyError(f"another mlops-env run is {what}{waited}",
                        hint="wait for it to finish (or stop it), then run this again") from None
    try:
        yield
    finally:
        lock.release()
