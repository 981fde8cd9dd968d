"""Fixtures of the codespace tests: the STAND-IN GitHub API (fake_github.py) on loopback HTTP, an
isolated user running the installed CLI against it, and the STAND-IN gh (fake_gh.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cshelp import User, install_fake_gh, make_user
from fake_github import FakeGitHub

REPO = "student/mlops-zoomcamp"


@pytest.fixture()
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    fake.add_repo(REPO)
    with fake.serve():
        yield fake


@pytest.fixture()
def user(tmp_path: Path, github: FakeGitHub) -> User:
    """No gh on PATH; the token in GH_TOKEN."""
    return make_user(tmp_path, github.base, github.token)


@pytest.fixture()
def gh_user(tmp_path: Path, github: FakeGitHub) -> User:
    """The fake gh on PATH; the token in GH_TOKEN."""
    return make_user(tmp_path, github.base, github.token, gh_dir=install_fake_gh(tmp_path / "bin"))
