"""Prebuilt workstation images (``mlops-env image ...``): what the Docker and the EC2 builds share
(names, the recipe and whether an image's recipe is today's, the per-name lock and phase file,
running the workstation steps on a builder, the terms). The builders themselves live with their
providers: ``providers/docker/images.py`` and ``providers/ec2/imagebuild.py``.

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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_env import __version__
from mlops_env.errors import MlopsError, NotFoundError, UsageError
from mlops_env.fsutil import atomic_write, file_lock
from mlops_env.paths import Paths, ensure_private_dir, template
from mlops_env.state import validate_name

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
def connect_builder(ep: Any, host_key: str, timeout: float, progress: Progress) -> Any:
    """One SSH connection to a builder, its host key pinned (from the Docker API, or the key
    this run handed over in an EC2 builder's user data)."""
    from mlops_env.ssh.transport import SSHTransport

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
