"""``mlops-env doctor``: check a box or this machine, explain every problem with its fix, and
repair what ``up``'s steps know how to repair. This module never prints.

    target = local_target(...) | workstation_target(...) | host_target(...)   # targets.py
    report = diagnose(target, options, categories, paths)   # ONE SSH connection, ONE round-trip
    reports = repair(report, ...)                           # repair.py: engine.apply, failing steps only

One definition of each check, shared with ``up``: the bootstrap steps' own ``check_call``
scripts run in the same batch as ``templates/doctor.sh``'s read-only probes, every script
bounded by a timeout (``engine.run_checks``), and pure parsers (``doctor.parse``) turn both into
``Check``s. A failing check that names a step is repaired by that step's ``apply``; the rest
say what to do. The ``local`` category (this machine: SSH config, keys, VS Code, AWS) runs in
Python threads while the box answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_env.checks import CATEGORIES, FAIL, OK, SKIP, STATUSES, WARN, Check
from mlops_env.doctor.repair import fix_plan, repair
from mlops_env.doctor.targets import (
    Target,
    _record_ctx,
    host_target,
    local_target,
    machine_role,
    workstation_target,
)

if TYPE_CHECKING:
    from mlops_env.checks import CheckResult, Facts
    from mlops_env.config import Resolved
    from mlops_env.paths import Paths
    from mlops_env.steps import Step, StepContext
    from mlops_env.transport import RunResult, Transport

__all__ = ["CATEGORIES", "FAIL", "OK", "SKIP", "STATUSES", "WARN", "Check", "Declined", "Report", "Target",
           "check_box", "diagnose", "fix_plan", "host_target", "local_target", "machine_role", "parse_categories",
           "repair", "workstation_target"]

log = logging.getLogger(__name__)

BOX_TIMEOUT = 15  # seconds per script on the box; engine.run_checks kills what runs longer
NETWORK_TIMEOUT = 2  # seconds per HTTP probe (reachability is a warning, never a long wait)
CONNECT_TIMEOUT = 10  # seconds to reach sshd, unless --ssh-timeout says otherwise
PYPI_URL = "https://pypi.org/simple/pip/"
BOX_CATEGORIES = ("system", "python", "docker", "network", "tools")


class Declined(Exception):  # noqa: N818 - a user's answer, not an error
    """The user said no to ``--fix``'s question: nothing was changed."""


def parse_categories(only: Iterable[str], skip: Iterable[str]) -> tuple[str, ...]:
    """``--only``/``--skip`` values (repeatable, comma-separated) -> the categories to run."""
    from mlops_env.errors import UsageError

    def split(vals: Iterable[str]) -> list[str]:
        return [v.strip().lower() for val in vals for v in val.split(",") if v.strip()]

    o, s = split(only), split(skip)
    bad = sorted({c for c in o + s if c not in CATEGORIES})
    if bad:
        raise UsageError(f"unknown check categor{'y' if len(bad) == 1 else 'ies'}: {', '.join(bad)}",
                         hint=f"use one or more of {', '.join(CATEGORIES)} (e.g. --only docker,python)",
                         code="invalid-category")
    chosen = tuple(c for c in CATEGORIES if (not o or c in o) and c not in s)
    if not chosen:
        raise UsageError("--only/--skip leave no category to check",
                         hint=f"categories: {', '.join(CATEGORIES)}", code="invalid-category")
    return chosen


# -- the report --------------------------------------------------------------------------------
@dataclass
class Report:
    target: Target
    checks: list[Check]
    step_results: dict[str, CheckResult]
    facts: Facts
    steps: list[Step]
    options: Resolved
    categories: tuple[str, ...]
    seconds: float = 0.0
    connections: int = 0
    round_trips: int = 0
    transport: Transport | None = None

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def fixable_steps(self) -> list[str]:
        """Steps behind failing checks whose own check fails too (``--fix`` applies them)."""
        ids = {c.step for c in self.problems if c.step}
        out = [s.id for s in self.steps if s.id in ids and s.id in self.step_results
               and not self.step_results[s.id].ok]
        if self.target.mode == "local" and "ssh-config" in ids:
            out.append("ssh-config")  # per known workstation (see _repair_local)
        return out

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    @property
    def note(self) -> str | None:
        """Why the box categories were not checked here (a laptop), or None."""
        if self.target.mode != "local" or self.target.role != "laptop":
            return None
        return (f"checked as a laptop ({self.target.why}): conda, Docker compose and the course's libraries "
                "belong on the workstations (`mlops-env doctor NAME` checks one); "
                "`mlops-env doctor --as-workstation` checks this machine as a workstation")

    def as_data(self) -> dict[str, Any]:
        return {
            "note": self.note,
            "target": {"mode": self.target.mode, "label": self.target.label, "role": self.target.role
                       if self.target.mode == "local" else None,
                       "name": self.target.record.name if self.target.mode == "workstation" else None,
                       "user": self.target.endpoint.user,
                       "host": self.target.endpoint.host if self.target.remote else None,
                       "port": self.target.endpoint.port if self.target.remote else None},
            "categories": list(self.categories),
            "checks": [c.as_dict() for c in self.checks],
            "summary": self.counts(),
            "fixable_steps": self.fixable_steps(),
            "seconds": round(self.seconds, 3),
            "ssh_connections": self.connections,
            "ssh_round_trips": self.round_trips,
        }


