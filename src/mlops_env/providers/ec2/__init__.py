"""The EC2 provider (``provider.py``) and its AWS plumbing (session, resources, images, pricing, ...).

- ``session``: one boto3 session per command (the standard credential chain: env, profiles,
  SSO, instance roles), retry configuration, and the translation of every botocore failure
  into one clear ``MlopsError`` line with the fix.
- ``resources``: the resources mlops-env makes (key pair, security group, instance), found by tag.
- ``shared``: a class's one AWS session and per-class lookups (``class up``).
- ``localsetup``: doctor's checks of this machine's AWS set-up.
- ``pricing``: hourly and disk prices (AWS Pricing API, dated fallback table).
- ``netinfo``: the caller's public IP for the SSH rule, CIDR checks, the test address map.
- ``cloudinit``: the user data that installs the host key we generated.
- ``images``/``imagebuild``: prebuilt workstation images (AMIs): the API layer, and the
  builder instance of ``image build ec2``, ``image list`` and ``up ec2 --from-image``.

boto3 is imported inside functions only: ``mlops-env --help`` must not load it.
"""

from __future__ import annotations

# Tags on every resource mlops-env creates (set at creation time through TagSpecifications).
TAG_NAME = "mlops-env:name"  # the workstation name: how `up`, `down` and `list` find things
TAG_TOOL = "managed-by"  # the tool marker: `list` finds workstations local state does not know
TOOL_VALUE = "mlops-env"
TAG_HOST_KEY = "mlops-env:host-key"  # instance only: the public host key we generated (pinned)
TAG_KEY_FP = "mlops-env:key-fingerprint"  # key pair only: which client key was imported
TAG_VERSION = "mlops-env:version"
TAG_IMAGE_BUILD = "mlops-env:image-build"  # every resource of an image build, and the image itself
TAG_FROM_IMAGE = "mlops-env:from-image"  # instance only: the prebuilt image it was started from
TAG_CLASS = "mlops-env:class"  # a class's workstations (`mlops-env class`): the class name


def resource_name(name: str) -> str:
    """``mlops-env-NAME``: the Name tag, key pair name and security group name."""
    return f"mlops-env-{name}"
