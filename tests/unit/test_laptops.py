"""The laptop side on Windows and macOS, with each system's semantics simulated at the seam
(tests/winsim.py for Windows; ``osenv.system`` and a BSD ``base64`` for macOS).

Each test named ``test_windows_*`` / ``test_macos_*`` that says "today" failed on the code before
``osenv`` existed (checked by running this file against that code: the simulation does not need
the seam to exist): the ssh-config re-check, the key-protection check, ``getuid``, ``killpg``,
``select`` on pipes, ``base64 -w0``, the Docker context, ``os.replace`` against a busy target.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import winsim

from mlops_env.paths import Paths

# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture()
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    root = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_ENV_HOME", str(root))
    return Paths(data=root, config=root, cache=root / "cache", logs=root / "logs")


@pytest.fixture()
def windows(tmp_path: Path) -> Iterator[winsim.FakeWinApi]:
    """This process as a Windows laptop until the test ends."""
    api = winsim.FakeWinApi(tmp_path / "acl.json")
    undo = winsim.install(tmp_path / "acl.json", api=api)
    try:
        yield api
    finally:
        undo()


@pytest.fixture()
def macos(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from mlops_env import osenv
    except ImportError:  # the code before the seam (to show what failed there)
        return
    monkeypatch.setattr(osenv, "system", lambda: osenv.MACOS)


def _entry(paths: Paths, alias: str = "mlops-a") -> Any:
    from mlops_env.ssh.config import HostEntry

    return HostEntry(alias=alias, hostname="127.0.0.1", port=2222, user="dev",
                     identity_file=paths.keys_dir / "id_ed25519", known_hosts_file=paths.known_hosts,
                     host_key_alias="mlops-env-a")


# -- the simulation itself -------------------------------------------------------------------------


def test_the_simulation_behaves_like_windows(tmp_path: Path, windows: winsim.FakeWinApi) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    assert f.stat().st_mode & 0o777 == 0o666 and f.stat().st_uid == 0
    os.chmod(f, 0o400)
    assert f.stat().st_mode & 0o777 == 0o444  # the read-only attribute
    assert not hasattr(os, "getuid") and not hasattr(os, "killpg")
    r, w = os.pipe()
    with pytest.raises(OSError, match="not a socket"):
        __import__("select").select([r], [], [], 0)
    os.close(r), os.close(w)
    assert winsim.split_cmdline(r'"C:\Program Files\gh.exe" -i "C:\a b\k" x\\"y" "q\"t"') == [
        r"C:\Program Files\gh.exe", "-i", r"C:\a b\k", 'x\\y', 'q"t']


# -- private files ---------------------------------------------------------------------------------


def test_windows_ssh_config_recheck_passes(paths: Paths, windows: winsim.FakeWinApi) -> None:
    """Today: the file is written, then its re-check reads st_mode 0666 and says it did not take."""
    from mlops_env.ssh import config as sshconfig

    e = _entry(paths)
    assert sshconfig.upsert_host(paths, e) is True
    assert windows.is_private(paths.ssh_config)  # the ACL, set before the file got its name
    assert sshconfig.check_upsert_host(paths, e) is False
    assert sshconfig.upsert_host(paths, e) is False  # a second run changes nothing
    # Someone grants Everyone access: the check sees it, the next upsert repairs it.
    windows.set_acl(str(paths.ssh_config), winsim.USER_SID, [(winsim.USER_SID, True, 0x1F01FF, False),
                                                             ("S-1-1-0", True, 0x1200A9, False)])
    assert sshconfig.check_upsert_host(paths, e) is True
    assert sshconfig.upsert_host(paths, e) is True and sshconfig.check_upsert_host(paths, e) is False


def test_windows_include_line_in_a_new_user_config_is_private(paths: Paths, windows: winsim.FakeWinApi) -> None:
    from mlops_env.ssh import config as sshconfig

    cfg = Path(os.environ["HOME"]) / ".ssh" / "config"
    assert sshconfig.ensure_include(paths, cfg) == "created"
    assert windows.is_private(cfg) and sshconfig.check_include(paths, cfg) == "unchanged"
    # An existing config the user made (inherited ACL): rewritten, and private afterwards.
    cfg.unlink()
    cfg.write_text("Host *\n    ServerAliveInterval 60\n")
    assert not windows.is_private(cfg)
    assert sshconfig.ensure_include(paths, cfg) == "added"
    assert windows.is_private(cfg)


def test_windows_key_protection_check(paths: Paths, windows: winsim.FakeWinApi) -> None:
    """Today: check_keypair reads st_mode 0666/0777 and reports every key as unprotected."""
    from mlops_env.ssh import keys

    kp = keys.ensure_keypair(paths)
    assert windows.is_private(kp.private_path) and windows.is_private(paths.keys_dir)
    kc = keys.check_keypair(paths)
    assert kc.ok, kc.problems
    windows.set_acl(str(kp.private_path), winsim.USER_SID, [(winsim.USER_SID, True, 0x1F01FF, False),
                                                            (winsim.USERS, True, 0x1200A9, False)])
    kc = keys.check_keypair(paths)
    assert not kc.ok and kc.problems == (
        f"{kp.private_path} can be read by Users (only you, SYSTEM and Administrators may)",)
    # An owner that is not the user is a problem too (Windows OpenSSH refuses it).
    windows.set_acl(str(kp.private_path), "S-1-5-21-1-2-3-500", [(winsim.USER_SID, True, 0x1F01FF, False)])
    assert "belongs to S-1-5-21-1-2-3-500" in keys.check_keypair(paths).problems[0]
    assert keys.ensure_keypair(paths).fingerprint == kp.fingerprint  # tightened again, same key
    assert keys.check_keypair(paths).ok


def test_windows_doctor_permissions_without_getuid(paths: Paths, windows: winsim.FakeWinApi) -> None:
    """Today: AttributeError: module 'os' has no attribute 'getuid'."""
    from mlops_env import osenv
    from mlops_env.doctor import local

    home = Path(os.environ["HOME"])
    key = home / ".ssh" / "id_ed25519"
    key.write_text("k")
    (home / ".ssh" / "config").write_text("Host x\n")
    c = local.ssh_perms_check(home, [])
    assert c.status == "fail" and f"{key} can be read by Users" in c.message and "UNPROTECTED" in c.message
    assert "icacls" in (c.hint or "") and "chmod" not in (c.hint or "")
    osenv.protect(key)
    osenv.protect(home / ".ssh" / "config")
    assert local.ssh_perms_check(home, []).status == "ok"
    kc = local.ssh_key_check(paths)
    assert kc.status == "skip"  # no mlops-env key yet


def test_posix_protection_is_the_mode(tmp_path: Path) -> None:
    from mlops_env import osenv

    f = tmp_path / "f"
    f.write_text("x")
    os.chmod(f, 0o644)
    assert osenv.protection_problem(f) == f"{f} has mode 0644, expected 0600"
    osenv.protect(f)
    assert f.stat().st_mode & 0o777 == 0o600 and osenv.protection_problem(f) is None
    assert osenv.protection_problem(tmp_path / "missing") is None


def test_windows_replace_retries_a_busy_target(tmp_path: Path, windows: winsim.FakeWinApi,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Today: the first PermissionError (another process has the file open) fails the write."""
    from mlops_env.fsutil import atomic_write

    real = os.replace
    fails = {"n": 2}

    def busy(src: Any, dst: Any) -> None:
        if fails["n"]:
            fails["n"] -= 1
            raise PermissionError(32, "The process cannot access the file because it is being used by another process")
        real(src, dst)

    monkeypatch.setattr(os, "replace", busy)
    target = tmp_path / "config"
    atomic_write(target, "new\n")
    assert target.read_text() == "new\n" and fails["n"] == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# -- processes and pipes ---------------------------------------------------------------------------