# -- the box -----------------------------------------------------------------------------------
def _steps(target: Target, options: Resolved, cats: Sequence[str]) -> list[Step]:
    from mlops_env.steps.builtin import workstation_steps
    from mlops_env.steps.sshconfig import SshConfigStep

    smoke = options["smoke_test"] if target.mode == "workstation" else "off"
    keep = set()
    if set(cats) & set(BOX_CATEGORIES):
        keep.add("base")  # cheap; the OS verdict and a need of the others (for --fix)
    if "python" in cats:
        keep |= {"conda", "smoke"}
    if "docker" in cats:
        keep.add("docker")
    steps = [s for s in workstation_steps(smoke) if s.id in keep]
    if target.mode == "workstation" and "system" in cats:
        from mlops_env.steps.idlestop import PROVIDERS, doctor_step

        if target.record.provider in PROVIDERS:  # the idle-stop step's own check
            steps.append(doctor_step(target.record.provider))
    if target.mode == "workstation" and "local" in cats:
        steps.append(SshConfigStep())
    return steps


def _conda(steps: Sequence[Step]) -> Any:
    from mlops_env.steps.builtin import CondaStep

    return next((s for s in steps if isinstance(s, CondaStep)), CondaStep())


def box_calls(ctx: StepContext, steps: Sequence[Step], cats: Sequence[str]) -> list[tuple[str, str, Sequence[str]]]:
    """facts + the steps' own checks + doctor.sh's probes: one batch, one round-trip."""
    from mlops_env.smoke.ridetrain import DEFAULT_TRAIN
    from mlops_env.steps import template

    calls: list[tuple[str, str, Sequence[str]]] = [("facts", template("facts.sh"), ())]
    for s in steps:
        call = s.check_call(ctx)
        if call is not None:
            calls.append((s.id, template(call.script), call.args))
    doctor = template("doctor.sh")
    args: dict[str, list[str]] = {
        "system": ["system"],
        "python": ["python", "--prefix", _conda(steps).prefix(ctx)],
        "docker": ["docker"],
        "network": ["network", "--timeout", str(NETWORK_TIMEOUT), "--url", f"tlc={DEFAULT_TRAIN}",
                    "--url", f"pypi={PYPI_URL}"],
        "tools": ["tools"],
    }
    for cat in BOX_CATEGORIES:
        if cat in cats:
            calls.append((f"doctor-{cat}", doctor, args[cat]))
    return calls


def check_box(ctx: StepContext, steps: Sequence[Step], cats: Sequence[str], *, target: Target,
              fresh_session: bool, timeout: int = BOX_TIMEOUT) -> tuple[list[Check], dict[str, CheckResult]]:
    """Run every check of ``cats`` on the box behind ``ctx.transport`` in one round-trip and
    interpret the answers. ``fresh_session``: the transport's login was made for this run."""
    from mlops_env import engine

    calls = box_calls(ctx, steps, cats)
    t0 = time.monotonic()
    results = engine.run_checks(ctx.transport, calls, timeout=timeout)
    batch_s = time.monotonic() - t0
    return interpret_box(results, ctx, steps, cats, target=target, fresh_session=fresh_session,
                         local_time=time.time() if target.remote else None, batch_seconds=batch_s)


