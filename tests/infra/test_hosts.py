"""End-to-end proofs that the test infrastructure itself works (tests/hosts.py, the images,
the STAND-IN Anaconda installer). Real Docker engine, real systemd, real OpenSSH client."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import hosts
import pytest

pytestmark = pytest.mark.e2e


def _ssh(h: hosts.VmHost, kh: Path, cmd: str, identity: Path | None = None, timeout: float = 120):
    return hosts.ssh_run(h, cmd, known_hosts=kh, identity=identity, timeout=timeout)


def test_ssh_login_as_sudo_user_with_pinned_host_key(vm_host, ssh_keypair, tmp_path):
    h = vm_host("alice", ssh_keypair.public_text)
    assert h.host == "127.0.0.1" and h.user == "alice" and h.identity is None
    assert h.host_key.startswith("ssh-ed25519 ") and h.host_key_fingerprint.startswith("SHA256:")
    kh = hosts.write_known_hosts(tmp_path / "known_hosts", h)
    # ssh-keygen agrees with our fingerprint of the key read out of the container
    lf = subprocess.run(["ssh-keygen", "-lf", str(kh)], capture_output=True, text=True, check=True).stdout  # noqa: S603 - fixed program, test-controlled arguments
    assert h.host_key_fingerprint in lf and f"[127.0.0.1]:{h.port}" in lf

    r = _ssh(h, kh, "sudo -n true && id -un && sudo -n id -u", identity=ssh_keypair.private_key)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["alice", "0"]


def test_strict_host_key_checking_refuses_a_wrong_key(vm_host, tmp_path):
    a = vm_host("alice")
    b = vm_host("alice")
    assert a.host_key != b.host_key, "every container must have its own host keys"
    # b's key recorded for a's address: OpenSSH must refuse.
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{a.port} {b.host_key}\n")
    r = _ssh(a, wrong, "true")
    assert r.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in r.stderr or "Host key verification failed" in r.stderr


def test_systemd_is_pid1_and_system_running(vm_host, docker_engine):
    h = vm_host()
    # boot may still be finishing: `is-system-running --wait` blocks until it settles
    r = hosts.exec_in(docker_engine, h.container_id, "ps -o comm= -p 1; systemctl is-system-running --wait", check=False)
    comm, state = r.stdout.split()[:2]
    assert comm == "systemd"
    assert state in ("running", "degraded"), r.stdout
    assert hosts.exec_in(docker_engine, h.container_id, "systemctl is-active ssh").stdout.strip() == "active"
    labels = docker_engine.containers.get(h.container_id).labels
    assert labels[hosts.TEST_LABEL] == "1"


def test_sudo_password_mode_and_fake_os_release(vm_host, tmp_path):
    h = vm_host("bob", sudo="password", os_release=hosts.OS_RELEASE_FEDORA_40)
    assert h.password
    kh = hosts.write_known_hosts(tmp_path / "kh", h)
    r = _ssh(h, kh, "sudo -n true")
    assert r.returncode == 1 and "password is required" in r.stderr
    r = _ssh(h, kh, f"printf '%s\\n' {shlex.quote(h.password)} | sudo -S -p '' id -u")
    assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr
    r = _ssh(h, kh, ". /etc/os-release && echo $ID $VERSION_ID")
    assert r.stdout.split() == ["fedora", "40"]


def test_published_on_loopback_only(vm_host, docker_engine):
    h = vm_host()
    ports = docker_engine.api.inspect_container(h.container_id)["NetworkSettings"]["Ports"]["22/tcp"]
    assert {p["HostIp"] for p in ports} == {"127.0.0.1"}


def test_base_image_is_a_stock_like_image(docker_engine, base_image):
    """The base image plays 'a stock distro image': no init, no host keys, empty apt lists."""
    out = docker_engine.containers.run(
        base_image,
        ["sh", "-c", "ls /etc/ssh/ssh_host_* 2>/dev/null | wc -l; ls /var/lib/apt/lists | grep -c _Packages; "
         ". /etc/os-release; echo $ID $VERSION_ID; for c in sshd sudo curl python3 bzip2 ps ip; do command -v $c; done | wc -l"],
        remove=True,
        labels={hosts.TEST_LABEL: "1"},
    ).decode().split()
    assert out == ["0", "0", "debian", "12", "7"]


def test_standin_installer_installs_and_conda_runs(vm_host, docker_engine, standin_conda_installer, tmp_path):
    path, sha = standin_conda_installer
    assert "STANDIN" in path.name and len(sha) == 64
    h = vm_host("carol")
    url = hosts.mirror_into(docker_engine, h.container_id, path)
    assert url == f"file:///opt/mirror/{path.name}"
    kh = hosts.write_known_hosts(tmp_path / "kh", h)
    box_path = url.removeprefix("file://")
    r = _ssh(h, kh, f"sha256sum {box_path} && bash {box_path} -b -p ~/anaconda3", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split()[0] == sha
    assert "STAND-IN" in r.stdout
    r = _ssh(h, kh, "~/anaconda3/bin/python -c 'import numpy, pandas, pyarrow, sklearn, scipy; print(\"ok\")'")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    r = _ssh(
        h, kh,
        "~/anaconda3/bin/conda --version && ~/anaconda3/bin/conda info --base && ~/anaconda3/bin/conda init bash"
        " && ~/anaconda3/bin/conda init bash && grep -c '^# >>> conda initialize >>>$' ~/.bashrc",
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "conda 24.5.0"
    assert lines[1] == "/home/carol/anaconda3"
    assert lines[-1] == "1"  # idempotent
    # an interactive login shell finds conda through the init block
    r = _ssh(h, kh, "bash -ic 'conda run -n base python -c \"import sys; print(sys.prefix)\"' 2>/dev/null")
    assert r.stdout.strip() == "/home/carol/anaconda3"
    info = json.loads(_ssh(h, kh, "~/anaconda3/bin/conda info --json").stdout)
    assert info["standin"] is True and info["root_prefix"] == "/home/carol/anaconda3"
    # like the real installer: an existing prefix is refused without -u
    r = _ssh(h, kh, f"bash {box_path} -b -p ~/anaconda3")
    assert r.returncode == 1 and "already exists" in r.stderr


def test_standin_installer_refuses_without_batch_and_bad_variant_differs(
    standin_conda_installer, standin_conda_installer_bad
):
    path, sha = standin_conda_installer
    r = subprocess.run(["bash", str(path), "-h"], capture_output=True, text=True, timeout=30)  # noqa: S603 - fixed program, test-controlled arguments
    assert r.returncode == 2 and "-b" in r.stdout and "STAND-IN" in r.stdout
    r = subprocess.run(["bash", str(path), "-p", "/nonexistent/x"], capture_output=True, text=True, timeout=30)  # noqa: S603 - fixed program, test-controlled arguments
    assert r.returncode == 1 and "batch mode only" in r.stderr
    bad_path, bad_sha = standin_conda_installer_bad
    assert bad_sha != sha
    assert bad_path.stat().st_size == path.stat().st_size
    a, b = path.read_bytes()[:4096], bad_path.read_bytes()[:4096]
    assert sum(x != y for x, y in zip(a, b, strict=True)) == 1


def test_docker_runs_inside_the_vm(vm_host, docker_engine):
    """The recipe of TESTBED.md: docker.io from Debian's mirror starts under systemd and runs a
    locally imported image with --pull never (no registry is reachable)."""
    h = vm_host()
    script = r"""
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker.io >/dev/null
systemctl is-active docker
d=$(mktemp -d); mkdir -p "$d/bin" "$d/lib/x86_64-linux-gnu" "$d/lib64"
cp /bin/echo "$d/bin/"; cp /lib/x86_64-linux-gnu/libc.so.6 "$d/lib/x86_64-linux-gnu/"
cp /lib64/ld-linux-x86-64.so.2 "$d/lib64/"
tar -C "$d" -c . | docker import - tiny:local >/dev/null
docker run --rm --pull never tiny:local /bin/echo inner-ok
"""
    r = hosts.exec_in(docker_engine, h.container_id, script, check=False)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.stdout.split()[-2:] == ["active", "inner-ok"]
