"""Prebuilt workstation images (``mlops-env image ...``), the Docker side.

``image build docker NAME`` works like Packer: a temporary *builder* container from the base
image (through the docker provider's own workstation image: systemd, sshd, sudo), the same
workstation steps as ``up`` over one SSH connection (base, docker, conda and its libraries, the
smoke test's program and data; not the idle agent, not the SSH config), then
``templates/image-generalize.sh`` (no host keys, no authorized_keys, no histories, no installer
download, no apt lists, no idle-agent state, no credentials), ``docker commit`` to
``mlops-env/image:NAME`` with the recipe as labels, and the builder is removed.

Nothing leaks: every builder resource carries ``mlops-env.image-build=NAME`` (and the builder
container ``mlops-env.builder=1``); a run holds a lock per image name and records its phase in
``<data>/images/NAME.json``; a run killed anywhere is finished (committed image: only the
builder is left to remove) or cleaned (anything else) by the next ``image build`` or
``image delete``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_env import __version__
from mlops_env.errors import MlopsError, NotFoundError, UsageError
from mlops_env.fsutil import atomic_write, file_lock
from mlops_env.paths import Paths, ensure_private_dir
from mlops_env.state import validate_name
from mlops_env.steps import template

if TYPE_CHECKING:
    from mlops_env.config import Resolved

log = logging.getLogger(__name__)

IMAGE_REPO = "mlops-env/image"
LABEL_BUILD = "mlops-env.image-build"  # every builder resource, and the image itself
LABEL_BUILDER = "mlops-env.builder"  # "1" on the builder container only ("0" on the image)
LABEL_FROM_IMAGE = "mlops-env.from-image"  # a workstation container made from an image
LABEL_PREFIX = "mlops-env.image."
#: scripts whose text makes the recipe (a change to any one makes older images "stale")
RECIPE_SCRIPTS = ("base.sh", "conda.sh", "docker.sh", "smoke.sh", "facts.sh", "docker-vm-prep.sh",
                  "docker-vm-init.sh", "docker-vm-user.sh", "image-generalize.sh")
PHASES = ("prepare", "builder", "steps", "generalize", "commit", "committed")

Progress = Callable[[str], None]


def validate_image_name(name: str) -> str:
    """Image names follow the workstation rule (1-32 of ``[a-z0-9-]``)."""
    try:
        return validate_name(name)
    except UsageError:
        raise UsageError(f"invalid image name {name!r}: use 1-32 characters a-z, 0-9 and '-'",
                         hint="for example: mlops-env image build docker course-2026",
                         code="invalid-name") from None


def image_tag(name: str) -> str:
    return f"{IMAGE_REPO}:{name}"


def builder_name(name: str) -> str:
    return f"mlops-env-image-build-{name}"


def scripts_hash() -> str:
    h = hashlib.sha256()
    for s in RECIPE_SCRIPTS:
        h.update(s.encode() + b"\0" + template(s).encode() + b"\0")
    return h.hexdigest()[:16]


_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "x86_64": "x86_64", "aarch64": "aarch64"}


def recipe(options: Resolved, arch: str, *, base: str | None = None, user: str | None = None) -> dict[str, str]:
    """The recipe an image is built from, as labels (all strings). ``base``/``user``: an EC2
    builder's AMI id and login user instead of ``--image``/``--user``."""
    from mlops_env.installers import resolve as resolve_installer

    inst = resolve_installer(options["python_dist"], _ARCH.get(arch, arch),
                             url=options.get("conda_installer"), sha256=options.get("conda_sha256"))
    return {
        "distribution": str(options["python_dist"]),
        "installer-sha256": inst.sha256 or "",
        "installer-mirror": "1" if inst.mirror else "0",
        "docker-source": str(options["docker_source"]),
        "base-image": str(base or options["image"]),
        "arch": _ARCH.get(arch, arch),
        "user": str(user or options["user"]),
        "smoke-test": str(options["smoke_test"]),
        "mlops-env-version": __version__,
        "scripts-hash": scripts_hash(),
    }


