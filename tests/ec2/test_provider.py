"""The EC2 provider against moto in-process (STAND-IN AWS, see conftest.py): these tests call
OUR code (``Ec2Provider`` and ``pipeline.up``) and then inspect what it left in the account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import seed
from ec2help import Harness, closed_port, options, tagged, tags, user_data_host_key

from mlops_env.errors import MlopsError, NotFoundError, PrereqError, UsageError
from mlops_env.providers.ec2 import session as aws_session
from mlops_env.ssh import knownhosts
from mlops_env.ssh.keys import split_public_key
from mlops_env.state import Store


def _one_instance(ec2: Any, name: str = "ws") -> dict[str, Any]:
    found = tagged(ec2, name)["instances"]
    assert len(found) == 1, found
    return found[0]


def test_first_up_creates_tagged_hardened_resources(moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _record_run_instances(monkeypatch)
    h = Harness()
    prov = h.up("ws")
    assert prov.action == "created" and prov.ready_timeout
    got = tagged(moto_ec2, "ws")
    inst = _one_instance(moto_ec2)

    # Tags at creation on the instance, its volume, the SG and the key pair...
    for kind in ("instances", "volumes", "security_groups", "key_pairs"):
        assert len(got[kind]) == 1, kind
        t = tags(got[kind][0])
        assert (t["Name"], t["mlops-env:name"], t["managed-by"]) == ("mlops-env-ws", "ws", "mlops-env"), kind
    # ...and the network interface: moto ignores that TagSpecification, so check the request.
    specs = {s["ResourceType"]: {t["Key"]: t["Value"] for t in s["Tags"]} for s in sent[0]["TagSpecifications"]}
    assert specs["network-interface"]["mlops-env:name"] == "ws" and specs["volume"]["managed-by"] == "mlops-env"

    # IMDSv2 required, hop limit 1; shutdown from inside = stop.
    md = inst["MetadataOptions"]
    assert (md["HttpTokens"], md["HttpEndpoint"], md["HttpPutResponseHopLimit"]) == ("required", "enabled", 1)
    attr = moto_ec2.describe_instance_attribute(InstanceId=inst["InstanceId"],
                                                Attribute="instanceInitiatedShutdownBehavior")
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"

    # Encrypted gp3 root volume of the default size, deleted on termination.
    vol = got["volumes"][0]
    assert (vol["Encrypted"], vol["VolumeType"], vol["Size"]) == (True, "gp3", 30)
    assert inst["BlockDeviceMappings"][0]["Ebs"]["DeleteOnTermination"] is True
    assert vol["Attachments"][0]["InstanceId"] == inst["InstanceId"]

    # The security group has exactly one ingress rule: tcp/22 from the given /32.
    sg = got["security_groups"][0]
    assert sg["GroupName"] == "mlops-env-ws"
    rules = [r for r in moto_ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [sg["GroupId"]]}])["SecurityGroupRules"] if not r["IsEgress"]]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], r["CidrIpv4"]) for r in rules] == [
        ("tcp", 22, 22, "203.0.113.7/32")]
    eni = moto_ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id",
                                                         "Values": [inst["InstanceId"]]}])["NetworkInterfaces"]
    assert [g["GroupId"] for e in eni for g in e["Groups"]] == [sg["GroupId"]]

    # The key pair is mlops-env's client key; the image is Canonical's 24.04 amd64.
    kp = got["key_pairs"][0]
    assert kp["KeyName"] == "mlops-env-ws" and kp["KeyType"] == "ed25519"
    assert inst["KeyName"] == "mlops-env-ws" and inst["ImageId"] == seed.NOBLE_AMD64
    assert inst["InstanceType"] == "t3.xlarge"

    # The user data carries the host key; its public half is what the pipeline will pin, it is
    # in the instance's tag, and the private half is nowhere in mlops-env's state.
    public, private = user_data_host_key(moto_ec2, inst["InstanceId"])
    assert "BEGIN OPENSSH PRIVATE KEY" in private
    assert split_public_key(public) == split_public_key(prov.host_key or "")
    assert split_public_key(tags(inst)["mlops-env:host-key"]) == split_public_key(public)
    state_text = (h.paths.state_dir / "ws.json").read_text()
    assert "PRIVATE KEY" not in state_text and private.splitlines()[1] not in state_text

    # How to reach it: the public IP (through the test address map), user ubuntu, our key.
    assert prov.endpoint.user == "ubuntu" and prov.endpoint.host_key_alias == "mlops-env-ws"
    assert prov.provider_data["public_ip"] == inst["PublicIpAddress"]


def _record_run_instances(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    real = aws_session.Aws.call_with_retry

    def wrapped(self: Any, service: str, op: str, **kw: Any) -> Any:
        if op == "run_instances":
            sent.append(kw)
        return real(self, service, op, **kw)

    monkeypatch.setattr(aws_session.Aws, "call_with_retry", wrapped)
    return sent


def test_second_up_creates_nothing(moto_ec2: Any) -> None:
    h = Harness()
    first = h.up("ws")
    before = {k: [json.dumps(x, default=str, sort_keys=True) for x in v] for k, v in tagged(moto_ec2, "ws").items()}
    again = h.up("ws")
    after = {k: [json.dumps(x, default=str, sort_keys=True) for x in v] for k, v in tagged(moto_ec2, "ws").items()}
    assert again.action == "unchanged" and again.ready_timeout is None
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
    assert again.host_key == first.host_key
    assert again.provider_data["instance_id"] == first.provider_data["instance_id"]
    assert "launch" not in Store(h.paths).load("ws").provider_data


def test_stopped_instance_is_started_and_gets_its_new_address(moto_ec2: Any) -> None:
    h = Harness()
    first = h.up("ws")
    iid = first.provider_data["instance_id"]
    moto_ec2.stop_instances(InstanceIds=[iid])
    assert _one_instance(moto_ec2)["State"]["Name"] == "stopped"
    again = h.up("ws")
    inst = _one_instance(moto_ec2)
    assert again.action == "started" and inst["State"]["Name"] == "running"
    assert again.provider_data["instance_id"] == iid
    assert again.provider_data["public_ip"] == inst["PublicIpAddress"] != first.provider_data["public_ip"]
    assert again.host_key == first.host_key  # same disk, same host key: the pin stays valid


def test_down_leaves_zero_tagged_resources_and_is_idempotent(moto_ec2: Any) -> None:
    h = Harness()
    h.up("ws")
    h.up("other")  # another workstation must survive
    p = h.provider()
    removed = p.destroy(Store(h.paths).load("ws"), h.progress.append)
    assert any(r.startswith("instance ") for r in removed)
    assert removed[-1] == "verified: nothing tagged mlops-env:name=ws remains in eu-west-1"
    assert all(v == [] for v in tagged(moto_ec2, "ws").values()), tagged(moto_ec2, "ws")
    assert len(tagged(moto_ec2, "other")["instances"]) == 1
    again = p.destroy(Store(h.paths).load("ws"), h.progress.append)
    assert again == ["verified: nothing tagged mlops-env:name=ws remains in eu-west-1"]


def test_more_than_one_tagged_instance_is_refused(moto_ec2: Any) -> None:
    h = Harness()
    first = h.up("ws")
    extra = moto_ec2.run_instances(ImageId=seed.NOBLE_AMD64, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                   TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                       {"Key": "mlops-env:name", "Value": "ws"},
                                       {"Key": "managed-by", "Value": "mlops-env"}]}])["Instances"][0]
    with pytest.raises(UsageError) as e:
        h.up("ws")
    assert e.value.code == "ambiguous"
    assert first.provider_data["instance_id"] in e.value.message and extra["InstanceId"] in e.value.message
    assert "terminate-instances" in (e.value.hint or "") and "mlops-env down ws" in (e.value.hint or "")
    assert len(tagged(moto_ec2, "ws")["instances"]) == 2  # nothing made, nothing removed


def test_no_default_vpc_is_a_clear_error_naming_subnet(moto_ec2: Any) -> None:
    for s in moto_ec2.describe_subnets()["Subnets"]:
        moto_ec2.delete_subnet(SubnetId=s["SubnetId"])
    for v in moto_ec2.describe_vpcs()["Vpcs"]:
        moto_ec2.delete_vpc(VpcId=v["VpcId"])
    with pytest.raises(UsageError) as e:
        Harness().up("ws")
    assert e.value.code == "no-default-vpc" and "--subnet" in (e.value.hint or "")
    assert all(v == [] for v in tagged(moto_ec2, "ws").values())  # refused before making anything


def test_explicit_subnet_is_used(moto_ec2: Any) -> None:
    sub = sorted(moto_ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])[-1]
    prov = Harness().up("ws", subnet=sub["SubnetId"])
    inst = _one_instance(moto_ec2)
    assert inst["SubnetId"] == sub["SubnetId"] and prov.provider_data["zone"] == sub["AvailabilityZone"]


@pytest.mark.parametrize(("flags", "image"), [
    ({}, seed.NOBLE_AMD64),
    ({"instance_type": "m7g.xlarge"}, seed.NOBLE_ARM64),
    ({"instance_type": "t4g.xlarge", "ami": "ubuntu-22.04"}, seed.JAMMY_ARM64),
    ({"ami": "ubuntu-22.04"}, seed.JAMMY_AMD64),
    ({"ami": seed.OTHER_X86}, seed.OTHER_X86),
])
def test_ami_matches_the_instance_type_architecture(moto_ec2: Any, flags: dict[str, str], image: str) -> None:
    Harness().up("ws", **flags)
    inst = _one_instance(moto_ec2)
    assert inst["ImageId"] == image
    assert inst["Architecture"] == ("arm64" if flags.get("instance_type", "t3").startswith(("m7g", "t4g")) else "x86_64")


def test_ami_falls_back_to_canonicals_newest_image_without_ssm(moto_ec2: Any) -> None:
    from moto.ssm.models import ssm_backends

    ssm_backends[seed.ACCOUNT]["eu-west-1"]._parameters.clear()
    prov = Harness().up("ws")
    assert _one_instance(moto_ec2)["ImageId"] == seed.NOBLE_AMD64  # the newer of the two 24.04 amd64
    assert "newest Canonical image" in prov.provider_data["ami"]["source"]


@pytest.mark.parametrize(("flags", "cls", "code"), [
    ({"ami": "ami-0123456789abcdef0"}, NotFoundError, "ami-not-found"),
    ({"ami": seed.OTHER_X86, "instance_type": "m7g.xlarge"}, UsageError, "ami-arch-mismatch"),
    ({"instance_type": "t3.xlargee"}, UsageError, "unknown-instance-type"),
    ({"instance_type": "c8gb.large"}, UsageError, "instance-type-not-offered"),
    ({"subnet": "subnet-0123456789abcdef0"}, NotFoundError, "subnet-not-found"),
])
def test_bad_input_is_refused_before_anything_is_made(moto_ec2: Any, flags: dict[str, str],
                                                      cls: type[MlopsError], code: str) -> None:
    with pytest.raises(cls) as e:
        Harness().up("ws", **flags)
    assert e.value.code == code, e.value.message
    assert e.value.hint
    assert all(v == [] for v in tagged(moto_ec2, "ws").values())


def test_unknown_region_suggests_the_right_one(aws_env: Path) -> None:
    from mlops_env.providers.ec2.session import Aws

    with pytest.raises(UsageError) as e:
        Aws("eu-wset-1", None)
    assert e.value.code == "aws-unknown-region" and "eu-west-1" in (e.value.hint or "")


def test_no_credentials_is_one_clear_line(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(PrereqError) as e:
        Harness().up("ws")
    assert e.value.code == "aws-no-credentials" and "aws configure" in (e.value.hint or "")


def test_ssh_rule_follows_the_allowed_cidr(moto_ec2: Any) -> None:
    h = Harness()
    h.up("ws")
    h.up("ws", allow_cidr="198.51.100.0/24")
    sg = tagged(moto_ec2, "ws")["security_groups"][0]
    rules = [r for r in moto_ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [sg["GroupId"]]}])["SecurityGroupRules"] if not r["IsEgress"]]
    assert [(r["FromPort"], r["CidrIpv4"]) for r in rules] == [(22, "198.51.100.0/24")]


def test_open_world_only_when_asked_and_with_a_warning(moto_ec2: Any) -> None:
    h = Harness()
    h.up("ws", allow_cidr="0.0.0.0/0")
    assert any("whole internet" in w for w in h.warnings)


def test_default_cidr_is_the_callers_ip_from_the_lookup_url(moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"203.0.113.42\n")

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MLOPS_ENV_IP_LOOKUP_URL", f"http://127.0.0.1:{srv.server_address[1]}/")
        prov = Harness().up("ws", allow_cidr=None)
    finally:
        srv.shutdown()
    assert (prov.provider_data["allow_cidr"], prov.provider_data["allow_cidr_auto"]) == ("203.0.113.42/32", True)


def test_failed_ip_lookup_names_allow_cidr_and_makes_nothing(moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ENV_IP_LOOKUP_URL", f"http://127.0.0.1:{closed_port()}/")
    with pytest.raises(PrereqError) as e:
        Harness().up("ws", allow_cidr=None)
    assert e.value.code == "caller-ip-unknown" and "--allow-cidr" in (e.value.hint or "")
    assert all(v == [] for v in tagged(moto_ec2, "ws").values())


def _interrupt_after_run_instances(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The first RunInstances goes through, then the run is killed (KeyboardInterrupt) before
    mlops-env sees the answer: the worst moment."""
    calls: list[dict[str, Any]] = []
    real = aws_session.Aws.call_with_retry

    def wrapped(self: Any, service: str, op: str, **kw: Any) -> Any:
        result = real(self, service, op, **kw)
        if op == "run_instances":
            calls.append(kw)
            if len(calls) == 1:
                raise KeyboardInterrupt
        return result

    monkeypatch.setattr(aws_session.Aws, "call_with_retry", wrapped)
    return calls