def test_windows_local_timeout_kills_the_tree_without_killpg(windows: winsim.FakeWinApi) -> None:
    """Today: AttributeError: module 'os' has no attribute 'killpg'."""
    from mlops_env.transport.local import LocalTransport

    t = LocalTransport()
    r = t.run(["sh", "-c", "sleep 60 & sleep 60; echo never"], timeout=1)
    assert r.exit_code == 124 and "never" not in r.stdout  # the grandchild died too: pipes closed


def test_windows_doctor_run_quick_times_out(windows: winsim.FakeWinApi) -> None:
    from mlops_env.doctor import local

    with pytest.raises(subprocess.TimeoutExpired):
        local.run_quick(["sh", "-c", "sleep 60 & sleep 60"], 0.5)


def test_windows_run_foreground_returns_the_exit_code(windows: winsim.FakeWinApi) -> None:
    from mlops_env import osenv

    assert osenv.run_foreground([shutil.which("sh") or "/bin/sh", "-c", "exit 3"]) == 3


def _echo_proxy() -> list[str]:
    # a ProxyCommand stand-in: echoes stdin, says "proxy: bye" on stderr at EOF, exits 7
    code = ("import sys\nfor l in iter(sys.stdin.buffer.readline, b''):\n sys.stdout.buffer.write(l); "
            "sys.stdout.flush()\nsys.stderr.write('proxy: bye\\n'); sys.exit(7)")
    return [sys.executable, "-c", code]


