"""Fixtures for the EC2 tests. AWS is the STAND-IN moto (../shared/TESTBED.md): in-process
(``mock_aws``) for provider tests, a server process (``moto_launcher.py``) for the black-box
tests. Canonical's AMIs and SSM parameters are seeded (``seed.py``); fake credentials only.

No test here may reach a real address: IMDS credential lookups are disabled, and the SSH
address of every fake instance is mapped to a closed loopback port unless a test maps it to
its own container (``MLOPS_ENV_TEST_SSH_ADDRESS_MAP``, a documented test-only seam)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

REGION = "eu-west-1"


def fake_aws_environ() -> dict[str, str]:
    """Fake credentials and no config files: nothing can reach a real AWS account."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for k in list(os.environ):
        if k.startswith("AWS_") or k.startswith("MLOPS_ENV_"):
            monkeypatch.delenv(k, raising=False)
    for k, v in fake_aws_environ().items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    from ec2help import closed_port

    monkeypatch.setenv("MLOPS_ENV_TEST_SSH_ADDRESS_MAP", f"*=127.0.0.1:{closed_port()}")
    return tmp_path


@pytest.fixture
def moto_ec2(aws_env: Path) -> Iterator[Any]:
    """An in-process moto with Canonical's (stand-in) Ubuntu AMIs and SSM parameters."""
    import boto3
    import seed
    from moto import mock_aws

    with mock_aws():
        seed.seed_amis_in_process()
        seed.seed_ssm_in_process()
        yield boto3.client("ec2", region_name=REGION)
