"""`mlops-env up ssh` end to end with the laptop side behaving as on Windows, as far as the osenv
seam reaches (tests/winsim.py in the CLI process: st_mode 0666, no getuid/killpg/exec, select
refusing pipes, ACLs through a fake of the Windows API), against a real test box (a systemd
Debian container, tests/hosts.py) with real OpenSSH. What this cannot show: the real Windows
API, Windows OpenSSH and the console; .github/workflows/laptops.yml runs the unit layer on a
real Windows runner."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import hosts
import winsim
from clirun import Run, mlops_env_bin
from e2ehelp import USER_SSH_CONFIG, Env, step_status


def _win(user_env: Env, store: Path, *args: str, timeout: float = 900) -> Run:
    p = subprocess.run([mlops_env_bin(), *args], env=winsim.cli_env(user_env.env, store),  # noqa: S603
                       capture_output=True, text=True, timeout=timeout, input="", check=False)
    return Run(p.returncode, p.stdout, p.stderr)


def test_up_ssh_from_a_windows_laptop(user_env: Env, vm_host: Any, docker_engine: Any,
                                      standin_conda_installer: Any, tmp_path: Path) -> None:
    store = tmp_path / "acl.json"
    acl = winsim.FakeWinApi(store)
    vm = vm_host(user="ubuntu")
    url = hosts.mirror_into(docker_engine, vm.container_id, standin_conda_installer.path)
    args = ["--json", "up", "ssh", "win", "--host", vm.host_spec, "--identity", str(vm.identity),
            "--smoke-test", "sample", "--ssh-timeout", "20", "--conda-installer", url,
            "--conda-sha256", standin_conda_installer.sha256, "--accept-anaconda-tos"]

    r = _win(user_env, store, *args, "--host-key-fingerprint", vm.host_key_fingerprint)
    assert r.code == 0, str(r)
    assert step_status(r) == {"provision": "unchanged", "base": "changed", "conda": "changed",
                              "docker": "changed", "smoke": "changed", "ssh-config": "changed"}
    # The laptop's private files got private ACLs (the only protection Windows OpenSSH reads).
    for f in (user_env.root / "keys" / "id_ed25519", user_env.root / "keys", user_env.root / "ssh" / "config",
              user_env.root / "ssh" / "known_hosts", user_env.ssh_config):
        assert acl.is_private(f), f
    # The system OpenSSH uses what mlops-env wrote.
    s = user_env.ssh("mlops-win", "~/anaconda3/bin/conda --version")
    assert s.returncode == 0 and "conda" in s.stdout, s.stderr

    # A second run: the ssh-config re-check holds (before: "did not take", st_mode 0666).
    again = _win(user_env, store, *args)
    assert again.code == 0, str(again)
    assert set(step_status(again).values()) == {"unchanged"}
    assert (again.data["ssh_connections"], again.data["ssh_round_trips"]) == (1, 1)

    # `mlops-env ssh` runs ssh as a child and passes its exit code (no exec on Windows).
    e = _win(user_env, store, "ssh", "win", "--", "exit", "3", timeout=120)
    assert e.code == 3, str(e)
    j = _win(user_env, store, "--json", "ssh", "win", "--", "echo", "hello;", "echo", "$USER", timeout=120)
    assert j.code == 0, str(j)
    assert (j.data["exit_code"], j.data["stdout"]) == (0, "hello\nubuntu\n")  # a command line, as ssh sends it

    # This laptop's doctor: its own side, by ACLs, in Python. The user's own --identity key was
    # made outside the profile (its inherited ACL lets Users read it): Windows OpenSSH would
    # refuse it, and doctor says so with the icacls line; protected, nothing fails.
    d = _win(user_env, store, "--json", "doctor", timeout=120)
    assert d.code == 1, str(d)
    perms = next(c for c in d.data["checks"] if c["id"] == "local.ssh-perms")
    assert f"{vm.identity} can be read by Users" in perms["message"] and "icacls" in perms["hint"]
    acl.set_private(str(vm.identity), winsim.USER_SID, False)
    d = _win(user_env, store, "--json", "doctor", timeout=120)
    assert d.code == 0, str(d)
    assert d.data["target"]["role"] == "laptop"
    checks = {c["id"]: c for c in d.data["checks"]}
    assert checks["local.ssh-key"]["status"] == "ok" and "only you, SYSTEM and Administrators" in \
        checks["local.ssh-key"]["message"]
    assert checks["local.ssh-hosts"]["status"] == "ok", checks["local.ssh-hosts"]

    dn = _win(user_env, store, "--json", "down", "win", "--yes", timeout=120)
    assert dn.code == 0, str(dn)
    assert user_env.ssh_config.read_bytes() == USER_SSH_CONFIG
    assert json.loads(store.read_text())  # the fake API was used by the CLI process