def test_windows_proxy_command_pipes_are_read_without_select(windows: winsim.FakeWinApi) -> None:
    """Today: select() on the proxy's stdout pipe raises WinError 10038."""
    from mlops_env import osenv
    from mlops_env.ssh.transport import _proxy_failure, _proxy_socket

    line = osenv.join_command(_echo_proxy())
    assert line.startswith(f'{subprocess.list2cmdline([sys.executable])} -c "import sys')  # CreateProcess quoting
    sock = _proxy_socket(line)
    sock.settimeout(5)
    sock.send(b"hello\n")
    assert sock.recv(3) == b"hel" and sock.recv(100) == b"lo\n"
    sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        sock.recv(10)
    sock.process.stdin.close()
    sock.settimeout(5)
    assert sock.recv(10) == b""  # EOF: paramiko ends the connection
    err = _proxy_failure(sock, None)
    assert str(err) == "proxy: bye (proxy command exit 7)"
    sock.close()


def test_proxy_command_on_posix_is_shell_quoted() -> None:
    from mlops_env import osenv
    from mlops_env.providers.codespace import ghcli

    line = ghcli.proxy_command("/opt/gh dir/gh", "cs-1", "/home/a b/key")
    assert line == "'/opt/gh dir/gh' codespace ssh -c cs-1 --stdio -- -i '/home/a b/key'"
    assert osenv.proxy_popen_args(line)[0] == "/opt/gh dir/gh"


def test_windows_proxy_command_quoting(windows: winsim.FakeWinApi) -> None:
    from mlops_env import osenv
    from mlops_env.providers.codespace import ghcli

    gh, key = r"C:\Program Files\GitHub CLI\gh.exe", r"C:\Users\Ana María\AppData\Local\mlops-env\keys\id_ed25519"
    line = ghcli.proxy_command(gh, "cs-1", key)
    assert line == f'"{gh}" codespace ssh -c cs-1 --stdio -- -i "{key}"'
    assert winsim.split_cmdline(line) == [gh, "codespace", "ssh", "-c", "cs-1", "--stdio", "--", "-i", key]
    assert osenv.proxy_popen_args(line) == line  # CreateProcess parses it, as Windows OpenSSH does


# -- programs ---------------------------------------------------------------------------------------


def test_windows_programs_where_their_installers_put_them(tmp_path: Path, windows: winsim.FakeWinApi) -> None:
    from mlops_env import osenv

    root, pf, local = tmp_path / "Windows", tmp_path / "Program Files", tmp_path / "Local"
    made = {"ssh": root / "System32" / "OpenSSH" / "ssh.exe",
            "code": local / "Programs" / "Microsoft VS Code" / "bin" / "code.cmd",
            "gh": pf / "GitHub CLI" / "gh.exe"}
    env = {"PATH": str(tmp_path / "empty"), "SystemRoot": str(root), "ProgramFiles": str(pf),
           "LOCALAPPDATA": str(local), "USERPROFILE": str(tmp_path)}
    for name in made:
        assert osenv.find_program(name, env) is None
    for p in made.values():
        p.parent.mkdir(parents=True)
        p.write_text("")
    assert {n: osenv.find_program(n, env) for n in made} == {n: str(p) for n, p in made.items()}


# -- the remote batch with macOS's base64 ----------------------------------------------------------

BSD_BASE64 = """#!PYTHON
# base64 as macOS before 13 ships it: -D/--decode, -b N, -i/-o; no -d, no -w; no line breaks.
import base64, sys
args = sys.argv[1:]
decode = False
while args:
    a = args.pop(0)
    if a in ("-D", "--decode"):
        decode = True
    elif a == "-b":
        args.pop(0)
    elif a.startswith("-"):
        sys.stderr.write(f"base64: invalid option -- {a.lstrip('-')[:1]}\\nUsage: base64 [-hvD] [-b num] [-i in_file] [-o out_file]\\n")
        sys.exit(64)
data = sys.stdin.buffer.read()
if decode:
    sys.stdout.buffer.write(base64.b64decode(b"".join(data.split())))
else:
    sys.stdout.buffer.write(base64.b64encode(data) + b"\\n")
"""


