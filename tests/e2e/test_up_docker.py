"""`mlops-env up docker` end to end: the installed CLI makes a real container workstation on
the local Docker engine and bootstraps it for real (apt, Docker inside, conda, smoke test).

The Anaconda installer cannot be downloaded here (no repo.anaconda.com): these tests use the
STAND-IN installer from tests/standin (a real `bash INSTALLER -b -p PREFIX` script with an
embedded payload), baked into the base image and passed as a file:// mirror with its real
sha256 — the product's download, checksum and install-flag code path is the real one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from e2ehelp import USER_SSH_CONFIG, Env, step_status

NAME = f"e2e-d{os.getpid() % 100000}"
ALIAS = f"mlops-{NAME}"


def _up_args(mirror: Any, *extra: str) -> list[str]:
    return ["--json", "up", "docker", NAME, "--image", mirror.image,
            "--conda-installer", mirror.url, "--conda-sha256", mirror.sha256,
            "--accept-anaconda-tos", "--smoke-test", "sample", *extra]


@pytest.fixture(scope="module")
def workstation(module_env: Env, docker_engine: Any, base_image_with_standin: Any) -> Iterator[tuple[Env, Any, Any]]:
    first = module_env.mlops(*_up_args(base_image_with_standin))
    try:
        yield module_env, first, base_image_with_standin
    finally:
        module_env.mlops("down", NAME, "--yes")
        for c in docker_engine.containers.list(all=True, filters={"label": f"mlops-env.name={NAME}"}):
            c.remove(force=True, v=True)


def test_first_up_makes_a_ready_workstation(workstation: tuple[Env, Any, Any]) -> None:
    env, first, _ = workstation
    assert first.code == 0, first.stdout + first.stderr
    d = first.data
    assert (d["name"], d["provider"], d["alias"], d["host"], d["user"]) == (NAME, "docker", ALIAS, "127.0.0.1", "mlops")
    assert isinstance(d["port"], int) and d["port"] > 0
    st = step_status(first)
    assert st == {"provision": "changed", "base": "changed", "conda": "changed", "docker": "changed",
                  "smoke": "changed", "ssh-config": "changed"}
    assert all(isinstance(s["seconds"], float) for s in d["steps"])
    assert d["smoke"]["synthetic"] is True and 0 < d["smoke"]["rmse_train"] < 60 and 0 < d["smoke"]["rmse_val"] < 60


def test_system_ssh_reaches_the_box_by_alias_with_only_the_written_config(workstation: tuple[Env, Any, Any]) -> None:
    env, _, _ = workstation
    r = env.ssh(ALIAS, "id", "-un")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "mlops"
    # Host-key checking is strict and pinned to the tool's file, not disabled.
    g = subprocess.run(["ssh", "-G", "-F", str(env.ssh_config), ALIAS], capture_output=True, text=True, check=True)
    opts = dict(line.split(" ", 1) for line in g.stdout.splitlines() if " " in line)
    assert opts["stricthostkeychecking"] in ("true", "yes")
    assert opts["userknownhostsfile"] == str(env.root / "ssh" / "known_hosts")
    assert opts["hostkeyalias"] == f"mlops-env-{NAME}"


def test_user_runs_docker_without_sudo(workstation: tuple[Env, Any, Any]) -> None:
    env, _, _ = workstation
    r = env.ssh(ALIAS, "docker", "run", "--rm", "--network", "none", "mlops-env/probe:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    r = env.ssh(ALIAS, "sudo -n true; id -nG")
    assert "docker" in r.stdout.split()


def test_conda_from_the_installed_distribution_runs(workstation: tuple[Env, Any, Any]) -> None:
    env, _, _ = workstation
    r = env.ssh(ALIAS, "bash", "-ic", "'conda --version && which python && python -c \"import pandas, sklearn, pyarrow\"'")
    assert r.returncode == 0, r.stderr
    assert "conda " in r.stdout and "/home/mlops/anaconda3/bin/python" in r.stdout


def test_second_up_changes_nothing_over_one_connection(workstation: tuple[Env, Any, Any]) -> None:
    env, _, mirror = workstation
    again = env.mlops(*_up_args(mirror))
    assert again.code == 0, again.stdout + again.stderr
    assert set(step_status(again).values()) == {"unchanged"}
    assert again.data["ssh_connections"] == 1
    assert again.data["ssh_round_trips"] == 1  # facts + every check in one batch


def test_a_second_up_without_the_first_runs_flags_uses_the_workstations_options(
        workstation: tuple[Env, Any, Any]) -> None:
    """Issue 16 item 3 (fails on the old code: without the flags a second up fell back to
    ubuntu:24.04, the online smoke test and unaccepted terms, and failed offline)."""
    env, _, _ = workstation
    dry = env.mlops("--json", "up", "docker", NAME, "--dry-run")
    assert dry.code == 0, dry.stdout + dry.stderr
    opts = dry.data["options"]
    for k in ("image", "smoke_test", "conda_installer", "conda_sha256", "accept_anaconda_tos"):
        assert opts[k]["source"] == "from the workstation", (k, opts[k])
    assert opts["smoke_test"]["value"] == "sample"
    # only what applies to a docker workstation
    assert not {"region", "instance_type", "repo", "machine"} & set(opts)
    assert opts["forward"]["source"] == "default"  # a built-in default is not remembered as a choice
    # a flag still overrides the workstation's value
    flag = env.mlops("--json", "up", "docker", NAME, "--dry-run", "--smoke-test", "off")
    assert flag.data["options"]["smoke_test"] == {"value": "off", "source": "flag"}
    human = env.mlops("up", "docker", NAME, "--dry-run")
    assert "from the workstation" in human.stdout and "region" not in human.stdout
    again = env.mlops("--json", "up", "docker", NAME)
    assert again.code == 0, again.stdout + again.stderr
    assert set(step_status(again).values()) == {"unchanged"}


def test_smoke_test_on_the_workstation_brings_the_report_back(workstation: tuple[Env, Any, Any]) -> None:
    env, _, _ = workstation
    r = env.mlops("--json", "smoke-test", NAME, "--sample", "--features", "PULocationID,DOLocationID,trip_distance")
    assert r.code == 0, r.stdout + r.stderr
    d = r.data
    assert d["synthetic"] is True and d["features"] == ["PULocationID", "DOLocationID", "trip_distance"]
    assert d["host"] == NAME  # trained there, not here
    report = env.root / "reports" / NAME / "smoke-report.json"
    assert report.is_file() and d["report"] == str(report)


def test_mlops_env_ssh_runs_a_command_by_name(workstation: tuple[Env, Any, Any]) -> None:
    env, _, _ = workstation
    r = env.mlops("ssh", NAME, "--", "echo", "-n", "hi", "there")
    assert (r.code, r.stdout) == (0, "hi there"), r.stderr
    r = env.mlops("ssh", NAME, "--", "exit", "3")
    assert r.code == 3  # the remote command's exit status comes back


def test_code_prints_the_remote_command_when_code_is_absent(workstation: tuple[Env, Any, Any]) -> None:
    env, _, _ = workstation
    r = env.mlops("--json", "code", NAME)
    assert r.code == 0
    assert r.data["command"] == f"code --remote ssh-remote+{ALIAS} /home/mlops"


def test_list_and_status(workstation: tuple[Env, Any, Any]) -> None:
    env, _, _ = workstation
    ls = env.mlops("--json", "list")
    assert ls.code == 0
    (w,) = [w for w in ls.data["workstations"] if w["name"] == NAME]
    assert (w["provider"], w["state"], w["phase"]) == ("docker", "running", "ready")
    st = env.mlops("--json", "status", NAME)
    assert st.code == 0 and st.data["host_key"].startswith("SHA256:")
    assert [s["id"] for s in st.data["steps"]] == ["provision", "base", "conda", "docker", "smoke", "ssh-config"]
    assert {s["result"] for s in st.data["steps"]} == {"ok"}
    human = env.mlops("status", NAME)
    lines = human.stdout.splitlines()
    rows = [ln.split()[:2] for ln in lines if ln.startswith("    ")]
    assert rows == [["provision", "ok"], ["base", "ok"], ["conda", "ok"], ["docker", "ok"], ["smoke", "ok"],
                    ["ssh-config", "ok"]], human.stdout
    (smoke,) = [ln for ln in lines if ln.strip().startswith("smoke ") and "RMSE" in ln]
    assert " ago (" in smoke and "RMSE train" in smoke


def _wait_ssh(env: Env, deadline_s: float = 90) -> subprocess.CompletedProcess[str]:
    """The system ssh by alias, retried until sshd in the (re)started container answers."""
    import time

    end = time.monotonic() + deadline_s
    while True:
        r = env.ssh(ALIAS, "cat", "/home/mlops/marker", timeout=30)
        if r.returncode == 0 or time.monotonic() > end:
            return r
        time.sleep(1)


def _record(env: Env) -> dict[str, Any]:
    import json

    return dict(json.loads((env.root / "state" / f"{NAME}.json").read_text()))


def test_stop_start_keeps_the_alias_working(workstation: tuple[Env, Any, Any]) -> None:
    """Issue 16 item 2 (fails on the old code: Docker picked a new host port at every start)."""
    env, _, _ = workstation
    assert env.ssh(ALIAS, "echo kept > /home/mlops/marker").returncode == 0
    port = _record(env)["endpoint"]["port"]
    assert _record(env)["provider_data"]["ssh_port"] == port
    r = env.mlops("stop", NAME, "--yes")
    assert r.code == 0, r.stderr
    ls = env.mlops("--json", "list")
    (w,) = [w for w in ls.data["workstations"] if w["name"] == NAME]
    assert w["state"] == "stopped"  # the tool's word, not Docker's `exited`
    r = env.mlops("start", NAME)
    assert r.code == 0, r.stderr
    assert "mlops-env up" not in r.stderr
    assert "waiting for SSH" in r.stderr + r.stdout
    s = env.ssh(ALIAS, "cat", "/home/mlops/marker", timeout=30)  # start waited for sshd: no retry
    assert (s.returncode, s.stdout.strip()) == (0, "kept"), s.stderr
    assert _record(env)["endpoint"]["port"] == port


def test_docker_restart_behind_the_tools_back_keeps_the_alias_working(
        workstation: tuple[Env, Any, Any], docker_engine: Any) -> None:
    """What a laptop reboot does (the engine restarts the container): no mlops-env involved."""
    env, _, _ = workstation
    docker_engine.containers.get(f"mlops-env-{NAME}").restart(timeout=30)
    s = _wait_ssh(env)
    assert (s.returncode, s.stdout.strip()) == (0, "kept"), s.stderr


def test_a_port_taken_meanwhile_gets_a_new_one_at_start(
        workstation: tuple[Env, Any, Any], docker_engine: Any) -> None:
    import errno
    import socket

    env, _, _ = workstation
    old = _record(env)["endpoint"]["port"]
    assert env.mlops("stop", NAME, "--yes").code == 0
    squatter = socket.socket()
    try:
        try:
            squatter.bind(("127.0.0.1", old))
            squatter.listen(1)
        except OSError as e:  # another test's container (a parallel worker) took the freed port first:
            if e.errno != errno.EADDRINUSE:  # taken is taken, which is what this test needs
                raise
        r = env.mlops("--json", "start", NAME)
        assert r.code == 0, r.stdout + r.stderr
        new = _record(env)["endpoint"]["port"]
        assert new != old and r.data["ssh_config_rewritten"] is True
        assert r.data["address"] == f"mlops@127.0.0.1:{new}"
        s = _wait_ssh(env)
        assert (s.returncode, s.stdout.strip()) == (0, "kept"), s.stderr  # the disk was kept
        c = env.ssh(ALIAS, "bash", "-ic", "'conda --version && docker run --rm --network none mlops-env/probe:1'")
        assert c.returncode == 0 and "ok" in c.stdout, c.stderr  # conda, and the inner engine's volume
        again = env.mlops("--json", "up", "docker", NAME)  # the record's options, the new port
        assert again.code == 0, again.stdout + again.stderr
        assert set(step_status(again).values()) == {"unchanged"} and again.data["port"] == new
    finally:
        squatter.close()
    assert len(docker_engine.containers.list(all=True, filters={"label": f"mlops-env.name={NAME}"})) == 1


def test_zz_changed_host_key_is_refused(workstation: tuple[Env, Any, Any], docker_engine: Any) -> None:
    env, _, mirror = workstation
    c = docker_engine.containers.get(f"mlops-env-{NAME}")
    rc, out = c.exec_run(["sh", "-c", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh"])
    assert rc == 0, out
    r = env.mlops(*_up_args(mirror))
    assert r.code == 6, r.stdout + r.stderr
    assert r.error["code"] == "host-key-changed" and "expected SHA256:" in r.error["message"]
    s = env.ssh(ALIAS, "true")
    assert s.returncode == 255 and "host key" in s.stderr.lower()


def test_zzz_down_removes_everything_and_restores_the_users_ssh_config(
        workstation: tuple[Env, Any, Any], docker_engine: Any) -> None:
    env, _, _ = workstation
    r = env.mlops("--json", "down", NAME, "--yes")
    assert r.code == 0, r.stdout + r.stderr
    assert docker_engine.containers.list(all=True, filters={"label": f"mlops-env.name={NAME}"}) == []
    assert [v for v in docker_engine.volumes.list() if v.name == f"mlops-env-{NAME}-docker"] == []
    assert docker_engine.images.list(filters={"label": f"mlops-env.state-of={NAME}"}) == []
    assert env.ssh_config.read_bytes() == USER_SSH_CONFIG
    assert ALIAS not in (env.root / "ssh" / "config").read_text()
    assert env.mlops("--json", "status", NAME).code == 3
    again = env.mlops("--json", "down", NAME, "--yes")
    assert again.code == 3  # nothing left to remove: says so


def test_image_not_found_is_a_clear_error(user_env: Env, docker_engine: Any) -> None:
    r = user_env.mlops("--json", "up", "docker", "noimg", "--image", "mlops-env-test/no-such-image:1",
                       "--python-dist", "miniforge", timeout=180)
    assert r.code == 3, r.stdout + r.stderr
    assert r.error["code"] == "image-not-found" and "mlops-env-test/no-such-image:1" in r.error["message"]
    assert docker_engine.containers.list(all=True, filters={"label": "mlops-env.name=noimg"}) == []
    # Nothing was made: no record either (issue 16 item 5; the old code kept a `missing new` ghost).
    ls = user_env.mlops("--json", "list")
    assert [w["name"] for w in ls.data["workstations"]] == []
    assert not (user_env.root / "state" / "noimg.json").exists()
    assert user_env.mlops("--json", "down", "noimg", "--yes").code == 3


def test_unsupported_base_image_is_refused(user_env: Env, docker_engine: Any, base_image: str) -> None:
    """An image that is not Debian/Ubuntu based (its os-release says Fedora) is refused while
    the workstation image is prepared, before any workstation container exists."""
    import io
    import tarfile

    import hosts

    data = hosts.OS_RELEASE_FEDORA_40.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("etc/os-release", "usr/lib/os-release"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    c = docker_engine.containers.create(base_image, ["true"], labels={hosts.TEST_LABEL: "1"})
    try:
        assert c.put_archive("/", buf.getvalue())
        img = c.commit(repository="mlops-env-test/fedora-lookalike", tag="1")
    finally:
        c.remove(force=True)
    try:
        r = user_env.mlops("--json", "up", "docker", "fed", "--image", "mlops-env-test/fedora-lookalike:1",
                           "--python-dist", "miniforge", timeout=180)
        assert r.code == 7, r.stdout + r.stderr
        assert "not Debian/Ubuntu" in r.error["message"]
        assert docker_engine.containers.list(all=True, filters={"label": "mlops-env.name=fed"}) == []
    finally:
        user_env.mlops("down", "fed", "--yes")
        docker_engine.images.remove(img.id, force=True)
