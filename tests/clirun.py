"""Helpers shared by the tests that run the INSTALLED ``mlops-env`` as a separate process
(tests/e2e, tests/ec2, tests/codespace): its path and the result of one run."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
        return f"exit {self.code}\nstdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}"
