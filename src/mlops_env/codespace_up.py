"""``up codespace``: the codespace exists and answers, then the SSH alias, then ``mlops-env doctor``
and the smoke test inside it, over ONE SSH connection through gh's tunnel.

    provision  (providers/codespace/provider.py) find / create / start, wait until Available; gh: SSH details
    host key   pinned from the first contact through the GitHub-authenticated tunnel
    ssh-config the Host block (ProxyCommand through gh, pinned key) + the Include line
    doctor     the box checks of `mlops-env doctor` (system, python, docker, network, tools): one
               batched round-trip. The dev container installed conda and Docker, so nothing is
               installed here: a problem is reported (exit 1) with its fix, not repaired.
    smoke      the course's model trained in the codespace's conda (skipped when it already
               passed with the same distribution and data)

Without the GitHub CLI the codespace is made and its browser / VS Code URLs are printed; there
is no SSH alias, and doctor and the smoke test do not run from here (the dev container's own
post-create runs them inside). State is saved after each phase, as in ``pipeline.up``. This
module never prints.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mlops_env import engine
from mlops_env.checks import Facts
from mlops_env.config import Resolved
from mlops_env.errors import StepFailed, UsageError
from mlops_env.paths import Paths
from mlops_env.pipeline import Events, SshConfigStep, UpRequest, run_local_step
from mlops_env.ssh import config as sshconfig
from mlops_env.ssh import knownhosts
from mlops_env.state import Record, Store, validate_name
from mlops_env.steps import StepContext

log = logging.getLogger(__name__)

BOX_CATEGORIES = ("system", "python", "docker", "network", "tools")
# What `up codespace` uses of the shared options (the rest install software: not here).
OPTIONS = ("repo", "branch", "machine", "idle_timeout", "retention", "python_dist", "smoke_test", "forward",
           "ssh_timeout")
DISTS = {"anaconda3": "anaconda", "miniconda3": "miniconda", "miniforge3": "miniforge"}


def up(req: UpRequest, paths: Paths, events: Events) -> dict[str, Any]:
    from mlops_env.providers.codespace.provider import CodespaceProvider

    validate_name(req.name)
    store = Store(paths)
    provider = CodespaceProvider(paths)
    provider.confirm, provider.warn = events.confirm, events.warn
    if req.dry_run:  # read-only: no lock, no state, nothing created
        record = store.find(req.name)
        if record is not None:
            _check_provider(record)
        return _dry_run(req, record or Record(name=req.name, provider="codespace",
                                              alias=sshconfig.alias_for(req.name)), provider)
    with store.lock(req.name):
        record = store.find(req.name)
        if record is not None:
            _check_provider(record)
        else:
            record = Record(name=req.name, provider="codespace", alias=sshconfig.alias_for(req.name))
        return _up(req, record, provider, paths, store, events)


def _check_provider(record: Record) -> None:
    if record.provider != "codespace":
        raise UsageError(f"workstation {record.name!r} is a {record.provider} workstation",
                         hint=f"use `mlops-env up {record.provider} {record.name}`, or pick another name",
                         code="provider-mismatch")


def _up(req: UpRequest, record: Record, provider: Any, paths: Paths, store: Store, events: Events) -> dict[str, Any]:
    from mlops_env.providers.codespace.provider import (
        STORAGE_NOTE,
        cost_of,
        describe_cost,
        describe_retention,
    )
    from mlops_env.ssh.keys import ensure_keypair

    t_total = time.monotonic()
    opts = req.options
    saved_options = dict(record.options)
    record.options = {k: v for k, v in opts.values.items() if k in OPTIONS}
    for k in ("repo", "branch"):  # what the record already says wins over "not given"
        if record.options.get(k) is None and saved_options.get(k) is not None:
            record.options[k] = saved_options[k]
    sshconfig.check_include(paths)  # refuse an unwritable ~/.ssh/config before making anything
    key = ensure_keypair(paths)
    known = store.exists(record.name)
    if known:
        store.save(record)

    # 1. the codespace exists, is Available, and (with gh) we know how to reach it
    t0 = time.monotonic()
    events.step("start", "provision", title="codespace", message="")
    # With a key already pinned for this codespace, the connection below checks it (one trip
    # through gh's tunnel); --provision-only makes no connection, so it reads the key here.
    # A new workstation's record is saved by the provider once a codespace exists or is being
    # created; a first run refused before that (bad repository, no token, GitHub said no)
    # leaves no record behind.
    try:
        prov = provider.provision(record, opts, key, events.progress, probe=req.provision_only)
    except BaseException:
        pd = record.provider_data
        if not known and not pd.get("codespace") and not pd.get("creating"):
            store.delete(record.name)
        raise
    for n in prov.notices:
        events.warn(n)
    record.endpoint = prov.endpoint
    if record.phase == "new":
        record.phase = "provisioned"
    store.save(record)
    reports = [engine.StepReport("provision", "codespace",
                                 engine.UNCHANGED if prov.action == "unchanged" else engine.CHANGED,
                                 time.monotonic() - t0, prov.detail)]
    events.step("done", "provision", report=reports[0])
    cs = prov.codespace
    summary: dict[str, Any] = {
        "codespace": {"name": cs.get("name"), "display_name": cs.get("display_name"),
                      "repo": (cs.get("repository") or {}).get("full_name"),
                      "ref": (cs.get("git_status") or {}).get("ref"), "state": cs.get("state"),
                      "machine": (cs.get("machine") or {}).get("name"), "action": prov.action,
                      "idle_timeout_minutes": cs.get("idle_timeout_minutes"),
                      "retention_period_minutes": cs.get("retention_period_minutes"),
                      "retention_expires_at": cs.get("retention_expires_at")},
        "links": provider.links(record), "notices": list(prov.notices),
        "lifetime": describe_retention(cs), "storage": STORAGE_NOTE.replace("NAME", record.name),
    }
    cost = cost_of(cs.get("machine"))
    summary["cost"] = {**cost, "summary": describe_cost(cost)}
    ep = prov.endpoint
    if ep is None:  # no gh: the codespace is there, the browser and VS Code URLs are the way in
        steps_skipped = [engine.StepReport(s, t, engine.SKIPPED, 0.0, "the GitHub CLI (gh) is not installed")
                         for s, t in (("ssh-config", "SSH config"), ("doctor", "doctor"), ("smoke", "smoke test"))]
        for r in steps_skipped:
            events.step("done", r.id, report=r)
        reports += steps_skipped
        record.steps = {r.id: r.as_dict() for r in reports}
        store.save(record)
        return _data(record, reports, paths, t_total, summary, ssh=False)

    # 2. the host key: read through the GitHub-authenticated tunnel, pinned (see providers/codespace/provider.py)
    assert prov.host_key is not None
    pinned = knownhosts.lookup(paths, ep.host_key_alias)
    if prov.replace_pin or not pinned:
        knownhosts.pin(paths, ep.host_key_alias, prov.host_key, replace=True)

    # 3. the SSH alias (local, cheap): `ssh mlops-NAME` works even if a later check fails
    ctx = StepContext(transport=None, facts=Facts({}), options=opts, record=record,  # type: ignore[arg-type]
                      paths=paths, endpoint=ep,
                      on_line=lambda sid, line: events.step("line", sid, line=line))
    reports.append(run_local_step(SshConfigStep(), ctx, events))
    record.steps = {r.id: r.as_dict() for r in reports}
    store.save(record)
    if req.provision_only:
        data = _data(record, reports, paths, t_total, summary, ssh=True)
        data["provision_only"] = True
        return data

    # 4. one connection: doctor's checks in one round-trip, then the smoke test
    from mlops_env.errors import HostKeyError
    from mlops_env.pipeline import connect, finish, smoke_summary
    from mlops_env.providers.codespace.provider import host_key_changed

    events.progress(f"connecting to {ep.user}@{ep.host} through gh")
    try:
        transport = connect(paths, ep, max(float(opts["ssh_timeout"]), 30.0))
    except HostKeyError as e:
        if e.code == "host-key-changed":
            raise host_key_changed(paths, record.name, ep.host) from e
        raise
    try:
        opts = ctx.options = _with_dist(opts, transport, events)
        record.options["python_dist"] = opts["python_dist"]
        doctor_rep, report = _doctor(ctx, transport, events)
        reports.append(doctor_rep)
        summary["doctor"] = {"summary": report.counts(),
                             "problems": [c.as_dict() for c in report.problems],
                             "warnings": [c.as_dict() for c in report.checks if c.status == "warn"]}
        if doctor_rep.status == engine.FAILED:
            smoke_rep = engine.StepReport("smoke", "smoke test", engine.SKIPPED, 0.0, "doctor found problems first")
            events.step("done", "smoke", report=smoke_rep)
            reports.append(smoke_rep)
            record.steps = {r.id: r.as_dict() for r in reports}
            store.save(record)
            err = StepFailed(doctor_rep.message, hint=doctor_rep.hint)
            err.data = _data(record, reports, paths, t_total, summary, ssh=True)  # type: ignore[attr-defined]
            raise err
        ctx.transport, ctx.facts = transport, report.facts
        record.provider_data["facts"] = {k: report.facts.get(k) for k in ("os_pretty", "arch", "home", "user")}
        try:
            reports.append(_smoke(ctx, report, events))
        except Exception as e:
            partial = engine.StepReport("smoke", "smoke test", engine.FAILED, 0.0, getattr(e, "message", str(e)))
            record.steps = {r.id: r.as_dict() for r in [*reports, partial]}
            store.save(record)
            e.data = _data(record, [*reports, partial], paths, t_total, summary, ssh=True)  # type: ignore[attr-defined]
            raise
        round_trips, connects = transport.round_trips, getattr(transport, "connects", 1)
    finally:
        transport.close()
    warnings = finish(record, reports, ctx, store, events)
    data = _data(record, reports, paths, t_total, summary, ssh=True)
    smoke = smoke_summary(ctx.data.get("smoke"))
    if smoke:
        data["smoke"] = smoke
    data["warnings"] = warnings
    data["ssh_round_trips"], data["ssh_connections"] = round_trips, connects
    return data


def _with_dist(opts: Resolved, transport: Any, events: Events) -> Resolved:
    """Which conda the dev container installed, unless --python-dist (or the config) says."""
    if opts.sources.get("python_dist") != "default":
        return opts
    res = transport.run(["sh", "-c", 'for d in anaconda3 miniconda3 miniforge3; do '
                         '[ -x "$HOME/$d/bin/conda" ] && echo "$d"; done; true'])
    found = [DISTS[x] for x in res.stdout.split() if x in DISTS]
    if not found or found[0] == opts["python_dist"]:
        return opts
    events.progress(f"the codespace has {found[0]}")
    values, sources = dict(opts.values), dict(opts.sources)
    values["python_dist"], sources["python_dist"] = found[0], "found in the codespace"
    return Resolved(values=values, sources=sources)


def _doctor(ctx: StepContext, transport: Any, events: Events) -> tuple[engine.StepReport, Any]:
    """`mlops-env doctor NAME`'s box checks over our connection: one batched round-trip."""
    from mlops_env import doctor

    t0 = time.monotonic()
    events.step("start", "doctor", title="doctor", message="")
    rec, ep = ctx.record, ctx.endpoint
    target = doctor.Target("workstation", f"codespace {rec.provider_data.get('codespace')} ({rec.name})", rec, ep,
                           f"mlops-env doctor {rec.name} --fix", connect=lambda: transport)
    report = doctor.diagnose(target, ctx.options, BOX_CATEGORIES, ctx.paths, keep_transport=True)
    counts = report.counts()
    problems = report.problems
    if problems:
        listed = "; ".join(f"{c.id}: {c.message}" for c in problems[:4]) + (" ..." if len(problems) > 4 else "")
        first_hint = next((c.hint for c in problems if c.hint), None)
        rep = engine.StepReport(
            "doctor", "doctor", engine.FAILED, time.monotonic() - t0,
            f"doctor found {len(problems)} problem{'s' if len(problems) != 1 else ''} in the codespace: {listed}",
            hint=(f"{first_hint}; " if first_hint else "") + "the dev container sets these up (onCreate/postCreate): if it "
            f"is still running, wait and check again with `mlops-env doctor {rec.name}` (its log: `gh codespace logs -c "
            f"{rec.provider_data.get('codespace')}`); otherwise fix the repository's dev container "
            "(`mlops-env devcontainer init`) and rebuild the codespace")
    else:
        rep = engine.StepReport("doctor", "doctor", engine.UNCHANGED, time.monotonic() - t0,
                                f"{counts['ok']} checks ok" + (f", {counts['warn']} warnings" if counts["warn"] else "")
                                + f" ({report.facts.os_label or 'the dev container'})")
    events.step("done", "doctor", report=rep)
    return rep, report