def test_macos_batched_checks_with_bsd_base64(tmp_path: Path, macos: None) -> None:
    """Today: `base64 -w0` (and `-d`) are refused by macOS's base64, every check reads as empty."""
    from mlops_env import engine
    from mlops_env.transport.local import LocalTransport

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    b64 = bin_dir / "base64"
    b64.write_text(BSD_BASE64.replace("PYTHON", sys.executable))
    b64.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    assert subprocess.run(["base64", "-w0"], env=env, input=b"x", capture_output=True).returncode == 64
    long_out = "x" * 500  # more than GNU base64's 76-column lines
    calls = [("a", f"echo {long_out}; echo 'to stderr' >&2; exit 3", ()),
             ("b", 'printf "%s|" "$@"', ("it's", "two words"))]
    res = engine.run_checks(LocalTransport(env=env), calls, timeout=20)
    assert (res["a"].exit_code, res["a"].stdout, res["a"].stderr) == (3, long_out + "\n", "to stderr\n")
    assert (res["b"].exit_code, res["b"].stdout) == (0, "it's|two words|")


# -- docker endpoints ---------------------------------------------------------------------------------


def _context(home: Path, name: str, host: str, *, current: bool = True) -> Path:
    d = home / ".docker"
    meta = d / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host,
                                                                                      "SkipTLSVerify": False}}}))
    if current:
        (d / "config.json").write_text(json.dumps({"auths": {}, "currentContext": name}))
    return meta


def test_docker_endpoint_order(tmp_path: Path, macos: None) -> None:
    from mlops_env.errors import PrereqError
    from mlops_env.providers.docker import host as dockerhost

    home = tmp_path
    ep = dockerhost.resolve({}, home)
    assert (ep.host, ep.context) == ("unix:///var/run/docker.sock", None)
    sock = home / ".docker" / "run" / "docker.sock"
    sock.parent.mkdir(parents=True)
    sock.write_text("")
    assert dockerhost.resolve({}, home).host == f"unix://{sock}"  # Docker Desktop 4.13+
    _context(home, "colima", f"unix://{home}/.colima/default/docker.sock")
    ep = dockerhost.resolve({}, home)
    assert ep.host == f"unix://{home}/.colima/default/docker.sock" and ep.context == "colima"
    assert ep.source == f"docker context 'colima' (from {home}/.docker/config.json)"
    _context(home, "orbstack", f"unix://{home}/.orbstack/run/docker.sock", current=False)
    assert dockerhost.resolve({"DOCKER_CONTEXT": "orbstack"}, home).context == "orbstack"
    assert dockerhost.resolve({"DOCKER_CONTEXT": "default"}, home).host == f"unix://{sock}"
    assert dockerhost.resolve({"DOCKER_HOST": "tcp://1.2.3.4:2375"}, home).source == "DOCKER_HOST"
    with pytest.raises(PrereqError, match="'gone'") as ei:
        dockerhost.resolve({"DOCKER_CONTEXT": "gone"}, home)
    assert "docker context ls" in (ei.value.hint or "")


def test_windows_docker_default_is_the_named_pipe(tmp_path: Path, windows: winsim.FakeWinApi) -> None:
    from mlops_env.providers.docker import host as dockerhost

    assert dockerhost.resolve({}, tmp_path).host == "npipe:////./pipe/docker_engine"
    assert dockerhost.start_hint(dockerhost.resolve({}, tmp_path)) == "start Docker Desktop"


def _engine() -> str:
    sock = "/var/run/docker.sock"
    if not os.path.exists(sock):
        pytest.skip("needs the Docker engine at /var/run/docker.sock")
    return sock


