"""``mlops-env image build ec2 NAME`` and the EC2 side of ``image list`` and ``up --from-image``.

Like Packer's amazon-ebs builder, from the same steps as ``up``: a temporary *builder*
instance from Canonical's AMI (its own key pair and security group, SSH only from the caller,
IMDSv2, encrypted gp3, the SSH host key handed over in cloud-init user data and pinned before the
first connection), the workstation steps over one SSH connection (base, docker, conda and its
libraries, the smoke test's program and data; not the idle agent, not the SSH config), then
``templates/image-generalize.sh`` (which ends with ``cloud-init clean --logs``, so the next boot
is a first boot and the user-data host key handover works as for a fresh ``up ec2``), stop,
``CreateImage`` (image and snapshots tagged at creation with the recipe, ``providers/ec2/images.py``),
and the builder's instance, key pair and security group are removed.

Nothing leaks: every builder resource carries ``mlops-env:image-build=NAME`` (and
``mlops-env:name=image-build.NAME``, a name no workstation can have); a lock per image name and
the phase in ``<data>/images/NAME.json`` (as for Docker images); a run killed anywhere is
finished (its image exists, recognised by its build id: only the builder is left to remove) or
cleaned (anything else) by the next ``image build`` or ``image delete`` of that name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlops_env.errors import MlopsError, NotFoundError, UsageError
from mlops_env.providers.ec2 import TAG_FROM_IMAGE, TAG_IMAGE_BUILD, TAG_NAME, TAG_TOOL, TOOL_VALUE
from mlops_env.providers.ec2.images import (
    SNAPSHOT_GB_MONTH,
    TAG_RECIPE_PREFIX,
    Ec2Images,
    builder_ec2,
    builder_name,
)

if TYPE_CHECKING:
    from mlops_env.config import Resolved
    from mlops_env.paths import Paths
    from mlops_env.providers.ec2.resources import Ec2, Image
    from mlops_env.providers.ec2.session import Aws

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

LOGIN_USER = "ubuntu"
BOOT_TIMEOUT = 300.0
LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]


def snapshot_estimate(disk_gb: int) -> dict[str, Any]:
    return {"snapshot_gb": disk_gb, "usd_per_month_at_most": round(disk_gb * SNAPSHOT_GB_MONTH, 2)}


class Ec2ImageBuild:
    """One image name in one region: build, finish or clean an interrupted build."""

    def __init__(self, paths: Paths, aws: Aws, name: str, warn: Callable[[str], None] | None = None) -> None:
        self.paths, self.aws, self.name = paths, aws, name
        self.images = Ec2Images(aws, name)
        self.warn = warn or (lambda m: None)

    # -- leftovers ------------------------------------------------------------------------------
    def builder_leftovers(self) -> list[str]:
        return builder_ec2(self.aws, self.name).leftovers()

    def cleanup(self, progress: Progress) -> list[str]:
        """Remove what an interrupted build left: the builder (instance, key pair, security
        group) and any image of the name that never became available (and its snapshots)."""
        removed = []
        if self.builder_leftovers():
            progress(f"removing the builder {builder_name(self.name)} left by an interrupted build")
            removed += builder_ec2(self.aws, self.name).teardown(progress)
        for img in self.images.images():
            if img.get("State") in ("failed", "invalid", "error", "deregistered"):
                self.aws.call("ec2", "deregister_image", ImageId=img["ImageId"])
                removed.append(f"failed image {img['ImageId']}")
                for sid in Ec2Images.snapshot_ids(img):
                    self.aws.call("ec2", "delete_snapshot", SnapshotId=sid)
                    removed.append(f"snapshot {sid}")
        return removed

    # -- build ----------------------------------------------------------------------------------
    def build(self, options: Resolved, progress: Progress, on_step: Callable[..., None] | None = None,
              steps: Callable[..., None] | None = None) -> dict[str, Any]:
        """``steps(ep, host_key, progress)``: runs the workstation steps and generalizes (the
        default does it over SSH; tests of the AWS flow pass their own)."""
        from mlops_env.images import (
            check_terms,
            clear_state,
            image_lock,
            read_state,
            validate_image_name,
        )

        validate_image_name(self.name)
        check_terms(options)
        with image_lock(self.paths, self.name):
            remember_region(self.paths, self.aws.region)  # `image list` looks there without --region
            prior = read_state(self.paths, self.name)
            prior = prior if prior and prior.get("provider") == "ec2" and prior.get("region") == self.aws.region else None
            existing = [i for i in self.images.images() if i.get("State") in ("available", "pending")]
            mine = [i for i in existing if prior and prior.get("build_id")
                    and _tags(i).get(TAG_RECIPE_PREFIX + "build-id") == prior["build_id"]]
            if mine:
                # The killed run's CreateImage went through: wait for it, remove its builder.
                image_id = mine[0]["ImageId"]
                self.images.wait_available(image_id, progress)
                removed = self.cleanup(progress)
                clear_state(self.paths, self.name)
                return {**self.describe(self.images.image()), "action": "finished",
                        "detail": "finished the interrupted build (removed: " + (", ".join(removed) or "nothing") + ")"}
            if existing:
                raise UsageError(f"image {self.name!r} exists in {self.aws.region} ({existing[0]['ImageId']})",
                                 hint=f"use it (`mlops-env up ec2 NAME --from-image {self.name}`), or delete it first: "
                                 f"mlops-env image delete {self.name} --region {self.aws.region} --yes",
                                 code="image-exists")
            cleaned = self.cleanup(progress)
            clear_state(self.paths, self.name)
            t0 = time.monotonic()
            build_id = secrets.token_hex(8)
            try:
                data = self._build(options, progress, on_step, build_id, steps)
            except BaseException:
                st = read_state(self.paths, self.name)
                if st and st.get("phase") in ("commit", "committed"):
                    raise  # CreateImage may have gone through: the next build or delete decides
                try:
                    self.cleanup(lambda m: None)
                    clear_state(self.paths, self.name)
                except Exception as e:  # noqa: BLE001 - the original error matters more
                    log.debug("cleanup after a failed build: %s", e)
                    self.warn(f"the builder could not be removed ({e}): `mlops-env image delete {self.name} "
                              f"--region {self.aws.region}` removes it")
                raise
            data["seconds"] = round(time.monotonic() - t0, 3)
            hourly = (data.get("builder") or {}).get("hourly_usd")
            if hourly is not None:
                data["builder"]["compute_usd"] = round(hourly * data["seconds"] / 3600, 4)
            if cleaned:
                data["cleaned"] = cleaned
            return data

    def _build(self, options: Resolved, progress: Progress, on_step: Callable[..., None] | None,
               build_id: str, steps: Callable[..., None] | None) -> dict[str, Any]:
        from mlops_env.images import clear_state, recipe, write_state
        from mlops_env.providers.ec2 import cloudinit, netinfo, pricing
        from mlops_env.ssh.keys import ensure_keypair, generate_host_keypair
        from mlops_env.state import Endpoint

        def state(phase: str, **kw: Any) -> None:
            write_state(self.paths, self.name, phase, provider="ec2", region=self.aws.region, build_id=build_id, **kw)

        state("prepare")
        ec2 = builder_ec2(self.aws, self.name)
        itype = options["instance_type"]
        # Everything that can be refused is checked before anything is made.
        t = ec2.type_info(itype)
        zones = ec2.check_offered(itype)
        subnets = ec2.subnets(options.get("subnet"), zones, itype)
        base = ec2.image(options["ami"], t.arch)
        given = options.get("allow_cidr")
        cidr = netinfo.parse_cidr(given) if given else netinfo.caller_cidr()
        disk = int(options["disk_gb"])
        price = pricing.price_for(self.aws, itype, spot=False, zone=subnets[0].zone)
        est = snapshot_estimate(disk)
        progress(f"storage of the image: {disk} GB of EBS snapshots, at most ${est['usd_per_month_at_most']:.2f}/month "
                 f"(${SNAPSHOT_GB_MONTH}/GB-month, billed by the blocks used) until `mlops-env image delete {self.name}`")
        progress("builder compute while it runs: " + price.describe(disk))
        rec = recipe(options, t.arch, base=base.id, user=LOGIN_USER)
        key = ensure_keypair(self.paths)
        progress(f"key pair {ec2.rname}: " + ec2.ensure_key_pair(key.public_line, key.fingerprint))
        group_id, _ = ec2.ensure_security_group(subnets[0].vpc_id)
        ec2.set_ssh_rule(group_id, cidr)
        hk = generate_host_keypair(comment=f"mlops-env-image-build-{self.name}")
        host_key = " ".join(hk.public_line.split()[:2])
        user_data = cloudinit.user_data(hk)
        del hk
        token_base = hashlib.sha256(f"{builder_name(self.name)}|{build_id}".encode()).hexdigest()

        def args(subnet: Any, token: str) -> dict[str, Any]:
            return ec2.run_args(image=base, instance_type=itype, subnet=subnet, group_id=group_id,
                                user_data=user_data, host_key=host_key, disk_gb=disk, spot=False, token=token)

        progress(f"launching builder {ec2.rname} from {base.id} ({base.name})")
        inst, _subnet = ec2.launch(subnets, itype, token_base, args, progress)
        iid = inst["InstanceId"]
        state("builder", instance_id=iid)
        inst = ec2.wait_state(iid, ("running",), timeout=600, what="starting")
        inst = ec2.wait_public_ip(iid)
        host, port = netinfo.mapped_address(str(inst["PublicIpAddress"]), 22)
        ep = Endpoint(host=host, port=port, user=LOGIN_USER, identity_file=str(key.private_path),
                      host_key_alias=f"mlops-env-{builder_name(self.name)}")
        state("steps", instance_id=iid)
        (steps or self._steps)(ep, host_key, options, progress, on_step)
        state("commit", instance_id=iid)
        tags = {**rec, "created": str(int(time.time())), "build-id": build_id}
        image_id = self.images.create_from_instance(iid, tags, progress)
        state("committed", instance_id=iid, image_id=image_id)
        progress(f"removing the builder {iid}")
        ec2.teardown(lambda m: None)
        left = ec2.leftovers()
        if left:
            self.warn(f"still tagged for the builder: {', '.join(left)} (`mlops-env image delete` removes them)")
        clear_state(self.paths, self.name)
        data = {**self.describe(self.images.image()), "action": "created"}
        data["builder"] = {"instance_type": itype, "hourly_usd": price.hourly, "hourly_source": price.hourly_source}
        data["storage_estimate"] = {**est, "shown": "before the build"}
        return data

    def _steps(self, ep: Any, host_key: str, options: Resolved, progress: Progress,
               on_step: Callable[..., None] | None) -> None:
        from mlops_env.images import connect_builder, run_steps
        from mlops_env.steps import template

        transport = connect_builder(ep, host_key, max(BOOT_TIMEOUT, float(options["ssh_timeout"])), progress)
        try:
            run_steps(self.paths, self.name, "ec2", options, ep, transport, on_step)
            progress("generalizing the builder (no keys, histories, credentials, downloads, apt lists; "
                     "cloud-init clean --logs)")
            res = transport.run_script(template("image-generalize.sh"), [], sudo=True, is_root=False, timeout=600)
            log.debug("generalize output:\n%s\n%s", res.stdout, res.stderr)
            if not res.ok:
                raise MlopsError(f"could not generalize the builder: {(res.stderr or res.stdout).strip()[-300:]}",
                                 hint="see the log file; the builder is removed, nothing was kept",
                                 code="image-generalize")
        finally:
            transport.close()

    # -- describe -------------------------------------------------------------------------------
    def describe(self, image: dict[str, Any]) -> dict[str, Any]:
        return describe_image(self.aws, image, in_use_by(self.aws).get(self.name, []))


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def in_use_by(aws: Aws) -> dict[str, list[str]]:
    """Image name -> the workstations (live instances) started from it, in ``aws``'s region."""
    res = aws.paginate("ec2", "describe_instances", "Reservations", Filters=[
        {"Name": "tag-key", "Values": [TAG_FROM_IMAGE]}, {"Name": f"tag:{TAG_TOOL}", "Values": [TOOL_VALUE]},
        {"Name": "instance-state-name", "Values": LIVE}])
    out: dict[str, list[str]] = {}
    for inst in (i for r in res for i in r.get("Instances") or []):
        t = _tags(inst)
        out.setdefault(t[TAG_FROM_IMAGE], []).append(t.get(TAG_NAME) or inst["InstanceId"])
    return {k: sorted(v) for k, v in out.items()}


