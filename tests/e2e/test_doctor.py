"""`mlops-env doctor` end to end: the INSTALLED CLI against a real systemd Debian 12 container
(tests/hosts.py, a fresh-VM stand-in) over real SSH, in each deliberately broken state of
issue 5, and `doctor --fix` repairing what `up`'s steps can. The Anaconda installer is the
STAND-IN from tests/standin (repo.anaconda.com is unreachable here), served on the box as a
file:// mirror with its real sha256.

One box is shared by the module (a fresh container costs seconds, its docker and conda
install about 20 s): the first checks and `--fix` run on it fresh, `up ssh` then makes it a
known workstation, and each later test breaks one thing, checks the report, fixes it and
checks again, leaving the box healthy for the next. The unsupported-OS box is its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import hosts
import pytest
from e2ehelp import Env, Run

SHRINK_HOME = r"""
set -e
U=$1; SIZE=$2; FILL=$3; H=/home/$U
mkdir -p /run/orig-home && mount --bind "$H" /run/orig-home
mount -t tmpfs -o "size=$SIZE,mode=0755" tmpfs "$H"
chown "$U:$U" "$H"
# the real home's entries stay visible (ssh keys, conda) through bind mounts inside the tmpfs
for p in /run/orig-home/.[!.]* /run/orig-home/*; do
  [ -e "$p" ] || continue
  n=$(basename "$p")
  if [ -d "$p" ]; then mkdir "$H/$n"; else touch "$H/$n"; fi
  mount --bind "$p" "$H/$n"
done
if [ "$FILL" -gt 0 ]; then dd if=/dev/zero of="$H/fill" bs=1M count="$FILL" status=none; fi
"""
RESTORE_HOME = 'umount -R "/home/$1" && umount /run/orig-home'


def checks(run: Run) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in run.data["checks"]}


@dataclass
class Box:
    vm: Any
    env: Env
    engine: Any
    url: str
    sha: str
    fresh: Run
    refused: Run
    conda_after_refused: bool
    fixed: Run
    fix_seconds: float

    def sh(self, cmd: str, *args: str, check: bool = True) -> hosts.ExecResult:
        return hosts.exec_in(self.engine, self.vm.container_id, ["sh", "-c", cmd, "sh", *args], check=check)

    def host_args(self) -> list[str]:
        return ["--host", self.vm.host_spec, "--identity", str(self.vm.identity),
                "--host-key-fingerprint", self.vm.host_key_fingerprint, "--ssh-timeout", "20"]

    def mirror_args(self) -> list[str]:
        return ["--conda-installer", self.url, "--conda-sha256", self.sha, "--accept-anaconda-tos"]


@pytest.fixture(scope="module")
def box(vm_host_module: Any, module_env: Env, docker_engine: Any, standin_conda_installer: Any) -> Box:
    vm = vm_host_module(user="ubuntu")
    url = hosts.mirror_into(docker_engine, vm.container_id, standin_conda_installer.path)
    b = Box(vm, module_env, docker_engine, url, standin_conda_installer.sha256, None, None, False, None, 0.0)  # type: ignore[arg-type]
    b.fresh = module_env.mlops("--json", "doctor", *b.host_args())
    b.refused = module_env.mlops("--json", "doctor", *b.host_args(), "--fix", *b.mirror_args())
    b.conda_after_refused = b.sh("test -e /home/ubuntu/anaconda3", check=False).ok
    t0 = time.monotonic()
    b.fixed = module_env.mlops("--json", "doctor", *b.host_args(), "--fix", "--yes", *b.mirror_args())
    b.fix_seconds = time.monotonic() - t0
    return b


@pytest.fixture(scope="module")
def ws(box: Box) -> Box:
    """The same box made a known workstation `ws` by `up ssh` (its pinned key, its options)."""
    r = box.env.mlops("--json", "up", "ssh", "ws", "--host", box.vm.host_spec, "--identity", str(box.vm.identity),
                      "--host-key-fingerprint", box.vm.host_key_fingerprint, "--smoke-test", "sample",
                      *box.mirror_args())
    assert r.code == 0, r.stdout + r.stderr
    return box


# -- a fresh box -----------------------------------------------------------------------------
def test_fresh_box_no_conda_no_docker(box: Box) -> None:
    r = box.fresh
    assert r.code == 1, r.stdout + r.stderr
    c = checks(r)
    assert c["system.os"]["status"] == "ok" and "Debian GNU/Linux 12" in c["system.os"]["message"]
    assert c["python.conda"]["status"] == "fail"
    assert c["python.conda"]["message"] == "conda is not installed in ~/anaconda3"
    assert f"run `mlops-env doctor --host {box.vm.host_spec} --fix`" in c["python.conda"]["hint"]
    assert c["docker.engine"]["status"] == "fail" and "apt-get install docker.io" in c["docker.engine"]["hint"]
    assert c["docker.daemon"]["status"] == "skip"
    assert r.data["fixable_steps"] == ["base", "conda", "docker"]
    # one SSH login (plus the first-contact host key probe), every check in one round-trip
    assert (r.data["ssh_connections"], r.data["ssh_round_trips"]) == (2, 1)
    assert r.data["seconds"] < 10
    # a look at a box we do not manage pins nothing
    assert not (box.env.root / "ssh" / "known_hosts").exists()


def test_fix_needs_a_yes_without_a_terminal(box: Box) -> None:
    assert box.refused.code == 2, box.refused.stdout + box.refused.stderr
    assert box.refused.error["code"] == "confirmation-required" and "--yes" in box.refused.error["hint"]
    assert not box.conda_after_refused


def test_fix_installs_conda_and_docker_then_reports_them_ok(box: Box) -> None:
    r = box.fixed
    assert r.code == 0, r.stdout + r.stderr
    assert {s["id"]: s["status"] for s in r.data["fix"]["steps"]} == {
        "base": "changed", "conda": "changed", "docker": "changed"}
    assert r.data["fix"]["before_summary"]["fail"] >= 3 and r.data["summary"]["fail"] == 0
    c = checks(r)
    for cid in ("python.conda", "python.conda-init", "python.libraries", "python.terms", "docker.engine",
                "docker.daemon", "docker.compose", "docker.access", "docker.run", "tools.git", "tools.packages"):
        assert c[cid]["status"] == "ok", (cid, c[cid])
    assert c["python.conda"]["message"] == "conda 24.5.0 in ~/anaconda3"  # the STAND-IN's conda
    assert c["docker.compose"]["message"].startswith("Compose 1.29")  # bookworm's v1
    # really usable on the box, as the user, in a new login
    s = hosts.ssh_run(box.vm, "docker run --rm --network none mlops-env/probe:1 && ~/anaconda3/bin/python -c "
                      "'import pandas, sklearn, pyarrow; print(42)'",
                      known_hosts=hosts.write_known_hosts(box.env.root.parent / "kh-fix", box.vm),
                      identity=box.vm.identity)
    assert s.returncode == 0 and s.stdout.split() == ["ok", "42"], s.stderr


# -- a known workstation, broken one way at a time -------------------------------------------
def test_known_workstation_ready(ws: Box) -> None:
    r = ws.env.mlops("--json", "doctor", "ws")
    assert r.code == 0, r.stdout + r.stderr
    assert (r.data["ssh_connections"], r.data["ssh_round_trips"]) == (1, 1)
    c = checks(r)
    assert c["python.smoke"]["status"] == "ok" and "sample" in c["python.smoke"]["message"]
    assert c["local.ssh-include"]["status"] == "ok" and c["local.ssh-hosts"]["status"] == "ok"
    assert c["local.ssh-key"]["status"] == "ok"
    human = ws.env.mlops("doctor", "ws")
    assert human.code == 0
    lines = human.stdout.splitlines()
    assert lines[0].startswith("Doctor summary for workstation ws (ubuntu@127.0.0.1:")
    assert any(ln.startswith("[✓] Docker: Docker Engine 20.10") for ln in lines)
    assert lines[-2].startswith("✓ No problems found")


def test_conda_without_pandas(ws: Box) -> None:
    ws.sh("rm -rf /home/ubuntu/anaconda3/lib/python3*/site-packages/pandas "
          "/home/ubuntu/anaconda3/lib/python3*/site-packages/pandas-*")
    r = ws.env.mlops("--json", "doctor", "ws", "--only", "python")
    assert r.code == 1
    lib = checks(r)["python.libraries"]
    assert (lib["status"], lib["message"]) == ("fail", "the base env cannot import: pandas")
    assert "`~/anaconda3/bin/conda install -n base pandas`" in lib["hint"]
    assert "run `mlops-env doctor ws --fix`" in lib["hint"]
    f = ws.env.mlops("--json", "doctor", "ws", "--only", "python", "--fix", "--yes")
    assert f.code == 0, f.stdout + f.stderr
    assert [(s["id"], s["status"]) for s in f.data["fix"]["steps"]] == [("conda", "changed")]
    assert checks(f)["python.libraries"]["status"] == "ok" and "pandas" in checks(f)["python.libraries"]["message"]
    assert ws.sh("su - ubuntu -c '~/anaconda3/bin/python -c \"import pandas\"'").ok


