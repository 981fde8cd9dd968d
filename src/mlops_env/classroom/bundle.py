"""What a student gets to connect (``class bundle``), and ``mlops-env join`` on their machine.

Per student, in the output folder (0700), every file 0600:

    alice.yaml              for `mlops-env join alice.yaml`: alias, address, user, forwards, and
                            the host key pinned by the instructor's `class up`
    alice/ssh_config        a plain Host block (for students without mlops-env)
    alice/known_hosts       the pinned host key line (HostKeyAlias form)
    alice/README.txt        two lines: where to put them, and how to connect

No private key is in a bundle: the student logs in with their own key (the roster's
``github:`` or ``public_key:``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_env.errors import ConfigError, HostKeyError, NotFoundError, UsageError

if TYPE_CHECKING:
    from mlops_env.classroom.roster import Roster
    from mlops_env.paths import Paths

BUNDLE_VERSION = 1
KEYS = ("version", "class", "student", "alias", "host", "port", "user", "host_key_alias", "host_keys",
        "forwards", "folder")
_FORWARDS = (8888, 5000, 9696)
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _bundle_doc(roster: Roster, student: str, rec: Any, host_keys: list[str]) -> dict[str, Any]:
    from mlops_env.pipeline import code_command

    ep = rec.endpoint
    folder = code_command(rec).split(" ", 3)[3]
    return {"version": BUNDLE_VERSION, "class": roster.name, "student": student, "alias": rec.alias,
            "host": ep.host, "port": ep.port, "user": ep.user, "host_key_alias": ep.host_key_alias,
            "host_keys": host_keys, "forwards": list(_FORWARDS) if rec.options.get("forward", True) else [],
            "folder": folder}


def _known_hosts_lines(doc: dict[str, Any]) -> str:
    return "".join(f"{doc['host_key_alias']} {k}\n" for k in doc["host_keys"])


def _plain_config(doc: dict[str, Any], known_hosts: str, identity: str) -> str:
    lines = [f"Host {doc['alias']}", f"    HostName {doc['host']}", f"    Port {doc['port']}",
             f"    User {doc['user']}", f"    IdentityFile {identity}", "    IdentitiesOnly yes",
             f"    UserKnownHostsFile {known_hosts}", f"    HostKeyAlias {doc['host_key_alias']}",
             "    StrictHostKeyChecking yes", "    CheckHostIP no"]
    lines += [f"    LocalForward localhost:{p} localhost:{p}" for p in doc["forwards"]]
    if doc["forwards"]:
        lines.append("    ExitOnForwardFailure no")
    return "\n".join(lines) + "\n"


def write_bundles(roster: Roster, paths: Paths, out: Path) -> dict[str, Any]:
    """One bundle per student whose workstation is ready and pinned; others are listed as skipped."""
    import yaml

    from mlops_env.fsutil import atomic_write
    from mlops_env.paths import ensure_private_dir
    from mlops_env.ssh import knownhosts
    from mlops_env.state import Store

    store = Store(paths)
    out = out.expanduser().absolute()
    ensure_private_dir(out)
    rows: list[dict[str, Any]] = []
    for st in roster.students:
        ws = st.workstation(roster.name)
        rec = store.find(ws)
        if rec is None or rec.endpoint is None or rec.provider_data.get("class") != roster.name:
            rows.append({"student": st.name, "file": None, "skipped": "no workstation yet (`class up` first)"})
            continue
        pins = knownhosts.lookup(paths, rec.endpoint.host_key_alias)
        if not pins:
            rows.append({"student": st.name, "file": None, "skipped": "its host key is not pinned yet"})
            continue
        doc = _bundle_doc(roster, st.name, rec, list(pins))
        f = out / f"{st.name}.yaml"
        atomic_write(f, "# mlops-env class bundle: `mlops-env join " + f.name + "`\n"
                     + yaml.safe_dump(doc, sort_keys=False), mode=0o600)
        d = out / st.name
        ensure_private_dir(d)
        kh_name = f"~/.ssh/{doc['alias']}.known_hosts"
        atomic_write(d / "known_hosts", _known_hosts_lines(doc), mode=0o600)
        atomic_write(d / "ssh_config", _plain_config(doc, kh_name, "~/.ssh/id_ed25519"), mode=0o600)
        atomic_write(d / "README.txt",
                     f"Without mlops-env: copy known_hosts to {kh_name} and append ssh_config to ~/.ssh/config "
                     "(change IdentityFile if your key is not ~/.ssh/id_ed25519).\n"
                     f"Then connect with `ssh {doc['alias']}`, or in VS Code: Remote-SSH: Connect to Host... "
                     f"{doc['alias']} and open {doc['folder']}.\n"
                     f"With mlops-env: `mlops-env join {f.name}`.\n", mode=0o600)
        rows.append({"student": st.name, "file": str(f), "folder": str(d), "skipped": None})
    return {"class": roster.name, "out": str(out), "students": rows}


def load_bundle(path: Path) -> dict[str, Any]:
    """A bundle, validated (it comes from a file someone sent: nothing in it is trusted as text)."""
    import yaml

    from mlops_env.ssh.config import validate_alias
    from mlops_env.ssh.keys import split_public_key

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"bundle {path} not found", hint="check the path your instructor gave you") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not a readable bundle ({str(e).splitlines()[0]})",
                          hint="ask your instructor for the file again (`mlops-env class bundle`)") from None
    bad = ConfigError(f"{path}: not an mlops-env class bundle", hint="ask your instructor for a new one",
                      code="bundle-invalid")
    if not isinstance(doc, dict) or doc.get("version") != BUNDLE_VERSION:
        raise bad
    unknown = set(doc) - set(KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}",
                          hint="ask your instructor for a new bundle", code="bundle-invalid")
    try:
        validate_alias(str(doc["alias"]))
        validate_alias(str(doc["host_key_alias"]))
        port = doc["port"]
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError("port")
        if not isinstance(doc["user"], str) or not _USER_RE.match(doc["user"]):
            raise ValueError("user")
        if not isinstance(doc["host_keys"], list) or not doc["host_keys"]:
            raise ValueError("host_keys")
        doc["host_keys"] = [" ".join(split_public_key(str(k))) for k in doc["host_keys"]]
        fw = doc.get("forwards") or []
        if not isinstance(fw, list) or not all(isinstance(p, int) and 1 <= p <= 65535 for p in fw):
            raise ValueError("forwards")
    except Exception as e:  # noqa: BLE001 - any malformed field: one line, never a traceback
        raise ConfigError(f"{path}: invalid bundle ({getattr(e, 'message', None) or e})",
                          hint="ask your instructor for a new one", code="bundle-invalid") from None
    return doc


def _default_identity() -> Path:
    for n in ("id_ed25519", "id_ecdsa", "id_rsa"):
        p = Path.home() / ".ssh" / n
        if p.is_file():
            return p
    raise UsageError("no SSH key found (~/.ssh/id_ed25519, id_ecdsa, id_rsa)",
                     hint="pass --identity KEYFILE: the private key whose public half your instructor put "
                     "in the roster", code="identity-missing")


def join(paths: Paths, path: Path, identity: Path | None) -> dict[str, Any]:
    """Install a bundle like ``up`` installs its own: the host key pinned (refused when another
    key is pinned for that alias), the Host block with StrictHostKeyChecking yes, the Include
    line at the top of ~/.ssh/config."""
    from mlops_env.ssh import config as sshconfig
    from mlops_env.ssh import knownhosts
    from mlops_env.ssh.config import Forward, HostEntry
    from mlops_env.ssh.keys import fingerprint_of

    doc = load_bundle(path)
    ident = (identity.expanduser().absolute() if identity else _default_identity())
    if not ident.is_file():
        raise UsageError(f"identity file {ident} not found", hint="check --identity", code="identity-missing")
    alias = doc["host_key_alias"]
    pinned = [" ".join(p.split()[:2]) for p in knownhosts.lookup(paths, alias)]
    if pinned and not set(doc["host_keys"]) & set(pinned):
        raise HostKeyError(
            f"the bundle's host key for {doc['alias']} ({fingerprint_of(doc['host_keys'][0])}) differs from the one "
            f"already pinned here ({fingerprint_of(pinned[0])})",
            hint="this may be an attack, or your instructor rebuilt the workstation: ask them; if it was rebuilt, "
            f"delete the lines starting with {alias} in {paths.known_hosts} and join again",
            code="host-key-changed")
    sshconfig.check_include(paths)
    entry = HostEntry(alias=doc["alias"], hostname=str(doc["host"]), port=int(doc["port"]), user=doc["user"],
                      identity_file=ident, known_hosts_file=paths.known_hosts, host_key_alias=alias,
                      forwards=tuple(Forward(p, "localhost", p) for p in doc.get("forwards") or []))
    changed = False
    if not pinned:
        changed |= knownhosts.set_pins(paths, alias, list(doc["host_keys"]))
    changed |= sshconfig.upsert_host(paths, entry)
    sshconfig.ensure_include(paths)
    return {"alias": doc["alias"], "class": doc.get("class"), "student": doc.get("student"),
            "fingerprint": fingerprint_of(doc["host_keys"][0]), "changed": changed,
            "ssh_command": f"ssh {doc['alias']}",
            "code_command": f"code --remote ssh-remote+{doc['alias']} {doc.get('folder') or ''}".rstrip()}
