"""STAND-IN for what happens on a real EC2 instance, played by a systemd container (``vm_host``).

moto makes instances that exist only on paper. The black-box tests need one that boots, runs
sshd and can be bootstrapped, so a VM-like container plays it, and this module plays cloud-init
for it, the way the real one would on first boot:

- it reads the instance's user data back from the (moto) EC2 API (DescribeInstanceAttribute
  userData) and installs ``ssh_keys`` as the host key, deleting every other host key
  (``ssh_deletekeys``, no ``ssh_genkeytypes``);
- it installs the instance's key pair (DescribeKeyPairs, IncludePublicKey) as the login
  user's ``authorized_keys``;
- sshd runs only while the instance is ``running`` (stop -> sshd stops, start -> it starts).

Until the first boot the container has no host keys and no sshd, like a VM that is still
booting. mlops-env only ever reaches it through the documented test seam
``MLOPS_ENV_TEST_SSH_ADDRESS_MAP`` (fake public IP -> the container's loopback port).
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import hosts
import yaml

_PREPARE = r"""
set -eu
systemctl stop ssh.service >/dev/null 2>&1 || true
rm -f /etc/ssh/ssh_host_*
"""

_FIRST_BOOT = r"""
set -eu
rm -f /etc/ssh/ssh_host_*
umask 077
printf '%s\n' "$PRIV" > /etc/ssh/ssh_host_ed25519_key
umask 022
printf '%s\n' "$PUB" > /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 0700 -o "$U" -g "$U" "/home/$U/.ssh"
printf '%s\n' "$AUTH" > "/home/$U/.ssh/authorized_keys"
chown "$U:$U" "/home/$U/.ssh/authorized_keys"; chmod 0600 "/home/$U/.ssh/authorized_keys"
"""


class InstanceStandIn:
    """Watches one workstation's instance in moto and makes the container follow it."""

    def __init__(self, docker: Any, vm: Any, ec2: Any, name: str, user: str = "ubuntu") -> None:
        self.docker, self.vm, self.ec2, self.name, self.user = docker, vm, ec2, name, user
        self.booted: set[str] = set()
        self.sshd = False
        self.errors: list[str] = []
        self.events: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        hosts.exec_in(docker, vm.container_id, _PREPARE)

    def __enter__(self) -> InstanceStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(f"{type(e).__name__}: {e}")
            self._stop.wait(0.3)

    def _tick(self) -> None:
        res = self.ec2.describe_instances(Filters=[{"Name": "tag:mlops-env:name", "Values": [self.name]}])
        insts = [i for r in res["Reservations"] for i in r["Instances"]]
        running = [i for i in insts if i["State"]["Name"] == "running"]
        if running:
            inst = running[0]
            if inst["InstanceId"] not in self.booted:
                self._first_boot(inst)
            if not self.sshd:
                hosts.exec_in(self.docker, self.vm.container_id, ["systemctl", "start", "ssh.service"])
                hosts.wait_for_ssh_banner(self.vm.host, self.vm.port, 20)
                self.sshd = True
                self.events.append(f"sshd up for {inst['InstanceId']}")
        elif self.sshd:
            hosts.exec_in(self.docker, self.vm.container_id, ["systemctl", "stop", "ssh.service"])
            self.sshd = False
            self.events.append("sshd down (instance not running)")

    def _first_boot(self, inst: dict[str, Any]) -> None:
        raw = self.ec2.describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="userData")
        doc = yaml.safe_load(base64.b64decode(raw["UserData"]["Value"]))
        assert doc["ssh_deletekeys"] is True and doc["ssh_genkeytypes"] == []
        keys = doc["ssh_keys"]
        kp = self.ec2.describe_key_pairs(KeyNames=[inst["KeyName"]], IncludePublicKey=True)["KeyPairs"][0]
        hosts.exec_in(self.docker, self.vm.container_id, _FIRST_BOOT, env={
            "PRIV": keys["ed25519_private"].strip(), "PUB": keys["ed25519_public"].strip(),
            "AUTH": kp["PublicKey"].strip(), "U": self.user})
        self.booted.add(inst["InstanceId"])
        self.events.append(f"first boot of {inst['InstanceId']}: host key from user data")

    def host_key(self) -> str:
        out = hosts.exec_in(self.docker, self.vm.container_id, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout
        return " ".join(out.split()[:2])

    def wait_booted(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.booted and time.monotonic() < deadline:
            time.sleep(0.2)
        assert self.booted, self.errors
