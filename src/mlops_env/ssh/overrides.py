"""What ``ssh`` really uses for a workstation's alias (``ssh -G``), compared with the Host block
mlops-env wrote (``ssh/config.py``): an earlier ``Host *`` or ``Match`` in the user's config wins
over ours in OpenSSH, so ``up`` and ``doctor`` warn about each option it overrides and name the
line that does.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlops_env import osenv
from mlops_env.errors import ConfigError, PrereqError
from mlops_env.paths import Paths, user_ssh_config
from mlops_env.ssh.config import (  # the file's own reading, shared within the SSH layer
    _SSH_TIMEOUT,
    HostEntry,
    _is_ours,
    _parse,
    _path_value,
    _read_user,
    include_line,
    validate_alias,
)

# -- what ssh really uses -------------------------------------------------------------------


@dataclass(frozen=True)
class OverrideReport:
    """Result of ``find_overrides``.

    ``warnings`` are human sentences, one per option where ssh would not use our value.
    ``skipped`` is a reason when the check could not run (no ``ssh`` client); then
    ``warnings`` is empty and nothing is known.
    """

    warnings: tuple[str, ...] = ()
    skipped: str | None = None
    applied: tuple[str, ...] = field(default=(), compare=False)  # ssh's "Applying options" lines

    @property
    def ok(self) -> bool:
        return not self.warnings and self.skipped is None


def _ssh_binary() -> str:
    ssh = osenv.find_program("ssh")
    if ssh is None:
        raise PrereqError(
            "the OpenSSH client `ssh` is not installed (VS Code Remote-SSH needs it too)",
            hint="install it (apt install openssh-client, or your OS's OpenSSH package)",
            code="ssh-missing",
        )
    return ssh


def _run_ssh_g(
    alias: str, config_path: Path | None, verbose: bool
) -> tuple[dict[str, list[str]], list[str]]:
    validate_alias(alias)
    ssh = _ssh_binary()
    cfg = Path(config_path or user_ssh_config()).absolute()
    # Always -F: OpenSSH finds ~/.ssh/config through the password database, not $HOME.
    argv = [ssh, "-G", "-F", str(cfg)] + (["-v"] if verbose else []) + ["--", alias]
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, validated alias, no shell
            argv,
            capture_output=True,
            text=True,
            timeout=_SSH_TIMEOUT,
            stdin=subprocess.DEVNULL,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"`ssh -G {alias}` did not answer within {_SSH_TIMEOUT:.0f} s",
            hint=f"check {cfg} for `Match exec` commands that hang",
            code="ssh-config",
        ) from None
    if proc.returncode != 0:
        err = "; ".join(
            ln for ln in proc.stderr.splitlines() if not ln.startswith(("debug", "OpenSSH_"))
        )
        raise ConfigError(
            f"ssh cannot use your ssh config {cfg}: {err or 'exit code ' + str(proc.returncode)}",
            hint="fix the line ssh names (VS Code Remote-SSH fails the same way until then)",
            code="ssh-config",
        )
    opts: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key:
            opts.setdefault(key.lower(), []).append(value)
    applied = [
        ln.split(": ", 1)[1]
        for ln in proc.stderr.splitlines()
        if ln.startswith("debug1: ") and ": Applying options for " in ln
    ]
    return opts, applied


def effective_options(alias: str, config_path: Path | None = None) -> dict[str, list[str]]:
    """What ``ssh`` would use for ``alias``: ``ssh -G -F <config> <alias>``, parsed.

    Keys are ssh's lowercase option names, values every value ssh printed (``identityfile``
    and ``localforward`` repeat). ``config_path`` defaults to ``~/.ssh/config`` from ``$HOME``.
    Raises ``PrereqError`` (code ``ssh-missing``) without ``ssh``, ``ConfigError`` when ssh
    rejects the config.
    """
    opts, _ = _run_ssh_g(alias, config_path, verbose=False)
    return opts


_TRUE = {"yes", "true"}


def _compare(entry: HostEntry) -> list[tuple[str, str, str, Callable[[list[str]], bool]]]:
    """(ssh -G key, Keyword, our value, matcher) for each option we insist on."""
    return [
        ("hostname", "HostName", entry.hostname, lambda v: v[0].lower() == entry.hostname.lower()),
        ("port", "Port", str(entry.port), lambda v: v[0] == str(entry.port)),
        ("user", "User", entry.user, lambda v: v[0] == entry.user),
        (
            "identityfile",
            "IdentityFile",
            entry.identity_file.as_posix(),
            lambda v: v[0] == _unquote(_path_value(entry.identity_file)),
        ),
        ("identitiesonly", "IdentitiesOnly", "yes", lambda v: v[0] in _TRUE),
        (
            "userknownhostsfile",
            "UserKnownHostsFile",
            entry.known_hosts_file.as_posix(),
            lambda v: v[0] == _unquote(_path_value(entry.known_hosts_file)),
        ),
        ("stricthostkeychecking", "StrictHostKeyChecking", "yes", lambda v: v[0] in _TRUE),
        (
            "hostkeyalias",
            "HostKeyAlias",
            entry.host_key_alias,
            lambda v: v[0] == entry.host_key_alias,
        ),
    ]


def _unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v


def find_overrides(
    entry: HostEntry, config_path: Path | None = None, paths: Paths | None = None
) -> OverrideReport:
    """Compare what ``ssh -G`` resolves for ``entry.alias`` with what mlops-env wrote.

    Returns warnings such as "your `Host *` (~/.ssh/config line 1) sets User=root, which
    overrides mlops-env's User=dev for mlops-x". Also warns when ssh does not read our block
    at all (Include missing or inside a non-matching block) and when a RemoteCommand applies
    (VS Code Remote-SSH cannot connect through one). Without ``ssh`` the report is
    ``skipped``; an ssh config that ssh rejects is one warning.
    """
    if paths is None:
        from mlops_env.paths import get_paths

        paths = get_paths()
    cfg = Path(config_path or user_ssh_config()).absolute()
    try:
        opts, applied = _run_ssh_g(entry.alias, cfg, verbose=True)
    except PrereqError as e:
        return OverrideReport(skipped=f"cannot compare with ssh's view: {e.message}")
    except ConfigError as e:
        return OverrideReport(warnings=(e.message,))

    ours_prefix = f"{paths.ssh_config.as_posix()} line "
    our_index = next(
        (
            i
            for i, a in enumerate(applied)
            if a.startswith(ours_prefix) and a.endswith(f"Applying options for {entry.alias}")
        ),
        None,
    )
    if our_index is None:
        return OverrideReport(
            warnings=(
                f"ssh does not read mlops-env's settings for {entry.alias}: "
                f"`{include_line(paths)}` is missing from {cfg} or sits inside a Host/Match "
                "block that does not match (run `mlops-env up` again to put it on top)",
            ),
            applied=tuple(applied),
        )
    culprits = _culprits(applied[:our_index], cfg, paths)
    source = "your ssh config"
    if culprits:
        source += " (" + "; ".join(culprits[:3]) + ")"
    else:
        source += " (an option read before mlops-env's Include line)"
    warnings = []
    for key, keyword, ours, ok in _compare(entry):
        values = opts.get(key)
        if values and not ok(values):
            warnings.append(
                f"{source} sets {keyword}={values[0]}, which overrides mlops-env's "
                f"{keyword}={ours} for {entry.alias}"
            )
    remote = opts.get("remotecommand")
    if remote and remote[0] and remote[0] != "none":
        warnings.append(
            f"your ssh config sets RemoteCommand={remote[0]} for {entry.alias}; VS Code "
            "Remote-SSH runs its own remote command and fails with this one unless "
            "remote.SSH.enableRemoteCommand is on (better: limit it to your other hosts)"
        )
    return OverrideReport(warnings=tuple(warnings), applied=tuple(applied))


def _culprits(applied_before: Sequence[str], cfg: Path, paths: Paths) -> list[str]:
    """Human descriptions of the user's settings ssh read before our block."""
    out: list[str] = []
    for a in applied_before:
        where, _, pattern = a.partition(": Applying options for ")
        out.append(f"`Host {pattern}` at {where}")
    # Match blocks and top-level options do not show in ssh's -v output: find them in the file.
    try:
        text = _read_user(cfg, paths) or ""
    except PrereqError:
        return out
    block: str | None = None
    for ln in _parse(text):
        if _is_ours(ln, paths):
            break
        if ln.keyword in ("host", "match"):
            block = ln.keyword
        if ln.keyword == "match" or (block is None and ln.keyword not in (None, "include")):
            out.append(f"`{ln.text.strip()}` at {cfg} line {ln.index + 1}")
    return out
