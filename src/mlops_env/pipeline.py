"""``up``: the one pipeline every provider plugs into (docker, ssh, ec2, codespace).

    provider.ensure()  -> the box exists and we know how to reach it
    host key           -> pinned (trusted channel, or the user's confirmation)
    one SSH connection -> facts + every check in one round-trip
    the box            -> a provider that ``installs`` (docker, ssh, ec2): the bootstrap steps,
                          what is missing applied, independent steps side by side;
                          a ready box (``installs = False``: a codespace, whose dev container
                          installed everything): doctor's box checks and the smoke test only,
                          a problem reported with its fix, not repaired
    SSH config         -> `ssh <alias>` and VS Code Remote-SSH work (a ready box: right after
                          the host key, so the alias works even if a check fails)

State is saved after each phase, so a run killed anywhere is finished by the next ``up``.
This module never prints: progress goes to the ``Events`` callbacks the CLI provides.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from mlops_env import engine
from mlops_env.checks import Facts
from mlops_env.config import Resolved, applies
from mlops_env.errors import HostKeyError, StepFailed, UsageError
from mlops_env.events import Events
from mlops_env.fsutil import atomic_write
from mlops_env.paths import Paths, ensure_private_dir
from mlops_env.providers import Provisioned, get_provider
from mlops_env.ssh import config as sshconfig
from mlops_env.ssh import knownhosts
from mlops_env.ssh.connect import connect, establish_trust
from mlops_env.state import Record, Store, validate_name
from mlops_env.steps import Step, StepContext
from mlops_env.steps.builtin import workstation_steps
from mlops_env.steps.preflight import accepted, preflight, terms, terms_question, terms_refused
from mlops_env.steps.sshconfig import SshConfigStep, ssh_entry

log = logging.getLogger(__name__)

__all__ = ["Declined", "Events", "UpRequest", "code_command", "connect", "refresh_ssh_config", "steps_for", "up"]

#: what a ready box gets instead of the bootstrap steps (``Provider.installs`` False)
READY_BOX_STEPS = (("ssh-config", "SSH config"), ("doctor", "doctor"), ("smoke", "smoke test"))
#: the conda distributions a ready box may have: the folder in $HOME -> --python-dist
DISTS = {"anaconda3": "anaconda", "miniconda3": "miniconda", "miniforge3": "miniforge"}


class Declined(Exception):  # noqa: N818 - not an error: the user's answer
    """The user answered "no" to a question asked before anything was changed. The CLI turns
    it into exit 0 and "nothing changed" (not an error, and not 130, which means Ctrl-C)."""


@dataclass
class UpRequest:
    name: str
    provider: str
    options: Resolved
    provider_data: dict[str, Any] = field(default_factory=dict)
    host_key_fingerprint: str | None = None
    dry_run: bool = False
    jobs: int = 4
    provision_only: bool = False  # make the box exist and write the SSH config; no SSH connection
    extra_steps: list[Step] = field(default_factory=list)  # a class: the student's keys (classroom.steps)


def refresh_ssh_config(paths: Paths, record: Record) -> bool:
    """Rewrite the workstation's Host block for ``record.endpoint`` (after ``start`` moved the
    box to a new address); True when the file changed."""
    if record.endpoint is None:
        return False
    entry = ssh_entry(paths, record, record.endpoint, bool(record.options.get("forward", True)))
    changed = sshconfig.upsert_host(paths, entry)
    sshconfig.ensure_include(paths)
    return changed


def steps_for(options: Resolved, provider: str = "") -> list[Step]:
    from mlops_env.steps import clone, idlestop

    return [*workstation_steps(options["smoke_test"], bool(options.get("serve"))),
            *clone.steps_for(options), *idlestop.steps_for(provider, options), SshConfigStep()]


def up(req: UpRequest, paths: Paths, events: Events) -> dict[str, Any]:
    validate_name(req.name)
    store = Store(paths)
    provider = get_provider(req.provider, paths)
    if req.dry_run:  # read-only: no lock file, no state dir, nothing written
        record = store.find(req.name)
        if record is None:
            fresh = Record(name=req.name, provider=req.provider, alias=sshconfig.alias_for(req.name))
            fresh.provider_data.update(req.provider_data)
            return _dry_run(req, fresh, None, provider, paths)
        _check_provider(record, req)
        return _dry_run(req, record, record, provider, paths)
    with store.lock(req.name):
        record = store.find(req.name)
        if record is not None:
            _check_provider(record, req)
        else:
            record = Record(name=req.name, provider=req.provider, alias=sshconfig.alias_for(req.name))
        record.provider_data.update(req.provider_data)
        return _up(req, record, provider, paths, store, events)


def _check_provider(record: Record, req: UpRequest) -> None:
    if record.provider != req.provider:
        raise UsageError(
            f"workstation {req.name!r} is a {record.provider} workstation",
            hint=f"use `mlops-env up {record.provider} {req.name}`, or pick another name",
            code="provider-mismatch",
        )


def _up(req: UpRequest, record: Record, provider: Any, paths: Paths, store: Store,
        events: Events) -> dict[str, Any]:
    from mlops_env.ssh.keys import ensure_keypair

    t_total = time.monotonic()
    # Every question comes before the first change: a "no" leaves nothing behind.
    asks = provider.installs and not req.provision_only
    opts = _terms_up_front(record, req.options, events) if asks else req.options
    provider.remember_options(record, opts)
    # Refuse before making anything when ~/.ssh/config cannot be updated (unreadable,
    # not UTF-8...): the last step would fail after minutes of work otherwise.
    sshconfig.check_include(paths)
    key = ensure_keypair(paths)
    known = store.exists(record.name)
    if known:
        store.save(record)
    # A new workstation gets its record once something exists that `down` would have to
    # remove (a failed first `up` that made nothing leaves no ghost in `list`): the provider
    # says so through `created` the moment it makes something (docker: the volume, before the
    # container); the ssh provider makes nothing, so the record follows the host key's pin.

    def created(data: dict[str, Any]) -> None:
        record.provider_data.update(data)
        store.save(record)

    # 1. the box exists
    t0 = time.monotonic()
    events.step("start", "provision", title=provider.box_title, message="")
    provider.confirm, provider.warn, provider.created = events.confirm, events.warn, created
    provider.will_connect = not req.provision_only
    try:
        prov = provider.ensure(record, opts, key, events.progress)
    except BaseException:
        if not known and not provider.made_something(record):
            store.delete(record.name)
        raise
    for n in prov.notices:
        events.warn(n)
    record.endpoint = prov.endpoint
    record.provider_data.update(prov.provider_data)
    if record.phase == "new":
        record.phase = "provisioned"
    if known or store.exists(record.name) or prov.action != "unchanged":
        store.save(record)
    reports = [engine.StepReport("provision", provider.box_title,
                                 engine.CHANGED if prov.action != "unchanged" else engine.UNCHANGED,
                                 time.monotonic() - t0, prov.detail)]
    events.step("done", "provision", report=reports[0])
    extra = dict(prov.summary)  # what the provider adds to the result (a codespace: its links, cost...)
    ep = prov.endpoint
    if ep is None:  # not reachable over SSH from here (a codespace without gh): the links are the way in
        return _unreachable(record, reports, prov, store, events, t_total, extra)

    # 2. the host key is pinned
    pinned = knownhosts.lookup(paths, ep.host_key_alias)
    if prov.host_key is not None:
        # Learned through a trusted channel (Docker API, cloud-init user data we wrote, gh's
        # authenticated tunnel). A new box gets a new pin; an existing box keeps its pin, and a
        # mismatch is refused by the transport below.
        if prov.action == "created" or prov.replace_pin or not pinned:
            knownhosts.pin(paths, ep.host_key_alias, prov.host_key, replace=True)
    elif not pinned:
        establish_trust(paths, ep, req.host_key_fingerprint, events, opts["ssh_timeout"])
    store.save(record)  # the pin exists now: `down` removes it

    ctx = StepContext(transport=None, facts=Facts({}), options=opts, record=record,  # type: ignore[arg-type]
                      paths=paths, endpoint=ep, on_line=lambda sid, line: events.step("line", sid, line=line))
    if req.provision_only or not provider.installs:
        # The SSH alias (local, cheap) now: `ssh mlops-NAME` works even if a later check fails.
        reports.append(run_local_step(SshConfigStep(), ctx, events))
        record.steps = step_records(reports) if not provider.installs else {**record.steps, **step_records(reports)}
        store.save(record)
        if req.provision_only:
            data = _data(record, reports, ctx, t_total, extra)
            data["provision_only"] = True
            return data

    # 3. one connection
    events.progress(f"connecting to {ep.user}@{ep.host}{provider.connect_via or f':{ep.port}'}")
    try:
        transport = connect(paths, ep, max(opts["ssh_timeout"], prov.ready_timeout or 0))
    except HostKeyError as e:
        refused = provider.host_key_refused(record, e)
        if refused is e:
            raise
        raise refused from e
    if hasattr(provider, "after_connect"):  # EC2: retire the host key that came in user data
        transport = provider.after_connect(record, transport, events.progress)
    try:
        ctx.transport = transport
        if provider.installs:  # 4. facts + all checks in one round-trip, then what is missing
            reports += _install(req, record, provider, ctx, store, events, reports, t_total, extra)
        else:  # 4. a ready box: doctor's checks in one round-trip, then the smoke test
            _check_ready(record, provider, ctx, store, events, reports, t_total, extra)
        round_trips = transport.round_trips
        connects = getattr(transport, "connects", 1)
    finally:
        transport.close()
    warnings = finish(record, reports, ctx, store, events)
    data = _data(record, reports, ctx, t_total, extra)
    data["warnings"] = warnings
    data["ssh_round_trips"] = round_trips
    data["ssh_connections"] = connects
    return data


def _install(req: UpRequest, record: Record, provider: Any, ctx: StepContext, store: Store, events: Events,
             reports: list[engine.StepReport], t_total: float, extra: dict[str, Any]) -> list[engine.StepReport]:
    """The bootstrap steps: gathered in one round-trip, refused early (unsupported OS, sudo
    password, terms), what fails applied."""
    steps = [*steps_for(ctx.options, req.provider), *req.extra_steps]
    plan = engine.gather(ctx, steps)
    preflight(plan, ctx)
    ctx.options = terms(plan, ctx, events)
    provider.remember_options(record, ctx.options)
    record.provider_data["facts"] = {k: plan.facts.get(k) for k in ("os_pretty", "arch", "home", "user")}
    try:
        return engine.apply(ctx, plan, jobs=req.jobs, on_event=events.step, abort=ctx.transport.close)
    except Exception as e:
        partial = getattr(e, "reports", None)
        if partial:
            record.steps = step_records(reports + partial)
            store.save(record)
            e.data = _data(record, reports + partial, ctx, t_total, extra)  # type: ignore[attr-defined]
        raise


def _check_ready(record: Record, provider: Any, ctx: StepContext, store: Store, events: Events,
                 reports: list[engine.StepReport], t_total: float, extra: dict[str, Any]) -> None:
    """A ready box: which conda it has, doctor's box checks (one batched round-trip: nothing is
    installed, a problem is reported with its fix), then the smoke test. Appends to ``reports``."""
    ctx.options = _found_dist(ctx.options, ctx.transport, events, provider.box_noun)
    record.options["python_dist"] = ctx.options["python_dist"]
    doctor_rep, report = _doctor(ctx, provider, events)
    reports.append(doctor_rep)
    extra["doctor"] = {"summary": report.counts(), "problems": [c.as_dict() for c in report.problems],
                       "warnings": [c.as_dict() for c in report.checks if c.status == "warn"]}
    if doctor_rep.status == engine.FAILED:
        smoke_rep = engine.StepReport("smoke", "smoke test", engine.SKIPPED, 0.0, "doctor found problems first")
        events.step("done", "smoke", report=smoke_rep)
        reports.append(smoke_rep)
        record.steps = step_records(reports)
        store.save(record)
        err = StepFailed(doctor_rep.message, hint=doctor_rep.hint)
        err.data = _data(record, reports, ctx, t_total, extra)  # type: ignore[attr-defined]
        raise err
    ctx.facts = report.facts
    record.provider_data["facts"] = {k: report.facts.get(k) for k in ("os_pretty", "arch", "home", "user")}
    try:
        reports.append(_smoke(ctx, report, events))
    except Exception as e:
        partial = engine.StepReport("smoke", "smoke test", engine.FAILED, 0.0, getattr(e, "message", str(e)))
        record.steps = step_records([*reports, partial])
        store.save(record)
        e.data = _data(record, [*reports, partial], ctx, t_total, extra)  # type: ignore[attr-defined]
        raise


def _unreachable(record: Record, reports: list[engine.StepReport], prov: Provisioned, store: Store,
                 events: Events, t_total: float, extra: dict[str, Any]) -> dict[str, Any]:
    """The box exists but cannot be reached over SSH from here (``prov.unreachable`` says why):
    the rest is skipped, the provider's links are the way in."""
    skipped = [engine.StepReport(s, t, engine.SKIPPED, 0.0, prov.unreachable or "not reachable over SSH")
               for s, t in READY_BOX_STEPS]
    for r in skipped:
        events.step("done", r.id, report=r)
    reports = [*reports, *skipped]
    record.steps = step_records(reports)
    store.save(record)
    return _data(record, reports, None, t_total, extra, ssh=False)


