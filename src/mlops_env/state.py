"""One versioned state record per workstation.

Records live in ``<data>/state/<name>.json``, written atomically (temp file + replace), so a
killed run never leaves a file the next run cannot read. ``workstation_lock`` serialises runs
that change the same workstation (two ``up`` at once).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_env.errors import ConfigError, NotFoundError, UsageError
from mlops_env.fsutil import atomic_write, file_lock
from mlops_env.paths import Paths, ensure_private_dir

SCHEMA = 1
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


def validate_name(name: str) -> str:
    """Workstation names: 1-32 chars of ``[a-z0-9-]``, not starting or ending with ``-``."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(
            f"invalid workstation name {name!r}: use 1-32 characters a-z, 0-9 and '-'",
            hint="for example: mlops-env up docker course",
            code="invalid-name",
        )
    return name


@dataclass(frozen=True)
class Endpoint:
    """How to reach a box over SSH. Its host key is pinned in the tool's known_hosts file
    under ``host_key_alias`` (the one source of truth, read by paramiko and OpenSSH alike)."""

    host: str
    port: int
    user: str
    identity_file: str
    host_key_alias: str
    # A command whose stdin/stdout is the SSH connection (OpenSSH's ProxyCommand; a codespace is
    # reached through `gh codespace ssh --stdio`), shell-quoted; None = TCP to host:port.
    proxy_command: str | None = None


@dataclass
class Record:
    name: str
    provider: str
    alias: str
    endpoint: Endpoint | None = None
    phase: str = "new"  # new -> provisioned -> ready
    options: dict[str, Any] = field(default_factory=dict)
    # Where each option came from at the last `up` (flag, env, file, default, ...): the values
    # that were chosen (not built-in defaults) are the defaults of the next `up`.
    option_sources: dict[str, str] = field(default_factory=dict)
    provider_data: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    schema: int = SCHEMA

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], source: Path) -> Record:
        schema = d.get("schema")
        if not isinstance(schema, int):
            raise ConfigError(f"state file {source} has no schema version",
                              hint=f"move it away and run `mlops-env up` again: mv {source} {source}.bad")
        if schema > SCHEMA:
            raise ConfigError(
                f"state file {source} was written by a newer mlops-env (schema {schema})",
                hint="upgrade mlops-env: pip install -U mlops-env",
            )
        try:
            ep = d.get("endpoint")
            return cls(
                name=d["name"],
                provider=d["provider"],
                alias=d["alias"],
                endpoint=Endpoint(**ep) if ep else None,
                phase=d.get("phase", "new"),
                options=dict(d.get("options") or {}),
                option_sources=dict(d.get("option_sources") or {}),
                provider_data=dict(d.get("provider_data") or {}),
                steps=dict(d.get("steps") or {}),
                created=float(d.get("created") or time.time()),
                updated=float(d.get("updated") or time.time()),
                schema=SCHEMA,
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"state file {source} is malformed ({e})",
                              hint=f"move it away and run `mlops-env up` again: mv {source} {source}.bad") from e


class Store:
    """Reads and writes state records below ``paths.state_dir``."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    @property
    def dir(self) -> Path:
        return self.paths.state_dir

    def path(self, name: str) -> Path:
        return self.dir / f"{validate_name(name)}.json"

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def load(self, name: str) -> Record:
        p = self.path(name)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError(
                f"unknown workstation {name!r}",
                hint="see `mlops-env list` for the workstations this machine knows",
                code="unknown-workstation",
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"state file {p} is not valid JSON (line {e.lineno})",
                              hint=f"move it away and run `mlops-env up` again: mv {p} {p}.bad") from e
        return Record.from_json(data, p)

    def find(self, name: str) -> Record | None:
        try:
            return self.load(name)
        except NotFoundError:
            return None

    def save(self, record: Record) -> None:
        ensure_private_dir(self.paths.data)
        ensure_private_dir(self.dir)
        record.updated = time.time()
        atomic_write(self.path(record.name), json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n")

    def delete(self, name: str) -> bool:
        try:
            self.path(name).unlink()
            return True
        except FileNotFoundError:
            return False

    def all(self) -> list[Record]:
        out: list[Record] = []
        if not self.dir.is_dir():
            return out
        for p in sorted(self.dir.glob("*.json")):
            if not NAME_RE.match(p.stem):
                continue
            out.append(self.load(p.stem))
        return out

    @contextmanager
    def lock(self, name: str, what: str = "up") -> Iterator[None]:
        """Hold the workstation's lock; a second run fails at once with a clear error."""
        ensure_private_dir(self.paths.data)
        ensure_private_dir(self.dir)
        with file_lock(self.dir / f"{validate_name(name)}.lock", timeout=0, what=f"working on {name!r}"):
            yield
