"""Providers make a box exist, stop, start and destroy it, and say how to reach it.
They never install software: everything after "reachable over SSH" is the shared pipeline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_env.errors import UsageError

if TYPE_CHECKING:
    from mlops_env.config import Resolved
    from mlops_env.keys import KeyPair
    from mlops_env.paths import Paths
    from mlops_env.state import Endpoint, Record

Progress = Callable[[str], None]


@dataclass
class Provisioned:
    """What ``ensure`` returns: how to reach the box, and what it did (created|started|unchanged).

    ``host_key`` is the box's public host key line when the provider learned it through a
    trusted channel (the Docker API, cloud-init user data); ``None`` means the pipeline must
    establish trust itself (``up ssh``: fingerprint confirmation).
    """

    endpoint: Endpoint
    action: str
    host_key: str | None = None
    provider_data: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


class Provider(ABC):
    kind: str = ""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    @abstractmethod
    def plan(self, record: Record | None, options: Resolved) -> list[str]:
        """Lines for ``--dry-run``: what ``ensure`` would do. Changes nothing."""

    @abstractmethod
    def ensure(self, record: Record, options: Resolved, key: KeyPair, progress: Progress) -> Provisioned:
        """Create, start or reuse the box. Idempotent; resumes a half-made box."""

    @abstractmethod
    def state(self, record: Record) -> dict[str, Any]:
        """Live status for ``list``/``status`` (at least ``state``: running|stopped|missing)."""

    @abstractmethod
    def destroy(self, record: Record, progress: Progress) -> list[str]:
        """Remove what the provider created; returns what was removed. Idempotent."""

    def describe_destroy(self, record: Record) -> list[str]:
        return []

    def stop(self, record: Record, progress: Progress) -> str:
        raise UsageError(f"{self.kind} workstations cannot be stopped by mlops-env",
                         hint="stop the box with its own tools")

    def start(self, record: Record, progress: Progress) -> str:
        raise UsageError(f"{self.kind} workstations cannot be started by mlops-env",
                         hint="start the box with its own tools")


def get_provider(kind: str, paths: Paths) -> Provider:
    if kind == "docker":
        from mlops_env.providers.docker import DockerProvider

        return DockerProvider(paths)
    if kind == "ssh":
        from mlops_env.providers.ssh import SshProvider

        return SshProvider(paths)
    raise UsageError(f"unknown provider {kind!r}", hint="use docker or ssh")
