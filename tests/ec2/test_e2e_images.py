"""Black box, end to end (issue 13): the INSTALLED ``mlops-env image build ec2`` and ``up ec2
--from-image`` against moto over HTTP (STAND-IN AWS) with systemd containers playing the
instances (STAND-IN, instance_standin.py: first boot by the REAL cloud-init). The builder's
stand-in models CreateImage: when the builder is stopped, its disk (the container's filesystem
and its /var/lib/docker volume) is captured as a docker image; RunInstances of the AMI (found
through the AMI's snapshot, ``Created by CreateImage(i-...)``) boots a container of that image,
again through the real cloud-init. Then: the captured filesystem holds none of what an image
must never hold, and the workstation from the image reports base/docker/conda unchanged and
passes its smoke test with the host key handover and rotation of a fresh ``up ec2``."""

from __future__ import annotations

import subprocess
from typing import Any

from ec2help import FAKE_KEY_ID, FAKE_SECRET, tagged, tags, user_data_host_key
from instance_standin import AMI_REPO, InstanceStandIn

from mlops_env.ssh.keys import split_public_key

NAME = "course-e2e"
WS = "from-img"


def _image_build_tagged(ec2: Any) -> dict[str, list[Any]]:
    f = [{"Name": "tag:mlops-env:image-build", "Values": [NAME]}]
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    return {
        "instances": [i for r in ec2.describe_instances(Filters=[*f, {"Name": "instance-state-name", "Values": live}])
                      ["Reservations"] for i in r["Instances"]],
        "security_groups": ec2.describe_security_groups(Filters=f)["SecurityGroups"],
        "key_pairs": ec2.describe_key_pairs(Filters=f)["KeyPairs"],
        "images": ec2.describe_images(Owners=["self"], Filters=f)["Images"],
        "snapshots": ec2.describe_snapshots(OwnerIds=["self"], Filters=f)["Snapshots"],
    }


# What an image must never contain: each check prints the offending paths (empty = clean).
_LEAKS = r"""
set -u
echo "== host keys"; ls /etc/ssh/ssh_host_* 2>/dev/null
echo "== authorized_keys"; for f in /root/.ssh/authorized_keys* /home/*/.ssh/authorized_keys*; do [ -s "$f" ] && echo "$f"; done
echo "== mlops-env key"; grep -rlsF "$1" /etc /root /home /var/lib /opt 2>/dev/null
echo "== private keys"; grep -rlsE "BEGIN (OPENSSH|RSA|EC) PRIVATE KEY" /etc /root /home /var/lib/cloud /var/log /opt 2>/dev/null
echo "== histories"; ls -d /root/.*history /home/*/.*history 2>/dev/null
echo "== cloud-init state"; ls -d /var/lib/cloud/instance /var/lib/cloud/instances /var/lib/cloud/seed /var/log/cloud-init*.log 2>/dev/null
echo "== installer download"; ls -d /home/*/.cache/mlops-env/installers /root/.cache/mlops-env/installers 2>/dev/null
echo "== apt lists"; ls /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$'
echo "== credentials"; ls -d /root/.aws /home/*/.aws /home/*/.docker/config.json /home/*/.git-credentials /home/*/.netrc /home/*/.config/gh 2>/dev/null
echo "== aws secrets"; grep -rlsF -e "$2" -e "$3" /etc /root /home /var/lib/cloud /var/log /opt /tmp 2>/dev/null
echo "== smoke stamp"; ls /home/*/.mlops-env/smoke/passed 2>/dev/null
echo "== idle agent"; ls /etc/mlops-env/idle-stop.conf /var/lib/mlops-env/idle-stop 2>/dev/null
echo "== end"
"""


def _leaks(image: str, pubkey_b64: str) -> dict[str, list[str]]:
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "bash", image, "-c", _LEAKS,  # noqa: S603,S607
                          "leaks", pubkey_b64, FAKE_SECRET, FAKE_KEY_ID],
                         capture_output=True, text=True, timeout=120, check=False)
    assert "== end" in out.stdout, out.stderr
    found: dict[str, list[str]] = {}
    section = ""
    for line in out.stdout.splitlines():
        if line.startswith("== "):
            section = line[3:]
            found[section] = []
        elif line.strip():
            found[section].append(line.strip())
    found.pop("end", None)
    return found


