"""Prebuilt workstation images on EC2 (issue 13), the AWS API layer: capture a stopped builder
instance as an AMI (image and snapshots tagged at creation), find, share, copy and delete them,
and their snapshot storage cost. Every resource carries ``mlops-env:image-build=NAME``.

The builder itself (the instance running the workstation steps) is ``providers/ec2/imagebuild.py``.
Tested on moto.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlops_env import __version__
from mlops_env.errors import MlopsError, NotFoundError, UsageError
from mlops_env.providers.ec2 import TAG_IMAGE_BUILD, TAG_TOOL, TAG_VERSION, TOOL_VALUE
from mlops_env.providers.ec2.session import Aws, aws_code, poll

if TYPE_CHECKING:
    from mlops_env.providers.ec2.resources import Ec2

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

TAG_RECIPE_PREFIX = "mlops-env:image:"
ACCOUNT_RE = re.compile(r"^\d{12}$")
#: EBS snapshot storage, standard tier, USD per GB-month (https://aws.amazon.com/ebs/pricing/,
#: retrieved 2026-12; the same in most regions). Snapshots bill by the blocks used, so the
#: volume size times this is an upper bound.
SNAPSHOT_GB_MONTH = 0.05


def validate_account_id(account: str) -> str:
    s = str(account).strip()
    if not ACCOUNT_RE.match(s):
        raise UsageError(f"invalid AWS account id {account!r}: expected 12 digits",
                         hint="for example --account 123456789012 (`aws sts get-caller-identity` prints yours)",
                         code="invalid-account")
    return s


def image_tags(name: str, recipe: dict[str, str]) -> list[dict[str, str]]:
    tags = {"Name": f"mlops-env-image-{name}", TAG_IMAGE_BUILD: name, TAG_TOOL: TOOL_VALUE, TAG_VERSION: __version__}
    tags.update({TAG_RECIPE_PREFIX + k: v for k, v in recipe.items()})
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class Ec2Images:
    """The AMIs, snapshots and builder instances of one image name, in ``aws``'s region."""

    def __init__(self, aws: Aws, name: str) -> None:
        self.aws = aws
        self.name = name

    def _filters(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{TAG_IMAGE_BUILD}", "Values": [self.name]},
                {"Name": f"tag:{TAG_TOOL}", "Values": [TOOL_VALUE]}]

    # -- find ---------------------------------------------------------------------------------
    def images(self, region: str | None = None) -> list[dict[str, Any]]:
        res = self.aws.call("ec2", "describe_images", region=region, Owners=["self"], Filters=self._filters())
        return list(res.get("Images") or [])

    def image(self) -> dict[str, Any]:
        found = [i for i in self.images() if i.get("State") in ("available", "pending")]
        if not found:
            raise NotFoundError(f"no image {self.name!r} in {self.aws.region}",
                                hint=f"see `mlops-env image list --region {self.aws.region}`", code="image-not-found")
        return max(found, key=lambda i: i.get("CreationDate") or "")

    def snapshots(self) -> list[dict[str, Any]]:
        return self.aws.paginate("ec2", "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=self._filters())

    def builders(self) -> list[dict[str, Any]]:
        res = self.aws.paginate("ec2", "describe_instances", "Reservations", Filters=[
            *self._filters(), {"Name": "instance-state-name",
                               "Values": ["pending", "running", "stopping", "stopped", "shutting-down"]}])
        return [i for r in res for i in r.get("Instances") or []]

    def leftovers(self) -> list[str]:
        out = [f"image {i['ImageId']}" for i in self.images()]
        out += [f"snapshot {s['SnapshotId']}" for s in self.snapshots()]
        out += [f"builder instance {i['InstanceId']}" for i in self.builders()]
        b = builder_ec2(self.aws, self.name)
        out += [f"builder security group {g['GroupId']}" for g in b.security_groups()]
        out += [f"builder key pair {k.get('KeyName')}" for k in b.key_pairs()]
        return out

    @staticmethod
    def snapshot_ids(image: dict[str, Any]) -> list[str]:
        return [b["Ebs"]["SnapshotId"] for b in image.get("BlockDeviceMappings") or []
                if (b.get("Ebs") or {}).get("SnapshotId")]

    # -- capture -------------------------------------------------------------------------------
    def create_from_instance(self, instance_id: str, recipe: dict[str, str], progress: Progress, *,
                             timeout: float = 1800) -> str:
        """Stop the (generalized) builder and CreateImage of it, image and snapshots tagged in
        the same call; wait until the image is available. Returns the AMI id."""
        progress(f"stopping builder {instance_id}")
        self.aws.call("ec2", "stop_instances", InstanceIds=[instance_id])
        poll(lambda: self._instance_state(instance_id), lambda s: s == "stopped", timeout=timeout,
             what=f"builder {instance_id} to stop")
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        tags = image_tags(self.name, recipe)
        progress(f"creating image mlops-env-{self.name}-{stamp} from {instance_id}")
        res = self.aws.call("ec2", "create_image", InstanceId=instance_id, Name=f"mlops-env-{self.name}-{stamp}",
                            Description=f"mlops-env workstation image {self.name}",
                            TagSpecifications=[{"ResourceType": "image", "Tags": tags},
                                               {"ResourceType": "snapshot", "Tags": tags}])
        image_id = str(res["ImageId"])
        self.wait_available(image_id, progress, timeout=timeout)
        return image_id

    def wait_available(self, image_id: str, progress: Progress, *, timeout: float = 1800) -> None:
        if self._image_state(image_id) != "available":
            progress(f"waiting for image {image_id} to be available")
        poll(lambda: self._image_state(image_id), lambda s: s in ("available", "failed"), timeout=timeout,
             what=f"image {image_id} to be available")
        if self._image_state(image_id) == "failed":
            raise MlopsError(f"AWS could not create image {image_id}",
                             hint=f"`mlops-env image delete {self.name}` removes what is left; then build again",
                             code="image-failed")

    def _instance_state(self, instance_id: str) -> str | None:
        res = self.aws.call("ec2", "describe_instances", InstanceIds=[instance_id])
        for r in res.get("Reservations") or []:
            for i in r.get("Instances") or []:
                return str((i.get("State") or {}).get("Name"))
        return None

    def _image_state(self, image_id: str, region: str | None = None) -> str | None:
        res = self.aws.call("ec2", "describe_images", region=region, ImageIds=[image_id])
        for i in res.get("Images") or []:
            return str(i.get("State"))
        return None

    # -- share / copy ----------------------------------------------------------------------------
    def share(self, accounts: list[str], progress: Progress) -> dict[str, Any]:
        """Launch permission on the image and createVolumePermission on its snapshots (without
        the latter, the other account cannot launch from an image with encrypted-or-not EBS)."""
        ids = [validate_account_id(a) for a in accounts]
        if not ids:
            raise UsageError("no account to share with", hint="pass --account 123456789012 (repeatable)",
                             code="no-account")
        image = self.image()
        perms = [{"UserId": a} for a in ids]
        progress(f"sharing {image['ImageId']} with {', '.join(ids)}")
        self.aws.call("ec2", "modify_image_attribute", ImageId=image["ImageId"],
                      LaunchPermission={"Add": perms})
        snaps = self.snapshot_ids(image)
        for sid in snaps:
            self.aws.call("ec2", "modify_snapshot_attribute", SnapshotId=sid, Attribute="createVolumePermission",
                          OperationType="add", UserIds=ids)
        return {"image_id": image["ImageId"], "accounts": ids, "snapshots": snaps}

    def copy(self, to_region: str, progress: Progress, *, timeout: float = 3600) -> dict[str, Any]:
        image = self.image()
        if to_region == self.aws.region:
            raise UsageError(f"image {self.name!r} is already in {to_region}", hint="pick another --to-region",
                             code="same-region")
        if [i for i in self.images(region=to_region) if i.get("State") in ("available", "pending")]:
            raise UsageError(f"image {self.name!r} already exists in {to_region}",
                             hint=f"delete it there first: mlops-env image delete {self.name} --region {to_region}",
                             code="image-exists")
        progress(f"copying {image['ImageId']} to {to_region}")
        res = self.aws.call("ec2", "copy_image", region=to_region, SourceImageId=image["ImageId"],
                            SourceRegion=self.aws.region, Name=image.get("Name") or f"mlops-env-{self.name}",
                            Description=image.get("Description") or "")
        new_id = str(res["ImageId"])
        # Tag the copy at once (CopyImage's own tag copying is not everywhere): found by tag.
        self.aws.call("ec2", "create_tags", region=to_region, Resources=[new_id],
                      Tags=[{"Key": t["Key"], "Value": t["Value"]} for t in image.get("Tags") or []])
        poll(lambda: self._image_state(new_id, to_region), lambda s: s in ("available", "failed"),
             timeout=timeout, what=f"image {new_id} in {to_region}")
        copied = self.aws.call("ec2", "describe_images", region=to_region, ImageIds=[new_id])["Images"][0]
        snaps = self.snapshot_ids(copied)
        if snaps:
            self.aws.call("ec2", "create_tags", region=to_region, Resources=snaps,
                          Tags=[{"Key": t["Key"], "Value": t["Value"]} for t in image.get("Tags") or []])
        return {"image_id": new_id, "region": to_region, "source": image["ImageId"]}

    # -- delete --------------------------------------------------------------------------------
    def delete(self, progress: Progress) -> dict[str, Any]:
        """Terminate any builder, deregister every image of the name, delete their snapshots and
        any tagged snapshot, then verify that nothing tagged for the name remains."""
        removed: list[str] = [f"builder {r}" for r in builder_ec2(self.aws, self.name).teardown(progress)]
        builders = [i["InstanceId"] for i in self.builders()]  # tagged by hand, without a name tag
        if builders:
            progress(f"terminating builder {', '.join(builders)}")
            self.aws.call("ec2", "terminate_instances", InstanceIds=builders)
            for iid in builders:
                poll(functools.partial(self._instance_state, iid), lambda s: s in (None, "terminated"),
                     timeout=600, what=f"builder {iid} to terminate")
            removed += [f"builder instance {i}" for i in builders]
        snaps: list[str] = []
        for img in self.images():
            progress(f"deregistering {img['ImageId']}")
            self.aws.call("ec2", "deregister_image", ImageId=img["ImageId"])
            removed.append(f"image {img['ImageId']}")
            snaps += self.snapshot_ids(img)
        snaps += [s["SnapshotId"] for s in self.snapshots() if s["SnapshotId"] not in snaps]
        for sid in snaps:
            try:
                self.aws.call("ec2", "delete_snapshot", SnapshotId=sid)
            except MlopsError as e:
                if aws_code(e) != "InvalidSnapshot.NotFound":
                    raise
            removed.append(f"snapshot {sid}")
        left = self.leftovers()
        if left:
            raise MlopsError(f"still tagged {TAG_IMAGE_BUILD}={self.name} in {self.aws.region}: {', '.join(left)}",
                             hint=f"run `mlops-env image delete {self.name}` again in a minute", code="delete-incomplete")
        return {"name": self.name, "region": self.aws.region, "removed": removed,
                "verified": f"nothing tagged {TAG_IMAGE_BUILD}={self.name} remains in {self.aws.region}"}

    # -- costs ---------------------------------------------------------------------------------
    def monthly_storage(self, image: dict[str, Any] | None = None) -> dict[str, Any]:
        img = image or self.image()
        gb = sum(int((b.get("Ebs") or {}).get("VolumeSize") or 0) for b in img.get("BlockDeviceMappings") or [])
        return {"snapshot_gb": gb, "usd_per_month_at_most": round(gb * SNAPSHOT_GB_MONTH, 2),
                "source": f"EBS snapshot standard ${SNAPSHOT_GB_MONTH}/GB-month (aws.amazon.com/ebs/pricing, "
                "2026-12); billed by the blocks used, so at most this"}


def builder_name(name: str) -> str:
    """The builder's ``mlops-env:name`` (a dot: never a workstation's name)."""
    return f"image-build.{name}"


def builder_ec2(aws: Aws, name: str) -> Ec2:
    """The builder's EC2 resources (instance, key pair, security group), tagged for the image."""
    from mlops_env.providers.ec2.resources import Ec2

    return Ec2(aws, builder_name(name), extra_tags={TAG_IMAGE_BUILD: name})
