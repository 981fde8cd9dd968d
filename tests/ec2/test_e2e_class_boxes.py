"""End to end: a class of two on instance STAND-INs (systemd containers booted by the REAL
cloud-init, tests/ec2/instance_standin.py) behind moto (STAND-IN AWS), with the full bootstrap
(STAND-IN Anaconda installer, sample smoke test). Students' keys come from a fake GitHub
``USER.keys`` server (keyserver.py) or inline; the course repository from a real ``git daemon``
on each box's loopback.

Proved: each student logs in with the REAL ``ssh -F`` and only the config ``mlops-env join``
wrote (pinned host key, StrictHostKeyChecking yes); the repository is cloned and ``code``
names its folder; with ``instructor_access: false`` the instructor's key is refused after the
smoke test; `class down` leaves nothing tagged for the class.

The first `class up` provisions only (TEST-ONLY seam MLOPS_ENV_TEST_CLASS_BOX=provision): the
fake public IPs are known only then, and each is mapped to its own stand-in for the second
`class up`, which finishes both workstations for real."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from instance_standin import InstanceStandIn
from keyserver import key_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLS = "cls"


def keypair(d: Path, name: str) -> tuple[Path, str]:
    p = d / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(p)], check=True)  # noqa: S603,S607
    return p, (d / f"{name}.pub").read_text().strip()


def git_server(box: InstanceStandIn) -> None:
    """A real git daemon on the box's loopback serving /srv/git/course.git (git from apt)."""
    box.exec("apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q git >/dev/null 2>&1")
    box.exec("set -e; mkdir -p /srv/src && cd /srv/src && git init -q -b main && echo 'week 1' > README.md && "
             "git -c user.name=t -c user.email=t@x add . && git -c user.name=t -c user.email=t@x commit -qm one && "
             "git clone -q --bare /srv/src /srv/git/course.git && "
             "git daemon --base-path=/srv/git --export-all --reuseaddr --listen=127.0.0.1 --detach")


def test_class_of_two_students_log_in_with_their_own_keys(
        make_user: Any, moto_server: Any, docker_engine: Any, cloudinit_image: Any,
        standin_conda_installer: Any, tmp_path: Path) -> None:
    ec2 = moto_server.client()
    keys = tmp_path / "keys"
    keys.mkdir()
    alice_key, alice_pub = keypair(keys, "alice")
    bob_key, bob_pub = keypair(keys, "bob")
    roster = tmp_path / "cohort.yaml"
    roster.write_text(f"""class: {CLS}
region: eu-west-1
allow_cidr: 198.51.100.0/24
repo: git://127.0.0.1:9418/course.git
instructor_access: false
students:
  - name: alice
    github: alice-gh
  - name: bob
    public_key: {bob_pub}
""")
    with InstanceStandIn(docker_engine, ec2, f"{CLS}-alice") as box_a, \
            InstanceStandIn(docker_engine, ec2, f"{CLS}-bob") as box_b, \
            key_server({"alice-gh": alice_pub + "\n"}) as (keys_url, seen):
        u = make_user()
        env = {**u.env, "MLOPS_ENV_GITHUB_KEYS_URL": keys_url}
        url = box_a.put_file(standin_conda_installer.path)
        assert box_b.put_file(standin_conda_installer.path) == url
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"conda_installer: {url}\nconda_sha256: {standin_conda_installer.sha256}\n"
                       "accept_anaconda_tos: true\nsmoke_test: sample\nssh_timeout: 120\n")

        first = u.mlops("--json", "class", "up", str(roster), "--yes", "--config", str(cfg),
                        env={**env, "MLOPS_ENV_TEST_CLASS_BOX": "provision"})
        assert first.code == 0, first
        assert seen == ["/alice-gh.keys"]
        box_a.wait_booted()
        box_b.wait_booted()
        git_server(box_a)
        git_server(box_b)
        ips = {}
        for r in ec2.describe_instances(Filters=[{"Name": "tag:mlops-env:class", "Values": [CLS]}])["Reservations"]:
            for i in r["Instances"]:
                name = next(t["Value"] for t in i["Tags"] if t["Key"] == "mlops-env:name")
                ips[name] = i["PublicIpAddress"]
        env["MLOPS_ENV_TEST_SSH_ADDRESS_MAP"] = (f"{ips[CLS + '-alice']}=127.0.0.1:{box_a.port},"
                                                 f"{ips[CLS + '-bob']}=127.0.0.1:{box_b.port}")

        r = u.mlops("--json", "class", "up", str(roster), "--yes", "--config", str(cfg), env=env, timeout=1500)
        assert r.code == 0, r
        assert [(s["student"], s["status"]) for s in r.data["students"]] == [("alice", "resumed"), ("bob", "resumed")]

        # The instructor's key is refused now (instructor_access: false, removed after the smoke test)
        refused = u.ssh(f"mlops-{CLS}-alice", "true")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
        rec = (u.root / "state").glob("*.json")
        assert rec  # the instructor still has the records and pins
        auth = box_a.exec(["cat", "/home/ubuntu/.ssh/authorized_keys"]).stdout.split("\n")
        assert [" ".join(ln.split()[:2]) for ln in auth if ln.strip()] == [" ".join(alice_pub.split()[:2])]
        # the smoke test did pass before that
        st = u.mlops("--json", "class", "status", str(roster), env=env)
        assert st.code == 0 and [s["smoke"] for s in st.data["students"]] == ["passed", "passed"], st
        # the idle agent's state is read over SSH, which the instructor's key no longer opens: said, not raised
        assert all(s["idle_for"] is None and s["idle_detail"] for s in st.data["students"]), st.data

        out = tmp_path / "bundles"
        b = u.mlops("--json", "class", "bundle", str(roster), "--out", str(out), env=env)
        assert b.code == 0, b
        code = u.mlops("--json", "code", f"{CLS}-alice", env=env)
        assert code.data["command"] == f"code --remote ssh-remote+mlops-{CLS}-alice /home/ubuntu/course"

        # Each student: a fresh machine with only their key and the bundle, the real ssh
        for student, key, box in (("alice", alice_key, box_a), ("bob", bob_key, box_b)):
            s = make_user(student)
            senv = {**s.env, "MLOPS_ENV_TEST_SSH_ADDRESS_MAP": env["MLOPS_ENV_TEST_SSH_ADDRESS_MAP"]}
            j = s.mlops("--json", "join", str(out / f"{student}.yaml"), "--identity", str(key), env=senv)
            assert j.code == 0, j
            assert "StrictHostKeyChecking yes" in (s.root / "ssh" / "config").read_text()
            who = s.ssh(f"mlops-{CLS}-{student}", "id -un; cat ~/course/README.md")
            assert who.returncode == 0, who.stderr
            assert who.stdout.split("\n")[:2] == ["ubuntu", "week 1"]
            # the other student's key does not open this box
            other = alice_key if student == "bob" else bob_key
            cfgtext = (s.root / "ssh" / "config").read_text().replace(str(key), str(other))
            (s.root / "ssh" / "config").write_text(cfgtext)
            assert s.ssh(f"mlops-{CLS}-{student}", "true").returncode == 255
            assert not box.errors, box.errors

        d = u.mlops("--json", "class", "down", str(roster), "--yes", env=env)
        assert d.code == 0 and d.data["verified"], d
