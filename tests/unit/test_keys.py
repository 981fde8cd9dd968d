"""ssh/keys.py against the real ssh-keygen and paramiko: formats, permissions, refusal to overwrite."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from mlops_env.errors import IntegrityError
from mlops_env.paths import get_paths
from mlops_env.ssh import keys

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen missing")


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "tool dir"))
    return get_paths()


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def keygen(*args: str) -> str:
    proc = subprocess.run(  # noqa: S603 - fixed program, test-controlled arguments
        ["ssh-keygen", *args], check=True, capture_output=True, text=True
    )
    return proc.stdout.strip()


def test_creates_key_pair_once_with_private_permissions(paths):
    kp = keys.ensure_keypair(paths)
    assert kp.created
    assert kp.private_path == paths.keys_dir / "id_ed25519"
    assert kp.public_path == paths.keys_dir / "id_ed25519.pub"
    assert mode(paths.keys_dir) == 0o700
    assert mode(kp.private_path) == 0o600
    assert kp.private_path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert kp.public_path.read_text() == kp.public_line + "\n"
    key_type, _b64, comment = kp.public_line.split(" ")
    assert key_type == "ssh-ed25519"
    assert comment.startswith("mlops-env@")
    before = kp.private_path.read_bytes(), kp.public_path.read_bytes()

    again = keys.ensure_keypair(paths)
    assert not again.created
    assert again == kp
    assert (kp.private_path.read_bytes(), kp.public_path.read_bytes()) == before
    assert not list(paths.keys_dir.glob(".*.tmp"))


def test_fingerprint_matches_ssh_keygen(paths):
    kp = keys.ensure_keypair(paths)
    for f in (kp.public_path, kp.private_path):
        out = keygen("-l", "-f", str(f))  # "256 SHA256:... comment (ED25519)"
        assert out.split()[1] == kp.fingerprint
    assert kp.fingerprint.startswith("SHA256:") and not kp.fingerprint.endswith("=")


def test_openssh_and_paramiko_load_the_private_key(paths):
    import paramiko

    kp = keys.ensure_keypair(paths)
    derived = keygen("-y", "-f", str(kp.private_path))
    assert derived.split()[:2] == kp.public_line.split()[:2]
    pk = paramiko.Ed25519Key.from_private_key_file(str(kp.private_path))
    assert pk.get_base64() == kp.public_line.split()[1]
    assert keys.fingerprint_of_blob(pk.asbytes()) == kp.fingerprint


def test_loose_permissions_are_reported_then_tightened(paths):
    kp = keys.ensure_keypair(paths)
    os.chmod(kp.private_path, 0o644)
    os.chmod(paths.keys_dir, 0o755)
    check = keys.check_keypair(paths)
    assert not check.ok
    assert any("0644" in p for p in check.problems)
    assert any("0755" in p for p in check.problems)
    assert mode(kp.private_path) == 0o644  # check changed nothing

    assert keys.ensure_keypair(paths) == kp
    assert mode(kp.private_path) == 0o600
    assert mode(paths.keys_dir) == 0o700
    assert keys.check_keypair(paths).ok


def test_check_keypair_on_empty_dir_writes_nothing(paths):
    check = keys.check_keypair(paths)
    assert not check.exists and not check.ok and check.problems == ()
    assert not paths.data.exists()


def test_missing_public_key_is_rederived(paths):
    kp = keys.ensure_keypair(paths)
    kp.public_path.unlink()
    again = keys.ensure_keypair(paths)
    assert again.fingerprint == kp.fingerprint
    assert kp.public_path.exists()


@pytest.mark.parametrize(
    "content, words",
    [
        (b"garbage\n", "corrupt"),
        (b"", "corrupt"),
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            "corrupt",
        ),
    ],
)
def test_corrupt_private_key_is_an_error_and_kept(paths, content, words):
    kp = keys.ensure_keypair(paths)
    kp.private_path.write_bytes(content)
    with pytest.raises(IntegrityError) as ei:
        keys.ensure_keypair(paths)
    assert words in ei.value.message
    assert "move" in ei.value.hint
    assert kp.private_path.read_bytes() == content
    assert not keys.check_keypair(paths).ok


def test_passphrase_and_wrong_type_keys_are_refused(paths):
    paths.keys_dir.mkdir(parents=True)
    priv = paths.keys_dir / "id_ed25519"
    keygen("-q", "-t", "ed25519", "-N", "secret", "-f", str(priv))
    with pytest.raises(IntegrityError, match="passphrase"):
        keys.ensure_keypair(paths)
    priv.unlink()
    priv.with_suffix(".pub").unlink()
    keygen("-q", "-t", "ecdsa", "-N", "", "-f", str(priv))
    with pytest.raises(IntegrityError, match="not an ED25519"):
        keys.ensure_keypair(paths)


def test_mismatched_or_orphan_public_key_is_refused(paths):
    kp = keys.ensure_keypair(paths)
    other = keys.generate_host_keypair()
    kp.public_path.write_text(other.public_line + "\n")
    with pytest.raises(IntegrityError, match="does not belong"):
        keys.ensure_keypair(paths)
    kp.private_path.unlink()
    with pytest.raises(IntegrityError, match="private key .* is missing"):
        keys.ensure_keypair(paths)
    assert kp.public_path.read_text() == other.public_line + "\n"


def test_fingerprint_of_accepts_openssh_line_shapes(tmp_path):
    keygen("-q", "-t", "ecdsa", "-N", "", "-C", "me@x", "-f", str(tmp_path / "k"))
    line = (tmp_path / "k.pub").read_text().strip()
    want = keygen("-l", "-f", str(tmp_path / "k.pub")).split()[1]
    key = " ".join(line.split()[:2])
    assert keys.fingerprint_of(line) == want
    assert keys.fingerprint_of(key) == want
    assert keys.fingerprint_of(f'from="10.0.0.1",no-pty {line}') == want  # authorized_keys
    assert keys.fingerprint_of(f"[host]:2222,10.0.0.1 {key}") == want  # known_hosts
    assert keys.split_public_key(line) == tuple(line.split()[:2])


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ssh-ed25519",
        "ssh-ed25519 not*base64",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA==",
        "hello world",
    ],
)
def test_fingerprint_of_rejects_non_keys(bad):
    with pytest.raises(IntegrityError):
        keys.fingerprint_of(bad)


def test_generate_host_keypair_is_a_valid_openssh_host_key(tmp_path):
    hk = keys.generate_host_keypair("host@box")
    assert hk.private_pem.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert hk.private_pem.endswith("\n")
    assert hk.public_line.startswith("ssh-ed25519 ") and hk.public_line.endswith(" host@box")
    f = tmp_path / "ssh_host_ed25519_key"
    f.write_text(hk.private_pem)
    os.chmod(f, 0o600)
    assert keygen("-y", "-f", str(f)).split()[:2] == hk.public_line.split()[:2]
    assert keygen("-l", "-f", str(f)).split()[1] == hk.fingerprint
    assert keys.generate_host_keypair().fingerprint != hk.fingerprint


def _ensure_in_child(home: str, q) -> None:
    os.environ["MLOPS_ENV_HOME"] = home
    q.put(keys.ensure_keypair(get_paths()).fingerprint)


def test_concurrent_first_runs_agree_on_one_key(paths):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_child, args=(str(paths.data), q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    fps = {q.get(timeout=5) for _ in procs}
    assert fps == {keys.ensure_keypair(paths).fingerprint}
