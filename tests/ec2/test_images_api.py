"""EC2 images (issue 13), the API flow on moto in-process: CreateImage of a stopped builder
with image and snapshots tagged at creation, share (launch permission + snapshot
createVolumePermission, account ids validated), copy to another region (tagged there),
delete (builder terminated, image deregistered, snapshots deleted, nothing tagged left), and the
snapshot storage cost. `image build ec2` itself (the builder running the steps) is not built yet."""

from __future__ import annotations

from typing import Any

import pytest
import seed

from mlops_env.errors import NotFoundError, UsageError
from mlops_env.providers.ec2.images import TAG_IMAGE_BUILD, Ec2Images, validate_account_id
from mlops_env.providers.ec2.session import Aws

RECIPE = {"distribution": "anaconda", "installer-sha256": "a" * 64, "docker-source": "distro",
          "base-image": "ami-0123", "arch": "x86_64", "mlops-env-version": "0", "scripts-hash": "b" * 16}


def _builder(ec2: Any, name: str) -> str:
    ami = seed.AMIS[0]["ami_id"]
    res = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.xlarge", TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": TAG_IMAGE_BUILD, "Value": name},
                                              {"Key": "managed-by", "Value": "mlops-env"}]}])
    return str(res["Instances"][0]["InstanceId"])


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


@pytest.fixture
def snapshot_tag_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's CreateImage refuses a ``snapshot`` TagSpecification, which AWS supports: modelled
    on the stand-in (seed.py), undone after the test."""
    from moto.ec2.models import EC2Backend

    monkeypatch.setattr(EC2Backend, "create_image", EC2Backend.create_image)
    seed.patch_create_image_snapshot_tags()


@pytest.fixture
def built(moto_ec2: Any, snapshot_tag_specs: None) -> tuple[Any, Ec2Images, str]:
    imgs = Ec2Images(Aws("eu-west-1", None), "course-2026")
    iid = _builder(moto_ec2, "course-2026")
    image_id = imgs.create_from_instance(iid, RECIPE, lambda m: None, timeout=30)
    return moto_ec2, imgs, image_id


def test_create_image_stops_the_builder_and_tags_image_and_snapshots(built: tuple[Any, Ec2Images, str]) -> None:
    ec2, imgs, image_id = built
    (img,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    t = _tags(img)
    assert t[TAG_IMAGE_BUILD] == "course-2026" and t["mlops-env:image:installer-sha256"] == "a" * 64
    assert t["mlops-env:image:scripts-hash"] == "b" * 16
    snaps = Ec2Images.snapshot_ids(img)
    assert snaps
    for s in ec2.describe_snapshots(SnapshotIds=snaps)["Snapshots"]:
        assert _tags(s)[TAG_IMAGE_BUILD] == "course-2026"
    (b,) = imgs.builders()
    assert b["State"]["Name"] == "stopped"
    assert imgs.image()["ImageId"] == image_id


def test_share_grants_launch_and_snapshot_permission(built: tuple[Any, Ec2Images, str]) -> None:
    ec2, imgs, image_id = built
    out = imgs.share(["123456789012", " 210987654321 "], lambda m: None)
    assert out["accounts"] == ["123456789012", "210987654321"]
    perms = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"]
    assert {p["UserId"] for p in perms} == {"123456789012", "210987654321"}
    for sid in out["snapshots"]:
        cv = ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
        assert {p["UserId"] for p in cv["CreateVolumePermissions"]} == {"123456789012", "210987654321"}


@pytest.mark.parametrize("bad", ["12345678901", "1234567890123", "12345678901a", "", "arn:aws:iam::123456789012:root"])
def test_malformed_account_ids_are_refused_before_any_call(built: tuple[Any, Ec2Images, str], bad: str) -> None:
    ec2, imgs, image_id = built
    with pytest.raises(UsageError) as e:
        imgs.share(["123456789012", bad], lambda m: None)
    assert e.value.code == "invalid-account" and "12 digits" in e.value.message
    assert ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"] == []
    with pytest.raises(UsageError):
        validate_account_id(bad)


def test_copy_to_another_region_is_tagged_there(built: tuple[Any, Ec2Images, str]) -> None:
    import boto3

    _, imgs, image_id = built
    out = imgs.copy("us-east-1", lambda m: None, timeout=30)
    there = Ec2Images(Aws("us-east-1", None), "course-2026")
    assert there.image()["ImageId"] == out["image_id"] != image_id
    assert _tags(there.image())[TAG_IMAGE_BUILD] == "course-2026"
    with pytest.raises(UsageError) as e:
        imgs.copy("us-east-1", lambda m: None, timeout=30)
    assert e.value.code == "image-exists"
    # the source is untouched
    assert boto3.client("ec2", region_name="eu-west-1").describe_images(ImageIds=[image_id])["Images"]


def test_delete_removes_builder_image_and_snapshots_and_verifies(built: tuple[Any, Ec2Images, str]) -> None:
    ec2, imgs, image_id = built
    snaps = Ec2Images.snapshot_ids(ec2.describe_images(ImageIds=[image_id])["Images"][0])
    out = imgs.delete(lambda m: None)
    assert f"image {image_id}" in out["removed"] and all(f"snapshot {s}" in out["removed"] for s in snaps)
    assert any(r.startswith("builder instance ") for r in out["removed"])
    assert out["verified"] == "nothing tagged mlops-env:image-build=course-2026 remains in eu-west-1"
    assert imgs.leftovers() == []
    assert ec2.describe_images(Owners=["self"], Filters=[
        {"Name": f"tag:{TAG_IMAGE_BUILD}", "Values": ["course-2026"]}])["Images"] == []
    with pytest.raises(NotFoundError):
        imgs.image()
    assert imgs.delete(lambda m: None)["removed"] == []  # idempotent


def test_storage_cost_is_snapshot_size_times_the_price(built: tuple[Any, Ec2Images, str]) -> None:
    _, imgs, _ = built
    c = imgs.monthly_storage()
    assert c["snapshot_gb"] > 0 and c["usd_per_month_at_most"] == round(c["snapshot_gb"] * 0.05, 2)
