"""`mlops-env image build docker` end to end on the real Docker engine (issue 13): the installed
CLI bakes a prebuilt image from the stand-in installer mirror image, the committed image holds
none of the items an image must never hold, `up docker --from-image` passes its smoke test with
base, docker and conda `unchanged`, and a build killed in each phase converges on the next
`image build` / `image delete` with no leftover container, volume or image.

Interruptions wait for the build's own phase marker (``<MLOPS_ENV_HOME>/images/NAME.json``),
never for a fixed time; children get the default SIGINT (clirun.with_default_sigint).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clirun import with_default_sigint
from e2ehelp import Env, mlops_env_bin, step_status

PID = os.getpid() % 100000
IMG = f"e2e-img{PID}"
WS = f"e2e-fi{PID}"


def _build_args(mirror: Any, name: str) -> list[str]:
    return ["--json", "image", "build", "docker", name, "--image", mirror.image,
            "--conda-installer", mirror.url, "--conda-sha256", mirror.sha256,
            "--accept-anaconda-tos", "--smoke-test", "sample"]


def _leftovers(engine: Any, name: str) -> dict[str, list[str]]:
    flt = {"label": f"mlops-env.image-build={name}"}
    return {
        "builders": [c.name for c in engine.containers.list(all=True, filters={
            "label": [f"mlops-env.image-build={name}", "mlops-env.builder=1"]})],
        "volumes": [v.name for v in engine.volumes.list(filters=flt)],
        "images": [t for i in engine.images.list(filters=flt) for t in i.tags],
    }


def _purge(engine: Any, name: str) -> None:
    for c in engine.containers.list(all=True, filters={"label": f"mlops-env.image-build={name}"}):
        c.remove(force=True, v=True)
    for v in engine.volumes.list(filters={"label": f"mlops-env.image-build={name}"}):
        v.remove(force=True)
    for i in engine.images.list(filters={"label": f"mlops-env.image-build={name}"}):
        engine.images.remove(i.id, force=True)


@pytest.fixture(scope="module")
def built(module_env: Env, docker_engine: Any, base_image_with_standin: Any) -> Iterator[tuple[Env, Any, Any]]:
    run = module_env.mlops(*_build_args(base_image_with_standin, IMG))
    try:
        yield module_env, run, base_image_with_standin
    finally:
        module_env.mlops("down", WS, "--yes")
        for c in docker_engine.containers.list(all=True, filters={"label": f"mlops-env.name={WS}"}):
            c.remove(force=True, v=True)
        _purge(docker_engine, IMG)


def test_build_commits_a_labelled_image_and_removes_the_builder(built: tuple[Env, Any, Any], docker_engine: Any) -> None:
    env, run, mirror = built
    assert run.code == 0, str(run)
    d = run.data
    assert (d["name"], d["provider"], d["tag"], d["action"]) == (IMG, "docker", f"mlops-env/image:{IMG}", "created")
    labels = docker_engine.images.get(d["tag"]).labels
    assert labels["mlops-env.image.distribution"] == "anaconda"
    assert labels["mlops-env.image.installer-sha256"] == mirror.sha256
    assert labels["mlops-env.image.docker-source"] == "distro"
    assert labels["mlops-env.image.base-image"] == mirror.image
    assert labels["mlops-env.image.arch"] in ("x86_64", "aarch64")
    assert len(labels["mlops-env.image.scripts-hash"]) == 16 and labels["mlops-env.image.mlops-env-version"]
    left = _leftovers(docker_engine, IMG)
    assert left == {"builders": [], "volumes": [], "images": [f"mlops-env/image:{IMG}"]}, left
    assert not (env.root / "images" / f"{IMG}.json").exists()
    ls = env.mlops("--json", "image", "list")
    assert ls.code == 0, str(ls)
    (row,) = [r for r in ls.data["images"] if r["name"] == IMG]
    assert row["recipe"] == "current" and row["size_bytes"] > 0 and row["in_use_by"] == []


FORBIDDEN = r"""
set -u
for f in /etc/ssh/ssh_host_*; do [ -e "$f" ] && echo "host key: $f"; done
find / -xdev \( -name authorized_keys -o -name authorized_keys2 -o -name '.bash_history' \
  -o -name '.python_history' -o -name '.git-credentials' -o -name '.netrc' -o -name 'id_ed25519' \
  -o -name 'id_rsa' \) -print 2>/dev/null | sed 's/^/found: /'
