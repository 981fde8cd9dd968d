"""The osenv seam on the system the tests run on, with nothing simulated: here (Linux) the POSIX
paths; on the CI workflow's windows-latest and macos-latest runners (.github/workflows/laptops.yml)
the real Windows API (ACLs through ctypes and icacls, CreateProcess quoting, taskkill) and macOS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_env import osenv
from mlops_env.paths import Paths


def test_system_matches_the_platform() -> None:
    want = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    assert osenv.system() == want


def test_protect_and_check_a_private_file(tmp_path: Path) -> None:
    f = tmp_path / "secret"
    f.write_text("x")
    if not osenv.is_windows():
        f.chmod(0o644)
        assert osenv.is_loose(f)
    osenv.protect(f)
    assert osenv.protection_problem(f) is None
    d = tmp_path / "dir"
    d.mkdir()
    osenv.protect(d, directory=True)
    assert osenv.protection_problem(d, 0o700) is None


@pytest.mark.skipif(sys.platform != "win32", reason="the real Windows ACL API")
def test_windows_acl_of_a_file_outside_the_profile(tmp_path: Path) -> None:  # pragma: no cover - windows
    api = osenv.winapi()
    me = api.user_sid()
    assert me.startswith("S-1-5-")
    f = tmp_path / "k"
    f.write_text("x")
    subprocess.run(["icacls", str(f), "/grant", "*S-1-5-32-545:R"], check=True, capture_output=True)
    assert "Users" in (osenv.protection_problem(f) or "")
    osenv.protect(f)
    acl = api.read_acl(str(f))
    assert {a.sid for a in acl.entries if a.allow} <= {me, osenv.SID_SYSTEM, osenv.SID_ADMINISTRATORS}
    assert osenv.protection_problem(f) is None


def test_ssh_config_and_key_on_this_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_env.ssh import config as sshconfig
    from mlops_env.ssh import keys

    root = tmp_path / "mlops"
    paths = Paths(data=root, config=root, cache=root / "c", logs=root / "l")
    kp = keys.ensure_keypair(paths)
    assert keys.check_keypair(paths).ok
    e = sshconfig.HostEntry(alias="mlops-a", hostname="127.0.0.1", port=2222, user="dev",
                            identity_file=kp.private_path, known_hosts_file=paths.known_hosts,
                            host_key_alias="mlops-env-a")
    assert sshconfig.upsert_host(paths, e) is True
    assert sshconfig.check_upsert_host(paths, e) is False  # the re-check that failed on Windows


def test_kill_tree_on_timeout() -> None:
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, **osenv.new_group_kwargs())
    with pytest.raises(subprocess.TimeoutExpired):
        p.wait(timeout=1)
    osenv.kill_tree(p)
    assert p.wait(timeout=30) != 0
    assert p.stdout is not None and p.stdout.read() == b""  # EOF: the grandchild's end of the pipe closed too


def test_run_foreground_exit_code() -> None:
    # POSIX replaces the process: run it in a child Python so that pytest survives.
    code = ("import sys; from mlops_env import osenv; "
            "sys.exit(osenv.run_foreground([sys.executable, '-c', 'raise SystemExit(5)']))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 5


def test_proxy_command_line_round_trip(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))",
            r"C:\Program Files\GitHub CLI\gh.exe", "a b", 'q"uote', "it's", "back\\slash\\"]
    line = osenv.join_command(argv)
    out = subprocess.run(osenv.proxy_popen_args(line), capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == argv[3:]


def test_find_program_ssh() -> None:
    ssh = osenv.find_program("ssh")
    if ssh is None:
        pytest.skip("no OpenSSH client on this machine")
    assert Path(ssh).is_file()


def test_replace_over_an_existing_file(tmp_path: Path) -> None:
    from mlops_env.fsutil import atomic_write

    target = tmp_path / "f"
    target.write_text("old")
    atomic_write(target, "new")
    assert target.read_text() == "new" and osenv.protection_problem(target) is None


def test_docker_default_endpoint(tmp_path: Path) -> None:
    from mlops_env.providers.docker import host as dockerhost

    ep = dockerhost.resolve({}, tmp_path)
    want = {"windows": "npipe:////./pipe/docker_engine"}.get(osenv.system(), "unix:///var/run/docker.sock")
    assert ep.host == want
