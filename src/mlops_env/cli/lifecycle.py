"""Lifecycle commands: list, status, ssh, code, stop, start, down."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from mlops_env.cli import Command, app, complete_name, run_command

Name = Annotated[str, typer.Argument(help="Workstation name (see `mlops-env list`).", autocompletion=complete_name)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Region = Annotated[str | None, typer.Option(
    "--region", metavar="REGION", help="ec2: also look in this AWS region for workstations this machine does not know.")]
Profile = Annotated[str | None, typer.Option("--profile", metavar="PROFILE", help="ec2: AWS profile for --region.")]
Codespaces = Annotated[bool, typer.Option(
    "--codespaces", help="codespace: also look on GitHub for codespaces mlops-env made that this machine does not know.")]


def _load(name: str) -> tuple[Any, Any, Any]:
    from mlops_env.paths import get_paths
    from mlops_env.state import Store, validate_name

    validate_name(name)
    paths = get_paths()
    store = Store(paths)
    return paths, store, store.load(name)


def _confirm(ui: Any, question: str, *, yes: bool, what: str) -> bool:
    """Ask on the terminal; True only for an explicit yes (or --yes). A closed input is a no.
    Without a terminal ``ui.confirm`` refuses (exit 2, `confirmation-required`)."""
    try:
        return bool(ui.confirm(question, yes=yes, what=what))
    except EOFError:
        return False


def _declined(ui: Any, name: str, hint: str) -> dict[str, Any]:
    """The user said no: not an error, not Ctrl-C (130): exit 0, nothing touched."""
    ui.info("nothing changed")
    ui.detail(hint)
    return {"name": name, "result": "nothing changed", "changed": False}


def _plain_table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Columns aligned with two spaces, whole values, no trailing blanks (for pipes and files)."""
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in (head, *rows))


# The order `up` runs its steps in, for records written before steps kept their order.
_STEP_ORDER = ("provision", "base", "conda", "docker", "smoke", "idle-stop", "ssh-config", "doctor")
# A step's last result in words that say how the box is, not what the run did.
_RESULT = {"changed": "ok", "unchanged": "ok", "failed": "failed", "skipped": "skipped"}