def test_docker_daemon_stopped(ws: Box) -> None:
    ws.sh("systemctl stop docker.socket docker")
    r = ws.env.mlops("--json", "doctor", "ws", "--only", "docker")
    assert r.code == 1
    d = checks(r)["docker.daemon"]
    assert (d["status"], d["message"]) == ("fail", "the Docker daemon is not running")
    assert "`sudo systemctl start docker`" in d["hint"] and "--fix" in d["hint"]
    f = ws.env.mlops("--json", "doctor", "ws", "--only", "docker", "--fix", "--yes")
    assert f.code == 0, f.stdout + f.stderr
    assert checks(f)["docker.daemon"]["status"] == "ok" and checks(f)["docker.run"]["status"] == "ok"
    assert ws.sh("systemctl is-active docker").stdout.strip() == "active"


def test_user_not_in_the_docker_group(ws: Box) -> None:
    ws.sh("gpasswd -d ubuntu docker")
    r = ws.env.mlops("--json", "doctor", "ws", "--only", "docker")
    assert r.code == 1
    a = checks(r)["docker.access"]
    assert (a["status"], a["message"]) == ("fail", "ubuntu is not in the docker group: docker needs sudo")
    assert "`sudo usermod -aG docker ubuntu`" in a["hint"]
    f = ws.env.mlops("--json", "doctor", "ws", "--only", "docker", "--fix", "--yes")
    assert f.code == 0, f.stdout + f.stderr
    assert checks(f)["docker.access"]["status"] == "ok"  # checked again in a new login
    assert "docker" in ws.sh("id -nG ubuntu").stdout.split()