def interpret_box(results: Mapping[str, RunResult], ctx: StepContext, steps: Sequence[Step],
                  cats: Sequence[str], *, target: Target, fresh_session: bool, local_time: float | None,
                  batch_seconds: float = 0.0) -> tuple[list[Check], dict[str, CheckResult]]:
    """The box's answers (one ``RunResult`` per batched call id) -> checks, and each step's own
    check result. Pure apart from the installer table: tests feed it captured answers."""
    from mlops_env import installers
    from mlops_env.checks import Facts
    from mlops_env.doctor import parse, parse_docker, parse_network

    batch_s = batch_seconds
    ctx.facts = Facts.parse(results["facts"].stdout)
    step_results = {s.id: s.interpret(ctx, results[s.id]) for s in steps if s.id in results}
    secs = {cat: parse.sections(results[f"doctor-{cat}"].stdout) for cat in BOX_CATEGORIES
            if f"doctor-{cat}" in results}
    opts = ctx.options
    dist = opts["python_dist"]
    table = installers.table()
    files = table.get(dist, {}).get("files", {})
    arches = [a for a, norm in installers.ARCH_ALIASES.items() if norm in files]
    checks: list[Check] = []
    if "system" in cats:
        checks += parse.system_checks(ctx.facts, step_results.get("base"), secs["system"],
                                      supported_arches=arches, local_time=local_time)
        if "idle-stop" in step_results:
            from mlops_env.steps.idlestop import doctor_check

            checks.append(doctor_check(step_results["idle-stop"]))
    if "python" in cats:
        conda = _conda(steps)
        smoke_hint = (f"`mlops-env smoke-test {target.record.name}` trains it there "
                      f"({opts['smoke_test']} data)") if target.mode == "workstation" else None
        checks += parse.python_checks(
            step_results.get("conda"), secs["python"], prefix=conda.prefix(ctx), home=ctx.facts.home,
            needs_terms=bool(table.get(dist, {}).get("terms_of_service")),
            dist_label=installers.DIST_LABELS.get(dist, dist),
            smoke=step_results.get("smoke"), smoke_hint=smoke_hint)
    if "docker" in cats:
        checks += parse_docker.docker_checks(step_results.get("docker"), secs["docker"], fresh_session=fresh_session)
    if "network" in cats:
        from mlops_env.smoke.ridetrain import DEFAULT_TRAIN

        checks += parse_network.network_checks(secs["network"], urls={"tlc": DEFAULT_TRAIN, "pypi": PYPI_URL},
                                       side="box" if target.remote else "local")
    if "tools" in cats:
        checks += parse.tools_checks(step_results.get("base"), secs["tools"], provider=target.record.provider)
    # A check from a step's own script took part of the batch: give it the batch's time.
    checks = [c if c.seconds else Check(c.id, c.status, c.message, c.hint, batch_s, c.step) for c in checks]
    return checks, step_results


# -- this machine's side -----------------------------------------------------------------------
def local_checks(target: Target, paths: Paths, options: Resolved, *, env: dict[str, str] | None = None,
                 home: Path | None = None) -> list[Check]:
    """The ``local`` category, its independent parts side by side."""
    import os

    from mlops_env.doctor import local
    from mlops_env.state import Store
    from mlops_env.steps.sshconfig import SshConfigStep

    env = dict(os.environ) if env is None else env
    home = home or Path.home()
    if target.mode == "workstation":
        records = [target.record]
    else:
        try:
            records = [r for r in Store(paths).all() if r.endpoint is not None]
        except Exception as e:  # noqa: BLE001 - a broken state file is reported by `list`
            log.debug("cannot list workstations: %s", e)
            records = []
    entries = []
    for r in records:
        try:
            entries.append(SshConfigStep().entry(_record_ctx(r, paths, options)))
        except Exception as e:  # noqa: BLE001 - an odd record must not stop the other checks
            log.debug("no ssh entry for %s: %s", r.name, e)
    identities = [r.endpoint.identity_file for r in records if r.endpoint and r.endpoint.identity_file]
    aws = target.mode == "local" or target.record.provider == "ec2"
    laptop = target.mode == "local" and target.role == "laptop"

    def ssh_config() -> list[Check]:
        fix = f"run `{target.fix_command}`"
        inc = local.ssh_include_check(paths, bool(records), fix)
        hosts = local.ssh_hosts_check(paths, entries, inc.status == OK, fix)
        return [inc, hosts]

    jobs: list[Callable[[], list[Check]]] = [
        lambda: local.timed(local.ssh_client_check),
        lambda: local.timed(ssh_config),
        lambda: local.timed(lambda: local.ssh_key_check(paths)),
        lambda: local.timed(lambda: local.ssh_perms_check(home, identities)),
        lambda: local.timed(local.home_check),
        lambda: local.timed(lambda: local.vscode_checks(home)),
    ]
    if aws:
        jobs.append(lambda: local.timed(lambda: local.aws_checks(env, home)))
    if laptop:  # what `up docker` and `up codespace` need here
        jobs.append(lambda: local.bounded(lambda: local.timed(lambda: local.docker_check(env, home)),
                                          local.DOCKER_TIMEOUT + 2, ["local.docker"], "the Docker check"))
        jobs.append(lambda: local.timed(lambda: local.gh_check(env)))
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="doctor-local") as pool:
        futures = [pool.submit(j) for j in jobs]
        out: list[Check] = []
        for f in futures:
            try:
                out += f.result()
            except Exception as e:  # noqa: BLE001 - one broken check must not hide the others
                log.debug("local check failed", exc_info=True)
                out.append(Check("local.internal", WARN, f"a local check failed: {type(e).__name__}: {e}"))
    order = ["local.ssh-client", "local.ssh-include", "local.ssh-hosts", "local.ssh-key", "local.ssh-perms", "local.home",
             "local.vscode", "local.vscode-remote-ssh", "local.docker", "local.gh", "local.aws-credentials",
             "local.aws-sso", "local.aws-region"]
    return sorted(out, key=lambda c: order.index(c.id) if c.id in order else len(order))


