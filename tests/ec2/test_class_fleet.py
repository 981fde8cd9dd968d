"""``class up|status|bundle|down`` against moto in-process (STAND-IN AWS), calling OUR fleet
code; the box side of each student is the recorded ready answer (TEST-ONLY seam
MLOPS_ENV_TEST_CLASS_BOX=ready: every AWS call of `up ec2` runs, no SSH)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_env.classroom import fleet
from mlops_env.classroom.roster import load
from mlops_env.errors import UsageError
from mlops_env.paths import get_paths
from mlops_env.providers.ec2 import TAG_CLASS
from mlops_env.ssh.keys import generate_host_keypair
from mlops_env.state import Store

_KEYS: dict[str, str] = {}


def key_of(name: str) -> str:
    """A student's public key, the same for every roster of this test run (a new key is a change)."""
    if name not in _KEYS:
        _KEYS[name] = generate_host_keypair(name).public_line
    return _KEYS[name]


def roster_text(names: list[str], cls: str = "c26", extra: str = "") -> str:
    body = "".join(f"  - name: {n}\n    public_key: {key_of(n)}\n" for n in names)
    return (f"class: {cls}\nregion: eu-west-1\ninstance_type: t3.large\nallow_cidr: 198.51.100.0/24\n"
            f"max_hours: 8\n{extra}students:\n{body}")


@pytest.fixture
def seam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fleet.ENV_TEST_BOX, "ready")


