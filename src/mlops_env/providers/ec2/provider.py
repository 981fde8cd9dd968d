"""``up ec2``: a workstation on an EC2 instance, safe by default and resumable.

The provider makes the instance exist (or stops, starts, terminates it) and says how to reach
it; SSH, bootstrap and the SSH config are the shared pipeline's. What it creates, all tagged
at creation (``resources.py``): a key pair imported from mlops-env's ED25519 key, a security group
of its own that lets only tcp/22 in from ``--allow-cidr`` (default: the caller's public IP as
/32), and the instance (IMDSv2 required, encrypted gp3 root volume deleted on termination,
instance-initiated shutdown = stop) with an SSH host key generated here and handed over in
cloud-init user data. That public key is the trusted channel: the pipeline pins it before the
first connection; over that connection ``after_connect`` has the box make a new key whose
private half never leaves it, and retires the user-data one (docs/ec2.md "Host key"). A tag
never replaces a pinned key.

Idempotent by tag: running -> reuse, stopped -> start, pending/stopping -> wait, missing ->
create, more than one -> refuse. The record is saved (host public key, ClientToken base)
before RunInstances, so a run killed anywhere is finished by the next ``up``, which adopts the
instance its predecessor launched. If the record is lost, the host key is read back from the
instance's ``mlops-env:host-key`` tag (or its user data): both come through the authenticated
AWS API.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

from mlops_env.errors import MlopsError, NotFoundError, UsageError
from mlops_env.providers import Progress, Provider, Provisioned
from mlops_env.providers.ec2 import (
    TAG_FROM_IMAGE,
    TAG_IMAGE_BUILD,
    TAG_NAME,
    TAG_TOOL,
    TOOL_VALUE,
    resource_name,
)
from mlops_env.providers.ec2.hostkeys import HostKeys
from mlops_env.ssh.config import alias_for, host_key_alias_for
from mlops_env.state import Endpoint, Record

if TYPE_CHECKING:
    from mlops_env.config import Resolved
    from mlops_env.providers.ec2.resources import Ec2
    from mlops_env.providers.ec2.session import Aws
    from mlops_env.ssh.keys import KeyPair

log = logging.getLogger(__name__)

LOGIN_USER = "ubuntu"  # the Ubuntu AMIs' default user; cloud-init gives it the key pair's key
BOOT_TIMEOUT = 300.0  # a fresh instance's sshd usually answers within a minute
STATE_TIMEOUT = 600.0
ADOPT_WINDOW = 120.0  # a launch this recent may not be visible to DescribeInstances yet


class Ec2Provider(HostKeys, Provider):
    kind = "ec2"

    # -- sessions ------------------------------------------------------------------------------
    def _aws(self, record: Record | None, options: Resolved | None = None) -> Aws:
        from mlops_env.providers.ec2.shared import session_for

        pd = record.provider_data if record else {}
        opt_region = options.get("region") if options else None
        opt_profile = options.get("profile") if options else None
        saved_region = pd.get("region") or (record.options.get("region") if record else None)
        if opt_region and saved_region and opt_region != saved_region:
            raise UsageError(
                f"workstation {record.name if record else ''!r} lives in {saved_region}, not {opt_region}",
                hint=f"pass --region {saved_region}, or `mlops-env down {record.name if record else 'NAME'}` "
                "first to move it", code="region-mismatch")
        profile = opt_profile or pd.get("profile") or (record.options.get("profile") if record else None)
        return session_for(opt_region or saved_region, profile)  # `class up`: one session for the class

    # -- find ----------------------------------------------------------------------------------
    def _find(self, ec2: Ec2, record: Record, *, wait_in_flight: bool = False) -> dict[str, Any] | None:
        from mlops_env.providers.ec2.resources import USABLE_STATES

        found = ec2.instances(USABLE_STATES)
        if not found and wait_in_flight and self._launch_in_flight(record):
            # The previous run launched moments ago and was interrupted: DescribeInstances is
            # eventually consistent, so look again before launching a second instance.
            for _ in range(5):
                time.sleep(3)
                found = ec2.instances(USABLE_STATES)
                if found:
                    break
        if len(found) > 1:
            ids = " ".join(i["InstanceId"] for i in found)
            raise UsageError(
                f"{len(found)} instances carry the tag {TAG_NAME}={record.name} in {ec2.aws.region}: {ids}",
                hint=f"keep one: `aws ec2 terminate-instances --region {ec2.aws.region} --instance-ids ID` for "
                f"the others, or remove all with `mlops-env down {record.name} --yes`", code="ambiguous")
        return found[0] if found else None

    @staticmethod
    def _launch_in_flight(record: Record) -> bool:
        launch = record.provider_data.get("launch") or {}
        return bool(launch) and not record.provider_data.get("instance_id") and \
            time.time() - float(launch.get("at") or 0) < ADOPT_WINDOW

    # -- plan (dry run: read-only calls only) ----------------------------------------------------
    def plan(self, record: Record | None, options: Resolved) -> list[str]:
        from mlops_env.providers.ec2 import netinfo, pricing
        from mlops_env.providers.ec2.resources import Ec2, state_of
        from mlops_env.ssh.keys import check_keypair

        assert record is not None
        aws = self._aws(record, options)
        ec2 = Ec2(aws, record.name)
        who = aws.identity()
        lines = [f"AWS account {who['account']} as {who['arn']}, region {aws.region}"]
        inst = self._find(ec2, record)
        try:
            cidr, auto = self._cidr(options, record, lookup_ok=True)
            rule = f"only tcp/22 from {cidr}" + (" (your public IP)" if auto else "")
        except MlopsError as e:
            cidr, rule = "", f"only tcp/22 from your public IP, which cannot be found now ({e.message}): pass --allow-cidr"
        if inst is not None:
            st = state_of(inst)
            verb = {"running": "reuse", "stopped": "start", "pending": "wait for",
                    "stopping": "wait for, then start"}.get(st, "reuse")
            lines.append(f"instance {inst['InstanceId']} ({inst.get('InstanceType')}, {st}"
                         f"{', ' + inst['PublicIpAddress'] if inst.get('PublicIpAddress') else ''}): {verb} it")
            lines.append(f"security group {resource_name(record.name)}: make sure it allows {rule}")
            price = record.provider_data.get("cost")
            if price and price.get("hourly_usd") is not None:
                lines.append(f"price: ${price['hourly_usd']:.4f}/hour while running ({price.get('hourly_source')})")
            return lines
        itype = options["instance_type"]
        t = ec2.type_info(itype)
        zones = ec2.check_offered(itype)
        subnets = ec2.subnets(options.get("subnet"), zones, itype)
        img, _ = self._image_for(ec2, options, t.arch, lambda m: None)
        s0 = subnets[0]
        where = f"subnet {s0.id} ({s0.zone}, {'default VPC ' if s0.default_vpc else 'VPC '}{s0.vpc_id})"
        if len(subnets) > 1:
            where += f"; on a capacity error the other zones: {', '.join(s.zone for s in subnets[1:])}"
        kc = check_keypair(self.paths)
        kp = ec2.find_key_pair()
        lines += [
            f"instance: create {t.describe()}{' spot (persistent, stops on interruption)' if options['spot'] else ''}",
            f"  image {img.id} {img.name} ({img.source})",
            f"  {where}",
            f"  root volume {options['disk_gb']} GB gp3, encrypted, deleted with the instance; IMDSv2 "
            "required (hop limit 1); shutdown from inside = stop",
            "  SSH host key: a new ED25519 key generated here, handed over in cloud-init user data and "
            "pinned before the first connection, then replaced by a key made on the box (the user-data one is retired)",
            f"key pair: {'reuse' if kp else 'import'} {resource_name(record.name)} (mlops-env's ED25519 key"
            f"{' ' + kc.keypair.fingerprint if kc.keypair else ', created on the first real run'})",
            f"security group: {'reuse' if ec2.security_groups() else 'create'} {resource_name(record.name)} "
            f"in {s0.vpc_id}: {rule}",
            f"tags on instance, volume, network interface, security group, key pair: Name={resource_name(record.name)}, "
            f"{TAG_NAME}={record.name}, {TAG_TOOL}={TOOL_VALUE}",
        ]
        if cidr and netinfo.is_open_world(cidr):
            lines.append(f"WARNING: {cidr} lets the whole internet try to log in on port 22")
        price = pricing.price_for(aws, itype, spot=options["spot"], zone=s0.zone)
        lines.append("price: " + price.describe(options["disk_gb"]))
        lines.append("permission check (DryRun=True): RunInstances " + self._dry_run_check(aws, img.id, itype, s0.id))
        return lines

    @staticmethod
    def _dry_run_check(aws: Aws, image_id: str, itype: str, subnet_id: str) -> str:
        from mlops_env.providers.ec2.session import aws_code

        try:
            aws.call("ec2", "run_instances", ImageId=image_id, InstanceType=itype, MinCount=1, MaxCount=1,
                     SubnetId=subnet_id, DryRun=True)
        except MlopsError as e:
            if aws_code(e) == "DryRunOperation":
                return "would be allowed"
            return f"would fail: {e.message}"
        return "answered without a DryRun check"

    # -- ensure ----------------------------------------------------------------------------------
    def ensure(self, record: Record, options: Resolved, key: KeyPair, progress: Progress) -> Provisioned:
        from mlops_env.providers.ec2 import netinfo
        from mlops_env.providers.ec2.resources import Ec2, state_of
        from mlops_env.state import Store

        aws = self._aws(record, options)
        pd = record.provider_data
        pd["region"], pd["profile"] = aws.region, aws.profile
        if Store(self.paths).exists(record.name):  # a known workstation: where it lives, at once
            Store(self.paths).save(record)
        ec2 = Ec2(aws, record.name)
        progress(f"looking for {resource_name(record.name)} in {aws.region}")
        inst = self._find(ec2, record, wait_in_flight=True)
        # Who may reach SSH; looked up before anything is created or changed.
        cidr, auto = self._cidr(options, record, lookup_ok=inst is None)
        if netinfo.is_open_world(cidr):
            self.warn(f"--allow-cidr {cidr} lets the whole internet try to log in to {record.name} on "
                      "port 22 (keys only, but still): prefer your own address")
        if inst is None:
            inst, action = self._create(ec2, record, options, key, cidr, auto, progress)
        else:
            inst, action = self._resume(ec2, record, inst, cidr, auto, progress, options)
        if state_of(inst) != "running" or not inst.get("PublicIpAddress"):
            inst = ec2.wait_public_ip(inst["InstanceId"])
        host_key = self._host_key(ec2, record, inst, own_launch=action.startswith(("created", "adopted")))
        self._remember(record, inst, cidr, auto)
        ep = self._endpoint(record, inst, str(key.private_path))
        self._order_pins_for_rotation(record, ep, BOOT_TIMEOUT if action != "unchanged" else options["ssh_timeout"])
        detail = f"instance {inst['InstanceId']} {inst.get('InstanceType')} in {inst.get('Placement', {}).get('AvailabilityZone', '?')}, {inst['PublicIpAddress']} ({action})"
        return Provisioned(endpoint=ep, action="created" if action.startswith(("created", "adopted")) else action,
                           host_key=host_key, provider_data=dict(pd), detail=detail,
                           ready_timeout=BOOT_TIMEOUT if action != "unchanged" else None)

    def _cidr(self, options: Resolved, record: Record, *, lookup_ok: bool) -> tuple[str, bool]:
        """(cidr, automatic?): ``--allow-cidr``, else the caller's public IP /32. On a box that
        already exists a failed lookup keeps the rule it has (with a warning)."""
        from mlops_env.providers.ec2 import netinfo

        given = options.get("allow_cidr")
        if given:
            return netinfo.parse_cidr(given), False
        try:
            return netinfo.caller_cidr(), True
        except MlopsError as e:
            old = record.provider_data.get("allow_cidr")
            if lookup_ok or not old:
                raise
            self.warn(f"{e.message}; keeping the SSH rule for {old}")
            return str(old), True

    def _create(self, ec2: Ec2, record: Record, options: Resolved, key: KeyPair, cidr: str, auto: bool,
                progress: Progress) -> tuple[dict[str, Any], str]:
        from mlops_env.providers.ec2 import cloudinit, pricing
        from mlops_env.providers.ec2.resources import NoCapacity
        from mlops_env.ssh.keys import generate_host_keypair
        from mlops_env.state import Store

        pd = record.provider_data
        if pd.get("class"):  # `mlops-env class up`: every resource carries the class's tag too
            from mlops_env.providers.ec2 import TAG_CLASS

            ec2.extra_tags[TAG_CLASS] = str(pd["class"])
        itype = options["instance_type"]
        _launch_gate()
        # 1. Everything that can be refused is checked before anything is made.
        t = ec2.type_info(itype)
        zones = ec2.check_offered(itype)
        subnets = ec2.subnets(options.get("subnet"), zones, itype)
        img, from_image = self._image_for(ec2, options, t.arch, progress)
        price = pricing.price_for(ec2.aws, itype, spot=options["spot"], zone=subnets[0].zone)
        pd["cost"] = price.as_dict(options["disk_gb"])
        progress("price: " + price.describe(options["disk_gb"]))
        # 2. Key pair and security group (tagged, reused by the next run if this one stops here).
        # The record (with the region) is saved before the first call that creates anything, so
        # `down` knows where to look; a run refused before this point leaves no record at all.
        Store(self.paths).save(record)
        progress(f"key pair {ec2.rname}: " + ec2.ensure_key_pair(key.public_line, key.fingerprint))
        group_id, made = ec2.ensure_security_group(subnets[0].vpc_id)
        ec2.set_ssh_rule(group_id, cidr, new_group=made == "created")
        pd["security_group_id"], pd["key_name"] = group_id, ec2.rname
        # 3. The host key: its public half is saved BEFORE the launch, so a run killed right
        # after RunInstances leaves the next run what it needs to pin the key.
        hk = generate_host_keypair(comment=f"mlops-env-host-{record.name}")
        pd["host_key"] = hk.public_line
        for stale in ("host_key_rotation", "host_key_origin", "retired_host_keys", "host_key_tag_stale"):
            pd.pop(stale, None)  # they were about an earlier instance
        pd["launch"] = {"at": time.time(), "token_base": _token_base(record, hk.fingerprint)}
        pd.pop("instance_id", None)
        Store(self.paths).save(record)
        user_data = cloudinit.user_data(hk)
        del hk  # the private half lives on only in the user data sent to AWS
        image_tag = {TAG_FROM_IMAGE: from_image} if from_image else None

        def args_for(itype_: str, image_root: Any = img) -> Any:
            def build(subnet: Any, token: str) -> dict[str, Any]:
                return ec2.run_args(image=image_root, instance_type=itype_, subnet=subnet, group_id=group_id,
                                    user_data=user_data, host_key=pd["host_key"], disk_gb=options["disk_gb"],
                                    spot=options["spot"], token=token, instance_tags=image_tag)
            return build

        token_base = pd["launch"]["token_base"]
        try:
            _launch_gate()
            try:
                inst, subnet = ec2.launch(subnets, itype, token_base, args_for(itype), progress)
            except NoCapacity as e:
                inst, subnet = self._fallback_type(ec2, t, subnets, token_base, args_for, e, options, progress)
        except MlopsError as e:
            if e.code not in ("aws-unreachable", "aws-throttled", "aws-timeout"):
                # AWS answered "no": no instance exists, the next run need not look for one.
                pd.pop("launch", None)
                Store(self.paths).save(record)
            raise
        pd["instance_id"] = inst["InstanceId"]
        pd["subnet_id"], pd["zone"], pd["vpc_id"] = subnet.id, subnet.zone, subnet.vpc_id
        pd["ami"] = {"id": img.id, "name": img.name, "source": img.source}
        if from_image:
            pd["from_image"] = from_image
        else:
            pd.pop("from_image", None)
        Store(self.paths).save(record)
        progress(f"waiting for {inst['InstanceId']} to run")
        inst = ec2.wait_state(inst["InstanceId"], ("running",), timeout=STATE_TIMEOUT, what="starting")
        return inst, "created"

    def _image_for(self, ec2: Ec2, options: Resolved, arch: str, progress: Progress) -> tuple[Any, str | None]:
        """The AMI a new instance boots: ``--from-image`` (a prebuilt image's name, an
        ``ami-...`` id or ``auto``, providers/ec2/imagebuild.py) or ``--ami``; and the prebuilt image's name."""
        ref = options.get("from_image")
        if ref:
            from mlops_env.providers.ec2.imagebuild import resolve_for_up

            img, how, name = resolve_for_up(ec2, ref, arch, options)
            progress(how)
            if img is not None:
                return img, name
        return ec2.image(options["ami"], arch), None

    def _fallback_type(self, ec2: Ec2, t: Any, subnets: list[Any], token_base: str, args_for: Any,
                       err: MlopsError, options: Resolved, progress: Progress) -> tuple[dict[str, Any], Any]:
        alts = ec2.fallback_types(t)
        if not alts:
            raise err
        alt = alts[0]
        question = (f"No capacity for {t.name} in any zone of {ec2.aws.region} ({err.message}).\n"
                    f"Launch {alt.describe()} instead, the same size?")
        if not self.confirm(question):
            raise MlopsError(err.message, hint=f"re-run with --instance-type {alt.name} (same size), or --yes to "
                             "accept it, or try later / another --region", code="aws-capacity")
        self.warn(f"no capacity for {t.name}; launching {alt.name} instead (same size)")
        options_type = alt.name
        progress(f"falling back to {options_type}")
        inst, subnet = ec2.launch(subnets, options_type, token_base, args_for(options_type), progress)
        return inst, subnet

    def _resume(self, ec2: Ec2, record: Record, inst: dict[str, Any], cidr: str, auto: bool,
                progress: Progress, options: Resolved) -> tuple[dict[str, Any], str]:
        from mlops_env.providers.ec2.resources import state_of
        from mlops_env.state import Store

        pd = record.provider_data
        iid = inst["InstanceId"]
        # "launch" is dropped once an ensure completes: still there = the launching run was cut short.
        adopted = bool(pd.get("launch"))
        self._warn_ignored(inst, options)
        pd["instance_id"] = iid
        Store(self.paths).save(record)  # an instance exists: `down` must be able to find it
        self._ensure_rule(ec2, inst, cidr)
        st = state_of(inst)
        action = "unchanged"
        if st == "pending":
            progress(f"waiting for {iid} to run")
            inst = ec2.wait_state(iid, ("running",), timeout=STATE_TIMEOUT, what="starting")
        if st == "stopping":
            progress(f"waiting for {iid} to stop before starting it again")
            inst = ec2.wait_state(iid, ("stopped",), timeout=STATE_TIMEOUT, what="stopping")
            st = "stopped"
        if st == "stopped":
            progress(f"starting {iid}")
            self._start_instance(ec2, iid)
            inst = ec2.wait_state(iid, ("running",), timeout=STATE_TIMEOUT, what="starting")
            action = "started"
        if adopted:
            action = "adopted from an interrupted run" if action == "unchanged" else f"adopted and {action}"
        return inst, action

    def _warn_ignored(self, inst: dict[str, Any], options: Resolved) -> None:
        """Options that only matter at creation, given explicitly but not what the box has."""
        src = options.sources
        if src.get("instance_type", "default") != "default" and options["instance_type"] != inst.get("InstanceType"):
            self.warn(f"{inst['InstanceId']} is a {inst.get('InstanceType')}; --instance-type "
                      f"{options['instance_type']} applies only to a new instance (`mlops-env down` first)")
        from mlops_env.providers.ec2.resources import tags_of

        ref, had = options.get("from_image"), tags_of(inst).get(TAG_FROM_IMAGE)
        if ref and src.get("from_image", "default") == "flag" and ref not in (had, inst.get("ImageId"), "auto"):
            self.warn(f"{inst['InstanceId']} exists (from {had or inst.get('ImageId')}); --from-image {ref} applies "
                      "only to a new instance (`mlops-env down` first)")
        is_spot = inst.get("InstanceLifecycle") == "spot"
        if src.get("spot", "default") != "default" and bool(options["spot"]) != is_spot:
            self.warn(f"{inst['InstanceId']} is {'a spot' if is_spot else 'an on-demand'} instance; --spot/--on-demand "
                      "applies only to a new instance")

    def _start_instance(self, ec2: Ec2, iid: str) -> None:
        from mlops_env.providers.ec2.session import CAPACITY_CODES, aws_code

        try:
            ec2.aws.call("ec2", "start_instances", InstanceIds=[iid])
        except MlopsError as e:
            if aws_code(e) in CAPACITY_CODES:
                raise MlopsError(f"AWS has no capacity to start {iid} in its zone right now ({aws_code(e)})",
                                 hint="try again in a few minutes; the disk stays in that zone",
                                 code="aws-capacity") from None
            raise

    def _ensure_rule(self, ec2: Ec2, inst: dict[str, Any], cidr: str) -> None:
        groups = [g for g in ec2.security_groups() if g.get("VpcId") == inst.get("VpcId")]
        if not groups:
            self.warn(f"the security group {ec2.rname} of {inst['InstanceId']} is gone: SSH may be blocked "
                      f"(`mlops-env down {ec2.name}` and up again makes a new one)")
            return
        for g in groups:
            if ec2.set_ssh_rule(g["GroupId"], cidr):
                log.info("SSH rule of %s set to %s", g["GroupId"], cidr)

    def _remember(self, record: Record, inst: dict[str, Any], cidr: str, auto: bool) -> None:
        pd = record.provider_data
        pd["instance_id"] = inst["InstanceId"]
        pd["instance_type"] = inst.get("InstanceType")
        pd["zone"] = (inst.get("Placement") or {}).get("AvailabilityZone", pd.get("zone"))
        pd["public_ip"] = inst.get("PublicIpAddress")
        pd["allow_cidr"], pd["allow_cidr_auto"] = cidr, auto
        pd.pop("launch", None)

    def _endpoint(self, record: Record, inst: dict[str, Any], identity: str) -> Endpoint:
        from mlops_env.providers.ec2 import netinfo

        host, port = netinfo.mapped_address(str(inst["PublicIpAddress"]), 22)
        return Endpoint(host=host, port=port, user=LOGIN_USER, identity_file=identity,
                        host_key_alias=host_key_alias_for(record.name))

    # -- status, list ----------------------------------------------------------------------------
    def state(self, record: Record) -> dict[str, Any]:
        from mlops_env.providers.ec2.resources import Ec2

        try:
            aws = self._aws(record)
            inst = self._find(Ec2(aws, record.name), record)
        except MlopsError as e:
            return {"state": "unknown", "detail": e.message}
        if inst is None:
            return {"state": "missing", "region": aws.region,
                    "detail": f"no instance tagged {TAG_NAME}={record.name} in {aws.region}"}
        info = _live(record, inst, aws.region)
        self._host_key_status(record, info)
        return info

    def discover(self, records: list[Record], hints: dict[str, Any]) -> list[dict[str, Any]]:
        from mlops_env.providers.ec2.resources import LIVE_STATES, state_of, tags_of
        from mlops_env.providers.ec2.session import Aws

        # Where to look: --region (with --profile), and the region/profile of every EC2 record.
        where: dict[str, str | None] = {}
        for r in records:
            if r.provider == "ec2" and r.provider_data.get("region"):
                where.setdefault(str(r.provider_data["region"]), r.provider_data.get("profile"))
        if hints.get("region"):
            where[str(hints["region"])] = hints.get("profile")
        known = {r.name for r in records}
        rows: list[dict[str, Any]] = []
        for region, profile in sorted(where.items()):
            aws = Aws(region, profile)
            res = aws.paginate("ec2", "describe_instances", "Reservations",
                               Filters=[{"Name": f"tag:{TAG_TOOL}", "Values": [TOOL_VALUE]},
                                        {"Name": "instance-state-name", "Values": list(LIVE_STATES)}])
            for inst in (i for r in res for i in r.get("Instances") or []):
                name = tags_of(inst).get(TAG_NAME)
                if not name or name in known or TAG_IMAGE_BUILD in tags_of(inst):  # (an image builder)
                    continue
                rows.append({"name": name, "provider": "ec2", "alias": alias_for(name) if _valid(name) else "-",
                             "address": inst.get("PublicIpAddress") or "-", "state": state_of(inst),
                             "phase": "not on this machine", "region": region,
                             "instance_id": inst["InstanceId"], "known": False})
        return rows

    def adopt(self, name: str, hints: dict[str, Any]) -> Record | None:
        from mlops_env.providers.ec2.resources import Ec2
        from mlops_env.providers.ec2.session import Aws

        if not hints.get("region"):
            return None
        aws = Aws(hints["region"], hints.get("profile"))
        if not Ec2(aws, name).leftovers():
            return None
        return Record(name=name, provider="ec2", alias=alias_for(name),
                      provider_data={"region": aws.region, "profile": aws.profile})

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self, record: Record, progress: Progress) -> str:
        from mlops_env.providers.ec2.resources import Ec2, state_of

        ec2 = Ec2(self._aws(record), record.name)
        inst = self._require(ec2, record)
        st = state_of(inst)
        if st in ("stopped", "stopping"):
            return f"already {st}"
        progress(f"stopping {inst['InstanceId']}")
        ec2.aws.call("ec2", "stop_instances", InstanceIds=[inst["InstanceId"]])
        ec2.wait_state(inst["InstanceId"], ("stopped",), timeout=STATE_TIMEOUT, what="stopping")
        cost = record.provider_data.get("cost") or {}
        disk = cost.get("disk_monthly_usd")
        keep = f"; its {cost.get('disk_gb', '?')} GB disk is kept (${disk:.2f}/month)" if disk is not None else \
            "; its disk is kept (and billed)"
        return f"stopped {inst['InstanceId']}{keep}"

    def start(self, record: Record, progress: Progress) -> str:
        from mlops_env.providers.ec2.resources import Ec2, state_of

        ec2 = Ec2(self._aws(record), record.name)
        inst = self._require(ec2, record)
        iid = inst["InstanceId"]
        opts = record.options
        given = opts.get("allow_cidr") if not record.provider_data.get("allow_cidr_auto", True) else None
        from mlops_env.config import Resolved

        cidr, auto = self._cidr(Resolved(values={"allow_cidr": given}, sources={}), record, lookup_ok=False)
        self._ensure_rule(ec2, inst, cidr)
        st = state_of(inst)
        if st == "stopping":
            progress(f"waiting for {iid} to stop first")
            ec2.wait_state(iid, ("stopped",), timeout=STATE_TIMEOUT, what="stopping")
            st = "stopped"
        result = f"{iid} already running"
        if st == "stopped":
            progress(f"starting {iid}")
            self._start_instance(ec2, iid)
            result = f"started {iid}"
        inst = ec2.wait_state(iid, ("running",), timeout=STATE_TIMEOUT, what="starting")
        inst = ec2.wait_public_ip(iid)
        self._remember(record, inst, cidr, auto)
        return f"{result}, public IP {inst['PublicIpAddress']}"

    def endpoint(self, record: Record) -> Endpoint | None:
        from mlops_env.providers.ec2.resources import Ec2, state_of
        from mlops_env.ssh.keys import key_paths

        inst = self._find(Ec2(self._aws(record), record.name), record)
        if inst is None or state_of(inst) != "running" or not inst.get("PublicIpAddress"):
            return None
        identity = record.endpoint.identity_file if record.endpoint else str(key_paths(self.paths)[0])
        return self._endpoint(record, inst, identity)

    def _require(self, ec2: Ec2, record: Record) -> dict[str, Any]:
        inst = self._find(ec2, record)
        if inst is None:
            raise NotFoundError(f"no instance tagged {TAG_NAME}={record.name} in {ec2.aws.region}",
                                hint=f"`mlops-env up ec2 {record.name}` creates it", code="instance-missing")
        return inst

    def describe_destroy(self, record: Record) -> list[str]:
        pd = record.provider_data
        region = pd.get("region") or record.options.get("region") or "the default region"
        what = [f"terminate instance {pd['instance_id']} ({pd.get('instance_type', '?')}, {pd.get('zone', '?')}) "
                "and its encrypted root volume"] if pd.get("instance_id") else ["terminate its instance, if any"]
        if record.options.get("spot"):
            what.insert(0, "cancel its spot request (it would launch a new instance otherwise)")
        what.append(f"delete security group {resource_name(record.name)} and key pair {resource_name(record.name)}, "
                    "and any volume or snapshot that carries its tags (a backup policy copying the disk's tags)")
        what.append(f"then check that nothing tagged {TAG_NAME}={record.name} remains in {region}")
        return what

    def destroy(self, record: Record, progress: Progress) -> list[str]:
        from mlops_env.providers.ec2.resources import Ec2

        if not record.provider_data.get("region"):
            # The region is saved before the first AWS call that creates anything.
            return ["nothing of it was ever created in AWS"]
        aws = self._aws(record)
        ec2 = Ec2(aws, record.name)
        removed = ec2.teardown(progress)
        left = ec2.leftovers()
        if left:
            raise MlopsError(f"still tagged {TAG_NAME}={record.name} in {aws.region}: {', '.join(left)}",
                             hint=f"run `mlops-env down {record.name}` again in a minute", code="down-incomplete")
        removed.append(f"verified: nothing tagged {TAG_NAME}={record.name} remains in {aws.region}")
        return removed


