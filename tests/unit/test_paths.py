"""Where mlops-env writes and with which permissions (src/mlops_env/paths.py): a $MLOPS_ENV_HOME
the user made is used as it is (never chmod-ed behind their back), everything mlops-env makes
is 0700, and ``home_exposure()`` says when other users can read or write the folder."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from clirun import mlops_env_bin

from mlops_env import paths
from mlops_env.ssh.keys import ensure_keypair


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture()
def umask022() -> object:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_an_existing_home_is_not_chmodded_by_a_cli_run(tmp_path: Path) -> None:
    """The installed CLI, as a user runs it: the folder keeps its mode, what mlops-env makes
    inside is 0700."""
    home = tmp_path / "my-folder"
    home.mkdir()
    home.chmod(0o755)
    env = {**os.environ, "MLOPS_ENV_HOME": str(home), "HOME": str(tmp_path / "h"), "NO_COLOR": "1"}
    # an `up ssh` to a closed port: it makes the tool's key and the record, then cannot connect
    r = subprocess.run([mlops_env_bin(), "--json", "up", "ssh", "x", "--host", "u@127.0.0.1:1", "--ssh-timeout",  # noqa: S603
                        "1", "--accept-anaconda-tos"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 5, r.stdout + r.stderr
    assert mode(home) == 0o755  # before: chmod-ed to 0700 by the first run
    for sub in ("keys", "state", "logs"):
        assert mode(home / sub) == 0o700, sub
    assert list((home / "logs").glob("*.log")) and mode(home / "keys" / "id_ed25519") == 0o600


def test_made_inside_an_existing_home_everything_is_0700(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          umask022: object) -> None:
    home = tmp_path / "shared-folder"
    home.mkdir()
    home.chmod(0o750)
    monkeypatch.setenv(paths.ENV_HOME, str(home))
    p = paths.get_paths()
    ensure_keypair(p)
    assert mode(home) == 0o750
    assert mode(p.keys_dir) == 0o700 and mode(p.keys_dir / "id_ed25519") == 0o600
    (p.data / "reports").mkdir(mode=0o755)  # made by someone else: mlops-env's own sub-folders are its own
    (p.data / "reports").chmod(0o755)
    paths.ensure_private_dir(p.reports_dir)
    assert mode(p.reports_dir) == 0o700


def test_a_home_that_does_not_exist_is_made_0700_with_its_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  umask022: object) -> None:
    home = tmp_path / "a" / "b" / "mlops"
    monkeypatch.setenv(paths.ENV_HOME, str(home))
    p = paths.get_paths()
    paths.ensure_private_dir(p.state_dir)
    for d in (tmp_path / "a", tmp_path / "a" / "b", home, p.state_dir):
        assert mode(d) == 0o700, d
    assert paths.home_exposure() is None
    paths.ensure_private_dir(home)  # made by mlops-env: stays 0700 on later runs
    assert mode(home) == 0o700


@pytest.mark.parametrize("bits,words", [(0o755, "read"), (0o770, "read and write"), (0o703, "write"),
                                        (0o711, "enter"), (0o700, None)])
def test_home_exposure_says_who_can_do_what(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bits: int,
                                            words: str | None) -> None:
    home = tmp_path / "h"
    home.mkdir()
    home.chmod(bits)
    monkeypatch.setenv(paths.ENV_HOME, str(home))
    msg = paths.home_exposure()
    if words is None:
        assert msg is None
    else:
        assert msg is not None and f"can be {words} by other users (mode {bits:04o})" in msg
        assert f"chmod 700 {home}" in msg and str(home) in msg


def test_no_exposure_without_mlops_env_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(paths.ENV_HOME, raising=False)
    assert paths.home_exposure() is None
    monkeypatch.setenv(paths.ENV_HOME, str(tmp_path / "missing"))
    assert paths.home_exposure() is None  # nothing there yet: nothing exposed
