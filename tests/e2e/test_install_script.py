"""README's quick start on a fresh Debian 12 (issue 16, item 12): `./scripts/install.sh` from a
clone installs mlops-env for the user (own virtual environment from PyPI, the command linked in
~/.local/bin) and runs the command given after it; without Python's venv module it says what
to install and changes nothing. The clone is this working tree (its tracked and new files),
copied into the systemd Debian 12 test box as an ordinary user's folder.

This test machine re-signs HTTPS to PyPI with a local CA (docs/testing.md): the box gets that
CA bundle as PIP_CERT, which a real machine does not need; nothing else is prepared."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import hosts

REPO = Path(__file__).resolve().parents[2]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def _clone_into(engine: Any, box: Any, user: str) -> str:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for f in files:
            p = REPO / f
            if f and p.is_file():
                tf.add(str(p), arcname=f"mlops-env/{f}")
    dest = f"/home/{user}"
    assert engine.containers.get(box.container_id).put_archive(dest, buf.getvalue())
    hosts.exec_in(engine, box.container_id, ["chown", "-R", f"{user}:{user}", f"{dest}/mlops-env"])
    return f"{dest}/mlops-env"


def _as_user(engine: Any, box: Any, user: str, script: str) -> hosts.ExecResult:
    env = {"HOME": f"/home/{user}", "PATH": "/usr/local/bin:/usr/bin:/bin"}
    if HOST_CA.is_file():  # this test machine's TLS interception (see the module docstring)
        env["PIP_CERT"] = hosts.copy_into(engine, box.container_id, HOST_CA, "/opt/testbed", name="ca.crt")
    return hosts.exec_in(engine, box.container_id, ["bash", "-lc", script], user=user, check=False, env=env)


def test_quick_start_installs_and_runs_the_command(vm_host: Any, docker_engine: Any) -> None:
    box = vm_host(user="student")
    clone = _clone_into(docker_engine, box, "student")
    r = _as_user(docker_engine, box, "student", f"cd {clone} && ./scripts/install.sh --version")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.stdout.startswith("mlops-env "), r.stdout  # the command after install.sh ran
    assert "is /home/student/.local/bin/mlops-env" in r.stderr
    assert "not on your PATH" in r.stderr  # and it says how to fix that
    # the installed command works on its own, and a second run upgrades in place
    r = _as_user(docker_engine, box, "student", "~/.local/bin/mlops-env list")
    assert r.exit_code == 0 and "no workstations yet" in r.stdout, r.stdout + r.stderr
    r = _as_user(docker_engine, box, "student", f"cd {clone} && ./scripts/install.sh")
    assert r.exit_code == 0, r.stdout + r.stderr
    link = hosts.exec_in(docker_engine, box.container_id, ["readlink", "/home/student/.local/bin/mlops-env"]).stdout
    assert link.strip() == "/home/student/.local/share/mlops-env-venv/bin/mlops-env"


def test_without_the_venv_module_it_says_what_to_install(vm_host: Any, docker_engine: Any) -> None:
    box = vm_host(user="student")
    hosts.exec_in(docker_engine, box.container_id,
                  "dpkg -r --force-depends python3-venv $(dpkg-query -W -f '${Package}\\n' 'python3.*-venv') >/dev/null")
    clone = _clone_into(docker_engine, box, "student")
    r = _as_user(docker_engine, box, "student", f"cd {clone} && ./scripts/install.sh up docker")
    assert r.exit_code == 4, r.stdout + r.stderr
    assert "venv module is missing" in r.stderr and "sudo apt install python3-venv" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    left = hosts.exec_in(docker_engine, box.container_id,
                         "ls -A /home/student/.local/share /home/student/.local/bin 2>/dev/null || true").stdout
    assert "mlops-env" not in left, left  # nothing half-made
