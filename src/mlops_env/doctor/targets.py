"""What ``doctor`` checks: this machine (``local_target``, ``machine_role``), a workstation
mlops-env knows (``workstation_target``), or any box over SSH (``host_target``: first contact as
in ``up ssh``, the key pinned for this run only)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_env.config import Resolved
    from mlops_env.events import Events
    from mlops_env.paths import Paths
    from mlops_env.state import Endpoint, Record
    from mlops_env.steps import StepContext
    from mlops_env.transport import Transport

log = logging.getLogger(__name__)


@dataclass
class Target:
    """What doctor checks: this machine, a known workstation, or any box over SSH."""

    mode: str  # "local" | "workstation" | "host"
    label: str
    record: Record
    endpoint: Endpoint
    fix_command: str
    connect: Callable[[], Transport] | None = None
    probes: int = 0  # extra TCP connections (first-contact host key probe)
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    # this machine only: "laptop" (drives workstations: its own side, in Python, no bash) or
    # "workstation" (the course's tools here too); ``why`` says how that was judged
    role: str = "workstation"
    why: str = ""

    @property
    def remote(self) -> bool:
        return self.mode != "local"

    def close(self) -> None:
        for fn in self.cleanup:
            fn()
        self.cleanup.clear()


def machine_role(paths: Paths, as_workstation: bool = False) -> tuple[str, str]:
    """What this machine is for: ``("laptop" | "workstation", why)``.

    A laptop drives workstations: conda, Docker compose and the course's libraries belong on
    them, so their absence here is no failure. Windows and macOS are laptops (the workstations
    are Linux boxes); Linux is one when mlops-env knows a workstation, else it is checked as the
    workstation itself. ``as_workstation`` (``doctor --as-workstation``) says so explicitly.
    """
    from mlops_env import osenv

    sysname = osenv.system()
    if as_workstation:
        return "workstation", "asked with --as-workstation"
    if sysname != osenv.LINUX:
        label = {"windows": "Windows", "macos": "macOS"}[sysname]
        return "laptop", f"a {label} machine drives Linux workstations"
    try:
        from mlops_env.state import Store

        names = [r.name for r in Store(paths).all()]
    except Exception as e:  # noqa: BLE001 - a broken state file is reported by `list`
        log.debug("cannot list workstations: %s", e)
        names = []
    if names:
        shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        return "laptop", f"this machine drives workstation{'s' if len(names) > 1 else ''} {shown}"
    return "workstation", "no workstation known yet: this machine is checked as one"


def local_target(role: str = "workstation", why: str = "") -> Target:
    import getpass

    from mlops_env.state import Endpoint, Record

    user = getpass.getuser()
    ep = Endpoint(host="localhost", port=22, user=user, identity_file="", host_key_alias="mlops-env-local")
    rec = Record(name="local", provider="local", alias="mlops-local", endpoint=ep)

    def connect() -> Transport:
        from mlops_env.transport.local import LocalTransport

        return LocalTransport()

    fix = "mlops-env doctor --as-workstation --fix" if role == "workstation" and why.startswith("asked") \
        else "mlops-env doctor --fix"
    return Target("local", "this machine", rec, ep, fix, connect, role=role, why=why)


def workstation_target(paths: Paths, name: str, timeout: float) -> Target:
    """A workstation mlops-env knows: its pinned host key, its login."""
    from mlops_env.errors import ConnectError, NotFoundError
    from mlops_env.ssh.connect import connect
    from mlops_env.state import Store, validate_name

    validate_name(name)
    rec = Store(paths).load(name)
    ep = rec.endpoint
    if ep is None:
        raise NotFoundError(f"workstation {name!r} has not been set up yet (no address)",
                            hint=f"run `mlops-env up {rec.provider} {name}` first", code="not-provisioned")

    def do_connect() -> Transport:
        try:
            return connect(paths, ep, timeout)  # type: ignore[no-any-return]
        except ConnectError as e:
            if rec.provider == "docker" and e.code == "unreachable":
                e.hint = f"is the container stopped? `mlops-env start {name}`; {e.hint}"
            raise

    label = f"workstation {name} ({ep.user}@{ep.host}:{ep.port})"
    return Target("workstation", label, rec, ep, f"mlops-env doctor {name} --fix", do_connect)


def host_target(paths: Paths, spec: str, identity: str | None, fingerprint: str | None,
                events: Events, timeout: float) -> Target:
    """Any box over SSH (``--host USER@HOST[:PORT]``). Host key: a workstation we know at this
    address keeps its pin; otherwise first contact works exactly as in ``up ssh`` (confirm the
    fingerprint on a terminal, or ``--host-key-fingerprint``), but the key is pinned only for
    this run, in a temporary known_hosts: a read-only look at a box does not make mlops-env
    remember it (``up ssh NAME --host ...`` does)."""
    from mlops_env.errors import UsageError
    from mlops_env.paths import Paths as PathsT
    from mlops_env.providers.ssh import parse_target
    from mlops_env.ssh.connect import connect, establish_trust
    from mlops_env.ssh.keys import check_keypair
    from mlops_env.state import Endpoint, Record, Store

    t = parse_target(spec)
    known = next((r for r in Store(paths).all() if r.endpoint and (r.endpoint.host, r.endpoint.port,
                                                                   r.endpoint.user) == (t.host, t.port, t.user)), None)
    if identity is None and known is not None and known.endpoint is not None:
        identity = known.endpoint.identity_file
    if identity is None:
        kc = check_keypair(paths)
        if kc.keypair is None:
            raise UsageError("no key to log in with: mlops-env has no key yet",
                             hint="pass --identity KEYFILE (the private key that opens this box)",
                             code="identity-missing")
        identity = str(kc.keypair.private_path)
    alias = known.endpoint.host_key_alias if known and known.endpoint else "mlops-env-doctor"
    ep = Endpoint(host=t.host, port=t.port, user=t.user, identity_file=identity, host_key_alias=alias)
    rec = Record(name="host", provider="ssh", alias="mlops-doctor", endpoint=ep)
    target = Target("host", str(t), rec, ep, f"mlops-env doctor --host {spec} --fix")
    from mlops_env.ssh import knownhosts

    if known is not None and knownhosts.lookup(paths, alias):
        target.label = f"{t} (workstation {known.name})"
        target.connect = lambda: connect(paths, ep, timeout)
        return target
    tmp = tempfile.TemporaryDirectory(prefix="mlops-env-doctor-")
    target.cleanup.append(tmp.cleanup)
    trust = PathsT(data=Path(tmp.name), config=Path(tmp.name), cache=Path(tmp.name), logs=Path(tmp.name))
    pinned: list[str] = []

    def do_connect() -> Transport:
        if not pinned:
            pinned.append(establish_trust(trust, ep, fingerprint, events, timeout))
            target.probes += 1
        return connect(trust, ep, timeout)  # type: ignore[no-any-return]

    target.connect = do_connect
    return target


def _record_ctx(record: Record, paths: Paths, options: Resolved) -> StepContext:
    from mlops_env.checks import Facts
    from mlops_env.config import Resolved as R
    from mlops_env.steps import StepContext

    values = dict(options.values)
    values.update({k: v for k, v in (record.options or {}).items() if k in values})
    assert record.endpoint is not None
    return StepContext(transport=None, facts=Facts({}), options=R(values, dict(options.sources)),  # type: ignore[arg-type]
                       record=record, paths=paths, endpoint=record.endpoint)
