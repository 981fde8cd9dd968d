"""STAND-IN AWS data for moto (see ../shared/TESTBED.md, "AWS (stand-in: moto)").

moto has no Canonical Ubuntu 22.04/24.04 images and none of Canonical's public SSM parameters
(``/aws/service/canonical/...``). This module provides made-up ones with the real names,
owner and parameter paths, so mlops-env's real lookup code runs against them:

- ``AMIS``: the list format of ``MOTO_AMIS_PATH`` (``moto_launcher.py`` writes it to a file
  before moto's EC2 models are imported); ``seed_amis_in_process`` adds them to a running
  in-process mock instead.
- ``SSM_PARAMETERS``: put straight into moto's SSM backend (``put_parameter`` refuses names
  below ``/aws``); only possible inside the process that runs moto.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

ACCOUNT = "123456789012"  # moto's default account
CANONICAL = "099720109477"  # Canonical's real AWS account (owner of the Ubuntu images)
REGIONS = ("eu-west-1", "us-east-1")

NOBLE_AMD64 = "ami-0a11c0ffee2404a64"
NOBLE_AMD64_OLD = "ami-0a11c0ffee2404a00"
NOBLE_ARM64 = "ami-0a11c0ffee2404b64"
JAMMY_AMD64 = "ami-0a11c0ffee2204a64"
JAMMY_ARM64 = "ami-0a11c0ffee2204b64"
OTHER_X86 = "ami-0b22deadbeef00001"  # not Canonical's: for --ami ami-... tests


def _ami(ami_id: str, name: str, arch: str, created: str, owner: str = CANONICAL) -> dict[str, Any]:
    return {
        "ami_id": ami_id, "name": name, "architecture": arch, "owner_id": owner,
        "state": "available", "public": True, "image_type": "machine", "image_location": f"{owner}/{name}",
        "root_device_type": "ebs", "root_device_name": "/dev/sda1", "virtualization_type": "hvm",
        "hypervisor": "xen", "sriov": "simple", "description": f"STAND-IN for tests: {name}",
        "creation_date": created,
    }


AMIS: list[dict[str, Any]] = [
    _ami(NOBLE_AMD64, "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251001", "x86_64",
         "2025-10-01T00:00:00.000Z"),
    _ami(NOBLE_AMD64_OLD, "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423", "x86_64",
         "2024-04-23T00:00:00.000Z"),
    _ami(NOBLE_ARM64, "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20251001", "arm64",
         "2025-10-01T00:00:00.000Z"),
    _ami(JAMMY_AMD64, "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20251001", "x86_64",
         "2025-10-01T00:00:00.000Z"),
    _ami(JAMMY_ARM64, "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-20251001", "arm64",
         "2025-10-01T00:00:00.000Z"),
    _ami(OTHER_X86, "someone-elses-image", "x86_64", "2025-01-01T00:00:00.000Z", owner="111122223333"),
]

_P = "/aws/service/canonical/ubuntu/server"
SSM_PARAMETERS = {
    f"{_P}/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id": NOBLE_AMD64,
    f"{_P}/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id": NOBLE_ARM64,
    f"{_P}/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id": JAMMY_AMD64,
    f"{_P}/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id": JAMMY_ARM64,
}


def seed_ssm_in_process(regions: tuple[str, ...] = REGIONS, params: dict[str, str] | None = None) -> None:
    from moto.ssm.models import Parameter, ssm_backends

    now = dt.datetime.now(dt.timezone.utc)
    for region in regions:
        backend = ssm_backends[ACCOUNT][region]
        for name, value in (SSM_PARAMETERS if params is None else params).items():
            backend._parameters[name] = [Parameter(  # type: ignore[abstract]
                account_id=ACCOUNT, name=name, value=value, parameter_type="String", description=None,
                allowed_pattern=None, keyid=None, last_modified_date=now, version=1, data_type="aws:ec2:image")]


def seed_amis_in_process(regions: tuple[str, ...] = REGIONS) -> None:
    from moto.core.parse import default_timestamp_parser
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.amis import Ami

    for region in regions:
        backend = ec2_backends[ACCOUNT][region]
        for a in AMIS:
            if a["ami_id"] in backend.amis:
                continue
            kw = dict(a)
            kw["creation_date"] = default_timestamp_parser(kw["creation_date"])
            backend.amis[a["ami_id"]] = Ami(backend, **kw)


def patch_create_image_snapshot_tags() -> None:
    """moto's CreateImage raises NotImplementedError for a ``snapshot`` TagSpecification, which
    AWS supports (the snapshots get the tags at creation): model it on the stand-in. Idempotent."""
    from moto.ec2.models import EC2Backend

    if getattr(EC2Backend.create_image, "_mlops_patched", False):
        return
    real = EC2Backend.create_image

    def create_image(self: Any, instance_id: str, name: str, description: str,
                     tag_specifications: list[dict[str, Any]]) -> Any:
        snap_tags = [t for s in tag_specifications if s["ResourceType"] == "snapshot" for t in s["Tags"]]
        ami = real(self, instance_id, name, description,
                   [s for s in tag_specifications if s["ResourceType"] != "snapshot"])
        ids = [ami.ebs_snapshot.id] if getattr(ami, "ebs_snapshot", None) else []
        if snap_tags and ids:
            self.create_tags(ids, {t["Key"]: t["Value"] for t in snap_tags})
        return ami

    create_image._mlops_patched = True  # type: ignore[attr-defined]
    EC2Backend.create_image = create_image  # type: ignore[method-assign]