def test_image_build_ec2_then_up_from_image_is_unchanged_and_clean(
        make_user: Any, moto_server: Any, docker_engine: Any, cloudinit_image: Any, standin_conda_installer: Any) -> None:
    ec2 = moto_server.client()
    made: list[Any] = []
    try:
        with InstanceStandIn(docker_engine, ec2, f"image-build.{NAME}", capture=True) as builder:
            made.append(builder)
            url = builder.put_file(standin_conda_installer.path)  # the AMI's own mirror file
            u = make_user(ssh_target=f"127.0.0.1:{builder.port}")
            boot = ("--smoke-test", "sample", "--conda-installer", url, "--conda-sha256",
                    standin_conda_installer.sha256, "--accept-anaconda-tos", "--ssh-timeout", "120")
            # 1. The build: a builder instance, the steps, generalize, stop, CreateImage, builder removed.
            r = u.mlops("--json", "image", "build", "ec2", NAME, *boot)
            assert r.code == 0, r.stdout + r.stderr[-3000:] + str(builder.errors)
            data = r.data
            assert data["action"] == "created" and data["recipe"] == "current" and data["provider"] == "ec2"
            assert data["builder"]["instance_type"] == "t3.xlarge" and data["builder"]["compute_usd"] >= 0
            assert data["storage_estimate"]["usd_per_month_at_most"] == 1.5  # 30 GB x $0.05, shown before
            left = _image_build_tagged(ec2)
            assert left["instances"] == [] and left["security_groups"] == [] and left["key_pairs"] == []
            (img,) = left["images"]
            assert img["ImageId"] == data["id"] and tags(img)["mlops-env:image:distribution"] == "anaconda"
            assert left["snapshots"] and all(tags(s)["mlops-env:image-build"] == NAME for s in left["snapshots"])
            captured = builder.wait_captured()

        # 2. The captured disk (what the AMI holds) is generalized.
        (pubfile,) = u.root.rglob("keys/id_ed25519.pub")  # mlops-env's own client key
        pub = pubfile.read_text().split()[1]
        leaks = _leaks(captured, pub)
        assert leaks and all(v == [] for v in leaks.values()), leaks
        kept = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "bash", captured, "-c",  # noqa: S603,S607
                               "ls -d /home/ubuntu/anaconda3/bin/conda /usr/bin/docker /home/ubuntu/.mlops-env/docker-verified "
                               "/var/lib/docker/image"], capture_output=True, text=True, check=False)
        assert kept.returncode == 0, kept.stderr  # ...and keeps the bootstrap

        # 3. A workstation from the image: RunInstances of the AMI boots the captured disk.
        with InstanceStandIn(docker_engine, ec2, WS) as box:
            env = dict(u.env, MLOPS_ENV_TEST_SSH_ADDRESS_MAP=f"*=127.0.0.1:{box.port}")
            up = u.mlops("--json", "up", "ec2", WS, "--from-image", NAME, *boot, env=env)
            assert up.code == 0, up.stdout + up.stderr[-3000:] + str(box.errors) + str(box.events)
            assert box.image == captured, box.events
            steps = {s["id"]: s["status"] for s in up.data["steps"]}
            assert steps["base"] == steps["docker"] == steps["conda"] == "unchanged", steps
            assert steps["smoke"] == "changed" and steps["provision"] == "changed", steps
            (inst,) = tagged(ec2, WS)["instances"]
            assert inst["ImageId"] == data["id"] and tags(inst)["mlops-env:from-image"] == NAME
            assert inst["MetadataOptions"]["HttpTokens"] == "required"
            # host key handover by the real cloud-init on the image's (first) boot, then rotated
            ud_key, _ = user_data_host_key(ec2, inst["InstanceId"])
            assert split_public_key(box.handshakes[0]) == split_public_key(ud_key)
            served = " ".join(split_public_key(box.host_key()))
            assert served != " ".join(split_public_key(ud_key))
            pinned = [ln for ln in (u.root / "ssh" / "known_hosts").read_text().splitlines() if ln.startswith(f"mlops-env-{WS} ")]
            assert pinned == [f"mlops-env-{WS} {served}"]
            s = u.ssh(f"mlops-{WS}", "docker run --rm --network none mlops-env/probe:1 && ~/anaconda3/bin/conda --version")
            assert s.returncode == 0 and "conda" in s.stdout, s.stderr
            assert box.exec(["test", "-f", "/etc/mlops-env/idle-stop.conf"], check=False).exit_code == 0  # idle stop as fresh

            # 4. image list shows it in use; delete warns, deregisters, deletes the snapshots.
            ls = u.mlops("--json", "image", "list", "--region", "eu-west-1")
            (row,) = [x for x in ls.data["images"] if x["name"] == NAME]
            assert row["in_use_by"] == [WS] and row["provider"] == "ec2" and row["monthly_cost_usd"] > 0
            d = u.mlops("--json", "image", "delete", NAME, "--region", "eu-west-1", "--yes")
            assert d.code == 0, d.stdout + d.stderr
            assert d.data["in_use_by"] == [WS] and "keep running" in d.stderr
            assert all(v == [] for v in _image_build_tagged(ec2).values())
            assert u.mlops("--json", "down", WS, "--yes").code == 0
            assert not box.errors, box.errors
    finally:
        # Only this run's captured disks (tagged with its own builder's instance ids).
        for b in made:
            for iid in b.booted:
                for tag in (f"{AMI_REPO}:{iid}", f"{AMI_REPO}:{iid}-root"):
                    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)  # noqa: S603,S607