def _smoke(ctx: StepContext, report: Any, events: Events) -> engine.StepReport:
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


def _data(record: Record, reports: list[engine.StepReport], paths: Paths, t_total: float,
          summary: dict[str, Any], *, ssh: bool) -> dict[str, Any]:
    from mlops_env.pipeline import code_command

    ep = record.endpoint
    data: dict[str, Any] = {
        "name": record.name, "provider": "codespace", "alias": record.alias if ssh else None,
        "host": ep.host if ep else None, "port": ep.port if ep else None, "user": ep.user if ep else None,
        "phase": record.phase, "steps": [r.as_dict() for r in reports],
        "ssh_command": f"ssh {record.alias}" if ssh else None,
        "code_command": code_command(record) if ssh else None,
        "seconds": round(time.monotonic() - t_total, 3),
        **summary,
    }
    if not ssh:
        data["ssh_connections"], data["ssh_round_trips"] = 0, 0
    return data


def _dry_run(req: UpRequest, record: Record, provider: Any) -> dict[str, Any]:
    from mlops_env.providers.codespace import ghcli

    opts = req.options
    lines = provider.plan(record, opts)
    has_gh = ghcli.find_gh() is not None
    no_gh = "nothing: the GitHub CLI (gh) is not installed"
    steps = [
        ("ssh-config", "write Host " + record.alias + " (ProxyCommand through gh, pinned host key) and the "
         "Include line in ~/.ssh/config" if has_gh else no_gh),
        ("doctor", "run mlops-env doctor's checks in the codespace (system, python, docker, network, tools)"
         if has_gh else no_gh),
        ("smoke", (f"train the ride-duration model in the codespace ({opts['smoke_test']} data), unless it passed "
                   "already" if opts["smoke_test"] != "off" else "nothing: --smoke-test off") if has_gh else no_gh),
    ]
    out = [engine.StepReport(sid, sid, engine.SKIPPED, 0.0, "not checked: the codespace is not reached in a dry run",
                             would_change=would).as_dict() for sid, would in steps]
    return {"name": req.name, "provider": "codespace", "alias": record.alias, "dry_run": True,
            "provider_plan": lines, "steps": out,
            "options": {k: {"value": opts.values[k], "source": opts.sources[k]} for k in OPTIONS if k in opts.values}}


