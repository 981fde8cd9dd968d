"""``mlops-env idle-stop NAME 30m|2h|off [--max-hours N]``: change a workstation's idle stop.

It runs the idle-stop step (check, then apply only when needed) over the pinned SSH
connection, as ``up`` would, and shows the agent's state afterwards. See docs/idle-stop.md.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlops_env.cli import Command, app, complete_name, run_command


@app.command("idle-stop", cls=Command, short_help="Change when a workstation powers itself off.", epilog="""
    mlops-env idle-stop course 30m
    mlops-env idle-stop course 2h --max-hours 8
    mlops-env idle-stop course off                # the uptime cap too, unless --max-hours
    mlops-env idle-stop course 1h --rules ssh,jupyter
    """)
def idle_stop_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Workstation name (see `mlops-env list`).",
                                        autocompletion=complete_name)],
    duration: Annotated[str, typer.Argument(
        metavar="DURATION", autocompletion=lambda: ["30m", "1h", "2h", "off"],
        help="Power off after this long without activity: 30m, 2h, 1h30m, 90s (a bare number is "
        "minutes); off turns the agent off (and the --max-hours cap, unless given too).")],
    max_hours: Annotated[str | None, typer.Option(
        "--max-hours", metavar="N",
        help="Also power off after N hours of uptime, whatever happens (with the same warning); "
        "0 or off: no cap. Default: keep the box's setting.")] = None,
    rules: Annotated[str | None, typer.Option(
        "--rules", metavar="LIST",
        help="What counts as activity: a comma list of ssh, jupyter, load, containers; all; none. "
        "Default: keep the box's setting (all, on a new box).")] = None,
    load_threshold: Annotated[float | None, typer.Option(
        "--load-threshold", metavar="LOAD", min=0.01, max=999,
        help="A load at or above this is activity (default 0.5).")] = None,
    warn: Annotated[int | None, typer.Option("--warn", min=0, max=3600, hidden=True,
                                             help="Seconds of warning before power-off (tests).")] = None,
    interval: Annotated[int | None, typer.Option("--interval", min=1, max=600, hidden=True,
                                                 help="Seconds between checks (tests).")] = None,
    ssh_timeout: Annotated[int, typer.Option("--ssh-timeout", metavar="SECONDS", min=1, max=3600,
                                             help="How long to wait for the box's SSH server.")] = 30,
) -> None:
    """Change the idle stop of a workstation: power it off after DURATION without SSH sessions,
    Jupyter kernel runs, CPU load or running containers (warning logged-in terminals first)."""

    def body(ui: Any) -> Any:
        from mlops_env.errors import UsageError
        from mlops_env.steps import idlestop

        try:
            settings = idlestop.command_settings(
                duration, max_hours=max_hours,
                rules=idlestop.parse_rules(rules) if rules is not None else None,
                load_threshold=load_threshold, warn=warn, interval=interval)
        except ValueError as e:
            raise UsageError(str(e), hint="for example: mlops-env idle-stop NAME 30m --max-hours 8",
                             code="invalid-option") from None
        data = run_idle_stop(name, settings, ssh_timeout, ui)
        if not ui.json_mode:
            st = data["agent"]
            verb = "changed" if data["step"]["status"] == "changed" else "unchanged"
            ui.out.print(f"[bold]{name}[/bold]: ", end="")
            ui.out.print(f"{data['step']['message']} ({verb})", markup=False)
            if st.get("installed"):
                ui.out.print(f"  now       {describe_agent(st)}", markup=False)
        return data

    run_command(ctx, "idle-stop", body)


def run_idle_stop(name: str, settings: Any, timeout: float, ui: Any) -> dict[str, Any]:
    """Check and (when needed) apply the idle-stop step on a known workstation."""
    from mlops_env import engine
    from mlops_env.config import Resolved
    from mlops_env.errors import UnsupportedError, UsageError
    from mlops_env.paths import get_paths
    from mlops_env.ssh.connect import connect
    from mlops_env.state import Store, validate_name
    from mlops_env.steps import Facts, StepContext
    from mlops_env.steps.idlestop import (
        PROVIDERS,
        IdleStopStep,
        parse_status,
        status_call,
        summarize,
    )

    validate_name(name)
    paths = get_paths()
    store = Store(paths)
    rec = store.load(name)
    if rec.endpoint is None:
        raise UsageError(f"{name} has not been set up yet",
                         hint=f"run `mlops-env up {rec.provider} {name}` first", code="not-ready")
    if rec.provider not in PROVIDERS:
        raise UsageError(f"{name} is a {rec.provider} workstation: mlops-env's idle stop runs on "
                         f"{', '.join(PROVIDERS)} workstations",
                         hint="a codespace stops itself: `mlops-env up codespace NAME --idle-timeout 30m`",
                         code="unsupported-provider")
    step = IdleStopStep(settings)
    with store.lock(name, "idle-stop"):
        transport = connect(paths, rec.endpoint, timeout)
        try:
            sctx = StepContext(transport=transport, facts=Facts({}), options=Resolved({}, {}),
                               record=rec, paths=paths, endpoint=rec.endpoint)
            plan = engine.gather(sctx, [step])
            if plan.pending() and plan.facts.sudo not in ("root", "ok"):
                what = "asks for a password" if plan.facts.sudo == "password" else "is not installed"
                raise UnsupportedError(f"sudo on {transport.where} {what}; the idle stop needs root",
                                       hint="allow passwordless sudo for the login user, or connect as root",
                                       code="sudo-password")
            reports = engine.apply(sctx, plan, jobs=1)
            res = sctx.run_call(step.id, status_call())
        finally:
            transport.close()
        report = reports[0]
        rec.steps[step.id] = report.as_dict()
        store.save(rec)
    return {"name": name, "step": report.as_dict(), "agent": summarize(parse_status(res.stdout))}


def describe_agent(st: dict[str, Any]) -> str:
    """One line: the agent's state (from ``idlestop.summarize``)."""
    from mlops_env.steps.idlestop import human_duration

    if not st.get("installed"):
        return "idle stop not installed"
    if not st.get("enabled"):
        return str(st.get("summary"))
    parts = [str(st.get("summary"))]
    if st.get("idle_for_s") is not None:
        parts.append(f"idle for {human_duration(st['idle_for_s'])}")
    elif st.get("activity"):
        parts.append(str(st["activity"]))
    if st.get("stop_in_s") is not None:
        import time

        when = time.strftime("%H:%M", time.localtime(st["stop_at"]))
        warned = ", warning sent" if st.get("warning_sent") else ""
        parts.append(f"stops at {when} (in {human_duration(st['stop_in_s'])}{warned})")
    return "; ".join(parts)


