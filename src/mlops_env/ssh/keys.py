"""The tool's own SSH key pair, host key pairs for cloud boxes, and OpenSSH fingerprints.

``ensure_keypair`` makes one ED25519 client key pair per user (``<data>/keys/id_ed25519`` and
``.pub``) the first time it is needed and reuses it afterwards. An existing key is never
replaced: a key that cannot be read is an error with a hint, because boxes already trust it.

Everything here uses the ``cryptography`` library (no ``ssh-keygen`` needed); the files are
in OpenSSH's own formats, so ``ssh``, ``ssh-keygen`` and paramiko all read them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlops_env import osenv
from mlops_env.errors import IntegrityError
from mlops_env.fsutil import atomic_write, file_lock
from mlops_env.paths import Paths, ensure_private_dir

KEY_NAME = "id_ed25519"
_LOCK_TIMEOUT = 30.0
# Key types OpenSSH writes as the first field of a public key line.
_KEY_TYPE = re.compile(
    r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+)(-cert-v01@openssh\.com)?$"
)


@dataclass(frozen=True)
class KeyPair:
    """The tool's client key pair.

    ``public_line`` is ``"ssh-ed25519 AAAA... comment"`` (no newline), ready for
    ``authorized_keys``; ``fingerprint`` is ``"SHA256:..."`` as ``ssh-keygen -lf`` prints it.
    ``created`` is True only on the call that generated the pair (for changed/unchanged reports).
    """

    private_path: Path
    public_path: Path
    public_line: str
    fingerprint: str
    created: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class HostKeyPair:
    """A freshly generated ED25519 host key, for boxes whose host key we choose (EC2 cloud-init).

    ``private_pem`` is the OpenSSH PEM text (``-----BEGIN OPENSSH PRIVATE KEY-----``, ending in a
    newline); ``public_line`` is ``"ssh-ed25519 AAAA... comment"``. Pin ``public_line`` with
    ``knownhosts.pin`` before the box boots, and first contact needs no confirmation.
    """

    private_pem: str
    public_line: str
    fingerprint: str


@dataclass(frozen=True)
class KeyCheck:
    """Read-only state of the client key pair (``check_keypair``): ``ok`` when nothing to do."""

    exists: bool
    keypair: KeyPair | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.exists and not self.problems


def default_comment() -> str:
    """``mlops-env@<hostname>``: tells the user on the box where this key came from."""
    host = re.sub(r"[^A-Za-z0-9._-]", "", socket.gethostname()) or "localhost"
    return f"mlops-env@{host}"


def fingerprint_of(public_key_line: str) -> str:
    """The SHA256 fingerprint of an OpenSSH public key, as ``ssh-keygen -lf`` prints it.

    Accepts a bare ``"TYPE BASE64 [comment]"`` line, and also lines with something in front of
    the key type (``authorized_keys`` options, a ``known_hosts`` host field). Raises
    ``IntegrityError`` when no well-formed key is found.
    """
    _key_type, blob = _parse_public_key(public_key_line)
    return fingerprint_of_blob(blob)


def fingerprint_of_blob(blob: bytes) -> str:
    """SHA256 fingerprint of a raw public key blob (what paramiko's ``asbytes()`` returns)."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def split_public_key(public_key_line: str) -> tuple[str, str]:
    """``(key_type, base64)`` of a public key line, validated (see ``fingerprint_of``)."""
    key_type, blob = _parse_public_key(public_key_line)
    return key_type, base64.b64encode(blob).decode("ascii")


def _parse_public_key(line: str) -> tuple[str, bytes]:
    fields = line.strip().split()
    for i, token in enumerate(fields[:-1]):
        if not _KEY_TYPE.match(token):
            continue
        try:
            blob = base64.b64decode(fields[i + 1], validate=True)
        except (binascii.Error, ValueError):
            continue
        # The blob starts with the key type again, as an SSH string; a mismatch means this is
        # not a key (or a truncated/mangled one).
        if len(blob) >= 4:
            (n,) = struct.unpack(">I", blob[:4])
            if blob[4 : 4 + n] == token.encode("ascii") and len(blob) > 4 + n:
                return token, blob
    shown = line.strip()
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise IntegrityError(
        f"not an OpenSSH public key: {shown!r}",
        hint="expected a line like 'ssh-ed25519 AAAAC3Nz... comment'",
    )


def generate_host_keypair(comment: str = "") -> HostKeyPair:
    """Make a new ED25519 host key (nothing is written to disk)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )
    line = f"{public} {comment}".strip()
    return HostKeyPair(private_pem=pem, public_line=line, fingerprint=fingerprint_of(line))


def key_paths(paths: Paths) -> tuple[Path, Path]:
    """``(private, public)`` paths of the tool's client key."""
    private = paths.keys_dir / KEY_NAME
    return private, private.with_name(KEY_NAME + ".pub")


def ensure_keypair(paths: Paths, comment: str | None = None) -> KeyPair:
    """Return the tool's client key pair, generating it on first use.

    - Creates ``keys/`` as 0700 and the private key as 0600 (atomic writes); loosened
      permissions on an existing directory or key are tightened again.
    - A missing ``.pub`` next to a good private key is re-derived from it (an interrupted
      first run); everything else that looks wrong (unreadable, corrupt, passphrase-protected,
      not ED25519, ``.pub`` not matching, ``.pub`` without private key) raises
      ``IntegrityError``: the key is never silently replaced, since boxes already trust it.
    - Safe to call from concurrent runs (a file lock in ``keys/``).
    """
    private, public = key_paths(paths)
    ensure_private_dir(paths.data)
    ensure_private_dir(paths.keys_dir)
    _tighten(paths.keys_dir, 0o700)  # chmod is not enough on Windows: its ACL
    with _lock(paths.keys_dir / ".lock"):
        if not private.exists() and not private.is_symlink():
            if public.exists():
                raise IntegrityError(
                    f"the public key {public} exists but its private key {private} is missing",
                    hint=(
                        f"restore {private} from a backup, or delete {public} to make a new key "
                        "pair (boxes that trust the old key will need `mlops-env up` again)"
                    ),
                )
            return _generate(private, public, comment or default_comment())
        pair = _load(private, public, fix=True)
        return pair


def check_keypair(paths: Paths) -> KeyCheck:
    """Read-only counterpart of ``ensure_keypair`` (for ``up --dry-run`` and ``doctor``)."""
    private, public = key_paths(paths)
    if not private.exists() and not private.is_symlink():
        orphan = public.exists()
        return KeyCheck(
            exists=False,
            keypair=None,
            problems=(f"{public} exists but the private key {private} is missing",)
            if orphan
            else (),
        )
    try:
        pair = _load(private, public, fix=False)
    except IntegrityError as e:
        return KeyCheck(exists=True, keypair=None, problems=(e.message,))
    problems: list[str] = []
    for p, want in ((paths.keys_dir, 0o700), (private, 0o600)):
        problem = osenv.protection_problem(p, want)  # Windows: the ACL, never st_mode
        if problem:
            problems.append(problem)
    if not public.exists():
        problems.append(f"{public} is missing (it will be re-derived from the private key)")
    return KeyCheck(exists=True, keypair=pair, problems=tuple(problems))


def _generate(private: Path, public: Path, comment: str) -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )
    line = f"{pub} {_clean_comment(comment)}".strip()
    # Private first: a run killed in between leaves a private key whose .pub is re-derived.
    atomic_write(private, pem, mode=0o600)
    atomic_write(public, line + "\n", mode=0o644)
    return KeyPair(private, public, line, fingerprint_of(line), created=True)


