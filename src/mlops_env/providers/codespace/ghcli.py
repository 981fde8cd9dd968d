"""The GitHub CLI (``gh``), for the one thing only it does: reach a codespace's SSH server through
GitHub's authenticated tunnel.

``gh codespace ssh --config -c NAME`` prints an OpenSSH ``Host`` block (cli/cli
``pkg/cmd/codespace/ssh.go``)::

    Host cs.NAME.BRANCH
        User vscode
        ProxyCommand /usr/bin/gh cs ssh -c NAME --stdio -- -i /home/me/.ssh/codespaces.auto
        UserKnownHostsFile=/dev/null
        StrictHostKeyChecking no
        LogLevel quiet
        ControlMaster auto
        IdentityFile /home/me/.ssh/codespaces.auto

mlops-env takes the login user and gh's executable from it and writes its own block (see
``providers/codespace/provider.py``): the same ProxyCommand with mlops-env's key after ``-i`` (gh hands
that key's ``.pub`` to the codespace's SSH server, which then accepts it), and pinned host keys
instead of gh's ``StrictHostKeyChecking no``.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from mlops_env.errors import ConnectError, PrereqError

log = logging.getLogger(__name__)

CONFIG_TIMEOUT = 120.0  # gh connects to the codespace to learn its SSH user
INSTALL_HINT = "install the GitHub CLI (https://cli.github.com), log in (`gh auth login -s codespace`)"


@dataclass(frozen=True)
class GhSsh:
    """What ``gh codespace ssh --config`` says about one codespace."""

    host: str  # gh's alias, cs.NAME.BRANCH
    user: str  # the SSH login user in the codespace
    gh_exec: str  # the gh binary named in gh's ProxyCommand
    proxy_command: str  # gh's own ProxyCommand, verbatim


def find_gh(env: Mapping[str, str] | None = None) -> str | None:
    """gh on PATH, else where its installer puts it (Windows: ...\\GitHub CLI\\gh.exe; macOS:
    Homebrew's bin, which apps started from the Dock do not have on PATH)."""
    from mlops_env import osenv

    return osenv.find_program("gh", os.environ if env is None else env)


def parse_ssh_config(text: str) -> list[tuple[str, dict[str, str]]]:
    """``(host pattern, {lower-case option: value})`` per ``Host`` block, first value wins (as
    in OpenSSH). Accepts ``Key value`` and ``Key=value``."""
    blocks: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(" ")
        if "=" in key:
            key, _, rest = line.partition("=")
            value = rest
        elif not sep:
            key, _, value = line.partition("\t")
        key, value = key.strip(), value.strip().lstrip("=").strip()
        if key.lower() == "host":
            blocks.append((value, {}))
        elif blocks:
            blocks[-1][1].setdefault(key.lower(), value)
    return blocks


def select_block(text: str, codespace: str) -> GhSsh:
    """The block for ``codespace`` in gh's output."""
    for host, opts in parse_ssh_config(text):
        proxy = opts.get("proxycommand", "")
        try:
            argv = shlex.split(proxy)
        except ValueError:
            continue
        if codespace not in argv or "--stdio" not in argv:
            continue
        i = argv.index(codespace)
        if i == 0 or argv[i - 1] not in ("-c", "--codespace"):
            continue
        user = opts.get("user", "")
        if not user:
            break
        return GhSsh(host=host, user=user, gh_exec=argv[0], proxy_command=proxy)
    raise PrereqError(
        f"`gh codespace ssh --config -c {codespace}` printed no usable Host block for {codespace}",
        hint="update the GitHub CLI (`gh --version`; mlops-env reads the format of gh 2.x) and run `up` again",
        code="gh-config")


def ssh_details(gh: str, codespace: str, *, env: Mapping[str, str] | None = None,
                timeout: float = CONFIG_TIMEOUT) -> GhSsh:
    """Ask gh how to reach ``codespace`` over SSH (it starts the codespace's SSH server)."""
    from mlops_env.output import mask_secrets

    argv = [gh, "codespace", "ssh", "--config", "-c", codespace]
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, the codespace name comes from GitHub's API
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            env=dict(os.environ if env is None else env), check=False)
    except subprocess.TimeoutExpired:
        raise ConnectError(f"`gh codespace ssh --config -c {codespace}` did not answer within {timeout:.0f} s",
                           hint="check the network; run the same command again", code="gh-timeout") from None
    except OSError as e:
        raise PrereqError(f"cannot run {gh}: {e}", hint=INSTALL_HINT, code="gh-missing") from None
    err = mask_secrets(proc.stderr.strip())
    if err:
        log.debug("gh codespace ssh --config stderr: %s", err[-2000:])
    if proc.returncode != 0:
        last = err.splitlines()[-1] if err else f"exit code {proc.returncode}"
        low = err.lower()
        if "auth login" in low or "401" in low or "authentication" in low:
            hint = "log gh in: `gh auth login -h github.com -s codespace` (or `gh auth refresh -h github.com -s codespace`)"
        elif "ssh server" in low or "sshd" in low:
            hint = ("the codespace's dev container needs an SSH server: add the feature "
                    '"ghcr.io/devcontainers/features/sshd:1": {} to its devcontainer.json and rebuild the codespace')
        else:
            hint = f"run `gh codespace ssh -c {codespace}` to see gh's own error; then `mlops-env up` again"
        raise ConnectError(f"gh cannot open SSH to codespace {codespace}: {last}", hint=hint, code="gh-ssh")
    return select_block(proc.stdout, codespace)


def proxy_command(gh_exec: str, codespace: str, identity: str) -> str:
    """The ProxyCommand for ``codespace`` with mlops-env's key: a command line that OpenSSH and
    mlops-env's own SSH transport read as the same argv (POSIX: shell quoting, ``sh -c``;
    Windows: ``CreateProcess`` quoting, see ``osenv.join_command``)."""
    from mlops_env import osenv

    return osenv.join_command([gh_exec, "codespace", "ssh", "-c", codespace, "--stdio", "--", "-i", identity])
