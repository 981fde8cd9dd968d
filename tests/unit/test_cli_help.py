"""`--help` a person can scan (issue 16, item 7), read from the INSTALLED `mlops-env` for every
command the CLI has (walked from the click tree, so a new command is covered too): `up` first,
arguments as NAME, no Python types, choices shown, examples in each command's help."""

from __future__ import annotations

import os
import re
import subprocess
from functools import cache

import pytest
from clirun import mlops_env_bin

# Typer's type labels: <str>, <int>, <path>, <list[str]>, <float range>, <anaconda|miniforge> ...
PYTHON_TYPE = re.compile(r"<(str|int|float|bool|path|file|text|choice|list\[[^\]]*\]|[a-z]+ range|[a-z]+(\|[a-z]+)+)>")


def _commands() -> list[tuple[str, ...]]:
    from typer.main import get_command

    from mlops_env.cli import app

    out: list[tuple[str, ...]] = []

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        out.append(path)
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, (*path, name))

    walk(get_command(app), ())
    return out


COMMANDS = _commands()


@cache
def helptext(path: tuple[str, ...]) -> str:
    env = {**os.environ, "COLUMNS": "100", "MLOPS_ENV_HOME": "/nonexistent/mlops-env-help"}
    r = subprocess.run([mlops_env_bin(), *path, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_tree_is_all_there() -> None:
    assert {("up", "docker"), ("up", "ec2"), ("status",), ("idle-stop",), ("devcontainer", "init")} <= set(COMMANDS)


def test_up_is_the_first_command() -> None:
    text = helptext(())
    listed = re.findall(r"^  ([a-z-]+)  ", text.split("\nCommands:\n", 1)[1], re.M)
    assert listed[0] == "up", listed
    assert {"list", "status", "doctor", "down", "idle-stop"} <= set(listed)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "mlops-env")
def test_help_has_no_python_types_and_one_argument_notation(path: tuple[str, ...]) -> None:
    text = helptext(path)
    assert not PYTHON_TYPE.search(text), PYTHON_TYPE.search(text)
    usage = text.splitlines()[0]
    assert usage.startswith("Usage: mlops-env"), usage
    # arguments are NAME or [NAME] (Typer's own notation would be {name} and name <str>)
    assert "{" not in usage and not re.search(r"\b[a-z_]+\b(?=\]|\s|$)", usage.split("[OPTIONS]", 1)[-1]), usage
    args = text.split("\nArguments:\n", 1)[1].split("\n\n", 1)[0] if "\nArguments:\n" in text else ""
    for line in args.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            assert re.match(r"^  [A-Z][A-Z_]*(\.\.\.)?  ", line), line


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "mlops-env")
def test_help_has_examples_that_are_real_commands(path: tuple[str, ...]) -> None:
    text = helptext(path)
    assert "\nExamples:\n" in text, text
    examples = text.split("\nExamples:\n", 1)[1].splitlines()
    runs = [e.strip() for e in examples if e.strip().startswith("mlops-env ")]
    assert runs, examples
    prefix = "mlops-env " + " ".join(path)
    if path:  # a command's examples run that command (the root's show several)
        assert any(r.startswith(prefix) or r.startswith("mlops-env --json " + " ".join(path)) for r in runs), runs


@pytest.mark.parametrize(("path", "option", "values"), [
    (("up", "docker"), "--python-dist", "anaconda|miniconda|miniforge"),
    (("up", "ec2"), "--smoke-test", "course|sample|off"),
    (("up", "ssh"), "--docker-source", "distro|docker"),
    (("doctor",), "--python-dist", "anaconda|miniconda|miniforge"),
    (("devcontainer", "init"), "--python-dist", "anaconda|miniconda|miniforge"),
    ((), "--show-completion", "bash|zsh|fish|powershell"),
])
def test_fixed_choices_are_shown(path: tuple[str, ...], option: str, values: str) -> None:
    assert f"{option} [{values}]" in helptext(path)


@pytest.mark.parametrize(("key", "flag", "shown"), [
    ("python_dist", "--python-dist", "PYTHON_DISTS"),
    ("docker_source", "--docker-source", "DOCKER_SOURCES"),
    ("smoke_test", "--smoke-test", "SMOKE_TESTS"),
])
def test_the_choices_shown_are_the_ones_config_accepts(key: str, flag: str, shown: str) -> None:
    """The help only shows and completes the values; config.py validates them. Both lists agree."""
    from mlops_env import config
    from mlops_env.cli import up

    values = getattr(up, shown)
    conv = config.UP_OPTIONS[key].convert
    assert [conv(v) for v in values] == list(values)
    with pytest.raises(ValueError, match=r"expected one of (.*), got") as e:
        conv("nope")
    assert str(e.value).split("expected one of ", 1)[1].split(", got")[0] == ", ".join(values)


def test_up_docker_says_what_offline_needs() -> None:
    text = helptext(("up", "docker"))
    intro = text.split("\nArguments:\n", 1)[0]
    assert "offline" not in intro.splitlines()[2]  # the one-line description no longer claims it
    for need in ("network", "--image", "--conda-installer file://", "--conda-sha256", "--smoke-test sample"):
        assert need in " ".join(intro.split()), need


def test_idle_stop_argument_is_duration() -> None:
    text = helptext(("idle-stop",))
    assert text.startswith("Usage: mlops-env idle-stop [OPTIONS] NAME DURATION\n")
    assert "--idle-stop DURATION" in helptext(("up", "ec2"))


def test_a_value_outside_the_choices_is_still_refused_with_the_choices() -> None:
    env = {**os.environ, "MLOPS_ENV_HOME": "/nonexistent/mlops-env-help"}
    r = subprocess.run([mlops_env_bin(), "up", "docker", "--python-dist", "mamba", "--dry-run"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2
    assert "expected one of anaconda, miniconda, miniforge, got 'mamba'" in r.stderr
    assert "Traceback" not in r.stderr
