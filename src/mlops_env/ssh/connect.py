"""One SSH connection to a workstation with its pinned host key, and the first contact with a
box mlops-env did not make (its key confirmed by the user or by ``--host-key-fingerprint``,
never trusted on first use). paramiko is imported inside the functions."""

from __future__ import annotations

from typing import Any

from mlops_env.errors import HostKeyError
from mlops_env.paths import Paths
from mlops_env.ssh import knownhosts
from mlops_env.state import Endpoint


def connect(paths: Paths, ep: Endpoint, timeout: float) -> Any:
    """One SSH connection with the pinned host key (from the tool's known_hosts)."""
    from mlops_env.ssh.transport import SSHTransport

    pinned = knownhosts.lookup(paths, ep.host_key_alias)
    if not pinned:
        raise HostKeyError(f"no pinned host key for {ep.host_key_alias}",
                           hint="run `mlops-env up` for this workstation again to pin it")
    return SSHTransport(ep.host, ep.port, ep.user, ep.identity_file, pinned[0],
                        timeout=timeout, label=ep.host_key_alias, proxy_command=ep.proxy_command)


def establish_trust(paths: Paths, ep: Endpoint, fingerprint_opt: str | None, events: Any,
                    timeout: float) -> str:
    """First contact with a box we did not make: its host key must be confirmed (or match
    ``--host-key-fingerprint``) before anything is sent. Never trust-on-first-use."""
    from mlops_env.ssh.transport import fingerprint, probe_host_key

    ktype, kb64 = probe_host_key(ep.host, ep.port, timeout=timeout)
    fp = fingerprint(ktype, kb64)
    where = f"{ep.host}:{ep.port}"
    if fingerprint_opt:
        want = fingerprint_opt.strip()
        if not want.startswith("SHA256:"):
            want = "SHA256:" + want
        if want.rstrip("=") != fp:
            raise HostKeyError(
                f"{where} presents host key {fp}, not the fingerprint you passed ({want})",
                hint="this may be an attack, or a typo: on the box, `ssh-keygen -lf "
                "/etc/ssh/ssh_host_ed25519_key.pub` prints the right one",
                code="host-key-mismatch",
            )
    else:
        question = (f"First contact with {where}: it presents the {ktype} host key\n  {fp}\n"
                    "Is this the box's key? (compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on it)")
        if not events.confirm_host_key(question):
            raise HostKeyError(
                f"the host key of {where} ({fp}) was not confirmed",
                hint="check it on the box (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then "
                f"re-run with --host-key-fingerprint {fp}",
                code="host-key-unconfirmed",
            )
    line = f"{ktype} {kb64}"
    knownhosts.pin(paths, ep.host_key_alias, line)
    return line