def _found_dist(opts: Resolved, transport: Any, events: Events, noun: str) -> Resolved:
    """Which conda the ready box has, unless --python-dist (or the config) says."""
    if opts.sources.get("python_dist") != "default":
        return opts
    res = transport.run(["sh", "-c", 'for d in anaconda3 miniconda3 miniforge3; do '
                         '[ -x "$HOME/$d/bin/conda" ] && echo "$d"; done; true'])
    found = [DISTS[x] for x in res.stdout.split() if x in DISTS]
    if not found or found[0] == opts["python_dist"]:
        return opts
    events.progress(f"{noun} has {found[0]}")
    values, sources = dict(opts.values), dict(opts.sources)
    values["python_dist"], sources["python_dist"] = found[0], f"found in {noun}"
    return Resolved(values=values, sources=sources)


def _doctor(ctx: StepContext, provider: Any, events: Events) -> tuple[engine.StepReport, Any]:
    """`mlops-env doctor NAME`'s box checks over our connection: one batched round-trip."""
    from mlops_env import doctor

    t0 = time.monotonic()
    events.step("start", "doctor", title="doctor", message="")
    rec, ep, transport = ctx.record, ctx.endpoint, ctx.transport
    target = doctor.Target("workstation", provider.describe(rec), rec, ep,
                           f"mlops-env doctor {rec.name} --fix", connect=lambda: transport)
    report = doctor.diagnose(target, ctx.options, doctor.BOX_CATEGORIES, ctx.paths, keep_transport=True)
    counts = report.counts()
    problems = report.problems
    if problems:
        listed = "; ".join(f"{c.id}: {c.message}" for c in problems[:4]) + (" ..." if len(problems) > 4 else "")
        first_hint = next((c.hint for c in problems if c.hint), None)
        rep = engine.StepReport(
            "doctor", "doctor", engine.FAILED, time.monotonic() - t0,
            f"doctor found {len(problems)} problem{'s' if len(problems) != 1 else ''} in {provider.box_noun}: {listed}",
            hint=(f"{first_hint}; " if first_hint else "") + provider.setup_hint(rec))
    else:
        rep = engine.StepReport("doctor", "doctor", engine.UNCHANGED, time.monotonic() - t0,
                                f"{counts['ok']} checks ok" + (f", {counts['warn']} warnings" if counts["warn"] else "")
                                + f" ({report.facts.os_label or provider.made_by})")
    events.step("done", "doctor", report=rep)
    return rep, report