def test_image_build_ec2_killed_during_the_steps_is_cleaned_by_image_delete(
        make_user: Any, moto_server: Any, docker_engine: Any, cloudinit_image: Any) -> None:
    """SIGKILL of the installed CLI while the builder runs the steps (a real box, a real SSH
    session): the builder's instance, key pair and security group stay, tagged; `image delete`
    finds and removes them and the phase file, and verifies that nothing tagged remains."""
    import json
    import signal
    import time

    name = "killed-e2e"
    ec2 = moto_server.client()
    with InstanceStandIn(docker_engine, ec2, f"image-build.{name}") as builder:
        u = make_user(ssh_target=f"127.0.0.1:{builder.port}")
        proc = u.popen("--json", "image", "build", "ec2", name, "--python-dist", "miniforge", "--smoke-test", "off",
                       "--ssh-timeout", "120")
        state = u.root / "images" / f"{name}.json"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if state.exists() and json.loads(state.read_text()).get("phase") == "steps" and builder.booted:
                time.sleep(3)  # into the steps over SSH
                break
            time.sleep(0.2)
        assert proc.poll() is None, u.wait(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        f = [{"Name": "tag:mlops-env:image-build", "Values": [name]}]
        live = [i for r in ec2.describe_instances(Filters=[*f, {"Name": "instance-state-name", "Values": ["running"]}])
                ["Reservations"] for i in r["Instances"]]
        assert len(live) == 1 and json.loads(state.read_text())["phase"] == "steps"

        d = u.mlops("--json", "image", "delete", name, "--region", "eu-west-1", "--yes")
        assert d.code == 0, d.stdout + d.stderr
        assert d.data["deleted"] is False and any("instance" in x for x in d.data["removed"]), d.data
        assert d.data["verified"] == f"nothing tagged mlops-env:image-build={name} remains in eu-west-1"
        left = {k: v for k, v in {
            "instances": [i for r in ec2.describe_instances(Filters=[*f, {"Name": "instance-state-name", "Values": [
                "pending", "running", "stopping", "stopped"]}])["Reservations"] for i in r["Instances"]],
            "groups": ec2.describe_security_groups(Filters=f)["SecurityGroups"],
            "key_pairs": ec2.describe_key_pairs(Filters=f)["KeyPairs"]}.items() if v}
        assert left == {} and not state.exists()