def _launch_gate() -> None:
    """In a `class up` that hit a quota error: no further launch (see ``limits``)."""
    from mlops_env.providers.ec2 import limits

    why = limits.launch_halted()
    if why:
        raise MlopsError(f"not launched: {why}", hint="run `mlops-env class up` again once the limit is raised",
                         code="class-halted")


def _token_base(record: Record, host_fp: str) -> str:
    """Stable for one launch of one workstation record (the host key is new per launch)."""
    return hashlib.sha256(f"{record.name}|{record.created}|{host_fp}".encode()).hexdigest()


def _valid(name: str) -> bool:
    from mlops_env.state import NAME_RE

    return bool(NAME_RE.match(name))


def _live(record: Record, inst: dict[str, Any], region: str) -> dict[str, Any]:
    import datetime as dt

    from mlops_env.providers.ec2.resources import state_of

    st = state_of(inst)
    info: dict[str, Any] = {"state": st, "region": region, "instance_id": inst["InstanceId"],
                            "instance_type": inst.get("InstanceType"), "public_ip": inst.get("PublicIpAddress"),
                            "zone": (inst.get("Placement") or {}).get("AvailabilityZone")}
    cost = record.provider_data.get("cost") or {}
    now = dt.datetime.now(dt.timezone.utc)
    lines = [f"instance  {inst['InstanceId']} {inst.get('InstanceType')} in {info['zone']}, {st}"
             f"{', ' + inst['PublicIpAddress'] if inst.get('PublicIpAddress') else ''}"]
    compute = None
    launched = inst.get("LaunchTime")
    if st == "running" and isinstance(launched, dt.datetime):
        up_s = max(0.0, (now - launched).total_seconds())
        info["uptime_seconds"] = round(up_s)
        hourly = cost.get("hourly_usd")
        if hourly is not None:
            compute = hourly * up_s / 3600
        lines.append(f"uptime    {_duration(up_s)} since the last start")
    disk = None
    if cost.get("disk_monthly_usd") is not None:
        age_h = max(0.0, (time.time() - record.created) / 3600)
        disk = cost["disk_monthly_usd"] * age_h / 730
    if compute is not None or disk is not None:
        info["cost_so_far_usd"] = {"compute_since_start": _r(compute), "disk_since_created": _r(disk)}
        parts = []
        if compute is not None:
            parts.append(f"${compute:.2f} compute since the last start (${cost['hourly_usd']:.4f}/h)")
        if disk is not None:
            parts.append(f"${disk:.2f} disk since created")
        lines.append("cost      " + " + ".join(parts) + f" ({cost.get('hourly_source', 'price source unknown')})")
    info["lines"] = lines
    return info


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _duration(seconds: float) -> str:
    m, _ = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    return (f"{d}d " if d else "") + f"{h}h {m:02d}m"
