"""ssh/knownhosts.py: pinning by HostKeyAlias, read back by the real ssh-keygen."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import subprocess

import pytest

from mlops_env.errors import HostKeyError, UsageError
from mlops_env.paths import get_paths
from mlops_env.ssh import keys, knownhosts

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen missing")

KEY_A = keys.generate_host_keypair("a@box")
KEY_B = keys.generate_host_keypair()


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "tool dir"))
    return get_paths()


def keygen_find(alias: str, path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed program, test-controlled arguments
        ["ssh-keygen", "-F", alias, "-f", str(path)], capture_output=True, text=True
    )


def type_b64(line: str) -> tuple[str, str]:
    t, b = line.split()[:2]
    return t, b


def test_pin_is_found_by_ssh_keygen_under_the_alias(paths):
    assert knownhosts.pin(paths, "mlops-env-a", KEY_A.public_line) is True
    assert stat.S_IMODE(paths.known_hosts.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.ssh_dir.stat().st_mode) == 0o700
    found = keygen_find("mlops-env-a", paths.known_hosts)
    assert found.returncode == 0
    entries = [ln for ln in found.stdout.splitlines() if not ln.startswith("#")]
    assert entries == ["mlops-env-a " + " ".join(type_b64(KEY_A.public_line))]
    # The alias is the whole key: no [host]:port form, no other alias matches.
    assert keygen_find("mlops-env-ab", paths.known_hosts).returncode == 1
    assert keygen_find("[mlops-env-a]:22", paths.known_hosts).returncode == 1
    assert knownhosts.lookup(paths, "mlops-env-a") == [" ".join(type_b64(KEY_A.public_line))]
    assert knownhosts.fingerprints(paths, "mlops-env-a") == [KEY_A.fingerprint]


def test_pin_is_idempotent_and_keeps_other_entries(paths):
    knownhosts.pin(paths, "mlops-env-a", KEY_A.public_line)
    knownhosts.pin(paths, "mlops-env-b", KEY_B.public_line)
    before = paths.known_hosts.read_bytes()
    assert knownhosts.check_pin(paths, "mlops-env-a", KEY_A.public_line) is False
    assert knownhosts.pin(paths, "mlops-env-a", KEY_A.public_line) is False
    assert paths.known_hosts.read_bytes() == before

    assert knownhosts.check_unpin(paths, "mlops-env-a") is True
    assert knownhosts.unpin(paths, "mlops-env-a") is True
    assert knownhosts.unpin(paths, "mlops-env-a") is False
    assert knownhosts.check_unpin(paths, "mlops-env-a") is False
    assert knownhosts.lookup(paths, "mlops-env-a") == []
    assert knownhosts.lookup(paths, "mlops-env-b") == [" ".join(type_b64(KEY_B.public_line))]
    assert keygen_find("mlops-env-b", paths.known_hosts).returncode == 0


def test_pin_add_then_unpin_restores_file_bytes(paths):
    knownhosts.pin(paths, "mlops-env-a", KEY_A.public_line)
    before = paths.known_hosts.read_bytes()
    knownhosts.pin(paths, "mlops-env-b", KEY_B.public_line)
    knownhosts.unpin(paths, "mlops-env-b")
    assert paths.known_hosts.read_bytes() == before


def test_pinning_a_different_key_is_refused_unless_replacing(paths):
    knownhosts.pin(paths, "mlops-env-a", KEY_A.public_line)
    before = paths.known_hosts.read_bytes()
    with pytest.raises(HostKeyError) as ei:
        knownhosts.check_pin(paths, "mlops-env-a", KEY_B.public_line)
    assert ei.value.code == "host-key-changed"
    with pytest.raises(HostKeyError):
        knownhosts.pin(paths, "mlops-env-a", KEY_B.public_line)
    assert paths.known_hosts.read_bytes() == before

    assert knownhosts.pin(paths, "mlops-env-a", KEY_B.public_line, replace=True) is True
    assert knownhosts.fingerprints(paths, "mlops-env-a") == [KEY_B.fingerprint]


def test_verify_accepts_the_pinned_key(paths):
    knownhosts.pin(paths, "mlops-env-a", KEY_A.public_line)
    assert (
        knownhosts.verify(paths, "mlops-env-a", *type_b64(KEY_A.public_line)) == KEY_A.fingerprint
    )


def test_verify_refuses_a_changed_key_with_both_fingerprints(paths):
    knownhosts.pin(paths, "mlops-env-gpu1", KEY_A.public_line)
    with pytest.raises(HostKeyError) as ei:
        knownhosts.verify(paths, "mlops-env-gpu1", *type_b64(KEY_B.public_line))
    e = ei.value
    assert e.code == "host-key-changed"
    assert e.exit_code == 6
    assert f"expected {KEY_A.fingerprint}, got {KEY_B.fingerprint}" in e.message
    assert "host key for gpu1" in e.message
    assert "attack" in e.message
    assert "mlops-env down gpu1" in e.hint


def test_verify_refuses_an_unknown_host(paths):
    with pytest.raises(HostKeyError) as ei:
        knownhosts.verify(paths, "mlops-env-a", *type_b64(KEY_A.public_line))
    assert ei.value.code == "host-key-unknown"
    assert KEY_A.fingerprint in ei.value.message


def test_reads_write_nothing(paths):
    assert knownhosts.lookup(paths, "mlops-env-a") == []
    assert knownhosts.check_pin(paths, "mlops-env-a", KEY_A.public_line) is True
    assert knownhosts.check_unpin(paths, "mlops-env-a") is False
    assert not paths.data.exists()


@pytest.mark.parametrize("alias", ["", "a b", "mlops-*", "a,b", "-oProxyCommand=x", "!a", "a?"])
def test_bad_aliases_are_refused(paths, alias):
    with pytest.raises(UsageError):
        knownhosts.pin(paths, alias, KEY_A.public_line)
    with pytest.raises(UsageError):
        knownhosts.lookup(paths, alias)


def _pin_many(home: str, prefix: str, n: int, go) -> None:
    os.environ["MLOPS_ENV_HOME"] = home
    p = get_paths()
    lines = [keys.generate_host_keypair().public_line for _ in range(n)]
    go.wait(30)  # start together so the read-modify-write cycles really overlap
    for i, line in enumerate(lines):
        knownhosts.pin(p, f"{prefix}{i}", line)


def test_concurrent_pins_all_survive(paths):
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Barrier(3)  # the children start their loops together
    n = 60
    procs = [
        ctx.Process(target=_pin_many, args=(str(paths.data), f"mlops-env-p{j}-", n, go))
        for j in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for j in range(3):
        for i in range(n):
            assert len(knownhosts.lookup(paths, f"mlops-env-p{j}-{i}")) == 1
