"""`up codespace` end to end through the SSH path: the INSTALLED CLI against the STAND-IN GitHub
API (fake_github.py), the STAND-IN gh (fake_gh.py) on PATH, and a REAL sshd: a systemd Debian
container (tests/hosts.py) plays the codespace's dev container. The fake gh's
``codespace ssh --stdio`` hands mlops-env's public key to that box's sshd (as gh does through
GitHub's tunnel) and relays the connection to it over loopback TCP (instead of the tunnel).

What runs for real: mlops-env's paramiko connection through the ProxyCommand, host key pinning,
`mlops-env doctor`'s checks and the smoke test on the box, the real OpenSSH client through the
written Host block. The dev container's software (conda, Docker) is put on the box first by
`mlops-env up ssh` with the STAND-IN Anaconda installer (tests/standin), as a dev container's
on-create would. Not exercised: GitHub's real tunnel and gh's real SSH server start-up.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hosts
import pytest
from cshelp import User, assert_token_nowhere, install_fake_gh, make_user
from fake_github import FakeGitHub

REPO = "student/mlops-zoomcamp"


@dataclass
class Box:
    vm: Any
    engine: Any
    github: FakeGitHub
    user: User


@pytest.fixture(scope="module")
def box(vm_host_module: Any, docker_engine: Any, standin_conda_installer: Any,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    vm = vm_host_module(user="vscode")
    url = hosts.mirror_into(docker_engine, vm.container_id, standin_conda_installer.path)
    # The dev container's on-create: conda and Docker on the box (an `up ssh` of another user).
    prep = make_user(tmp_path_factory.mktemp("prep"), "http://127.0.0.1:9", None)
    r = prep.mlops("--json", "up", "ssh", "prep", "--host", vm.host_spec, "--identity", str(vm.identity),
                   "--host-key-fingerprint", vm.host_key_fingerprint, "--smoke-test", "off", "--ssh-timeout", "20",
                   "--conda-installer", url, "--conda-sha256", standin_conda_installer.sha256, "--accept-anaconda-tos",
                   timeout=600)
    assert r.code == 0, r
    fake = FakeGitHub()
    fake.add_repo(REPO)
    with fake.serve():
        tmp = tmp_path_factory.mktemp("cs")
        u = make_user(tmp, fake.base, fake.token, gh_dir=install_fake_gh(tmp / "bin"))
        (u.home / ".ssh" / "config").write_text("Host work\n    HostName 10.0.0.7\n")
        u.extra.update(FAKE_GH_SSHD=f"127.0.0.1:{vm.port}", FAKE_GH_CONTAINER=vm.container_id,
                       FAKE_GH_SSH_USER="vscode")
        yield Box(vm, docker_engine, fake, u)


def steps(run: Any) -> dict[str, str]:
    return {s["id"]: s["status"] for s in run.data["steps"]}


def real_ssh(u: User, alias: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-F", str(u.ssh_config), "-o", "BatchMode=yes", alias, *cmd],  # noqa: S603,S607
                          env=u.env, capture_output=True, text=True, timeout=60, check=False)


def test_up_runs_doctor_and_smoke_in_the_codespace_over_one_connection(box: Box) -> None:
    u = box.user
    r = u.mlops("--json", "up", "codespace", "cs", "--repo", REPO, "--smoke-test", "sample")
    assert r.code == 0, r
    assert steps(r) == {"provision": "changed", "ssh-config": "changed", "doctor": "unchanged", "smoke": "changed"}
    d = r.data
    assert (d["alias"], d["user"], d["ssh_connections"]) == ("mlops-cs", "vscode", 1)
    assert d["smoke"]["synthetic"] is True and d["smoke"]["rmse_val"] > 0
    assert d["doctor"]["summary"]["fail"] == 0
    assert d["code_command"] == "code --remote ssh-remote+mlops-cs /workspaces/mlops-zoomcamp"
    # gh was asked for the SSH details, then carried the connections with mlops-env's key
    calls = u.gh_calls()
    assert ["codespace", "ssh", "--config", "-c", d["codespace"]["name"]] in calls
    key = str(u.root / "keys" / "id_ed25519")
    assert any(c[-3:] == ["--", "-i", key] and "--stdio" in c for c in calls)
    # the pinned key is the box's real host key
    assert (u.root / "ssh" / "known_hosts").read_text().count(box.vm.host_key.split()[1]) == 1

    # The real OpenSSH client through the written Host block: gh's tunnel, the pinned key.
    s = real_ssh(u, "mlops-cs", "~/anaconda3/bin/conda --version && docker run --rm --network none mlops-env/probe:1")
    assert s.returncode == 0, s.stderr
    assert "conda" in s.stdout and "ok" in s.stdout
    text = (u.root / "ssh" / "config").read_text()
    assert "StrictHostKeyChecking yes" in text and "StrictHostKeyChecking no" not in text

    # Again: nothing to do, one connection; the smoke test is not run twice.
    n_gh = len(u.gh_calls())
    again = u.mlops("--json", "up", "codespace", "cs", "--smoke-test", "sample")
    assert again.code == 0, again
    # gh: the SSH details, then the one connection (the pinned key is checked by it, not probed first)
    assert [("--config" in c, "--stdio" in c) for c in u.gh_calls()[n_gh:]] == [(True, False), (False, True)]
    assert steps(again) == {"provision": "unchanged", "ssh-config": "unchanged", "doctor": "unchanged",
                            "smoke": "unchanged"}
    assert again.data["ssh_connections"] == 1
    assert len(box.github.requests("POST", r"/repos/.*/codespaces")) == 1

    # `mlops-env doctor NAME` and `mlops-env smoke-test NAME` reach it the same way.
    doc = u.mlops("--json", "doctor", "cs", "--only", "python,docker")
    assert doc.code == 0, doc
    assert doc.data["target"]["name"] == "cs"
    smoke = u.mlops("--json", "smoke-test", "cs", "--sample")
    assert smoke.code == 0, smoke
    assert smoke.data["rmse_val"] > 0

    # The token: not in the whole output of any run (a verbose one too), the files mlops-env
    # wrote, or the box (it reached the box only through the fake gh, never from mlops-env).
    verbose = u.mlops("-v", "--debug", "--json", "up", "codespace", "cs", "--smoke-test", "sample")
    assert verbose.code == 0, verbose
    assert_token_nowhere(u, box.github, r, again, doc, smoke, verbose)
    on_box = hosts.exec_in(box.engine, box.vm.container_id, ["grep", "-rqsF", "-e", box.github.token,
                                                               "/home", "/etc", "/root", "/tmp", "/var/tmp"],
                           check=False)
    assert on_box.exit_code == 1, "the GitHub token is on the box"


def test_a_changed_host_key_is_refused_by_up_and_by_ssh(box: Box) -> None:
    """The pin holds: a codespace presenting another key later (a rebuilt container, or someone
    in between) is refused by mlops-env and by OpenSSH alike."""
    u = box.user
    first = u.mlops("--json", "up", "codespace", "hk", "--repo", REPO, "--provision-only")
    assert first.code == 0, first
    sh = hosts.exec_in(box.engine, box.vm.container_id,
                       ["sh", "-c", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh"])
    assert sh.ok, sh
    r = u.mlops("--json", "up", "codespace", "hk", "--provision-only")
    assert r.code == 6, r
    assert r.error["code"] == "host-key-changed"
    assert "ssh-keygen -R mlops-env-hk" in r.error["hint"]
    full = u.mlops("--json", "up", "codespace", "hk", "--smoke-test", "off")  # refused by the connection itself
    assert full.code == 6 and full.error["code"] == "host-key-changed", full
    assert "ssh-keygen -R mlops-env-hk" in full.error["hint"]
    s = real_ssh(u, "mlops-hk", "true")
    assert s.returncode == 255, s
    assert "host key" in s.stderr.lower(), s.stderr
    # Told what to do: forget the old key, run up again: the new key is pinned through the tunnel.
    subprocess.run(["ssh-keygen", "-R", "mlops-env-hk", "-f", str(u.root / "ssh" / "known_hosts")],  # noqa: S603,S607
                   check=True, capture_output=True)
    again = u.mlops("--json", "up", "codespace", "hk", "--provision-only")
    assert again.code == 0, again
    assert real_ssh(u, "mlops-hk", "true").returncode == 0


def test_down_deletes_the_codespace_and_restores_the_users_ssh_config(box: Box) -> None:
    u = box.user
    before = u.ssh_config.read_bytes()
    r = u.mlops("--json", "up", "codespace", "gone", "--repo", REPO, "--provision-only")
    assert r.code == 0, r
    name = r.data["codespace"]["name"]
    d = u.mlops("--json", "down", "gone", "--yes")
    assert d.code == 0, d
    assert ("DELETE", f"/user/codespaces/{name}", None) in box.github.requests("DELETE")
    assert "mlops-gone" not in (u.root / "ssh" / "config").read_text()
    assert "mlops-env-gone" not in (u.root / "ssh" / "known_hosts").read_text()
    assert u.ssh_config.read_bytes() == before  # other workstations (cs, hk) still need the Include
    assert Path(u.root / "state" / "gone.json").exists() is False