def recipe_status(labels: dict[str, str], prefix: str = LABEL_PREFIX) -> tuple[str, list[str]]:
    """``current`` or ``stale`` against today's scripts and pinned installer table, with why
    (``prefix``: ``mlops-env:image:`` for an EC2 image's tags)."""
    from mlops_env.installers import resolve as resolve_installer

    why = []
    if labels.get(prefix + "scripts-hash") != scripts_hash():
        why.append("the step scripts changed")
    dist, arch = labels.get(prefix + "distribution"), labels.get(prefix + "arch")
    if labels.get(prefix + "installer-mirror") != "1" and dist and arch:
        try:
            pinned = resolve_installer(dist, arch).sha256 or ""
        except MlopsError:
            pinned = ""
        if pinned != labels.get(prefix + "installer-sha256"):
            why.append(f"the pinned {dist} installer changed")
    return ("stale" if why else "current"), why


# -- local state of a build (phase markers, lock) ----------------------------------------------
def _dir(paths: Paths) -> Path:
    return paths.data / "images"


def state_file(paths: Paths, name: str) -> Path:
    return _dir(paths) / f"{name}.json"


def read_state(paths: Paths, name: str) -> dict[str, Any] | None:
    try:
        d = json.loads(state_file(paths, name).read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else None
    except (OSError, ValueError):
        return None


def write_state(paths: Paths, name: str, phase: str, **extra: Any) -> None:
    ensure_private_dir(_dir(paths))
    d = {"name": name, "provider": "docker", "phase": phase, "updated": time.time(), **extra}
    atomic_write(state_file(paths, name), json.dumps(d) + "\n", mode=0o600)


def clear_state(paths: Paths, name: str) -> None:
    state_file(paths, name).unlink(missing_ok=True)


@contextmanager
def image_lock(paths: Paths, name: str) -> Iterator[None]:
    ensure_private_dir(_dir(paths))
    with file_lock(_dir(paths) / f"{name}.lock", timeout=0, what=f"building or deleting image {name!r}"):
        yield


# -- Docker -----------------------------------------------------------------------------------
class DockerImages:
    def __init__(self, paths: Paths, provider: Any = None) -> None:
        from mlops_env.providers.docker import DockerProvider

        self.paths = paths
        self.provider = provider or DockerProvider(paths)

    @property
    def client(self) -> Any:
        return self.provider.client

    def _image(self, name: str) -> Any | None:
        from docker.errors import ImageNotFound

        try:
            return self.client.images.get(image_tag(name))
        except ImageNotFound:
            return None

    def builder_leftovers(self, name: str) -> tuple[list[Any], list[Any]]:
        flt = {"label": [f"{LABEL_BUILD}={name}", f"{LABEL_BUILDER}=1"]}
        containers = self.client.containers.list(all=True, filters=flt)
        volumes = self.client.volumes.list(filters={"label": f"{LABEL_BUILD}={name}"})
        return containers, volumes

    def cleanup(self, name: str, progress: Progress) -> list[str]:
        """Remove a builder left by a killed run (container, volume) and the run's state."""
        from docker.errors import APIError, NotFound

        removed = []
        containers, volumes = self.builder_leftovers(name)
        for c in containers:
            progress(f"removing builder container {c.name} left by an interrupted build")
            try:
                c.remove(force=True, v=True)
            except NotFound:
                pass
            removed.append(f"container {c.name}")
        for v in volumes:
            try:
                v.remove(force=True)
            except NotFound:
                pass
            removed.append(f"volume {v.name}")
        # An image deleted while workstations used it stays as untagged layers; once no
        # container uses them any more they go too.
        used = self._used_image_ids()
        for img in self.client.images.list(all=True, filters={"label": f"{LABEL_BUILD}={name}", "dangling": True}):
            if img.id not in used and not img.tags:
                try:
                    self.client.images.remove(img.id)
                    removed.append(f"untagged image {img.short_id}")
                except (NotFound, APIError) as e:
                    log.debug("untagged image %s kept: %s", img.id, e)
        return removed

    def _used_image_ids(self) -> set[str]:
        return {str(c.attrs.get("Image")) for c in self.client.containers.list(all=True)}

    def in_use_by(self, name: str) -> list[str]:
        cs = self.client.containers.list(all=True, filters={"label": f"{LABEL_FROM_IMAGE}={name}"})
        return sorted(c.labels.get("mlops-env.name") or c.name for c in cs)

    # -- build --------------------------------------------------------------------------------
    def build(self, name: str, options: Resolved, progress: Progress,
              on_step: Callable[..., None] | None = None) -> dict[str, Any]:
        validate_image_name(name)
        check_terms(options)
        with image_lock(self.paths, name):
            prior = read_state(self.paths, name)
            image = self._image(name)
            if (prior and prior.get("phase") in ("commit", "committed") and image is not None
                    and prior.get("build_id") and (image.labels or {}).get(LABEL_PREFIX + "build-id") == prior["build_id"]):
                # The killed run's commit went through (Docker finishes a commit whose client
                # died): only its builder is left to remove.
                removed = self.cleanup(name, progress)
                clear_state(self.paths, name)
                return {**self._describe(image), "action": "finished",
                        "detail": "finished the interrupted build (removed: " + (", ".join(removed) or "nothing") + ")"}
            cleaned = self.cleanup(name, progress)
            clear_state(self.paths, name)
            if image is not None:
                raise UsageError(f"image {name!r} exists ({image_tag(name)})",
                                 hint=f"use it (`mlops-env up docker --from-image {name}`), or delete it "
                                 f"first: mlops-env image delete {name} --yes", code="image-exists")
            t0 = time.monotonic()
            build_id = secrets.token_hex(8)
            try:
                image = self._build(name, options, progress, on_step, build_id)
            except BaseException:
                # Ctrl-C or a failure: nothing half-made stays (a SIGKILL is cleaned next time).
                # Cut off during the commit, Docker may still finish it: the state stays, and
                # the next build or delete finishes (by build id) or removes it.
                st = read_state(self.paths, name)
                if st and st.get("phase") in ("commit", "committed"):
                    raise
                try:
                    self.cleanup(name, lambda m: None)
                    clear_state(self.paths, name)
                except Exception as e:  # noqa: BLE001 - the original error matters more
                    log.debug("cleanup after a failed build: %s", e)
                raise
            data = {**self._describe(image), "action": "created", "seconds": round(time.monotonic() - t0, 3)}
            if cleaned:
                data["cleaned"] = cleaned
            return data

    def _build(self, name: str, options: Resolved, progress: Progress,
               on_step: Callable[..., None] | None, build_id: str) -> Any:
        from mlops_env.keys import ensure_keypair
        from mlops_env.providers.docker import STOP_SIGNAL, free_port

        write_state(self.paths, name, "prepare", build_id=build_id)
        base_ref = options["image"]
        ws_tag = self.provider._workstation_image(base_ref, progress)
        base = self.client.images.get(ws_tag)
        rec = recipe(options, base.attrs.get("Architecture") or "amd64")
        labels = {LABEL_BUILD: name, LABEL_BUILDER: "1", "mlops-env.managed": "1"}
        progress(f"creating builder container {builder_name(name)} from {base_ref}")
        vol = builder_name(name) + "-docker"
        self.client.volumes.create(vol, labels=labels)
        c = self.provider._create_container(f"image-build-{name}", ws_tag, base_ref, free_port(), labels=labels,
                                            cname=builder_name(name), volume=vol)
        write_state(self.paths, name, "builder", container=c.name, build_id=build_id)
        c = self.provider._wait_running(c)
        key = ensure_keypair(self.paths)
        user = options["user"]
        self.provider._ensure_user(c, user, key.public_line)
        host_key = self.provider._host_key(c)
        from mlops_env.providers.docker import _ssh_port

        port = _ssh_port(c)
        write_state(self.paths, name, "steps", container=c.name, build_id=build_id)
        self._run_steps(name, options, port, user, str(key.private_path), host_key, progress, on_step)

        write_state(self.paths, name, "generalize", container=c.name, build_id=build_id)
        progress("generalizing the builder (no keys, histories, credentials, downloads, apt lists)")
        code, out = c.exec_run(["bash", "-c", template("image-generalize.sh")])
        text = out.decode("utf-8", "replace") if out else ""
        log.debug("generalize output:\n%s", text)
        if code != 0:
            raise MlopsError(f"could not generalize the builder: {text.strip()[-300:]}",
                             hint="see the log file; nothing was kept", code="image-generalize")
        progress("stopping the builder")
        c.stop(timeout=30)

        write_state(self.paths, name, "commit", container=c.name, build_id=build_id)
        progress(f"committing {image_tag(name)}")
        img_labels = {LABEL_BUILD: name, LABEL_BUILDER: "0",
                      LABEL_PREFIX + "created": str(int(time.time())), LABEL_PREFIX + "build-id": build_id,
                      **{LABEL_PREFIX + k: v for k, v in rec.items()}}
        c.commit(repository=IMAGE_REPO, tag=name, conf={
            "Entrypoint": ["/usr/local/sbin/mlops-env-init"], "Cmd": [], "StopSignal": STOP_SIGNAL,
            "Labels": img_labels,
        })
        write_state(self.paths, name, "committed", container=c.name, build_id=build_id)
        progress("removing the builder")
        self.cleanup(name, lambda m: None)
        clear_state(self.paths, name)
        image = self._image(name)
        assert image is not None
        return image

    def _run_steps(self, name: str, options: Resolved, port: int, user: str, identity: str, host_key: str,
                   progress: Progress, on_step: Callable[..., None] | None) -> None:
        from mlops_env.state import Endpoint

        ep = Endpoint(host="127.0.0.1", port=port, user=user, identity_file=identity,
                      host_key_alias=builder_name(name))
        transport = connect_builder(ep, host_key, options["ssh_timeout"], progress)
        try:
            run_steps(self.paths, name, "docker", options, ep, transport, on_step)
        finally:
            transport.close()

    # -- list / delete ------------------------------------------------------------------------
    def _describe(self, image: Any) -> dict[str, Any]:
        labels = dict(image.labels or {})
        name = labels.get(LABEL_BUILD) or ""
        status, why = recipe_status(labels)
        created = labels.get(LABEL_PREFIX + "created")
        age = time.time() - int(created) if created and created.isdigit() else None
        return {
            "name": name, "provider": "docker", "id": image.id, "tag": image_tag(name),
            "recipe": status, "recipe_why": why,
            "recipe_labels": {k.removeprefix(LABEL_PREFIX): v for k, v in labels.items() if k.startswith(LABEL_PREFIX)},
            "age_seconds": round(age) if age is not None else None,
            "size_bytes": image.attrs.get("Size"),
            "in_use_by": self.in_use_by(name) if name else [],
            "monthly_cost_usd": 0.0,
        }

    def list(self) -> list[dict[str, Any]]:
        out = []
        for img in self.client.images.list(filters={"label": f"{LABEL_BUILDER}=0"}):
            if any(t.startswith(IMAGE_REPO + ":") for t in img.tags or []):
                out.append(self._describe(img))
        return sorted(out, key=lambda d: d["name"])

    def describe(self, name: str) -> dict[str, Any]:
        validate_image_name(name)
        image = self._image(name)
        if image is None:
            raise unknown_image(name)
        return self._describe(image)

    def delete(self, name: str, progress: Progress, confirm: Callable[[str], bool]) -> dict[str, Any]:
        from docker.errors import ImageNotFound

        validate_image_name(name)
        with image_lock(self.paths, name):
            image = self._image(name)
            leftovers = self.cleanup(name, progress)
            clear_state(self.paths, name)
            if image is None:
                if leftovers:
                    return {"name": name, "deleted": False, "removed": leftovers,
                            "detail": "no image; removed what an interrupted build left"}
                raise unknown_image(name)
            users = self.in_use_by(name)
            warnings = []
            if users:
                warnings.append(f"workstations made from image {name!r} keep running: {', '.join(users)} "
                                "(their containers keep the image's layers until they are removed)")
            if not confirm(f"Delete image {image_tag(name)}?"):
                raise UsageError(f"image {name!r} was not deleted", hint="re-run with --yes to delete without a question",
                                 code="not-confirmed")
            progress(f"removing {image_tag(name)}")
            try:
                # Forced: Docker refuses to untag an image a container uses; the workstation
                # keeps the layers (untagged), freed by a later `image build`/`image delete`.
                self.client.images.remove(image_tag(name), force=bool(users))
            except ImageNotFound:
                pass
            left = self._image(name)
            if left is not None or any(self.builder_leftovers(name)):
                raise MlopsError(f"image {name!r} or its builder is still there after delete",
                                 hint="see `docker images mlops-env/image` and `docker ps -a`", code="delete-incomplete")
            return {"name": name, "deleted": True, "removed": [image_tag(name), *leftovers],
                    "in_use_by": users, "warnings": warnings}

    # -- up --from-image ----------------------------------------------------------------------
    def resolve_for_up(self, ref: str, options: Resolved) -> tuple[str | None, str]:
        """The image tag for ``up docker --from-image REF`` and a sentence saying which; ``auto``
        takes the newest image of the current recipe built from the same base image, else None
        (a fresh bootstrap)."""
        if ref == "auto":
            want_base = str(options["image"])
            best: dict[str, Any] | None = None
            for d in self.list():
                lab = d["recipe_labels"]
                if d["recipe"] != "current" or lab.get("base-image") != want_base:
                    continue
                if lab.get("distribution") != options["python_dist"] or lab.get("user") != options["user"]:
                    continue
                if best is None or int(lab.get("created", 0)) > int(best["recipe_labels"].get("created", 0)):
                    best = d
            if best is None:
                return None, f"no current image for {want_base}: a fresh bootstrap"
            return best["tag"], f"from image {best['name']} (newest current recipe)"
        validate_image_name(ref)
        if self._image(ref) is None:
            raise unknown_image(ref)
        return image_tag(ref), f"from image {ref}"


def connect_builder(ep: Any, host_key: str, timeout: float, progress: Progress) -> Any:
    """One SSH connection to a builder, its host key pinned (from the Docker API, or the key
    this run handed over in an EC2 builder's user data)."""
    from mlops_env.transport.ssh import SSHTransport

    progress(f"connecting to the builder ({ep.user}@{ep.host}:{ep.port})")
    return SSHTransport(ep.host, ep.port, ep.user, ep.identity_file, host_key, timeout=timeout,
                        label=ep.host_key_alias)


def run_steps(paths: Paths, name: str, provider: str, options: Resolved, ep: Any, transport: Any,
              on_step: Callable[..., None] | None) -> None:
    """The workstation steps of ``up`` on a builder: base, docker, conda, the smoke test's
    program and data; not the idle agent, not the SSH config."""
    from mlops_env import engine
    from mlops_env.state import Record
    from mlops_env.steps import Facts, StepContext
    from mlops_env.steps.builtin import workstation_steps

    record = Record(name=f"image-build-{name}", provider=provider, alias=ep.host_key_alias)
    steps = workstation_steps(options["smoke_test"], False)  # no idle agent, no ssh config
    ctx = StepContext(transport=transport, facts=Facts({}), options=options, record=record,
                      paths=paths, endpoint=ep)
    plan = engine.gather(ctx, steps)
    engine.apply(ctx, plan, jobs=4, on_event=on_step, abort=transport.close)


def check_terms(options: Resolved) -> None:
    """Anaconda's terms are accepted up front (there is no one to ask in a builder): refused
    before anything is made."""
    from mlops_env.errors import PrereqError
    from mlops_env.installers import table

    dist = options["python_dist"]
    if table()[dist].get("terms_of_service") and not options["accept_anaconda_tos"]:
        raise PrereqError(f"building an image with {dist} requires accepting Anaconda's terms of service",
                          hint="add --accept-anaconda-tos (https://www.anaconda.com/legal/terms), or use "
                          "--python-dist miniforge (no terms)", code="terms-not-accepted")


def unknown_image(name: str) -> NotFoundError:
    return NotFoundError(f"no image {name!r} on this Docker engine",
                         hint=f"see `mlops-env image list`, or build it: mlops-env image build docker {name}",
                         code="image-not-found")
