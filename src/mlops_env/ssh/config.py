"""SSH client configuration: the tool's own ssh config file, and one line in ``~/.ssh/config``.

Two files, two rules (docs/ssh-config.md explains each option):

- ``<data>/ssh/config`` (``Paths.ssh_config``) belongs to mlops-env. It holds one ``Host <alias>``
  block per workstation between marker comments (``# >>> mlops-env ALIAS >>>`` ...
  ``# <<< mlops-env ALIAS <<<``). ``upsert_host`` / ``remove_host`` rewrite only their block.
- ``~/.ssh/config`` belongs to the user. mlops-env owns exactly one line in it,
  ``Include <absolute path of the tool's file>``, placed above every ``Host``/``Match`` line and
  every option (OpenSSH keeps the *first* value it reads for each option, so our Include must
  come first for our values to win). Every other byte is preserved. ``remove_include`` takes
  the line out again and, if mlops-env created the file, deletes the file.

Every mutating function returns what it did (for ``up``'s changed/unchanged report) and has a
read-only ``check_*`` twin that returns what it *would* do (for ``--dry-run`` and ``doctor``).
Mutations are atomic (temp file + rename) and serialised by a file lock in the tool's ssh dir.

``ssh/overrides.py`` (``effective_options``, ``find_overrides``) asks the real ``ssh -G`` what
it would use, to warn when the user's own settings shadow ours.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlops_env import osenv
from mlops_env.errors import ConfigError, PrereqError, UsageError
from mlops_env.fsutil import atomic_write, file_lock
from mlops_env.paths import Paths, ensure_private_dir, user_ssh_config

ALIAS_PREFIX = "mlops-"
HOST_KEY_ALIAS_PREFIX = "mlops-env-"
CREATED_MARKER = "user-config-created.json"
_LOCK_TIMEOUT = 30.0
_SSH_TIMEOUT = 15.0

HEADER = (
    "# Written by mlops-env: one Host block per workstation, between marker lines.\n"
    "# `mlops-env up` rewrites a block and `mlops-env down` removes it: edits inside are lost.\n"
    "# ~/.ssh/config includes this file from its first line; see docs/ssh-config.md.\n"
    "\n"
)

IncludeStatus = Literal["created", "added", "moved", "unchanged"]
RemoveStatus = Literal["deleted", "removed", "unchanged", "in-use"]

# Aliases end up as `Host` patterns, HostKeyAlias values, known_hosts host fields and command
# line arguments (`ssh ALIAS`, `code --remote ssh-remote+ALIAS`): no whitespace, no pattern
# characters (* ? ! ,), no leading dash (it would read as an ssh option).
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")
_FORWARD_HOST_RE = re.compile(r"^[A-Za-z0-9._-]{1,253}$")
_USER_RE = re.compile(r"^[A-Za-z0-9._@][A-Za-z0-9._@-]{0,63}\$?$")
_KEYWORD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_BAD_PATH_CHARS = re.compile(r'["\\\x00-\x1f\x7f]')
_GLOB_CHARS = re.compile(r"[*?\[\]%]")
_LINE_RE = re.compile(
    r"^[ \t]*([A-Za-z][A-Za-z0-9]*)(?:[ \t]*=[ \t]*|[ \t]+|[ \t]*$)(.*?)[ \t\r]*$"
)


def validate_alias(alias: str) -> str:
    """Return ``alias`` if it is usable as an ssh Host alias / HostKeyAlias, else raise."""
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise UsageError(
            f"invalid ssh alias {alias!r}",
            hint="use 1-64 characters from a-z, A-Z, 0-9, '.', '_' and '-', starting with a "
            "letter or digit (no spaces or ssh pattern characters such as * ? ! ,)",
        )
    return alias


def alias_for(name: str) -> str:
    """Default ssh alias of workstation ``name``: ``mlops-<name>``."""
    return validate_alias(ALIAS_PREFIX + name)


def host_key_alias_for(name: str) -> str:
    """Default HostKeyAlias (the known_hosts key) of workstation ``name``: ``mlops-env-<name>``."""
    return validate_alias(HOST_KEY_ALIAS_PREFIX + name)


def _check_port(p: object, what: str) -> None:
    if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= 65535:
        raise UsageError(f"invalid {what} {p!r}", hint="use a number from 1 to 65535")


@dataclass(frozen=True)
class Forward:
    """``LocalForward localhost:<local_port> <remote_host>:<remote_port>``."""

    local_port: int
    remote_host: str = "localhost"
    remote_port: int = 0

    def __post_init__(self) -> None:
        if not self.remote_port:
            object.__setattr__(self, "remote_port", self.local_port)
        for p in (self.local_port, self.remote_port):
            _check_port(p, "forwarded port")
        if not _FORWARD_HOST_RE.match(self.remote_host):
            raise UsageError(f"invalid forward target host {self.remote_host!r}")


JUPYTER = Forward(8888, "localhost", 8888)
MLFLOW = Forward(5000, "localhost", 5000)
# The course's deployment week (and `smoke-test --serve`) publishes the model on the box's
# IPv4 loopback only: forward to 127.0.0.1, not `localhost` (which may resolve to ::1).
PREDICT = Forward(9696, "127.0.0.1", 9696)
DEFAULT_FORWARDS: tuple[Forward, ...] = (JUPYTER, MLFLOW, PREDICT)


@dataclass(frozen=True)
class HostEntry:
    """One workstation's ``Host`` block in the tool's ssh config.

    ``forwards`` accepts ``Forward`` objects or ``(local_port, remote_host, remote_port)``
    tuples; ``()`` writes no LocalForward at all (``--no-forward``). ``identity_file`` and
    ``known_hosts_file`` must be absolute (OpenSSH resolves ``~`` from the password database,
    not ``$HOME``). ``extra_options`` are appended verbatim as ``Keyword value`` lines (e.g. a
    ``ProxyJump`` for a later provider); values are the caller's to quote.
    """

    alias: str
    hostname: str
    port: int
    user: str
    identity_file: Path
    known_hosts_file: Path
    host_key_alias: str
    forwards: tuple[Forward, ...] = DEFAULT_FORWARDS
    server_alive_interval: int = 30
    server_alive_count_max: int = 4
    extra_options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        validate_alias(self.alias)
        validate_alias(self.host_key_alias)
        if not _HOSTNAME_RE.match(self.hostname):
            raise UsageError(f"invalid host name {self.hostname!r} for {self.alias}")
        _check_port(self.port, "ssh port")
        if not _USER_RE.match(self.user):
            raise UsageError(f"invalid ssh user name {self.user!r} for {self.alias}")
        for attr in ("identity_file", "known_hosts_file"):
            p = Path(getattr(self, attr))
            _check_path(p, attr.replace("_", " "))
            object.__setattr__(self, attr, p)
        forwards = tuple(f if isinstance(f, Forward) else Forward(*f) for f in self.forwards)
        object.__setattr__(self, "forwards", forwards)
        for opt, n in (
            ("ServerAliveInterval", self.server_alive_interval),
            ("ServerAliveCountMax", self.server_alive_count_max),
        ):
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise UsageError(f"invalid {opt} {n!r}")
        extra = tuple((str(k), str(v)) for k, v in self.extra_options)
        for k, v in extra:
            if not _KEYWORD_RE.match(k) or not v or re.search(r"[\x00-\x1f\x7f]", v):
                raise UsageError(f"invalid extra ssh option {k!r} {v!r}")
        object.__setattr__(self, "extra_options", extra)

    def options(self) -> list[tuple[str, str]]:
        """The block's ``(Keyword, value)`` lines, in the order they are written."""
        opts = [
            ("HostName", self.hostname),
            ("Port", str(self.port)),
            ("User", self.user),
            ("IdentityFile", _path_value(self.identity_file)),
            # Only our key: an agent full of keys would hit the box's MaxAuthTries first.
            ("IdentitiesOnly", "yes"),
            ("UserKnownHostsFile", _path_value(self.known_hosts_file)),
            ("HostKeyAlias", self.host_key_alias),
            ("StrictHostKeyChecking", "yes"),
            # The pin follows the alias, not the address: EC2 IPs change on every start.
            ("CheckHostIP", "no"),
            # Never let ssh append keys to our file behind our lock.
            ("UpdateHostKeys", "no"),
        ]
        for f in self.forwards:
            # An explicit `localhost` bind address keeps the port on loopback even when the
            # user's config says GatewayPorts yes.
            opts.append(
                ("LocalForward", f"localhost:{f.local_port} {f.remote_host}:{f.remote_port}")
            )
        if self.forwards:
            # A busy local 8888 (a second window, a local Jupyter) must not fail the session:
            # VS Code Remote-SSH would report "could not establish connection".
            opts.append(("ExitOnForwardFailure", "no"))
        opts.append(("ServerAliveInterval", str(self.server_alive_interval)))
        opts.append(("ServerAliveCountMax", str(self.server_alive_count_max)))
        opts.extend(self.extra_options)
        return opts

    def render(self) -> str:
        """The block with its marker lines, ending in a newline."""
        body = "".join(f"    {k} {v}\n" for k, v in self.options())
        return f"{_begin(self.alias)}\nHost {self.alias}\n{body}{_end(self.alias)}\n"


