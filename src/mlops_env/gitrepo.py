"""A course repository cloned on the box (``up --clone URL [--clone-dir DIR]``, ``repo:`` in a
class roster): what URLs and folders are accepted.

The URL reaches the box's ``git clone`` as one quoted argument after ``--`` (templates/clone.sh);
these checks refuse what git would still read as something else: an option (a leading ``-``),
a transport helper (``ext::``, ``fd::``), a local path or ``file://``, whitespace or control
characters. Accepted: ``https://HOST/...``, ``ssh://[USER@]HOST[:PORT]/...``,
``git://HOST[:PORT]/...`` and scp-like ``USER@HOST:PATH``.
"""

from __future__ import annotations

import re
from typing import Any

_SCHEME = re.compile(r"^(https|ssh|git)://(?:[A-Za-z0-9._~%!$&'()*+,;=-]+@)?"
                     r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?/[^\s]*$")
_SCP = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?:(?!/?-)[^\s:][^\s]*$")
_DIR = re.compile(r"^(?!-)[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}$")


def check_url(v: Any) -> str:
    """The URL, or ``ValueError`` saying what is accepted."""
    if not isinstance(v, str):
        raise ValueError(f"expected a git URL, got {v!r}")
    s = v.strip()
    if not s:
        raise ValueError("expected a git URL, got an empty string")
    if s.startswith("-"):
        raise ValueError(f"a git URL cannot start with '-' (git would read it as an option): {v!r}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in s):
        raise ValueError("a git URL must not contain whitespace or control characters")
    if "::" in s.split("/", 1)[0]:
        raise ValueError(f"git transport helpers ({s.split('::')[0]}::) are not allowed: {v!r}")
    if _SCHEME.match(s) or _SCP.match(s):
        return s
    raise ValueError(f"expected an https://, ssh:// or git:// URL or USER@HOST:PATH, got {v!r}")


def check_dir(v: Any) -> str:
    """A folder relative to the login user's home directory (no ``..``, no leading ``-`` or ``/``)."""
    if not isinstance(v, str):
        raise ValueError(f"expected a folder name, got {v!r}")
    s = v.strip().rstrip("/")
    if s.startswith("~/"):
        s = s[2:]
    if not _DIR.match(s) or any(part in ("", ".", "..") for part in s.split("/")):
        raise ValueError(f"expected a folder under the home directory such as course or src/course "
                         f"(a-z, 0-9, '.', '_', '-', '/'; no '..'), got {v!r}")
    return s


def default_dir(url: str) -> str:
    """The folder ``git clone`` would pick: the URL's last part without ``.git``."""
    tail = re.split(r"[/:]", url.rstrip("/"))[-1]
    if tail.endswith(".git"):
        tail = tail[:-4]
    try:
        return check_dir(tail)
    except ValueError:
        return "course"
