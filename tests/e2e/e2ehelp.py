"""Helpers of the end-to-end tests (import them with ``from e2ehelp import ...``, never from
``conftest``: a test run that selects several folders loads several ``conftest`` modules): run
the INSTALLED ``mlops-env`` (the console script next to this Python) as a separate process in
an isolated HOME and MLOPS_ENV_HOME, against real hosts."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clirun import Run, mlops_env_bin  # noqa: F401 - re-exported for the tests here

# The user's own ~/.ssh/config before mlops-env touches it: comments, a Match block, a
# `Host *`, CRLF line endings and no final newline. `down` must leave these bytes identical.
USER_SSH_CONFIG = (
    b"# my own settings\r\n"
    b"Host work-server\r\n"
    b"    HostName 10.0.0.7\r\n"
    b"    User me\r\n"
    b"\r\n"
    b"Match host nothing-matches-this\r\n"
    b"    ForwardAgent no\r\n"
    b"Host *\r\n"
    b"    ServerAliveInterval 60"
)


@dataclass
class Env:
    """One isolated user: HOME and MLOPS_ENV_HOME below tmp."""

    home: Path
    root: Path

    @property
    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e.update(HOME=str(self.home), MLOPS_ENV_HOME=str(self.root), NO_COLOR="1", COLUMNS="200")
        e.pop("SSH_AUTH_SOCK", None)  # no agent: only the keys we name
        return e

    @property
    def ssh_config(self) -> Path:
        return self.home / ".ssh" / "config"

    def mlops(self, *args: str, timeout: float = 900, input: str | None = None) -> Run:
        p = subprocess.run(  # noqa: S603 - our own CLI, test-controlled args
            [mlops_env_bin(), *args], env=self.env, capture_output=True, text=True,
            timeout=timeout, input=input if input is not None else "", check=False)
        return Run(p.returncode, p.stdout, p.stderr)

    def ssh(self, alias: str, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The system OpenSSH client, with ONLY the config mlops-env wrote (-F: OpenSSH reads
        the home directory from passwd, not $HOME) and no agent or password fallback."""
        return subprocess.run(  # noqa: S603
            ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", alias, *command],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False)


def step_status(run: Run) -> dict[str, str]:
    return {s["id"]: s["status"] for s in run.data["steps"]}
