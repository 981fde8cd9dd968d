"""``up docker``: a local container that behaves like a small VM.

Mode "vm" (the default and only mode): systemd is PID 1, sshd runs inside, and the box gets its
own Docker engine (docker-in-docker) installed by the shared bootstrap, exactly as on a cloud
VM. The container runs with an explicit capability set instead of ``--privileged`` (refused on
some engines, e.g. these CI hosts) plus a private cgroup namespace; its entrypoint makes the
cgroup hierarchy writable on cgroup v1 and v2 hosts (Docker Desktop uses v2). The inner
engine's data lives in a named volume (overlay-on-overlay does not work).

Images: the base image (``--image``, default ``ubuntu:24.04``) is turned once into
``mlops-env/workstation:<base-id>-<recipe>`` by ``templates/docker-vm-prep.sh`` (systemd, sshd,
sudo); later workstations from the same base reuse it.

SSH is published on 127.0.0.1 only, on a fixed port chosen at creation (free then, kept in the
record), so the SSH alias keeps working when the container is stopped and started, by
mlops-env, by ``docker restart`` or by the engine after a reboot. Docker cannot change the
port binding of an existing container: when that port is taken at a start (by mlops-env),
the stopped container is committed to an image (its disk: everything but the inner engine's
volume, which is re-mounted) and re-created on another free port; the caller rewrites the SSH
config. The host key is read from the container through the Docker API (a trusted channel)
and pinned; it is part of the committed disk, so it survives a re-creation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import socket
import tarfile
import time
from typing import TYPE_CHECKING, Any

from mlops_env import __version__
from mlops_env.errors import MlopsError, NotFoundError, PrereqError, UnsupportedError, UsageError
from mlops_env.providers import Progress, Provider, Provisioned
from mlops_env.ssh.config import host_key_alias_for
from mlops_env.state import Endpoint
from mlops_env.steps import template

if TYPE_CHECKING:
    from mlops_env.config import Resolved
    from mlops_env.ssh.keys import KeyPair
    from mlops_env.state import Record

log = logging.getLogger(__name__)

LABEL_NAME = "mlops-env.name"
LABEL_MANAGED = "mlops-env.managed"
LABEL_RECIPE = "mlops-env.recipe"
LABEL_STATE_OF = "mlops-env.state-of"  # an image holding a workstation's disk (port re-binding)
IMAGE_REPO = "mlops-env/workstation"
STATE_REPO = "mlops-env/workstation-disk"
RECIPE_VERSION = "1"

# Run options that make a systemd container behave like a VM without --privileged.
CAP_ADD = ["ALL"]
CAP_DROP = ["SYS_RESOURCE"]
SECURITY_OPT = ["seccomp=unconfined", "apparmor=unconfined"]
TMPFS = {"/run": "", "/run/lock": ""}
STOP_SIGNAL = "SIGRTMIN+3"


def container_name(name: str) -> str:
    return f"mlops-env-{name}"


def volume_name(name: str) -> str:
    return f"mlops-env-{name}-docker"


def recipe_hash() -> str:
    h = hashlib.sha256(RECIPE_VERSION.encode())
    for t in ("docker-vm-prep.sh", "docker-vm-init.sh"):
        h.update(template(t).encode())
    return h.hexdigest()[:12]


class DockerProvider(Provider):
    kind = "docker"

    def __init__(self, paths: Any) -> None:
        super().__init__(paths)
        self._client: Any = None

    # -- engine -------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            from docker.errors import DockerException

            from mlops_env.providers.docker.host import docker_client

            try:
                c = docker_client(timeout=120)  # DOCKER_HOST, the docker context, the platform's default
                c.ping()
            except DockerException as e:
                raise PrereqError(
                    f"no Docker engine reachable ({_short(e)})",
                    hint="start Docker (Docker Desktop, or `sudo systemctl start docker`) and check "
                    "`docker info`; DOCKER_HOST selects another engine",
                    code="no-docker-engine",
                ) from None
            self._client = c
        return self._client

    def _containers(self, name: str) -> list[Any]:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL_NAME}={name}"})

    def _one(self, name: str) -> Any | None:
        found = self._containers(name)
        if len(found) > 1:
            names = ", ".join(c.name for c in found)
            raise UsageError(
                f"{len(found)} containers carry the label {LABEL_NAME}={name} ({names})",
                hint=f"remove the extra ones with `docker rm -f NAME`, or all with `mlops-env down {name} --yes`",
                code="ambiguous",
            )
        return found[0] if found else None

    # -- image ---------------------------------------------------------------------------------
    def _base_image(self, ref: str, progress: Progress) -> Any:
        from docker.errors import APIError, ImageNotFound, NotFound

        try:
            return self.client.images.get(ref)
        except ImageNotFound:
            pass
        progress(f"pulling {ref}")
        try:
            return self.client.images.pull(ref)
        except (NotFound, ImageNotFound, APIError) as e:
            raise NotFoundError(
                f"image {ref} is not here and cannot be pulled ({_short(e)})",
                hint=f"check the name, or make it available first (`docker pull {ref}`); "
                "--image selects another Debian/Ubuntu image",
                code="image-not-found",
            ) from None

    def _workstation_image(self, ref: str, progress: Progress) -> str:
        from docker.errors import ImageNotFound

        base = self._base_image(ref, progress)
        tag = f"{IMAGE_REPO}:{base.id.split(':')[-1][:12]}-{recipe_hash()}"
        try:
            self.client.images.get(tag)
            return tag
        except ImageNotFound:
            pass
        progress(f"preparing a workstation image from {ref} (once per base image)")
        prep = self.client.containers.create(
            base.id, command=["sleep", "infinity"], labels={LABEL_MANAGED: "1", "mlops-env.prep": "1"},
            entrypoint=[],
        )
        try:
            prep.start()
            prep.put_archive("/tmp", _tar({"mlops-env-prep.sh": template("docker-vm-prep.sh"),
                                           "mlops-env-init.sh": template("docker-vm-init.sh")}))
            code, out = prep.exec_run(["bash", "/tmp/mlops-env-prep.sh", "/tmp/mlops-env-init.sh"])
            text = out.decode("utf-8", "replace") if out else ""
            log.debug("image prep output:\n%s", text)
            if code != 0:
                msg, hint = _script_error(text)
                if code == 126 or code == 127:
                    raise UnsupportedError(f"image {ref} has no bash", hint="use a Debian or Ubuntu image")
                cls = UnsupportedError if code == 3 else MlopsError
                raise cls(f"could not prepare image {ref}: {msg}", hint=hint or "see the log file")
            prep.exec_run(["rm", "-f", "/tmp/mlops-env-prep.sh", "/tmp/mlops-env-init.sh"])
            repo, t = tag.split(":")
            prep.commit(repository=repo, tag=t, conf={
                "Entrypoint": ["/usr/local/sbin/mlops-env-init"],
                "Cmd": [],
                "StopSignal": STOP_SIGNAL,
                "Labels": {LABEL_RECIPE: recipe_hash(), "mlops-env.base": ref},
            })
        finally:
            prep.remove(force=True)
        return tag

    # -- lifecycle -------------------------------------------------------------------------
    def plan(self, record: Record | None, options: Resolved) -> list[str]:
        name = record.name if record else "?"
        c = self._one(name) if record else None
        if c is None:
            return [f"create container {container_name(name)} from {options['image']} "
                    f"(systemd, sshd on 127.0.0.1, Docker inside; volume {volume_name(name)})",
                    f"create user {options['user']} with mlops-env's key and passwordless sudo"]
        if c.status != "running":
            return [f"start container {c.name} (now {c.status})"]
        return [f"reuse running container {c.name}"]

    def ensure(self, record: Record, options: Resolved, key: KeyPair, progress: Progress) -> Provisioned:
        name = record.name
        user = options["user"]
        c = self._one(name)
        action = "unchanged"
        from_image = None
        if c is None:
            tag, from_image = self._image_for_up(options, progress)
            progress(f"creating container {container_name(name)}")
            c = self._create(name, tag, options["image"], free_port(),
                             extra_labels={"mlops-env.from-image": from_image} if from_image else None)
            action = "created"
        elif c.status != "running":
            progress(f"starting container {c.name}")
            c = self._start(record, c, progress)
            action = "started"
        c = self._wait_running(c)
        port = _ssh_port(c)
        if action != "unchanged" or record.provider_data.get("user_ready") != user:
            self._ensure_user(c, user, key.public_line)
        host_key = self._host_key(c)
        data = {"container": c.name, "container_id": c.id, "image": options["image"],
                "volume": volume_name(name), "user_ready": user, "ssh_port": port}
        if from_image:
            data["from_image"] = from_image
        return Provisioned(
            endpoint=Endpoint(host="127.0.0.1", port=port, user=user, identity_file=str(key.private_path),
                              host_key_alias=host_key_alias_for(record.name)),
            action=action, host_key=host_key, provider_data=data,
            detail=f"container {c.name} ({action})",
        )

    def _create(self, name: str, tag: str, base_ref: str, port: int, *,
                extra_labels: dict[str, str] | None = None) -> Any:
        from docker.errors import APIError

        try:
            self.client.volumes.create(volume_name(name), labels={LABEL_NAME: name, LABEL_MANAGED: "1"})
        except APIError as e:
            raise MlopsError(f"Docker could not create the volume {volume_name(name)}: {_short(e)}",
                             hint="see `docker info`", code="docker-create") from None
        # From here on something exists that `down` must remove: the record is saved now.
        self.created({"volume": volume_name(name), "image": base_ref})
        return self._create_container(name, tag, base_ref, port, extra_labels=extra_labels)

    def _create_container(self, name: str, image: str, base_ref: str, port: int, retries: int = 2, *,
                          labels: dict[str, str] | None = None, cname: str | None = None,
                          volume: str | None = None, extra_labels: dict[str, str] | None = None) -> Any:
        """``labels`` replace the workstation labels and ``cname``/``volume`` the names: an
        image builder (images.py) is a container like a workstation, but no workstation."""
        from docker.errors import APIError

        api = self.client.api
        own = labels if labels is not None else {LABEL_NAME: name, LABEL_MANAGED: "1",
                                                 "mlops-env.version": __version__, "mlops-env.base": base_ref}
        own = {**own, **(extra_labels or {})}
        hc = api.create_host_config(
            # A fixed host port (not Docker's pick at every start): the SSH alias stays right.
            port_bindings={22: ("127.0.0.1", port)},
            cap_add=CAP_ADD, cap_drop=CAP_DROP, security_opt=SECURITY_OPT,
            cgroupns="private", tmpfs=TMPFS,
            binds={volume or volume_name(name): {"bind": "/var/lib/docker", "mode": "rw"}},
            restart_policy={"Name": "unless-stopped"},
        )
        # `--security-opt systempaths=unconfined` is a CLI-side option: the API spells it as
        # empty masked/read-only path lists (the inner engine needs /proc and /sys unmasked).
        hc["MaskedPaths"] = []
        hc["ReadonlyPaths"] = []
        try:
            created = api.create_container(
                image, name=cname or container_name(name), hostname=name, detach=True, ports=[22],
                labels=own,
                stop_signal=STOP_SIGNAL, host_config=hc,
            )
            try:
                api.start(created["Id"])
            except APIError as e:
                if not _port_conflict(e) or retries <= 0:
                    raise
                # Someone took the port between our pick and Docker's bind: another free one.
                log.info("port %s taken at the start of %s: %s", port, container_name(name), _short(e))
                api.remove_container(created["Id"], force=True)
                return self._create_container(name, image, base_ref, free_port(), retries=retries - 1,
                                              labels=labels, cname=cname, volume=volume, extra_labels=extra_labels)
        except APIError as e:
            raise MlopsError(f"Docker could not create the workstation container: {_short(e)}",
                             hint="see `docker info`; the engine must allow the capabilities in "
                             "docs/docker-provider.md", code="docker-create") from None
        return self.client.containers.get(created["Id"])

    def _image_for_up(self, options: Resolved, progress: Progress) -> tuple[str, str | None]:
        """The image a new workstation container starts from: ``--from-image`` (a prebuilt
        image, images.py) or the workstation image of the base; and the prebuilt image's name."""
        ref = options.get("from_image")
        if ref:
            from mlops_env.providers.docker.images import DockerImages

            tag, how = DockerImages(self.paths, provider=self).resolve_for_up(ref, options)
            progress(how)
            if tag is not None:
                return tag, tag.split(":", 1)[1]
        return self._workstation_image(options["image"], progress), None

    def _start(self, record: Record, c: Any, progress: Progress) -> Any:
        """Start a stopped container on its fixed port; when that port is taken now (or the
        container predates fixed ports), re-create it on a free one, keeping its disk."""
        from docker.errors import APIError

        port = _fixed_port(c)
        if port is not None and port_free(port):
            try:
                c.start()
                return c
            except APIError as e:
                if not _port_conflict(e):
                    raise MlopsError(f"Docker could not start {c.name}: {_short(e)}",
                                     hint="see `docker logs " + c.name + "`", code="docker-start") from None
                log.info("port %s taken while starting %s: %s", port, c.name, _short(e))
        new_port = free_port()
        why = f"port {port} is taken" if port is not None else "it has no fixed SSH port yet"
        progress(f"{why}: moving SSH of {c.name} to 127.0.0.1:{new_port} (re-creating the container, disk kept)")
        c = self._recreate(record.name, c, new_port)
        record.provider_data.update({"container_id": c.id, "ssh_port": _fixed_port(c) or new_port})
        return c

    def _recreate(self, name: str, c: Any, port: int) -> Any:
        """Docker cannot change an existing container's port binding: commit its disk to an
        image, create the same container from it on the new port (same name, labels, volume,
        run options), then remove the old one and the previous disk image."""
        from docker.errors import APIError, ImageNotFound

        c.reload()
        if c.status == "running":
            c.stop(timeout=30)
        stamp = str(int(time.time() * 1000))
        labels = dict((c.attrs.get("Config") or {}).get("Labels") or {})
        labels[LABEL_STATE_OF] = name
        try:
            disk = c.commit(repository=STATE_REPO, tag=f"{name}-{stamp}", conf={"Labels": labels})
        except APIError as e:
            raise MlopsError(f"Docker could not save the disk of {c.name}: {_short(e)}",
                             hint="free disk space for Docker (`docker system df`) and start it again",
                             code="docker-commit") from None
        old_image = c.attrs.get("Image")
        c.rename(f"{c.name}-old-{stamp}")
        try:
            new = self._create_container(name, disk.id, c.labels.get("mlops-env.base") or "", port)
        except Exception:
            c.rename(container_name(name))  # as it was: the next start tries again
            raise
        c.remove(force=True)
        if old_image:
            try:
                prev = self.client.images.get(old_image)
                if (prev.labels or {}).get(LABEL_STATE_OF) == name:
                    for t in prev.tags:
                        self.client.images.remove(t)  # untag only: its layers are the new disk's parents
            except (ImageNotFound, APIError):
                pass
        return new

    def _wait_running(self, c: Any, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            c.reload()
            if c.status == "running":
                return c
            if c.status in ("exited", "dead") or time.monotonic() > deadline:
                logs = c.logs(tail=15).decode("utf-8", "replace")
                raise MlopsError(f"container {c.name} is {c.status}, not running",
                                 hint=f"its last output: {logs.strip()[-300:] or '(none)'}",
                                 code="container-not-running")
            time.sleep(0.2)

    def _ensure_user(self, c: Any, user: str, public_line: str) -> None:
        # Wait for the init script to finish making host keys / systemd to come up enough.
        code, out = c.exec_run(["bash", "-c", template("docker-vm-user.sh"), "mlops-env-user", user, public_line])
        if code != 0:
            raise MlopsError(f"could not create user {user} in {c.name}: "
                             f"{out.decode('utf-8', 'replace').strip()[-300:]}",
                             hint="--user must be a valid Linux user name", code="user-setup")

    def _host_key(self, c: Any, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            code, out = c.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            if code == 0 and out.strip():
                parts = out.decode().split()
                return f"{parts[0]} {parts[1]}"
            if time.monotonic() > deadline:
                raise MlopsError(f"container {c.name} has no SSH host key",
                                 hint=f"`mlops-env down {c.name.removeprefix('mlops-env-')}` and up again")
            time.sleep(0.2)

    def state(self, record: Record) -> dict[str, Any]:
        try:
            c = self._one(record.name)
        except PrereqError as e:
            return {"state": "unknown", "detail": e.message}
        if c is None:
            return {"state": "missing", "detail": f"no container {container_name(record.name)}"}
        info: dict[str, Any] = {"state": tool_state(c.status), "container": c.name,
                                "image": c.labels.get("mlops-env.base")}
        if c.status == "running":
            try:
                info["port"] = _ssh_port(c)
            except MlopsError:
                pass
        return info

    def describe_destroy(self, record: Record) -> list[str]:
        return [f"remove container {container_name(record.name)} and volume {volume_name(record.name)}"]

    def endpoint(self, record: Record) -> Endpoint | None:
        """The record's endpoint on the port the running container publishes now."""
        c = self._one(record.name)
        if c is None or record.endpoint is None:
            return None
        c.reload()
        if c.status != "running":
            return None
        return dataclasses.replace(record.endpoint, port=_ssh_port(c))

    def destroy(self, record: Record, progress: Progress) -> list[str]:
        from docker.errors import NotFound

        removed = []
        for c in self._containers(record.name):
            progress(f"removing container {c.name}")
            c.remove(force=True, v=True)
            removed.append(f"container {c.name}")
        try:
            vol = self.client.volumes.get(volume_name(record.name))
            vol.remove(force=True)
            removed.append(f"volume {vol.name}")
        except NotFound:
            pass
        for img in self.client.images.list(filters={"label": f"{LABEL_STATE_OF}={record.name}"}):
            for t in img.tags or [img.id]:
                try:
                    self.client.images.remove(t, force=True)
                    removed.append(f"image {t}")
                except NotFound:
                    pass
        return removed

    def stop(self, record: Record, progress: Progress) -> str:
        c = self._one(record.name)
        if c is None:
            raise NotFoundError(f"container {container_name(record.name)} does not exist",
                                hint=f"run `mlops-env up docker {record.name}` to create it")
        if c.status != "running":
            return "already stopped"
        progress(f"stopping {c.name}")
        c.stop(timeout=30)
        return "stopped"

    def start(self, record: Record, progress: Progress) -> str:
        c = self._one(record.name)
        if c is None:
            raise NotFoundError(f"container {container_name(record.name)} does not exist",
                                hint=f"run `mlops-env up docker {record.name}` to create it")
        if c.status == "running":
            return "already running"
        progress(f"starting {c.name}")
        c = self._start(record, c, progress)
        self._wait_running(c)
        return "started"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:port. SO_REUSEADDR, as Docker's own listener has:
    connections of the last run lingering in TIME_WAIT do not make the port taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_conflict(e: Exception) -> bool:
    text = str(getattr(e, "explanation", None) or e).lower()
    return "address already in use" in text or "port is already allocated" in text


def _fixed_port(c: Any) -> int | None:
    """The host port the container asked for at creation; None when Docker picks one at
    every start (workstations made before fixed ports)."""
    bindings = ((c.attrs.get("HostConfig") or {}).get("PortBindings") or {}).get("22/tcp") or []
    for b in bindings:
        if str(b.get("HostPort") or "").isdigit() and int(b["HostPort"]) > 0:
            return int(b["HostPort"])
    return None


# Docker's container states in the tool's words (README: `list`, `status`).
_STATES = {"running": "running", "exited": "stopped", "created": "stopped", "paused": "paused",
           "restarting": "restarting", "removing": "removing", "dead": "failed"}


def tool_state(status: str) -> str:
    return _STATES.get(status, status)


def _ssh_port(c: Any) -> int:
    ports = (c.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    binding = ports.get("22/tcp") or []
    for b in binding:
        if b.get("HostIp") in ("127.0.0.1", "") and b.get("HostPort"):
            return int(b["HostPort"])
    raise MlopsError(f"container {c.name} publishes no SSH port",
                     hint="it was not made by mlops-env; remove it with `docker rm -f` and run up again")


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for fname, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _script_error(text: str) -> tuple[str, str | None]:
    msg, hint = "", None
    for line in text.splitlines():
        if line.startswith("mlops-error: "):
            msg = line[13:]
        elif line.startswith("mlops-hint: "):
            hint = line[12:]
    if not msg:
        msg = (text.strip().splitlines() or ["failed"])[-1][:300]
    return msg, hint


def _short(e: Exception) -> str:
    text = str(getattr(e, "explanation", None) or e)
    return text.splitlines()[0][:300] if text else type(e).__name__
