"""doctor's ``local`` category: AWS (STAND-IN AWS: moto's HTTP server for STS), the SSH client
config, the tool's key and ~/.ssh permissions, VS Code. Pure helpers on captured inputs, the
file checks in an isolated HOME and MLOPS_ENV_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlops_env.doctor import local
from mlops_env.doctor.parse import FAIL, OK, SKIP, WARN
from mlops_env.paths import get_paths
from mlops_env.ssh import config as sshconfig
from mlops_env.ssh import keys

NOW = datetime(2026, 5, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return h


# -- AWS: pure helpers ------------------------------------------------------------------------
SSO_CONFIG = """[default]
region = eu-west-1

[profile course]
sso_session = uni
sso_account_id = 123456789012
sso_role_name = Student
region = eu-central-1

[sso-session uni]
sso_start_url = https://uni.awsapps.com/start
sso_region = eu-west-1
"""


@pytest.mark.parametrize("env,creds,conf,want", [
    ({}, "", "", None),
    ({"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"}, "", "", "environment variables"),
    ({}, "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = x\n", "",
     "profile default (credentials file)"),
    ({"AWS_PROFILE": "course"}, "", SSO_CONFIG, "profile course (SSO)"),
    ({}, "", SSO_CONFIG, None),  # the default profile has a region, but no credentials
    ({"AWS_PROFILE": "ci"}, "", "[profile ci]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n",
     "profile ci (role arn)"),
    ({}, "[default\nbroken", "", None),
])
def test_aws_source(env: dict[str, str], creds: str, conf: str, want: str | None) -> None:
    assert local.aws_source(env, creds, conf) == want


def test_aws_region() -> None:
    assert local.aws_region({"AWS_REGION": "us-east-2"}, SSO_CONFIG) == ("us-east-2", "AWS_REGION")
    assert local.aws_region({"AWS_PROFILE": "course"}, SSO_CONFIG) == ("eu-central-1", "profile course")
    assert local.aws_region({}, "") == (None, "")


def test_sso_status() -> None:
    def doc(delta: timedelta, **extra: Any) -> dict[str, Any]:
        return {"startUrl": "https://uni.awsapps.com/start", "accessToken": "t",
                "expiresAt": (NOW + delta).strftime("%Y-%m-%dT%H:%M:%SZ"), **extra}

    registration = {"clientId": "c", "clientSecret": "s", "expiresAt": "2027-01-01T00:00:00Z"}
    assert local.sso_status([doc(timedelta(hours=6)), registration], NOW).message == "SSO login valid for 6.0 h"
    soon = local.sso_status([doc(timedelta(minutes=20))], NOW)
    assert soon.status == WARN and soon.message == "the SSO login expires in 20 min"
    gone = local.sso_status([doc(timedelta(hours=-3))], NOW)
    assert gone.status == WARN and "expired 3 h ago" in gone.message and gone.hint == "`aws sso login`"
    # AWS CLI v1 wrote "UTC" instead of "Z"
    v1 = {"accessToken": "t", "expiresAt": (NOW + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SUTC")}
    assert local.sso_status([v1], NOW).status == OK
    assert local.sso_status([registration], NOW).status == WARN  # configured, never logged in


# -- AWS: the checks --------------------------------------------------------------------------
def test_no_credentials_is_a_warning_and_does_not_load_boto3(home: Path) -> None:
    code = ("import sys, json; from pathlib import Path; from mlops_env.doctor import local; "
            "out = local.aws_checks({}, Path(sys.argv[1])); "
            "print(json.dumps([[c.id, c.status] for c in out] + [['boto3', 'boto3' in sys.modules]]))")
    p = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, check=True)
    assert json.loads(p.stdout) == [["local.aws-credentials", WARN], ["local.aws-sso", SKIP],
                                    ["local.aws-region", SKIP], ["boto3", False]]


@pytest.fixture(scope="module")
def moto_server() -> Any:
    """STAND-IN AWS: moto's real HTTP server on loopback (no AWS is reachable here)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_sts_against_moto(home: Path, moto_server: str) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_REGION": "eu-west-1"}
    os.environ.update(env, AWS_ENDPOINT_URL=moto_server, AWS_CONFIG_FILE="/dev/null",
                      AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    try:
        out = {c.id: c for c in local.aws_checks(env, home)}
    finally:
        for k in (*env, "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            os.environ.pop(k, None)
    c = out["local.aws-credentials"]
    assert c.status == OK and c.message.startswith("valid: account 123456789012") and "[environment variables]" in c.message
    assert out["local.aws-region"].message == "region eu-west-1 (from AWS_REGION)"
    assert out["local.aws-sso"].status == SKIP


def test_sts_unreachable_is_a_quick_warning(home: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}
    os.environ.update(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    try:
        t0 = time.monotonic()
        c = {c.id: c for c in local.aws_checks(env, home, timeout=1.0)}
        took = time.monotonic() - t0
    finally:
        for k in (*env, "AWS_ENDPOINT_URL"):
            os.environ.pop(k, None)
    assert c["local.aws-credentials"].status == WARN and "cannot reach AWS STS" in c["local.aws-credentials"].message
    assert c["local.aws-region"].status == WARN and "aws configure set region" in c["local.aws-region"].hint
    assert took < 5


def test_bounded_reports_a_hang() -> None:
    t0 = time.monotonic()
    out = local.bounded(lambda: time.sleep(5) or [], 0.3, ["local.aws-credentials"], "the AWS STS check")
    assert time.monotonic() - t0 < 2
    assert out[0].status == WARN and out[0].message == "the AWS STS check: no answer within 0.3 s"


# -- SSH --------------------------------------------------------------------------------------
def test_perm_problems() -> None:
    items = [("/h/.ssh", "sshdir", 0o40777, 1000), ("/h/.ssh/config", "config", 0o100664, 1000),
             ("/h/.ssh/id_ed25519", "key", 0o100644, 1000), ("/h/.ssh/id_rsa", "key", 0o100600, 1000),
             ("/h/.ssh/other", "key", 0o100600, 1234)]
    got = local.perm_problems(items, 1000)
    assert [s for s, _, _ in got] == [WARN, FAIL, FAIL, FAIL]
    assert got[1][2] == "`chmod 600 /h/.ssh/config`" and "Bad owner or permissions" in got[1][1]
    assert "UNPROTECTED PRIVATE KEY FILE" in got[2][1]
    assert "belongs to another user" in got[3][1]


def test_ssh_perms_check(home: Path) -> None:
    assert local.ssh_perms_check(home, []).status == SKIP
    d = home / ".ssh"
    d.mkdir(mode=0o700)
    (d / "config").write_text("Host x\n")
    (d / "config").chmod(0o600)
    (d / "id_ed25519").write_text("k")
    (d / "id_ed25519").chmod(0o600)
    (d / "id_ed25519.pub").write_text("k")
    assert local.ssh_perms_check(home, []).status == OK
    (d / "config").chmod(0o666)
    c = local.ssh_perms_check(home, [])
    assert c.status == FAIL and f"`chmod 600 {d / 'config'}`" in c.hint


def _workstation(home: Path) -> tuple[Any, sshconfig.HostEntry]:
    paths = get_paths()
    kp = keys.ensure_keypair(paths)
    entry = sshconfig.HostEntry(alias="mlops-ws", hostname="127.0.0.1", port=2222, user="dev",
                                identity_file=kp.private_path, known_hosts_file=paths.known_hosts,
                                host_key_alias="mlops-env-ws")
    sshconfig.upsert_host(paths, entry)
    sshconfig.ensure_include(paths)
    return paths, entry


def test_include_and_hosts(home: Path) -> None:
    paths = get_paths()
    fix = "run `mlops-env doctor --fix`"
    assert local.ssh_include_check(paths, False, fix).status == SKIP
    assert local.ssh_hosts_check(paths, [], False, fix).status == SKIP
    paths, entry = _workstation(home)
    inc = local.ssh_include_check(paths, True, fix)
    assert inc.status == OK
    ok = local.ssh_hosts_check(paths, [entry], True, fix)
    assert ok.status == OK and "mlops-ws" in ok.message

    cfg = home / ".ssh" / "config"
    line = sshconfig.include_line(paths)
    # the user's Host * above our Include: ours is shadowed -> the Include check fails (fixable)
    cfg.write_text("Host *\n    User root\n" + line + "\n")
    moved = local.ssh_include_check(paths, True, fix)
    assert (moved.status, moved.step) == (FAIL, "ssh-config") and "comes after your own" in moved.message
    assert fix in moved.hint
    # Include first, but a Match/`Host *` later cannot shadow it... while one inside an earlier
    # Include can: simulate a user option read before ours via a top-level option line
    cfg.write_text(line + "\n")
    assert local.ssh_include_check(paths, True, fix).status == OK
    cfg.write_text("")
    missing = local.ssh_include_check(paths, True, fix)
    assert missing.status == FAIL and "does not include" in missing.message and line in missing.hint
    # a Host block that is gone from the tool's file
    sshconfig.remove_host(paths, "mlops-ws")
    gone = local.ssh_hosts_check(paths, [entry], False, fix)
    assert (gone.status, gone.step) == (FAIL, "ssh-config") and "mlops-ws" in gone.message


@pytest.mark.skipif(not __import__("shutil").which("ssh"), reason="needs the OpenSSH client (ssh -G)")
def test_hosts_shadowed_by_an_included_file(home: Path) -> None:
    paths, entry = _workstation(home)
    # an Include of the user's own file *before* ours (allowed above ours) that sets User
    mine = home / ".ssh" / "mine.conf"
    mine.write_text("Host *\n    User root\n    Port 2200\n")
    cfg = home / ".ssh" / "config"
    cfg.write_text(f"Include {mine}\n" + cfg.read_text())
    c = local.ssh_hosts_check(paths, [entry], True, "run `mlops-env doctor --fix`")
    assert c.status == WARN and "User=root" in c.message and "Port=2200" in c.message


def test_key_check(home: Path) -> None:
    paths = get_paths()
    assert local.ssh_key_check(paths).status == SKIP
    kp = keys.ensure_keypair(paths)
    ok = local.ssh_key_check(paths)
    assert ok.status == OK and kp.fingerprint in ok.message
    kp.private_path.chmod(0o644)
    bad = local.ssh_key_check(paths)
    assert bad.status == FAIL and "0644" in bad.message and f"chmod 600 {kp.private_path}" in bad.hint


def test_ssh_client_check() -> None:
    c = local.ssh_client_check()
    import shutil

    if shutil.which("ssh"):
        assert c.status == OK and "OpenSSH" in c.message
    else:
        assert c.status == FAIL


# -- VS Code ----------------------------------------------------------------------------------
def test_remote_ssh_parsers() -> None:
    assert local.remote_ssh_from_dirs(["ms-python.python-2024.8.0", "ms-vscode-remote.remote-ssh-edit-0.86.0",
                                       "ms-vscode-remote.remote-ssh-0.110.1"]) == "0.110.1"
    assert local.remote_ssh_from_dirs(["ms-vscode-remote.remote-ssh-edit-0.86.0"]) is None
    assert local.remote_ssh_from_list("ms-python.python\nMS-VSCode-Remote.Remote-SSH@0.110.1\n")
    assert not local.remote_ssh_from_list("ms-vscode-remote.remote-ssh-edit\n")


def test_vscode_checks(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    c = {x.id: x for x in local.vscode_checks(home)}
    assert c["local.vscode"].status == WARN and c["local.vscode-remote-ssh"].status == WARN
    assert c["local.vscode-remote-ssh"].hint == "`code --install-extension ms-vscode-remote.remote-ssh`"
    # a `code` whose --list-extensions lists it (the slow path: no extension folder)
    code = bin_dir / "code"
    code.write_text("#!/bin/sh\necho ms-python.python\necho ms-vscode-remote.remote-ssh\n")
    code.chmod(0o755)
    c = {x.id: x for x in local.vscode_checks(home)}
    assert c["local.vscode"].status == OK and c["local.vscode-remote-ssh"].message == "Remote-SSH installed"
    # the fast path: the extension folder, without starting `code`
    code.write_text("#!/bin/sh\n/bin/sleep 30\necho ms-vscode-remote.remote-ssh\n")
    (home / ".vscode" / "extensions" / "ms-vscode-remote.remote-ssh-0.110.1").mkdir(parents=True)
    t0 = time.monotonic()
    c = {x.id: x for x in local.vscode_checks(home, timeout=1)}
    assert c["local.vscode-remote-ssh"].message == "Remote-SSH 0.110.1" and time.monotonic() - t0 < 1
    # a hanging `code` is reported, not waited on
    (home / ".vscode" / "extensions" / "ms-vscode-remote.remote-ssh-0.110.1").rmdir()
    t0 = time.monotonic()
    c = {x.id: x for x in local.vscode_checks(home, timeout=0.5)}
    assert c["local.vscode-remote-ssh"].status == WARN and "did not answer" in c["local.vscode-remote-ssh"].message
    assert time.monotonic() - t0 < 3  # the launcher's child (sleep) is killed too