def _smoke(ctx: StepContext, report: Any, events: Events) -> engine.StepReport:
    """The smoke test on a ready box: skipped when doctor's check says it already passed."""
    from mlops_env.steps.builtin import CondaStep, SmokeStep

    step = SmokeStep(CondaStep())
    if ctx.options["smoke_test"] == "off":
        rep = engine.StepReport("smoke", "smoke test", engine.SKIPPED, 0.0, "--smoke-test off")
        events.step("done", "smoke", report=rep)
        return rep
    t0 = time.monotonic()
    events.step("start", "smoke", title=step.title, message="")
    check = report.step_results.get("smoke")
    if check is not None and check.ok:
        rep = engine.StepReport("smoke", step.title, engine.UNCHANGED, time.monotonic() - t0, check.message)
    else:
        try:
            step.apply(ctx)
        except Exception as e:
            events.step("done", "smoke", report=engine.StepReport("smoke", step.title, engine.FAILED,
                                                                  time.monotonic() - t0, getattr(e, "message", str(e))))
            raise
        d = (ctx.data.get("smoke") or {}).get("data") or {}
        msg = (f"smoke test passed ({step.key(ctx)}): RMSE train {d['rmse_train']:.3f}, validation {d['rmse_val']:.3f}"
               if "rmse_train" in d and "rmse_val" in d else f"smoke test passed ({step.key(ctx)})")
        rep = engine.StepReport("smoke", step.title, engine.CHANGED, time.monotonic() - t0, msg)
    events.step("done", "smoke", report=rep)
    return rep


