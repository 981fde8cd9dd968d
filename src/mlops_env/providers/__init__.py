"""Providers make a box exist, stop, start and destroy it, and say how to reach it.
They never install software: everything after "reachable over SSH" is the shared pipeline
(``pipeline.up``), which the hooks below steer: ``installs`` (bootstrap steps, or a ready box
that only gets doctor's checks and the smoke test), ``remember_options``, ``made_something``,
``host_key_refused``, and for a ready box ``describe``/``setup_hint``/``ready_steps_plan``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_env.errors import UsageError

if TYPE_CHECKING:
    from mlops_env.config import Resolved
    from mlops_env.paths import Paths
    from mlops_env.ssh.keys import KeyPair
    from mlops_env.state import Endpoint, Record

Progress = Callable[[str], None]


@dataclass
class Provisioned:
    """What ``ensure`` returns: how to reach the box, and what it did (created|started|unchanged).

    ``host_key`` is the box's public host key line when the provider learned it through a
    trusted channel (the Docker API, cloud-init user data); ``None`` means the pipeline must
    establish trust itself (``up ssh``: fingerprint confirmation).
    ``ready_timeout``: seconds a freshly booted box may need before sshd answers (a cloud
    instance's first boot, a codespace's tunnel); the pipeline waits at least that long for the
    connection.
    """

    endpoint: Endpoint | None  # None: the box exists but is not reachable over SSH from here
    action: str
    host_key: str | None = None
    provider_data: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    ready_timeout: float | None = None
    #: the pinned key belongs to another box now (a new codespace behind the same name): replace it
    replace_pin: bool = False
    #: warnings for the user (shown once, kept in the result)
    notices: list[str] = field(default_factory=list)
    #: keys the provider adds to ``up``'s result (a codespace: the codespace, links, cost...)
    summary: dict[str, Any] = field(default_factory=dict)
    #: why ``endpoint`` is None (the steps after provisioning are skipped with this reason)
    unreachable: str | None = None


class Provider(ABC):
    kind: str = ""
    #: True: ``up`` runs the bootstrap steps on the box (check, apply what is missing). False: the
    #: box comes ready (a codespace's dev container installed conda and Docker): ``up`` writes
    #: the SSH alias, runs doctor's box checks (a problem is reported, not repaired) and the
    #: smoke test, and asks nothing about installers.
    installs: bool = True
    #: the ``up`` options a ready box's record keeps (``installs`` False); the others keep all
    up_options: tuple[str, ...] = ()
    #: appended to "connecting to USER@HOST" (default ``:PORT``)
    connect_via: str = ""
    #: how ``up`` names the box in its messages ("the codespace")
    box_noun: str = "the box"
    #: what set a ready box up, for doctor's summary line ("the dev container")
    made_by: str = "the box"

    @property
    def box_title(self) -> str:
        """The provisioning step's title."""
        return f"{self.kind} box"

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        # Set by the pipeline before ensure(): ask the user (honours --yes; False without a
        # terminal) and show a warning. A provider never prints.
        self.confirm: Callable[[str], bool] = lambda question: False
        self.warn: Callable[[str], None] = lambda message: None
        # Set by the pipeline: call it with provider_data the moment the provider has made
        # something `down` would have to remove (the record is saved then; a failed first
        # `up` that made nothing leaves no record).
        self.created: Callable[[dict[str, Any]], None] = lambda data: None
        # Set by the pipeline: False with --provision-only (no connection follows ensure(), so
        # a provider that leaves a check to that connection must make it itself).
        self.will_connect = True

    # -- hooks of the pipeline (defaults fit a box that gets the bootstrap steps) ----------------
    def remember_options(self, record: Record, options: Resolved) -> None:
        """Keep the options this workstation was made with in its record: the defaults of its
        later runs (with their sources, so a built-in default is not mistaken for a choice)."""
        record.options = dict(options.values)
        record.option_sources = dict(options.sources)

    def made_something(self, record: Record) -> bool:
        """After a failed first ``ensure``: whether the record must stay (something exists that
        ``down`` would remove). Default True: a provider saves it through ``created``."""
        return True

    def host_key_refused(self, record: Record, error: Exception) -> Exception:
        """The error to show when the pinned host key does not match (default: as it is)."""
        return error

    def describe(self, record: Record) -> str:
        """The box in doctor's report header."""
        return f"{self.kind} workstation {record.name}"

    def setup_hint(self, record: Record) -> str:
        """A ready box's hint when doctor finds problems (``installs`` False)."""
        return f"run `mlops-env doctor {record.name}` for details"

    def ready_steps_plan(self, record: Record, options: Resolved) -> list[tuple[str, str]]:
        """A ready box's ``--dry-run``: (step id, what it would do) for ssh-config, doctor, smoke."""
        return []

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

    def endpoint(self, record: Record) -> Endpoint | None:
        """Where the box answers now (after ``start`` a cloud box has a new public IP), so
        ``start`` can rewrite the SSH config; None when the provider cannot tell."""
        return None

    def discover(self, records: list[Record], hints: dict[str, Any]) -> list[dict[str, Any]]:
        """Workstations this provider sees that local state does not know (``list``): rows
        with at least ``name`` and ``state``. ``hints`` holds ``list``'s options (``region``...)."""
        return []

    def adopt(self, name: str, hints: dict[str, Any]) -> Record | None:
        """A record for a workstation found outside local state (``down NAME --region R``
        from another machine), or None when there is nothing of that name."""
        return None

    def links(self, record: Record) -> dict[str, str]:
        """Ways to open the workstation other than ``ssh ALIAS`` (a codespace: ``browser`` and
        ``vscode`` URLs), for ``code``, and ``ssh`` when there is no SSH alias."""
        return {}


PROVIDER_KINDS = ("docker", "ssh", "ec2", "codespace")


def get_provider(kind: str, paths: Paths) -> Provider:
    if kind == "docker":
        from mlops_env.providers.docker.provider import DockerProvider

        return DockerProvider(paths)
    if kind == "ssh":
        from mlops_env.providers.ssh import SshProvider

        return SshProvider(paths)
    if kind == "ec2":
        from mlops_env.providers.ec2.provider import Ec2Provider

        return Ec2Provider(paths)
    if kind == "codespace":
        from mlops_env.providers.codespace.provider import CodespaceProvider

        return CodespaceProvider(paths)
    raise UsageError(f"unknown provider {kind!r}", hint="use docker, ssh, ec2 or codespace")
