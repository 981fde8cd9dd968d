"""Helpers for the EC2 tests: drive OUR provider the way the pipeline does, and list what
carries a workstation's tags in (stand-in) AWS."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clirun import Run, mlops_env_bin, watch, with_default_sigint

from mlops_env import config
from mlops_env.paths import Paths, get_paths
from mlops_env.providers import Provisioned
from mlops_env.providers.ec2.provider import Ec2Provider
from mlops_env.ssh.config import alias_for
from mlops_env.ssh.keys import ensure_keypair
from mlops_env.state import Record, Store

LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]
# Fake credentials, distinctive enough to grep for: they must never reach logs, state or the box.
FAKE_KEY_ID = "AKIAMLOPSENVTESTKEY1"
FAKE_SECRET = "mlops-env-test-secret-5f3a9c"
# The user's own ~/.ssh/config: `down` must leave these bytes as they were.
USER_SSH_CONFIG = b"# my own settings\nHost work-server\n    HostName 10.0.0.7\n    User me\n"


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
    """Everything carrying ``mlops-env:name=NAME`` (terminated instances and cancelled or
    closed spot requests excluded): what `down` must leave empty."""
    f = [{"Name": "tag:mlops-env:name", "Values": [name]}]
    inst = [i for r in ec2.describe_instances(Filters=[*f, {"Name": "instance-state-name", "Values": LIVE}])["Reservations"]
            for i in r["Instances"]]
    return {
        "instances": inst,
        "volumes": ec2.describe_volumes(Filters=f)["Volumes"],
        "security_groups": ec2.describe_security_groups(Filters=f)["SecurityGroups"],
        "key_pairs": ec2.describe_key_pairs(Filters=f)["KeyPairs"],
        "network_interfaces": ec2.describe_network_interfaces(Filters=f)["NetworkInterfaces"],
        "spot_requests": ec2.describe_spot_instance_requests(
            Filters=[*f, {"Name": "state", "Values": ["open", "active", "disabled"]}])["SpotInstanceRequests"],
        "snapshots": ec2.describe_snapshots(OwnerIds=["self"], Filters=f)["Snapshots"],
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


# ------------------------------------------------------------------------ black-box helpers


@dataclass
class User:
    """One user of the INSTALLED mlops-env: own HOME and MLOPS_ENV_HOME, fake AWS credentials,
    AWS_ENDPOINT_URL pointing at the moto launcher, and the test seams (docs/ec2.md)."""

    home: Path
    root: Path
    endpoint: str
    ip_lookup_url: str
    ssh_target: str  # "127.0.0.1:PORT" for MLOPS_ENV_TEST_SSH_ADDRESS_MAP

    @property
    def env(self) -> dict[str, str]:
        import os

        e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLOPS_ENV_"))}
        e.pop("SSH_AUTH_SOCK", None)
        e.update(HOME=str(self.home), MLOPS_ENV_HOME=str(self.root), NO_COLOR="1", COLUMNS="200",
                 AWS_ENDPOINT_URL=self.endpoint, AWS_ACCESS_KEY_ID=FAKE_KEY_ID, AWS_SECRET_ACCESS_KEY=FAKE_SECRET,
                 AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                 AWS_EC2_METADATA_DISABLED="true", AWS_REGION="eu-west-1",
                 MLOPS_ENV_IP_LOOKUP_URL=self.ip_lookup_url,
                 MLOPS_ENV_TEST_SSH_ADDRESS_MAP=f"*={self.ssh_target}")
        return e

    @property
    def ssh_config(self) -> Path:
        return self.home / ".ssh" / "config"

    def _watch(self, run: Run) -> Run:
        """Scanned after the test (tests/conftest.py ``_leak_check``): the fake AWS credentials in
        the WHOLE stdout and stderr, and in every file below MLOPS_ENV_HOME and HOME."""
        return watch(run, (FAKE_SECRET, FAKE_KEY_ID), (self.root, self.home))

    def popen(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """The CLI in the background, with SIGINT's default disposition whatever this suite
        inherited (clirun.with_default_sigint): a test may interrupt it. Finish with ``wait``."""
        import subprocess

        return subprocess.Popen(with_default_sigint([mlops_env_bin(), *args]), env=env or self.env,  # noqa: S603
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self, proc: Any, timeout: float = 60) -> Run:
        """Wait for a ``popen`` run; watched like ``mlops``."""
        out, err = proc.communicate(timeout=timeout)
        return self._watch(Run(proc.returncode, out, err))

    def mlops(self, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> Run:
        import subprocess

        p = subprocess.run([mlops_env_bin(), *args], env=env or self.env, capture_output=True, text=True,  # noqa: S603
                           timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        return self._watch(Run(p.returncode, p.stdout, p.stderr))

    def ssh(self, alias: str, *command: str, timeout: float = 60) -> Any:
        """The system OpenSSH client with only the config mlops-env wrote."""
        import subprocess

        return subprocess.run(["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", alias, *command],  # noqa: S603,S607
                              env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)


class Forwarder:
    """A loopback TCP forwarder: the box "moved" to another address (after stop/start)."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: Any, b: Any) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
