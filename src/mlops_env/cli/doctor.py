"""``mlops-env doctor [NAME | --host USER@HOST[:PORT]]``: what is ready for the course and what
is not, with the exact fix; ``--fix`` applies the ``up`` step behind each failing check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlops_env.cli import Command, app, complete_name, run_command
from mlops_env.cli.up import (
    AcceptTos,
    CondaInstaller,
    CondaSha,
    ConfigFile,
    DockerSource,
    PythonDist,
    SmokeTest,
    SshTimeout,
    Yes,
    _common,
)

CATEGORY_HELP = "system, python, docker, network, tools, local (repeat, or comma-separated)."
TITLES = {"system": "System", "python": "Python", "docker": "Docker", "network": "Network",
          "tools": "Tools", "local": "This machine"}
# What a category's first line shows when it has no problem (flutter doctor's habit).
HEADLINE = {"system": ("system.os", "system.cpu", "system.memory", "system.disk"),
            "python": ("python.conda", "python.libraries"),
            "docker": ("docker.engine", "docker.compose"),
            "network": ("network.tlc", "network.pypi"),
            "tools": ("tools.git", "tools.curl"),
            "local": ("local.ssh-client", "local.vscode", "local.docker")}
# ... and when none of those is ok, what the category is about.
ABOUT = {"system": "OS, CPUs, memory, disk, clock", "python": "conda and the course's libraries",
         "docker": "engine, compose, use without sudo", "network": "data host, PyPI, ports 8888 and 5000",
         "tools": "git, curl", "local": "SSH client and config, VS Code, Docker, gh, AWS"}


@app.command("doctor", cls=Command, short_help="What is ready for the course, what is not, and the fix.",
             epilog="""
    mlops-env doctor                          # this machine
    mlops-env doctor course                   # a workstation mlops-env knows
    mlops-env doctor --host ubuntu@203.0.113.7 --identity ~/.ssh/course.pem
    mlops-env doctor course --only docker,python -v
    mlops-env doctor course --fix             # apply the `up` step behind each failing check
    """)
def doctor_cmd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="A workstation mlops-env knows (see `mlops-env list`); "
                                               "default: this machine.", show_default=False,
                                               autocompletion=complete_name)] = None,
    host: Annotated[str | None, typer.Option("--host", metavar="USER@HOST[:PORT]",
                                             help="Check any box over SSH instead.")] = None,
    identity: Annotated[Path | None, typer.Option("--identity", metavar="KEYFILE",
                                                  help="Private key for --host (default: mlops-env's key).")] = None,
    host_key_fingerprint: Annotated[str | None, typer.Option(
        "--host-key-fingerprint", metavar="SHA256:...",
        help="--host's host key fingerprint, to trust it without a question.")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", metavar="CATEGORY",
                                                   help="Only these categories: " + CATEGORY_HELP)] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", metavar="CATEGORY",
                                                   help="Not these categories: " + CATEGORY_HELP)] = None,
    fix: Annotated[bool, typer.Option("--fix", help="Apply the `up` step behind each failing check "
                                                    "(asks first), then check again.")] = False,
    yes: Yes = False,
    as_workstation: Annotated[bool, typer.Option(
        "--as-workstation", help="Check this machine as a workstation (conda, Docker, the course's tools "
        "here too). Default: a laptop that drives workstations (Windows, macOS, or Linux that knows one) "
        "gets its own side checked only.")] = False,
    python_dist: PythonDist = None, accept_tos: AcceptTos = None, conda_installer: CondaInstaller = None,
    conda_sha256: CondaSha = None, docker_source: DockerSource = None, smoke_test: SmokeTest = None,
    ssh_timeout: SshTimeout = None, config: ConfigFile = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=8, hidden=True)] = 4,
) -> None:
    """Check this machine, a workstation or any box: what is ready for the course, what is not
    and the exact fix. Exit 0 when nothing is wrong (warnings allowed), 1 when problems were
    found; other codes when doctor itself could not run (README, "Exit codes")."""
    flags = _common(python_dist=python_dist, accept_tos=accept_tos, conda_installer=conda_installer,
                    conda_sha256=conda_sha256, docker_source=docker_source, smoke_test=smoke_test,
                    ssh_timeout=ssh_timeout)

    def body(ui: Any) -> Any:
        return _run(ui, name=name, host=host, identity=identity, fingerprint=host_key_fingerprint,
                    only=only or [], skip=skip or [], fix=fix, yes=yes, flags=flags, config=config, jobs=jobs,
                    as_workstation=as_workstation)

    run_command(ctx, "doctor", body)


def _run(ui: Any, *, name: str | None, host: str | None, identity: Path | None, fingerprint: str | None,
         only: list[str], skip: list[str], fix: bool, yes: bool, flags: dict[str, Any],
         config: Path | None, jobs: int, as_workstation: bool = False) -> Any:
    from mlops_env import config as cfg
    from mlops_env import doctor
    from mlops_env.errors import UsageError
    from mlops_env.events import Events
    from mlops_env.paths import get_paths

    cats = doctor.parse_categories(only, skip)
    if name and host:
        raise UsageError("give a workstation NAME or --host, not both",
                         hint="`mlops-env doctor NAME` for a workstation mlops-env knows, "
                         "`mlops-env doctor --host USER@HOST` for any other box", code="usage")
    if host and cats == ("local",):
        raise UsageError("--host checks a box; the `local` category is about this machine",
                         hint="`mlops-env doctor --only local` checks this machine", code="invalid-category")
    if as_workstation and (name or host):
        raise UsageError("--as-workstation is about this machine", code="usage",
                         hint="`mlops-env doctor NAME` and `--host` always check a workstation")
    if as_workstation:
        from mlops_env import osenv

        if osenv.is_windows():
            from mlops_env.errors import UnsupportedError

            raise UnsupportedError("Windows cannot be the course's workstation (its tools are Linux shell scripts)",
                                   hint="use a workstation (`mlops-env up docker|ssh|ec2|codespace`), or run "
                                   "mlops-env inside WSL to use that Linux as one", code="unsupported-os")
    if (identity or fingerprint) and not host:
        raise UsageError("--identity and --host-key-fingerprint go with --host", code="usage",
                         hint="a known workstation uses its own key and pinned host key")
    ident = None
    if identity is not None:
        p = identity.expanduser().absolute()
        if not p.is_file():
            raise UsageError(f"identity file {p} not found", hint="check --identity", code="identity-missing")
        ident = str(p)
    paths = get_paths()
    opts = cfg.resolve(flags, config_path=config, default_config=paths.config_file)
    timeout = opts["ssh_timeout"] if opts.sources["ssh_timeout"] == "flag" else min(
        opts["ssh_timeout"], doctor.CONNECT_TIMEOUT)

    def ask(question: str) -> bool:
        if ui.json_mode or not ui.interactive:
            return False
        from rich.prompt import Confirm

        from mlops_env.output import literal

        return bool(Confirm.ask(literal(question), console=ui.console, default=False))

    events = Events(warn=lambda m: ui.warn(m), confirm_host_key=ask, confirm_terms=ask)
    if name:
        target = doctor.workstation_target(paths, name, timeout)
        opts = _with_record_options(opts, target.record.options)
    elif host:
        target = doctor.host_target(paths, host, ident, fingerprint, events, timeout)
    else:
        target = doctor.local_target(*doctor.machine_role(paths, as_workstation))
    try:
        report = doctor.diagnose(target, opts, cats, paths, keep_transport=fix)
        if not fix or not report.fixable_steps():
            if report.transport is not None:
                report.transport.close()
            _render(ui, report, fix_requested=fix)
            return _outcome(ui, report, report.as_data())
        _render(ui, report, fix_requested=True)
        try:
            reports = _apply(ui, report, paths, events, yes, jobs)
        except doctor.Declined:
            ui.info("nothing was changed")
            return _outcome(ui, report, report.as_data())
        except Exception as e:
            partial = getattr(e, "reports", None)
            data = report.as_data()
            if partial:
                data["fix"] = {"steps": [r.as_dict() for r in partial]}
            e.data = data  # type: ignore[attr-defined]
            raise
        finally:
            if report.transport is not None:
                report.transport.close()
        if target.mode == "workstation":
            _save_steps(paths, target.record.name, reports)
        # Check again in a new login: group changes apply to new sessions only.
        after = doctor.diagnose(target, opts, cats, paths)
        if not ui.json_mode:
            ui.out.print("\n[bold]After --fix[/bold]")
        _render(ui, after, fix_requested=False)
        data = after.as_data()
        data["ssh_connections"] += report.connections
        data["ssh_round_trips"] += report.round_trips
        data["fix"] = {"steps": [r.as_dict() for r in reports], "before": report.as_data()["checks"],
                       "before_summary": report.counts()}
        return _outcome(ui, after, data)
    finally:
        target.close()


def _with_record_options(opts: Any, saved: dict[str, Any]) -> Any:
    """A known workstation is checked with the options `up` used for it; flags still win."""
    from mlops_env.config import Resolved

    values, sources = dict(opts.values), dict(opts.sources)
    for k, v in (saved or {}).items():
        if k in values and sources.get(k) != "flag":
            values[k], sources[k] = v, "workstation record"
    return Resolved(values=values, sources=sources)


def _apply(ui: Any, report: Any, paths: Any, events: Any, yes: bool, jobs: int) -> Any:
    from mlops_env import doctor
    from mlops_env.cli.progress import StepView

    view = StepView(ui)

    def confirm(question: str) -> None:
        with view.paused():  # the live display never draws over the question
            if not ui.confirm(question, yes=yes, what="doctor --fix (it changes the box)"):
                raise doctor.Declined()

    if report.target.mode != "workstation":
        with view:
            events.step = view.step
            events.progress = view.progress
            return doctor.repair(report, paths, events, confirm=confirm, jobs=jobs)
    from mlops_env.state import Store

    with Store(paths).lock(report.target.record.name), view:
        events.step = view.step
        events.progress = view.progress
        return doctor.repair(report, paths, events, confirm=confirm, jobs=jobs)


def _save_steps(paths: Any, name: str, reports: list[Any]) -> None:
    from mlops_env.state import Store

    store = Store(paths)
    with store.lock(name):
        rec = store.find(name)
        if rec is not None:
            rec.steps.update({r.id: r.as_dict() for r in reports})
            store.save(rec)


def _outcome(ui: Any, report: Any, data: dict[str, Any]) -> Any:
    from mlops_env.output import Outcome

    n = len(report.problems)
    errors = []
    if n and ui.json_mode:  # the human report already says it; JSON consumers get an error entry
        errors.append({"code": "problems-found", "message": f"doctor found {n} problem{'s' if n > 1 else ''}",
                       "hint": f"see data.checks; `{report.target.fix_command}` repairs "
                       f"{', '.join(report.fixable_steps()) or 'none of them'}"})
    return Outcome(data=data, errors=errors, exit_code=report.exit_code)


# -- rendering ---------------------------------------------------------------------------------
_MARK = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]", "skip": "[dim]-[/dim]"}
_HEAD = {"ok": "[green][✓][/green]", "warn": "[yellow][!][/yellow]", "fail": "[red][✗][/red]"}


def _render(ui: Any, report: Any, *, fix_requested: bool) -> None:
    if ui.json_mode:
        return
    from rich.text import Text

    from mlops_env.output import print_hanging

    # Text from boxes and files is literal (Text, never markup); long lines wrap at word
    # boundaries under their first character on a terminal, and are printed whole when piped.
    c = ui.out
    more = "" if ui.verbose else "; -v shows every check"
    print_hanging(c, "", Text.assemble((f"Doctor summary for {report.target.label}", "bold"), more))
    if report.note:
        print_hanging(c, "", report.note[0].upper() + report.note[1:] + ".", style="dim")
    for cat in report.categories:
        items = [ch for ch in report.checks if ch.category == cat]
        if not items:
            continue
        worst = "fail" if any(i.status == "fail" for i in items) else (
            "warn" if any(i.status == "warn" for i in items) else "ok")
        head = [i.message for i in items if i.id in HEADLINE.get(cat, ()) and i.status == "ok"]
        line = ", ".join(head) if head else ABOUT[cat]
        print_hanging(c, f"{_HEAD[worst]} {TITLES[cat]}: ", line)
        for i in items:
            if i.status in ("warn", "fail") or ui.verbose:
                print_hanging(c, f"    {_MARK[i.status]} ",
                              Text.assemble(i.message, (f" ({i.id})", "dim") if ui.verbose else ""))
                if i.hint and i.status in ("warn", "fail"):
                    print_hanging(c, "      [dim]→[/dim] ", i.hint)
    counts = report.counts()
    fails, warns = counts["fail"], counts["warn"]
    warn_txt = f"{warns} warning{'s' if warns != 1 else ''}"
    if fails:
        cats = len({i.category for i in report.problems})
        text = (f"Doctor found {fails} problem{'s' if fails != 1 else ''} in {cats} "
                f"categor{'y' if cats == 1 else 'ies'}" + (f" and {warn_txt}" if warns else "") + ".")
        fixable = report.fixable_steps()
        if fixable and not fix_requested:
            text += (f" `{report.target.fix_command}` repairs what the `up` steps "
                     f"({', '.join(fixable)}) can.")
        elif fix_requested and not fixable:
            text += " None of them is for `--fix`: see the hints above."
        print_hanging(c, "[red]✗[/red] ", text)
    else:
        print_hanging(c, "[green]✓[/green] ", "No problems found" + (f" ({warn_txt})" if warns else "") + ".")
    where = ""
    if report.target.remote and report.connections:
        where = (f", {report.connections} SSH connection{'s' if report.connections != 1 else ''}, "
                 f"{report.round_trips} round-trip{'s' if report.round_trips != 1 else ''}")
    c.print(f"[dim]checked in {report.seconds:.2f} s{where}[/dim]")