def _load(private: Path, public: Path, *, fix: bool) -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    hint_new = (
        f"move {private} and {private.name}.pub aside to make a new key pair "
        "(boxes that trust the old key will need `mlops-env up` again)"
    )
    try:
        data = private.read_bytes()
    except OSError as e:
        raise IntegrityError(
            f"cannot read the mlops-env private key {private}: {e.strerror or e}",
            hint=f"check the file's owner and permissions, or {hint_new}",
        ) from None
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except TypeError:
        raise IntegrityError(
            f"the mlops-env private key {private} is protected by a passphrase",
            hint=f"mlops-env needs an unencrypted key it owns; {hint_new}",
        ) from None
    except (ValueError, binascii.Error) as e:
        raise IntegrityError(
            f"the mlops-env private key {private} is corrupt or not an OpenSSH key ({e})",
            hint=hint_new,
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IntegrityError(
            f"the mlops-env private key {private} is not an ED25519 key",
            hint=hint_new,
        )
    derived = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )

    if fix:
        _tighten(private.parent, 0o700)
        _tighten(private, 0o600)

    if public.exists():
        try:
            line = public.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise IntegrityError(
                f"cannot read the mlops-env public key {public}: {e}",
                hint=f"delete {public}; it is re-derived from the private key",
            ) from None
        try:
            matches = split_public_key(line) == split_public_key(derived)
        except IntegrityError:
            raise IntegrityError(
                f"the mlops-env public key {public} is corrupt",
                hint=f"delete {public}; it is re-derived from the private key",
            ) from None
        if not matches:
            raise IntegrityError(
                f"the public key {public} does not belong to the private key {private}",
                hint=f"delete {public}; it is re-derived from the private key",
            )
    else:
        line = f"{derived} {default_comment()}"
        if fix:
            atomic_write(public, line + "\n", mode=0o644)
    return KeyPair(private, public, line, fingerprint_of(line))


def _tighten(path: Path, want: int) -> None:
    if osenv.is_loose(path, want):
        osenv.protect(path, directory=want == 0o700)


def _clean_comment(comment: str) -> str:
    return re.sub(r"\s+", "_", comment.strip())


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with file_lock(path, timeout=_LOCK_TIMEOUT, what=f"creating the key ({path})"):
        yield