def _check_path(p: Path, what: str) -> None:
    if not p.is_absolute():
        raise UsageError(
            f"the {what} {str(p)!r} is not an absolute path",
            hint="OpenSSH resolves relative and ~ paths differently from Python; pass an "
            "absolute path",
        )
    if _BAD_PATH_CHARS.search(p.as_posix()):
        raise UsageError(
            f"the {what} {str(p)!r} contains a quote, backslash or control character, which "
            "cannot be written safely into an ssh config",
            hint="use a path without those characters",
        )


def _path_value(p: Path) -> str:
    # IdentityFile and UserKnownHostsFile expand %-tokens: a literal % is written %%.
    # as_posix: forward slashes, which OpenSSH for Windows accepts too.
    v = p.as_posix().replace("%", "%%")
    if re.search(r"[\s#=']", v):
        v = f'"{v}"'
    return v


def _begin(alias: str) -> str:
    return f"# >>> mlops-env {alias} >>>"


def _end(alias: str) -> str:
    return f"# <<< mlops-env {alias} <<<"


# -- the tool's own file --------------------------------------------------------------------

_MARK_RE = re.compile(r"^# (>>>|<<<) mlops-env (\S+) (>>>|<<<)$")


def _read_tool(paths: Paths) -> str:
    try:
        return paths.ssh_config.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read mlops-env's ssh config {paths.ssh_config}: {e}",
            hint=f"delete {paths.ssh_config}; `mlops-env up` writes it again for each workstation",
        ) from None