def test_docker_client_follows_the_current_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   macos: None) -> None:
    """Today: docker.from_env() ignores the context and talks to /var/run/docker.sock (here: a
    working engine, which hides that the user's Colima is stopped); the error must name it."""
    from mlops_env.errors import PrereqError
    from mlops_env.providers.docker.provider import DockerProvider

    real = _engine()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    dead = home / ".colima" / "default" / "docker.sock"
    _context(home, "colima", f"unix://{dead}")
    prov = DockerProvider(Paths(tmp_path, tmp_path, tmp_path, tmp_path))
    with pytest.raises(PrereqError) as ei:
        _ = prov.client
    e = ei.value
    assert e.code == "no-docker-engine" and f"unix://{dead}" in e.message and "docker context 'colima'" in e.message
    assert "colima start" in (e.hint or "")
    # Colima started: its socket answers (here: a link to the real engine's).
    dead.parent.mkdir(parents=True)
    dead.symlink_to(real)
    prov = DockerProvider(Paths(tmp_path, tmp_path, tmp_path, tmp_path))
    client = prov.client
    assert client.api._custom_adapter.socket_path == str(dead)
    assert client.version()["ApiVersion"]


# -- what a laptop's doctor checks ------------------------------------------------------------------


def test_doctor_docker_check(tmp_path: Path) -> None:
    from mlops_env.doctor import local

    c = local.docker_check({"DOCKER_HOST": f"unix://{tmp_path}/none.sock"}, tmp_path, timeout=2)
    assert c.status == "warn" and f"unix://{tmp_path}/none.sock (DOCKER_HOST)" in c.message
    assert "only `up docker` needs it" in c.message
    real = _engine()
    c = local.docker_check({"DOCKER_HOST": f"unix://{real}"}, tmp_path, timeout=5)
    assert c.status == "ok" and c.message.startswith("Docker engine ") and "[DOCKER_HOST]" in c.message


def test_doctor_gh_check(tmp_path: Path) -> None:
    from mlops_env.doctor import local

    c = local.gh_check({"PATH": str(tmp_path)})
    assert c.status == "warn" and "only `up codespace` needs it" in c.message
    gh = tmp_path / "gh"
    gh.write_text("#!/bin/sh\necho 'gh version 2.63.0 (2024-11-27)'\necho https://github.com/cli/cli\n")
    gh.chmod(0o755)
    c = local.gh_check({"PATH": str(tmp_path)})
    assert (c.status, c.message) == ("ok", f"gh version 2.63.0 (2024-11-27) ({gh})")


def test_machine_role(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_env import doctor, osenv
    from mlops_env.state import Endpoint, Record, Store

    assert doctor.machine_role(paths)[0] == "workstation"
    assert doctor.machine_role(paths, as_workstation=True) == ("workstation", "asked with --as-workstation")
    Store(paths).save(Record(name="ws", provider="ssh", alias="mlops-ws",
                             endpoint=Endpoint("127.0.0.1", 22, "dev", "/k", "mlops-env-ws")))
    assert doctor.machine_role(paths) == ("laptop", "this machine drives workstation ws")
    Store(paths).delete("ws")
    for sysname, label in ((osenv.WINDOWS, "Windows"), (osenv.MACOS, "macOS")):
        monkeypatch.setattr(osenv, "system", lambda s=sysname: s)
        assert doctor.machine_role(paths) == ("laptop", f"a {label} machine drives Linux workstations")


def test_pipe_reader_timeout_and_eof() -> None:
    from mlops_env.osenv import PipeReader

    p = subprocess.Popen([sys.executable, "-c", "import time,sys; time.sleep(0.3); sys.stdout.write('ab'); "
                          "sys.stdout.flush(); time.sleep(0.3)"], stdout=subprocess.PIPE)
    r = PipeReader(p.stdout)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        r.recv(10, 0.05)
    assert r.recv(1, 5) == b"a" and r.recv(10, 5) == b"b"
    assert r.recv(10, 5) == b""
    p.wait()


def test_doctor_reports_an_open_mlops_env_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``paths.home_exposure`` (the test-realism branch's) feeds a warning; never on Windows,
    where it would read meaningless modes."""
    from mlops_env import paths as paths_module
    from mlops_env.doctor import local

    monkeypatch.setattr(paths_module, "home_exposure", lambda: "MLOPS_ENV_HOME=/x can be read by other users",
                        raising=False)
    (c,) = local.home_check()
    assert (c.id, c.status, c.message) == ("local.home", "warn", "MLOPS_ENV_HOME=/x can be read by other users")
    monkeypatch.setattr(paths_module, "home_exposure", lambda: None)
    assert local.home_check() == []
    undo = winsim.install(tmp_path / "acl.json")
    try:
        monkeypatch.setattr(paths_module, "home_exposure", lambda: "open")
        assert local.home_check() == []
    finally:
        undo()
