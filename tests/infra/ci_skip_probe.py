"""Not collected by itself (no test_ prefix): tests/infra/test_ci_skips.py runs it in a child
pytest to see what the skip rule of tests/conftest.py does with a skip whose reason is
PROBE_SKIP_REASON."""

from __future__ import annotations

import os

import pytest


def test_skips_for_the_given_reason() -> None:
    pytest.skip(os.environ["PROBE_SKIP_REASON"])


def test_runs() -> None:
    assert True