def _blocks(paths: Paths, text: str) -> dict[str, tuple[int, int]]:
    """alias -> (first line index, index after the end marker) in ``text.split('\\n')``."""
    lines = text.split("\n")
    out: dict[str, tuple[int, int]] = {}
    open_alias: str | None = None
    start = 0
    for i, line in enumerate(lines):
        m = _MARK_RE.match(line.rstrip("\r"))
        if not m:
            continue
        kind, alias = m.group(1), m.group(2)
        if kind == ">>>" and open_alias is None and alias not in out:
            open_alias, start = alias, i
        elif kind == "<<<" and alias == open_alias:
            out[alias] = (start, i + 1)
            open_alias = None
        else:
            raise ConfigError(
                f"mlops-env's ssh config {paths.ssh_config} has a broken or duplicated marker "
                f"on line {i + 1}: {line!r}",
                hint=f"delete {paths.ssh_config}; `mlops-env up` writes it again",
            )
    if open_alias is not None:
        raise ConfigError(
            f"mlops-env's ssh config {paths.ssh_config}: the block for {open_alias} has no end "
            "marker",
            hint=f"delete {paths.ssh_config}; `mlops-env up` writes it again",
        )
    return out


def _upserted(paths: Paths, text: str, entry: HostEntry) -> str:
    block = entry.render()
    blocks = _blocks(paths, text)
    if entry.alias in blocks:
        lines = text.split("\n")
        s, e = blocks[entry.alias]
        return "\n".join(lines[:s] + block.rstrip("\n").split("\n") + lines[e:])
    base = text or HEADER
    if not base.endswith("\n"):
        base += "\n"
    return base + block + "\n"


