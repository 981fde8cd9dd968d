"""Black box, end to end: the INSTALLED ``mlops-env up ec2`` against moto over HTTP (STAND-IN
AWS, moto_launcher.py) with a systemd container playing the instance (STAND-IN, see
instance_standin.py: its first boot is done by the real cloud-init, seeded with the instance's
user data and key pair). The SSH address of the fake instance is redirected to the container by the
documented test-only seam MLOPS_ENV_TEST_SSH_ADDRESS_MAP; everything else is the real path,
including the full bootstrap with the STAND-IN Anaconda installer (tests/standin)."""

from __future__ import annotations

from typing import Any

import hosts
from ec2help import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    USER_SSH_CONFIG,
    Forwarder,
    tagged,
    tags,
    user_data_host_key,
)
from instance_standin import InstanceStandIn

from mlops_env.ssh.keys import split_public_key

NAME = "e2e-ec2"


def test_up_ec2_full_bootstrap_stop_start_down(make_user: Any, moto_server: Any,
                                               docker_engine: Any, cloudinit_image: Any, standin_conda_installer: Any) -> None:
    ec2 = moto_server.client()
    with InstanceStandIn(docker_engine, ec2, NAME) as box:
        url = box.put_file(standin_conda_installer.path)
        u = make_user(ssh_target=f"127.0.0.1:{box.port}")
        args = ("--json", "up", "ec2", NAME, "--smoke-test", "sample", "--conda-installer", url,
                "--conda-sha256", standin_conda_installer.sha256, "--accept-anaconda-tos", "--ssh-timeout", "120")
        # 1. First up: instance created in moto, the container boots (real cloud-init installs
        # the user-data host key), the pipeline connects with that key pinned beforehand,
        # replaces it with a key made on the box, and bootstraps everything.
        r = u.mlops(*args)
        assert r.code == 0, r.stdout + r.stderr[-3000:] + str(box.errors)
        steps = {s["id"]: s["status"] for s in r.data["steps"]}
        assert {"provision", "base", "conda", "docker", "smoke", "ssh-config"} <= set(steps), steps
        assert set(steps.values()) == {"changed"}, steps
        assert (r.data["user"], r.data["alias"]) == ("ubuntu", f"mlops-{NAME}")
        assert r.data["cost"]["instance_type"] == "t3.xlarge"
        inst = tagged(ec2, NAME)["instances"][0]
        public, _ = user_data_host_key(ec2, inst["InstanceId"])
        pinned = [ln for ln in (u.root / "ssh" / "known_hosts").read_text().splitlines() if ln.startswith("mlops-env-")]
        served = " ".join(split_public_key(box.host_key()))
        assert pinned == [f"mlops-env-{NAME} {served}"]  # what we pinned is what the box serves...
        assert served != " ".join(split_public_key(public))  # ...a key made on the box, not the user-data one
        assert split_public_key(public) == split_public_key(box.handshakes[0])  # (the first boot served that)
        assert split_public_key(tags(inst)["mlops-env:host-key"]) == split_public_key(served)  # the tag followed
        s = u.ssh(f"mlops-{NAME}", "docker run --rm --network none mlops-env/probe:1 && ~/anaconda3/bin/conda --version")
        assert s.returncode == 0 and "conda" in s.stdout, s.stderr
        # AWS credentials never reach the box (nor the tool's logs and state).
        leak = hosts.exec_in(docker_engine, box.container_id, ["sh", "-c", f"test ! -e /home/ubuntu/.aws && ! grep -rqs "
                             f"-e {FAKE_SECRET} -e {FAKE_KEY_ID} /home /etc /root /tmp /var/tmp"], check=False)
        assert leak.exit_code == 0, leak
        assert not [f for f in u.root.rglob("*") if f.is_file() and FAKE_SECRET in f.read_text(errors="replace")]

        # 2. Second up: nothing created, nothing changed, one connection.
        again = u.mlops(*args)
        assert again.code == 0, again.stdout + again.stderr[-2000:]
        assert set(s["status"] for s in again.data["steps"]) == {"unchanged"}
        assert len(tagged(ec2, NAME)["instances"]) == 1 and again.data["ssh_connections"] == 1

        # 3. stop: the instance stops (and the box's sshd with it).
        st = u.mlops("--json", "stop", NAME, "--yes")
        assert st.code == 0, st.stdout + st.stderr
        assert tagged(ec2, NAME)["instances"][0]["State"]["Name"] == "stopped"
        assert "GB disk is kept" in st.data["result"]
        old_ip = inst["PublicIpAddress"]

        # 4. start: a new public IP; the box answers at a new address (a forwarder plays it) and
        # start rewrites the SSH config entry, so plain `ssh ALIAS` works without another up.
        fwd = Forwarder(box.port)
        try:
            env = dict(u.env, MLOPS_ENV_TEST_SSH_ADDRESS_MAP=f"*=127.0.0.1:{fwd.port}")
            sr = u.mlops("--json", "start", NAME, env=env)
            assert sr.code == 0, sr.stdout + sr.stderr
            assert sr.data["ssh_config_rewritten"] is True
            new = tagged(ec2, NAME)["instances"][0]
            assert new["State"]["Name"] == "running" and new["PublicIpAddress"] != old_ip
            assert new["PublicIpAddress"] in sr.data["result"]
            cfg = (u.root / "ssh" / "config").read_text()
            assert f"Port {fwd.port}" in cfg and f"Port {box.port}" not in cfg
            box_events = len(box.events)
            s2 = u.ssh(f"mlops-{NAME}", "true")
            assert s2.returncode == 0, s2.stderr + str(box.events[box_events:])
            assert fwd.connections >= 1  # it went to the new address
            status = u.mlops("--json", "status", NAME, env=env)
            assert status.data["live"]["public_ip"] == new["PublicIpAddress"]
        finally:
            fwd.close()

        # 5. down: nothing tagged with the name remains; the user's ssh config is theirs again.
        d = u.mlops("--json", "down", NAME, "--yes")
        assert d.code == 0, d.stdout + d.stderr
        assert f"verified: nothing tagged mlops-env:name={NAME} remains in eu-west-1" in d.data["removed"]
        assert all(v == [] for v in tagged(ec2, NAME).values())
        assert u.ssh_config.read_bytes() == USER_SSH_CONFIG
        assert not box.errors, box.errors
