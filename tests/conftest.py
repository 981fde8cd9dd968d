"""Shared pytest fixtures: real test hosts (Docker engine, systemd VM-like containers, SSH
keys) and the STAND-IN Anaconda installer. See docs/testing.md.

Fixtures (e2e ones skip with a clear reason when the engine/images/wheelhouse are missing;
with ``MLOPS_TEST_REQUIRE_E2E=1``, as ``.ci/run`` sets, they fail instead):

* ``docker_engine`` (session): docker SDK client.
* ``test_images`` (session): ``{"base": ..., "vm": ...}``; ``base_image``/``vm_image``: names.
* ``vm_host`` (function) / ``vm_host_module`` (module): factory
  ``vm_host(user="tester", authorized_key=None, *, sudo="nopasswd"|"password"|"none",
  password=None, os_release=None, name=None, image=VM_IMAGE) -> hosts.VmHost``;
  containers are removed at the end (also on failure). ``vm_host.track(container)`` adds any
  other container to that cleanup.
* ``ssh_keypair`` (function): a fresh ``hosts.KeyPair`` (ed25519, no passphrase).
* ``standin_conda_installer`` (session): ``StandinInstaller(path, sha256)`` (a NamedTuple:
  ``path, sha = standin_conda_installer`` works). ``standin_conda_installer_bad``: same file
  with one byte changed (different sha256). ``base_image_with_standin``: the base image with
  the installer in /opt/mirror, for ``up docker`` (``MirrorImage(image, url, sha256)``).

Tests that use an e2e fixture get the ``e2e`` marker automatically.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

_TESTS = Path(__file__).resolve().parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

import clirun  # noqa: E402
import hosts  # noqa: E402
from standin import make_conda_installer as standin  # noqa: E402

E2E_FIXTURES = frozenset(
    {
        "docker_engine",
        "test_images",
        "base_image",
        "vm_image",
        "vm_host",
        "vm_host_module",
        "base_image_with_standin",
    }
)
REQUIRE_E2E = os.environ.get("MLOPS_TEST_REQUIRE_E2E", "") == "1"
FAIL_ON_SKIP = os.environ.get("MLOPS_TEST_FAIL_ON_SKIP", "") == "1"  # set by .ci/run

# THE ALLOW-LIST: the only skips that do not fail a CI run (.ci/run sets MLOPS_TEST_FAIL_ON_SKIP=1).
# Each entry: a regular expression matched against the skip reason, and why that skip is
# acceptable in CI. Everything else that skips under CI fails the run: CI means it ran.
CI_ALLOWED_SKIPS: tuple[tuple[str, str], ...] = (
    # tests/devcontainer/test_devcontainer_e2e.py reads pyproject.toml with tomllib, which Python
    # 3.10 (the oldest Python mlops-env supports) lacks; the CI machine's 3.11 runs it.
    (r"needs Python >= 3\.11 \(tomllib\)", "a Python-version limit of the test, not of the product"),
    # tests/unit/test_osenv_native.py calls the real Windows ACL API (advapi32): it runs on the
    # Windows runner of .github/workflows/laptops.yml; on Linux the simulation (winsim) covers it.
    (r"^the real Windows ACL API$", "a platform-only test of another laptop system"),
)


def _unavailable(reason: str) -> None:
    """Skip (developer machine) or fail (CI: MLOPS_TEST_REQUIRE_E2E=1)."""
    if REQUIRE_E2E:
        pytest.fail(f"{reason} (MLOPS_TEST_REQUIRE_E2E=1: e2e tests must run here)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"mlops-env test hosts: images {hosts.BASE_IMAGE}, {hosts.VM_IMAGE}; cache {hosts.cache_dir()}; "
        f"MLOPS_TEST_REQUIRE_E2E={'1' if REQUIRE_E2E else '0'}; MLOPS_TEST_FAIL_ON_SKIP={'1' if FAIL_ON_SKIP else '0'}"
    )


# --------------------------------------------------------------------------- skips under CI

_SKIPS: list[tuple[str, str]] = []  # (node id, reason) of every skipped test or module


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    lr = report.longrepr
    text = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
    return text.removeprefix("Skipped: ").strip()


def _allowed(reason: str) -> str | None:
    return next((why for pattern, why in CI_ALLOWED_SKIPS if re.search(pattern, reason)), None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPS.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _SKIPS.append((report.nodeid, _skip_reason(report)))


def _unexpected_skips() -> list[tuple[str, str]]:
    return [(node, reason) for node, reason in _SKIPS if _allowed(reason) is None]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The skip summary: every skip with its reason, and under CI which ones fail the run."""
    if not _SKIPS:
        if FAIL_ON_SKIP:
            terminalreporter.write_line("mlops-env: no test was skipped")
        return
    terminalreporter.section("skipped tests (mlops-env)")
    for node, reason in _SKIPS:
        why = _allowed(reason)
        mark = f"allowed: {why}" if why else ("NOT ALLOWED under CI" if FAIL_ON_SKIP else "skipped")
        terminalreporter.write_line(f"{node}: {reason} [{mark}]")
    bad = _unexpected_skips()
    if FAIL_ON_SKIP and bad:
        terminalreporter.write_line(
            f"mlops-env: {len(bad)} test(s) skipped under CI (MLOPS_TEST_FAIL_ON_SKIP=1): the run fails. Make "
            "them run here, or add the reason to CI_ALLOWED_SKIPS in tests/conftest.py with why.", red=True, bold=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if FAIL_ON_SKIP and _unexpected_skips() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- leak check


@pytest.fixture(autouse=True)
def _leak_check() -> Iterator[None]:
    """After every test: no secret a watched CLI run was given (tests/clirun.py ``watch``:
    every run of cshelp.User and ec2help.User) appears in the whole stdout or stderr of that
    run, nor in any file below the folders it writes (MLOPS_ENV_HOME, HOME)."""
    clirun.take_watched()
    yield
    found: list[str] = []
    for run, secrets, dirs in clirun.take_watched():
        found += clirun.leaks(secrets, run, dirs=dirs)
    if found:
        pytest.fail("a secret leaked: " + "; ".join(sorted(set(found))), pytrace=False)


# --------------------------------------------------------------------------- engine + images


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    client, why = hosts.docker_client_or_none()
    if client is None:
        _unavailable(why or hosts.NO_ENGINE_REASON)
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_images(docker_engine: Any) -> dict[str, str]:
    try:
        return hosts.ensure_images(docker_engine)
    except Exception as e:  # noqa: BLE001
        _unavailable(
            f"test images missing and cannot be built here ({type(e).__name__}: {e}); "
            "build them as root with: python tests/images/build.py"
        )
        raise  # not reached


@pytest.fixture(scope="session")
def base_image(test_images: dict[str, str]) -> str:
    return test_images["base"]


@pytest.fixture(scope="session")
def vm_image(test_images: dict[str, str]) -> str:
    return test_images["vm"]


# --------------------------------------------------------------------------- hosts + keys


@pytest.fixture
def vm_host(docker_engine: Any, vm_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[hosts.VmHostFactory]:
    factory = hosts.VmHostFactory(docker_engine, key_dir=tmp_path_factory.mktemp("vm-keys"))
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(scope="module")
def vm_host_module(
    docker_engine: Any, vm_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[hosts.VmHostFactory]:
    factory = hosts.VmHostFactory(docker_engine, key_dir=tmp_path_factory.mktemp("vm-keys"))
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def ssh_keypair(tmp_path_factory: pytest.TempPathFactory) -> hosts.KeyPair:
    return hosts.make_keypair(tmp_path_factory.mktemp("ssh-key"))


# --------------------------------------------------------------------------- stand-in installer


class StandinInstaller(NamedTuple):
    """The STAND-IN Anaconda installer (tests/standin): a file on the host + its real sha256."""

    path: Path
    sha256: str


class MirrorImage(NamedTuple):
    image: str  # local image = base + /opt/mirror/<installer>
    url: str  # file:///opt/mirror/<installer> (resolved on the box)
    sha256: str


@pytest.fixture(scope="session")
def standin_conda_installer() -> StandinInstaller:
    try:
        path, digest = standin.build_installer()
    except standin.WheelhouseUnavailable as e:
        _unavailable(f"stand-in conda installer unavailable: {e}")
        raise  # not reached
    except PermissionError as e:
        _unavailable(
            f"stand-in conda installer unavailable: cache dir not writable ({e}); set MLOPS_TEST_CACHE"
        )
        raise
    return StandinInstaller(path, digest)


@pytest.fixture(scope="session")
def standin_conda_installer_bad(
    standin_conda_installer: StandinInstaller, tmp_path_factory: pytest.TempPathFactory
) -> StandinInstaller:
    path, digest = standin.make_bad_variant(standin_conda_installer.path, tmp_path_factory.mktemp("bad-installer"))
    return StandinInstaller(path, digest)


@pytest.fixture(scope="session")
def base_image_with_standin(
    docker_engine: Any, base_image: str, standin_conda_installer: StandinInstaller
) -> MirrorImage:
    image = hosts.image_with_files(docker_engine, base_image, [standin_conda_installer.path])
    url = f"file:///opt/mirror/{standin_conda_installer.path.name}"
    return MirrorImage(image, url, standin_conda_installer.sha256)


# --------------------------------------------------------------------------- the wheel


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout built as a wheel (``pip wheel --no-deps``), once per test session."""
    import subprocess

    out = tmp_path_factory.mktemp("wheel")
    root = _TESTS.parent
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(root)],
                       capture_output=True, text=True, check=False)
    if p.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    (whl,) = out.glob("mlops_env-*.whl")
    return whl