# -- diagnose ----------------------------------------------------------------------------------
def diagnose(target: Target, options: Resolved, categories: Sequence[str], paths: Paths, *,
             keep_transport: bool = False, timeout: int = BOX_TIMEOUT) -> Report:
    """Every check of ``categories``: the box's in one batched round-trip over one connection
    (a new login), this machine's in threads meanwhile."""
    from mlops_env.checks import Facts
    from mlops_env.steps import StepContext
    from mlops_env.steps.sshconfig import SshConfigStep

    t0 = time.monotonic()
    cats = tuple(c for c in CATEGORIES if c in categories)
    if target.mode == "host":
        cats = tuple(c for c in cats if c != "local")  # a box we do not manage: nothing local to check
    if target.mode == "local" and target.role == "laptop":
        cats = tuple(c for c in cats if c == "local")  # its own side only: Python, no bash (see Report.note)
    steps = _steps(target, options, cats)
    ctx = StepContext(transport=None, facts=Facts({}), options=options, record=target.record,  # type: ignore[arg-type]
                      paths=paths, endpoint=target.endpoint)
    checks: list[Check] = []
    step_results: dict[str, CheckResult] = {}
    transport = None
    box_cats = [c for c in cats if c in BOX_CATEGORIES]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="doctor") as pool:
        local_f = pool.submit(local_checks, target, paths, options) if "local" in cats else None
        cfg_f = None
        if any(isinstance(s, SshConfigStep) for s in steps):
            cfg_f = pool.submit(lambda: SshConfigStep().check_local(_record_ctx(target.record, paths, options)))
        try:
            if box_cats:
                assert target.connect is not None
                transport = target.connect()
                ctx.transport = transport
                checks, step_results = check_box(ctx, steps, box_cats, target=target,
                                                 fresh_session=target.remote, timeout=timeout)
            if local_f is not None:
                checks += local_f.result()
            if cfg_f is not None:
                step_results["ssh-config"] = cfg_f.result()
        except BaseException:
            if transport is not None:
                transport.close()
            raise
    checks = _with_fix_hints(checks, step_results, target)
    report = Report(target, checks, step_results, ctx.facts, steps, ctx.options, cats,
                    seconds=time.monotonic() - t0,
                    connections=getattr(transport, "connects", 0) + target.probes,
                    round_trips=transport.round_trips if transport is not None and target.remote else 0,
                    transport=transport)
    if transport is not None and not keep_transport:
        transport.close()
        report.transport = None
    return report


def _with_fix_hints(checks: list[Check], step_results: dict[str, CheckResult], target: Target) -> list[Check]:
    """A failing check whose step's own check fails too is fixable: say so. Otherwise the check
    is not ``--fix``'s business (``step`` cleared)."""
    out = []
    for c in checks:
        if c.step and c.status == FAIL and c.step in step_results and not step_results[c.step].ok:
            suffix = f"run `{target.fix_command}`"
            hint = c.hint if c.hint and target.fix_command in c.hint else (
                f"{c.hint}; or {suffix}" if c.hint else suffix)
            out.append(Check(c.id, c.status, c.message, hint, c.seconds, c.step))
        elif c.step and c.status != FAIL:
            out.append(Check(c.id, c.status, c.message, c.hint, c.seconds, None))
        elif c.step and c.step not in step_results:
            out.append(Check(c.id, c.status, c.message, c.hint, c.seconds, c.step if c.step == "ssh-config" else None))
        else:
            out.append(c)
    return out


# -- repair ------------------------------------------------------------------------------------
