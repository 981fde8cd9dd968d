"""`mlops-env ssh NAME [-- CMD]` with a stand-in `ssh` first on PATH (it prints its argv and
exits with the code the remote command asks for): the JSON envelope under --json, and on a
(simulated) Windows laptop, where there is no exec, the child's exit code passed on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import winsim
from clirun import mlops_env_bin

FAKE_SSH = """#!PYTHON
import json, sys
args = sys.argv[1:]
cmd = args[args.index("--") + 2:]
print(json.dumps(args))
sys.stderr.write("stand-in ssh: " + " ".join(cmd) + "\\n")
sys.exit(int(cmd[1]) if cmd[:1] == ["exit"] else 0)
"""


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(FAKE_SSH.replace("PYTHON", sys.executable))
    ssh.chmod(0o755)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    e = dict(os.environ, HOME=str(home), MLOPS_ENV_HOME=str(tmp_path / "mlops"), NO_COLOR="1",
             PATH=f"{bin_dir}:{os.environ['PATH']}")
    code = ("from mlops_env.paths import get_paths\nfrom mlops_env.state import Endpoint, Record, Store\n"
            "Store(get_paths()).save(Record(name='ws', provider='ssh', alias='mlops-ws', phase='ready', "
            "endpoint=Endpoint('127.0.0.1', 2222, 'dev', '/k', 'mlops-env-ws')))")
    subprocess.run([sys.executable, "-c", code], env=e, check=True)
    return e


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([mlops_env_bin(), *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


def test_json_ssh_command_envelope(env: dict[str, str], tmp_path: Path) -> None:
    """Before: os.execv replaced mlops-env, so stdout was ssh's, not one JSON document."""
    r = run(env, "--json", "ssh", "ws", "--", "exit", "3")
    assert r.returncode == 3, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    d: dict[str, Any] = doc["data"]
    assert (doc["status"], doc["exit_code"]) == ("error", 3)
    assert (d["exit_code"], d["command"], d["stderr"]) == (3, ["exit", "3"], "stand-in ssh: exit 3\n")
    argv = json.loads(d["stdout"])
    assert argv[:2] == ["-F", str(tmp_path / "mlops" / "ssh" / "config")]  # no Include yet: the tool's file
    assert argv[2:] == ["-o", "BatchMode=yes", "-T", "--", "mlops-ws", "exit", "3"]
    assert doc["errors"][0]["code"] == "command-failed"
    ok = run(env, "--json", "ssh", "ws", "--", "ls", "-la")
    assert ok.returncode == 0 and json.loads(ok.stdout)["errors"] == []
    assert json.loads(json.loads(ok.stdout)["data"]["stdout"])[-3:] == ["mlops-ws", "ls", "-la"]
    # ssh's own failure (255) says so
    lost = run(env, "--json", "ssh", "ws", "--", "exit", "255")
    assert lost.returncode == 255 and json.loads(lost.stdout)["errors"][0]["code"] == "ssh-failed"


def test_json_ssh_without_a_command_is_a_usage_error(env: dict[str, str]) -> None:
    r = run(env, "--json", "ssh", "ws")
    assert r.returncode == 2
    err = json.loads(r.stdout)["errors"][0]
    assert err["code"] == "usage" and "COMMAND" in err["message"] and "-- COMMAND" in err["hint"]


def test_windows_ssh_passes_the_exit_code(env: dict[str, str], tmp_path: Path) -> None:
    """Before: os.execv on Windows starts ssh and ends mlops-env at once with exit 0."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the Windows simulation runs on Linux")
    wenv = winsim.cli_env(env, tmp_path / "acl.json")
    r = run(wenv, "ssh", "ws", "--", "exit", "3")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "stand-in ssh: exit 3" in r.stderr
    assert json.loads(r.stdout)[-3:] == ["mlops-ws", "exit", "3"]
    assert run(wenv, "ssh", "ws", "--", "true").returncode == 0


def test_posix_ssh_execs(env: dict[str, str]) -> None:
    r = run(env, "ssh", "ws", "--", "exit", "4")
    assert r.returncode == 4 and json.loads(r.stdout)[-1] == "4"