def print_summary(ui: Any, data: dict[str, Any]) -> None:
    """The human summary of ``up codespace`` (stdout)."""
    if ui.json_mode:
        return
    from rich.markup import escape

    c = ui.out
    cs = data.get("codespace") or {}
    changed = sum(1 for s in data["steps"] if s["status"] == "changed")
    if data.get("ssh_command") is None:
        verdict = "available (no SSH alias: the GitHub CLI is not installed)"
    elif data.get("provision_only"):
        verdict = "available (--provision-only: no doctor, no smoke test)"
    else:
        verdict = "ready, nothing to change" if changed == 0 else f"ready ({changed} steps changed)"
    c.print(f"\n[bold green]{escape(data['name'])}[/bold green] is {verdict} in {data['seconds']:.1f}s")
    c.print(f"  codespace    {cs.get('name')} ({cs.get('display_name')}), {cs.get('repo')}@{cs.get('ref')}, "
            f"{cs.get('machine')}", markup=False)
    if data.get("smoke"):
        s = data["smoke"]
        kind = "synthetic sample" if s.get("synthetic") else "course data"
        c.print(f"  smoke test   RMSE train {s['rmse_train']:.3f}, validation {s['rmse_val']:.3f} "
                f"min ({kind}, {s['train_rows']:,} rows)", markup=False)
    if data.get("ssh_command"):
        c.print(f"  connect      {data['ssh_command']}", markup=False)
        c.print(f"  VS Code      {data['code_command']}", markup=False)
    links = data.get("links") or {}
    if links.get("browser"):
        c.print(f"  browser      {links['browser']}", markup=False)
    if links.get("vscode"):
        c.print(f"  VS Code URL  {links['vscode']} (GitHub Codespaces extension)", markup=False)
    if data.get("ssh_command"):
        c.print("  Jupyter      http://localhost:8888 (forwarded while `ssh` is connected)")
    cost = data.get("cost") or {}
    if cost.get("summary"):
        c.print(f"  cost         {cost['summary']}", markup=False)
    c.print(f"  lifetime     {data.get('lifetime')}", markup=False)
    c.print(f"  storage      {data.get('storage')}", markup=False)
    if ui.log_file:
        c.print(f"  log          {ui.log_file}", markup=False)
