"""All terminal output goes through here.

Human progress and messages go to stderr (Rich, gated by verbosity); ``--json`` prints exactly
one JSON document on stdout, also on failure, shaped::

    {"status": "ok"|"error", "exit_code": N, "data": {...},
     "errors": [{"code": ..., "message": ..., "hint": ...}]}

Library code never prints: it returns data or raises ``MlopsError``; the CLI renders.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_env.errors import ExitCode, UsageError

log = logging.getLogger("mlops_env")


@dataclass
class Outcome:
    """What a command returns: its data, and errors when it failed."""

    data: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = ExitCode.OK

    def envelope(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.exit_code == 0 else "error",
            "exit_code": int(self.exit_code),
            "data": self.data,
            "errors": self.errors,
        }


# Secrets must never reach logs or JSON output. These patterns catch the usual suspects
# (AWS access keys and secrets, GitHub tokens, bearer tokens, private key blocks).
_SECRET_PATTERNS = [
    re.compile(r"(AKIA|ASIA)[A-Z0-9]{16}"),
    re.compile(r"(?i)(aws_secret_access_key|aws_session_token|secret|password|token)(\s*[=:]\s*)(\S+)"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-]+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
]


# Exact values learned at run time (a GitHub token read from `gh auth token`), whatever their shape.
_RUNTIME_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Mask this exact value in every log line and JSON document from now on."""
    if value and len(value) >= 8:
        _RUNTIME_SECRETS.add(value)


def mask_secrets(text: str) -> str:
    for secret in _RUNTIME_SECRETS:
        text = text.replace(secret, "***")
    for pat in _SECRET_PATTERNS:
        if pat.groups >= 3:
            text = pat.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
        else:
            text = pat.sub("***", text)
    return text


# Credentials this process may hold in its environment: masked by value wherever they turn up
# (an exception message, a traceback), whatever their shape.
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GH_TOKEN", "GITHUB_TOKEN")


def register_env_secrets() -> None:
    for name in _SECRET_ENV:
        register_secret(os.environ.get(name, ""))


class _MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_secrets(record.getMessage())
        record.args = None
        return True