def describe_image(aws: Aws, image: dict[str, Any], users: list[str]) -> dict[str, Any]:
    from mlops_env.images import recipe_status

    t = _tags(image)
    status, why = recipe_status(t, prefix=TAG_RECIPE_PREFIX)
    gb = sum(int((b.get("Ebs") or {}).get("VolumeSize") or 0) for b in image.get("BlockDeviceMappings") or [])
    age = None
    created = image.get("CreationDate")
    if created:
        try:
            age = max(0, round(time.time() - dt.datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()))
        except ValueError:
            age = None
    return {
        "name": t.get(TAG_IMAGE_BUILD, ""), "provider": "ec2", "region": aws.region, "id": image["ImageId"],
        "state": image.get("State"), "architecture": image.get("Architecture"),
        "recipe": status, "recipe_why": why,
        "recipe_labels": {k.removeprefix(TAG_RECIPE_PREFIX): v for k, v in t.items() if k.startswith(TAG_RECIPE_PREFIX)},
        "age_seconds": age, "size_bytes": gb * 10**9 if gb else None, "snapshot_gb": gb,
        "snapshots": Ec2Images.snapshot_ids(image),
        "monthly_cost_usd": round(gb * SNAPSHOT_GB_MONTH, 2), "in_use_by": users,
    }