def finish(record: Record, reports: list[engine.StepReport], ctx: StepContext, store: Store,
           events: Events) -> list[str]:
    """The end of a successful ``up``: the record is ready with its steps, the smoke report is
    kept, and the user's ssh settings that override ours are warned about (returned)."""
    record.steps = step_records(reports)
    record.phase = "ready"
    store.save(record)
    _save_smoke_report(ctx.paths, record, ctx.data.get("smoke"))
    warnings = _override_warnings(SshConfigStep().entry(ctx), ctx.paths)
    for w in warnings:
        events.warn(w)
    return warnings


def step_records(reports: list[engine.StepReport]) -> dict[str, dict[str, Any]]:
    """The record's steps: each report with its place in the run (``order``; the state file
    sorts keys) and when it was last checked (``checked_at``, epoch seconds)."""
    now = time.time()
    return {r.id: {**r.as_dict(), "order": i, "checked_at": now} for i, r in enumerate(reports)}


def smoke_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The smoke test's numbers for ``up``'s data, from ridetrain's envelope."""
    if report and isinstance(report.get("data"), dict):
        d = report["data"]
        return {k: d.get(k) for k in ("rmse_train", "rmse_val", "train_rows", "val_rows",
                                      "synthetic", "features", "seconds", "serve") if k in d}
    return None


