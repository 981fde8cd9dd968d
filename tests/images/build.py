#!/usr/bin/env python3
"""Build (or reuse) the Docker images the end-to-end tests run against.

No container registry is reachable on the test machines, so both images are made from
Debian with ``debootstrap`` and ``docker import`` (see ../shared/TESTBED.md):

``mlops-env-test/debian-base:bookworm``
    debootstrap minbase + openssh-server, sudo, ca-certificates, curl, python3, python3-venv,
    bzip2, procps, iproute2. Plays "a stock distro image" (what ``mlops-env up docker --image``
    gets). Like a stock image it has empty apt lists and NO ssh host keys (debootstrap bakes
    shared ones; they are deleted), and its default command is ``/bin/bash``.

``mlops-env-test/vm:bookworm``
    the base + systemd, systemd-sysv, dbus; sshd enabled; an entrypoint that remounts the
    cgroup v1 controllers read-write, regenerates the ssh host keys (unique per container)
    and ``exec``s ``/sbin/init``. Plays a fresh cloud VM. Run it with :data:`VM_RUN_FLAGS`.

``mlops-env-test/vm-cloudinit:bookworm``
    the vm image + Debian's real ``cloud-init`` package, NoCloud as its only datasource, the
    Ubuntu AMIs' default user ``ubuntu``, no ssh host keys and ``cloud-init clean --logs`` (a
    captured image: the next boot is a first boot), and an entrypoint that does NOT generate
    host keys (cloud-init does, as on EC2). Plays the EC2 instance (tests/ec2/instance_standin.py):
    the test puts the seed (``user-data``, ``meta-data``) into ``/var/lib/cloud/seed/nocloud/``
    before the container's first start. Built only when a test asks for it
    (:func:`ensure_cloudinit_image`, ``--only cloudinit``).

Each image carries the label ``mlops-env-test.recipe`` = a hash of everything that defines
it (this file's recipe constants, the entrypoint, the base recipe). An image whose label
matches is reused; a changed recipe rebuilds. The debootstrap root filesystem is cached as a
tarball under the cache dir (``$MLOPS_TEST_CACHE``, default ``/var/cache/mlops-env-test``).

CLI: ``python tests/images/build.py [--force] [--only base|vm]`` (used by ``.ci/run``).
Library: :func:`ensure_images` (used by the test fixtures).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

RECIPE_VERSION = "5"
SUITE = "bookworm"
MIRROR = os.environ.get("MLOPS_TEST_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("MLOPS_TEST_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
BASE_PACKAGES = (
    "openssh-server",
    "sudo",
    "ca-certificates",
    "curl",
    "python3",
    "python3-venv",
    "bzip2",
    "procps",
    "iproute2",
)
VM_PACKAGES = ("systemd", "systemd-sysv", "dbus")
CLOUDINIT_PACKAGES = ("cloud-init",)

BASE_IMAGE = "mlops-env-test/debian-base:bookworm"
VM_IMAGE = "mlops-env-test/vm:bookworm"
CLOUDINIT_IMAGE = "mlops-env-test/vm-cloudinit:bookworm"
RECIPE_LABEL = "mlops-env-test.recipe"
TEST_LABEL = "mlops-env-test"  # =1 on every container the tests start (see tests/hosts.py)

# How to run VM_IMAGE so that systemd is PID 1 and Docker can run inside (TESTBED.md).
# --privileged is refused on these hosts; this is the measured working set.
VM_RUN_FLAGS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "--cgroupns", "private",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "--stop-signal", "SIGRTMIN+3",
    "-v", "/var/lib/docker",
)

HERE = Path(__file__).resolve().parent

# deb822 sources like a stock debian:bookworm image (debootstrap writes only `bookworm main`).
DEBIAN_SOURCES = f"""\
Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {SECURITY_MIRROR}
Suites: {SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

VM_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends {' '.join(VM_PACKAGES)} \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# sshd starts under systemd; host keys are made per container by vm-init (never baked).
# Units that cannot work in a container are masked so the system reaches "running".
RUN systemctl enable ssh.service \\
 && systemctl mask systemd-udevd.service systemd-udev-trigger.service \\
      systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \\
      sys-kernel-tracing.mount getty@tty1.service serial-getty@.service \\
      systemd-remount-fs.service systemd-firstboot.service \\
 && rm -f /etc/ssh/ssh_host_* \\
 && rm -f /etc/machine-id /var/lib/dbus/machine-id && : > /etc/machine-id
COPY vm-init /usr/local/sbin/vm-init
RUN chmod 0755 /usr/local/sbin/vm-init
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/sbin/vm-init"]
CMD []
"""

# The EC2 stand-in: what an AMI has (cloud-init, a default user, no host keys, a clean
# cloud-init state). The datasource is NoCloud (a seed directory): EC2's metadata service
# cannot be played here, and NoCloud gives cloud-init the same two inputs (user data, the
# key pair's public key as `public-keys`).
CLOUDINIT_DOCKERFILE = f"""\
FROM {VM_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends {' '.join(CLOUDINIT_PACKAGES)} \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY 90-mlops-env-test.cfg /etc/cloud/cloud.cfg.d/90-mlops-env-test.cfg
RUN sed '/^ssh-keygen -A/d' /usr/local/sbin/vm-init > /usr/local/sbin/vm-init-cloud \\
 && chmod 0755 /usr/local/sbin/vm-init-cloud \\
 && ! grep -q ssh-keygen /usr/local/sbin/vm-init-cloud \\
 && rm -f /etc/ssh/ssh_host_* \\
 && cloud-init clean --logs
ENTRYPOINT ["/usr/local/sbin/vm-init-cloud"]
CMD []
"""
CLOUDINIT_CFG = """\
# mlops-env test image: NoCloud seed only (no network datasource to wait for), and the
# default user of Canonical's Ubuntu AMIs.
datasource_list: [ NoCloud, None ]
system_info:
  default_user:
    name: ubuntu
    lock_passwd: true
    gecos: Ubuntu
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
"""

Log = Callable[[str], None]


def _log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """The cache directory (rootfs tarball, wheelhouse, stand-in installer)."""
    return Path(os.environ.get("MLOPS_TEST_CACHE", "/var/cache/mlops-env-test"))


@contextlib.contextmanager
def cache_lock(name: str = "images") -> Iterator[Path]:
    """An exclusive lock on the cache, so two builders (CI + a test run) do not race."""
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield d
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def base_recipe() -> str:
    return _sha("base", RECIPE_VERSION, SUITE, MIRROR, SECURITY_MIRROR, *BASE_PACKAGES, DEBIAN_SOURCES)


def vm_recipe() -> str:
    return _sha("vm", base_recipe(), VM_DOCKERFILE, (HERE / "vm-init").read_text())


def cloudinit_recipe() -> str:
    return _sha("cloudinit", vm_recipe(), CLOUDINIT_DOCKERFILE, CLOUDINIT_CFG)


def docker_client():  # type: ignore[no-untyped-def]
    import docker

    return docker.from_env(timeout=600)


def image_recipe(client, name: str) -> str | None:  # type: ignore[no-untyped-def]
    """The recipe label of a local image, or None when the image is absent."""
    import docker.errors

    try:
        img = client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    return (img.labels or {}).get(RECIPE_LABEL, "")


def _cli_image_recipe(name: str) -> str | None:
    """Like image_recipe() but through the docker CLI (no SDK needed); None when unknown."""
    try:
        r = subprocess.run(  # noqa: S603 - fixed program, test-controlled arguments
            ["docker", "image", "inspect", "-f", f"{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}", name],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def rootfs_tarball(log: Log = _log, force: bool = False) -> Path:
    """debootstrap the base root filesystem once; cached as a tarball keyed by the recipe."""
    recipe = base_recipe()
    d = cache_dir()
    tar_path = d / f"rootfs-{SUITE}-{recipe}.tar"
    if tar_path.exists() and not force:
        log(f"rootfs cached: {tar_path}")
        return tar_path
    if os.geteuid() != 0:
        raise RuntimeError("debootstrap needs root (run .ci/run or this script as root)")
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is not installed: apt-get install -y debootstrap")
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(dir=d, prefix="rootfs-build-") as tmp:
        root = Path(tmp) / "rootfs"
        log(f"debootstrap {SUITE} ({MIRROR}) -> {root}")
        subprocess.run(  # noqa: S603 - fixed program, test-controlled arguments
            [
                "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                SUITE, str(root), MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL if not os.environ.get("MLOPS_TEST_VERBOSE") else None,
        )
        _postprocess_base(root)
        partial = tar_path.with_suffix(".tar.partial")
        subprocess.run(  # noqa: S603 - fixed program, test-controlled arguments
            ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(partial), "."],
            check=True,
        )
        partial.replace(tar_path)
    # Old rootfs tarballs of other recipes are dead weight.
    for old in d.glob(f"rootfs-{SUITE}-*.tar"):
        if old != tar_path:
            old.unlink(missing_ok=True)
    log(f"rootfs built in {time.monotonic() - t0:.1f}s: {tar_path}")
    return tar_path


def _postprocess_base(root: Path) -> None:
    """Make the debootstrap tree look like a stock Debian image."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # shared keys baked by debootstrap; every box must make its own
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
    lists = root / "var/lib/apt/lists"
    for p in lists.iterdir() if lists.exists() else ():
        if p.is_file() and p.name != "lock":
            p.unlink()
    for p in (root / "var/cache/apt/archives").glob("*.deb"):
        p.unlink()
    for p in (root / "var/cache/apt").glob("*.bin"):
        p.unlink()
    (root / "etc/hostname").unlink(missing_ok=True)
    # debootstrap copies the build host's resolv.conf; Docker bind-mounts its own.
    (root / "etc/resolv.conf").unlink(missing_ok=True)


def ensure_base_image(
    client=None, *, force: bool = False, refresh_rootfs: bool = False, log: Log = _log
) -> str:  # type: ignore[no-untyped-def]
    client = client or docker_client()
    recipe = base_recipe()
    if not force and image_recipe(client, BASE_IMAGE) == recipe:
        log(f"{BASE_IMAGE} up to date (recipe {recipe})")
        return BASE_IMAGE
    with cache_lock():
        if not force and image_recipe(client, BASE_IMAGE) == recipe:
            return BASE_IMAGE
        tar_path = rootfs_tarball(log, force=refresh_rootfs)
        t0 = time.monotonic()
        repo, tag = BASE_IMAGE.rsplit(":", 1)
        client.api.import_image_from_file(
            str(tar_path),
            repository=repo,
            tag=tag,
            changes=[
                'CMD ["/bin/bash"]',
                f"LABEL {RECIPE_LABEL}={recipe}",
                "LABEL org.opencontainers.image.description=mlops-env-test-stock-debian-stand-in",
            ],
        )
        got = image_recipe(client, BASE_IMAGE)
        if got != recipe:
            raise RuntimeError(f"docker import of {BASE_IMAGE} did not take (label {got!r})")
        log(f"{BASE_IMAGE} imported in {time.monotonic() - t0:.1f}s (recipe {recipe})")
    return BASE_IMAGE


def ensure_vm_image(client=None, *, force: bool = False, log: Log = _log) -> str:  # type: ignore[no-untyped-def]
    client = client or docker_client()
    if image_recipe(client, BASE_IMAGE) != base_recipe():
        ensure_base_image(client, force=False, log=log)
    recipe = vm_recipe()
    if not force and image_recipe(client, VM_IMAGE) == recipe:
        log(f"{VM_IMAGE} up to date (recipe {recipe})")
        return VM_IMAGE
    with cache_lock():
        if not force and image_recipe(client, VM_IMAGE) == recipe:
            return VM_IMAGE
        t0 = time.monotonic()
        ctx = io.BytesIO()
        with tarfile.open(fileobj=ctx, mode="w") as tf:
            for name, data, mode in (
                ("Dockerfile", VM_DOCKERFILE.encode(), 0o644),
                ("vm-init", (HERE / "vm-init").read_bytes(), 0o755),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = mode
                tf.addfile(info, io.BytesIO(data))
        ctx.seek(0)
        log(f"building {VM_IMAGE} (apt-get install {' '.join(VM_PACKAGES)} in a container)")
        tail: list[str] = []
        for chunk in client.api.build(
            fileobj=ctx,
            custom_context=True,
            tag=VM_IMAGE,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            labels={RECIPE_LABEL: recipe},
        ):
            if "stream" in chunk:
                tail.append(chunk["stream"])
                tail = tail[-40:]
                if os.environ.get("MLOPS_TEST_VERBOSE"):
                    sys.stderr.write(chunk["stream"])
            if "error" in chunk:
                raise RuntimeError(f"building {VM_IMAGE} failed: {chunk['error']}\n{''.join(tail)}")
        got = image_recipe(client, VM_IMAGE)
        if got != recipe:
            raise RuntimeError(f"build of {VM_IMAGE} did not take (label {got!r})\n{''.join(tail)}")
        log(f"{VM_IMAGE} built in {time.monotonic() - t0:.1f}s (recipe {recipe})")
    return VM_IMAGE


def ensure_cloudinit_image(client=None, *, force: bool = False, log: Log = _log) -> str:  # type: ignore[no-untyped-def]
    """The vm image + real cloud-init (reused when its recipe label matches)."""
    client = client or docker_client()
    if image_recipe(client, VM_IMAGE) != vm_recipe():
        ensure_vm_image(client, force=False, log=log)
    recipe = cloudinit_recipe()
    if not force and image_recipe(client, CLOUDINIT_IMAGE) == recipe:
        log(f"{CLOUDINIT_IMAGE} up to date (recipe {recipe})")
        return CLOUDINIT_IMAGE
    with cache_lock():
        if not force and image_recipe(client, CLOUDINIT_IMAGE) == recipe:
            return CLOUDINIT_IMAGE
        t0 = time.monotonic()
        log(f"building {CLOUDINIT_IMAGE} (apt-get install {' '.join(CLOUDINIT_PACKAGES)} in a container)")
        _build(client, CLOUDINIT_IMAGE, recipe, (("Dockerfile", CLOUDINIT_DOCKERFILE.encode(), 0o644),
                                                   ("90-mlops-env-test.cfg", CLOUDINIT_CFG.encode(), 0o644)))
        log(f"{CLOUDINIT_IMAGE} built in {time.monotonic() - t0:.1f}s (recipe {recipe})")
    return CLOUDINIT_IMAGE


def _build(client, tag: str, recipe: str, files: tuple[tuple[str, bytes, int], ...]) -> None:  # type: ignore[no-untyped-def]
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as tf:
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tf.addfile(info, io.BytesIO(data))
    ctx.seek(0)
    tail: list[str] = []
    for chunk in client.api.build(fileobj=ctx, custom_context=True, tag=tag, rm=True, forcerm=True, pull=False,
                                  decode=True, labels={RECIPE_LABEL: recipe}):
        if "stream" in chunk:
            tail = [*tail, chunk["stream"]][-40:]
            if os.environ.get("MLOPS_TEST_VERBOSE"):
                sys.stderr.write(chunk["stream"])
        if "error" in chunk:
            raise RuntimeError(f"building {tag} failed: {chunk['error']}\n{''.join(tail)}")
    got = image_recipe(client, tag)
    if got != recipe:
        raise RuntimeError(f"build of {tag} did not take (label {got!r})\n{''.join(tail)}")


def ensure_images(client=None, *, force: bool = False, log: Log = _log) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Make sure both test images exist with the current recipe; return their names."""
    client = client or docker_client()
    return {
        "base": ensure_base_image(client, force=force, log=log),
        "vm": ensure_vm_image(client, force=force, log=log),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--refresh-rootfs", action="store_true", help="re-run debootstrap (implies --force)")
    ap.add_argument("--only", choices=("base", "vm", "cloudinit"),
                    help="build only this image (vm implies base; cloudinit implies vm)")
    ap.add_argument("--json", action="store_true", help="print the image names as JSON")
    ap.add_argument(
        "--rootfs-only",
        action="store_true",
        help="only debootstrap the cached rootfs tarball (stdlib only: no docker SDK, no engine needed)",
    )
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    if args.rootfs_only:
        if _cli_image_recipe(BASE_IMAGE) == base_recipe():
            _log(f"{BASE_IMAGE} is up to date: rootfs not needed")
            return 0
        with cache_lock():
            path = rootfs_tarball(force=args.refresh_rootfs)
        _log(f"rootfs ready in {time.monotonic() - t0:.1f}s")
        if args.json:
            print(json.dumps({"rootfs": str(path)}))
        return 0
    client = docker_client()
    if args.refresh_rootfs:
        ensure_base_image(client, force=True, refresh_rootfs=True)
        args.force = False
        ensure_vm_image(client, force=True)
    if args.only == "base":
        out = {"base": ensure_base_image(client, force=args.force)}
    elif args.only == "vm":
        out = {"vm": ensure_vm_image(client, force=args.force)}
    elif args.only == "cloudinit":
        out = {"cloudinit": ensure_cloudinit_image(client, force=args.force)}
    else:
        out = ensure_images(client, force=args.force)
    _log(f"images ready in {time.monotonic() - t0:.1f}s")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