# -- for `status` and `list` -------------------------------------------------------------------
def agent_lines(agent: dict[str, Any] | None, rec: Any, live: dict[str, Any]) -> list[str]:
    """`status` lines: the agent's state, and what the box will have cost when it stops."""
    if agent is None:
        return []
    if agent.get("error"):
        return [f"idle stop unknown: {agent['error']}"]
    lines = [f"idle stop {describe_agent(agent)}"]
    hourly = ((rec.provider_data or {}).get("cost") or {}).get("hourly_usd")
    up = live.get("uptime_seconds")
    if hourly is not None and up is not None and agent.get("stop_in_s") is not None:
        total = float(hourly) * (float(up) + float(agent["stop_in_s"])) / 3600
        lines.append(f"          about ${total:.2f} compute from the last start to that stop (${hourly:.4f}/h)")
    return lines


def list_columns(rec: Any, live: dict[str, Any]) -> dict[str, Any]:
    """`list` columns: hourly price (cloud boxes) and time running since the last start."""
    hourly = ((rec.provider_data or {}).get("cost") or {}).get("hourly_usd")
    return {"hourly_usd": hourly, "uptime_s": live.get("uptime_seconds") if live.get("state") == "running" else None}


def format_list_columns(row: dict[str, Any]) -> tuple[str, str]:
    from mlops_env.steps.idlestop import human_duration

    hourly = row.get("hourly_usd")
    up = row.get("uptime_s")
    return (f"${hourly:.4f}" if hourly is not None else "-", human_duration(up) if up is not None else "-")
