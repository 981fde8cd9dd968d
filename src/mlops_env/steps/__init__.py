"""Bootstrap steps: ``check`` (fast, read-only), ``apply`` (only when the check fails, safe to
re-run), ``verify`` (defaults to check).

``up`` applies the plan, ``up --dry-run`` reports what would change, ``doctor`` checks and
``doctor --fix`` applies only what fails: one definition of each check, used by all of them.

Remote steps are shell scripts in ``templates/`` with a ``check`` and an ``apply`` mode. Their
checks are batched by the engine into one round-trip; scripts talk back with lines::

    mlops: <progress or state>          (stdout; the last one is the summary)
    mlops-error: <what went wrong>      (stderr)
    mlops-hint: <what to do>            (stderr)

and exit codes 0 done, 1 not done / failed, 2 bad usage (a bug), 3 unsupported,
4 prerequisite missing, 8 integrity (checksum).
"""

from __future__ import annotations

import functools
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_env.errors import (
    IntegrityError,
    MlopsError,
    PrereqError,
    StepFailed,
    UnsupportedError,
)
from mlops_env.paths import templates_dir

if TYPE_CHECKING:
    from mlops_env.config import Resolved
    from mlops_env.paths import Paths
    from mlops_env.state import Endpoint, Record
    from mlops_env.transport import RunResult, Transport

log = logging.getLogger(__name__)

#: how many of a failed step's last output lines the user sees (terminal and --json)
TAIL_LINES = 20


#: a script's include of a shared library: ``. "${BASH_SOURCE[0]%/*}/lib/NAME.sh"`` (works when the
#: file is run from the checkout; template() inlines it, since a script reaches a box on stdin)
_INCLUDE = re.compile(r'^\. "\$\{BASH_SOURCE\[0\]%/\*\}/(lib/[A-Za-z0-9_-]+\.sh)"[ \t]*$', re.MULTILINE)


@functools.cache
def template(name: str) -> str:
    """Text of a shipped template (``templates/<name>``), its ``lib/`` includes inlined."""
    text = (templates_dir() / name).read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: template(m.group(1)).rstrip("\n"), text)


@dataclass(frozen=True)
class Facts:
    """What ``templates/facts.sh`` reports about a box."""

    values: Mapping[str, str]

    @classmethod
    def parse(cls, text: str) -> Facts:
        vals: dict[str, str] = {}
        for line in text.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                vals[k.strip()] = v.strip()
        return cls(vals)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def arch(self) -> str:
        return self.get("arch")

    @property
    def home(self) -> str:
        return self.get("home")

    @property
    def is_root(self) -> bool:
        return self.get("uid") == "0"

    @property
    def sudo(self) -> str:
        """``root``, ``ok``, ``password`` (sudo asks for one) or ``missing``."""
        return self.get("sudo")

    def has(self, tool: str) -> bool:
        """Whether a command (from facts.sh's ``tools`` list) exists on the box."""
        return tool in self.get("tools").split()

    @property
    def os_label(self) -> str:
        return self.get("os_pretty") or f"{self.get('os_id')} {self.get('os_version')}".strip()


@dataclass(frozen=True)
class CheckResult:
    """The result of a check. ``status``: ok | warn | fail | skip."""

    status: str
    message: str
    hint: str | None = None
    exit_code: int = 0
    output: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "warn")


def parse_script_output(res: RunResult) -> tuple[str, str | None, str | None]:
    """(summary, error, hint) from a template script's ``mlops*:`` lines."""
    summary = ""
    error = hint = None
    for line in res.stdout.splitlines():  # the summary is the last `mlops:` line on stdout
        if line.startswith("mlops: "):
            summary = line[7:].strip()
    for line in (res.stdout + "\n" + res.stderr).splitlines():
        if line.startswith("mlops-error: "):
            error = line[13:].strip()
        elif line.startswith("mlops-hint: "):
            hint = line[12:].strip() or None
    return summary, error, hint


def output_tail(res: RunResult, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines a script printed, for the user: its standard output, then its
    standard error (where errors go: the two streams are read apart, so their relative order
    is not known exactly), the protocol's error and hint lines left out (the message and the
    hint say them), ``mlops: `` prefixes dropped, blank lines skipped, each line at most 500
    characters. The run's log has every line, as it arrived."""
    out: list[str] = []
    for line in [*res.stdout.splitlines(), *res.stderr.splitlines()]:
        line = line.rstrip()
        if not line.strip() or line.startswith(("mlops-error: ", "mlops-hint: ")):
            continue
        if line.startswith("mlops: "):
            line = line[7:]
        out.append(line[:500])
    return "\n".join(out[-lines:])


