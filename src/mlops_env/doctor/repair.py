"""``doctor --fix``: the failing checks that name a step, repaired by that step's ``apply``
through the engine (needs respected, independent steps side by side), each verified as in
``up``; refused like ``up`` (unsupported OS, sudo password) and asking for Anaconda's terms like
``up``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mlops_env.doctor.targets import _record_ctx

if TYPE_CHECKING:
    from mlops_env.doctor import Report
    from mlops_env.engine import StepReport
    from mlops_env.events import Events
    from mlops_env.paths import Paths
    from mlops_env.steps import Step, StepContext


def fix_plan(report: Report) -> list[Step]:
    """The steps ``--fix`` applies: those behind failing checks, plus the steps they need whose
    own checks fail too, in ``up``'s order."""
    by_id = {s.id: s for s in report.steps}
    want = {i for i in report.fixable_steps() if i in by_id}  # local mode: ssh-config is per record
    todo = list(want)
    while todo:
        s = by_id[todo.pop()]
        for n in s.dependencies(report.facts):
            if n in by_id and n not in want and n in report.step_results and not report.step_results[n].ok:
                want.add(n)
                todo.append(n)
    return [s for s in report.steps if s.id in want]


def repair(report: Report, paths: Paths, events: Events, *, confirm: Callable[[str], None],
           jobs: int = 4) -> list[StepReport]:
    """Apply the fix plan with the engine (needs respected, independent steps side by side),
    each step verified as in ``up``. ``confirm(question)`` raises when the user says no or
    cannot be asked. Refuses like ``up`` on an unsupported OS or a sudo that asks for a
    password, and asks for Anaconda's terms like ``up``. Raises the first step error with
    ``err.reports``."""
    from mlops_env import engine
    from mlops_env.steps import StepContext
    from mlops_env.steps.preflight import preflight, terms

    if not report.fixable_steps():
        return []
    steps = fix_plan(report)
    if report.target.mode == "local":
        return _repair_local(report, paths, events, steps, confirm, jobs)
    transport = report.transport
    assert transport is not None, "diagnose(keep_transport=True) before repair"
    ctx = StepContext(transport=transport, facts=report.facts, options=report.options, record=report.target.record,
                      paths=paths, endpoint=report.target.endpoint,
                      on_line=lambda sid, line: events.step("line", sid, line=line))
    plan = engine.Plan(report.facts, dict(report.step_results), steps)
    preflight(plan, ctx)
    confirm(_question(report, ctx, steps))
    ctx.options = terms(plan, ctx, events)
    return engine.apply(ctx, plan, jobs=jobs, on_event=events.step, abort=transport.close)


def _question(report: Report, ctx: StepContext, steps: Sequence[Step]) -> str:
    lines = [f"doctor --fix will change {report.target.label}:"]
    for s in steps:
        try:
            what = s.describe_apply(ctx)
        except Exception:  # noqa: BLE001 - a description must not stop the question
            what = s.title
        lines.append(f"  {s.id}: {what}")
    lines.append("Go ahead?")
    return "\n".join(lines)


def _repair_local(report: Report, paths: Paths, events: Events, steps: Sequence[Step],
                  confirm: Callable[[str], None], jobs: int) -> list[StepReport]:
    """This machine: the box steps through a local transport; the ssh-config step once per
    known workstation (its Host block and the Include line)."""
    from mlops_env import engine
    from mlops_env.state import Store
    from mlops_env.steps import StepContext
    from mlops_env.steps.preflight import preflight, terms
    from mlops_env.steps.sshconfig import SshConfigStep
    from mlops_env.transport.local import LocalTransport

    box_steps = [s for s in steps if not s.local]
    transport = report.transport or LocalTransport()
    ctx = StepContext(transport=transport, facts=report.facts, options=report.options, record=report.target.record,
                      paths=paths, endpoint=report.target.endpoint,
                      on_line=lambda sid, line: events.step("line", sid, line=line))
    plan = engine.Plan(report.facts, dict(report.step_results), box_steps)
    if box_steps:
        preflight(plan, ctx)
    cfg_fix = "ssh-config" in report.fixable_steps()
    shown = list(box_steps) + ([SshConfigStep()] if cfg_fix else [])
    confirm(_question(report, ctx, shown) if box_steps else
            "doctor --fix will write mlops-env's Host blocks and the Include line in ~/.ssh/config.\nGo ahead?")
    out: list[StepReport] = []
    if box_steps:
        ctx.options = terms(plan, ctx, events)
        out += engine.apply(ctx, plan, jobs=jobs, on_event=events.step)
    if cfg_fix:
        for rec in Store(paths).all():
            if rec.endpoint is None:
                continue
            rctx = _record_ctx(rec, paths, report.options)
            step = SshConfigStep()
            res = step.check_local(rctx)
            out += engine.apply(rctx, engine.Plan(report.facts, {step.id: res}, [step]), on_event=events.step)
    return out