def _removed(paths: Paths, text: str, alias: str) -> str:
    blocks = _blocks(paths, text)
    if alias not in blocks:
        return text
    lines = text.split("\n")
    s, e = blocks[alias]
    # The blank separator line written after each block goes with it.
    if e < len(lines) - 1 and lines[e] == "":
        e += 1
    return "\n".join(lines[:s] + lines[e:])


def list_hosts(paths: Paths) -> list[str]:
    """Aliases with a block in the tool's ssh config, in file order."""
    text = _read_tool(paths)
    return list(_blocks(paths, text))


def check_upsert_host(paths: Paths, entry: HostEntry) -> bool:
    """Read-only: would ``upsert_host`` change the tool's ssh config?"""
    text = _read_tool(paths)
    return _upserted(paths, text, entry) != text or _loose(paths.ssh_config, 0o600)


def upsert_host(paths: Paths, entry: HostEntry) -> bool:
    """Write (or rewrite) ``entry``'s block; True when the file changed.

    Creates the tool's ssh dir (0700) and file (0600). Other blocks are untouched.
    """
    with _locked(paths):
        text = _read_tool(paths)
        new = _upserted(paths, text, entry)
        if new == text and not _loose(paths.ssh_config, 0o600):
            return False
        atomic_write(paths.ssh_config, new, mode=0o600)
        return True


def check_remove_host(paths: Paths, alias: str) -> bool:
    """Read-only: would ``remove_host`` change the tool's ssh config?"""
    validate_alias(alias)
    return alias in _blocks(paths, _read_tool(paths))


def remove_host(paths: Paths, alias: str) -> bool:
    """Remove ``alias``'s block; True when it was there."""
    validate_alias(alias)
    with _locked(paths):
        text = _read_tool(paths)
        new = _removed(paths, text, alias)
        if new == text:
            return False
        atomic_write(paths.ssh_config, new, mode=0o600)
        return True


def _loose(path: Path, want: int) -> bool:
    # Not st_mode: on Windows it says 0666 whatever the file's ACL is (osenv reads the ACL).
    return osenv.is_loose(path, want)


# -- the user's ~/.ssh/config ---------------------------------------------------------------


def include_line(paths: Paths) -> str:
    """The one line mlops-env owns in ``~/.ssh/config`` (without line ending)."""
    target = paths.ssh_config.as_posix()
    if (
        not paths.ssh_config.is_absolute()
        or _BAD_PATH_CHARS.search(target)
        or _GLOB_CHARS.search(target)
    ):
        # Include globs its argument and ssh's quoting differs across versions: refuse
        # rather than write a line that includes something else.
        raise ConfigError(
            f"mlops-env's directory {paths.ssh_config.parent} contains characters that cannot "
            "be used in an ssh `Include` line (quotes, backslashes, * ? [ ] %, control "
            "characters) or is not absolute",
            hint="set MLOPS_ENV_HOME to a plain absolute directory",
        )
    return f'Include "{target}"' if re.search(r"[\s#=']", target) else f"Include {target}"


def _ssh_args(rest: str) -> list[str]:
    """Split an ssh config argument string like OpenSSH does (quotes; # starts a comment)."""
    args: list[str] = []
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t":
            i += 1
        if i >= n or rest[i] == "#":
            break
        cur: list[str] = []
        quote = ""
        while i < n and (quote or rest[i] not in " \t"):
            c = rest[i]
            if quote and c == quote:
                quote = ""
            elif not quote and c in "\"'":
                quote = c
            else:
                cur.append(c)
            i += 1
        args.append("".join(cur))
    return args