def run_local_step(step: Step, ctx: StepContext, events: Events) -> engine.StepReport:
    """Check a local step (the SSH config), apply it when needed, report: for the paths that
    run it outside the engine (``--provision-only``, ``up codespace`` without a box check)."""
    t0 = time.monotonic()
    events.step("start", step.id, title=step.title, message="")
    check = step.check_local(ctx)
    if not check.ok:
        step.apply(ctx)
    rep = engine.StepReport(step.id, step.title, engine.UNCHANGED if check.ok else engine.CHANGED,
                            time.monotonic() - t0, step.check_local(ctx).message)
    events.step("done", step.id, report=rep)
    return rep


def _terms_up_front(record: Record, opts: Resolved, events: Events) -> Resolved:
    """The terms question for a box whose conda is not known to be installed, asked before the
    box is made or started (the terms depend on the distribution only). A box that had conda
    is checked again after the facts are gathered (``_terms``)."""
    from mlops_env.installers import DIST_LABELS, table

    if opts["accept_anaconda_tos"] or not opts.get("python_dist"):
        return opts
    if (record.steps.get("conda") or {}).get("status") in (engine.CHANGED, engine.UNCHANGED):
        return opts
    entry = table().get(opts["python_dist"]) or {}
    if not entry.get("terms_of_service"):
        return opts
    label = DIST_LABELS.get(opts["python_dist"], opts["python_dist"])
    if not events.confirm_terms(terms_question(label)):
        raise terms_refused(label)
    return accepted(opts)


def _data(record: Record, reports: list[engine.StepReport], ctx: StepContext | None, t_total: float,
          extra: dict[str, Any] | None = None, *, ssh: bool = True) -> dict[str, Any]:
    """``up``'s result. ``extra``: what the provider adds (``Provisioned.summary``) and a ready
    box's doctor summary; ``ssh`` False: no SSH alias (the box is not reachable from here)."""
    ep = record.endpoint
    data: dict[str, Any] = {
        "name": record.name,
        "provider": record.provider,
        "alias": record.alias if ssh else None,
        "host": ep.host if ep else None,
        "port": ep.port if ep else None,
        "user": ep.user if ep else None,
        "phase": record.phase,
        "steps": [r.as_dict() for r in reports],
        "ssh_command": f"ssh {record.alias}" if ssh else None,
        "code_command": code_command(record) if ssh else None,
        "seconds": round(time.monotonic() - t_total, 3),
        **(extra or {}),
    }
    if "cost" not in data and record.provider_data.get("cost"):
        data["cost"] = record.provider_data["cost"]
    smoke = smoke_summary(ctx.data.get("smoke")) if ctx is not None else None
    if smoke:
        data["smoke"] = smoke
    if not ssh:
        data["ssh_connections"], data["ssh_round_trips"] = 0, 0
    return data


