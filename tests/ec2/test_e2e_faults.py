"""Black box: the INSTALLED mlops-env against moto over HTTP (STAND-IN AWS, tests/ec2/
moto_launcher.py) with faults injected by the launcher's WSGI middleware. Only
--provision-only and lifecycle commands here (no box is contacted: the SSH address of every
fake instance is mapped to a closed loopback port). test_e2e_up.py has the full bootstrap."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest
from ec2help import FAKE_KEY_ID, FAKE_SECRET, tagged, user_data_host_key

pytestmark = pytest.mark.e2e

PROVISION = ("--json", "up", "ec2", "--provision-only", "--region", "eu-west-1")


def _subnet_of_zone(ec2: Any, zone: str) -> str:
    subs = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    return next(s["SubnetId"] for s in subs if s["AvailabilityZone"] == zone)


def _nothing_left(ec2: Any, name: str) -> None:
    left = tagged(ec2, name)
    assert all(v == [] for v in left.values()), {k: len(v) for k, v in left.items()}


def test_provision_only_second_run_and_status(make_user: Any, moto_server: Any) -> None:
    u = make_user()
    r = u.mlops(*PROVISION, "p1")
    assert r.code == 0, r.stdout + r.stderr
    assert [(s["id"], s["status"]) for s in r.data["steps"]] == [("provision", "changed"), ("ssh-config", "changed")]
    assert r.data["cost"]["hourly_usd"] == 0.1824 and "fallback table" in r.data["cost"]["hourly_source"]
    ec2 = moto_server.client()
    inst = tagged(ec2, "p1")["instances"][0]
    sg = tagged(ec2, "p1")["security_groups"][0]
    assert [p["IpRanges"][0]["CidrIp"] for p in sg["IpPermissions"]] == ["203.0.113.7/32"]  # the looked-up IP
    public, private = user_data_host_key(ec2, inst["InstanceId"])
    # (the first base64 line of every OpenSSH key is the same header: use a part with key material)
    secrets = [FAKE_SECRET, FAKE_KEY_ID, "".join(private.strip().splitlines()[1:-1])[80:140]]
    for f in [*u.root.rglob("*")]:
        if f.is_file():
            text = f.read_text(errors="replace")
            assert not [x for x in secrets if x in text], f  # no credentials, no private host key
    again = u.mlops(*PROVISION, "p1")
    assert again.code == 0 and {s["status"] for s in again.data["steps"]} == {"unchanged"}
    assert len(tagged(ec2, "p1")["instances"]) == 1
    st = u.mlops("--json", "status", "p1")
    assert st.code == 0 and st.data["live"]["instance_id"] == inst["InstanceId"]
    assert st.data["live"]["state"] == "running" and st.data["live"]["instance_type"] == "t3.xlarge"
    # stop/start of a box that was only provisioned: start does not wait for SSH (nothing set up there)
    assert u.mlops("--json", "stop", "p1", "--yes").code == 0
    sr = u.mlops("--json", "start", "p1")
    assert sr.code == 0 and "waiting for SSH" not in sr.stdout + sr.stderr, sr.stdout + sr.stderr
    d = u.mlops("--json", "down", "p1", "--yes")
    assert d.code == 0, d.stdout + d.stderr
    assert "verified: nothing tagged mlops-env:name=p1 remains in eu-west-1" in d.data["removed"]
    _nothing_left(ec2, "p1")
    assert u.ssh_config.read_bytes().startswith(b"# my own settings")


def test_insufficient_capacity_in_one_zone_uses_another(make_user: Any, moto_server: Any) -> None:
    ec2 = moto_server.client()
    zone_a = _subnet_of_zone(ec2, "eu-west-1a")
    moto_server.faults({"action": "RunInstances", "contains": zone_a, "mode": "error", "count": -1,
                        "code": "InsufficientInstanceCapacity", "status": 500,
                        "message": "We currently do not have sufficient t3.xlarge capacity in the Availability Zone"})
    try:
        u = make_user()
        r = u.mlops(*PROVISION, "cap1")
        stats = moto_server.stats()
    finally:
        moto_server.faults()
    assert r.code == 0, r.stdout + r.stderr
    inst = tagged(ec2, "cap1")["instances"][0]
    assert inst["Placement"]["AvailabilityZone"] == "eu-west-1b" and inst["SubnetId"] != zone_a
    assert stats["injected"] == [1] and stats["seen"]["RunInstances"] == 2  # one refusal, no blind retry
    assert "eu-west-1b" in r.data["steps"][0]["message"]
    assert u.mlops("--json", "down", "cap1", "--yes").code == 0


def test_throttling_is_retried(make_user: Any, moto_server: Any) -> None:
    moto_server.faults(
        {"action": "DescribeInstances", "mode": "error", "count": 2, "code": "RequestLimitExceeded", "status": 503,
         "message": "Request limit exceeded."},
        {"action": "RunInstances", "mode": "error", "count": 2, "code": "RequestLimitExceeded", "status": 503,
         "message": "Request limit exceeded."})
    try:
        u = make_user()
        r = u.mlops(*PROVISION, "thr1")
        stats = moto_server.stats()
    finally:
        moto_server.faults()
    assert r.code == 0, r.stdout + r.stderr
    assert stats["injected"] == [2, 2]
    assert stats["seen"]["RunInstances"] == 3 and stats["seen"]["DescribeInstances"] >= 3
    assert len(tagged(moto_server.client(), "thr1")["instances"]) == 1
    assert u.mlops("--json", "down", "thr1", "--yes").code == 0


def test_a_lost_run_instances_answer_makes_one_instance(make_user: Any, moto_server: Any) -> None:
    """The launch happened but its answer was lost: the retry carries the same ClientToken and
    gets the first launch back (the launcher emulates AWS's idempotency, which moto lacks)."""
    moto_server.faults({"action": "RunInstances", "mode": "lose_after", "count": 1, "code": "ServiceUnavailable",
                        "status": 503})
    try:
        u = make_user()
        r = u.mlops(*PROVISION, "lost1")
        stats = moto_server.stats()
    finally:
        moto_server.faults()
    assert r.code == 0, r.stdout + r.stderr
    assert stats["injected"] == [1] and stats["seen"]["RunInstances"] == 2
    assert len(tagged(moto_server.client(), "lost1")["instances"]) == 1
    assert u.mlops("--json", "down", "lost1", "--yes").code == 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_run_stopped_right_after_run_instances_is_finished_by_the_next_up(
        make_user: Any, moto_server: Any, sig: int) -> None:
    name = f"kill{int(sig)}"
    ec2 = moto_server.client()
    moto_server.faults({"action": "RunInstances", "mode": "hang_after", "count": 1, "seconds": 60})
    u = make_user()
    p = u.popen(*PROVISION, name)
    try:
        deadline = time.monotonic() + 60
        while not tagged(ec2, name)["instances"]:
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.2)
        p.send_signal(sig)  # the instance exists; the run never saw RunInstances' answer
        stopped = u.wait(p, timeout=30)  # (popen gives the run SIGINT's default disposition)
    finally:
        moto_server.faults()
        if p.poll() is None:
            p.kill()
    if sig == signal.SIGINT:
        assert stopped.code == 130 and json.loads(stopped.stdout)["errors"][0]["code"] == "interrupted", stopped
    else:
        assert stopped.code == -signal.SIGKILL
    r = u.mlops(*PROVISION, name)
    assert r.code == 0, r.stdout + r.stderr
    assert "adopted" in r.data["steps"][0]["message"]
    insts = tagged(ec2, name)["instances"]
    assert len(insts) == 1
    public, _ = user_data_host_key(ec2, insts[0]["InstanceId"])
    pinned = (u.root / "ssh" / "known_hosts").read_text()
    assert f"mlops-env-{name} {' '.join(public.split()[:2])}" in pinned
    d = u.mlops("--json", "down", name, "--yes")
    assert d.code == 0, d.stdout + d.stderr
    _nothing_left(ec2, name)


