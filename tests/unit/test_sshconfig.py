"""ssh/config.py against the real OpenSSH client.

The user's ~/.ssh/config is somebody else's file: every test here checks bytes, not lines.
`ssh -G -F` proves that OpenSSH reads what we write (always with -F: OpenSSH takes the home
directory from the password database, not from $HOME). One test logs in with the real `ssh`
client through the written config, against a tiny paramiko server, to prove the key, the
known_hosts pin and the HostKeyAlias work together.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mlops_env.errors import ConfigError, PrereqError, UsageError
from mlops_env.paths import get_paths
from mlops_env.ssh import config as sc
from mlops_env.ssh import keys, knownhosts
from mlops_env.ssh import overrides as so

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client `ssh` missing")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    # A space in the tool's directory: every path we write must be quoted.
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "tool dir"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return h


@pytest.fixture
def paths(home):
    return get_paths()


@pytest.fixture
def user_cfg(home) -> Path:
    return home / ".ssh" / "config"


def entry(paths, name="a", **kw) -> sc.HostEntry:
    args = dict(
        alias=sc.alias_for(name),
        hostname="127.0.0.1",
        port=2222,
        user="dev",
        identity_file=paths.keys_dir / "id_ed25519",
        known_hosts_file=paths.known_hosts,
        host_key_alias=sc.host_key_alias_for(name),
    )
    args.update(kw)
    return sc.HostEntry(**args)


def write_user(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def ssh_g(cfg: Path, alias: str) -> dict[str, list[str]]:
    return so.effective_options(alias, cfg)


def snapshot(p: Path) -> tuple[int, int, bytes]:
    st = p.stat()
    return st.st_ino, st.st_mtime_ns, p.read_bytes()


# -- the tool's own file ----------------------------------------------------------------------


def test_block_text_and_permissions(paths):
    e = entry(paths)
    assert sc.check_upsert_host(paths, e) is True
    assert not paths.data.exists()  # the check wrote nothing
    assert sc.upsert_host(paths, e) is True
    assert mode(paths.ssh_dir) == 0o700
    assert mode(paths.ssh_config) == 0o600
    text = paths.ssh_config.read_text()
    kf = paths.keys_dir / "id_ed25519"
    assert text == sc.HEADER + (
        "# >>> mlops-env mlops-a >>>\n"
        "Host mlops-a\n"
        "    HostName 127.0.0.1\n"
        "    Port 2222\n"
        "    User dev\n"
        f'    IdentityFile "{kf}"\n'
        "    IdentitiesOnly yes\n"
        f'    UserKnownHostsFile "{paths.known_hosts}"\n'
        "    HostKeyAlias mlops-env-a\n"
        "    StrictHostKeyChecking yes\n"
        "    CheckHostIP no\n"
        "    UpdateHostKeys no\n"
        "    LocalForward localhost:8888 localhost:8888\n"
        "    LocalForward localhost:5000 localhost:5000\n"
        "    LocalForward localhost:9696 127.0.0.1:9696\n"
        "    ExitOnForwardFailure no\n"
        "    ServerAliveInterval 30\n"
        "    ServerAliveCountMax 4\n"
        "# <<< mlops-env mlops-a <<<\n"
        "\n"
    )


def test_no_forward_writes_no_forwarding_lines(paths):
    sc.upsert_host(paths, entry(paths, forwards=()))
    text = paths.ssh_config.read_text()
    assert "LocalForward" not in text and "ExitOnForwardFailure" not in text


def test_forwards_accept_tuples(paths):
    e = entry(paths, forwards=[(8890, "127.0.0.1", 8888)])
    assert e.forwards == (sc.Forward(8890, "127.0.0.1", 8888),)
    assert "    LocalForward localhost:8890 127.0.0.1:8888\n" in e.render()


def test_upsert_is_idempotent_and_touches_only_its_block(paths):
    a, b, c = entry(paths, "a"), entry(paths, "b", port=2200), entry(paths, "c")
    for e in (a, b, c):
        assert sc.upsert_host(paths, e) is True
    before = snapshot(paths.ssh_config)
    assert sc.upsert_host(paths, b) is False
    assert sc.check_upsert_host(paths, b) is False
    assert snapshot(paths.ssh_config) == before  # not even rewritten
    assert sc.list_hosts(paths) == ["mlops-a", "mlops-b", "mlops-c"]

    b2 = entry(paths, "b", port=2201)
    assert sc.check_upsert_host(paths, b2) is True
    assert sc.upsert_host(paths, b2) is True
    after = paths.ssh_config.read_text()
    assert after == before[2].decode().replace(b.render(), b2.render())
    assert sc.list_hosts(paths) == ["mlops-a", "mlops-b", "mlops-c"]


def test_add_then_remove_restores_the_tool_file(paths):
    sc.upsert_host(paths, entry(paths, "a"))
    sc.upsert_host(paths, entry(paths, "c"))
    before = paths.ssh_config.read_bytes()
    sc.upsert_host(paths, entry(paths, "b"))
    assert sc.check_remove_host(paths, "mlops-b") is True
    assert sc.remove_host(paths, "mlops-b") is True
    assert paths.ssh_config.read_bytes() == before
    assert sc.remove_host(paths, "mlops-b") is False
    assert sc.check_remove_host(paths, "mlops-b") is False
    sc.remove_host(paths, "mlops-a")
    sc.remove_host(paths, "mlops-c")
    assert paths.ssh_config.read_text() == sc.HEADER
    assert sc.list_hosts(paths) == []


def test_loose_tool_file_permissions_are_fixed(paths):
    e = entry(paths)
    sc.upsert_host(paths, e)
    os.chmod(paths.ssh_config, 0o664)
    assert sc.check_upsert_host(paths, e) is True
    assert sc.upsert_host(paths, e) is True
    assert mode(paths.ssh_config) == 0o600


def test_broken_markers_are_a_config_error(paths):
    sc.upsert_host(paths, entry(paths))
    text = paths.ssh_config.read_text()
    paths.ssh_config.write_text(text.replace("# <<< mlops-env mlops-a <<<\n", ""))
    with pytest.raises(ConfigError) as ei:
        sc.upsert_host(paths, entry(paths, "b"))
    assert "delete" in ei.value.hint


@pytest.mark.parametrize(
    "field, value",
    [
        ("alias", "a b"),
        ("alias", "mlops-*"),
        ("alias", "-oProxyCommand=x"),
        ("alias", "a,b"),
        ("alias", ""),
        ("host_key_alias", "x y"),
        ("hostname", "bad host"),
        ("hostname", "%h"),
        ("port", 0),
        ("port", 70000),
        ("port", "22"),
        ("user", "a b"),
        ("user", "u%r"),
        ("identity_file", Path("relative/key")),
        ("identity_file", Path('/tmp/with"quote')),
        ("known_hosts_file", Path("/tmp/new\nline")),
        ("forwards", [(0, "localhost", 1)]),
        ("forwards", [(8888, "evil host", 8888)]),
    ],
)
def test_invalid_entries_are_refused(paths, field, value):
    with pytest.raises(UsageError):
        entry(paths, **{field: value})


@needs_ssh
def test_paths_with_spaces_and_percent_are_escaped_for_ssh(paths, user_cfg, tmp_path):
    key = tmp_path / "my keys" / "100%key"
    e = entry(paths, identity_file=key)
    assert '    IdentityFile "' + str(key).replace("%", "%%") + '"\n' in e.render()
    sc.upsert_host(paths, e)
    sc.ensure_include(paths)
    opts = ssh_g(user_cfg, "mlops-a")
    # ssh -G prints the value before %-expansion.
    assert opts["identityfile"][0] == str(key).replace("%", "%%")
    assert so.find_overrides(e, paths=paths).warnings == ()


# -- the Include line in the user's file --------------------------------------------------------

MATRIX = {
    "empty": b"",
    "lf": b"# my settings\n\nHost foo\n    User bob\n",
    "crlf": b"# windows\r\nHost foo\r\n    User bob\r\n\r\n",
    "no-final-newline": b"Host foo\n    User bob",
    "comments-and-match": (
        b'# top comment\n#another\n\nMatch host foo exec "true"\n  User matched\n'
        b"Host *\n\tServerAliveInterval 5\n\tUser star\n"
    ),
    "tabs-equals": b"Host=foo\n\tUser=bob\n\tPort = 2022\n",
    "unicode": "# caf\u00e9 \u2615 \u6f22\u5b57\nHost foo\n  User bob\n".encode(),
    "other-include-on-top": b"Include /nonexistent/orbstack/ssh/config\nHost foo\n  User bob\n",
    "blank-lines-only": b"\n\n",
    "trailing-spaces": b"Host foo   \n  User bob  \n# end   ",
}


@needs_ssh
@pytest.mark.parametrize("name", list(MATRIX))
def test_include_round_trip_preserves_every_byte(paths, user_cfg, name):
    original = MATRIX[name]
    write_user(user_cfg, original, mode=0o644)
    e = entry(paths)
    sc.upsert_host(paths, e)

    assert sc.check_include(paths) == "added"
    assert user_cfg.read_bytes() == original  # the check wrote nothing
    assert sc.ensure_include(paths) == "added"
    eol = b"\r\n" if name == "crlf" else b"\n"
    line = sc.include_line(paths).encode()
    assert line == f'Include "{paths.ssh_config}"'.encode()
    assert user_cfg.read_bytes() == line + eol + original
    assert mode(user_cfg) == 0o644  # the user's mode is kept

    before = snapshot(user_cfg)
    assert sc.ensure_include(paths) == "unchanged"
    assert sc.check_include(paths) == "unchanged"
    assert snapshot(user_cfg) == before  # no write at all

    # OpenSSH reads the result: our alias resolves, the user's own host still works.
    assert ssh_g(user_cfg, "mlops-a")["user"] == ["dev"]
    if b"Host foo" in original or b"Host=foo" in original:
        assert ssh_g(user_cfg, "foo")["user"] in (["bob"], ["matched"])

    assert sc.remove_include(paths) == "in-use"
    assert user_cfg.read_bytes() == before[2]
    sc.remove_host(paths, e.alias)
    assert sc.check_remove_include(paths) == "removed"
    assert sc.remove_include(paths) == "removed"
    assert user_cfg.read_bytes() == original
    assert mode(user_cfg) == 0o644
    assert sc.remove_include(paths) == "unchanged"


def test_missing_file_is_created_private_and_deleted_again(paths, home, user_cfg):
    assert sc.check_include(paths) == "created"
    assert not (home / ".ssh").exists()
    assert sc.ensure_include(paths) == "created"
    assert mode(home / ".ssh") == 0o700
    assert mode(user_cfg) == 0o600
    assert user_cfg.read_text() == sc.include_line(paths) + "\n"
    assert sc.ensure_include(paths) == "unchanged"

    assert sc.check_remove_include(paths) == "deleted"
    assert sc.remove_include(paths) == "deleted"
    assert not user_cfg.exists()
    assert not (home / ".ssh").exists()  # we made it, it is empty: gone too
    assert not (paths.ssh_dir / sc.CREATED_MARKER).exists()


def test_created_file_in_existing_ssh_dir_keeps_the_dir(paths, home, user_cfg):
    (home / ".ssh").mkdir(mode=0o755)
    (home / ".ssh" / "known_hosts").write_text("x ssh-ed25519 AAAA\n")
    assert sc.ensure_include(paths) == "created"
    assert mode(home / ".ssh") == 0o755  # not ours to change
    assert sc.remove_include(paths) == "deleted"
    assert not user_cfg.exists()
    assert (home / ".ssh" / "known_hosts").exists()


def test_created_file_with_user_additions_is_kept(paths, user_cfg):
    sc.ensure_include(paths)
    with user_cfg.open("ab") as f:
        f.write(b"Host mine\n  User me\n")
    assert sc.remove_include(paths) == "removed"
    assert user_cfg.read_bytes() == b"Host mine\n  User me\n"
    assert not (paths.ssh_dir / sc.CREATED_MARKER).exists()


@pytest.mark.parametrize(
    "written",
    [
        "Include {p}\n",  # unquoted (the path has a space: ssh would read two files)
        'Include "{p}"\n',
        'include="{p}"\n',
        '\tInclude   "{p}"   \n',
    ],
)
def test_existing_include_forms(paths, user_cfg, written):
    p = str(paths.ssh_config)
    data = (written.format(p=p) + "Host foo\n  User bob\n").encode()
    write_user(user_cfg, data)
    before = snapshot(user_cfg)
    status = sc.ensure_include(paths)
    if written.startswith("Include {p}"):
        # Unquoted, a path with a space is two arguments: not our line.
        assert status == "added"
    else:
        assert status == "unchanged"
        assert snapshot(user_cfg) == before


@pytest.mark.parametrize(
    "above",
    [
        b"Host *\n    User root\n",
        b"Match all\n    Port 2200\n",
        b"User toplevel\n",
    ],
)
def test_include_below_a_block_or_option_is_moved_to_the_top(paths, user_cfg, above):
    line = sc.include_line(paths).encode()
    rest = b"# keep me\nHost foo\n  User bob\n"
    write_user(user_cfg, above + line + b"\n" + rest)
    assert sc.check_include(paths) == "moved"
    assert sc.ensure_include(paths) == "moved"
    assert user_cfg.read_bytes() == line + b"\n" + above + rest
    assert sc.ensure_include(paths) == "unchanged"


def test_include_below_another_include_stays(paths, user_cfg):
    line = sc.include_line(paths).encode()
    data = b"# OrbStack\nInclude ~/.orbstack/ssh/config\n\n" + line + b"\nHost foo\n"
    write_user(user_cfg, data)
    assert sc.ensure_include(paths) == "unchanged"
    assert user_cfg.read_bytes() == data


def test_symlinked_config_is_edited_at_its_target(paths, home, user_cfg, tmp_path):
    target = tmp_path / "dotfiles" / "ssh_config"
    target.parent.mkdir()
    target.write_bytes(b"Host foo\n")
    os.chmod(target, 0o600)
    (home / ".ssh").mkdir()
    user_cfg.symlink_to(target)
    assert sc.ensure_include(paths) == "added"
    assert user_cfg.is_symlink()
    assert target.read_bytes() == sc.include_line(paths).encode() + b"\nHost foo\n"
    assert sc.remove_include(paths, force=True) == "removed"
    assert user_cfg.is_symlink()
    assert target.read_bytes() == b"Host foo\n"


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\xef\xbb\xbfHost foo\n", "byte order mark"),
        (b"# caf\xe9 latin-1\nHost foo\n", "not UTF-8"),
        ("Host foo\n".encode("utf-16-le"), "not UTF-8"),
    ],
)
def test_undecodable_user_config_is_an_error_and_untouched(paths, user_cfg, data, words):
    write_user(user_cfg, data)
    for fn in (sc.check_include, sc.ensure_include, sc.remove_include):
        with pytest.raises(PrereqError) as ei:
            fn(paths)
        assert words in ei.value.message
        assert sc.include_line(paths) in ei.value.hint
    assert user_cfg.read_bytes() == data


def test_unreadable_user_config_is_an_error(paths, user_cfg, monkeypatch):
    write_user(user_cfg, b"Host foo\n")
    real = Path.read_bytes

    def deny(self):
        if self == user_cfg:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(PrereqError) as ei:
        sc.ensure_include(paths)
    assert "Permission denied" in ei.value.message
    assert ei.value.exit_code == 4
    monkeypatch.undo()
    assert user_cfg.read_bytes() == b"Host foo\n"


def test_directory_or_dangling_link_instead_of_file(paths, home, user_cfg):
    user_cfg.mkdir(parents=True)
    with pytest.raises(PrereqError):
        sc.ensure_include(paths)
    user_cfg.rmdir()
    user_cfg.symlink_to(home / "nowhere")
    with pytest.raises(PrereqError, match="does not exist"):
        sc.ensure_include(paths)
    assert not (home / "nowhere").exists()


def test_tool_dir_that_cannot_be_included_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "glob[1]"))
    with pytest.raises(ConfigError, match="Include"):
        sc.ensure_include(get_paths())


# -- what ssh really uses ----------------------------------------------------------------------


@needs_ssh
def test_ssh_resolves_our_alias_through_the_include(paths, user_cfg):
    write_user(user_cfg, b"Host *\n    User star\n    Port 2200\n    IdentityFile ~/.ssh/id_rsa\n")
    e = entry(paths, hostname="EC2-1-2-3-4.example.com", port=2345)
    sc.upsert_host(paths, e)
    sc.ensure_include(paths)
    o = ssh_g(user_cfg, "mlops-a")
    assert o["hostname"] == ["ec2-1-2-3-4.example.com"]  # ssh lowercases
    assert o["port"] == ["2345"]
    assert o["user"] == ["dev"]
    assert o["identityfile"][0] == str(paths.keys_dir / "id_ed25519")
    assert o["identitiesonly"] == ["yes"]
    assert o["userknownhostsfile"] == [str(paths.known_hosts)]
    assert o["hostkeyalias"] == ["mlops-env-a"]
    assert o["stricthostkeychecking"] == ["true"]
    assert o["checkhostip"] == ["no"]
    assert o["exitonforwardfailure"] == ["no"]
    assert o["localforward"] == [
        "[localhost]:8888 [localhost]:8888",
        "[localhost]:5000 [localhost]:5000",
        "[localhost]:9696 [127.0.0.1]:9696",
    ]
    assert o["serveraliveinterval"] == ["30"]
    # A user `Host *` after our Include does not shadow us: no warnings.
    report = so.find_overrides(e, paths=paths)
    assert report.ok, report
    # ... and still applies to the user's other hosts.
    assert ssh_g(user_cfg, "elsewhere")["user"] == ["star"]


SHADOWS = {
    # The user put these above our Include after `up` wrote it (or an old version did).
    "host-star-above": (
        b"Host *\n    User root\n    Port 2200\n",
        b"",
        ["Port=2200", "User=root"],
        "`Host *` at",
    ),
    "match-above": (b"Match all\n    User matcher\n", b"", ["User=matcher"], "`Match all` at"),
    "toplevel-above": (b"User toplevel\n", b"", ["User=toplevel"], "`User toplevel` at"),
}


@needs_ssh
@pytest.mark.parametrize("case", list(SHADOWS))
def test_settings_read_before_our_include_are_reported(paths, user_cfg, case):
    above, _, expected, culprit = SHADOWS[case]
    e = entry(paths)
    sc.upsert_host(paths, e)
    write_user(user_cfg, above + sc.include_line(paths).encode() + b"\nHost foo\n")
    report = so.find_overrides(e, paths=paths)
    assert report.skipped is None
    assert len(report.warnings) == len(expected)
    for w, want in zip(report.warnings, expected, strict=True):
        keyword = want.split("=")[0]
        assert f"sets {want}, which overrides mlops-env's {keyword}=" in w
        assert "for mlops-a" in w
        assert culprit in w
    # `up` moves the Include back to the top: then ours win.
    assert sc.ensure_include(paths) == "moved"
    assert so.find_overrides(e, paths=paths).ok


@needs_ssh
def test_other_include_above_ours_that_shadows_is_reported(paths, user_cfg, tmp_path):
    other = tmp_path / "other.conf"
    other.write_text("Host mlops-*\n    User shadow\n    HostKeyAlias wrong\n")
    os.chmod(other, 0o600)
    e = entry(paths)
    sc.upsert_host(paths, e)
    write_user(user_cfg, f"Include {other}\n".encode())
    assert sc.ensure_include(paths) == "added"  # we go first: nothing shadows
    assert so.find_overrides(e, paths=paths).ok
    # The user (or another tool) puts its Include above ours: allowed, but reported.
    write_user(user_cfg, f"Include {other}\n{sc.include_line(paths)}\n".encode())
    assert sc.ensure_include(paths) == "unchanged"
    report = so.find_overrides(e, paths=paths)
    assert len(report.warnings) == 2
    assert (
        "User=shadow" in report.warnings[0]
        and f"`Host mlops-*` at {other} line 1" in report.warnings[0]
    )
    assert "HostKeyAlias=wrong" in report.warnings[1]


@needs_ssh
def test_settings_that_do_not_shadow_are_not_reported(paths, user_cfg):
    e = entry(paths)
    sc.upsert_host(paths, e)
    write_user(
        user_cfg,
        sc.include_line(paths).encode()
        + b"\nHost *\n  User star\n  Port 1\n  StrictHostKeyChecking no\n"
        + b"Match all\n  UserKnownHostsFile /dev/null\n  HostKeyAlias nope\n"
        + b"Host mlops-a\n  User late\n",
    )
    assert so.find_overrides(e, paths=paths).ok


@needs_ssh
def test_missing_include_is_reported(paths, user_cfg):
    e = entry(paths)
    sc.upsert_host(paths, e)
    write_user(user_cfg, b"Host *\n  User star\n")
    report = so.find_overrides(e, paths=paths)
    assert len(report.warnings) == 1
    assert "does not read mlops-env's settings for mlops-a" in report.warnings[0]


@needs_ssh
def test_remote_command_and_broken_config_are_reported(paths, user_cfg):
    e = entry(paths)
    sc.upsert_host(paths, e)
    sc.ensure_include(paths)
    with user_cfg.open("a") as f:
        f.write("Host *\n  RemoteCommand tmux attach\n")
    (w,) = so.find_overrides(e, paths=paths).warnings
    assert "RemoteCommand=tmux attach" in w and "VS Code" in w
    with user_cfg.open("a") as f:
        f.write("NoSuchOption yes\n")
    (w,) = so.find_overrides(e, paths=paths).warnings
    assert "Bad configuration option" in w
    with pytest.raises(ConfigError, match="nosuchoption"):
        so.effective_options("mlops-a")


def test_without_ssh_the_check_is_skipped(paths, monkeypatch):
    monkeypatch.setattr(so.osenv, "find_program", lambda name, env=None: None)
    e = entry(paths)
    report = so.find_overrides(e, paths=paths)
    assert report.warnings == () and not report.ok
    assert "`ssh` is not installed" in report.skipped
    with pytest.raises(PrereqError):
        so.effective_options("mlops-a")


# -- concurrency ---------------------------------------------------------------------------------


def _upsert_many(home: str, data: str, prefix: str, n: int, go) -> None:
    os.environ["HOME"] = home
    os.environ["MLOPS_ENV_HOME"] = data
    p = get_paths()
    go.wait(30)
    for i in range(n):
        sc.upsert_host(p, entry(p, f"{prefix}{i}", port=2000 + i))
        sc.ensure_include(p)


def test_concurrent_upserts_all_survive(paths, home, user_cfg):
    write_user(user_cfg, b"Host foo\n  User bob\n")
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Barrier(2)  # the children start their loops together
    n = 40
    procs = [
        ctx.Process(target=_upsert_many, args=(str(home), str(paths.data), f"p{j}-", n, go))
        for j in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    hosts = sc.list_hosts(paths)
    assert sorted(hosts) == sorted(f"mlops-p{j}-{i}" for j in range(2) for i in range(n))
    assert user_cfg.read_bytes() == sc.include_line(paths).encode() + b"\nHost foo\n  User bob\n"


# -- a real login with the system ssh client ------------------------------------------------------


class _Box:
    """A one-connection SSH server (paramiko) that accepts one public key and runs `exec`."""

    def __init__(self, host_key_pem: str, authorized_b64: str) -> None:
        import paramiko

        self.host_key = paramiko.Ed25519Key.from_private_key(io.StringIO(host_key_pem))
        self.authorized = authorized_b64
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import paramiko

        box = self

        class Server(paramiko.ServerInterface):
            command = b""
            ran = threading.Event()

            def get_allowed_auths(self, username):
                return "publickey"

            def check_auth_publickey(self, username, key):
                ok = username == "dev" and key.get_base64() == box.authorized
                return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

            def check_channel_request(self, kind, chanid):
                if kind == "session":
                    return paramiko.OPEN_SUCCEEDED
                return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

            def check_channel_exec_request(self, channel, command):
                self.command = command
                self.ran.set()
                return True

        self.sock.settimeout(20)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        t = paramiko.Transport(conn)
        t.add_server_key(self.host_key)
        server = Server()
        try:
            t.start_server(server=server)
            chan = t.accept(20)
            if chan is not None and server.ran.wait(20):
                chan.sendall(b"box ran: " + server.command + b"\n")
                chan.send_exit_status(0)
                chan.close()
        except Exception:
            pass
        finally:
            time.sleep(0.5)  # let ssh read the exit status before the connection drops
            t.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def _ssh(user_cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    return subprocess.run(  # noqa: S603 - fixed program, test-controlled arguments
        ["ssh", "-F", str(user_cfg), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def login_setup(paths, user_cfg):
    kp = keys.ensure_keypair(paths)
    write_user(user_cfg, b"# mine\nHost *\n  User nobody\n  IdentityFile /nonexistent\n")
    return kp


@needs_ssh
@pytest.mark.parametrize("case", ["pinned", "changed", "unknown"])
def test_real_ssh_login_uses_key_pin_and_alias(paths, user_cfg, login_setup, case):
    pinned, presented = keys.generate_host_keypair(), keys.generate_host_keypair()
    if case == "pinned":
        presented = pinned
    if case != "unknown":
        knownhosts.pin(paths, "mlops-env-a", pinned.public_line)
    box = _Box(presented.private_pem, login_setup.public_line.split()[1])
    try:
        sc.upsert_host(paths, entry(paths, port=box.port, forwards=()))
        sc.ensure_include(paths)
        kh_before = paths.known_hosts.read_bytes() if paths.known_hosts.exists() else None
        r = _ssh(user_cfg, "mlops-a", "echo", "hi")
    finally:
        box.close()
    if case == "pinned":
        assert r.returncode == 0, r.stderr
        assert r.stdout == "box ran: echo hi\n"
    else:
        assert r.returncode == 255
        assert "Host key verification failed" in r.stderr
        if case == "changed":
            assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr
    # ssh never writes to our known_hosts (StrictHostKeyChecking yes, UpdateHostKeys no).
    after = paths.known_hosts.read_bytes() if paths.known_hosts.exists() else None
    assert after == kh_before


@needs_ssh
@pytest.mark.parametrize("exit_on_failure", [None, "yes"])
def test_busy_forward_port_does_not_fail_the_session(paths, user_cfg, login_setup, exit_on_failure):
    """What VS Code needs: a taken local 8888 is a warning, not a failed connection."""
    host = keys.generate_host_keypair()
    knownhosts.pin(paths, "mlops-env-a", host.public_line)
    # Hold the port on both loopbacks, like a local Jupyter on `localhost` does (ssh binds
    # `localhost` on 127.0.0.1 and ::1 and only fails when neither works).
    busy = [socket.socket()]
    busy[0].bind(("127.0.0.1", 0))
    port = busy[0].getsockname()[1]
    try:
        s6 = socket.socket(socket.AF_INET6)
        s6.bind(("::1", port))
        busy.append(s6)
    except OSError:
        pass  # no IPv6 loopback: ssh cannot bind ::1 either
    for b in busy:
        b.listen(1)
    box = _Box(host.private_pem, login_setup.public_line.split()[1])
    try:
        sc.upsert_host(paths, entry(paths, port=box.port, forwards=[(port, "localhost", 8888)]))
        sc.ensure_include(paths)
        extra = ("-o", f"ExitOnForwardFailure={exit_on_failure}") if exit_on_failure else ()
        r = _ssh(user_cfg, *extra, "mlops-a", "true")
    finally:
        box.close()
        for b in busy:
            b.close()
    assert "Address already in use" in r.stderr or "cannot listen" in r.stderr.lower(), r.stderr
    if exit_on_failure is None:
        assert r.returncode == 0, r.stderr  # our `ExitOnForwardFailure no` keeps the session
        assert r.stdout == "box ran: true\n"
    else:
        assert r.returncode == 255  # what a user's `Host *` ExitOnForwardFailure yes would do
