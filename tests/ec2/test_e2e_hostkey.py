"""Black box: the host key from user data is retired (issue 11.3, docs/ec2.md "Host key").

The INSTALLED ``mlops-env up ec2`` against moto over HTTP (STAND-IN AWS) with a systemd
container playing the instance (STAND-IN, instance_standin.py; its first boot is the real
cloud-init's). A run is killed with SIGKILL
right after each phase of the rotation through the documented test-only seam
``MLOPS_ENV_TEST_HOSTKEY_KILL_AT`` (the process kills itself at that point: an observable,
deterministic place, no sleeps); the next run must still connect and carry on. After each
kill the system OpenSSH client, with only what mlops-env wrote, must reach the box."""

from __future__ import annotations

from typing import Any

from ec2help import tagged, tags, user_data_host_key
from instance_standin import InstanceStandIn

from mlops_env.ssh.keys import fingerprint_of, split_public_key

PHASES = ("prepared", "switched", "confirmed", "retired", "tagged", "done")


def _key(line: str) -> str:
    return " ".join(split_public_key(line))


def _pinned(u: Any, name: str) -> list[str]:
    text = (u.root / "ssh" / "known_hosts").read_text()
    return [" ".join(ln.split()[1:3]) for ln in text.splitlines() if ln.startswith(f"mlops-env-{name} ")]


def _box_files(box: Any) -> str:
    return box.exec( "ls /etc/ssh/mlops-env /etc/ssh/sshd_config.d 2>&1; "
                         "ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key").stdout


def _check_mode(box: Any, key: str) -> Any:
    from mlops_env.paths import templates_dir

    script = (templates_dir() / "hostkey-rotate.sh").read_text()
    return box.exec(["bash", "-c", script, "hostkey-rotate.sh", "check", key.split()[1]], check=False)


def test_rotation_killed_after_every_phase_still_connects_and_finishes(
        make_user: Any, moto_server: Any, docker_engine: Any, cloudinit_image: Any) -> None:
    name = "hk-kill"
    alias = f"mlops-{name}"
    ec2 = moto_server.client()
    up = ("--json", "up", "ec2", name, "--smoke-test", "off", "--python-dist", "miniforge", "--ssh-timeout", "30")
    with InstanceStandIn(docker_engine, ec2, name) as box:
        u = make_user(ssh_target=f"127.0.0.1:{box.port}")
        r = u.mlops("--json", "up", "ec2", name, "--provision-only")  # pins the user-data key, no connection
        assert r.code == 0, r.stdout + r.stderr
        box.wait_booted()
        iid = tagged(ec2, name)["instances"][0]["InstanceId"]
        k0 = _key(user_data_host_key(ec2, iid)[0])
        assert _pinned(u, name) == [k0] == [_key(box.host_key())]
        new = None
        for phase in PHASES:
            run = u.mlops(*up, env=dict(u.env, MLOPS_ENV_TEST_HOSTKEY_KILL_AT=phase))
            assert run.code == -9, f"{phase}: {run.code} {run.stdout} {run.stderr[-2000:]}"
            pins = _pinned(u, name)
            if phase == "prepared":
                assert pins[0] == k0 and len(pins) == 2, pins  # both accepted, the served one first
                new = pins[1]
                assert _key(box.host_key()) == k0  # not switched yet
            assert new is not None
            if phase == "switched":
                assert sorted(pins) == sorted([k0, new])
                served = box.exec("cat /etc/ssh/sshd_config.d/00-mlops-env-hostkey.conf")
                assert "HostKey /etc/ssh/mlops-env/ssh_host_ed25519_key" in served.stdout
            if phase in ("confirmed", "retired", "tagged", "done"):
                assert pins == [new], (phase, pins)  # confirmed: the user-data key is no longer trusted
            if phase in ("retired", "tagged", "done"):
                files = _box_files(box)
                assert "No such file" in files and new.split()[1] in files and k0.split()[1] not in files, files
            want_tag = new if phase in ("tagged", "done") else k0
            assert _key(tags(tagged(ec2, name)["instances"][0])["mlops-env:host-key"]) == want_tag, phase
            # OpenSSH, with only the files mlops-env wrote, reaches the box after every kill.
            s = u.ssh(alias, "true")
            assert s.returncode == 0, (phase, s.stderr)
        # The next run has nothing left to rotate; status says which key is pinned.
        st = u.mlops("--json", "status", name)
        assert st.code == 0, st.stdout + st.stderr
        hk = st.data["live"]["host_key"]
        assert hk["fingerprint"] == fingerprint_of(new or "") and hk["origin"] == "box" and hk["user_data_key_retired"]
        assert hk["pinned"] == [fingerprint_of(new or "")]
        human = u.mlops("status", name)
        assert "made on the box; the key from user data is retired" in human.stdout + human.stderr
        assert _check_mode(box, new or "").exit_code == 0  # the script's own read-only check
        assert _check_mode(box, k0).exit_code == 1
        again = u.mlops(*up, env=dict(u.env, MLOPS_ENV_TEST_HOSTKEY_KILL_AT="after-rotation"))
        assert again.code == -9 and "replacing the SSH host key" not in again.stderr, again.stderr[-2000:]
        assert _pinned(u, name) == [new] and _key(box.host_key()) == new
        assert not box.errors, box.errors
        assert u.mlops("--json", "down", name, "--yes").code == 0


def test_a_failed_rotation_keeps_the_user_data_key_and_says_so(
        make_user: Any, moto_server: Any, docker_engine: Any, cloudinit_image: Any) -> None:
    name = "hk-fail"
    ec2 = moto_server.client()
    with InstanceStandIn(docker_engine, ec2, name) as box:
        u = make_user(ssh_target=f"127.0.0.1:{box.port}")
        assert u.mlops("--json", "up", "ec2", name, "--provision-only").code == 0
        box.wait_booted()
        k0 = _key(box.host_key())
        # An sshd that does not read sshd_config.d cannot be switched by a drop-in.
        box.exec("sed -i 's/^Include /#Include /' /etc/ssh/sshd_config")
        run = u.mlops("--json", "up", "ec2", name, "--smoke-test", "off", "--python-dist", "miniforge",
                      env=dict(u.env, MLOPS_ENV_TEST_HOSTKEY_KILL_AT="after-rotation"))
        assert run.code == -9, run.stdout + run.stderr[-2000:]
        assert "the SSH host key from user data was not replaced" in run.stderr
        assert "sshd does not read /etc/ssh/sshd_config.d" in run.stderr
        assert _pinned(u, name) == [k0] and _key(box.host_key()) == k0
        files = _box_files(box)
        assert "00-mlops-env-hostkey.conf" not in files and files.count("No such file") == 1, files
        assert u.ssh(f"mlops-{name}", "true").returncode == 0
        st = u.mlops("--json", "status", name)
        assert st.data["live"]["host_key"]["origin"] == "user-data"
        assert not st.data["live"]["host_key"]["user_data_key_retired"]
        assert u.mlops("--json", "down", name, "--yes").code == 0