def test_down_after_a_half_done_up_leaves_nothing(make_user: Any, moto_server: Any) -> None:
    ec2 = moto_server.client()
    moto_server.faults({"action": "RunInstances", "mode": "error", "count": -1, "code": "VcpuLimitExceeded",
                        "status": 400, "message": "You have requested more vCPU capacity than your current vCPU "
                        "limit of 0 allows for the instance bucket that the specified instance type belongs to."})
    try:
        u = make_user()
        r = u.mlops(*PROVISION, "half1")
    finally:
        moto_server.faults()
    assert r.code == 4, r.stdout + r.stderr
    assert r.error["code"] == "aws-vcpu-limit" and "L-1216C47A" in r.error["hint"]
    left = tagged(ec2, "half1")
    assert len(left["security_groups"]) == 1 and len(left["key_pairs"]) == 1  # tagged: findable
    d = u.mlops("--json", "down", "half1", "--yes")
    assert d.code == 0, d.stdout + d.stderr
    _nothing_left(ec2, "half1")
    again = u.mlops("--json", "down", "half1", "--yes")
    assert again.code == 3 and again.error["code"] == "unknown-workstation"


def test_access_denied_names_the_iam_action(make_user: Any, moto_server: Any) -> None:
    moto_server.faults({"action": "CreateSecurityGroup", "mode": "error", "count": -1, "code": "UnauthorizedOperation",
                        "status": 403, "message": "You are not authorized to perform this operation."})
    try:
        u = make_user()
        r = u.mlops(*PROVISION, "deny1")
    finally:
        moto_server.faults()
    assert r.code == 4 and r.error["code"] == "aws-access-denied", r.stdout + r.stderr
    assert "ec2:CreateSecurityGroup" in r.error["message"] and "docs/ec2.md" in r.error["hint"]
    assert u.mlops("--json", "down", "deny1", "--yes").code == 0
    _nothing_left(moto_server.client(), "deny1")


