"""Black box against the REAL cloud-init (issue 11.11): the instance stand-in boots with
Debian's ``cloud-init`` package, seeded (NoCloud) with the exact user data ``up ec2`` sent to
(moto's, STAND-IN) RunInstances and the key pair's public key as EC2's metadata serves it.
What is checked is what cloud-init really did: the host key handover (``ssh_keys``), the
image's keys deleted and none generated (``ssh_deletekeys``, ``ssh_genkeytypes``), the login
user, the schema of our user data, and sshd's ordering with the key writing, also when sshd
is socket-activated (``ssh.socket``, as on Ubuntu 22.10+). Then ``up`` retires the user-data
key on that box."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ec2help import tagged, user_data_host_key
from instance_standin import InstanceStandIn

from mlops_env.ssh.keys import split_public_key


def _key(line: str) -> str:
    return " ".join(split_public_key(line))


def _monotonic(box: Any, unit: str, prop: str) -> int:
    out = box.exec(["systemctl", "show", "-p", prop, "--value", unit]).stdout.strip()
    return int(out or 0)


@pytest.mark.parametrize("socket_activated", [False, True], ids=["ssh.service", "ssh.socket"])
def test_real_cloud_init_installs_our_host_key_and_user_then_up_retires_it(
        make_user: Any, moto_server: Any, docker_engine: Any, cloudinit_image: Any, socket_activated: bool) -> None:
    name = "ci-sock" if socket_activated else "ci-svc"
    ec2 = moto_server.client()
    with InstanceStandIn(docker_engine, ec2, name, socket_activated=socket_activated) as box:
        u = make_user(ssh_target=f"127.0.0.1:{box.port}")
        r = u.mlops("--json", "up", "ec2", name, "--provision-only")
        assert r.code == 0, r.stdout + r.stderr
        box.wait_booted()
        inst = tagged(ec2, name)["instances"][0]
        k0 = _key(user_data_host_key(ec2, inst["InstanceId"])[0])

        # What cloud-init did. Its only failing module is `locale` (a minimal rootfs has no
        # locales), harmless; every module that matters here ran without error.
        result = json.loads(box.exec(["cat", "/run/cloud-init/result.json"]).stdout)["v1"]
        assert all("locale" in e for e in result["errors"]), result["errors"]
        assert result["datasource"].startswith("DataSourceNoCloud")
        schema = box.exec(["cloud-init", "schema", "--system"], check=False)
        assert schema.exit_code == 0, schema.stdout + schema.stderr  # our user data is valid cloud-config
        keys = box.exec("ls /etc/ssh | grep '^ssh_host_' | sort").stdout.split()
        assert keys == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]  # deleted + none generated
        assert _key(box.host_key()) == k0
        kp = ec2.describe_key_pairs(KeyNames=[inst["KeyName"]], IncludePublicKey=True)["KeyPairs"][0]
        auth = box.exec(["cat", "/home/ubuntu/.ssh/authorized_keys"]).stdout
        assert _key(kp["PublicKey"]) in {_key(ln) for ln in auth.splitlines() if ln.strip()}
        who = u.ssh(f"mlops-{name}", "id -un && sudo -n true && echo sudo-ok")
        assert who.returncode == 0 and who.stdout.split() == ["ubuntu", "sudo-ok"], who.stderr

        # Ordering: sshd never presented anything but our key, from the first connection the
        # probe got through during boot (it connects as early and as often as it can), and it
        # started listening only after cloud-init had written the key.
        assert box.handshakes and {_key(k) for k in box.handshakes} == {k0}, box.handshakes
        ci_done = _monotonic(box, "cloud-init.service", "ExecMainExitTimestampMonotonic")
        listener = "ssh.socket" if socket_activated else "ssh.service"
        assert box.exec(["systemctl", "is-enabled", listener]).stdout.strip() == "enabled"
        if socket_activated:
            assert box.exec(["systemctl", "is-enabled", "ssh.service"], check=False).stdout.strip() == "disabled"
        journal = box.exec(["journalctl", "-b", "-o", "cat", "--no-pager"]).stdout.splitlines()
        first_listen = next(i for i, ln in enumerate(journal) if ln.startswith(("Listening on ssh.socket",
                                                                                   "Server listening on")))
        ci_finished = next(i for i, ln in enumerate(journal) if ln.startswith("Finished cloud-init.service"))
        assert ci_finished < first_listen, journal[ci_finished - 2:first_listen + 2]
        assert ci_done > 0 and _monotonic(box, "ssh.socket" if socket_activated else "ssh.service",
                                          "ActiveEnterTimestampMonotonic") > ci_done

        # up: the first verified connection retires the user-data key (killed right after the
        # rotation, before the long bootstrap, through the documented test seam).
        run = u.mlops("--json", "up", "ec2", name, "--smoke-test", "off", "--python-dist", "miniforge",
                      env=dict(u.env, MLOPS_ENV_TEST_HOSTKEY_KILL_AT="after-rotation"))
        assert run.code == -9 and "not replaced" not in run.stderr, run.stderr[-3000:]
        served = _key(box.host_key())
        assert served != k0
        pinned = [" ".join(ln.split()[1:3]) for ln in (u.root / "ssh" / "known_hosts").read_text().splitlines()
                  if ln.startswith(f"mlops-env-{name} ")]
        assert pinned == [served]
        assert box.exec("ls /etc/ssh/mlops-env /etc/ssh/sshd_config.d/00-mlops-env-hostkey.conf",
                        check=False).exit_code != 0
        assert u.ssh(f"mlops-{name}", "true").returncode == 0
        assert not box.errors, box.errors
        assert u.mlops("--json", "down", name, "--yes").code == 0
