"""The instance's user data: cloud-init installs the SSH host key WE generated.

The key pair is made locally (``keys.generate_host_keypair``); its public half is pinned in
the tool's known_hosts before the first connection, so that connection is verified like any
later one (no trust-on-first-use). ``ssh_deletekeys`` removes the image's keys; cloud-init
generates keys only when ``ssh_keys`` is absent, so the box has exactly our key
(``ssh_genkeytypes`` names ed25519 only for that fallback: an empty list, which reads more
naturally, is a schema error for cloud-init 22.4, measured with Debian's real cloud-init).

The private half exists only in this user data, never in mlops-env's state or logs. Who else
can read it: principals of the AWS account with ``ec2:DescribeInstanceAttribute``, and
processes on the box through the metadata service (IMDSv2 is required and the hop limit is 1,
so containers on the box cannot reach it). That is why the first ``up`` retires it: the box
makes a new key whose private half never leaves it (``provider.py`` ``after_connect``).
See docs/ec2.md, "Host key".
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from mlops_env.ssh.keys import HostKeyPair, split_public_key


def user_data(host_key: HostKeyPair) -> str:
    """``#cloud-config`` text (boto3 base64-encodes it for RunInstances)."""
    private = "".join(f"    {line}\n" for line in host_key.private_pem.strip().splitlines())
    return (
        "#cloud-config\n"
        "# Written by mlops-env. The SSH host key below was generated on the user's machine and\n"
        "# pinned there before this instance booted: the first connection is already verified.\n"
        "ssh_deletekeys: true\n"
        "ssh_genkeytypes: [ed25519]  # used only without ssh_keys\n"
        "ssh_keys:\n"
        "  ed25519_private: |\n"
        f"{private}"
        f"  ed25519_public: {host_key.public_line}\n"
        "ssh_pwauth: false\n"
        "disable_root: true\n"
    )


def public_host_key(text: str | bytes) -> str | None:
    """The ``ed25519_public`` line of user data (raw or base64, as DescribeInstanceAttribute
    returns it) as ``"ssh-ed25519 BASE64"``; None when absent or malformed. Never returns the
    private key."""
    import yaml

    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text.lstrip().startswith("#cloud-config"):
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    line = ((doc or {}).get("ssh_keys") or {}).get("ed25519_public") if isinstance(doc, dict) else None
    if not isinstance(line, str):
        return None
    try:
        ktype, b64 = split_public_key(line)
    except Exception:  # noqa: BLE001 - not a key: treated as absent
        return None
    return f"{ktype} {b64}"