def test_a_run_killed_right_after_run_instances_is_adopted(moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _interrupt_after_run_instances(monkeypatch)
    h = Harness()
    with pytest.raises(KeyboardInterrupt):
        h.up("ws")
    saved = Store(h.paths).load("ws").provider_data
    assert saved.get("host_key") and saved.get("launch") and not saved.get("instance_id")
    prov = h.up("ws")
    assert len(calls) == 1  # adopted: no second launch
    inst = _one_instance(moto_ec2)
    assert prov.action == "created" and "adopted" in prov.detail  # created by this workstation's run
    public, _ = user_data_host_key(moto_ec2, inst["InstanceId"])
    assert split_public_key(prov.host_key or "") == split_public_key(public)


def test_lost_record_recovers_the_host_key_from_the_instance(moto_ec2: Any) -> None:
    h = Harness()
    first = h.up("ws")
    Store(h.paths).delete("ws")  # another machine, or a deleted state dir
    again = h.up("ws")
    assert again.action == "unchanged" and again.host_key == first.host_key


def test_run_instances_is_retried_on_throttling_with_the_same_client_token(
        moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    tokens: list[str] = []
    real = aws_session.Aws.client

    def client(self: Any, service: str, **kw: Any) -> Any:
        c = real(self, service, **kw)
        if service == "ec2" and kw.get("attempts") == 1 and not getattr(c, "_fault", False):
            c._fault = True
            orig = c.run_instances

            def run_instances(**p: Any) -> Any:
                tokens.append(p["ClientToken"])
                if len(tokens) <= 2:
                    raise ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "Request limit exceeded."}},
                                      "RunInstances")
                return orig(**p)

            c.run_instances = run_instances
        return c

    monkeypatch.setattr(aws_session.Aws, "client", client)
    monkeypatch.setattr(aws_session.time, "sleep", lambda s: None)
    Harness().up("ws")
    assert len(tokens) == 3 and len(set(tokens)) == 1 and len(tokens[0]) <= 64
    assert len(tagged(moto_ec2, "ws")["instances"]) == 1


