"""Black box: the INSTALLED `mlops-env class ...` against moto over HTTP (STAND-IN AWS,
tests/ec2/moto_launcher.py) with faults injected by its WSGI middleware. The box side of every
student is the recorded ready answer (TEST-ONLY seam MLOPS_ENV_TEST_CLASS_BOX=ready): every
AWS call of `up ec2` runs, no SSH. test_e2e_class_boxes.py has real instance stand-ins."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_env.ssh.keys import generate_host_keypair

pytestmark = pytest.mark.e2e

CLS_TAG = "mlops-env:class"
UP = ("--json", "class", "up")
OPTS = ("--yes", "--python-dist", "miniforge", "--smoke-test", "off")


def roster(tmp_path: Path, cls: str, n: int, name: str = "roster.yaml") -> Path:
    body = "".join(f"  - name: s{i:02d}\n    public_key: {generate_host_keypair(f's{i}').public_line}\n"
                   for i in range(1, n + 1))
    p = tmp_path / name
    p.write_text(f"class: {cls}\nregion: eu-west-1\ninstance_type: t3.large\nallow_cidr: 198.51.100.0/24\n"
                 f"students:\n{body}")
    return p


def env(u: Any) -> dict[str, str]:
    return {**u.env, "MLOPS_ENV_TEST_CLASS_BOX": "ready"}


def class_instances(ec2: Any, cls: str) -> list[dict[str, Any]]:
    f = [{"Name": f"tag:{CLS_TAG}", "Values": [cls]},
         {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    return [i for r in ec2.describe_instances(Filters=f)["Reservations"] for i in r["Instances"]]


def class_left(ec2: Any, cls: str) -> dict[str, int]:
    f = [{"Name": f"tag:{CLS_TAG}", "Values": [cls]}]
    return {"instances": len(class_instances(ec2, cls)),
            "volumes": len(ec2.describe_volumes(Filters=f)["Volumes"]),
            "security_groups": len(ec2.describe_security_groups(Filters=f)["SecurityGroups"]),
            "key_pairs": len(ec2.describe_key_pairs(Filters=f)["KeyPairs"]),
            "network_interfaces": len(ec2.describe_network_interfaces(Filters=f)["NetworkInterfaces"])}


ZERO = {"instances": 0, "volumes": 0, "security_groups": 0, "key_pairs": 0, "network_interfaces": 0}


def down(u: Any, p: Path, ec2: Any, cls: str) -> None:
    d = u.mlops("--json", "class", "down", str(p), "--yes", env=env(u))
    assert d.code == 0, d.stdout + d.stderr
    assert d.data["verified"] is True and d.data["leftovers"] == []
    assert class_left(ec2, cls) == ZERO


def test_class_of_30_with_throttling(make_user: Any, moto_server: Any, tmp_path: Path) -> None:
    ec2 = moto_server.client()
    p = roster(tmp_path, "t30", 30)
    u = make_user()
    # 4 throttles per action: at most 4 in a row for any one call, which the retries (botocore's
    # 5 attempts; RunInstances: our backoff, 6) must absorb wherever they land in the pool.
    moto_server.faults(*[{"action": a, "mode": "error", "count": 4, "code": "RequestLimitExceeded",
                          "status": 503, "message": "Request limit exceeded."}
                         for a in ("DescribeInstances", "RunInstances", "ImportKeyPair", "CreateSecurityGroup",
                                   "AuthorizeSecurityGroupIngress")])
    try:
        r = u.mlops(*UP, str(p), *OPTS, "--jobs", "8", env=env(u), timeout=900)
        stats = moto_server.stats()
    finally:
        moto_server.faults()
    assert r.code == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert stats["injected"] == [4] * 5  # throttled, and retried with backoff
    assert [s["status"] for s in r.data["students"]] == ["created"] * 30
    insts = class_instances(ec2, "t30")
    assert len(insts) == 30 and len({i["InstanceId"] for i in insts}) == 30
    names = sorted(t["Value"] for i in insts for t in i["Tags"] if t["Key"] == "mlops-env:name")
    assert names == [f"t30-s{i:02d}" for i in range(1, 31)]
    down(u, p, ec2, "t30")


def test_quota_error_at_student_21_keeps_the_running_ones(make_user: Any, moto_server: Any, tmp_path: Path) -> None:
    ec2 = moto_server.client()
    p = roster(tmp_path, "q30", 30)
    u = make_user()
    moto_server.faults({"action": "RunInstances", "after": 20, "mode": "error", "count": -1,
                        "code": "VcpuLimitExceeded", "status": 400,
                        "message": "You have requested more vCPU capacity than your current vCPU limit of 40 allows"})
    try:
        r = u.mlops(*UP, str(p), *OPTS, "--jobs", "4", env=env(u), timeout=900)
        stats = moto_server.stats()
    finally:
        moto_server.faults()
    assert r.code == 1, r.stdout[-3000:] + r.stderr[-3000:]
    st = [s["status"] for s in r.data["students"]]
    assert st.count("created") == 20, st
    # which 20 got in is the order their RunInstances reached AWS (students run side by side)
    assert set(st) <= {"created", "failed", "not launched"} and "not launched" in st  # stopped launching more
    assert stats["seen"]["RunInstances"] < 30  # not every student was tried
    quota = next(e for e in r.json["errors"] if e["code"] == "aws-vcpu-limit")
    assert "needs 60 vCPUs (2 x 30 students)" in quota["message"]
    assert "L-1216C47A" in quota["hint"] and "request-service-quota-increase" in quota["hint"]
    failed = next(e for e in r.json["errors"] if e["code"] == "class-failed")
    assert "10 of 30 student(s) failed" in failed["message"]
    assert len(class_instances(ec2, "q30")) == 20  # the running ones are kept
    # the quota raised: the next run creates only the 10 missing
    again = u.mlops(*UP, str(p), *OPTS, env=env(u), timeout=900)
    assert again.code == 0, again.stdout[-3000:] + again.stderr[-3000:]
    st2 = [s["status"] for s in again.data["students"]]
    assert st2.count("unchanged") == 20 and st2.count("created") + st2.count("resumed") == 10
    assert len(class_instances(ec2, "q30")) == 30
    down(u, p, ec2, "q30")


def test_killed_class_up_is_finished_by_the_next(make_user: Any, moto_server: Any, tmp_path: Path) -> None:
    ec2 = moto_server.client()
    p = roster(tmp_path, "k6", 6)
    u = make_user()
    # RunInstances 4 is done by moto but its answer hangs: the run is killed right then
    moto_server.faults({"action": "RunInstances", "after": 3, "mode": "hang_after", "seconds": 60, "count": 1})
    try:
        proc = u.popen(*UP, str(p), *OPTS, "--jobs", "1", env=env(u))  # one at a time: killed at #4 exactly
        for _ in range(600):
            if moto_server.stats()["injected"] == [1]:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the hanging RunInstances never came")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        moto_server.faults()
    made = len(class_instances(ec2, "k6"))
    assert made == 4, made  # killed part way, the 4th launched but its answer never came
    r = u.mlops(*UP, str(p), *OPTS, env=env(u), timeout=900)
    assert r.code == 0, r.stdout[-3000:] + r.stderr[-3000:]
    insts = class_instances(ec2, "k6")
    names = sorted(t["Value"] for i in insts for t in i["Tags"] if t["Key"] == "mlops-env:name")
    assert names == [f"k6-s{i:02d}" for i in range(1, 7)]  # each once: the in-flight launch adopted
    down(u, p, ec2, "k6")


def test_roster_edit_then_status_json(make_user: Any, moto_server: Any, tmp_path: Path) -> None:
    ec2 = moto_server.client()
    p = roster(tmp_path, "e3", 3)
    u = make_user()
    assert u.mlops(*UP, str(p), *OPTS, env=env(u)).code == 0
    text = p.read_text().replace("  - name: s02\n", "  - name: s09\n")
    p.write_text(text)
    no = u.mlops(*UP, str(p), "--python-dist", "miniforge", "--smoke-test", "off", env=env(u))
    assert no.code == 2 and "--yes" in no.stdout + no.stderr  # no terminal to ask on: nothing removed
    assert len(class_instances(ec2, "e3")) == 3
    r = u.mlops(*UP, str(p), *OPTS, env=env(u))
    assert r.code == 0, r.stdout + r.stderr
    assert {s["student"]: s["status"] for s in r.data["students"]} == {
        "s01": "unchanged", "s09": "created", "s03": "unchanged", "s02": "removed"}
    s = u.mlops("--json", "class", "status", str(p), env=env(u))
    assert s.code == 0 and [x["student"] for x in s.data["students"]] == ["s01", "s09", "s03"]
    assert all(x["state"] == "running" for x in s.data["students"])
    down(u, p, ec2, "e3")


def test_bad_roster_one_line_and_dry_run_costs(make_user: Any, moto_server: Any, tmp_path: Path) -> None:
    u = make_user()
    bad = tmp_path / "bad.yaml"
    bad.write_text("class: b1\nstudents:\n  - name: alice\n    github: alice\n    shoe: 42\n")
    r = u.mlops("class", "up", str(bad), "--yes", env=env(u))
    assert r.code == 2, r
    assert f"{bad}:5: unknown key 'shoe' in the student" in r.stderr and "Traceback" not in r.stderr
    assert "hint:" in r.stderr
    p = roster(tmp_path, "dry3", 3)
    d = u.mlops("class", "up", str(p), "--dry-run", env=env(u))
    assert d.code == 0, d
    assert "dry run: nothing is made" in d.stderr + d.stdout
    out = d.stderr + d.stdout  # t3.large in eu-west-1 from the dated fallback table (moto has no Pricing API)
    assert "$0.0912/hour each x 3 = $0.27/hour while all run; $6.57/day at 24 hours (no max_hours)" in out
    assert "disks: 30 GB gp3 each, $2.64/month each = $7.92/month for the class" in out
    assert "vCPUs: 6 needed (2 x 3)" in d.stderr + d.stdout
    assert class_instances(moto_server.client(), "dry3") == []
