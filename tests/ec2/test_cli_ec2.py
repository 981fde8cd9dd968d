"""`mlops-env up ec2` at the CLI level, without AWS: help, start-up cost, bad input refused
before any AWS call (no endpoint is reachable here: a call would fail differently)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_env.cli import app


@pytest.fixture()
def cli(aws_env: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # closed: any AWS call would fail
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_help_lists_the_ec2_options(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("up", "ec2", "--help")
    assert r.exit_code == 0
    for opt in ("--region", "--profile", "--instance-type", "--disk-gb", "--ami", "--spot", "--allow-cidr",
                "--subnet", "--provision-only", "--dry-run", "--yes", "--python-dist", "--smoke-test"):
        assert opt in r.stdout, opt
    for cmd in (["list", "--help"], ["down", "--help"]):
        assert "--region" in cli(*cmd).stdout


def test_cli_start_up_does_not_import_boto3() -> None:
    code = "import sys, mlops_env.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("args", "text"), [
    (["--disk-gb", "19"], "20..2000"),
    (["--disk-gb", "2001"], "20..2000"),
    (["--allow-cidr", "10.1.2.3/8"], "CIDR"),
    (["--region", "mars"], "region"),
    (["--ami", "debian-12"], "ubuntu-24.04"),
    (["--subnet", "sub-1"], "subnet"),
    (["--instance-type", "big"], "instance type"),
])
def test_bad_options_exit_2_before_any_aws_call(cli, args: list[str], text: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "up", "ec2", "ws", *args)
    assert r.exit_code == 2, r.stdout
    doc = json.loads(r.stdout)
    assert doc["errors"][0]["code"] == "invalid-option" and text in doc["errors"][0]["message"]


def test_invalid_name_is_refused(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "up", "ec2", "Bad_Name")
    assert r.exit_code == 2 and json.loads(r.stdout)["errors"][0]["code"] == "invalid-name"