@pytest.mark.parametrize(("args", "code", "err", "text"), [
    (("--disk-gb", "5"), 2, "invalid-option", "20..2000"),
    (("--allow-cidr", "203.0.113.7/24"), 2, "invalid-option", "CIDR"),
    (("--region", "eu-wset-1"), 2, "aws-unknown-region", "eu-west-1"),
    (("--instance-type", "c8gb.large"), 2, "instance-type-not-offered", "c8gb.large"),
    (("--instance-type", "t3.xlargee"), 2, "unknown-instance-type", "t3.xlargee"),
    (("--ami", "ami-0000000000000000f"), 3, "ami-not-found", "ami-0000000000000000f"),
])
def test_bad_input_is_one_clear_error_and_makes_nothing(make_user: Any, moto_server: Any, args: tuple[str, ...],
                                                        code: int, err: str, text: str) -> None:
    u = make_user()
    r = u.mlops("--json", "up", "ec2", "bad1", "--provision-only", *args)
    assert r.code == code and r.error["code"] == err, r.stdout + r.stderr
    assert text in r.error["message"] + r.error["hint"] and r.error["hint"]
    _nothing_left(moto_server.client(), "bad1")


def test_missing_credentials_say_how_to_fix_them(make_user: Any) -> None:
    u = make_user()
    env = {k: v for k, v in u.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    r = u.mlops(*PROVISION, "nocred", env=env)
    assert r.code == 4 and r.error["code"] == "aws-no-credentials", r.stdout + r.stderr
    assert "aws configure" in r.error["hint"] and "Traceback" not in r.stderr


def test_dry_run_prints_the_plan_and_changes_nothing(make_user: Any, moto_server: Any) -> None:
    moto_server.faults()  # resets the counters
    u = make_user()
    r = u.mlops("--json", "up", "ec2", "dry1", "--dry-run", "--spot")
    assert r.code == 0, r.stdout + r.stderr
    seen = moto_server.stats()["seen"]
    assert not [a for a in seen if a.startswith(("Create", "Import", "Authorize", "Terminate", "Delete"))], seen
    assert seen.get("RunInstances", 0) <= 1  # the DryRun=True permission check only
    _nothing_left(moto_server.client(), "dry1")
    plan = "\n".join(r.data["provider_plan"])
    for want in ("create t3.xlarge", "spot (persistent", "only tcp/22 from 203.0.113.7/32 (your public IP)",
                 "encrypted", "IMDSv2", "spot price history", "RunInstances would be allowed"):
        assert want in plan, want
    assert not (u.root / "state").exists()


def test_list_and_down_from_a_machine_that_does_not_know_the_workstation(make_user: Any, moto_server: Any) -> None:
    a, b = make_user("machine-a"), make_user("machine-b")
    assert a.mlops(*PROVISION, "shared1").code == 0
    listed = b.mlops("--json", "list", "--region", "eu-west-1")
    assert listed.code == 0, listed.stdout + listed.stderr
    rows = {w["name"]: w for w in listed.data["workstations"]}
    assert rows["shared1"]["phase"] == "not on this machine" and rows["shared1"]["state"] == "running"
    assert b.mlops("--json", "down", "shared1", "--yes").code == 3  # unknown here without --region
    d = b.mlops("--json", "down", "shared1", "--yes", "--region", "eu-west-1")
    assert d.code == 0, d.stdout + d.stderr
    _nothing_left(moto_server.client(), "shared1")
