"""CI means ran: with MLOPS_TEST_FAIL_ON_SKIP=1 (.ci/run sets it) a skipped test fails the run,
unless its reason is on the allow-list (CI_ALLOWED_SKIPS in tests/conftest.py). A child pytest
runs tests/infra/ci_skip_probe.py, one test of which skips with the reason given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parent / "ci_skip_probe.py"


def child_pytest(reason: str, fail_on_skip: bool, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(PROBE_SKIP_REASON=reason, MLOPS_TEST_FAIL_ON_SKIP="1" if fail_on_skip else "0")
    return subprocess.run([sys.executable, "-m", "pytest", str(PROBE), "-p", "no:cacheprovider", "-q", *extra],  # noqa: S603
                          env=env, capture_output=True, text=True, timeout=300, check=False,
                          cwd=PROBE.parents[2])


@pytest.mark.parametrize("workers", [(), ("-n", "2", "--dist", "loadfile")], ids=["one-process", "xdist"])
def test_an_unexpected_skip_fails_a_ci_run_and_is_listed(workers: tuple[str, ...]) -> None:
    """.ci/run runs pytest on xdist workers: the controller sees the workers' reports, so the rule
    holds there too."""
    p = child_pytest("no Docker engine: start dockerd (see .ci/run)", True, *workers)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "1 passed, 1 skipped" in p.stdout
    assert ("ci_skip_probe.py::test_skips_for_the_given_reason: no Docker engine: start dockerd (see .ci/run) "
            "[NOT ALLOWED under CI]") in p.stdout
    assert "1 test(s) skipped under CI (MLOPS_TEST_FAIL_ON_SKIP=1): the run fails" in p.stdout


def test_an_allow_listed_skip_passes_and_says_why() -> None:
    p = child_pytest("needs Python >= 3.11 (tomllib) to read pyproject.toml", fail_on_skip=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[allowed: a Python-version limit of the test, not of the product]" in p.stdout


def test_outside_ci_a_skip_is_listed_and_passes() -> None:
    p = child_pytest("no Docker engine", fail_on_skip=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ci_skip_probe.py::test_skips_for_the_given_reason: no Docker engine [skipped]" in p.stdout
