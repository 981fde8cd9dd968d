"""Run commands on a box: over SSH (paramiko), or here (subprocess).

A transport runs an argv (never a string of pasted user input: the argv is quoted with
``shlex.join`` for the remote shell) and returns a ``RunResult``. Shell scripts from
``templates/`` are sent on stdin and run by a fixed wrapper, with their arguments passed as
separate, quoted words; see ``Transport.run_script``.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Reads the whole script from stdin into a temp file first, then runs it with stdin at EOF,
# so a command inside the script (apt-get, an installer) can never eat the rest of the script.
SCRIPT_WRAPPER = 't=$(mktemp) || exit 97; trap \'rm -f "$t"\' EXIT; cat >"$t"; bash "$t" "$@" </dev/null'

LineCallback = Callable[[str], None]


class ChannelError(Exception):
    """A forward (``open_channel``) could not be opened: ``refused`` when the box's sshd said no
    (``AllowTcpForwarding no``), ``closed`` when the connection is not open."""

    def __init__(self, message: str, *, refused: bool = False, closed: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
        self.closed = closed


@dataclass(frozen=True)
class RunResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 15) -> str:
        """The last lines of output, for error messages (Fabric's UnexpectedExit habit)."""
        text = (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).strip()
        return "\n".join(text.splitlines()[-lines:])


class Transport(ABC):
    """A connection to one box. Thread-safe: steps run concurrently over one connection."""

    #: login user on the box
    user: str
    #: human description, e.g. ``mlops@127.0.0.1:2222``
    where: str
    #: number of commands run (benchmarks count SSH round-trips with it)
    round_trips: int = 0

    @abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
    ) -> RunResult:
        """Run ``argv`` on the box as the login user; never raises for a non-zero exit."""

    def fresh(self) -> Transport:
        """A new session (new login): group membership changes apply there. Default: self."""
        return self

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def run_script(
        self,
        script: str,
        args: Sequence[str] = (),
        *,
        sudo: bool = False,
        is_root: bool = False,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
    ) -> RunResult:
        """Run a bash script (its text) with ``args``; with ``sudo`` as root via ``sudo -n``."""
        argv = ["sh", "-c", SCRIPT_WRAPPER, "mlops-env", *args]  # idle-agent.sh: argv[3] == "mlops-env" marks our sessions
        if sudo and not is_root:
            argv = ["sudo", "-n", "-H", "--", *argv]
        return self.run(argv, stdin=script.encode("utf-8"), timeout=timeout, on_line=on_line)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shell_join(argv: Sequence[str]) -> str:
    return shlex.join(list(argv))