def _health_steps(steps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    def key(item: tuple[str, dict[str, Any]]) -> tuple[int, int]:
        sid, s = item
        fallback = _STEP_ORDER.index(sid) if sid in _STEP_ORDER else len(_STEP_ORDER)
        return (int(s["order"]) if isinstance(s.get("order"), int) else fallback, fallback)

    out = []
    for sid, s in sorted(steps.items(), key=key):
        status = str(s.get("status", ""))
        out.append({**s, "id": s.get("id", sid), "result": _RESULT.get(status, status or "unknown")})
    return out


def _ago(ts: float | None) -> str:
    """``3m ago (2026-12-02 07:40 UTC)``."""
    import time

    if not ts:
        return "unknown"
    from mlops_env.steps.idlestop import human_duration

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
    return f"{human_duration(max(0, time.time() - ts))} ago ({when})"


def _address(rec: Any) -> str:
    ep = rec.endpoint
    return f"{ep.user}@{ep.host}:{ep.port}" if ep else "-"


@app.command("list", cls=Command, short_help="List the workstations, with their live state.", epilog="""
    mlops-env list
    mlops-env list --region eu-west-1        # also EC2 workstations made on another machine
    mlops-env --json list                    # for scripts
    """)
def list_cmd(ctx: typer.Context, region: Region = None, profile: Profile = None,
             codespaces: Codespaces = False) -> None:
    """List the workstations this machine knows, with their live state (and, for EC2, the
    ones in their regions or --region that this machine does not know)."""

    def body(ui: Any) -> Any:
        from mlops_env.cli.idlestop import format_list_columns, list_columns
        from mlops_env.errors import MlopsError
        from mlops_env.paths import get_paths
        from mlops_env.providers import PROVIDER_KINDS, get_provider
        from mlops_env.state import Store

        paths = get_paths()
        rows = []
        providers: dict[str, Any] = {}
        records = Store(paths).all()
        for rec in records:
            prov = providers.setdefault(rec.provider, get_provider(rec.provider, paths))
            live = prov.state(rec)
            rows.append({"name": rec.name, "provider": rec.provider, "alias": rec.alias,
                         "address": _address(rec), "state": live.get("state"), "phase": rec.phase,
                         **list_columns(rec, live)})
        for kind in PROVIDER_KINDS:
            try:
                rows += get_provider(kind, paths).discover(records, {"region": region, "profile": profile,
                                                                      "codespaces": codespaces})
            except MlopsError as e:
                ui.warn(f"cannot list {kind} workstations: {e.message}", e.hint)
        if not ui.json_mode:
            if not rows:
                ui.out.print("no workstations yet: try `mlops-env up docker`")
            else:
                head = ("NAME", "PROVIDER", "SSH ALIAS", "ADDRESS", "STATE", "SETUP", "PER HOUR", "RUNNING")
                cells = [(str(r["name"]), str(r["provider"]), str(r["alias"]), str(r["address"]), str(r["state"]),
                          str(r["phase"]), *format_list_columns(r)) for r in rows]
                if ui.out.is_terminal:
                    from rich.table import Table

                    t = Table(box=None, pad_edge=False)
                    for col in head:
                        t.add_column(col)
                    for row in cells:
                        t.add_row(*row)
                    ui.out.print(t)
                else:  # piped: whole values, never cut to a terminal's width
                    print(_plain_table(head, cells))
        return {"workstations": rows}

    run_command(ctx, "list", body)


@app.command("status", cls=Command, short_help="Show one workstation and its health.", epilog="""
    mlops-env status default
    mlops-env --json status course
    """)
def status_cmd(ctx: typer.Context, name: Name) -> None:
    """Show one workstation: where it is, its live state, its setup steps, smoke test and idle
    stop."""

    def body(ui: Any) -> Any:
        import json

        from mlops_env.cli.idlestop import agent_lines
        from mlops_env.pipeline import code_command
        from mlops_env.providers import get_provider
        from mlops_env.ssh import knownhosts
        from mlops_env.steps.idlestop import read_agent

        paths, _store, rec = _load(name)
        live = get_provider(rec.provider, paths).state(rec)
        idle = read_agent(paths, rec, live)
        fps = knownhosts.fingerprints(paths, rec.endpoint.host_key_alias) if rec.endpoint else []
        smoke = None
        report = paths.reports_dir / rec.name / "smoke-report.json"
        if report.is_file():
            try:
                d = json.loads(report.read_text()).get("data") or {}
                smoke = {k: d.get(k) for k in ("rmse_train", "rmse_val", "train_rows", "val_rows", "synthetic",
                                                "serve")}
                smoke["ran_at"] = report.stat().st_mtime
            except (OSError, ValueError):
                smoke = None
        steps = _health_steps(rec.steps)
        checked = max((float(s["checked_at"]) for s in steps if s.get("checked_at")), default=None)
        data = {"name": rec.name, "provider": rec.provider, "alias": rec.alias, "address": _address(rec),
                "state": live.get("state"), "live": live, "phase": rec.phase,
                "host_key": fps[0] if fps else None, "steps": steps, "steps_checked_at": checked,
                "facts": rec.provider_data.get("facts"), "smoke": smoke,
                "ssh_command": f"ssh {rec.alias}", "code_command": code_command(rec), "idle_stop": idle}
        if not ui.json_mode:
            from rich.markup import escape as e

            c = ui.out

            def p(text: str) -> None:  # piped: whole lines, never wrapped at 80 columns
                c.print(text, soft_wrap=not c.is_terminal)

            p(f"[bold]{rec.name}[/bold] ({rec.provider}) — {e(str(live.get('state')))}, setup {rec.phase}")
            p(f"  address   {e(data['address'])}   alias {rec.alias}")
            if data["facts"]:
                f = data["facts"]
                p(f"  box       {e(str(f.get('os_pretty')))} {e(str(f.get('arch')))}")
            p(f"  host key  {data['host_key'] or '(not pinned)'}")
            for line in [*(live.get("lines") or []), *agent_lines(idle, rec, live)]:
                p(f"  {e(str(line))}")
            if steps:
                p(f"  steps     last checked {_ago(checked or rec.updated)}")
            for s in steps:
                p(f"    {s['id']:<11} {s['result']:<8} {e(str(s.get('message', '')))}")
            if smoke:
                rmse = (f"RMSE train {smoke['rmse_train']:.3f}, validation {smoke['rmse_val']:.3f} min"
                        if smoke.get("rmse_train") is not None and smoke.get("rmse_val") is not None else "no RMSE")
                p(f"  smoke     ran {_ago(smoke['ran_at'])}: {rmse}"
                  f"{' (synthetic sample)' if smoke.get('synthetic') else ''}")
                sv = smoke.get("serve")
                if isinstance(sv, dict):
                    if sv.get("ok", True) and sv.get("matches") is not None:
                        p(f"  serve     {sv.get('matches')}/{sv.get('predictions_checked')} predictions equal, "
                          f"p50 {sv.get('p50_ms')} ms, p99 {sv.get('p99_ms')} ms, through the SSH connection: "
                          f"{'yes' if sv.get('via_tunnel') else 'no'}")
                    else:
                        p(f"  serve     failed: {e(str(sv.get('message') or sv.get('error')))}")
            else:
                p(f"  smoke     not run yet (`mlops-env smoke-test {rec.name}`)")
            if rec.endpoint is not None:  # no address yet (a codespace made without gh): no alias to show
                p(f"  connect   {data['ssh_command']}  |  {e(data['code_command'])}")
        return data

    run_command(ctx, "status", body)


def _ssh_argv(paths: Any, rec: Any) -> list[str]:
    """``ssh -F <config> <alias>``: the user's config when it includes ours (their other
    settings apply), else the tool's own file. Always an explicit -F: OpenSSH reads the home
    directory from the password database, not from $HOME."""
    from mlops_env import osenv
    from mlops_env.errors import PrereqError
    from mlops_env.paths import user_ssh_config
    from mlops_env.ssh import config as sshconfig

    ssh = osenv.find_program("ssh")  # Windows: System32\OpenSSH\ssh.exe even when not on PATH
    if not ssh:
        raise PrereqError("the OpenSSH client (`ssh`) is not installed",
                          hint={"windows": "add Windows' OpenSSH Client (Settings > System > Optional features)",
                                "macos": "macOS ships /usr/bin/ssh: check that PATH includes /usr/bin"}.get(
                              osenv.system(), "install it (apt install openssh-client, or your OS's package)"),
                          code="ssh-missing")
    cfg = user_ssh_config() if sshconfig.check_include(paths) == "unchanged" else paths.ssh_config
    # `--` before the alias: OpenSSH then parses no options after it, so the command's own
    # flags (`ls -la`) reach the box untouched.
    return [ssh, "-F", str(cfg), "--", rec.alias]


@app.command("ssh", cls=Command, short_help="A shell or a command on the workstation.", context_settings={"allow_interspersed_args": False}, epilog="""
    mlops-env ssh default                      # a shell (the same as `ssh mlops-default`)
    mlops-env ssh default -- nvidia-smi -L     # one command; its flags go to the box
    """)
def ssh_cmd(
    ctx: typer.Context,
    name: Name,
    command: Annotated[list[str] | None, typer.Argument(metavar="COMMAND", help="Command to run (after --).",
                                                        show_default=False)] = None,
) -> None:
    """Open a shell on the workstation (or run COMMAND there) with the system ssh client.
    Exits with COMMAND's exit code (255: ssh could not connect). With --json, COMMAND is
    required; its exit code, stdout and stderr come back in the envelope."""

    def body(ui: Any) -> Any:
        from mlops_env import osenv
        from mlops_env.output import Outcome

        paths, _store, rec = _load(name)
        if rec.endpoint is None:
            _no_alias(paths, rec)
        cmd = list(command or [])
        if cmd[:1] == ["--"]:  # parsing stops after NAME, so click hands the `--` on
            cmd = cmd[1:]
        if ui.json_mode:
            return _ssh_json(paths, rec, cmd)
        argv = _ssh_argv(paths, rec) + cmd
        ui.detail("exec " + " ".join(argv))
        # POSIX: exec (does not return). Windows: ssh as a child, its exit code passed on.
        code = osenv.run_foreground(argv)
        return Outcome(data={"name": rec.name, "exit_code": code}, exit_code=code)

    run_command(ctx, "ssh", body)


def _ssh_json(paths: Any, rec: Any, cmd: list[str]) -> Any:
    """``--json ssh NAME -- CMD``: run ssh as a child (no terminal: BatchMode, no questions) and
    put the command's exit code, stdout and stderr in the envelope. The tool's exit code is the
    command's, as without --json."""
    import subprocess

    from mlops_env.errors import UsageError
    from mlops_env.output import Outcome

    if not cmd:
        raise UsageError("--json needs a COMMAND: an interactive shell has no JSON result",
                         hint=f"`mlops-env --json ssh {rec.name} -- COMMAND`, or `mlops-env ssh {rec.name}` "
                         "for a shell", code="usage")
    base = _ssh_argv(paths, rec)
    argv = base[:-2] + ["-o", "BatchMode=yes", "-T"] + base[-2:] + cmd
    p = subprocess.run(argv, capture_output=True, check=False)  # noqa: S603 - argv list, no shell
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    data = {"name": rec.name, "alias": rec.alias, "command": cmd, "exit_code": p.returncode,
            "stdout": out, "stderr": err}
    errors = []
    if p.returncode == 255:
        last = next((ln for ln in reversed(err.splitlines()) if ln.strip()), "no message")
        errors.append({"code": "ssh-failed", "message": f"ssh could not run the command on {rec.name}: {last}",
                       "hint": f"`mlops-env status {rec.name}` shows whether it runs; "
                       f"`mlops-env doctor {rec.name}` checks the connection"})
    elif p.returncode != 0:
        errors.append({"code": "command-failed", "message": f"the command exited with {p.returncode} on {rec.name}",
                       "hint": "see data.stdout and data.stderr"})
    return Outcome(data=data, errors=errors, exit_code=p.returncode)


@app.command("code", cls=Command, short_help="Open VS Code on the workstation.", epilog="""
    mlops-env code default
    """)
def code_cmd(ctx: typer.Context, name: Name) -> None:
    """Open VS Code on the workstation (Remote-SSH), or print the command when `code` is absent."""

    def body(ui: Any) -> Any:
        import shlex
        import subprocess

        from mlops_env import osenv
        from mlops_env.pipeline import code_command

        _paths, _store, rec = _load(name)
        if rec.endpoint is None:
            return _open_url(ui, _paths, rec)
        cmd = code_command(rec)
        code = osenv.find_program("code")  # Windows: ...\Microsoft VS Code\bin\code.cmd; macOS: the app bundle
        if code is None:
            if not ui.json_mode:
                ui.out.print(cmd)
                ui.console.print("[dim]VS Code's `code` command is not on PATH: run the line above where it is "
                                 "(VS Code: Shell Command: Install 'code' command in PATH; needs the "
                                 "Remote - SSH extension).[/dim]")
            return {"command": cmd, "launched": False}
        argv = [code, *shlex.split(cmd)[1:]]
        subprocess.run(argv, check=False)  # noqa: S603 - argv list
        return {"command": cmd, "launched": True}

    run_command(ctx, "code", body)


@app.command("stop", cls=Command, epilog="""
    mlops-env stop course                      # asks first
    mlops-env stop course --yes
    """)
def stop_cmd(ctx: typer.Context, name: Name, yes: Yes = False) -> None:
    """Stop the workstation. Docker: stop the container; ec2: stop the instance, which ends the
    hourly charge; the disk is kept."""

    def body(ui: Any) -> Any:
        from mlops_env.providers import get_provider

        paths, store, rec = _load(name)
        with store.lock(name, "stop"):
            if not _confirm(ui, f"Stop {name}?", yes=yes, what=f"stopping {name}"):
                return _declined(ui, name, f"`mlops-env stop {name} --yes` stops it without asking")
            result = get_provider(rec.provider, paths).stop(rec, ui.info)
        ui.info(f"{name}: {result}")
        return {"name": name, "result": result, "changed": result != "already stopped"}

    run_command(ctx, "stop", body)


#: providers whose box boots on `start` (its sshd comes up after the instance or container runs)
BOOTS = ("docker", "ec2")
START_SSH_TIMEOUT = 300.0  # an EC2 instance: "running" first, then its boot (typically 20-60 s)


def _wait_ssh(paths: Any, rec: Any, ep: Any, ui: Any) -> None:
    """`start` of a ready box ends when it answers SSH with its pinned key, so the `ssh` that
    follows works (a box made with `--provision-only` is not waited for: nothing was set up on it)."""
    from mlops_env.errors import MlopsError
    from mlops_env.ssh.connect import connect

    ui.info(f"{rec.name}: waiting for SSH on {ep.host}:{ep.port}")
    try:
        connect(paths, ep, START_SSH_TIMEOUT).close()
    except MlopsError as e:
        raise MlopsError(f"{rec.name} started, but SSH does not answer: {e.message}",
                         hint=f"`mlops-env doctor {rec.name}` says why; `mlops-env start {rec.name}` again "
                         "waits again", code=e.code, exit_code=e.exit_code) from None


@app.command("start", cls=Command, epilog="""
    mlops-env start course                     # then `ssh mlops-course` as before
    """)
def start_cmd(ctx: typer.Context, name: Name) -> None:
    """Start a stopped workstation and wait until it answers SSH. When it comes back at a new
    address (EC2: a new public IP) its SSH config entry is rewritten."""

    def body(ui: Any) -> Any:
        from mlops_env.pipeline import refresh_ssh_config
        from mlops_env.providers import get_provider

        paths, store, rec = _load(name)
        prov = get_provider(rec.provider, paths)
        with store.lock(name, "start"):
            result = prov.start(rec, ui.info)
            store.save(rec)
            ep = prov.endpoint(rec)
            rewritten = False
            if ep is not None:
                rec.endpoint = ep
                store.save(rec)
                rewritten = refresh_ssh_config(paths, rec)
                if rec.provider in BOOTS and rec.phase == "ready" and not result.startswith("already"):
                    _wait_ssh(paths, rec, ep, ui)
        if ep is None:
            ui.info(f"{name}: {result}")
        else:
            how = "rewritten for" if rewritten else "unchanged:"
            ui.info(f"{name}: {result}; SSH config {how} {ep.user}@{ep.host}:{ep.port} (`ssh {rec.alias}`)")
        return {"name": name, "result": result, "address": _address(rec), "ssh_config_rewritten": rewritten}

    run_command(ctx, "start", body)


@app.command("down", cls=Command, short_help="Remove a workstation and all mlops-env made for it.", epilog="""
    mlops-env down course                      # lists what it removes, asks first
    mlops-env down course --yes --region eu-west-1
    """)
def down_cmd(ctx: typer.Context, name: Name, yes: Yes = False, region: Region = None,
             profile: Profile = None, codespaces: Codespaces = False) -> None:
    """Remove the workstation and everything mlops-env made for it (docker: the container and
    its volume; ec2: the instance, its disk, security group and key pair; ssh: only mlops-env's
    records — nothing on the box is touched). With --region, also an EC2 workstation this
    machine does not know."""

    def body(ui: Any) -> Any:
        from mlops_env.errors import NotFoundError
        from mlops_env.providers import PROVIDER_KINDS, get_provider
        from mlops_env.ssh import config as sshconfig
        from mlops_env.ssh import knownhosts

        try:
            paths, store, rec = _load(name)
        except NotFoundError:
            if not region and not codespaces:
                raise
            from mlops_env.paths import get_paths
            from mlops_env.state import Store

            paths = get_paths()
            store = Store(paths)
            found = (get_provider(k, paths).adopt(name, {"region": region, "profile": profile,
                                                         "codespaces": codespaces})
                     for k in PROVIDER_KINDS)
            rec = next((r for r in found if r is not None), None)
            if rec is None:
                raise NotFoundError(f"no workstation {name!r} here nor in {region}",
                                    hint="see `mlops-env list --region REGION`", code="unknown-workstation") from None
        prov = get_provider(rec.provider, paths)
        with store.lock(name, "down"):
            what = prov.describe_destroy(rec) + [f"SSH entry {rec.alias}, pinned host key, state"]
            if not ui.json_mode:
                ui.console.print(f"[bold]mlops-env down {name}[/bold] will remove:")
                for w in what:
                    ui.console.print(f"  - {w}")
            if not _confirm(ui, f"Remove {name}?", yes=yes, what=f"removing {name}"):
                return {**_declined(ui, name, f"`mlops-env down {name} --yes` removes it without asking"), "removed": []}
            removed = prov.destroy(rec, ui.info)
            if sshconfig.remove_host(paths, rec.alias):
                removed.append(f"SSH entry {rec.alias}")
            if rec.endpoint and knownhosts.unpin(paths, rec.endpoint.host_key_alias):
                removed.append("pinned host key")
            inc = sshconfig.remove_include(paths)
            if inc in ("removed", "deleted"):
                removed.append("Include line in ~/.ssh/config (no workstation left)")
            if store.delete(name):
                removed.append("state")
        ui.info(f"{name} removed: " + ", ".join(removed))
        return {"name": name, "removed": removed}

    run_command(ctx, "down", body)


def _no_alias(paths: Any, rec: Any) -> None:
    """A workstation without an SSH address (a codespace made without the GitHub CLI)."""
    from mlops_env.errors import NotFoundError
    from mlops_env.providers import get_provider

    links = get_provider(rec.provider, paths).links(rec)
    hint = f"`mlops-env up {rec.provider} {rec.name}` writes it"
    if rec.provider == "codespace":
        hint += " once the GitHub CLI (gh) is installed and logged in (https://cli.github.com)"
    if links.get("browser"):
        hint += f"; meanwhile open {links['browser']}"
    raise NotFoundError(f"{rec.name} has no SSH alias yet", hint=hint, code="no-ssh-alias")


def _open_url(ui: Any, paths: Any, rec: Any) -> dict[str, Any]:
    """VS Code without an SSH alias: the provider's vscode:// URL (a codespace: the GitHub
    Codespaces extension), with `code --open-url`, or `gh codespace code`, or printed."""
    import subprocess

    from mlops_env import osenv
    from mlops_env.providers import get_provider

    links = get_provider(rec.provider, paths).links(rec)
    url = links.get("vscode")
    if not url:
        _no_alias(paths, rec)
    code, gh = osenv.find_program("code"), osenv.find_program("gh")
    if code:
        argv = [code, "--open-url", str(url)]
    elif gh and links.get("codespace"):
        argv = [gh, "codespace", "code", "-c", links["codespace"]]
    else:
        if not ui.json_mode:
            ui.out.print(url)
            ui.console.print("[dim]VS Code's `code` command is not on PATH: open the URL above (it needs the GitHub "
                             "Codespaces extension)" + (f", or the browser: {links['browser']}" if links.get("browser")
                                                        else "") + "[/dim]")
        return {"command": None, "url": url, "launched": False}
    subprocess.run(argv, check=False)  # noqa: S603 - argv list
    return {"command": " ".join(argv), "url": url, "launched": True}