def _capacity_errors(monkeypatch: pytest.MonkeyPatch, refuse: Any) -> list[tuple[str, str]]:
    """RunInstances refused with InsufficientInstanceCapacity when ``refuse(type, subnet)``."""
    from botocore.exceptions import ClientError

    seen: list[tuple[str, str]] = []
    real = aws_session.Aws.call_with_retry

    def wrapped(self: Any, service: str, op: str, **kw: Any) -> Any:
        if op == "run_instances":
            key = (kw["InstanceType"], kw["NetworkInterfaces"][0]["SubnetId"])
            seen.append(key)
            if refuse(*key):
                raise self.translate(ClientError({"Error": {"Code": "InsufficientInstanceCapacity", "Message":
                                                            "We currently do not have sufficient capacity."}},
                                                 "RunInstances"), service, op)
        return real(self, service, op, **kw)

    monkeypatch.setattr(aws_session.Aws, "call_with_retry", wrapped)
    return seen


def test_capacity_error_in_one_zone_moves_to_the_next(moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    subs = sorted(moto_ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])
    first = subs[0]["SubnetId"]
    seen = _capacity_errors(monkeypatch, lambda t, s: s == first)
    h = Harness()
    prov = h.up("ws")
    assert [s for _, s in seen] == [first, subs[1]["SubnetId"]]
    assert _one_instance(moto_ec2)["Placement"]["AvailabilityZone"] == subs[1]["AvailabilityZone"]
    assert prov.provider_data["zone"] == subs[1]["AvailabilityZone"]
    assert any("trying the next zone" in m for m in h.progress)


