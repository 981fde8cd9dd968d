"""The core engine: gather facts and every check in ONE round-trip, then apply what is
needed, independent steps side by side, over one connection. It never prints; it reports
events to a callback and returns reports.

    plan = gather(ctx, steps)           # facts + checks, batched
    reports = apply(ctx, plan)          # only steps whose check failed; needs respected
"""

from __future__ import annotations

import base64
import logging
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from mlops_env.checks import CheckResult, Facts
from mlops_env.errors import ExitCode, MlopsError, StepFailed
from mlops_env.steps import Step, StepContext, template
from mlops_env.transport import RunResult, Transport

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 120  # seconds per check on the box; a hanging check is reported, not waited on

# Step statuses reported by `up` (and in --json).
CHANGED, UNCHANGED, FAILED, SKIPPED = "changed", "unchanged", "failed", "skipped"


@dataclass
class StepReport:
    id: str
    title: str
    status: str
    seconds: float = 0.0
    message: str = ""
    hint: str | None = None
    would_change: str | None = None  # dry-run: what apply would do

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "title": self.title, "status": self.status,
                             "seconds": round(self.seconds, 3), "message": self.message}
        if self.hint:
            d["hint"] = self.hint
        if self.would_change is not None:
            d["would_change"] = self.would_change
        return d


@dataclass
class Plan:
    facts: Facts
    checks: dict[str, CheckResult]
    steps: list[Step]
    seconds: float = 0.0
    round_trips: int = 0

    def pending(self) -> list[Step]:
        return [s for s in self.steps if not self.checks[s.id].ok]


# -- batching ---------------------------------------------------------------------------------
_MARK = "@@mlops-env"


def batch_script(calls: Sequence[tuple[str, str, Sequence[str]]], timeout: int = CHECK_TIMEOUT) -> str:
    """A bash script that runs every ``(id, script_text, args)`` concurrently on the box and
    prints one framed, base64-encoded result line per call. Script texts travel base64-encoded
    and arguments are shell-quoted: nothing is pasted into shell unquoted."""
    lines = [
        "set -u",
        'd=$(mktemp -d) || exit 97',
        "trap 'rm -rf \"$d\"' EXIT",
        # `timeout` bounds each check; without coreutils' timeout, run unbounded.
        # -k: a check that ignores SIGTERM is killed 2 s later.
        'if command -v timeout >/dev/null 2>&1; then TO="timeout -k 2 ' + str(timeout) + '"; else TO=""; fi',
        # Portable base64: GNU/busybox decode with -d, macOS before 13 only with -D; no -w0
        # (GNU-only): BSD base64 does not wrap, and `tr -d` removes GNU's line breaks.
        "if printf eA== | base64 -d >/dev/null 2>&1; then B64D='base64 -d'; else B64D='base64 -D'; fi",
    ]
    for i, (_cid, text, args) in enumerate(calls):
        b64 = base64.b64encode(text.encode("utf-8")).decode("ascii")
        argstr = " ".join(shlex.quote(a) for a in args)
        lines.append(
            f'( printf %s {b64} | $B64D >"$d/{i}.sh"; '
            f'$TO bash "$d/{i}.sh" {argstr} >"$d/{i}.out" 2>"$d/{i}.err" </dev/null; '
            f'echo $? >"$d/{i}.rc" ) &'
        )
    lines.append("wait")
    for i, (cid, _text, _args) in enumerate(calls):
        lines.append(
            f'printf "%s %s %s " {_MARK} {shlex.quote(cid)} "$(cat "$d/{i}.rc")"; '
            f'base64 <"$d/{i}.out" | tr -d "\\n"; printf " "; base64 <"$d/{i}.err" | tr -d "\\n"; echo'
        )
    return "\n".join(lines) + "\n"


def parse_batch(stdout: str, seconds: float) -> dict[str, RunResult]:
    out: dict[str, RunResult] = {}
    for line in stdout.splitlines():
        if not line.startswith(_MARK + " "):
            continue
        parts = line.split(" ")
        if len(parts) < 4:
            continue
        cid, rc = parts[1], parts[2]
        so = base64.b64decode(parts[3]).decode("utf-8", "replace") if len(parts) > 3 else ""
        se = base64.b64decode(parts[4]).decode("utf-8", "replace") if len(parts) > 4 else ""
        code = int(rc) if rc.lstrip("-").isdigit() else 1
        if code == 124:
            se += "\nmlops-error: check timed out"
        out[cid] = RunResult((cid,), code, so, se, seconds)
    return out


def run_checks(transport: Transport, calls: Sequence[tuple[str, str, Sequence[str]]],
               timeout: int = CHECK_TIMEOUT) -> dict[str, RunResult]:
    """Run read-only check scripts in one round-trip; returns results by id."""
    start = time.monotonic()
    res = transport.run(["bash", "-c", 'exec bash -s'], stdin=batch_script(calls, timeout).encode(),
                        timeout=timeout + 30)
    results = parse_batch(res.stdout, time.monotonic() - start)
    missing = [cid for cid, _t, _a in calls if cid not in results]
    if missing:
        raise StepFailed(
            f"the checks did not report back from {transport.where} ({', '.join(missing)})",
            hint="the box needs bash, base64 and mktemp; see the log file",
        )
    return results