def code_command(record: Record) -> str:
    # A provider may name the folder to open (a codespace: its repository under /workspaces).
    from mlops_env.steps.clone import clone_dir

    home = record.provider_data.get("workdir") or (record.provider_data.get("facts") or {}).get("home") or (
        f"/home/{record.endpoint.user}" if record.endpoint else "/")
    repo = clone_dir(record.options) if not record.provider_data.get("workdir") else None
    if repo:  # `up --clone`: open the course repository
        home = f"{home.rstrip('/')}/{repo}"
    return f"code --remote ssh-remote+{record.alias} {home}"


def _save_smoke_report(paths: Paths, record: Record, report: dict[str, Any] | None) -> None:
    if not report:
        return
    d = paths.reports_dir / record.name
    ensure_private_dir(d)
    atomic_write(d / "smoke-report.json", json.dumps(report, indent=2) + "\n", mode=0o600)


def _override_warnings(entry: sshconfig.HostEntry, paths: Paths) -> list[str]:
    from mlops_env.ssh import overrides

    try:
        rep = overrides.find_overrides(entry, paths=paths)
    except Exception as e:  # noqa: BLE001 - a warning helper must never fail `up`
        log.debug("override check failed: %s", e)
        return []
    return list(rep.warnings)


def _dry_run(req: UpRequest, record: Record, existing: Record | None, provider: Any,
             paths: Paths) -> dict[str, Any]:
    """What `up` would do, changing nothing: no container, no key, no state, no pin."""
    opts = req.options
    lines = provider.plan(existing if existing else record, opts)
    if not provider.installs:  # a ready box: the provider says what its steps would do
        out = [engine.StepReport(sid, sid, engine.SKIPPED, 0.0, f"not checked: {provider.box_noun} is not reached "
                                 "in a dry run", would_change=would).as_dict()
               for sid, would in provider.ready_steps_plan(record, opts)]
        return {"name": req.name, "provider": req.provider, "alias": record.alias, "dry_run": True,
                "provider_plan": lines, "steps": out,
                "options": {k: {"value": opts.values[k], "source": opts.sources[k]} for k in provider.up_options
                            if k in opts.values}}
    steps_out: list[dict[str, Any]] = []
    steps = steps_for(opts, req.provider)
    checked = False
    ep = existing.endpoint if existing else None
    if existing and existing.phase in ("provisioned", "ready") and ep and knownhosts.lookup(paths, ep.host_key_alias):
        try:
            transport = connect(paths, ep, min(opts["ssh_timeout"], 10))
        except Exception as e:  # noqa: BLE001 - dry-run reports, never fails on reachability
            lines.append(f"(cannot check the box now: {getattr(e, 'message', e)})")
        else:
            try:
                ctx = StepContext(transport=transport, facts=Facts({}), options=opts, record=existing,
                                  paths=paths, endpoint=ep)
                plan = engine.gather(ctx, steps)
                for s in steps:
                    c = plan.checks[s.id]
                    steps_out.append(engine.StepReport(
                        s.id, s.title, engine.SKIPPED, 0.0, c.message,
                        would_change=None if c.ok else s.describe_apply(ctx)).as_dict())
                checked = True
            finally:
                transport.close()
    if not checked:
        for s in steps:
            steps_out.append(engine.StepReport(s.id, s.title, engine.SKIPPED, 0.0, "not checked: the box is not up yet",
                                               would_change=_describe_unchecked(s, opts)).as_dict())
    return {
        "name": req.name, "provider": req.provider, "alias": record.alias, "dry_run": True,
        "host": ep.host if ep else None, "port": ep.port if ep else None, "user": ep.user if ep else None,
        "provider_plan": lines,
        "steps": steps_out,
        "options": {k: {"value": opts.values[k], "source": opts.sources[k]} for k in opts.values
                    if applies(k, req.provider)},
    }


def _describe_unchecked(step: Step, opts: Resolved) -> str:
    dist = opts["python_dist"]
    return {
        "base": "install base packages (curl, git, ca-certificates, bzip2) if missing",
        "conda": f"install {dist} (pinned installer, sha256-verified) and run conda init bash",
        "docker": f"install Docker ({opts['docker_source']} packages) + compose; add the user to the docker group",
        "smoke": f"train the ride-duration model ({opts['smoke_test']} data)",
        "clone": f"git clone {opts.get('clone')} (only if the folder is absent)",
        "ssh-config": "write the Host block and the Include line in ~/.ssh/config",
    }.get(step.id, step.title)