def list_images(aws: Aws) -> list[dict[str, Any]]:
    res = aws.call("ec2", "describe_images", Owners=["self"], Filters=[
        {"Name": "tag-key", "Values": [TAG_IMAGE_BUILD]}, {"Name": f"tag:{TAG_TOOL}", "Values": [TOOL_VALUE]}])
    users = in_use_by(aws)
    rows = [describe_image(aws, i, users.get(_tags(i).get(TAG_IMAGE_BUILD, ""), []))
            for i in res.get("Images") or [] if i.get("State") in ("available", "pending")]
    return sorted(rows, key=lambda r: (r["name"], r["id"]))


def regions_with(aws: Aws, name: str) -> list[str]:
    """The other regions where an image of this name exists (for "copy it here" hints)."""
    try:
        regions = [r["RegionName"] for r in aws.call("ec2", "describe_regions").get("Regions") or []]
    except MlopsError as e:
        log.debug("describe_regions: %s", e.message)
        return []
    found = []
    for r in sorted(regions):
        if r == aws.region:
            continue
        try:
            if [i for i in Ec2Images(aws, name).images(region=r) if i.get("State") == "available"]:
                found.append(r)
        except MlopsError as e:
            log.debug("images in %s: %s", r, e.message)
    return found


def unknown_image(aws: Aws, name: str) -> MlopsError:
    elsewhere = regions_with(aws, name)
    if elsewhere:
        return NotFoundError(f"image {name!r} is not in {aws.region}, only in {', '.join(elsewhere)}",
                             hint=f"copy it here: mlops-env image copy {name} --region {elsewhere[0]} "
                             f"--to-region {aws.region}", code="image-other-region")
    return NotFoundError(f"no image {name!r} in {aws.region}",
                         hint=f"see `mlops-env image list --region {aws.region}`, or build it: "
                         f"mlops-env image build ec2 {name} --region {aws.region}", code="image-not-found")


