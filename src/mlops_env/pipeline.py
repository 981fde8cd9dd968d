"""``up``: the one pipeline every provider plugs into.

    provider.ensure()  -> the box exists and we know how to reach it
    host key           -> pinned (trusted channel, or the user's confirmation)
    one SSH connection -> facts + every check in one round-trip
    steps              -> apply what is missing, independent steps side by side
    SSH config         -> `ssh <alias>` and VS Code Remote-SSH work

State is saved after each phase, so a run killed anywhere is finished by the next ``up``.
This module never prints: progress goes to the ``Events`` callbacks the CLI provides.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_env import engine, knownhosts, sshconfig
from mlops_env.config import Resolved, applies
from mlops_env.errors import HostKeyError, PrereqError, UsageError
from mlops_env.fsutil import atomic_write
from mlops_env.paths import Paths, ensure_private_dir
from mlops_env.providers import get_provider
from mlops_env.state import Endpoint, Record, Store, validate_name
from mlops_env.steps import CheckResult, Facts, Step, StepContext
from mlops_env.steps.builtin import workstation_steps

log = logging.getLogger(__name__)


class Declined(Exception):  # noqa: N818 - not an error: the user's answer
    """The user answered "no" to a question asked before anything was changed. The CLI turns
    it into exit 0 and "nothing changed" (not an error, and not 130, which means Ctrl-C)."""


@dataclass
class Events:
    """Callbacks the CLI renders. ``confirm(question) -> bool`` may raise when it cannot ask."""

    progress: Callable[[str], None] = lambda msg: None
    step: Callable[..., None] = lambda *a, **k: None
    confirm_host_key: Callable[[str], bool] = lambda question: False
    confirm_terms: Callable[[str], bool] = lambda question: False
    warn: Callable[[str], None] = lambda msg: None
    confirm: Callable[[str], bool] = lambda question: False  # a provider's question; honours --yes


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


class SshConfigStep(Step):
    """Local step: our Host block in the tool's ssh config, and the Include line on top of
    ``~/.ssh/config``."""

    id = "ssh-config"
    title = "SSH config"
    local = True

    def entry(self, ctx: StepContext) -> sshconfig.HostEntry:
        return ssh_entry(ctx.paths, ctx.record, ctx.endpoint, bool(ctx.options["forward"]))

    def check_local(self, ctx: StepContext) -> CheckResult:
        block = sshconfig.check_upsert_host(ctx.paths, self.entry(ctx))
        include = sshconfig.check_include(ctx.paths)
        if not block and include == "unchanged":
            return CheckResult("ok", f"`ssh {ctx.record.alias}` configured")
        todo = []
        if block:
            todo.append(f"write Host {ctx.record.alias} in {ctx.paths.ssh_config}")
        if include != "unchanged":
            todo.append(f"{include} the Include line in ~/.ssh/config")
        return CheckResult("fail", "; ".join(todo))

    def apply(self, ctx: StepContext) -> None:
        sshconfig.upsert_host(ctx.paths, self.entry(ctx))
        sshconfig.ensure_include(ctx.paths)

    def describe_apply(self, ctx: StepContext) -> str:
        return self.check_local(ctx).message


def _abs(path: str) -> Any:
    from pathlib import Path

    return Path(path).expanduser().absolute()


def ssh_entry(paths: Paths, record: Record, ep: Endpoint, forward: bool) -> sshconfig.HostEntry:
    return sshconfig.HostEntry(
        alias=record.alias, hostname=ep.host, port=ep.port, user=ep.user,
        identity_file=_abs(ep.identity_file), known_hosts_file=paths.known_hosts,
        host_key_alias=ep.host_key_alias,
        forwards=sshconfig.DEFAULT_FORWARDS if forward else (),
        # OpenSSH expands %-tokens in ProxyCommand: a literal % is written %%.
        extra_options=(("ProxyCommand", ep.proxy_command.replace("%", "%%")),) if ep.proxy_command else (),
    )


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


def connect(paths: Paths, ep: Endpoint, timeout: float) -> Any:
    """One SSH connection with the pinned host key (from the tool's known_hosts)."""
    from mlops_env.transport.ssh import SSHTransport

    pinned = knownhosts.lookup(paths, ep.host_key_alias)
    if not pinned:
        raise HostKeyError(f"no pinned host key for {ep.host_key_alias}",
                           hint="run `mlops-env up` for this workstation again to pin it")
    return SSHTransport(ep.host, ep.port, ep.user, ep.identity_file, pinned[0],
                        timeout=timeout, label=ep.host_key_alias, proxy_command=ep.proxy_command)


def establish_trust(paths: Paths, ep: Endpoint, fingerprint_opt: str | None, events: Events,
                    timeout: float) -> str:
    """First contact with a box we did not make: its host key must be confirmed (or match
    ``--host-key-fingerprint``) before anything is sent. Never trust-on-first-use."""
    from mlops_env.transport.ssh import fingerprint, probe_host_key

    ktype, kb64 = probe_host_key(ep.host, ep.port, timeout=timeout)
    fp = fingerprint(ktype, kb64)
    where = f"{ep.host}:{ep.port}"
    if fingerprint_opt:
        want = fingerprint_opt.strip()
        if not want.startswith("SHA256:"):
            want = "SHA256:" + want
        if want.rstrip("=") != fp:
            raise HostKeyError(
                f"{where} presents host key {fp}, not the fingerprint you passed ({want})",
                hint="this may be an attack, or a typo: on the box, `ssh-keygen -lf "
                "/etc/ssh/ssh_host_ed25519_key.pub` prints the right one",
                code="host-key-mismatch",
            )
    else:
        question = (f"First contact with {where}: it presents the {ktype} host key\n  {fp}\n"
                    "Is this the box's key? (compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on it)")
        if not events.confirm_host_key(question):
            raise HostKeyError(
                f"the host key of {where} ({fp}) was not confirmed",
                hint="check it on the box (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then "
                f"re-run with --host-key-fingerprint {fp}",
                code="host-key-unconfirmed",
            )
    line = f"{ktype} {kb64}"
    knownhosts.pin(paths, ep.host_key_alias, line)
    return line


def up(req: UpRequest, paths: Paths, events: Events) -> dict[str, Any]:
    validate_name(req.name)
    store = Store(paths)
    if req.dry_run:  # read-only: no lock file, no state dir, nothing written
        record = store.find(req.name)
        if record is None:
            fresh = Record(name=req.name, provider=req.provider, alias=sshconfig.alias_for(req.name))
            fresh.provider_data.update(req.provider_data)
            return _dry_run(req, fresh, None, get_provider(req.provider, paths), paths)
        _check_provider(record, req)
        return _dry_run(req, record, record, get_provider(req.provider, paths), paths)
    with store.lock(req.name):
        record = store.find(req.name)
        if record is not None:
            _check_provider(record, req)
        else:
            record = Record(name=req.name, provider=req.provider, alias=sshconfig.alias_for(req.name))
        record.provider_data.update(req.provider_data)
        return _up(req, record, get_provider(req.provider, paths), paths, store, events)


def _check_provider(record: Record, req: UpRequest) -> None:
    if record.provider != req.provider:
        raise UsageError(
            f"workstation {req.name!r} is a {record.provider} workstation",
            hint=f"use `mlops-env up {record.provider} {req.name}`, or pick another name",
            code="provider-mismatch",
        )


def _up(req: UpRequest, record: Record, provider: Any, paths: Paths, store: Store,
        events: Events) -> dict[str, Any]:
    from mlops_env.keys import ensure_keypair

    t_total = time.monotonic()
    # Every question comes before the first change: a "no" leaves nothing behind.
    opts = req.options if req.provision_only else _terms_up_front(record, req.options, events)
    _remember_options(record, opts)
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
    events.step("start", "provision", title=f"{req.provider} box", message="")
    provider.confirm, provider.warn, provider.created = events.confirm, events.warn, created
    prov = provider.ensure(record, opts, key, events.progress)
    record.endpoint = prov.endpoint
    record.provider_data.update(prov.provider_data)
    if record.phase == "new":
        record.phase = "provisioned"
    if known or store.exists(record.name) or prov.action != "unchanged":
        store.save(record)
    reports = [engine.StepReport("provision", f"{req.provider} box",
                                 engine.CHANGED if prov.action != "unchanged" else engine.UNCHANGED,
                                 time.monotonic() - t0, prov.detail)]
    events.step("done", "provision", report=reports[0])

    # 2. the host key is pinned
    ep = prov.endpoint
    pinned = knownhosts.lookup(paths, ep.host_key_alias)
    if prov.host_key is not None:
        # Learned through a trusted channel (Docker API). A new box gets a new pin; an existing
        # box keeps its pin, and a mismatch is refused by the transport below.
        if prov.action == "created" or not pinned:
            knownhosts.pin(paths, ep.host_key_alias, prov.host_key, replace=True)
    elif not pinned:
        establish_trust(paths, ep, req.host_key_fingerprint, events, opts["ssh_timeout"])
    store.save(record)  # the pin exists now: `down` removes it
    if req.provision_only:
        return _provision_only(req, record, reports, paths, store, events, t_total)

    # 3. one connection, facts + all checks in one round-trip
    events.progress(f"connecting to {ep.user}@{ep.host}:{ep.port}")
    transport = connect(paths, ep, max(opts["ssh_timeout"], prov.ready_timeout or 0))
    if hasattr(provider, "after_connect"):  # EC2: retire the host key that came in user data
        transport = provider.after_connect(record, transport, events.progress)
    try:
        steps = [*steps_for(opts, req.provider), *req.extra_steps]
        ctx = StepContext(transport=transport, facts=Facts({}), options=opts, record=record,
                          paths=paths, endpoint=ep,
                          on_line=lambda sid, line: events.step("line", sid, line=line))
        plan = engine.gather(ctx, steps)
        _preflight(plan, ctx)
        ctx.options = opts = _terms(plan, ctx, events)
        _remember_options(record, opts)
        record.provider_data["facts"] = {k: plan.facts.get(k) for k in ("os_pretty", "arch", "home", "user")}
        try:
            step_reports = engine.apply(ctx, plan, jobs=req.jobs, on_event=events.step,
                                        abort=transport.close)
        except Exception as e:
            partial = getattr(e, "reports", None)
            if partial:
                record.steps = step_records(reports + partial)
                store.save(record)
                e.data = _data(record, reports + partial, ctx, paths, t_total)  # type: ignore[attr-defined]
            raise
        round_trips = transport.round_trips
        connects = getattr(transport, "connects", 1)
    finally:
        transport.close()
    reports += step_reports
    warnings = finish(record, reports, ctx, store, events)
    data = _data(record, reports, ctx, paths, t_total)
    data["warnings"] = warnings
    data["ssh_round_trips"] = round_trips
    data["ssh_connections"] = connects
    return data


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


def _provision_only(req: UpRequest, record: Record, reports: list[engine.StepReport], paths: Paths,
                    store: Store, events: Events, t_total: float) -> dict[str, Any]:
    """``--provision-only``: the box exists and its host key is pinned; write the SSH config
    (the local ssh-config step alone) and stop: no connection, no bootstrap, no smoke test."""
    assert record.endpoint is not None
    step = SshConfigStep()
    ctx = StepContext(transport=None, facts=Facts({}), options=req.options,  # type: ignore[arg-type]
                      record=record, paths=paths, endpoint=record.endpoint)
    rep = run_local_step(step, ctx, events)
    reports = [*reports, rep]
    record.steps.update(step_records(reports))
    store.save(record)
    data = _data(record, reports, ctx, paths, t_total)
    data["provision_only"] = True
    return data


def _preflight(plan: engine.Plan, ctx: StepContext) -> None:
    """Refuse before changing anything: unsupported OS, or sudo that asks for a password."""
    from mlops_env.errors import UnsupportedError

    base = plan.checks.get("base")
    if base is not None and base.exit_code == 3:
        raise UnsupportedError(base.message, hint=base.hint, code="unsupported-os")
    pending_sudo = [s.id for s in plan.pending() if s.sudo]
    if pending_sudo and plan.facts.sudo not in ("root", "ok"):
        what = "asks for a password" if plan.facts.sudo == "password" else "is not installed"
        raise UnsupportedError(
            f"sudo on {ctx.transport.where} {what}; the steps {', '.join(pending_sudo)} need root",
            hint=f"allow passwordless sudo for {plan.facts.get('user')} "
            f"(echo '{plan.facts.get('user')} ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/mlops-env), "
            "or connect as root",
            code="sudo-password",
        )


def _remember_options(record: Record, opts: Resolved) -> None:
    """The options this workstation was made with: the defaults of its later runs (with their
    sources, so a built-in default is not mistaken for a choice)."""
    record.options = dict(opts.values)
    record.option_sources = dict(opts.sources)


def _terms_question(label: str) -> str:
    return (f"{label} is distributed under Anaconda's terms of service "
            "(https://www.anaconda.com/legal/terms).\nAccept them? (No: stop here; "
            "`--python-dist miniforge` installs conda-forge's Miniforge, which has no such terms)")


def _terms_refused(label: str) -> PrereqError:
    return PrereqError(
        f"{label} requires accepting Anaconda's terms of service",
        hint="re-run with --accept-anaconda-tos (https://www.anaconda.com/legal/terms), "
        "or use --python-dist miniforge (conda-forge, no terms to accept)",
        code="terms-not-accepted",
    )


def _accepted(opts: Resolved) -> Resolved:
    values, sources = dict(opts.values), dict(opts.sources)
    values["accept_anaconda_tos"], sources["accept_anaconda_tos"] = True, "answered on the terminal"
    return Resolved(values=values, sources=sources)


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
    if not events.confirm_terms(_terms_question(label)):
        raise _terms_refused(label)
    return _accepted(opts)


def _terms(plan: engine.Plan, ctx: StepContext, events: Events) -> Resolved:
    """Anaconda's and Miniconda's terms must be accepted explicitly before their installer runs:
    ``--accept-anaconda-tos``, or a question on a terminal that names Miniforge as the
    alternative. Refused before anything changes."""
    from mlops_env.installers import resolve as resolve_installer

    opts = ctx.options
    if opts["accept_anaconda_tos"] or "conda" not in {s.id for s in plan.pending()}:
        return opts
    inst = resolve_installer(opts["python_dist"], plan.facts.arch, url=opts.get("conda_installer"),
                             sha256=opts.get("conda_sha256"))
    if not inst.terms_of_service:
        return opts
    if not events.confirm_terms(_terms_question(inst.label)):
        raise _terms_refused(inst.label)
    return _accepted(opts)


def _data(record: Record, reports: list[engine.StepReport], ctx: StepContext, paths: Paths,
          t_total: float) -> dict[str, Any]:
    ep = record.endpoint
    data: dict[str, Any] = {
        "name": record.name,
        "provider": record.provider,
        "alias": record.alias,
        "host": ep.host if ep else None,
        "port": ep.port if ep else None,
        "user": ep.user if ep else None,
        "phase": record.phase,
        "steps": [r.as_dict() for r in reports],
        "ssh_command": f"ssh {record.alias}",
        "code_command": code_command(record),
        "seconds": round(time.monotonic() - t_total, 3),
    }
    if record.provider_data.get("cost"):
        data["cost"] = record.provider_data["cost"]
    smoke = smoke_summary(ctx.data.get("smoke"))
    if smoke:
        data["smoke"] = smoke
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
    try:
        rep = sshconfig.find_overrides(entry, paths=paths)
    except Exception as e:  # noqa: BLE001 - a warning helper must never fail `up`
        log.debug("override check failed: %s", e)
        return []
    return list(rep.warnings)


def _dry_run(req: UpRequest, record: Record, existing: Record | None, provider: Any,
             paths: Paths) -> dict[str, Any]:
    """What `up` would do, changing nothing: no container, no key, no state, no pin."""
    opts = req.options
    lines = provider.plan(existing if existing else record, opts)
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
