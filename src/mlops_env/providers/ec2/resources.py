"""The EC2 resources of one workstation, always found by tag, never by memory.

Every resource is created with its tags in the same call (``TagSpecifications``): an
interrupted run can leave a resource behind, but never an untagged one, so the next ``up``
adopts it and ``down`` finds it. Tags: ``Name=mlops-env-NAME``, ``mlops-env:name=NAME`` and
the tool marker ``managed-by=mlops-env``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_env import __version__
from mlops_env.errors import MlopsError, NotFoundError, UsageError
from mlops_env.providers.ec2 import (
    TAG_HOST_KEY,
    TAG_KEY_FP,
    TAG_NAME,
    TAG_TOOL,
    TAG_VERSION,
    TOOL_VALUE,
    resource_name,
)
from mlops_env.providers.ec2.session import CAPACITY_CODES, Aws, aws_code, chunks, poll
from mlops_env.providers.ec2.shared import cached

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

CANONICAL_OWNER = "099720109477"
# Every state but "terminated": what still exists (and may still bill).
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
USABLE_STATES = ("pending", "running", "stopping", "stopped")
UBUNTU = {
    # --ami: (version, SSM volume-type folders to try, describe-images name pattern)
    "ubuntu-24.04": ("24.04", ("ebs-gp3", "ebs-gp2"), "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"),
    "ubuntu-22.04": ("22.04", ("ebs-gp2", "ebs-gp3"), "ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-{arch}-server-*"),
}
_DEB_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
# Same-size fallbacks when a type has no capacity anywhere in the region, in order of preference.
FALLBACK_FAMILIES = {"x86_64": ("t3", "t3a", "m6i", "m5", "m6a", "m7i"), "arm64": ("t4g", "m7g", "m6g")}


@dataclass(frozen=True)
class TypeInfo:
    name: str
    arch: str  # x86_64 | arm64
    vcpus: int
    memory_mib: int

    def describe(self) -> str:
        return f"{self.name} ({self.vcpus} vCPU, {self.memory_mib / 1024:g} GiB, {self.arch})"


@dataclass(frozen=True)
class Subnet:
    id: str
    zone: str
    vpc_id: str
    default_vpc: bool


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    arch: str
    root_device: str
    source: str


class NoCapacity(MlopsError):
    """Every candidate zone refused the launch for capacity reasons."""

    code = "aws-capacity"

    def __init__(self, instance_type: str, region: str, tried: list[tuple[str, str]]) -> None:
        zones = ", ".join(f"{z} ({c})" for z, c in tried)
        super().__init__(f"no capacity for {instance_type} in {region} right now: {zones}",
                         hint="try again later, or another --instance-type or --region")
        self.tried = tried


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def state_of(instance: dict[str, Any]) -> str:
    return str((instance.get("State") or {}).get("Name", "unknown"))


class Ec2:
    """Find, make and remove one workstation's resources (region and credentials from ``aws``)."""

    def __init__(self, aws: Aws, name: str, *, extra_tags: dict[str, str] | None = None) -> None:
        """``extra_tags`` go on every resource made (an image builder's ``mlops-env:image-build``)."""
        self.aws = aws
        self.name = name
        self.rname = resource_name(name)
        self.extra_tags = dict(extra_tags or {})

    # -- tags --------------------------------------------------------------------------------
    def tags(self, **extra: str) -> list[dict[str, str]]:
        base = {"Name": self.rname, TAG_NAME: self.name, TAG_TOOL: TOOL_VALUE, TAG_VERSION: __version__}
        base.update(self.extra_tags)
        base.update(extra)
        return [{"Key": k, "Value": v} for k, v in base.items()]

    def tag_spec(self, resource_type: str, **extra: str) -> dict[str, Any]:
        return {"ResourceType": resource_type, "Tags": self.tags(**extra)}

    def _by_name(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{TAG_NAME}", "Values": [self.name]},
                {"Name": f"tag:{TAG_TOOL}", "Values": [TOOL_VALUE]}]

    # -- instances ---------------------------------------------------------------------------
    def instances(self, states: tuple[str, ...] = LIVE_STATES) -> list[dict[str, Any]]:
        res = self.aws.paginate("ec2", "describe_instances", "Reservations",
                                Filters=[*self._by_name(), {"Name": "instance-state-name", "Values": list(states)}])
        return [i for r in res for i in r.get("Instances") or []]

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        try:
            res = self.aws.call("ec2", "describe_instances", InstanceIds=[instance_id])
        except MlopsError as e:
            if aws_code(e) in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        for r in res.get("Reservations") or []:
            for i in r.get("Instances") or []:
                return dict(i)
        return None

    def wait_state(self, instance_id: str, want: tuple[str, ...], *, timeout: float,
                   what: str) -> dict[str, Any]:
        def fetch() -> dict[str, Any] | None:
            return self.instance(instance_id)  # None right after launch: not visible yet

        def done(i: dict[str, Any] | None) -> bool:
            if i is None:
                return False
            st = state_of(i)
            if st in want:
                return True
            if st in ("terminated", "shutting-down") and "terminated" not in want:
                reason = (i.get("StateReason") or {}).get("Message") or "no reason given"
                raise MlopsError(f"instance {instance_id} was terminated while {what}: {reason}",
                                 hint=f"run `mlops-env down {self.name}` and `up` again",
                                 code="instance-terminated")
            return False

        result = poll(fetch, done, timeout=timeout, what=f"{instance_id} {what}")
        return dict(result)

    def wait_public_ip(self, instance_id: str, timeout: float = 60) -> dict[str, Any]:
        try:
            return dict(poll(lambda: self.instance(instance_id),
                             lambda i: bool(i and i.get("PublicIpAddress")),
                             timeout=timeout, what=f"a public IP address on {instance_id}"))
        except MlopsError as e:
            if e.code != "aws-timeout":
                raise
            raise MlopsError(f"instance {instance_id} has no public IP address",
                             hint="its subnet must give public IPs and route to an internet gateway; "
                             "pass a public --subnet", code="no-public-ip") from None

    # -- instance types, zones, subnets, images ---------------------------------------------------
    @cached
    def type_info(self, instance_type: str) -> TypeInfo:
        try:
            r = self.aws.call("ec2", "describe_instance_types", InstanceTypes=[instance_type])
        except MlopsError as e:
            if aws_code(e) in ("InvalidInstanceType", "InvalidParameterValue"):
                raise UsageError(f"unknown instance type {instance_type!r}",
                                 hint="for example --instance-type t3.xlarge (4 vCPU, 16 GiB, the "
                                 "default) or m7g.xlarge (Graviton)", code="unknown-instance-type") from None
            raise
        info = (r.get("InstanceTypes") or [None])[0]
        if not info:
            raise UsageError(f"unknown instance type {instance_type!r}", hint="check --instance-type",
                             code="unknown-instance-type")
        return _type_info(info)

    @cached
    def check_offered(self, instance_type: str) -> set[str]:
        """The zones of the region that offer the type; ``UsageError`` when none."""
        region_offer = self.aws.call(
            "ec2", "describe_instance_type_offerings", LocationType="region",
            Filters=[{"Name": "instance-type", "Values": [instance_type]}]).get("InstanceTypeOfferings")
        if not region_offer:
            raise UsageError(f"{instance_type} is not offered in {self.aws.region}",
                             hint="pick another --instance-type or --region "
                             "(`aws ec2 describe-instance-type-offerings` lists them)",
                             code="instance-type-not-offered")
        zones = self.aws.paginate("ec2", "describe_instance_type_offerings", "InstanceTypeOfferings",
                                  LocationType="availability-zone",
                                  Filters=[{"Name": "instance-type", "Values": [instance_type]}])
        return {z["Location"] for z in zones}

    @cached
    def subnets(self, subnet_id: str | None, zones: set[str], instance_type: str) -> list[Subnet]:
        """Candidate subnets, best first: ``--subnet`` alone, else the default VPC's subnets in
        the zones that offer the type (so a capacity failure can move to the next zone)."""
        if subnet_id:
            r = self.aws.call("ec2", "describe_subnets", SubnetIds=[subnet_id])
            s = (r.get("Subnets") or [None])[0]
            if not s:
                raise NotFoundError(f"subnet {subnet_id} not found in {self.aws.region}",
                                    hint="check --subnet and --region", code="subnet-not-found")
            sub = _subnet(s, default_vpc=False)
            if zones and sub.zone not in zones:
                raise UsageError(f"{instance_type} is not offered in {sub.zone}, the zone of {subnet_id}",
                                 hint=f"pick a subnet in one of {', '.join(sorted(zones))}, or another "
                                 "--instance-type", code="instance-type-not-offered")
            return [sub]
        vpcs = self.aws.call("ec2", "describe_vpcs", Filters=[{"Name": "is-default", "Values": ["true"]}])
        vpc = (vpcs.get("Vpcs") or [None])[0]
        if not vpc:
            raise UsageError(
                f"the account has no default VPC in {self.aws.region}",
                hint="pass --subnet subnet-... (a subnet with a route to an internet gateway), or "
                f"create a default VPC: `aws ec2 create-default-vpc --region {self.aws.region}`",
                code="no-default-vpc")
        subs = [s for s in self.aws.paginate("ec2", "describe_subnets", "Subnets",
                                             Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
                if s.get("State", "available") == "available"]
        # The default subnets give public IPs; other subnets of the default VPC may not.
        subs = [s for s in subs if s.get("DefaultForAz")] or subs
        cands = [_subnet(s, default_vpc=True) for s in subs]
        usable = sorted((c for c in cands if not zones or c.zone in zones), key=lambda c: c.zone)
        if not usable:
            raise UsageError(f"the default VPC in {self.aws.region} has no subnet in a zone offering {instance_type}",
                             hint="pass --subnet, or another --instance-type", code="no-subnet")
        return usable

    @cached
    def image(self, ami: str, arch: str) -> Image:
        """``ubuntu-24.04``/``ubuntu-22.04`` (Canonical's SSM parameter, describe-images on
        Canonical's account as fallback) or an ``ami-...`` id; always of architecture ``arch``."""
        if ami.startswith("ami-"):
            img = self._describe_image(ami)
            if img is None:
                raise NotFoundError(f"AMI {ami} not found in {self.aws.region}",
                                    hint="AMI ids differ per region; --ami ubuntu-24.04 picks Canonical's "
                                    "current image", code="ami-not-found")
            if img.arch != arch:
                raise UsageError(f"AMI {ami} is {img.arch}, but the instance type needs {arch}",
                                 hint="pick an AMI of the right architecture, or use --ami ubuntu-24.04",
                                 code="ami-arch-mismatch")
            return img
        if ami not in UBUNTU:
            raise UsageError(f"unknown --ami {ami!r}", hint="use ubuntu-24.04, ubuntu-22.04 or an ami-... id",
                             code="invalid-ami")
        version, folders, pattern = UBUNTU[ami]
        deb = _DEB_ARCH.get(arch)
        if deb is None:
            raise UsageError(f"no Ubuntu image for architecture {arch}", hint="pick an x86_64 or arm64 type")
        why = "no SSM parameter"
        for folder in folders:
            param = f"/aws/service/canonical/ubuntu/server/{version}/stable/current/{deb}/hvm/{folder}/ami-id"
            try:
                value = self.aws.call("ssm", "get_parameter", Name=param)["Parameter"]["Value"]
            except MlopsError as e:
                why = aws_code(e) or e.message
                log.debug("SSM %s: %s", param, why)
                continue
            img = self._describe_image(value)
            if img and img.arch == arch:
                return Image(img.id, img.name, img.arch, img.root_device, f"Canonical's SSM parameter {param}")
        # Fallback: the newest image of Canonical's account with the expected name.
        images = self.aws.paginate("ec2", "describe_images", "Images", Owners=[CANONICAL_OWNER],
                                   Filters=[{"Name": "name", "Values": [pattern.format(arch=deb)]},
                                            {"Name": "architecture", "Values": [arch]},
                                            {"Name": "state", "Values": ["available"]}])
        if not images:
            raise NotFoundError(
                f"no Ubuntu {version} {arch} image found in {self.aws.region} ({why}, and none from "
                f"Canonical's account {CANONICAL_OWNER})",
                hint="pass --ami ami-... with an Ubuntu image of this region, or try another --region",
                code="ami-not-found")
        newest = max(images, key=lambda i: str(i.get("CreationDate") or ""))
        img = _image(newest, f"newest Canonical image (SSM parameter unavailable: {why})")
        return img

    def _describe_image(self, image_id: str) -> Image | None:
        try:
            r = self.aws.call("ec2", "describe_images", ImageIds=[image_id])
        except NotFoundError:
            return None
        except MlopsError as e:
            if aws_code(e) and str(aws_code(e)).startswith("InvalidAMIID"):
                return None
            raise
        imgs = r.get("Images") or []
        return _image(imgs[0], f"--ami {image_id}") if imgs else None

    def fallback_types(self, t: TypeInfo) -> list[TypeInfo]:
        """Offered types of the same size (vCPU, memory, architecture) from other families."""
        family, _, size = t.name.partition(".")
        cands = [f"{f}.{size}" for f in FALLBACK_FAMILIES.get(t.arch, ()) if f != family]
        if not cands:
            return []
        offered = self.aws.call("ec2", "describe_instance_type_offerings", LocationType="region",
                                Filters=[{"Name": "instance-type", "Values": cands}]).get("InstanceTypeOfferings") or []
        names = {o["InstanceType"] for o in offered}
        if not names:
            return []
        infos = self.aws.call("ec2", "describe_instance_types", InstanceTypes=sorted(names)).get("InstanceTypes") or []
        by_name = {i.name: i for i in map(_type_info, infos)}
        same = [by_name[c] for c in cands if c in by_name]
        return [i for i in same if (i.vcpus, i.memory_mib, i.arch) == (t.vcpus, t.memory_mib, t.arch)]

    # -- key pair ------------------------------------------------------------------------------
    def key_pairs(self) -> list[dict[str, Any]]:
        r = self.aws.call("ec2", "describe_key_pairs", Filters=self._by_name())
        return list(r.get("KeyPairs") or [])

    def find_key_pair(self) -> dict[str, Any] | None:
        r = self.aws.call("ec2", "describe_key_pairs", Filters=[{"Name": "key-name", "Values": [self.rname]}])
        return (r.get("KeyPairs") or [None])[0]

    def ensure_key_pair(self, public_line: str, fingerprint: str) -> str:
        """Import the tool's client key as ``mlops-env-NAME``; returns "created"/"unchanged"/"replaced".

        Imported at once (one request on a first `up`); only when the name is taken does it look
        at what holds it: ours (reused, or replaced when mlops-env's key changed) or not (refused)."""
        try:
            self._import_key_pair(public_line, fingerprint)
            return "created"
        except MlopsError as e:
            if aws_code(e) != "InvalidKeyPair.Duplicate":
                raise
        found = self.find_key_pair()
        action = "created"
        if found:
            tags = tags_of(found)
            if tags.get(TAG_TOOL) != TOOL_VALUE or tags.get(TAG_NAME) != self.name:
                raise UsageError(f"a key pair named {self.rname} already exists in {self.aws.region} and was "
                                 "not made by mlops-env", hint=f"rename or delete it (`aws ec2 delete-key-pair "
                                 f"--key-name {self.rname}`), or pick another workstation name",
                                 code="key-pair-conflict")
            if tags.get(TAG_KEY_FP) == fingerprint:
                return "unchanged"
            # mlops-env's key changed (a new machine, a restored home): new launches need the new one.
            self.aws.call("ec2", "delete_key_pair", KeyName=self.rname)
            action = "replaced"
        self._import_key_pair(public_line, fingerprint)
        return action

    def _import_key_pair(self, public_line: str, fingerprint: str) -> None:
        self.aws.call("ec2", "import_key_pair", KeyName=self.rname,
                      PublicKeyMaterial=public_line.encode("ascii"),
                      TagSpecifications=[self.tag_spec("key-pair", **{TAG_KEY_FP: fingerprint})])

    # -- security group -------------------------------------------------------------------------
    def security_groups(self) -> list[dict[str, Any]]:
        return self.aws.paginate("ec2", "describe_security_groups", "SecurityGroups", Filters=self._by_name())

    def ensure_security_group(self, vpc_id: str) -> tuple[str, str]:
        """The workstation's own security group in ``vpc_id``: (group id, created|unchanged).

        Created at once (one request on a first `up`: a new group has no ingress rule); only when
        the name is taken in that VPC does it look at what holds it: ours (reused) or not (refused)."""
        try:
            return self._create_security_group(vpc_id), "created"
        except MlopsError as e:
            if aws_code(e) != "InvalidGroup.Duplicate":
                raise
        for g in self.security_groups():
            if g.get("VpcId") == vpc_id:
                return str(g["GroupId"]), "unchanged"
        clash = self.aws.call("ec2", "describe_security_groups",
                              Filters=[{"Name": "group-name", "Values": [self.rname]},
                                       {"Name": "vpc-id", "Values": [vpc_id]}]).get("SecurityGroups") or []
        if clash:
            raise UsageError(f"a security group named {self.rname} already exists in {vpc_id} and was not made "
                             "by mlops-env", hint="delete or rename it, or pick another workstation name",
                             code="security-group-conflict")
        return self._create_security_group(vpc_id), "created"  # gone in between

    def _create_security_group(self, vpc_id: str) -> str:
        r = self.aws.call("ec2", "create_security_group", GroupName=self.rname, VpcId=vpc_id,
                          Description=f"mlops-env workstation {self.name}: SSH from the allowed CIDR only",
                          TagSpecifications=[self.tag_spec("security-group")])
        return str(r["GroupId"])

    def ingress_rules(self, group_id: str) -> list[dict[str, Any]]:
        rules = self.aws.paginate("ec2", "describe_security_group_rules", "SecurityGroupRules",
                                  Filters=[{"Name": "group-id", "Values": [group_id]}])
        return [r for r in rules if not r.get("IsEgress")]

    def set_ssh_rule(self, group_id: str, cidr: str, *, new_group: bool = False) -> bool:
        """Exactly one ingress rule: tcp/22 from ``cidr``. True when something changed.
        ``new_group``: the group was just created (no ingress rule yet: nothing to look at)."""
        want_v6 = ":" in cidr
        keep, drop = None, []
        for r in [] if new_group else self.ingress_rules(group_id):
            src = r.get("CidrIpv6") if want_v6 else r.get("CidrIpv4")
            if (keep is None and r.get("IpProtocol") == "tcp" and r.get("FromPort") == 22
                    and r.get("ToPort") == 22 and src == cidr):
                keep = r
            else:
                drop.append(r["SecurityGroupRuleId"])
        changed = False
        if keep is None:
            rng = {"CidrIpv6": cidr} if want_v6 else {"CidrIp": cidr}
            rng["Description"] = "mlops-env: SSH"
            perm = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                    ("Ipv6Ranges" if want_v6 else "IpRanges"): [rng]}
            try:
                self.aws.call("ec2", "authorize_security_group_ingress", GroupId=group_id, IpPermissions=[perm])
            except MlopsError as e:
                if aws_code(e) != "InvalidPermission.Duplicate":
                    raise
            changed = True
        if drop:
            self.aws.call("ec2", "revoke_security_group_ingress", GroupId=group_id, SecurityGroupRuleIds=drop)
            changed = True
        return changed

    # -- launch ----------------------------------------------------------------------------------
    def run_args(self, *, image: Image, instance_type: str, subnet: Subnet, group_id: str,
                 user_data: str, host_key: str, disk_gb: int, spot: bool, token: str,
                 instance_tags: dict[str, str] | None = None) -> dict[str, Any]:
        """RunInstances parameters: IMDSv2 required (hop limit 1: containers on the box cannot
        read the metadata service), encrypted gp3 root volume deleted on termination,
        instance-initiated shutdown = stop, tags on the instance, volume and network interface."""
        ktype, kb64 = host_key.split()[:2]
        specs = [self.tag_spec("instance", **{TAG_HOST_KEY: f"{ktype} {kb64}", **(instance_tags or {})}),
                 self.tag_spec("volume"), self.tag_spec("network-interface")]
        kw: dict[str, Any] = {
            "ImageId": image.id, "InstanceType": instance_type, "MinCount": 1, "MaxCount": 1,
            "KeyName": self.rname, "UserData": user_data, "ClientToken": token,
            "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet.id, "Groups": [group_id],
                                   "AssociatePublicIpAddress": True, "DeleteOnTermination": True}],
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                "HttpPutResponseHopLimit": 1, "InstanceMetadataTags": "disabled"},
            "InstanceInitiatedShutdownBehavior": "stop",
            "BlockDeviceMappings": [{"DeviceName": image.root_device,
                                     "Ebs": {"VolumeSize": disk_gb, "VolumeType": "gp3", "Encrypted": True,
                                             "DeleteOnTermination": True}}],
            "TagSpecifications": specs,
        }
        if spot:
            # Persistent + stop: a spot workstation can be stopped and started like an on-demand one.
            kw["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
                "SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"}}
            specs.append(self.tag_spec("spot-instances-request"))
        return kw

    def launch(self, subnets: list[Subnet], instance_type: str, token_base: str,
               args: Callable[[Subnet, str], dict[str, Any]], progress: Progress) -> tuple[dict[str, Any], Subnet]:
        """Try each subnet (zone) in turn; capacity errors move on, anything else is raised."""
        tried: list[tuple[str, str]] = []
        for subnet in subnets:
            token = client_token(token_base, subnet.id, instance_type)
            progress(f"launching {instance_type} in {subnet.zone}")
            try:
                r = self.aws.call_with_retry("ec2", "run_instances", **args(subnet, token))
            except MlopsError as e:
                code = aws_code(e)
                if code not in CAPACITY_CODES:
                    raise
                log.info("no capacity for %s in %s: %s", instance_type, subnet.zone, code)
                tried.append((subnet.zone, str(code)))
                if len(tried) < len(subnets):
                    progress(f"no capacity for {instance_type} in {subnet.zone} ({code}); trying the next zone")
                continue
            return dict(r["Instances"][0]), subnet
        raise NoCapacity(instance_type, self.aws.region, tried)

    # -- teardown ---------------------------------------------------------------------------------
    def spot_requests(self) -> list[dict[str, Any]]:
        try:
            r = self.aws.call("ec2", "describe_spot_instance_requests",
                              Filters=[*self._by_name(), {"Name": "state", "Values": ["open", "active", "disabled"]}])
        except MlopsError as e:
            if aws_code(e) in ("UnsupportedOperation", "InvalidParameterValue"):
                return []
            raise
        return list(r.get("SpotInstanceRequests") or [])

    def volumes(self) -> list[dict[str, Any]]:
        return self.aws.paginate("ec2", "describe_volumes", "Volumes", Filters=self._by_name())

    def snapshots(self) -> list[dict[str, Any]]:
        """Snapshots of this account carrying the workstation's tags: mlops-env makes none, but a
        backup policy that copies the volume's tags (DLM ``CopyTags``) does, and they bill."""
        return self.aws.paginate("ec2", "describe_snapshots", "Snapshots", OwnerIds=["self"],
                                 Filters=self._by_name())

    def network_interfaces(self) -> list[dict[str, Any]]:
        return self.aws.paginate("ec2", "describe_network_interfaces", "NetworkInterfaces", Filters=self._by_name())

    def leftovers(self) -> list[str]:
        """Everything that still carries this workstation's tags (terminated instances excluded)."""
        out = [f"instance {i['InstanceId']} ({state_of(i)})" for i in self.instances()]
        out += [f"spot request {s['SpotInstanceRequestId']}" for s in self.spot_requests()]
        out += [f"volume {v['VolumeId']}" for v in self.volumes()]
        out += [f"snapshot {s['SnapshotId']}" for s in self.snapshots()]
        out += [f"network interface {n['NetworkInterfaceId']}" for n in self.network_interfaces()]
        out += [f"security group {g['GroupId']}" for g in self.security_groups()]
        out += [f"key pair {k.get('KeyName')}" for k in self.key_pairs()]
        return out

    def teardown(self, progress: Progress, *, timeout: float = 600) -> list[str]:
        """Cancel the spot request, terminate, wait, then delete the security group, key pair and
        any stray volume, snapshot or interface. Idempotent: a second call finds nothing and
        removes nothing."""
        removed: list[str] = []
        insts = self.instances()
        # A persistent request would launch a new instance after termination: cancel it first.
        # Found by its tags and through the instance (a request AWS made without our tags).
        req_ids = [r["SpotInstanceRequestId"] for r in self.spot_requests()]
        req_ids += [i["SpotInstanceRequestId"] for i in insts
                    if i.get("SpotInstanceRequestId") and i["SpotInstanceRequestId"] not in req_ids]
        if req_ids:
            progress(f"cancelling spot request {', '.join(req_ids)}")
            self.aws.call("ec2", "cancel_spot_instance_requests", SpotInstanceRequestIds=req_ids)
            removed += [f"spot request {i}" for i in req_ids]
        ids = [i["InstanceId"] for i in insts]
        if ids:
            progress(f"terminating {', '.join(ids)}")
            for batch in chunks(ids, 50):
                self.aws.call("ec2", "terminate_instances", InstanceIds=batch)
            for iid in ids:
                self.wait_state(iid, ("terminated",), timeout=timeout, what="terminating")
            removed += [f"instance {i} and its root volume" for i in ids]
        for g in self.security_groups():
            gid = g["GroupId"]
            progress(f"deleting security group {gid}")
            # The network interface of a just-terminated instance may hold the group a little longer.
            poll(functools.partial(self._try_delete_group, gid), bool, timeout=180, interval=5,
                 what=f"security group {gid} to be released")
            removed.append(f"security group {gid}")
        for v in self.volumes():
            if v.get("State") == "available":
                self.aws.call("ec2", "delete_volume", VolumeId=v["VolumeId"])
                removed.append(f"volume {v['VolumeId']}")
        for snap in self.snapshots():
            self.aws.call("ec2", "delete_snapshot", SnapshotId=snap["SnapshotId"])
            removed.append(f"snapshot {snap['SnapshotId']}")
        for n in self.network_interfaces():
            if n.get("Status") == "available":
                self.aws.call("ec2", "delete_network_interface", NetworkInterfaceId=n["NetworkInterfaceId"])
                removed.append(f"network interface {n['NetworkInterfaceId']}")
        for k in self.key_pairs():
            self.aws.call("ec2", "delete_key_pair", KeyName=k["KeyName"])
            removed.append(f"key pair {k.get('KeyName')}")
        return removed

    def _try_delete_group(self, group_id: str) -> bool:
        try:
            self.aws.call("ec2", "delete_security_group", GroupId=group_id)
        except MlopsError as e:
            code = aws_code(e)
            if code == "InvalidGroup.NotFound":
                return True
            if code == "DependencyViolation":
                return False
            raise
        return True