def result_from_run(res: RunResult) -> CheckResult:
    summary, error, hint = parse_script_output(res)
    if res.exit_code == 0:
        return CheckResult("ok", summary or "done", exit_code=0, output=output_tail(res), seconds=res.seconds)
    return CheckResult("fail", error or summary or f"exit code {res.exit_code}", hint,
                       exit_code=res.exit_code, output=output_tail(res), seconds=res.seconds)


def raise_for_script(step_id: str, res: RunResult) -> None:
    """Turn a failed script run into the matching user-facing error, carrying the script's
    last lines of output as ``err.output`` (shown under the error, and in ``--json``)."""
    if res.exit_code == 0:
        return
    summary, error, hint = parse_script_output(res)
    message = error or summary or f"exited with code {res.exit_code}"
    cls: type[MlopsError] = {3: UnsupportedError, 4: PrereqError, 8: IntegrityError}.get(res.exit_code, StepFailed)
    err = cls(f"step {step_id} failed: {message}",
              hint=hint or "its last lines of output are above and all of it is in the log file; "
              "run `mlops-env up` again after fixing it")
    err.output = output_tail(res)  # type: ignore[attr-defined]
    raise err


@dataclass(frozen=True)
class ScriptCall:
    """A template script to run with arguments; ``sudo`` runs it as root."""

    script: str
    args: tuple[str, ...]
    sudo: bool = False


@dataclass
class StepContext:
    """Everything a step may read during one run."""

    transport: Transport
    facts: Facts
    options: Resolved
    record: Record
    paths: Paths
    endpoint: Endpoint
    on_line: Callable[[str, str], None] = lambda step, line: None
    data: dict[str, Any] = field(default_factory=dict)  # step outputs (e.g. the smoke report)

    def run_call(self, step_id: str, call: ScriptCall, *, transport: Transport | None = None,
                 timeout: float | None = None) -> RunResult:
        """Run a step's script. Every line it prints goes to the run's log as it arrives (the
        whole output, also of a run cut off), and to ``on_line`` (the live progress)."""
        t = transport or self.transport
        log.debug("step %s: %s %s%s", step_id, call.script, " ".join(call.args), " (as root)" if call.sudo else "")

        def line_seen(line: str) -> None:
            log.debug("step %s| %s", step_id, line)
            self.on_line(step_id, line)

        res = t.run_script(template(call.script), call.args, sudo=call.sudo,
                           is_root=self.facts.is_root, timeout=timeout, on_line=line_seen)
        log.log(logging.DEBUG if res.ok else logging.WARNING, "step %s: %s exited with code %s after %.1fs",
                step_id, call.script, res.exit_code, res.seconds)
        return res


class Step(ABC):
    """One bootstrap step. Subclasses set ``id``, ``title`` and ``needs``."""

    id: str = ""
    title: str = ""
    needs: tuple[str, ...] = ()
    #: needs root on the box for apply
    sudo: bool = False
    #: verify in a new login session (group membership changes only apply there)
    verify_fresh_session: bool = False
    #: runs on this machine, not on the box
    local: bool = False

    def check_call(self, ctx: StepContext) -> ScriptCall | None:
        """The remote check to batch; ``None`` for local steps (see ``check_local``)."""
        return None

    def dependencies(self, facts: Facts) -> tuple[str, ...]:
        """The steps that must succeed before this one's apply, given the box's facts.
        Default ``needs``; a step may drop a need the box already satisfies, so that
        independent work starts at once."""
        return self.needs

    def check_local(self, ctx: StepContext) -> CheckResult:
        raise NotImplementedError

    def interpret(self, ctx: StepContext, res: RunResult) -> CheckResult:
        return result_from_run(res)

    def check(self, ctx: StepContext, *, transport: Transport | None = None) -> CheckResult:
        call = self.check_call(ctx)
        if call is None:
            return self.check_local(ctx)
        return self.interpret(ctx, ctx.run_call(self.id, call, transport=transport))

    @abstractmethod
    def apply(self, ctx: StepContext) -> None:
        """Make the check pass. Idempotent; raises ``MlopsError`` on failure."""

    def verify_call(self, ctx: StepContext) -> ScriptCall | None:
        """The check run after ``apply`` (default: the check itself). May be deeper."""
        return self.check_call(ctx)

    def verify(self, ctx: StepContext) -> CheckResult:
        call = self.verify_call(ctx)
        if call is None:
            return self.check_local(ctx)
        transport = ctx.transport.fresh() if self.verify_fresh_session else ctx.transport
        try:
            return self.interpret(ctx, ctx.run_call(self.id, call, transport=transport))
        finally:
            if transport is not ctx.transport:
                transport.close()

    def describe_apply(self, ctx: StepContext) -> str:
        """One line for ``--dry-run``: what ``apply`` would do."""
        return self.title