def test_group_added_while_an_old_session_is_open(ws: Box) -> None:
    """usermod while a login session is held: the check run INSIDE that session says "log out
    and in"; doctor's own new connection is fine and names the older connection."""
    from mlops_env import config, doctor
    from mlops_env.paths import Paths
    from mlops_env.ssh.connect import connect
    from mlops_env.steps import Facts, StepContext

    ws.sh("gpasswd -d ubuntu docker")
    root = ws.env.root
    paths = Paths(data=root, config=root, cache=root / "cache", logs=root / "logs")
    target = doctor.workstation_target(paths, "ws", 20)
    opts = config.resolve({}, config_path=None, default_config=paths.config_file, env={})
    old = connect(paths, target.endpoint, 20)  # logged in before joining the group
    try:
        ws.sh("usermod -aG docker ubuntu")
        ctx = StepContext(transport=old, facts=Facts({}), options=opts, record=target.record, paths=paths,
                          endpoint=target.endpoint)
        got, _ = doctor.check_box(ctx, doctor._steps(target, opts, ["docker"]), ["docker"], target=target,
                                  fresh_session=False)
        a = {c.id: c for c in got}["docker.access"]
        assert a.status == "warn" and "joined the docker group after this login session started" in a.message
        assert "log out and back in" in a.hint and "new SSH connection" in a.hint

        r = ws.env.mlops("--json", "doctor", "ws", "--only", "docker")
        assert r.code == 0, r.stdout + r.stderr  # a warning, not a problem
        c = checks(r)
        assert c["docker.access"]["status"] == "ok"
        s = c["docker.sessions"]
        assert s["status"] == "warn" and s["message"].startswith("1 older SSH connection of ubuntu started before")
        assert "Kill VS Code Server" in s["hint"]
    finally:
        old.close()
    for _ in range(20):  # sshd ends the old session's process shortly after the client leaves
        r = ws.env.mlops("--json", "doctor", "ws", "--only", "docker")
        if checks(r)["docker.sessions"]["status"] == "ok":
            break
        time.sleep(0.25)
    assert checks(r)["docker.sessions"]["status"] == "ok"


