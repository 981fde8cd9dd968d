"""Real test hosts for the end-to-end tests: systemd Debian containers that behave like fresh
VMs, throwaway SSH keys, and ways to put files (the stand-in Anaconda installer) on a box.

Import from any test as ``import hosts`` (``tests/`` is on ``sys.path``; see conftest.py).
The pytest fixtures built on this module live in ``tests/conftest.py``; everything here is
plain functions so other fixtures (module-scoped hosts, benchmarks) can reuse it.

All traffic goes to 127.0.0.1: container ports are published on loopback only.
Every container started here carries the label ``mlops-env-test=1`` (plus the pid of the
test process) so stray ones can be removed: ``python tests/hosts.py --cleanup``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

_TESTS = Path(__file__).resolve().parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from images.build import (  # noqa: E402
    BASE_IMAGE,
    RECIPE_LABEL,
    TEST_LABEL,
    VM_IMAGE,
    cache_dir,
    ensure_base_image,
    ensure_images,
    ensure_vm_image,
)

__all__ = [
    "BASE_IMAGE",
    "VM_IMAGE",
    "RECIPE_LABEL",
    "TEST_LABEL",
    "LOOPBACK",
    "OS_RELEASE_FEDORA_40",
    "OS_RELEASE_ALPINE_320",
    "ExecResult",
    "KeyPair",
    "VmHost",
    "VmHostFactory",
    "cache_dir",
    "copy_into",
    "docker_client_or_none",
    "ensure_base_image",
    "ensure_images",
    "ensure_vm_image",
    "exec_in",
    "fingerprint_sha256",
    "image_with_files",
    "mirror_into",
    "make_keypair",
    "remove_test_containers",
    "ssh_argv",
    "ssh_run",
    "start_vm",
    "wait_for_ssh_banner",
    "write_known_hosts",
]

LOOPBACK = "127.0.0.1"
NO_ENGINE_REASON = "no Docker engine: start dockerd (see .ci/run)"
USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

# Fake /etc/os-release contents for "unsupported OS" tests. The userland stays Debian 12:
# only what the product reads to detect the OS changes.
OS_RELEASE_FEDORA_40 = """\
NAME="Fedora Linux"
VERSION="40 (Container Image)"
ID=fedora
VERSION_ID=40
PRETTY_NAME="Fedora Linux 40 (Container Image)"
"""
OS_RELEASE_ALPINE_320 = """\
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
"""


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class KeyPair:
    """A throwaway ed25519 key pair made with ``ssh-keygen``."""

    private_key: Path  # 0600, no passphrase
    public_key: Path
    public_text: str  # "ssh-ed25519 AAAA... comment"

    @property
    def fingerprint(self) -> str:
        return fingerprint_sha256(self.public_text)


def make_keypair(directory: Path | str, name: str = "id_ed25519", comment: str = "mlops-env-test") -> KeyPair:
    """``ssh-keygen -t ed25519 -N '' -f DIR/NAME``; DIR is created 0700."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    priv = d / name
    if priv.exists():
        raise FileExistsError(priv)
    subprocess.run(  # noqa: S603 - fixed program, test-controlled arguments
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(priv)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    pub = priv.with_name(name + ".pub")
    return KeyPair(private_key=priv, public_key=pub, public_text=pub.read_text().strip())


def fingerprint_sha256(public_key_line: str) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key line (``type base64 [comment]``)."""
    parts = public_key_line.split()
    blob = base64.b64decode(parts[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# --------------------------------------------------------------------------- docker helpers


def docker_client_or_none(timeout: int = 120) -> tuple[Any, str | None]:
    """(client, None) when an engine answers, else (None, reason)."""
    try:
        import docker
    except ImportError as e:  # pragma: no cover - docker is a runtime dependency
        return None, f"docker SDK not importable ({e})"
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure means "no engine"
        return None, f"{NO_ENGINE_REASON} [{type(e).__name__}: {str(e)[:200]}]"
    return client, None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def exec_in(
    client: Any,
    container: str,
    cmd: Sequence[str] | str,
    *,
    user: str = "root",
    env: dict[str, str] | None = None,
    workdir: str | None = None,
    check: bool = True,
) -> ExecResult:
    """Run a command in a container (``docker exec``). A str is run with ``sh -c``.

    Pass untrusted values through ``env`` and refer to them as "$VAR" inside the script.
    """
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    c = client.containers.get(container)
    rc, (out, err) = c.exec_run(argv, user=user, environment=env or {}, workdir=workdir, demux=True)
    res = ExecResult(rc, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"))
    if check and rc != 0:
        raise RuntimeError(
            f"exec in {c.name} failed (exit {rc}): {argv!r}\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-2000:]}"
        )
    return res


def copy_into(
    client: Any,
    container: str,
    src: Path | str,
    dest_dir: str = "/opt/mirror",
    *,
    name: str | None = None,
    mode: int = 0o644,
    owner: str | None = None,
) -> str:
    """``docker cp`` a host file into DEST_DIR in the container (created if missing).

    Returns the absolute path inside the container; ``"file://" + path`` is the URL a
    product running on that box can use (file:// URLs are resolved on the box).
    """
    src = Path(src)
    name = name or src.name
    exec_in(client, container, ["mkdir", "-p", dest_dir])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tf.gettarinfo(str(src), arcname=name)
        info.mode = mode
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        with open(src, "rb") as fh:
            tf.addfile(info, fh)
    buf.seek(0)
    if not client.containers.get(container).put_archive(dest_dir, buf.getvalue()):
        raise RuntimeError(f"copying {src} into {container}:{dest_dir} failed")
    path = f"{dest_dir.rstrip('/')}/{name}"
    if owner:
        exec_in(client, container, ["chown", owner, path])
    return path


def mirror_into(client: Any, container: str, src: Path | str, dest_dir: str = "/opt/mirror") -> str:
    """Copy a file onto the box and return its ``file://`` URL (resolved on the box), e.g.
    for ``mlops-env up ssh ... --conda-installer URL --conda-sha256 HEX``."""
    return "file://" + copy_into(client, container, src, dest_dir)


def image_with_files(
    client: Any,
    base: str,
    files: Sequence[Path | str],
    dest_dir: str = "/opt/mirror",
    repo: str | None = None,
) -> str:
    """A local image = BASE + FILES in DEST_DIR (built once per content; reused by label).

    For containers the product creates itself (``mlops-env up docker --image IMAGE``), a file
    cannot be copied in before the bootstrap runs: bake it into the image instead and pass
    ``--conda-installer file://DEST_DIR/NAME``. Older tags of the same repo are removed.
    """
    import hashlib as _hl

    import docker.errors

    paths = [Path(f) for f in files]
    base_id = client.images.get(base).id
    h = _hl.sha256(b"mirror-v2\0" + base_id.encode())
    for p in paths:
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    recipe = h.hexdigest()[:16]
    repo = repo or (base.rsplit(":", 1)[0] + "-mirror")
    tag = f"{repo}:{recipe}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    dockerfile = f"FROM {base}\n" + "".join(f"COPY {p.name} {dest_dir.rstrip('/')}/{p.name}\n" for p in paths)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("Dockerfile")
        data = dockerfile.encode()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        for p in paths:
            ti = tf.gettarinfo(str(p), arcname=p.name)
            ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = 0o644, 0, 0, "root", "root"
            with open(p, "rb") as fh:
                tf.addfile(ti, fh)
    buf.seek(0)
    for chunk in client.api.build(
        fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True, pull=False, decode=True,
        # NOT the container label TEST_LABEL=1: containers inherit image labels, and the
        # product's own containers made from this image must not look like ours to cleanup.
        labels={RECIPE_LABEL: recipe, f"{TEST_LABEL}.image": "mirror"},
    ):
        if "error" in chunk:
            raise RuntimeError(f"building {tag} failed: {chunk['error']}")
    for img in client.images.list(name=repo):
        for t in img.tags:
            if t != tag:
                try:
                    client.images.remove(t, noprune=False)
                except Exception:  # noqa: BLE001,S110 - in use by a running test
                    pass
    return tag


def remove_test_containers(client: Any, *, only_pid: int | None = None, older_than_s: float | None = None) -> list[str]:
    """Remove containers that :func:`start_vm` started (labels ``mlops-env-test=1`` AND
    ``mlops-env-test.pid``), with their anonymous volumes.

    ``only_pid``: only those started by that test process; ``older_than_s``: only those created
    longer ago than that (Docker's own creation time). Other engineers may be running tests on
    the same engine: prefer a filter. Containers made by the product (``mlops-env up docker``)
    are never touched here, even when their image carries mlops-env-test labels.
    """
    from datetime import datetime

    removed = []
    now = time.time()
    for c in client.containers.list(all=True, filters={"label": [f"{TEST_LABEL}=1", f"{TEST_LABEL}.pid"]}):
        labels = c.labels or {}
        if labels.get(f"{TEST_LABEL}.role") != "vm":
            continue
        if only_pid is not None and labels.get(f"{TEST_LABEL}.pid") != str(only_pid):
            continue
        if older_than_s is not None:
            created = c.attrs.get("Created", "")
            try:
                ts = datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
            except ValueError:
                continue  # unknown age: keep it
            if now - ts < older_than_s:
                continue
        try:
            c.remove(force=True, v=True)
            removed.append(c.name)
        except Exception:  # noqa: S110 - already gone
            pass
    return removed


# --------------------------------------------------------------------------- vm hosts


@dataclass(frozen=True)
class VmHost:
    """A running systemd container reachable over SSH on 127.0.0.1:port."""

    container_id: str
    name: str
    host: str  # always "127.0.0.1"
    port: int
    user: str
    host_key: str  # "ssh-ed25519 AAAA..." (from /etc/ssh/ssh_host_ed25519_key.pub)
    host_key_fingerprint: str  # "SHA256:..."
    image: str
    identity: Path | None = None  # private key when the factory generated the key pair
    password: str | None = None  # set when sudo asks for a password
    sudo: str = "nopasswd"

    @property
    def destination(self) -> str:
        """``user@127.0.0.1``"""
        return f"{self.user}@{self.host}"

    @property
    def host_spec(self) -> str:
        """``user@127.0.0.1:port`` (the form ``mlops-env up ssh --host`` takes)."""
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        """``[127.0.0.1]:PORT ssh-ed25519 AAAA...`` (OpenSSH form for a non-22 port)."""
        keytype, b64 = self.host_key.split()[:2]
        hostpat = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{hostpat} {keytype} {b64}"


def write_known_hosts(path: Path | str, *hosts: VmHost) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(h.known_hosts_line + "\n" for h in hosts))
    return path


def ssh_argv(host: VmHost, identity: Path | str | None = None, known_hosts: Path | str | None = None) -> list[str]:
    """System OpenSSH client argv (without the remote command), isolated from ~/.ssh/config,
    strict host-key checking against KNOWN_HOSTS, key-only auth."""
    if not known_hosts:
        raise ValueError("known_hosts is required (strict host key checking): see write_known_hosts()")
    identity = identity or host.identity
    if identity is None:
        raise ValueError("no identity: pass the private key that matches the authorized key")
    argv = [
        "ssh", "-F", "/dev/null",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "IdentitiesOnly=yes",
        "-o", "PasswordAuthentication=no",
        "-o", "ConnectTimeout=10",
        "-o", "LogLevel=ERROR",
        "-i", str(identity),
        "-p", str(host.port),
        host.destination,
    ]
    return argv


def ssh_run(
    host: VmHost,
    command: str,
    *,
    known_hosts: Path | str,
    identity: Path | str | None = None,
    timeout: float = 120,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run COMMAND on HOST with the system ``ssh`` client (strict host-key checking)."""
    return subprocess.run(  # noqa: S603 - fixed argv
        [*ssh_argv(host, identity, known_hosts), command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        stdin=subprocess.DEVNULL,
    )


def wait_for_ssh_banner(host: str, port: int, timeout: float = 30.0) -> float:
    """Wait until sshd answers with its ``SSH-`` banner (docker-proxy accepts TCP before sshd
    is up, so a bare connect is not enough). Returns the seconds waited."""
    t0 = time.monotonic()
    last: Exception | str = "no attempt"
    while time.monotonic() - t0 < timeout:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(2)
                banner = s.recv(256)
                if banner.startswith(b"SSH-"):
                    return time.monotonic() - t0
                last = f"banner {banner[:40]!r}"
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"sshd on {host}:{port} did not answer within {timeout:.0f}s ({last})")


def _create_vm_container(client: Any, image: str, name: str, labels: dict[str, str]) -> Any:
    """``docker run -d`` with tests/images/build.py:VM_RUN_FLAGS, through the low-level API:
    the SDK has no ``systempaths=unconfined``; the CLI implements it as empty
    ``MaskedPaths``/``ReadonlyPaths`` in HostConfig, and so do we."""
    from docker.types import Mount

    hc = client.api.create_host_config(
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        cgroupns="private",
        tmpfs={"/run": "", "/run/lock": ""},
        mounts=[Mount(target="/var/lib/docker", source=None, type="volume")],
        port_bindings={22: (LOOPBACK, None)},
    )
    hc["MaskedPaths"] = []
    hc["ReadonlyPaths"] = []
    resp = client.api.create_container(
        image,
        name=name,
        hostname=name[:63],
        labels=labels,
        detach=True,
        ports=[22],
        stop_signal="SIGRTMIN+3",
        host_config=hc,
    )
    c = client.containers.get(resp["Id"])
    try:
        c.start()
    except BaseException:
        c.remove(force=True, v=True)
        raise
    return c


_SETUP_USER = r"""
set -eu
id -u "$U" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$U"
install -d -m 0700 -o "$U" -g "$U" "/home/$U/.ssh"
if [ -n "$KEY" ]; then
    printf '%s\n' "$KEY" > "/home/$U/.ssh/authorized_keys"
    chown "$U:$U" "/home/$U/.ssh/authorized_keys"; chmod 0600 "/home/$U/.ssh/authorized_keys"
fi
if [ -n "$PW" ]; then printf '%s:%s\n' "$U" "$PW" | chpasswd; fi
f="/etc/sudoers.d/90-mlops-env-test-$U"
case "$SUDO" in
    nopasswd) printf '%s ALL=(ALL:ALL) NOPASSWD:ALL\n' "$U" > "$f" ;;
    password) printf '%s ALL=(ALL:ALL) ALL\n' "$U" > "$f" ;;
    none) rm -f "$f" ;;
esac
if [ -f "$f" ]; then chmod 0440 "$f"; visudo -cqf "$f"; fi
if [ -n "$OSREL" ]; then
    rm -f /etc/os-release
    printf '%s' "$OSREL" > /etc/os-release
    printf '%s' "$OSREL" > /usr/lib/os-release
fi
"""


def start_vm(
    client: Any,
    *,
    user: str = "tester",
    authorized_key: str | None = None,
    sudo: Literal["nopasswd", "password", "none"] = "nopasswd",
    password: str | None = None,
    os_release: str | None = None,
    name: str | None = None,
    image: str = VM_IMAGE,
    key_dir: Path | None = None,
    labels: dict[str, str] | None = None,
    ssh_timeout: float = 30.0,
) -> VmHost:
    """Start a VM-like container and return how to reach it.

    - ``user``: created with a home, bash, and (``sudo``) ``nopasswd`` = ``NOPASSWD:ALL``,
      ``password`` = sudo asks for the password (``password`` or a random one, returned), ``none``.
    - ``authorized_key``: public key text for ``~user/.ssh/authorized_keys``. When None and
      ``key_dir`` is given, a key pair is generated there and returned as ``identity``.
    - ``os_release``: replaces /etc/os-release (e.g. :data:`OS_RELEASE_FEDORA_40`).
    The caller owns the container: remove it with ``client.containers.get(id).remove(force=True, v=True)``
    (or use :class:`VmHostFactory` / the ``vm_host`` fixture, which do).
    """
    if not USERNAME_RE.match(user):
        raise ValueError(f"bad user name {user!r}")
    if sudo not in ("nopasswd", "password", "none"):
        raise ValueError(f"sudo must be nopasswd|password|none, not {sudo!r}")
    identity = None
    if authorized_key is None and key_dir is not None:
        kp = make_keypair(Path(key_dir), name=f"id_ed25519_{user}_{secrets.token_hex(3)}")
        authorized_key, identity = kp.public_text, kp.private_key
    if sudo == "password" and not password:
        password = secrets.token_urlsafe(12)
    name = name or f"mlops-env-test-vm-{secrets.token_hex(4)}"
    all_labels = {
        TEST_LABEL: "1",
        f"{TEST_LABEL}.pid": str(os.getpid()),
        f"{TEST_LABEL}.created": str(int(time.time())),
        f"{TEST_LABEL}.role": "vm",
        **(labels or {}),
    }
    c = _create_vm_container(client, image, name, all_labels)
    try:
        port = _published_port(c)
        exec_in(
            client,
            c.id,
            _SETUP_USER,
            env={"U": user, "KEY": authorized_key or "", "PW": password or "", "SUDO": sudo, "OSREL": os_release or ""},
        )
        wait_for_ssh_banner(LOOPBACK, port, ssh_timeout)
        host_key = exec_in(client, c.id, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.strip()
        host_key = " ".join(host_key.split()[:2])
        return VmHost(
            container_id=c.id,
            name=c.name,
            host=LOOPBACK,
            port=port,
            user=user,
            host_key=host_key,
            host_key_fingerprint=fingerprint_sha256(host_key),
            image=image,
            identity=identity,
            password=password,
            sudo=sudo,
        )
    except BaseException:
        logs = ""
        try:
            logs = c.logs(tail=30).decode(errors="replace")
            c.remove(force=True, v=True)
        except Exception:  # noqa: BLE001,S110
            pass
        if logs:
            sys.stderr.write(f"[hosts] {name} failed to come up; last log lines:\n{logs}\n")
        raise


def _published_port(c: Any, timeout: float = 10.0) -> int:
    t0 = time.monotonic()
    while True:
        c.reload()
        if c.status not in ("created", "running"):
            raise RuntimeError(f"container {c.name} is {c.status}: {c.logs(tail=30).decode(errors='replace')}")
        bindings = (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).get("22/tcp") or []
        for b in bindings:
            if b.get("HostIp") == LOOPBACK and b.get("HostPort"):
                return int(b["HostPort"])
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"container {c.name}: port 22 not published on {LOOPBACK}: {bindings}")
        time.sleep(0.1)


@dataclass
class VmHostFactory:
    """Starts VM hosts and removes them all in :meth:`cleanup` (used by the fixtures)."""

    client: Any
    key_dir: Path
    started: list[VmHost] = field(default_factory=list)
    _extra: list[str] = field(default_factory=list)

    def __call__(
        self,
        user: str = "tester",
        authorized_key: str | None = None,
        *,
        sudo: Literal["nopasswd", "password", "none"] = "nopasswd",
        password: str | None = None,
        os_release: str | None = None,
        name: str | None = None,
        image: str = VM_IMAGE,
    ) -> VmHost:
        h = start_vm(
            self.client,
            user=user,
            authorized_key=authorized_key,
            sudo=sudo,
            password=password,
            os_release=os_release,
            name=name,
            image=image,
            key_dir=self.key_dir,
        )
        self.started.append(h)
        return h

    def track(self, container: str) -> None:
        """Also remove this container (e.g. one the product created) at cleanup."""
        self._extra.append(container)

    def cleanup(self) -> None:
        for ref in [h.container_id for h in self.started] + self._extra:
            try:
                self.client.containers.get(ref).remove(force=True, v=True)
            except Exception:  # noqa: BLE001,S110 - already gone
                pass
        self.started.clear()
        self._extra.clear()


def shell_join(argv: Iterable[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="test-host utilities")
    ap.add_argument("--cleanup", action="store_true", help="remove containers labelled mlops-env-test=1")
    ap.add_argument("--older-than", type=float, default=None, metavar="SECONDS")
    a = ap.parse_args()
    if a.cleanup:
        cl, why = docker_client_or_none()
        if cl is None:
            sys.exit(why)
        for n in remove_test_containers(cl, older_than_s=a.older_than):
            print(n)