@dataclass(frozen=True)
class _Line:
    index: int
    text: str  # with its line ending
    keyword: str | None  # lowercased; None for blank and comment lines
    args: tuple[str, ...] = ()


def _parse(text: str) -> list[_Line]:
    parts = text.split("\n")
    raw = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    out = []
    for i, line in enumerate(raw):
        body = line.rstrip("\n").rstrip("\r")
        s = body.lstrip(" \t")
        if not s or s.startswith("#"):
            out.append(_Line(i, line, None))
            continue
        m = _LINE_RE.match(body)
        if not m:
            out.append(_Line(i, line, "?"))
            continue
        out.append(_Line(i, line, m.group(1).lower(), tuple(_ssh_args(m.group(2)))))
    return out


def _is_ours(line: _Line, paths: Paths) -> bool:
    return line.keyword == "include" and line.args == (paths.ssh_config.as_posix(),)


def _read_user(path: Path, paths: Paths) -> str | None:
    """The user's config as text (valid UTF-8, so it re-encodes byte for byte), or None."""
    fix_hint = f"fix it, or add this line at its top yourself: {include_line(paths)}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if path.is_symlink():
            raise PrereqError(
                f"{path} is a symbolic link to a file that does not exist ({os.readlink(path)})",
                hint="create the link's target or remove the link, then run this again",
                code="ssh-config",
            ) from None
        return None
    except OSError as e:
        raise PrereqError(
            f"cannot read your ssh config {path}: {e.strerror or e}",
            hint=f"make it a readable file (e.g. `chmod 600 {path}`), then run this again",
            code="ssh-config",
        ) from None
    if data.startswith(b"\xef\xbb\xbf"):
        raise PrereqError(
            f"your ssh config {path} starts with a UTF-8 byte order mark, which OpenSSH "
            "rejects ('Bad configuration option: \\357\\273\\277...')",
            hint=f"save it as UTF-8 without BOM; {fix_hint}",
            code="ssh-config",
        )
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError(
                "utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1, "NUL byte (UTF-16?)"
            )
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PrereqError(
            f"your ssh config {path} is not UTF-8 text (byte {e.start}: {e.reason}); mlops-env "
            "will not edit a file it cannot read exactly",
            hint=f"save it as UTF-8; {fix_hint}",
            code="ssh-config",
        ) from None


def _eol(text: str) -> str:
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf >= text.count("\n") - crlf else "\n"


def _plan_include(paths: Paths, path: Path) -> tuple[IncludeStatus, str | None]:
    """What ``ensure_include`` would do: (status, new text or None when unchanged)."""
    line = include_line(paths)
    text = _read_user(path, paths)
    if text is None:
        return "created", line + "\n"
    parsed = _parse(text)
    ours = [ln for ln in parsed if _is_ours(ln, paths)]
    if ours:
        first = ours[0].index
        # Only other Include lines may precede ours (OrbStack, Colima... also want the top);
        # a Host/Match line or an option above ours would shadow our values.
        above = [ln for ln in parsed[:first] if ln.keyword not in (None, "include")]
        if not above:
            return "unchanged", None
        rest = "".join(ln.text for ln in parsed if not _is_ours(ln, paths))
        return "moved", line + _eol(text) + rest
    return "added", line + _eol(text) + text


def check_include(paths: Paths, user_config: Path | None = None) -> IncludeStatus:
    """Read-only: what ``ensure_include`` would do ("unchanged" = nothing to do)."""
    status, _ = _plan_include(paths, user_config or user_ssh_config())
    return status


def ensure_include(paths: Paths, user_config: Path | None = None) -> IncludeStatus:
    """Make ``~/.ssh/config`` start with mlops-env's Include line.

    Returns ``"created"`` (the file did not exist: made 0600, ``~/.ssh`` 0700 if missing, and
    remembered so ``remove_include`` deletes it again), ``"added"`` (line inserted at the top,
    every other byte kept, CRLF files get a CRLF line), ``"moved"`` (our line was below a
    Host/Match line or an option: taken out there, put on top) or ``"unchanged"`` (nothing
    written). A symlinked config is edited at its target. An unreadable, non-UTF-8 or BOM file
    raises ``PrereqError`` and nothing is written.
    """
    path = user_config or user_ssh_config()
    with _locked(paths):
        status, new = _plan_include(paths, path)
        if new is None:
            return status
        if status == "created":
            dir_created = not path.parent.exists()
            if dir_created:
                ensure_private_dir(path.parent)
            _write_marker(paths, path, dir_created)
            atomic_write(path, new, mode=0o600)
        else:
            _write_user(path, new)
        return status