def resolve_for_up(ec2: Ec2, ref: str, arch: str, options: Resolved) -> tuple[Image | None, str, str | None]:
    """The AMI for ``up ec2 --from-image REF`` (an image name, an ``ami-...`` id or ``auto``), a
    sentence saying which, and the image's name. ``auto``: the newest available image of the
    current recipe in the region for this architecture and distribution, else None (a fresh
    bootstrap from ``--ami``)."""
    from mlops_env.images import validate_image_name
    from mlops_env.providers.ec2.resources import _image

    aws = ec2.aws
    if ref.startswith("ami-"):
        img = ec2.image(ref, arch)  # not found / architecture mismatch: refused there
        desc = aws.call("ec2", "describe_images", ImageIds=[ref])["Images"][0]
        return img, f"from AMI {ref}", _tags(desc).get(TAG_IMAGE_BUILD)
    if ref == "auto":
        best = None
        for row in list_images(aws):
            lab = row["recipe_labels"]
            if row["state"] != "available" or row["recipe"] != "current" or row["architecture"] != arch:
                continue
            if lab.get("distribution") != options["python_dist"]:
                continue
            if best is None or int(lab.get("created") or 0) > int(best["recipe_labels"].get("created") or 0):
                best = row
        if best is None:
            return None, f"no current {arch} image for {options['python_dist']} in {aws.region}: a fresh bootstrap", None
        ref = best["name"]
        how = f"from image {ref} ({best['id']}, the newest of the current recipe)"
    else:
        validate_image_name(ref)
        how = f"from image {ref}"
    imgs = Ec2Images(aws, ref)
    found = [i for i in imgs.images() if i.get("State") == "available"]
    if not found:
        raise unknown_image(aws, ref)
    raw = max(found, key=lambda i: i.get("CreationDate") or "")
    if raw.get("Architecture") != arch:
        raise UsageError(f"image {ref!r} is {raw.get('Architecture')}, but {options['instance_type']} needs {arch}",
                         hint=f"pick an instance type of {raw.get('Architecture')} (e.g. "
                         f"{'t4g.xlarge' if raw.get('Architecture') == 'arm64' else 't3.xlarge'}), or build an {arch} image",
                         code="image-arch-mismatch")
    gb = sum(int((b.get("Ebs") or {}).get("VolumeSize") or 0) for b in raw.get("BlockDeviceMappings") or [])
    if gb and int(options["disk_gb"]) < gb:
        raise UsageError(f"image {ref!r} needs a disk of at least {gb} GB, not {options['disk_gb']}",
                         hint=f"pass --disk-gb {gb} or more", code="disk-too-small")
    if "(" not in how:
        how += f" ({raw['ImageId']})"
    return _image(raw, how), how, ref


def build_state_regions(paths: Paths) -> list[str]:
    """Regions where this machine built or copied EC2 images (for ``image list`` without --region)."""
    import json

    f = paths.data / "images" / "ec2-regions.json"
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
        return sorted({str(r) for r in d}) if isinstance(d, list) else []
    except (OSError, ValueError):
        return []


def remember_region(paths: Paths, region: str) -> None:
    import json

    from mlops_env.fsutil import atomic_write
    from mlops_env.paths import ensure_private_dir

    have = build_state_regions(paths)
    if region in have:
        return
    ensure_private_dir(paths.data / "images")
    atomic_write(paths.data / "images" / "ec2-regions.json", json.dumps(sorted({*have, region})) + "\n", mode=0o600)
