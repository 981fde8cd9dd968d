"""Fixtures of the end-to-end tests: one isolated user (HOME and MLOPS_ENV_HOME below tmp) per
test or per module. The helpers are in e2ehelp.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2ehelp import USER_SSH_CONFIG, Env


@pytest.fixture()
def user_env(tmp_path: Path) -> Env:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    cfg = home / ".ssh" / "config"
    cfg.write_bytes(USER_SSH_CONFIG)
    cfg.chmod(0o600)
    return Env(home=home, root=tmp_path / "mlops")


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("user")
    home = base / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    cfg = home / ".ssh" / "config"
    cfg.write_bytes(USER_SSH_CONFIG)
    cfg.chmod(0o600)
    yield Env(home=home, root=base / "mlops")
