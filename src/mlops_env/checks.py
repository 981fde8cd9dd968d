"""The check types shared by ``up`` and ``doctor`` (the bottom of the stack: imports nothing of
mlops-env).

- ``Facts``: what ``templates/facts.sh`` reports about a box;
- ``CheckResult``: one step's check (``steps``: "is this step done?"), the ONE definition of
  done that ``up``, ``up --dry-run``, ``doctor`` and ``doctor --fix`` share;
- ``Check`` and its statuses ``OK``/``WARN``/``FAIL``/``SKIP``: one line of ``doctor``'s
  report (a step's own check, or a read-only probe), ``step`` naming the step that repairs it;
  ``bounded`` runs a local check with a time limit.

Steps, the engine and the doctor all import these from here, so none of them imports another
to learn a type.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
STATUSES = (OK, WARN, FAIL, SKIP)
CATEGORIES = ("system", "python", "docker", "network", "tools", "local")


@dataclass(frozen=True)
class Facts:
    """What ``templates/facts.sh`` reports about a box."""

    values: Mapping[str, str]

    @classmethod
    def parse(cls, text: str) -> Facts:
        vals: dict[str, str] = {}
        for line in text.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                vals[k.strip()] = v.strip()
        return cls(vals)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def arch(self) -> str:
        return self.get("arch")

    @property
    def home(self) -> str:
        return self.get("home")

    @property
    def is_root(self) -> bool:
        return self.get("uid") == "0"

    @property
    def sudo(self) -> str:
        """``root``, ``ok``, ``password`` (sudo asks for one) or ``missing``."""
        return self.get("sudo")

    def has(self, tool: str) -> bool:
        """Whether a command (from facts.sh's ``tools`` list) exists on the box."""
        return tool in self.get("tools").split()

    @property
    def os_label(self) -> str:
        return self.get("os_pretty") or f"{self.get('os_id')} {self.get('os_version')}".strip()


@dataclass(frozen=True)
class CheckResult:
    """The result of a step's check. ``status``: ok | warn | fail | skip."""

    status: str
    message: str
    hint: str | None = None
    exit_code: int = 0
    output: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in (OK, WARN)


@dataclass(frozen=True)
class Check:
    """One doctor check. ``step`` names the ``up`` step whose ``apply`` repairs it."""

    id: str
    status: str
    message: str
    hint: str | None = None
    seconds: float = 0.0
    step: str | None = None

    @property
    def category(self) -> str:
        return self.id.split(".", 1)[0]

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "category": self.category, "status": self.status,
                "message": self.message, "hint": self.hint, "seconds": round(self.seconds, 3)}


def bounded(fn: Callable[[], list[Check]], timeout: float, ids: Sequence[str], what: str) -> list[Check]:
    """Run ``fn`` in a daemon thread; past ``timeout``, report it instead of waiting (the
    thread is abandoned: it cannot keep the process alive)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["v"] = fn()
        except Exception as e:  # noqa: BLE001 - a check reports, it never crashes doctor
            box["e"] = e

    t = threading.Thread(target=run, daemon=True, name=f"doctor-{ids[0]}")
    t0 = time.monotonic()
    t.start()
    t.join(timeout)
    if t.is_alive():
        return [Check(i, WARN, f"{what}: no answer within {timeout:g} s", None, time.monotonic() - t0)
                for i in ids]
    if "e" in box:
        e = box["e"]
        return [Check(ids[0], WARN, f"{what} failed: {type(e).__name__}: {e}", None, time.monotonic() - t0)]
    return list(box["v"])
