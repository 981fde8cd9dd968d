"""Helpers shared by the tests that run the INSTALLED ``mlops-env`` as a separate process
(tests/e2e, tests/ec2, tests/codespace): its path, the result of one run, and the argv of a
run that a test will interrupt (``with_default_sigint``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run by the child's own Python: give SIGINT its default disposition, then become the program.
# A suite started from a background job of a non-interactive shell (`pytest ... &` in a script,
# a CI runner) inherits SIGINT *ignored*, and so would every child: a Python that starts with
# SIGINT ignored never raises KeyboardInterrupt, and a test's Ctrl-C would do nothing.
_SIGINT_DEFAULT_EXEC = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                        "os.execv(sys.argv[1], sys.argv[1:])")


def with_default_sigint(argv: list[str]) -> list[str]:
    """``argv`` behind a tiny exec wrapper that resets SIGINT to its default disposition first
    (same PID after the exec: signal the Popen as usual). For every child a test sends SIGINT."""
    return [sys.executable, "-c", _SIGINT_DEFAULT_EXEC, *argv]


def mlops_env_bin() -> str:
    """The console script installed next to this Python (``pip install -e .`` made it)."""
    exe = Path(sys.executable).parent / "mlops-env"
    if not exe.exists():
        raise AssertionError(f"the mlops-env console script is not installed next to {sys.executable}: pip install -e .")
    return str(exe)


@dataclass
class Run:
    """One finished run: exit code, stdout, stderr, and the ``--json`` envelope's parts."""

    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.json["data"])

    @property
    def error(self) -> dict[str, Any]:
        return dict(self.json["errors"][0])

    def __str__(self) -> str:
        """For assertion messages only (the tail of each stream): leak checks read ``stdout`` and
        ``stderr`` whole, or ``everything``."""
        return f"exit {self.code}\nstdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}"

    @property
    def everything(self) -> str:
        """The whole stdout and stderr: what a leak check must read."""
        return self.stdout + "\n" + self.stderr


# ------------------------------------------------------------------------------ leak checks
# Every run of the CLI that a helper makes (cshelp.User, ec2help.User) is *watched*: remembered
# with the secrets it was given and the folders it writes to. After each test, tests/conftest.py
# (fixture ``_leak_check``) scans the WHOLE stdout and stderr of every watched run and every
# byte of every file below those folders: no tail, no size limit.
_WATCHED: list[tuple[Run, tuple[str, ...], tuple[Path, ...]]] = []


def watch(run: Run, secrets: Iterable[str | None], dirs: Iterable[Path] = ()) -> Run:
    """Remember ``run`` for the leak check at the end of the test; returns it."""
    _WATCHED.append((run, tuple(s for s in secrets if s), tuple(dirs)))
    return run


def take_watched() -> list[tuple[Run, tuple[str, ...], tuple[Path, ...]]]:
    """The runs watched since the last call (and forget them)."""
    out = list(_WATCHED)
    _WATCHED.clear()
    return out


def _texts(item: Any) -> list[tuple[str, str]]:
    if isinstance(item, str):
        return [("text", item)]
    if isinstance(item, Run) or hasattr(item, "stdout"):
        return [("stdout", item.stdout or ""), ("stderr", item.stderr or "")]
    raise TypeError(f"cannot scan {type(item).__name__}")


def leaks(secrets: Iterable[str | None], *runs: Any, dirs: Iterable[Path] = ()) -> list[str]:
    """Where any of ``secrets`` appears: in the whole stdout/stderr of each run (a ``Run``, a
    ``CompletedProcess`` or a plain string), or anywhere in any file below ``dirs``."""
    wanted = [s for s in secrets if s]
    found: list[str] = []
    for i, run in enumerate(runs):
        for where, text in _texts(run):
            for n, s in enumerate(wanted):
                at = text.find(s)
                if at >= 0:
                    found.append(f"secret #{n} in the {where} of run #{i} at character {at} of {len(text)}")
    raw = [s.encode() for s in wanted]
    for d in dirs:
        if not d.exists():
            continue
        for f in sorted(p for p in d.rglob("*") if p.is_file() and not p.is_symlink()):
            data = f.read_bytes()
            for n, b in enumerate(raw):
                if b in data:
                    found.append(f"secret #{n} in {f}")
    return found


def assert_nowhere(secrets: Iterable[str | None], *runs: Any, dirs: Iterable[Path] = ()) -> None:
    found = leaks(secrets, *runs, dirs=dirs)
    assert not found, "secret leaked: " + "; ".join(found)
