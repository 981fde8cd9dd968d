"""The tool's own known_hosts file: one pinned host key per workstation.

Entries are keyed by a *HostKeyAlias* (``mlops-env-<name>``), never by address or port, so an
EC2 box that comes back with a new IP, or a container published on a new port, keeps its pin.
The same alias is written as ``HostKeyAlias`` in the tool's ssh config, so OpenSSH (and VS Code
Remote-SSH through it) checks exactly the key pinned here; the file is plain OpenSSH
known_hosts format (``alias key-type base64``, unhashed) that ``ssh-keygen -F alias -f FILE``
finds. paramiko users should call ``verify`` with the key the server presented instead of
loading this file, because paramiko would look the key up by ``[host]:port``.

Writes are atomic and serialised by a file lock next to the file; reads need no lock.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager

from mlops_env.errors import HostKeyError
from mlops_env.fsutil import atomic_write, file_lock
from mlops_env.paths import Paths, ensure_private_dir
from mlops_env.ssh.config import validate_alias
from mlops_env.ssh.keys import fingerprint_of_blob, split_public_key

HEADER = (
    "# Host keys pinned by mlops-env (OpenSSH known_hosts format), one per workstation,\n"
    "# keyed by the HostKeyAlias from mlops-env's ssh config. Managed by mlops-env.\n"
)
_LOCK_TIMEOUT = 30.0
_ALIAS_PREFIX = "mlops-env-"


def lookup(paths: Paths, alias: str) -> list[str]:
    """The keys pinned for ``alias``, each as ``"key-type base64"``; ``[]`` when none."""
    validate_alias(alias)
    return [f"{t} {b}" for t, b in _entries(_read(paths), alias)]


def fingerprints(paths: Paths, alias: str) -> list[str]:
    """``SHA256:...`` fingerprints of the keys pinned for ``alias``."""
    return [_fp(b) for _, b in _entries(_read(paths), validate_alias(alias))]


def check_pin(paths: Paths, alias: str, public_key_line: str, *, replace: bool = False) -> bool:
    """Read-only: would ``pin`` change the file? Raises like ``pin`` on a conflicting key."""
    return _pinned_text(paths, _read(paths), alias, public_key_line, replace) is not None


def pin(paths: Paths, alias: str, public_key_line: str, *, replace: bool = False) -> bool:
    """Pin ``public_key_line`` (``"type base64 [comment]"``) as the host key of ``alias``.

    Returns True when the file changed, False when exactly this key was already pinned.
    When a *different* key is pinned for ``alias`` this raises ``HostKeyError`` (the same
    "host key changed" error as ``verify``) unless ``replace=True``, which swaps it: only
    for a box the caller knows was rebuilt (a new container, a host key we generated).
    """
    with _locked(paths):
        text = _read(paths)
        new = _pinned_text(paths, text, alias, public_key_line, replace)
        if new is None:
            return False
        _write(paths, new)
        return True


def check_unpin(paths: Paths, alias: str) -> bool:
    """Read-only: would ``unpin`` change the file?"""
    return bool(_entries(_read(paths), validate_alias(alias)))


def unpin(paths: Paths, alias: str) -> bool:
    """Forget every key pinned for ``alias``; True when something was removed."""
    validate_alias(alias)
    with _locked(paths):
        text = _read(paths)
        new = _without(text, alias)
        if new == text:
            return False
        _write(paths, new)
        return True


def verify(
    paths: Paths,
    alias: str,
    presented_key_type: str,
    presented_key_base64: str,
    *,
    name: str | None = None,
) -> str:
    """Check the key a server presented against the pin for ``alias``.

    Returns the key's ``SHA256:...`` fingerprint when it matches. Raises ``HostKeyError`` with
    code ``host-key-unknown`` when nothing is pinned for ``alias``, and ``host-key-changed``
    when a different key is pinned. ``name`` (the workstation) is used in the hint; it defaults
    to ``alias`` without its ``mlops-env-`` prefix.
    """
    validate_alias(alias)
    name = name or (alias[len(_ALIAS_PREFIX) :] if alias.startswith(_ALIAS_PREFIX) else alias)
    pinned = _entries(_read(paths), alias)
    got = _fp(presented_key_base64)
    if not pinned:
        raise HostKeyError(
            f"no host key is pinned for {alias} (the box presented {presented_key_type} {got})",
            hint=(
                f"run `mlops-env up` for {name} to check the fingerprint and pin it; "
                f"connect only if {got} is the box's real key"
            ),
            code="host-key-unknown",
        )
    if (presented_key_type, presented_key_base64) in pinned:
        return got
    expected = ", ".join(_fp(b) for _, b in pinned)
    raise HostKeyError(
        f"host key for {name} ({alias}) changed: expected {expected}, got {got}; "
        "this may be an attack (someone intercepting the connection), so mlops-env refuses "
        "to connect",
        hint=(
            f"if the box was rebuilt, run `mlops-env down {name}` and then `mlops-env up` "
            f"again; otherwise find out why the key changed before connecting"
        ),
        code="host-key-changed",
    )


# -- internals -----------------------------------------------------------------------------


def _fp(b64: str) -> str:
    try:
        return fingerprint_of_blob(base64.b64decode(b64, validate=True))
    except (binascii.Error, ValueError):
        return "(not a valid key)"


def _read(paths: Paths) -> str:
    try:
        return paths.known_hosts.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return ""


def _write(paths: Paths, text: str) -> None:
    ensure_private_dir(paths.ssh_dir)
    atomic_write(paths.known_hosts, text.encode("utf-8", errors="surrogateescape"), mode=0o600)


def _hosts_field_matches(line: str, alias: str) -> list[str] | None:
    """The fields of ``line`` when it is a plain entry for ``alias``, else None."""
    stripped = line.strip()
    if not stripped or stripped.startswith(("#", "@", "|")):
        return None
    fields = stripped.split()
    if len(fields) < 3 or alias not in fields[0].split(","):
        return None
    return fields


def _entries(text: str, alias: str) -> list[tuple[str, str]]:
    out = []
    for line in text.split("\n"):
        fields = _hosts_field_matches(line, alias)
        if fields:
            out.append((fields[1], fields[2]))
    return out


def _without(text: str, alias: str) -> str:
    lines = text.split("\n")
    kept = [line for line in lines if _hosts_field_matches(line, alias) is None]
    return "\n".join(kept)


def _pinned_text(
    paths: Paths, text: str, alias: str, public_key_line: str, replace: bool
) -> str | None:
    """The new file text after pinning, or None when nothing needs to change."""
    validate_alias(alias)
    key_type, b64 = split_public_key(public_key_line)
    pinned = _entries(text, alias)
    if pinned == [(key_type, b64)]:
        return None
    if pinned and not replace:
        # Goes through verify's wording so that both paths explain the same way.
        verify(paths, alias, key_type, b64)
        return None  # the same key among several pins: nothing to do
    base = _without(text, alias) if pinned else text
    if not base:
        base = HEADER
    if not base.endswith("\n"):
        base += "\n"
    return base + f"{alias} {key_type} {b64}\n"


@contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    ensure_private_dir(paths.data)
    ensure_private_dir(paths.ssh_dir)
    with file_lock(paths.ssh_dir / ".known_hosts.lock", timeout=_LOCK_TIMEOUT,
                   what=f"editing {paths.known_hosts}"):
        yield


def set_pins(paths: Paths, alias: str, public_key_lines: list[str]) -> bool:
    """Pin exactly ``public_key_lines`` for ``alias``, in this order, in one atomic write;
    True when the file changed. For a host key rotation (``providers/ec2/provider.py``): while the box
    switches keys both are pinned (OpenSSH accepts either), the one the box serves first
    (``pipeline.connect`` asks paramiko for the first); afterwards only the new one."""
    validate_alias(alias)
    keys = [split_public_key(k) for k in public_key_lines]
    if not keys:
        raise ValueError("set_pins needs at least one key (use unpin to forget a box)")
    with _locked(paths):
        text = _read(paths)
        if _entries(text, alias) == keys:
            return False
        base = _without(text, alias) or HEADER
        if not base.endswith("\n"):
            base += "\n"
        _write(paths, base + "".join(f"{alias} {t} {b}\n" for t, b in keys))
        return True
