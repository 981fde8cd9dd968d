"""Docker workstation images: ``image build docker NAME`` (a builder container from the base image
through the docker provider's own workstation image, the workstation steps, generalize,
``docker commit`` to ``mlops-env/image:NAME``), ``up docker --from-image``, list and delete.
See ``mlops_env.images`` for what the Docker and EC2 builds share, and docs/images.md."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlops_env.errors import MlopsError, UsageError
from mlops_env.images import (
    IMAGE_REPO,
    LABEL_BUILD,
    LABEL_BUILDER,
    LABEL_FROM_IMAGE,
    LABEL_PREFIX,
    Progress,
    builder_name,
    check_terms,
    clear_state,
    connect_builder,
    image_lock,
    image_tag,
    read_state,
    recipe,
    recipe_status,
    run_steps,
    unknown_image,
    validate_image_name,
    write_state,
)
from mlops_env.paths import Paths, template

if TYPE_CHECKING:
    from mlops_env.config import Resolved

log = logging.getLogger(__name__)


class DockerImages:
    def __init__(self, paths: Paths, provider: Any = None) -> None:
        from mlops_env.providers.docker.provider import DockerProvider

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
        from mlops_env.providers.docker.provider import STOP_SIGNAL, free_port
        from mlops_env.ssh.keys import ensure_keypair

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
        from mlops_env.providers.docker.provider import _ssh_port

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
