"""STAND-IN for an EC2 instance: a systemd container whose first boot is done by the REAL
cloud-init (Debian's ``cloud-init`` package, image ``mlops-env-test/vm-cloudinit:bookworm``
from tests/images/build.py).

moto makes instances that exist only on paper. The black-box tests need one that boots, runs
sshd and can be bootstrapped; what cloud-init does on it (deleting the image's host keys,
installing the key from user data, generating no others, creating the login user ``ubuntu``
with the key pair's key and passwordless sudo, sshd's ordering with the key writing) must be
what cloud-init really does, so nothing of it is played in test code: the container is seeded
through NoCloud with the exact user data ``up ec2`` sent to (moto's) RunInstances and the key
pair's public key as EC2's metadata service would serve it. Only the datasource (NoCloud
instead of EC2's metadata service) and the machine (a container) are stand-ins.

Until the instance runs in moto the container is created but not started, like a VM that has
not booted. mlops-env only ever reaches it through the documented test seam
``MLOPS_ENV_TEST_SSH_ADDRESS_MAP`` (fake public IP -> the container's loopback port,
``InstanceStandIn.port``, chosen before the boot).
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import hosts
import yaml

# ----------------------------------------------------------------------------- real cloud-init

_NOCLOUD = "/var/lib/cloud/seed/nocloud"
AMI_REPO = "mlops-env-test/ami-standin"  # an instance's captured disk, tagged with its instance id
# Socket activation as on Ubuntu 22.10+: sshd is not started at boot, ssh.socket listens and
# starts it on the first connection. Set before the first boot, like an image would have it.
_SOCKET_VARIANT = "systemctl disable ssh.service >/dev/null 2>&1; systemctl enable ssh.socket >/dev/null 2>&1; "


class InstanceStandIn:
    """STAND-IN for an EC2 instance whose first boot is done by the REAL cloud-init.

    A container of ``mlops-env-test/vm-cloudinit:bookworm`` (Debian's ``cloud-init`` package,
    tests/images/build.py) is created (not started) on a loopback port chosen up front. When
    the workstation's instance is ``running`` in moto, its NoCloud seed is written from what
    EC2 would give the instance: ``user-data`` = the exact user data of the instance
    (DescribeInstanceAttribute), ``meta-data`` = instance id, hostname and the key pair's
    public key (``public-keys``, as EC2's metadata service serves it). Then the container
    boots: systemd, cloud-init (host keys: ``ssh_deletekeys``/``ssh_keys``/``ssh_genkeytypes``;
    the default user ``ubuntu`` with the key pair's key), sshd. Instance stopped -> sshd (and
    its socket) stopped; started -> started again (a reboot would keep cloud-init's per-instance
    work, as this does).

    ``socket_activated``: sshd behind ``ssh.socket`` instead of ``ssh.service`` at boot.
    ``self.handshakes``: every host key a probe thread saw from the moment the container
    started (it connects as early and as often as it can), to check the ordering of sshd and
    cloud-init's key writing.
    """

    def __init__(self, docker: Any, ec2: Any, name: str, *, socket_activated: bool = False,
                 capture: bool = False) -> None:
        import socket

        from images.build import CLOUDINIT_IMAGE, ensure_cloudinit_image

        self.docker, self.ec2, self.name, self.socket_activated = docker, ec2, name, socket_activated
        ensure_cloudinit_image(docker)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.host = "127.0.0.1"
        self.booted: set[str] = set()
        self.errors: list[str] = []
        self.events: list[str] = []
        self.handshakes: list[str] = []
        self.running = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._probe_thread: threading.Thread | None = None
        self.capture = capture
        self.captured: str | None = None  # the docker image of this instance's disk, once stopped
        self.image = CLOUDINIT_IMAGE
        self.container_id = self._create_container(CLOUDINIT_IMAGE)

    def _create_container(self, image: str) -> str:
        import os

        from docker.types import Mount
        from images.build import TEST_LABEL

        docker = self.docker
        hc = docker.api.create_host_config(
            cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            cgroupns="private", tmpfs={"/run": "", "/run/lock": ""},
            mounts=[Mount(target="/var/lib/docker", source=None, type="volume")],
            port_bindings={22: ("127.0.0.1", self.port)})
        hc["MaskedPaths"], hc["ReadonlyPaths"] = [], []
        entry = ["/bin/sh", "-c", (_SOCKET_VARIANT if self.socket_activated else "") + 'exec /usr/local/sbin/vm-init-cloud "$@"',
                 "vm-init"]
        resp = docker.api.create_container(
            image, name=f"mlops-env-test-ci-{os.getpid()}-{int(time.time() * 1000) % 10**8}",
            hostname="ip-10-0-0-7", detach=True, ports=[22], stop_signal="SIGRTMIN+3", host_config=hc,
            entrypoint=entry, labels={TEST_LABEL: "1", f"{TEST_LABEL}.pid": str(os.getpid()),
                                      f"{TEST_LABEL}.created": str(int(time.time())), f"{TEST_LABEL}.role": "vm"})
        return str(resp["Id"])

    # -- context -----------------------------------------------------------------------------
    def __enter__(self) -> InstanceStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._probe_thread:
            self._probe_thread.join(timeout=10)
        try:
            self.docker.containers.get(self.container_id).remove(force=True, v=True)
        except Exception:  # noqa: BLE001,S110 - already gone
            pass

    # -- following the instance ----------------------------------------------------------------
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
        # moto stops and terminates at once: the disk is captured even when the tick sees the
        # builder only terminated (nothing ran on it after its stop, so it is the same disk).
        stopped = [i for i in insts if i["State"]["Name"] in ("stopped", "shutting-down", "terminated")]
        if self.capture and stopped and not running and self.booted and not self.captured:
            self._capture(stopped[0])
        elif running and not self.booted:
            self._first_boot(running[0])
        elif running and not self.running:
            self._sshd("start")
        elif not running and self.running and self.booted:
            self._sshd("stop")

    def _sshd(self, verb: str) -> None:
        units = ["ssh.socket"] if self.socket_activated else ["ssh.service"]
        if verb == "stop":
            units = ["ssh.socket", "ssh.service"] if self.socket_activated else units
        hosts.exec_in(self.docker, self.container_id, ["systemctl", verb, *units])
        self.running = verb == "start"
        self.events.append(f"sshd {verb}")

    def seed(self, inst: dict[str, Any]) -> dict[str, str]:
        """The NoCloud seed EC2 would give this instance (user-data, meta-data)."""
        raw = self.ec2.describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="userData")
        user_data = base64.b64decode(raw["UserData"]["Value"]).decode()
        kp = self.ec2.describe_key_pairs(KeyNames=[inst["KeyName"]], IncludePublicKey=True)["KeyPairs"][0]
        meta = yaml.safe_dump({"instance-id": inst["InstanceId"], "local-hostname": "ip-10-0-0-7",
                               "public-keys": [kp["PublicKey"].strip()]})
        return {"user-data": user_data, "meta-data": meta}

    # -- images (CreateImage / RunInstances of that image) ------------------------------------------
    def _capture(self, inst: dict[str, Any]) -> None:
        """The instance stopped: its OS shut down (the container stops) and its disk is what a
        CreateImage snapshots. Captured as the docker image ``AMI_REPO:<instance id>``: the
        container's filesystem plus its /var/lib/docker volume (on EC2 that is on the root disk
        too), so RunInstances of the AMI made from this instance boots exactly this disk."""
        import tempfile

        c = self.docker.containers.get(self.container_id)
        self.running = False
        c.stop(timeout=60)
        self.events.append(f"{inst['InstanceId']} shut down")
        tag = f"{AMI_REPO}:{inst['InstanceId']}"
        base = c.commit(repository=AMI_REPO, tag=f"{inst['InstanceId']}-root")
        with tempfile.TemporaryFile() as tf:
            stream, _ = c.get_archive("/var/lib/docker")
            for chunk in stream:
                tf.write(chunk)
            tf.seek(0)
            tmp = self.docker.api.create_container(base.id, entrypoint=["/bin/true"])
            try:
                if not self.docker.api.put_archive(tmp["Id"], "/var/lib", tf):
                    raise RuntimeError("copying /var/lib/docker into the image failed")
                self.docker.api.commit(tmp["Id"], repository=AMI_REPO, tag=inst["InstanceId"])
            finally:
                self.docker.api.remove_container(tmp["Id"], force=True)
        self.docker.images.remove(f"{AMI_REPO}:{inst['InstanceId']}-root")  # untag: the layer stays as the parent
        self.captured = tag
        self.events.append(f"captured the disk of {inst['InstanceId']} as {tag}")

    def wait_captured(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while not self.captured and time.monotonic() < deadline and not self.errors:
            time.sleep(0.2)
        assert self.captured, (self.errors, self.events)
        return self.captured

    def _image_for(self, inst: dict[str, Any]) -> str | None:
        """The captured disk behind the instance's AMI, found as on AWS: the AMI's snapshot says
        ``Created by CreateImage(i-...) for ami-...``."""
        import re

        imgs = self.ec2.describe_images(ImageIds=[inst["ImageId"]])["Images"]
        snaps = [b["Ebs"]["SnapshotId"] for i in imgs for b in i.get("BlockDeviceMappings") or []
                 if (b.get("Ebs") or {}).get("SnapshotId")]
        for s in self.ec2.describe_snapshots(SnapshotIds=snaps)["Snapshots"] if snaps else []:
            m = re.match(r"Created by CreateImage\((i-[0-9a-f]+)\)", s.get("Description") or "")
            if m:
                tag = f"{AMI_REPO}:{m.group(1)}"
                try:
                    self.docker.images.get(tag)
                    return tag
                except Exception:  # noqa: BLE001 - not captured: an AMI of no stand-in
                    return None
        return None

    def _first_boot(self, inst: dict[str, Any]) -> None:
        import io
        import tarfile

        image = self._image_for(inst)
        if image:
            # RunInstances of an image made from a stand-in: boot that disk instead.
            self.docker.api.remove_container(self.container_id, force=True, v=True)
            self.container_id = self._create_container(image)
            self.image = image
            self.events.append(f"{inst['InstanceId']} boots {inst['ImageId']} = {image}")

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for d in ("var/lib/cloud/seed", "var/lib/cloud/seed/nocloud"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            for fname, text in self.seed(inst).items():
                data = text.encode()
                info = tarfile.TarInfo(f"{_NOCLOUD.lstrip('/')}/{fname}")
                info.size, info.mode = len(data), 0o600
                tf.addfile(info, io.BytesIO(data))
        c = self.docker.containers.get(self.container_id)
        if not c.put_archive("/", buf.getvalue()):
            raise RuntimeError("writing the NoCloud seed failed")
        self._probe_thread = threading.Thread(target=self._probe, daemon=True)
        c.start()
        self._probe_thread.start()
        self.booted.add(inst["InstanceId"])
        self.events.append(f"first boot of {inst['InstanceId']} (real cloud-init, NoCloud seed)")
        status = self.wait_cloud_init()
        self.events.append(f"cloud-init: {status}")
        if self.socket_activated:
            self.running = True
        else:
            # bounded, generous: beside the three-box class e2e on the other worker, 60 s was once not enough
            hosts.wait_for_ssh_banner(self.host, self.port, 180)
            self.running = True

    def wait_cloud_init(self) -> str:
        """Until cloud-init's last stage finished (``result.json``; ``cloud-init status --wait``
        already returns ``error`` when an earlier stage had one, e.g. ``locale``)."""
        deadline = time.monotonic() + 180
        while True:
            r = hosts.exec_in(self.docker, self.container_id,
                              "test -e /run/cloud-init/result.json && cloud-init status", check=False)
            if r.exit_code in (0, 1) and "status:" in r.stdout:
                return r.stdout.strip().splitlines()[-1]
            if time.monotonic() > deadline:
                raise RuntimeError(f"cloud-init did not finish: {r}")
            time.sleep(0.5)  # still booting (exec may even fail before PID 1 is up)

    def _probe(self) -> None:
        """Connect as early and as often as possible during boot; record each host key seen."""
        import logging

        import paramiko

        # Refused handshakes while sshd boots are expected: keep paramiko's tracebacks out of reports.
        logging.getLogger("paramiko.transport").propagate = False
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            import socket

            try:
                with socket.create_connection((self.host, self.port), timeout=3) as s:
                    t = paramiko.Transport(s)
                    t.get_security_options().key_types = ("ssh-ed25519",)
                    t.start_client(timeout=5)
                    k = t.get_remote_server_key()
                    self.handshakes.append(f"{k.get_name()} {k.get_base64()}")
                    t.close()
                if len(self.handshakes) >= 3:
                    return
            except Exception:  # noqa: BLE001,S112 - not up yet: try again
                time.sleep(0.05)
                continue

    def exec(self, cmd: Any, check: bool = True) -> Any:
        return hosts.exec_in(self.docker, self.container_id, cmd, check=check)

    def host_key(self) -> str:
        """The public half of the key at sshd's standard path (derived from the private key)."""
        for _ in range(10):
            # (docker exec with demux has been seen to return no output for a quick command)
            out = self.exec(["ssh-keygen", "-y", "-f", "/etc/ssh/ssh_host_ed25519_key"]).stdout
            if out.strip():
                return " ".join(out.split()[:2])
            time.sleep(0.2)
        raise RuntimeError("the box's host key could not be read")

    def wait_booted(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not (self.booted and self.running) and time.monotonic() < deadline and not self.errors:
            time.sleep(0.2)
        assert self.booted and self.running, self.errors

    def put_file(self, src: Any, dest_dir: str = "/opt/mirror") -> str:
        """Copy a host file onto the box, also before its first boot (a file baked into the
        AMI); returns its ``file://`` URL as resolved on the box."""
        import io
        import tarfile
        from pathlib import Path

        src = Path(src)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            parts = dest_dir.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                info = tarfile.TarInfo("/".join(parts[:i]))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            ti = tf.gettarinfo(str(src), arcname=f"{dest_dir.strip('/')}/{src.name}")
            ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = 0o644, 0, 0, "root", "root"
            with open(src, "rb") as fh:
                tf.addfile(ti, fh)
        if not self.docker.containers.get(self.container_id).put_archive("/", buf.getvalue()):
            raise RuntimeError(f"copying {src} onto the box failed")
        return f"file://{dest_dir.rstrip('/')}/{src.name}"