def test_no_capacity_anywhere_asks_for_a_same_size_type(moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _capacity_errors(monkeypatch, lambda t, s: t == "t3.xlarge")
    h = Harness(answer=False)
    with pytest.raises(MlopsError) as e:
        h.up("ws")
    assert e.value.code == "aws-capacity" and "--instance-type t3a.xlarge" in (e.value.hint or "")
    assert h.questions and "t3a.xlarge" in h.questions[0] and "4 vCPU, 16 GiB" in h.questions[0]
    assert tagged(moto_ec2, "ws")["instances"] == []
    h.answer = True  # --yes, or "y" on the terminal
    prov = h.up("ws")
    assert _one_instance(moto_ec2)["InstanceType"] == "t3a.xlarge" == prov.provider_data["instance_type"]
    assert any("t3a.xlarge instead" in w for w in h.warnings)


def test_vcpu_limit_is_clear_and_down_cleans_the_half_made_workstation(
        moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    real = aws_session.Aws.call_with_retry

    def wrapped(self: Any, service: str, op: str, **kw: Any) -> Any:
        if op == "run_instances":
            raise self.translate(ClientError({"Error": {"Code": "VcpuLimitExceeded", "Message":
                                                        "You have requested more vCPU capacity than your current "
                                                        "vCPU limit of 0 allows"}}, "RunInstances"), service, op)
        return real(self, service, op, **kw)

    monkeypatch.setattr(aws_session.Aws, "call_with_retry", wrapped)
    h = Harness()
    with pytest.raises(PrereqError) as e:
        h.up("ws")
    assert e.value.code == "aws-vcpu-limit" and "L-1216C47A" in (e.value.hint or "")
    left = tagged(moto_ec2, "ws")
    assert len(left["security_groups"]) == 1 and len(left["key_pairs"]) == 1  # tagged, so findable
    h.provider().destroy(Store(h.paths).load("ws"), h.progress.append)
    assert all(v == [] for v in tagged(moto_ec2, "ws").values())


def test_spot_launch_is_persistent_and_stops_on_interruption(moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _record_run_instances(monkeypatch)
    prov = Harness().up("ws", spot=True)
    assert sent[0]["InstanceMarketOptions"] == {"MarketType": "spot", "SpotOptions": {
        "SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"}}
    assert {"spot-instances-request", "instance", "volume"} <= {s["ResourceType"] for s in sent[0]["TagSpecifications"]}
    cost = prov.provider_data["cost"]
    assert cost["spot"] is True and "spot price history" in cost["hourly_source"]


def test_stop_start_status_and_new_endpoint(moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_ENV_TEST_SSH_ADDRESS_MAP")  # the real address (no connection is made)
    h = Harness()
    first = h.up("ws")
    p = h.provider()
    rec = Store(h.paths).load("ws")
    msg = p.stop(rec, h.progress.append)
    assert msg.startswith("stopped i-") and "30 GB disk is kept ($2.64/month)" in msg
    assert p.state(rec)["state"] == "stopped"
    assert p.stop(rec, h.progress.append) == "already stopped"
    assert p.endpoint(rec) is None
    msg = p.start(rec, h.progress.append)
    assert msg.startswith("started ")
    ep = p.endpoint(rec)
    assert ep is not None and ep.host == rec.provider_data["public_ip"] != first.endpoint.host
    live = p.state(rec)
    assert live["state"] == "running" and live["instance_type"] == "t3.xlarge" and live["public_ip"] == ep.host
    assert "uptime_seconds" in live and any(line.startswith("cost ") for line in live["lines"])


def test_list_finds_workstations_this_machine_does_not_know_and_down_can_remove_them(
        moto_ec2: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Harness().up("ws")
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "other-machine"))
    other = Harness()
    p = other.provider()
    assert p.discover([], {}) == []  # no ec2 records, no --region: no AWS call at all
    rows = p.discover([], {"region": "eu-west-1"})
    assert [(r["name"], r["state"], r["known"]) for r in rows] == [("ws", "running", False)]
    rec = p.adopt("ws", {"region": "eu-west-1"})
    assert rec is not None and p.adopt("nope", {"region": "eu-west-1"}) is None
    p.destroy(rec, other.progress.append)
    assert all(v == [] for v in tagged(moto_ec2, "ws").values())


def test_region_is_part_of_the_workstation(moto_ec2: Any) -> None:
    h = Harness()
    h.up("ws")
    with pytest.raises(UsageError) as e:
        h.up("ws", region="us-east-1")
    assert e.value.code == "region-mismatch" and "--region eu-west-1" in (e.value.hint or "")


def test_pipeline_provision_only_pins_the_user_data_key_and_writes_ssh_config(moto_ec2: Any) -> None:
    from mlops_env.paths import get_paths
    from mlops_env.pipeline import Events, UpRequest, up

    paths = get_paths()
    data = up(UpRequest(name="ws", provider="ec2", options=options(), provision_only=True), paths, Events())
    assert data["provision_only"] and [s["id"] for s in data["steps"]] == ["provision", "ssh-config"]
    assert data["phase"] == "provisioned" and data["cost"]["hourly_usd"] > 0
    inst = _one_instance(moto_ec2)
    public, _ = user_data_host_key(moto_ec2, inst["InstanceId"])
    pinned = knownhosts.lookup(paths, "mlops-env-ws")
    assert pinned == [" ".join(split_public_key(public))]
    cfg = paths.ssh_config.read_text()
    assert "Host mlops-ws" in cfg and "HostKeyAlias mlops-env-ws" in cfg and "User ubuntu" in cfg
    again = up(UpRequest(name="ws", provider="ec2", options=options(), provision_only=True), paths, Events())
    assert {s["status"] for s in again["steps"]} == {"unchanged"}


def test_dry_run_changes_nothing_and_prints_the_plan(moto_ec2: Any) -> None:
    from mlops_env.paths import get_paths
    from mlops_env.pipeline import Events, UpRequest, up

    mutating: list[str] = []
    real = aws_session.Aws.call

    def watch(self: Any, service: str, op: str, **kw: Any) -> Any:
        if op.split("_")[0] in ("run", "create", "import", "authorize", "revoke", "delete", "terminate",
                                "start", "stop") and not kw.get("DryRun"):
            mutating.append(op)
        return real(self, service, op, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aws_session.Aws, "call", watch)
        data = up(UpRequest(name="ws", provider="ec2", options=options(), dry_run=True), get_paths(), Events())
    plan = "\n".join(data["provider_plan"])
    assert mutating == []
    assert all(v == [] for v in tagged(moto_ec2, "ws").values())
    for want in ("create t3.xlarge (4 vCPU, 16 GiB, x86_64)", seed.NOBLE_AMD64, "30 GB gp3, encrypted",
                 "only tcp/22 from 203.0.113.7/32", "$0.1824/hour", "fallback table of", "$2.64/month",
                 "RunInstances would be allowed"):
        assert want in plan, want
    assert not get_paths().state_dir.exists()


def test_a_changed_host_key_tag_is_refused_not_trusted(moto_ec2: Any) -> None:
    """Issue 11.2: anyone allowed ec2:CreateTags could point the tag at their own key. The key
    this machine pinned wins; a disagreeing tag is a changed host key (exit 6), both
    fingerprints named. Nothing is re-pinned."""
    from mlops_env.errors import HostKeyError
    from mlops_env.ssh.keys import fingerprint_of, generate_host_keypair

    h = Harness()
    first = h.up("ws")
    knownhosts.pin(h.paths, "mlops-env-ws", first.host_key or "")
    inst = _one_instance(moto_ec2)
    evil = generate_host_keypair(comment="attacker").public_line
    moto_ec2.create_tags(Resources=[inst["InstanceId"]], Tags=[{"Key": "mlops-env:host-key", "Value": evil}])
    with pytest.raises(HostKeyError) as e:
        h.up("ws")
    assert e.value.code == "host-key-changed" and e.value.exit_code == 6
    assert fingerprint_of(evil) in e.value.message and fingerprint_of(first.host_key or "") in e.value.message
    assert "CreateTags" in (e.value.hint or "")
    assert knownhosts.lookup(h.paths, "mlops-env-ws") == [first.host_key]
    assert Store(h.paths).load("ws").provider_data["host_key"] == first.host_key
    # The pin in known_hosts alone (a lost record) is enough to refuse the tag, too.
    Store(h.paths).delete("ws")
    with pytest.raises(HostKeyError):
        h.up("ws")
    # Nothing pinned on this machine (another machine): the tag fills the key in, as before.
    knownhosts.unpin(h.paths, "mlops-env-ws")
    assert split_public_key(h.up("ws").host_key or "") == split_public_key(evil)


def test_down_of_a_spot_workstation_cancels_its_request_and_checks_snapshots_too(moto_ec2: Any) -> None:
    """Issue 11.14. moto's RunInstances makes no spot request (AWS does, tagged from the
    TagSpecifications mlops-env sends): the test makes the one AWS would. A snapshot with the
    disk's tags is what a backup policy copying tags (DLM CopyTags) leaves."""
    h = Harness()
    h.up("ws", spot=True)
    inst = _one_instance(moto_ec2)
    ours = [{"Key": "mlops-env:name", "Value": "ws"}, {"Key": "managed-by", "Value": "mlops-env"}]
    req = moto_ec2.request_spot_instances(
        InstanceCount=1, Type="persistent", InstanceInterruptionBehavior="stop",
        LaunchSpecification={"ImageId": seed.NOBLE_AMD64, "InstanceType": "t3.xlarge"},
        TagSpecifications=[{"ResourceType": "spot-instances-request", "Tags": ours}])["SpotInstanceRequests"][0]
    # moto launches an (untagged) instance for the request; AWS's is `inst` itself.
    moto_ec2.terminate_instances(InstanceIds=[req["InstanceId"]])
    vol = tagged(moto_ec2, "ws")["volumes"][0]
    snap = moto_ec2.create_snapshot(VolumeId=vol["VolumeId"],
                                    TagSpecifications=[{"ResourceType": "snapshot", "Tags": ours}])
    p = h.provider()
    rec = Store(h.paths).load("ws")
    from mlops_env.providers.ec2.resources import Ec2
    from mlops_env.providers.ec2.session import Aws

    left = Ec2(Aws("eu-west-1", None), "ws").leftovers()
    assert f"spot request {req['SpotInstanceRequestId']}" in left and f"snapshot {snap['SnapshotId']}" in left
    assert any("spot request" in line for line in p.describe_destroy(rec))
    removed = p.destroy(rec, h.progress.append)
    assert f"spot request {req['SpotInstanceRequestId']}" in removed and f"snapshot {snap['SnapshotId']}" in removed
    assert removed[-1] == "verified: nothing tagged mlops-env:name=ws remains in eu-west-1"
    assert all(v == [] for v in tagged(moto_ec2, "ws").values()), tagged(moto_ec2, "ws")
    live = moto_ec2.describe_spot_instance_requests(Filters=[{"Name": "state", "Values": ["open", "active", "disabled"]}])
    assert not live["SpotInstanceRequests"] and inst["InstanceId"]  # cancelled (moto then forgets it)


@pytest.mark.parametrize("flags", [{"instance_type": "t3.xlargee"}, {"subnet": "subnet-0123456789abcdef0"}])
def test_a_first_up_refused_before_anything_is_made_leaves_no_record(moto_ec2: Any,
                                                                       flags: dict[str, str]) -> None:
    """Issue 16 item 5 for EC2: the region is saved before the first call that creates anything,
    not before the first AWS call, so bad input leaves no ghost in `list` (it used to)."""
    from mlops_env.paths import get_paths
    from mlops_env.pipeline import Events, UpRequest, up

    paths = get_paths()
    with pytest.raises(UsageError if "instance_type" in flags else NotFoundError):
        up(UpRequest(name="ws", provider="ec2", options=options(**flags), provision_only=True), paths, Events())
    assert Store(paths).find("ws") is None and Store(paths).all() == []
    assert all(v == [] for v in tagged(moto_ec2, "ws").values())
    # and a later good run still works, and is found by `down` through its saved region
    data = up(UpRequest(name="ws", provider="ec2", options=options(), provision_only=True), paths, Events())
    rec = Store(paths).load("ws")
    assert rec.provider_data["region"] and data["phase"] == "provisioned"


def _record_ops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS operation asked (``Aws.call``, ``paginate``, ``call_with_retry``), in order."""
    ops: list[str] = []
    for method in ("call", "paginate", "call_with_retry"):
        real = getattr(aws_session.Aws, method)

        def wrapped(self: Any, service: str, op: str, *a: Any, _real: Any = real, **kw: Any) -> Any:
            ops.append(op)
            return _real(self, service, op, *a, **kw)

        monkeypatch.setattr(aws_session.Aws, method, wrapped)
    return ops


def test_a_first_up_creates_its_key_pair_and_group_without_looking_first(
        moto_ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """ImportKeyPair and CreateSecurityGroup at once, the SSH rule without reading the new
    group's rules: three lookups fewer per workstation (and per student of a class)."""
    ops = _record_ops(monkeypatch)
    Harness().up("ws")
    assert [o for o in ops if "key_pair" in o or "security_group" in o] == [
        "import_key_pair", "create_security_group", "authorize_security_group_ingress"], ops
    g = tagged(moto_ec2, "ws")["security_groups"][0]
    rules = [r for r in moto_ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [g["GroupId"]]}])["SecurityGroupRules"] if not r["IsEgress"]]
    assert [(r["FromPort"], r["CidrIpv4"]) for r in rules] == [(22, "203.0.113.7/32")], rules