def client_token(base: str, subnet_id: str, instance_type: str) -> str:
    """RunInstances idempotency token: the same launch (same workstation record, host key,
    subnet and type) always sends the same token, so a retried call cannot make a second
    instance; any changed parameter gives a new token (AWS refuses a reused token with other
    parameters). At most 64 ASCII characters."""
    digest = hashlib.sha256(f"{base}|{subnet_id}|{instance_type}".encode()).hexdigest()
    return f"mlops-env-{digest[:48]}"


def _type_info(info: dict[str, Any]) -> TypeInfo:
    archs = (info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or ["x86_64"]
    arch = "arm64" if "arm64" in archs else "x86_64"
    return TypeInfo(name=str(info["InstanceType"]), arch=arch,
                    vcpus=int((info.get("VCpuInfo") or {}).get("DefaultVCpus") or 0),
                    memory_mib=int((info.get("MemoryInfo") or {}).get("SizeInMiB") or 0))


def _subnet(s: dict[str, Any], *, default_vpc: bool) -> Subnet:
    return Subnet(id=str(s["SubnetId"]), zone=str(s.get("AvailabilityZone", "")), vpc_id=str(s["VpcId"]),
                  default_vpc=default_vpc)


def _image(i: dict[str, Any], source: str) -> Image:
    return Image(id=str(i["ImageId"]), name=str(i.get("Name") or ""), arch=str(i.get("Architecture") or ""),
                 root_device=str(i.get("RootDeviceName") or "/dev/sda1"), source=source)
