"""End to end: a class of three on instance STAND-INs (systemd containers booted by the REAL
cloud-init, tests/ec2/instance_standin.py) behind moto (STAND-IN AWS), with the full bootstrap
(STAND-IN Anaconda installer, sample smoke test). Students' keys come from a fake GitHub
``USER.keys`` server (keyserver.py) or inline; the course repository from a real ``git daemon``
on each box's loopback.

Proved: while ``instructor_access: true`` the instructor logs in and `class status` shows each
box's idle-stop agent (the IDLE column, read over SSH); after the roster is edited to
``instructor_access: false`` the next `class up` removes the instructor's key (refused by the
real ``ssh``; `class status` says why it cannot read the agent). Each student logs in with the
REAL ``ssh -F`` and only the config ``mlops-env join`` wrote (pinned host key,
StrictHostKeyChecking yes); another student's key does not open the box; the repository is
cloned and ``code`` names its folder; `class down` leaves nothing tagged for the class.

The first `class up` provisions only (TEST-ONLY seam MLOPS_ENV_TEST_CLASS_BOX=provision): the
fake public IPs are known only then, and each is mapped to its own stand-in for the second
`class up`, which finishes the three workstations for real, side by side."""

from __future__ import annotations

import subprocess
import time
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


def test_class_of_three_students_log_in_with_their_own_keys(
        make_user: Any, moto_server: Any, docker_engine: Any, cloudinit_image: Any,
        standin_conda_installer: Any, tmp_path: Path) -> None:
    ec2 = moto_server.client()
    keys = tmp_path / "keys"
    keys.mkdir()
    students = ("alice", "bob", "carol")
    key = {n: keypair(keys, n) for n in students}
    roster = tmp_path / "cohort.yaml"
    text = f"""class: {CLS}
region: eu-west-1
allow_cidr: 198.51.100.0/24
repo: git://127.0.0.1:9418/course.git
idle_stop: 30m
instructor_access: true
students:
  - name: alice
    github: alice-gh
  - name: bob
    public_key: {key["bob"][1]}
  - name: carol
    github: carol-gh
"""
    roster.write_text(text)
    with InstanceStandIn(docker_engine, ec2, f"{CLS}-alice") as box_a, \
            InstanceStandIn(docker_engine, ec2, f"{CLS}-bob") as box_b, \
            InstanceStandIn(docker_engine, ec2, f"{CLS}-carol") as box_c, \
            key_server({"alice-gh": key["alice"][1] + "\n", "carol-gh": key["carol"][1] + "\n"}) as (keys_url, seen):
        box = {"alice": box_a, "bob": box_b, "carol": box_c}
        u = make_user()
        env = {**u.env, "MLOPS_ENV_GITHUB_KEYS_URL": keys_url}
        url = box_a.put_file(standin_conda_installer.path)
        assert box_b.put_file(standin_conda_installer.path) == url == box_c.put_file(standin_conda_installer.path)
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"conda_installer: {url}\nconda_sha256: {standin_conda_installer.sha256}\n"
                       "accept_anaconda_tos: true\nsmoke_test: sample\nssh_timeout: 120\n")

        first = u.mlops("--json", "class", "up", str(roster), "--yes", "--config", str(cfg),
                        env={**env, "MLOPS_ENV_TEST_CLASS_BOX": "provision"})
        assert first.code == 0, first
        assert sorted(seen) == ["/alice-gh.keys", "/carol-gh.keys"]
        for b in box.values():
            b.wait_booted()
            git_server(b)
        ips = {}
        for r in ec2.describe_instances(Filters=[{"Name": "tag:mlops-env:class", "Values": [CLS]}])["Reservations"]:
            for i in r["Instances"]:
                name = next(t["Value"] for t in i["Tags"] if t["Key"] == "mlops-env:name")
                ips[name] = i["PublicIpAddress"]
        env["MLOPS_ENV_TEST_SSH_ADDRESS_MAP"] = ",".join(
            f"{ips[f'{CLS}-{n}']}=127.0.0.1:{box[n].port}" for n in students)

        r = u.mlops("--json", "class", "up", str(roster), "--yes", "--config", str(cfg), env=env, timeout=1500)
        assert r.code == 0, r
        assert [(s["student"], s["status"]) for s in r.data["students"]] == [(n, "resumed") for n in students]

        # instructor_access: true: the instructor logs in, and `class status` reads every box's
        # idle-stop agent over SSH (the IDLE column). Two checks of the agent are started by hand
        # (what its 30 s timer does) so that it has measured the load twice and calls the box idle.
        assert u.ssh(f"mlops-{CLS}-alice", "true").returncode == 0
        st = _status_when_idle(u, roster, env, box.values())
        assert [s["smoke"] for s in st.data["students"]] == ["passed"] * 3, st
        assert all(isinstance(s["idle_for"], int) and s["idle_for"] >= 0 for s in st.data["students"]), st.data
        assert all(str(s["idle_detail"]).startswith("idle ") for s in st.data["students"]), st.data
        table = u.mlops("class", "status", str(roster), env=env)
        assert table.code == 0 and "IDLE" in table.stdout, table

        # The roster edited to instructor_access: false: the next `class up` removes the key
        roster.write_text(text.replace("instructor_access: true", "instructor_access: false"))
        again = u.mlops("--json", "class", "up", str(roster), "--yes", "--config", str(cfg), env=env, timeout=900)
        assert again.code == 0, again
        assert [(s["student"], s["status"]) for s in again.data["students"]] == [(n, "updated") for n in students]
        refused = u.ssh(f"mlops-{CLS}-alice", "true")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
        assert list((u.root / "state").glob("*.json"))  # the instructor still has the records and pins
        for n in students:
            auth = box[n].exec(["cat", "/home/ubuntu/.ssh/authorized_keys"]).stdout.split("\n")
            assert [" ".join(ln.split()[:2]) for ln in auth if ln.strip()] == [" ".join(key[n][1].split()[:2])]
        # the idle agent's state is read over SSH, which the instructor's key no longer opens: said, not raised
        st = u.mlops("--json", "class", "status", str(roster), env=env)
        assert st.code == 0, st
        assert all(s["idle_for"] is None and s["idle_detail"] for s in st.data["students"]), st.data

        out = tmp_path / "bundles"
        b = u.mlops("--json", "class", "bundle", str(roster), "--out", str(out), env=env)
        assert b.code == 0, b
        code = u.mlops("--json", "code", f"{CLS}-alice", env=env)
        assert code.data["command"] == f"code --remote ssh-remote+mlops-{CLS}-alice /home/ubuntu/course"

        # Each student: a fresh machine with only their key and the bundle, the real ssh
        for i, student in enumerate(students):
            s = make_user(student)
            senv = {**s.env, "MLOPS_ENV_TEST_SSH_ADDRESS_MAP": env["MLOPS_ENV_TEST_SSH_ADDRESS_MAP"]}
            j = s.mlops("--json", "join", str(out / f"{student}.yaml"), "--identity", str(key[student][0]), env=senv)
            assert j.code == 0, j
            assert "StrictHostKeyChecking yes" in (s.root / "ssh" / "config").read_text()
            who = s.ssh(f"mlops-{CLS}-{student}", "id -un; cat ~/course/README.md")
            assert who.returncode == 0, who.stderr
            assert who.stdout.split("\n")[:2] == ["ubuntu", "week 1"]
            # another student's key does not open this box
            other = key[students[(i + 1) % len(students)]][0]
            cfgtext = (s.root / "ssh" / "config").read_text().replace(str(key[student][0]), str(other))
            (s.root / "ssh" / "config").write_text(cfgtext)
            assert s.ssh(f"mlops-{CLS}-{student}", "true").returncode == 255
            assert not box[student].errors, box[student].errors

        d = u.mlops("--json", "class", "down", str(roster), "--yes", env=env)
        assert d.code == 0 and d.data["verified"], d


def _status_when_idle(u: Any, roster: Path, env: dict[str, str], boxes: Any, timeout: float = 90) -> Any:
    """`class status --json` once every box's agent has called it idle (two checks, by hand)."""
    deadline = time.monotonic() + timeout
    while True:
        for b in boxes:
            b.exec(["systemctl", "start", "mlops-env-idle.service"])
        time.sleep(2)
        for b in boxes:
            b.exec(["systemctl", "start", "mlops-env-idle.service"])
        st = u.mlops("--json", "class", "status", str(roster), env=env)
        assert st.code == 0, st
        if all(s["idle_for"] is not None for s in st.data["students"]) or time.monotonic() > deadline:
            return st