def _plan_remove(paths: Paths, path: Path, force: bool) -> tuple[RemoveStatus, str | None]:
    text = _read_user(path, paths)
    if text is None:
        return "unchanged", None
    parsed = _parse(text)
    if not any(_is_ours(ln, paths) for ln in parsed):
        return "unchanged", None
    if not force and list_hosts(paths):
        return "in-use", None
    rest = "".join(ln.text for ln in parsed if not _is_ours(ln, paths))
    marker = _read_marker(paths)
    if rest == "" and marker and marker.get("path") == str(path):
        return "deleted", None
    return "removed", rest


def check_remove_include(
    paths: Paths, user_config: Path | None = None, *, force: bool = False
) -> RemoveStatus:
    """Read-only: what ``remove_include`` would do."""
    status, _ = _plan_remove(paths, user_config or user_ssh_config(), force)
    return status


def remove_include(
    paths: Paths, user_config: Path | None = None, *, force: bool = False
) -> RemoveStatus:
    """Take mlops-env's Include line out of ``~/.ssh/config`` once no workstation needs it.

    Returns ``"in-use"`` (the tool's file still has Host blocks and ``force`` is False:
    nothing written), ``"unchanged"`` (no line of ours), ``"removed"`` (the line is gone;
    the file is byte-identical to what it was before ``ensure_include`` added it) or
    ``"deleted"`` (mlops-env had created the file and nothing else is in it: the file, and
    ``~/.ssh`` if mlops-env created that and it is empty, are deleted). Checking for blocks
    and removing happen under one lock, so a concurrent ``up`` cannot lose its Include.
    """
    path = user_config or user_ssh_config()
    with _locked(paths):
        status, new = _plan_remove(paths, path, force)
        if status == "deleted":
            marker = _read_marker(paths) or {}
            path.unlink()
            if marker.get("dir_created"):
                try:
                    path.parent.rmdir()
                except OSError:
                    pass  # not empty: ssh put known_hosts there, or the user did
            _marker_path(paths).unlink(missing_ok=True)
        elif status == "removed" and new is not None:
            _write_user(path, new)
            _marker_path(paths).unlink(missing_ok=True)
        return status


def _write_user(path: Path, text: str) -> None:
    # Write through a symlink (dotfile managers link ~/.ssh/config into a repo): replacing
    # the link with a file would silently detach the user's config from their repo.
    target = path.resolve() if path.is_symlink() else path
    # Windows: st_mode means nothing there; the rewritten file gets a private ACL (what
    # Windows OpenSSH wants of ~/.ssh/config) instead of the folder's inherited one.
    mode = 0o600 if osenv.is_windows() else stat.S_IMODE(target.stat().st_mode)
    atomic_write(target, text.encode("utf-8"), mode=mode)


def _marker_path(paths: Paths) -> Path:
    return paths.ssh_dir / CREATED_MARKER


def _write_marker(paths: Paths, path: Path, dir_created: bool) -> None:
    data = {"version": 1, "path": str(path), "dir_created": dir_created}
    atomic_write(_marker_path(paths), json.dumps(data) + "\n", mode=0o600)


def _read_marker(paths: Paths) -> dict[str, object] | None:
    try:
        data = json.loads(_marker_path(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    """One lock for the tool's ssh config and the Include line (see ``remove_include``)."""
    ensure_private_dir(paths.data)
    ensure_private_dir(paths.ssh_dir)
    with file_lock(paths.ssh_dir / ".config.lock", timeout=_LOCK_TIMEOUT, what="editing the ssh config"):
        yield
