"""The leak checks themselves (tests/clirun.py ``leaks``/``assert_nowhere``, cshelp's
``assert_token_nowhere``, the after-test ``_leak_check`` of tests/conftest.py): they read the
WHOLE stdout and stderr of a run and every byte of every file. Before, they read
``str(run)``, the last 3,000 characters of each stream, and skipped files over 5 MB: a token
printed early in a long run, or written into a big log, went unseen. These tests are that case."""

from __future__ import annotations

from pathlib import Path

import clirun
import pytest
from clirun import Run
from cshelp import User, assert_token_nowhere, make_user
from fake_github import FakeGitHub

TOKEN = "ghp_" + "L" * 36
PADDING = "progress line that is long enough to push things out of a tail\n" * 200  # ~13,000 chars


class Fake:
    token = TOKEN


@pytest.fixture()
def u(tmp_path: Path) -> User:
    user = make_user(tmp_path, "http://127.0.0.1:9", TOKEN)
    user.root.mkdir(parents=True)
    return user


def test_a_token_early_in_a_long_stdout_is_found(u: User) -> None:
    run = Run(0, f"debug: Authorization: Bearer {TOKEN}\n{PADDING}", "")
    assert TOKEN not in str(run)  # the old check (str(run): the tail) could not see it
    with pytest.raises(AssertionError, match=r"stdout of run #0 at character 29"):
        assert_token_nowhere(u, Fake(), run)


def test_a_token_early_in_a_long_stderr_is_found(u: User) -> None:
    run = Run(1, "{}", f"Traceback ... headers={{'Authorization': 'Bearer {TOKEN}'}}\n{PADDING}")
    assert TOKEN not in str(run)
    with pytest.raises(AssertionError, match=r"stderr of run #0"):
        assert_token_nowhere(u, Fake(), run)


def test_a_token_in_a_big_file_is_found(u: User) -> None:
    log = u.root / "logs" / "big.log"
    log.parent.mkdir()
    log.write_bytes(b"x" * 6_000_000 + f"\nAuthorization: Bearer {TOKEN}\n".encode())  # past 5 MB
    with pytest.raises(AssertionError, match=r"big\.log"):
        assert_token_nowhere(u, Fake())
    assert TOKEN in u.everything_written()


def test_the_message_names_where_not_what(u: User) -> None:
    found = clirun.leaks([TOKEN], Run(0, TOKEN, ""), dirs=[u.root])
    assert found == ["secret #0 in the stdout of run #0 at character 0 of 40"]
    assert all(TOKEN not in f for f in found)


def test_every_run_of_a_user_is_watched_for_the_after_test_check(user: User, github: FakeGitHub) -> None:
    clirun.take_watched()
    r = user.mlops("--json", "list")
    [(run, secrets, dirs)] = clirun.take_watched()
    assert run is r and secrets == (github.token,) and dirs == (user.root, user.home)
    # what the after-test check (tests/conftest.py _leak_check) does with it:
    assert clirun.leaks(secrets, Run(0, PADDING + github.token, ""), dirs=dirs) != []
    assert clirun.leaks(secrets, run, dirs=dirs) == []