for h in /root /home/*; do
  [ -d "$h/.aws" ] && echo "credentials: $h/.aws"
  [ -e "$h/.docker/config.json" ] && echo "credentials: $h/.docker/config.json"
  [ -n "$(ls -A "$h/.cache/mlops-env/installers" 2>/dev/null)" ] && echo "installer: $h/.cache/mlops-env/installers"
  [ -e "$h/.mlops-env/smoke/passed" ] && echo "smoke stamp: $h"
done
[ -n "$(ls -A /var/lib/apt/lists 2>/dev/null)" ] && echo "apt lists: $(ls /var/lib/apt/lists | head -3)"
[ -e /etc/mlops-env/idle-stop.conf ] && echo "idle conf"
[ -e /var/lib/mlops-env/idle-stop ] && echo "idle state"
[ -s /etc/machine-id ] && echo "machine-id"
# What must be there (the image is useful): conda, docker, the smoke program.
[ -x /home/mlops/anaconda3/bin/python ] || echo "MISSING conda"
command -v docker >/dev/null || echo "MISSING docker"
[ -f /home/mlops/.mlops-env/ridetrain.py ] || echo "MISSING smoke program"
echo done
"""


def test_committed_image_holds_none_of_the_forbidden_items(built: tuple[Env, Any, Any], docker_engine: Any,
                                                           module_env: Env) -> None:
    _, run, _ = built
    assert run.code == 0, str(run)
    # The committed image's own filesystem (entrypoint bypassed: the init would make host keys).
    out = docker_engine.containers.run(run.data["tag"], ["bash", "-c", FORBIDDEN], entrypoint=[], remove=True,
                                       network_mode="none").decode()
    assert out.strip().splitlines() == ["done"], out
    # and mlops-env's own public key (the builder's login key) is in no file of it
    pubs = list((module_env.root / "keys").glob("*.pub"))
    assert pubs
    blob = pubs[0].read_text().split()[1]
    out = docker_engine.containers.run(run.data["tag"], ["sh", "-c", f"grep -rlF '{blob}' /home /root /etc; echo done"],
                                       entrypoint=[], remove=True, network_mode="none").decode()
    assert out.strip().splitlines() == ["done"], out


def _up_from(mirror: Any) -> list[str]:
    return ["--json", "up", "docker", WS, "--from-image", IMG, "--image", mirror.image,
            "--conda-installer", mirror.url, "--conda-sha256", mirror.sha256,
            "--accept-anaconda-tos", "--smoke-test", "sample"]


def test_up_from_image_passes_smoke_with_base_docker_conda_unchanged(built: tuple[Env, Any, Any],
                                                                      docker_engine: Any) -> None:
    env, run, mirror = built
    assert run.code == 0, str(run)
    up = env.mlops(*_up_from(mirror))
    assert up.code == 0, str(up)
    st = step_status(up)
    assert (st["base"], st["docker"], st["conda"]) == ("unchanged", "unchanged", "unchanged"), st
    assert st["smoke"] == "changed" and up.data["smoke"]["synthetic"] is True
    c = docker_engine.containers.get(f"mlops-env-{WS}")
    assert c.labels["mlops-env.from-image"] == IMG
    # the workstation's host key is its own (made at first boot), pinned as for any workstation
    assert env.mlops("--json", "status", WS).data["host_key"].startswith("SHA256:")
    ls = env.mlops("--json", "image", "list")
    (row,) = [r for r in ls.data["images"] if r["name"] == IMG]
    assert row["in_use_by"] == [WS]
    # delete asks (refused without --yes when it cannot ask), warns, and keeps the image
    d = env.mlops("--json", "image", "delete", IMG)
    assert d.code == 2 and d.error["code"] == "not-confirmed", str(d)
    assert docker_engine.images.get(f"mlops-env/image:{IMG}")
    # down never deletes images
    assert env.mlops("--json", "down", WS, "--yes").code == 0
    assert docker_engine.images.get(f"mlops-env/image:{IMG}")
    again = env.mlops(*_up_from(mirror))  # running again, for the delete test below
    assert again.code == 0, str(again)


def test_from_image_auto_picks_the_current_image_of_the_same_base(built: tuple[Env, Any, Any], tmp_path: Any) -> None:
    from mlops_env import config as cfg
    from mlops_env.paths import Paths
    from mlops_env.providers.docker.images import DockerImages

    env, run, mirror = built
    assert run.code == 0, str(run)
    paths = Paths(data=env.root, config=env.root, cache=env.root / "cache", logs=env.root / "logs")

    def opts(**kw: Any) -> Any:
        flags = {"image": mirror.image, "conda_installer": mirror.url, "conda_sha256": mirror.sha256, **kw}
        return cfg.resolve(flags, config_path=None, default_config=tmp_path / "none.yaml", env={})

    imgs = DockerImages(paths)
    tag, how = imgs.resolve_for_up("auto", opts())
    # the newest current image of this base: ours, or one built later by another run of this suite
    assert tag is not None and tag.startswith("mlops-env/image:") and "newest current recipe" in how
    assert imgs.resolve_for_up("auto", opts(image="debian:11-never-built"))[0] is None
    assert imgs.resolve_for_up("auto", opts(python_dist="miniforge"))[0] is None
    assert imgs.resolve_for_up(IMG, opts()) == (f"mlops-env/image:{IMG}", f"from image {IMG}")


def test_zz_delete_of_an_image_in_use_warns_and_the_layers_go_once_unused(built: tuple[Env, Any, Any],
                                                                         docker_engine: Any) -> None:
    env, run, _ = built
    assert run.code == 0, str(run)
    c = docker_engine.containers.get(f"mlops-env-{WS}")
    assert c.status == "running"
    d = env.mlops("--json", "image", "delete", IMG, "--yes")
    assert d.code == 0 and d.data["deleted"] is True, str(d)
    assert d.data["in_use_by"] == [WS] and WS in d.data["warnings"][0]
    c.reload()
    assert c.status == "running"  # the workstation keeps running
    assert _leftovers(docker_engine, IMG) == {"builders": [], "volumes": [], "images": []}
    assert IMG not in {r["name"] for r in env.mlops("--json", "image", "list").data["images"]}
    # once the workstation is gone, the next delete frees the untagged layers
    assert env.mlops("--json", "down", WS, "--yes").code == 0
    flt = {"label": f"mlops-env.image-build={IMG}"}
    assert docker_engine.images.list(all=True, filters=flt), "the layers were kept while in use"
    d2 = env.mlops("--json", "image", "delete", IMG, "--yes")
    assert d2.code == 0 and d2.data["deleted"] is False and d2.data["removed"][0].startswith("untagged image"), str(d2)
    assert docker_engine.images.list(all=True, filters=flt) == []
    again = env.mlops("--json", "image", "delete", IMG, "--yes")
    assert again.code == 3 and again.error["code"] == "image-not-found", str(again)
    assert "image build docker" in again.error["hint"]


def test_bad_input_is_one_line_with_a_hint(user_env: Env, docker_engine: Any) -> None:
    for args, code in ((["image", "build", "docker", "Bad_Name"], 2), (["image", "delete", "-x-"], 2),
                       (["image", "delete", "no-such-image-e2e"], 3),
                       (["up", "docker", "x", "--from-image", "Nope!"], 2)):
        r = user_env.mlops("--json", *args)
        assert r.code == code, (args, str(r))
        assert r.error["hint"] and "\n" not in r.error["message"] and "Traceback" not in r.stderr
    # Anaconda's terms: refused before anything is made (no builder, no state)
    r = user_env.mlops("--json", "image", "build", "docker", "tos-img", "--python-dist", "miniconda")
    assert r.code == 4 and r.error["code"] == "terms-not-accepted" and "miniforge" in r.error["hint"], str(r)
    assert _leftovers(docker_engine, "tos-img") == {"builders": [], "volumes": [], "images": []}
    r = user_env.mlops("image", "delete", "no-such-image-e2e", "--yes")
    assert r.code == 3 and "no image 'no-such-image-e2e'" in r.stderr and "Traceback" not in r.stderr


def test_second_build_of_the_same_name_is_busy(user_env: Env, docker_engine: Any) -> None:
    from filelock import FileLock

    (user_env.root / "images").mkdir(parents=True, exist_ok=True)
    with FileLock(str(user_env.root / "images" / "busy-img.lock")):
        r = user_env.mlops("--json", "image", "build", "docker", "busy-img", "--python-dist", "miniforge",
                           "--smoke-test", "off")
    assert r.code == 10 and r.error["code"] == "busy", str(r)
    assert "building or deleting image 'busy-img'" in r.error["message"]


# -- interrupted builds --------------------------------------------------------------------
def _start(env: Env, mirror: Any, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603
        with_default_sigint([mlops_env_bin(), *_build_args(mirror, name)]),
        env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_phase(env: Env, name: str, proc: subprocess.Popen[str], phase: str, timeout: float = 600) -> None:
    f = env.root / "images" / f"{name}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(f.read_text()).get("phase") == phase:
                return
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            raise AssertionError(f"the build ended (exit {proc.returncode}) before phase {phase}: "
                                 f"{proc.stdout.read() if proc.stdout else ''} {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError(f"no phase {phase} within {timeout}s")


@pytest.mark.parametrize("phase,sig,then", [
    ("builder", signal.SIGKILL, "delete"),
    ("steps", signal.SIGINT, "delete"),
    ("steps", signal.SIGKILL, "build"),
    ("generalize", signal.SIGKILL, "build"),
    ("commit", signal.SIGKILL, "build"),
])
def test_killed_build_converges_on_the_next_run(user_env: Env, docker_engine: Any, base_image_with_standin: Any,
                                                phase: str, sig: int, then: str) -> None:
    name = f"e2e-k{PID}-{phase[:2]}{int(sig)}"
    try:
        proc = _start(user_env, base_image_with_standin, name)
        _wait_phase(user_env, name, proc, phase)
        proc.send_signal(sig)
        proc.communicate(timeout=120)
        if sig == signal.SIGINT:
            assert proc.returncode == 130
            # Ctrl-C cleans up at once: nothing half-made
            assert _leftovers(docker_engine, name) == {"builders": [], "volumes": [], "images": []}
        else:
            assert proc.returncode == -signal.SIGKILL
        if then == "delete":
            r = user_env.mlops("--json", "image", "delete", name, "--yes")
            assert r.code in (0, 3), str(r)
            if sig == signal.SIGKILL:
                assert r.code == 0 and r.data["deleted"] is False and r.data["removed"], str(r)
            assert _leftovers(docker_engine, name) == {"builders": [], "volumes": [], "images": []}
        else:
            assert _leftovers(docker_engine, name)["builders"], "a SIGKILL leaves the builder for the next run"
            r = user_env.mlops(*_build_args(base_image_with_standin, name))
            assert r.code == 0, str(r)
            if phase == "commit":  # Docker may have finished the commit: then this run finishes the build
                assert r.data["action"] in ("created", "finished"), str(r)
            else:
                assert r.data["action"] == "created" and r.data["cleaned"], str(r)
            assert _leftovers(docker_engine, name) == {"builders": [], "volumes": [],
                                                       "images": [f"mlops-env/image:{name}"]}
        assert not (user_env.root / "images" / f"{name}.json").exists()
    finally:
        _purge(docker_engine, name)
