"""The exception hierarchy. Every leaf carries a message and a hint meant for the user.

Only the CLI catches these (see ``mlops_env.cli``); it prints one red line and the hint, and
exits with the leaf's documented exit code (README, "Exit codes"). Library code raises, never
prints and never calls ``sys.exit``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (keep README.md in sync)."""

    OK = 0
    FAILED = 1  # a step or check failed on the box (doctor: problems found)
    USAGE = 2  # bad input: invalid name, option, config file
    NOT_FOUND = 3  # unknown workstation, image or file
    PREREQ = 4  # something needed locally is missing: Docker engine, terms not accepted, AWS creds
    CONNECT = 5  # the box cannot be reached or refuses our key
    HOST_KEY = 6  # host key unknown, unconfirmed or changed
    UNSUPPORTED = 7  # the box cannot be used: OS not supported, sudo asks for a password
    INTEGRITY = 8  # checksum mismatch, corrupt download or data
    BUSY = 10  # another mlops-env run holds the lock
    INTERNAL = 70  # a bug: see the log file
    INTERRUPTED = 130  # Ctrl-C


class MlopsError(Exception):
    """Root of all user-facing errors.

    ``code`` is a stable machine-readable identifier (used in ``--json`` output),
    ``message`` one line saying what is wrong, ``hint`` one line saying what to do.
    """

    code: str = "error"
    exit_code: ExitCode = ExitCode.FAILED

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        code: str | None = None,
        exit_code: ExitCode | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code
        if exit_code is not None:
            self.exit_code = exit_code

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class UsageError(MlopsError):
    code = "usage"
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    code = "config"


class NotFoundError(MlopsError):
    code = "not-found"
    exit_code = ExitCode.NOT_FOUND


class PrereqError(MlopsError):
    code = "prerequisite"
    exit_code = ExitCode.PREREQ


class ConnectError(MlopsError):
    code = "connect"
    exit_code = ExitCode.CONNECT


class HostKeyError(MlopsError):
    code = "host-key"
    exit_code = ExitCode.HOST_KEY


class UnsupportedError(MlopsError):
    code = "unsupported"
    exit_code = ExitCode.UNSUPPORTED


class IntegrityError(MlopsError):
    code = "integrity"
    exit_code = ExitCode.INTEGRITY


class BusyError(MlopsError):
    code = "busy"
    exit_code = ExitCode.BUSY


class StepFailed(MlopsError):
    code = "step-failed"
    exit_code = ExitCode.FAILED


class Interrupted(MlopsError):
    code = "interrupted"
    exit_code = ExitCode.INTERRUPTED