# -- plan & apply -----------------------------------------------------------------------------
def gather(ctx: StepContext, steps: Sequence[Step]) -> Plan:
    """Facts and all checks: remote ones in one batched round-trip, local ones here."""
    start = time.monotonic()
    before = ctx.transport.round_trips
    calls: list[tuple[str, str, Sequence[str]]] = [("facts", template("facts.sh"), ())]
    for s in steps:
        call = s.check_call(ctx)
        if call is not None:
            calls.append((s.id, template(call.script), call.args))
    results = run_checks(ctx.transport, calls)
    ctx.facts = Facts.parse(results["facts"].stdout)
    checks: dict[str, CheckResult] = {}
    for s in steps:
        if s.id in results:
            checks[s.id] = s.interpret(ctx, results[s.id])
        else:
            t0 = time.monotonic()
            r = s.check_local(ctx)
            checks[s.id] = CheckResult(r.status, r.message, r.hint, r.exit_code, r.output, time.monotonic() - t0)
    return Plan(ctx.facts, checks, list(steps), time.monotonic() - start,
                ctx.transport.round_trips - before)


EventFn = Callable[..., None]


def apply(ctx: StepContext, plan: Plan, *, jobs: int = 4, on_event: EventFn | None = None,
          abort: Callable[[], None] | None = None) -> list[StepReport]:
    """Apply every step whose check failed, in dependency order, up to ``jobs`` at a time.

    A step whose dependency failed is skipped. The first user-facing error is re-raised after
    all running steps finish, with the reports attached as ``err.reports``.
    """
    emit = on_event or (lambda *a, **k: None)
    steps = {s.id: s for s in plan.steps}
    reports: dict[str, StepReport] = {}
    errors: list[MlopsError] = []
    lock = threading.Lock()

    def run_one(step: Step) -> StepReport:
        chk = plan.checks[step.id]
        emit("start", step.id, title=step.title, message=chk.message)
        t0 = time.monotonic()
        try:
            step.apply(ctx)
            after = step.verify(ctx)
        except MlopsError as e:
            with lock:
                errors.append(e)
            return StepReport(step.id, step.title, FAILED, time.monotonic() - t0, e.message, e.hint)
        if not after.ok:
            e2 = StepFailed(f"step {step.id} did not take: {after.message}",
                            hint=after.hint or "see the log file; run `mlops-env up` again")
            e2.output = after.output  # type: ignore[attr-defined]
            with lock:
                errors.append(e2)
            return StepReport(step.id, step.title, FAILED, time.monotonic() - t0, e2.message, e2.hint)
        return StepReport(step.id, step.title, CHANGED, time.monotonic() - t0, after.message)

    order = [s.id for s in plan.steps]
    pending = list(order)
    running: dict[Future[StepReport], str] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="step")
    try:
        while pending or running:
            progressed = False
            for sid in list(pending):
                chk = plan.checks[sid]
                if chk.ok:  # already done: nothing to apply, whatever happens to the others
                    reports[sid] = StepReport(sid, steps[sid].title, UNCHANGED, chk.seconds, chk.message)
                    emit("done", sid, report=reports[sid])
                    pending.remove(sid)
                    progressed = True
                    continue
                needs = steps[sid].dependencies(plan.facts)
                if any(n in reports and reports[n].status in (FAILED, SKIPPED) for n in needs):
                    bad = next(n for n in needs if reports.get(n) and reports[n].status in (FAILED, SKIPPED))
                    reports[sid] = StepReport(sid, steps[sid].title, SKIPPED, 0.0, f"skipped: {bad} did not succeed")
                    emit("done", sid, report=reports[sid])
                    pending.remove(sid)
                    progressed = True
                    continue
                if all(n in reports or n not in steps for n in needs) and len(running) < max(1, jobs):
                    running[pool.submit(run_one, steps[sid])] = sid
                    pending.remove(sid)
                    progressed = True
            if not running:
                if not progressed and pending:  # unsatisfiable needs: a bug in the step table
                    raise RuntimeError(f"steps cannot be ordered: {pending}")
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                sid = running.pop(fut)
                reports[sid] = fut.result()
                emit("done", sid, report=reports[sid])
    except BaseException:
        # Ctrl-C (or a bug): cut the connection so running steps end now instead of when
        # their remote commands finish; the next `up` picks up from the checks.
        if abort is not None:
            abort()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    ordered = [reports[sid] for sid in order]
    if errors:
        first = errors[0]
        first.reports = ordered  # type: ignore[attr-defined]
        raise first
    return ordered


def exit_code_for(reports: Sequence[StepReport]) -> int:
    return ExitCode.FAILED if any(r.status == FAILED for r in reports) else ExitCode.OK


@dataclass
class Timer:
    started: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return time.monotonic() - self.started
