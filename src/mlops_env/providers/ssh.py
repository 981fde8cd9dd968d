"""``up ssh``: bring your own box. The provider only records how to reach it; the box must
already exist. Its host key is not known through a trusted channel, so the pipeline asks the
user to confirm the fingerprint on first contact (or compares ``--host-key-fingerprint``).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_env.errors import UsageError
from mlops_env.providers import Progress, Provider, Provisioned
from mlops_env.ssh.config import host_key_alias_for
from mlops_env.state import Endpoint

if TYPE_CHECKING:
    from mlops_env.config import Resolved
    from mlops_env.ssh.keys import KeyPair
    from mlops_env.state import Record

_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$", re.IGNORECASE)
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Target:
    user: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def parse_target(text: str) -> Target:
    """``USER@HOST[:PORT]`` (IPv6 as ``USER@[::1]:PORT``)."""
    bad = UsageError(f"invalid --host {text!r}: expected USER@HOST[:PORT]",
                     hint="for example: --host ubuntu@203.0.113.7 or --host me@box.example.org:2222",
                     code="invalid-host")
    if "@" not in text:
        raise bad
    user, rest = text.split("@", 1)
    port = 22
    if rest.startswith("["):
        m = re.match(r"^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$", rest)
        if not m:
            raise bad
        host, p = m.group(1), m.group(2)
    else:
        host, _, p = rest.partition(":")
        if not _HOST_RE.match(host):
            raise bad
    if p:
        if not p.isdigit() or not 1 <= int(p) <= 65535:
            raise bad
        port = int(p)
    if not _USER_RE.match(user):
        raise bad
    return Target(user, host, port)


class SshProvider(Provider):
    kind = "ssh"

    def target(self, record: Record) -> Target:
        return parse_target(str(record.provider_data["target"]))

    def plan(self, record: Record | None, options: Resolved) -> list[str]:
        if record is None:
            return []
        return [f"use the existing box {self.target(record)} (nothing is created)"]

    def ensure(self, record: Record, options: Resolved, key: KeyPair, progress: Progress) -> Provisioned:
        t = self.target(record)
        identity = record.provider_data.get("identity") or str(key.private_path)
        ep = Endpoint(host=t.host, port=t.port, user=t.user, identity_file=str(identity),
                      host_key_alias=host_key_alias_for(record.name))
        return Provisioned(endpoint=ep, action="unchanged", host_key=None,
                           provider_data=dict(record.provider_data), detail=f"box {t}")

    def state(self, record: Record) -> dict[str, Any]:
        t = self.target(record)
        try:
            with socket.create_connection((t.host, t.port), timeout=2):
                return {"state": "reachable", "target": str(t)}
        except OSError as e:
            return {"state": "unreachable", "target": str(t), "detail": str(e)}

    def describe_destroy(self, record: Record) -> list[str]:
        return [f"forget the box {self.target(record)} (nothing on it is changed)"]

    def destroy(self, record: Record, progress: Progress) -> list[str]:
        return []