def run_up(path: Path, *, yes: bool = True, asked: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    def confirm(q: str) -> bool:
        if asked is not None:
            asked.append(q)
        return yes

    opts = fleet.UpOptions(flags={"python_dist": "miniforge", "smoke_test": "off"}, **kw)
    return fleet.up(load(path), get_paths(), opts, fleet.Callbacks(confirm=confirm))


def class_resources(ec2: Any, cls: str) -> dict[str, int]:
    f = [{"Name": f"tag:{TAG_CLASS}", "Values": [cls]}]
    insts = [i for r in ec2.describe_instances(Filters=f)["Reservations"] for i in r["Instances"]
             if i["State"]["Name"] != "terminated"]
    return {"instances": len(insts), "groups": len(ec2.describe_security_groups(Filters=f)["SecurityGroups"]),
            "key_pairs": len(ec2.describe_key_pairs(Filters=f)["KeyPairs"]),
            "volumes": len(ec2.describe_volumes(Filters=f)["Volumes"])}


def test_class_up_converges_edit_and_down(moto_ec2: Any, seam: None, tmp_path: Path) -> None:
    p = tmp_path / "roster.yaml"
    p.write_text(roster_text(["alice", "bob", "carol"]))
    # dry run: the plan and its costs, nothing made
    d = run_up(p, dry_run=True)
    assert d["dry_run"] and d["create"] == ["alice", "bob", "carol"]
    assert any("$" in line and "/hour" in line for line in d["plan"]), d["plan"]
    assert d["vcpus_needed"] == 6  # t3.large: 2 vCPUs x 3
    assert class_resources(moto_ec2, "c26")["instances"] == 0 and Store(get_paths()).all() == []

    d = run_up(p)
    assert d["failed"] == 0, d["students"]
    assert [s["status"] for s in d["students"]] == ["created"] * 3
    got = class_resources(moto_ec2, "c26")
    assert got == {"instances": 3, "groups": 3, "key_pairs": 3, "volumes": 3}, got
    recs = fleet.class_records(get_paths(), "c26")
    assert sorted(r.name for r in recs) == ["c26-alice", "c26-bob", "c26-carol"]
    assert all(r.phase == "ready" for r in recs)

    # again: nothing to do, nothing asked, nothing made
    asked: list[str] = []
    d = run_up(p, asked=asked)
    assert [s["status"] for s in d["students"]] == ["unchanged"] * 3 and asked == []
    assert class_resources(moto_ec2, "c26")["instances"] == 3

    # roster edit: bob leaves, dave joins; a "no" to the removal question changes nothing
    p.write_text(roster_text(["alice", "carol", "dave"]))
    with pytest.raises(UsageError) as ei:
        run_up(p, yes=False)
    assert ei.value.code == "class-remove-unconfirmed"
    assert class_resources(moto_ec2, "c26")["instances"] == 3
    d = run_up(p)
    st = {s["student"]: s["status"] for s in d["students"]}
    assert st == {"alice": "unchanged", "carol": "unchanged", "dave": "created", "bob": "removed"}, st
    assert class_resources(moto_ec2, "c26")["instances"] == 3
    assert Store(get_paths()).find("c26-bob") is None

    # roster edits that change the boxes update the running ones (`up` again), unasked:
    # instructor access for all; one student's new key; an option (idle_stop) for all
    asked.clear()
    p.write_text(roster_text(["alice", "carol", "dave"], extra="instructor_access: false\n"))
    d = run_up(p, asked=asked, dry_run=True)
    assert (d["update"], d["keep"]) == (["alice", "carol", "dave"], []), d
    assert "  update: alice (keys or instructor access), carol (keys or instructor access), dave (keys or " \
        "instructor access)" in d["plan"], d["plan"]
    d = run_up(p, asked=asked)
    assert [s["status"] for s in d["students"]] == ["updated"] * 3 and asked == [], d["students"]
    assert [s["status"] for s in run_up(p)["students"]] == ["unchanged"] * 3
    _KEYS["carol"] = generate_host_keypair("carol-new").public_line
    p.write_text(roster_text(["alice", "carol", "dave"], extra="instructor_access: false\n"))
    assert {s["student"]: s["status"] for s in run_up(p)["students"]} == {
        "alice": "unchanged", "carol": "updated", "dave": "unchanged"}
    p.write_text(roster_text(["alice", "carol", "dave"], extra="instructor_access: false\nidle_stop: 45m\n"))
    d = run_up(p)
    assert [s["status"] for s in d["students"]] == ["updated"] * 3
    assert "  update: alice (idle_stop), carol (idle_stop), dave (idle_stop)" in d["plan"], d["plan"]
    assert [r.options["idle_stop"] for r in fleet.class_records(get_paths(), "c26")] == ["45m"] * 3
    assert class_resources(moto_ec2, "c26")["instances"] == 3

    # status: one row per student
    s = fleet.status(load(p), get_paths())
    assert [r["student"] for r in s["students"]] == ["alice", "carol", "dave"]
    assert all(r["state"] == "running" and r["ip"] for r in s["students"])

    # stop / start the whole class
    d = fleet.lifecycle(load(p), get_paths(), "stop", fleet.Callbacks())
    assert d["failed"] == 0 and len(d["students"]) == 3
    assert {r["state"] for r in fleet.status(load(p), get_paths())["students"]} == {"stopped"}
    # a change for a stopped class waits: not started for it, said in the plan
    p.write_text(roster_text(["alice", "carol", "dave"], extra="instructor_access: true\nidle_stop: 45m\n"))
    d = run_up(p)
    assert [s["status"] for s in d["students"]] == ["unchanged"] * 3 and d["update"] == []
    assert any("3 stopped workstation(s) have roster changes" in line for line in d["plan"]), d["plan"]
    assert {r["state"] for r in fleet.status(load(p), get_paths())["students"]} == {"stopped"}
    d = fleet.lifecycle(load(p), get_paths(), "start", fleet.Callbacks())
    assert d["failed"] == 0
    assert [s["status"] for s in run_up(p)["students"]] == ["updated"] * 3
    s2 = fleet.status(load(p), get_paths())
    assert {r["state"] for r in s2["students"]} == {"running"}

    # bundle: per student, 0600, pinned host key, no private key
    from mlops_env.classroom.bundle import write_bundles

    out = tmp_path / "bundles"
    b = write_bundles(load(p), get_paths(), out)
    assert [r["skipped"] for r in b["students"]] == [None] * 3
    for f in [*out.glob("*.yaml"), *out.glob("*/*")]:
        assert f.stat().st_mode & 0o777 == 0o600, f
        assert "PRIVATE KEY" not in f.read_text()
    assert (out / "alice" / "known_hosts").read_text().startswith("mlops-env-c26-alice ssh-ed25519 ")

    # down: nothing tagged for the class is left
    d = fleet.down(load(p), get_paths(), fleet.Callbacks())
    assert d["verified"] and d["leftovers"] == [] and d["failed"] == 0
    assert class_resources(moto_ec2, "c26") == {"instances": 0, "groups": 0, "key_pairs": 0, "volumes": 0}
    assert fleet.class_records(get_paths(), "c26") == []


def test_name_clash_with_a_workstation_outside_the_class(moto_ec2: Any, seam: None, tmp_path: Path) -> None:
    from mlops_env.state import Record

    Store(get_paths()).save(Record(name="c26-alice", provider="docker", alias="mlops-c26-alice"))
    p = tmp_path / "roster.yaml"
    p.write_text(roster_text(["alice"]))
    with pytest.raises(UsageError) as ei:
        run_up(p)
    assert ei.value.code == "class-name-clash" and f"{p}:" in ei.value.message
    assert class_resources(moto_ec2, "c26")["instances"] == 0


def test_name_clash_with_an_instance_outside_the_class(moto_ec2: Any, seam: None, tmp_path: Path) -> None:
    image = moto_ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    moto_ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.large", TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "mlops-env:name", "Value": "c26-bob"},
                                              {"Key": "managed-by", "Value": "mlops-env"}]}])
    p = tmp_path / "roster.yaml"
    p.write_text(roster_text(["alice", "bob"]))
    with pytest.raises(UsageError) as ei:
        run_up(p)
    assert ei.value.code == "class-name-clash" and "c26-bob" in ei.value.message
    assert class_resources(moto_ec2, "c26")["instances"] == 0 and Store(get_paths()).all() == []


def test_status_reads_each_running_students_idle_agent(moto_ec2: Any, seam: None, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`class status` asks each running box's idle agent (steps.idlestop.read_agent: one SSH
    command, proven against real boxes in tests/e2e) side by side; an unreachable one says why."""
    from mlops_env.steps import idlestop

    p = tmp_path / "roster.yaml"
    p.write_text(roster_text(["alice", "bob"], cls="c27"))
    assert run_up(p)["failed"] == 0
    asked: list[str] = []

    def fake_read(paths: Any, rec: Any, live: dict[str, Any], timeout: float = 8) -> dict[str, Any]:
        asked.append(rec.name)
        assert live["state"] == "running"
        return {"idle_for_s": 600} if rec.name.endswith("alice") else {"error": "connection refused"}

    monkeypatch.setattr(idlestop, "read_agent", fake_read)
    rows = {r["student"]: r for r in fleet.status(load(p), get_paths())["students"]}
    assert sorted(asked) == ["c27-alice", "c27-bob"]
    assert (rows["alice"]["idle_for"], rows["alice"]["idle_detail"]) == (600, None)
    assert (rows["bob"]["idle_for"], rows["bob"]["idle_detail"]) == (None, "connection refused")