def test_a_key_pair_and_group_left_by_an_earlier_run_are_reused(moto_ec2: Any) -> None:
    """The instance gone (terminated outside mlops-env), the key pair and group stay: the next
    `up` gets 'duplicate' for both, finds them ours, reuses them and keeps one SSH rule."""
    h = Harness()
    first = h.up("ws")
    moto_ec2.terminate_instances(InstanceIds=[first.provider_data["instance_id"]])
    again = h.up("ws")
    assert again.action == "created" and again.provider_data["instance_id"] != first.provider_data["instance_id"]
    got = tagged(moto_ec2, "ws")
    assert len(got["key_pairs"]) == 1 and len(got["security_groups"]) == 1
    assert again.provider_data["security_group_id"] == first.provider_data["security_group_id"]
    assert any(p.endswith("key pair mlops-env-ws: unchanged") for p in h.progress), h.progress
    rules = [r for r in moto_ec2.describe_security_group_rules(Filters=[{
        "Name": "group-id", "Values": [again.provider_data["security_group_id"]]}])["SecurityGroupRules"]
        if not r["IsEgress"]]
    assert len(rules) == 1, rules


@pytest.mark.parametrize("kind", ["key pair", "security group"])
def test_a_key_pair_or_group_of_that_name_not_made_by_mlops_env_is_refused(moto_ec2: Any, kind: str) -> None:
    if kind == "key pair":
        moto_ec2.create_key_pair(KeyName="mlops-env-ws")
    else:
        vpc = moto_ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        moto_ec2.create_security_group(GroupName="mlops-env-ws", Description="someone else's", VpcId=vpc)
    with pytest.raises(UsageError) as ei:
        Harness().up("ws")
    assert ei.value.code == ("key-pair-conflict" if kind == "key pair" else "security-group-conflict")
    assert ei.value.message.startswith(f"a {kind} named mlops-env-ws already exists")
    assert tagged(moto_ec2, "ws")["instances"] == []
