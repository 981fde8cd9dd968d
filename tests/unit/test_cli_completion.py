"""Shell completion (issue 16, item 8) of the INSTALLED `mlops-env`, the way each shell asks
for it (Typer's protocol: `_MLOPS_ENV_COMPLETE=complete_SHELL` plus that shell's variables), in
an isolated MLOPS_ENV_HOME with two workstations; and the bash script itself, sourced into a
real bash that completes through it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from clirun import mlops_env_bin

from mlops_env.paths import Paths
from mlops_env.state import Endpoint, Record, Store


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "mlops"
    paths = Paths(data=root, config=root, cache=root / "cache", logs=root / "logs")
    for name, port in (("alpha", 2201), ("beta", 2202)):
        Store(paths).save(Record(name=name, provider="docker", alias=f"mlops-{name}", phase="ready",
                                 endpoint=Endpoint("127.0.0.1", port, "mlops", "/k", f"mlops-env-{name}")))
    (root / "state" / "notes.txt").write_text("not a record\n")
    return root


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_MLOPS_ENV", "_TYPER", "COMP_"))}
    return {**env, "MLOPS_ENV_HOME": str(home), "HOME": str(home.parent), **extra}


def complete_bash(home: Path, line: str) -> list[str]:
    words = line.split(" ")
    r = subprocess.run([mlops_env_bin()], capture_output=True, text=True, timeout=60,
                       env=env_for(home, _MLOPS_ENV_COMPLETE="complete_bash", COMP_WORDS=line,
                                   COMP_CWORD=str(len(words) - 1)))
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.mark.parametrize("command", ["status", "ssh", "code", "stop", "start", "down", "idle-stop", "doctor",
                                     "smoke-test", "up docker", "up ec2"])
def test_workstation_names_complete(home: Path, command: str) -> None:
    assert complete_bash(home, f"mlops-env {command} ") == ["alpha", "beta"]
    assert complete_bash(home, f"mlops-env {command} b") == ["beta"]


def test_names_after_global_flags_and_none_without_state(home: Path, tmp_path: Path) -> None:
    assert complete_bash(home, "mlops-env --json status a") == ["alpha"]
    assert complete_bash(tmp_path / "empty", "mlops-env status ") == []


def test_commands_and_options_complete(home: Path) -> None:
    cmds = complete_bash(home, "mlops-env ")
    assert cmds[0] == "up" and {"status", "doctor", "idle-stop", "devcontainer"} <= set(cmds)
    assert complete_bash(home, "mlops-env up d") == ["docker"]
    assert complete_bash(home, "mlops-env up docker --python-d") == ["--python-dist"]
    assert complete_bash(home, "mlops-env up docker --python-dist mini") == ["miniconda", "miniforge"]
    assert complete_bash(home, "mlops-env idle-stop alpha ") == ["30m", "1h", "2h", "off"]
    assert complete_bash(home, "mlops-env --show-completion ") == ["bash", "zsh", "fish", "powershell"]


def test_zsh_fish_and_powershell_protocols(home: Path) -> None:
    zsh = subprocess.run([mlops_env_bin()], capture_output=True, text=True, timeout=60,
                         env=env_for(home, _MLOPS_ENV_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="mlops-env status "))
    assert zsh.returncode == 0 and "alpha" in zsh.stdout and "beta" in zsh.stdout, zsh
    fish = subprocess.run([mlops_env_bin()], capture_output=True, text=True, timeout=60,
                          env=env_for(home, _MLOPS_ENV_COMPLETE="complete_fish", _TYPER_COMPLETE_FISH_ACTION="get-args",
                                      _TYPER_COMPLETE_ARGS="mlops-env status "))
    assert fish.returncode == 0 and fish.stdout.split() == ["alpha", "beta"], fish
    ps = subprocess.run([mlops_env_bin()], capture_output=True, text=True, timeout=60,
                        env=env_for(home, _MLOPS_ENV_COMPLETE="complete_powershell",
                                    _TYPER_COMPLETE_ARGS="mlops-env status b", _TYPER_COMPLETE_WORD_TO_COMPLETE="b"))
    assert ps.returncode == 0 and [line.split(":::")[0] for line in ps.stdout.split()] == ["beta"], ps


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o default -F _mlops_env_completion mlops-env"),
    ("zsh", "compdef _mlops_env_completion mlops-env"),
    ("fish", "complete --command mlops-env"),
    ("powershell", "Register-ArgumentCompleter -Native -CommandName mlops-env"),
])
def test_show_completion_prints_the_script(home: Path, shell: str, marker: str) -> None:
    r = subprocess.run([mlops_env_bin(), "--show-completion", shell], capture_output=True, text=True,
                       timeout=60, env=env_for(home))
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout and "_MLOPS_ENV_COMPLETE=complete_" in r.stdout.replace("$Env:", "").replace(
        '_MLOPS_ENV_COMPLETE = "complete_', "_MLOPS_ENV_COMPLETE=complete_")


def test_the_bash_script_completes_in_a_real_bash(home: Path) -> None:
    """What a user gets: the printed script sourced into bash, whose completion function runs
    the installed command (found on PATH, as a shell finds it)."""
    script = subprocess.run([mlops_env_bin(), "--show-completion", "bash"], capture_output=True, text=True,
                            timeout=60, env=env_for(home), check=True).stdout
    bash = shutil.which("bash")
    assert bash
    prog = (script + '\nCOMP_WORDS=(mlops-env status ""); COMP_CWORD=2; _mlops_env_completion mlops-env\n'
            'printf "%s\\n" "${COMPREPLY[@]}"\n')
    path = f"{Path(mlops_env_bin()).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    r = subprocess.run([bash, "--norc", "-c", prog], capture_output=True, text=True, timeout=60,
                       env=env_for(home, PATH=path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["alpha", "beta"]


def test_install_completion_writes_the_script_for_new_shells(home: Path) -> None:
    user_home = home.parent
    r = subprocess.run([mlops_env_bin(), "--install-completion", "bash"], capture_output=True, text=True,
                       timeout=60, env=env_for(home))
    assert r.returncode == 0, r.stderr
    installed = user_home / ".bash_completions" / "mlops-env.sh"
    assert "_MLOPS_ENV_COMPLETE=complete_bash" in installed.read_text()
    assert str(installed) in (user_home / ".bashrc").read_text() or ".bash_completions/mlops-env.sh" in (
        user_home / ".bashrc").read_text()


def test_an_unknown_shell_is_a_usage_error(home: Path) -> None:
    r = subprocess.run([mlops_env_bin(), "--show-completion", "tcsh"], capture_output=True, text=True,
                       timeout=60, env=env_for(home))
    assert r.returncode == 2 and "'tcsh' is not one of bash, zsh, fish, powershell" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
