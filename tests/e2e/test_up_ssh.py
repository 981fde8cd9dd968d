"""`mlops-env up ssh` end to end against a systemd Debian container that behaves like a fresh
cloud VM (tests/hosts.py): host key confirmation, full bootstrap, no-op rerun, and the bad
inputs a bring-your-own box produces (sudo with a password, unsupported OS, unreachable host,
refused key). The Anaconda installer is the STAND-IN from tests/standin, copied onto the box
and passed as a file:// mirror with its real sha256."""

from __future__ import annotations

import socket
from typing import Any

import hosts
import pytest
from e2ehelp import USER_SSH_CONFIG, Env, step_status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base_args(name: str, vm: Any, *extra: str) -> list[str]:
    return ["--json", "up", "ssh", name, "--host", vm.host_spec, "--identity", str(vm.identity),
            "--smoke-test", "sample", "--ssh-timeout", "20", *extra]


def test_up_ssh_full_pipeline(user_env: Env, vm_host: Any, docker_engine: Any,
                              standin_conda_installer: Any) -> None:
    vm = vm_host(user="ubuntu")
    url = hosts.mirror_into(docker_engine, vm.container_id, standin_conda_installer.path)
    args = _base_args("byo", vm, "--conda-installer", url, "--conda-sha256", standin_conda_installer.sha256,
                      "--accept-anaconda-tos")

    # First contact, no terminal, no fingerprint: refused before anything is sent.
    r = user_env.mlops(*args)
    assert r.code == 6, r.stdout + r.stderr
    assert r.error["code"] == "host-key-unconfirmed" and vm.host_key_fingerprint in r.error["message"]
    assert "--host-key-fingerprint" in r.error["hint"]
    assert not (user_env.root / "ssh" / "known_hosts").exists()

    # A wrong fingerprint is refused.
    r = user_env.mlops(*args, "--host-key-fingerprint", "SHA256:" + "A" * 43)
    assert r.code == 6 and r.error["code"] == "host-key-mismatch"

    # The right one: the whole pipeline runs.
    r = user_env.mlops(*args, "--host-key-fingerprint", vm.host_key_fingerprint)
    assert r.code == 0, r.stdout + r.stderr
    assert step_status(r) == {"provision": "unchanged", "base": "changed", "conda": "changed",
                              "docker": "changed", "smoke": "changed", "ssh-config": "changed"}
    assert (r.data["user"], r.data["port"], r.data["alias"]) == ("ubuntu", vm.port, "mlops-byo")

    s = user_env.ssh("mlops-byo", "docker run --rm --network none mlops-env/probe:1 && ~/anaconda3/bin/conda --version")
    assert s.returncode == 0, s.stderr
    assert s.stdout.split()[0] == "ok" and "conda" in s.stdout

    # Second run: nothing to do, one connection, one round-trip; the pin is reused (no fingerprint needed).
    again = user_env.mlops(*args)
    assert again.code == 0, again.stdout + again.stderr
    assert set(step_status(again).values()) == {"unchanged"}
    assert (again.data["ssh_connections"], again.data["ssh_round_trips"]) == (1, 1)

    # down forgets the box (nothing on it is touched) and restores the user's file byte for byte.
    d = user_env.mlops("--json", "down", "byo", "--yes")
    assert d.code == 0, d.stdout + d.stderr
    assert user_env.ssh_config.read_bytes() == USER_SSH_CONFIG
    assert hosts.exec_in(docker_engine, vm.container_id, ["test", "-x", "/home/ubuntu/anaconda3/bin/conda"]).ok


def test_sudo_that_asks_for_a_password_is_refused_before_any_change(user_env: Env, vm_host: Any) -> None:
    vm = vm_host(user="ubuntu", sudo="password")
    r = user_env.mlops(*_base_args("pw", vm, "--python-dist", "miniforge", "--host-key-fingerprint",
                                   vm.host_key_fingerprint))
    assert r.code == 7, r.stdout + r.stderr
    assert r.error["code"] == "sudo-password" and "password" in r.error["message"]
    assert "NOPASSWD" in r.error["hint"]


def test_unsupported_os_is_refused(user_env: Env, vm_host: Any) -> None:
    vm = vm_host(user="ubuntu", os_release=hosts.OS_RELEASE_FEDORA_40)
    r = user_env.mlops(*_base_args("fed", vm, "--python-dist", "miniforge", "--host-key-fingerprint",
                                   vm.host_key_fingerprint))
    assert r.code == 7, r.stdout + r.stderr
    assert r.error["code"] == "unsupported-os" and "Fedora" in r.error["message"]
    assert "Ubuntu 22.04" in r.error["hint"]


def test_refused_key(user_env: Env, vm_host: Any, ssh_keypair: Any) -> None:
    vm = vm_host(user="ubuntu")
    r = user_env.mlops("--json", "up", "ssh", "nokey", "--host", vm.host_spec, "--identity",
                       str(ssh_keypair.private_key), "--host-key-fingerprint", vm.host_key_fingerprint,
                       "--ssh-timeout", "10", "--python-dist", "miniforge")  # no terms: refused before any contact
    assert r.code == 5, r.stdout + r.stderr
    assert r.error["code"] == "auth-refused" and "ssh-copy-id" in r.error["hint"]


def test_unreachable_host(user_env: Env, ssh_keypair: Any) -> None:
    r = user_env.mlops("--json", "up", "ssh", "gone", "--host", f"me@127.0.0.1:{_free_port()}",
                       "--identity", str(ssh_keypair.private_key), "--ssh-timeout", "2", "--python-dist", "miniforge",
                       timeout=60)
    assert r.code == 5, r.stdout + r.stderr
    assert r.error["code"] == "unreachable" and "connection refused" in r.error["message"]


@pytest.mark.parametrize("dist", ["anaconda"])
def test_checksum_mismatch_installs_nothing(user_env: Env, vm_host: Any, docker_engine: Any,
                                            standin_conda_installer_bad: Any, standin_conda_installer: Any,
                                            dist: str) -> None:
    vm = vm_host(user="ubuntu")
    # The box serves a file whose bytes differ from the pinned checksum (the real one's).
    url = hosts.mirror_into(docker_engine, vm.container_id, standin_conda_installer_bad.path)
    r = user_env.mlops(*_base_args("sum", vm, "--python-dist", dist, "--accept-anaconda-tos",
                                   "--conda-installer", url, "--conda-sha256", standin_conda_installer.sha256,
                                   "--host-key-fingerprint", vm.host_key_fingerprint))
    assert r.code == 8, r.stdout + r.stderr
    assert r.error["code"] == "integrity" and "checksum mismatch" in r.error["message"]
    res = hosts.exec_in(docker_engine, vm.container_id, ["sh", "-c", "ls /home/ubuntu/anaconda3 2>&1; ls /home/ubuntu/.cache/mlops-env/installers"], check=False)
    assert "No such file" in res.stdout and ".part" not in res.stdout