def test_disk_nearly_full(ws: Box) -> None:
    ws.sh(SHRINK_HOME, "ubuntu", "64m", "48")
    try:
        r = ws.env.mlops("--json", "doctor", "ws", "--only", "system")
        assert r.code == 1, r.stdout + r.stderr
        d = checks(r)["system.disk"]
        assert d["status"] == "fail" and d["message"].startswith("disk nearly full: 16 MiB free in ~")
        assert "docker system prune" in d["hint"]
        # not a thing `up` can repair: --fix says so and changes nothing
        f = ws.env.mlops("doctor", "ws", "--only", "system", "--fix", "--yes")
        assert f.code == 1 and "None of them is for `--fix`" in f.stdout
    finally:
        ws.sh(RESTORE_HOME, "ubuntu")
    ws.sh(SHRINK_HOME, "ubuntu", "10g", "0")
    try:
        r = ws.env.mlops("--json", "doctor", "ws", "--only", "system")
        assert r.code == 0
        d = checks(r)["system.disk"]
        assert d["status"] == "warn" and d["message"].startswith("10.0 GiB free in ~")
    finally:
        ws.sh(RESTORE_HOME, "ubuntu")


# -- an unsupported OS -----------------------------------------------------------------------
def test_unsupported_os(vm_host: Any, user_env: Env) -> None:
    vm = vm_host(user="ubuntu", os_release=hosts.OS_RELEASE_FEDORA_40)
    args = ["--host", vm.host_spec, "--identity", str(vm.identity), "--host-key-fingerprint",
            vm.host_key_fingerprint, "--python-dist", "miniforge"]
    r = user_env.mlops("--json", "doctor", *args)
    assert r.code == 1, r.stdout + r.stderr
    os_ = checks(r)["system.os"]
    assert (os_["status"], os_["message"]) == ("fail", "unsupported OS: Fedora Linux 40 (Container Image)")
    assert "Ubuntu 22.04, Ubuntu 24.04 and Debian 12" in os_["hint"] and "--fix" not in os_["hint"]
    # --fix refuses like `up` before changing anything, although docker and conda are "fixable"
    f = user_env.mlops("--json", "doctor", *args, "--fix", "--yes")
    assert f.code == 7 and f.error["code"] == "unsupported-os"
    assert checks(f)["system.os"]["status"] == "fail"  # the report travels with the error
    res = hosts.exec_in(vm_host.client, vm.container_id, ["sh", "-c", "command -v docker; ls /home/ubuntu"],
                        check=False)
    assert "docker" not in res.stdout and "miniforge3" not in res.stdout
