"""Helpers for the EC2 tests: drive OUR provider the way the pipeline does, and list what
carries a workstation's tags in (stand-in) AWS."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_env import config
from mlops_env.keys import ensure_keypair
from mlops_env.paths import Paths, get_paths
from mlops_env.providers import Provisioned
from mlops_env.providers.ec2 import Ec2Provider
from mlops_env.sshconfig import alias_for
from mlops_env.state import Record, Store

LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]


def closed_port() -> int:
    """A loopback port nobody listens on (bound and released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def options(**flags: Any) -> config.Resolved:
    base: dict[str, Any] = {"region": "eu-west-1", "allow_cidr": "203.0.113.7/32"}
    base.update(flags)
    return config.resolve(base, config_path=None, default_config=Path("/nonexistent/config.yaml"), env={})


@dataclass
class Harness:
    """Runs ``Ec2Provider`` like ``pipeline._up`` does (record saved before and after)."""

    paths: Paths = field(default_factory=get_paths)
    progress: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    answer: bool = False
    questions: list[str] = field(default_factory=list)

    def provider(self) -> Ec2Provider:
        p = Ec2Provider(self.paths)
        p.warn = self.warnings.append

        def confirm(q: str) -> bool:
            self.questions.append(q)
            return self.answer

        p.confirm = confirm
        return p

    def record(self, name: str) -> Record:
        return Store(self.paths).find(name) or Record(name=name, provider="ec2", alias=alias_for(name))

    def up(self, name: str = "ws", **flags: Any) -> Provisioned:
        store = Store(self.paths)
        opts = options(**flags)
        rec = self.record(name)
        rec.options = dict(opts.values)
        store.save(rec)
        key = ensure_keypair(self.paths)
        prov = self.provider().ensure(rec, opts, key, self.progress.append)
        rec.endpoint = prov.endpoint
        rec.provider_data.update(prov.provider_data)
        store.save(rec)
        return prov


def tagged(ec2: Any, name: str) -> dict[str, list[Any]]:
    """Everything carrying ``mlops-env:name=NAME`` (terminated instances excluded)."""
    f = [{"Name": "tag:mlops-env:name", "Values": [name]}]
    inst = [i for r in ec2.describe_instances(Filters=[*f, {"Name": "instance-state-name", "Values": LIVE}])["Reservations"]
            for i in r["Instances"]]
    return {
        "instances": inst,
        "volumes": ec2.describe_volumes(Filters=f)["Volumes"],
        "security_groups": ec2.describe_security_groups(Filters=f)["SecurityGroups"],
        "key_pairs": ec2.describe_key_pairs(Filters=f)["KeyPairs"],
        "network_interfaces": ec2.describe_network_interfaces(Filters=f)["NetworkInterfaces"],
    }


def tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def user_data_host_key(ec2: Any, instance_id: str) -> tuple[str, str]:
    """(public line, private PEM) from the instance's user data, parsed independently of
    mlops-env (as cloud-init would read it)."""
    import base64

    import yaml

    raw = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    text = base64.b64decode(raw).decode()
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    return doc["ssh_keys"]["ed25519_public"], doc["ssh_keys"]["ed25519_private"]