class _MaskingFormatter(logging.Formatter):
    """Masks the whole formatted record: the message, and the traceback ``log.exception``
    appends (the filter above sees only the message; an exception's text may carry a secret)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        # cached on the record as exc_text: masked there too, for any other handler
        return mask_secrets(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return mask_secrets(super().formatStack(stack_info))


class UI:
    """The one terminal wrapper: a Rich console on stderr, verbosity-gated."""

    def __init__(self, *, json_mode: bool = False, verbose: int = 0, debug: bool = False) -> None:
        self.json_mode = json_mode
        self.verbose = verbose
        self.debug = debug
        self.log_file: Path | None = None
        self._console: Any = None
        self._out: Any = None

    # -- consoles ---------------------------------------------------------------------------
    @property
    def console(self) -> Any:
        """Rich console on stderr (progress, messages)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    @property
    def out(self) -> Any:
        """Rich console on stdout (human results of list/status and friends)."""
        if self._out is None:
            from rich.console import Console

            self._out = Console(highlight=False)
        return self._out

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stderr.isatty()

    # -- messages ---------------------------------------------------------------------------
    # Messages carry text from users, files and boxes (names, paths, a script's output): it is
    # printed literally, never read as Rich markup (`[/opt/x]` or `[bold]` must not vanish or
    # raise). Styles are applied to our own labels only, through Text objects.
    def info(self, msg: str) -> None:
        log.info(msg)
        if not self.json_mode:
            self.console.print(literal(msg))

    def detail(self, msg: str) -> None:
        log.debug(msg)
        if self.verbose and not self.json_mode:
            self.console.print(literal(msg, "dim"))

    def warn(self, msg: str, hint: str | None = None) -> None:
        log.warning(msg)
        print_hanging(self.console, "[yellow]warning:[/yellow] ", msg)
        if hint:
            print_hanging(self.console, "  [dim]hint:[/dim] ", hint)

    def error(self, msg: str, hint: str | None = None, output: str | None = None) -> None:
        """The red one-liner, then the last lines of output of what failed (a step's script),
        then the hint. Secrets are masked here too: the terminal may be shared or recorded."""
        print_hanging(self.console, "[red]error:[/red] ", mask_secrets(msg))
        if output:
            lines = mask_secrets(output).splitlines()
            where = f" (all of it in {self.log_file})" if self.log_file else ""
            print_hanging(self.console, "  ", f"its last {len(lines)} lines of output{where}:", style="dim")
            for line in lines:
                print_hanging(self.console, "    ", line, style="dim")
        if hint:
            print_hanging(self.console, "  [dim]hint:[/dim] ", mask_secrets(hint))

    def confirm(self, question: str, *, yes: bool, what: str = "this") -> bool:
        """Ask a yes/no question. ``yes`` answers it; with no terminal, refuse clearly."""
        if yes:
            return True
        if not sys.stdin.isatty() or self.json_mode:
            raise UsageError(
                f"{what} needs confirmation and there is no terminal to ask on",
                hint="re-run with --yes to confirm",
                code="confirmation-required",
            )
        from rich.prompt import Confirm

        return bool(Confirm.ask(literal(question), console=self.console, default=False))

    # -- results ----------------------------------------------------------------------------
    def emit_json(self, outcome: Outcome) -> None:
        text = json.dumps(outcome.envelope(), indent=2, default=str)
        sys.stdout.write(mask_secrets(text) + "\n")
        sys.stdout.flush()

    # -- logging ----------------------------------------------------------------------------
    def start_log(self, logs_dir: Path, command: str) -> Path:
        """One DEBUG log file per run; secrets masked."""
        from mlops_env.paths import ensure_private_dir

        ensure_private_dir(logs_dir)  # 0700; never chmods a $MLOPS_ENV_HOME the user made
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = logs_dir / f"{stamp}-{os.getpid()}-{command}.log"
        handler = logging.FileHandler(path, encoding="utf-8")
        os.chmod(path, 0o600)
        handler.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_MaskingFilter())
        register_env_secrets()
        root = logging.getLogger("mlops_env")
        root.setLevel(logging.DEBUG)
        root.addHandler(handler)
        # paramiko logs tracebacks of handshakes we retry on purpose (sshd still booting):
        # into our file at WARNING, never onto the terminal.
        pl = logging.getLogger("paramiko")
        pl.setLevel(logging.WARNING)
        pl.propagate = False
        pl.addHandler(handler)
        self.log_file = path
        _prune_logs(logs_dir, keep=50)
        return path


def literal(text: str, style: str = "") -> Any:
    """``text`` as a Rich ``Text``: printed as it is, brackets and all (never markup)."""
    from rich.text import Text

    return Text(text, style=style)


def print_hanging(console: Any, head: Any, body: Any, *, style: str = "") -> None:
    """Print ``head`` then ``body`` on one line. On a terminal a long body wraps at word
    boundaries (a word longer than the line is folded), its continuation lines indented under
    its first character; piped, the line is printed whole (no wrapping at 80 columns).

    ``head`` as a str is Rich markup (the caller's own labels, e.g. ``"[red]error:[/red] "``);
    ``body`` as a str is literal text (from users, files, boxes), printed as it is."""
    from rich.text import Text

    head_t = Text.from_markup(head) if isinstance(head, str) else head
    body_t = Text(body, style=style) if isinstance(body, str) else body
    room = console.width - head_t.cell_len
    if not console.is_terminal or room < 20:
        console.print(Text.assemble(head_t, body_t), soft_wrap=True)
        return
    indent = " " * head_t.cell_len
    for i, line in enumerate(body_t.wrap(console, room, overflow="fold")):
        line.rstrip()
        console.print(Text.assemble(head_t if i == 0 else indent, line), soft_wrap=True)


def plain_error(msg: str, hint: str | None = None, output: str | None = None) -> str:
    """The same error as ``UI.error``, as plain text: what is written when rendering fails."""
    out = [f"error: {mask_secrets(msg)}"]
    if output:
        out += [f"    {line}" for line in mask_secrets(output).splitlines()]
    if hint:
        out.append(f"  hint: {mask_secrets(hint)}")
    return "\n".join(out) + "\n"


def _prune_logs(logs_dir: Path, keep: int) -> None:
    files = sorted(logs_dir.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for old in files[:-keep]:
        try:
            old.unlink()
        except OSError:
            pass
