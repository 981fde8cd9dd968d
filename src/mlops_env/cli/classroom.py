"""``mlops-env class up|status|bundle|stop|start|down`` and ``mlops-env join``: a class of
workstations from one roster (the work is in ``mlops_env.classroom``, imported inside the
command bodies). See docs/class.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops_env.cli import Command, SubGroup, app, run_command
from mlops_env.cli.up import AcceptTos, ConfigFile, DryRun, PythonDist, SmokeTest, Yes

class_app = typer.Typer(
    cls=SubGroup,
    help="A class of EC2 workstations from one roster: every student's workstation in parallel, "
    "their own keys, pinned host keys in a bundle per student. See docs/class.md.",
    epilog="""
    mlops-env class up cohort.yaml --dry-run          # the plan and its price
    mlops-env class up cohort.yaml --yes --python-dist miniforge
    mlops-env class status cohort.yaml
    mlops-env class bundle cohort.yaml --out bundles/
    mlops-env class down cohort.yaml --yes
    """,
    no_args_is_help=True, rich_markup_mode=None,
)
app.add_typer(class_app, name="class")

RosterArg = Annotated[Path, typer.Argument(metavar="ROSTER", help="The class roster (YAML; docs/class.md).")]
Jobs = Annotated[int, typer.Option("--jobs", min=1, max=100, metavar="N",
                                   help="Workstations set up at once (1..100, default 50; AWS requests stay 16 at once).")]


def _roster(path: Path) -> Any:
    from mlops_env.classroom.roster import load

    return load(path)


def _table(ui: Any, head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    from mlops_env.cli.lifecycle import _plain_table
    from mlops_env.output import literal

    ui.out.print(literal(_plain_table(head, rows)))


def _fleet_outcome(ui: Any, data: dict[str, Any], what: str) -> Any:
    """Exit 1 (one error naming the students) when any student failed."""
    from mlops_env.errors import ExitCode
    from mlops_env.output import Outcome

    failed = [s for s in data.get("students", []) if s["status"] in ("failed", "not launched")]
    if not failed:
        return data
    errors = []
    if data.get("quota"):
        errors.append({"code": "aws-vcpu-limit", **data["quota"]})
    errors.append({"code": "class-failed", "message": f"{what}: {len(failed)} of {len(data['students'])} "
                   f"student(s) failed: {', '.join(s['student'] for s in failed)}",
                   "hint": "the table above says why; fix it and run the same command again (the others are kept)"})
    return Outcome(data=data, errors=errors, exit_code=ExitCode.FAILED)


def _print_rows(ui: Any, data: dict[str, Any]) -> None:
    if ui.json_mode:
        return
    rows = [(s["student"], s["workstation"], s["status"], s.get("host") or "-", s.get("detail") or "")
            for s in data.get("students", [])]
    if rows:
        _table(ui, ("STUDENT", "WORKSTATION", "RESULT", "ADDRESS", "DETAIL"), rows)


@class_app.command("up", cls=Command, epilog="""
    mlops-env class up cohort.yaml --dry-run              # plan and costs; nothing is made
    mlops-env class up cohort.yaml --yes --accept-anaconda-tos
    mlops-env class up cohort.yaml --yes                  # again after editing the roster
    """)
def class_up(
    ctx: typer.Context, roster: RosterArg, dry_run: DryRun = False, yes: Yes = False, jobs: Jobs = 50,
    python_dist: PythonDist = None, accept_tos: AcceptTos = None, smoke_test: SmokeTest = None,
    config: ConfigFile = None,
    profile: Annotated[str | None, typer.Option("--profile", metavar="PROFILE", help="AWS profile.")] = None,
) -> None:
    """Create (or finish) every student's workstation, in parallel. Shows the costs first and asks;
    re-running after a roster edit creates only the new students, updates the running boxes whose
    keys, instructor access or options changed, and asks before removing those no longer listed.
    Exit 1 when any student failed (the table says why; the others are kept)."""

    def body(ui: Any) -> Any:
        from mlops_env.classroom import fleet
        from mlops_env.paths import get_paths

        r = _roster(roster)
        opts = fleet.UpOptions(flags={"python_dist": python_dist, "accept_anaconda_tos": accept_tos,
                                      "smoke_test": smoke_test, "profile": profile},
                               config=config, jobs=jobs, dry_run=dry_run)
        if not ui.json_mode:
            ui.console.print(f"[bold]mlops-env class up {r.name}[/bold]" + (" (dry run: nothing is made)" if dry_run else ""))
        cb = fleet.Callbacks(progress=ui.info, warn=ui.warn,
                             confirm=lambda q: ui.confirm(q, yes=yes, what=f"class up of {r.name}"))
        data = fleet.up(r, get_paths(), opts, cb)
        _print_rows(ui, data)
        if not ui.json_mode and data.get("quota"):
            ui.warn(data["quota"]["message"])
            ui.detail(data["quota"]["hint"])
        return _fleet_outcome(ui, data, "class up")

    run_command(ctx, "class up", body)


@class_app.command("status", cls=Command, epilog="""
    mlops-env class status cohort.yaml
    mlops-env class status cohort.yaml --json
    """)
def class_status(ctx: typer.Context, roster: RosterArg) -> None:
    """One row per student: state, IP, uptime, idle for, cost so far, smoke test."""

    def body(ui: Any) -> Any:
        from mlops_env.classroom import fleet
        from mlops_env.paths import get_paths

        r = _roster(roster)
        data = fleet.status(r, get_paths())
        if not ui.json_mode:
            rows = [(s["student"] or "-", str(s.get("state") or "-"), s.get("ip") or "-",
                     _dur(s.get("uptime_seconds")), _dur(s.get("idle_for")),
                     "-" if s.get("cost_so_far_usd") is None else f"${s['cost_so_far_usd']:.2f}",
                     str(s.get("smoke") or "-")) for s in data["students"]]
            _table(ui, ("STUDENT", "STATE", "IP", "UPTIME", "IDLE", "COST SO FAR", "SMOKE"), rows)
            ui.out.print(f"total cost so far: ${data['cost_so_far_usd']:.2f}")
        return data

    run_command(ctx, "class status", body)


def _dur(s: Any) -> str:
    if s is None:
        return "-"
    m = int(s) // 60
    return f"{m // 60}h {m % 60:02d}m"


@class_app.command("bundle", cls=Command, epilog="""
    mlops-env class bundle cohort.yaml --out bundles/
    """)
def class_bundle(
    ctx: typer.Context, roster: RosterArg,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder for the bundles (made 0700).")],
) -> None:
    """Per student: DIR/STUDENT.yaml for `mlops-env join`, plus DIR/STUDENT/ with a plain
    ssh_config snippet, the pinned known_hosts line and a README (for users without mlops-env).
    Files are 0600; no private key is in them."""

    def body(ui: Any) -> Any:
        from mlops_env.classroom import bundle
        from mlops_env.paths import get_paths

        r = _roster(roster)
        data = bundle.write_bundles(r, get_paths(), out)
        if not ui.json_mode:
            for s in data["students"]:
                ui.info(f"{s['student']}: {s['file'] or s['skipped']}")
        return data

    run_command(ctx, "class bundle", body)


def _lifecycle(ctx: typer.Context, roster: Path, action: str, yes: bool) -> None:
    def body(ui: Any) -> Any:
        from mlops_env.classroom import fleet
        from mlops_env.paths import get_paths

        r = _roster(roster)
        paths = get_paths()
        cb = fleet.Callbacks(progress=ui.info, warn=ui.warn)
        if action == "down":
            n = len(fleet.class_records(paths, r.name))
            if not ui.confirm(f"Remove all {n} workstation(s) of class {r.name} (instances, disks, security "
                              "groups, key pairs, SSH entries)?", yes=yes, what=f"class down of {r.name}"):
                ui.info("nothing changed")
                return {"class": r.name, "declined": True}
            data = fleet.down(r, paths, cb)
            _print_rows(ui, data)
            if not ui.json_mode:
                ui.info(data["verdict"])
            if data["leftovers"]:
                from mlops_env.errors import MlopsError

                raise MlopsError(data["verdict"], hint=f"run `mlops-env class down {roster} --yes` again in a minute",
                                 code="down-incomplete")
            return _fleet_outcome(ui, data, "class down")
        if action == "stop" and not ui.confirm(f"Stop every workstation of class {r.name}?", yes=yes,
                                               what=f"class stop of {r.name}"):
            ui.info("nothing changed")
            return {"class": r.name, "declined": True}
        data = fleet.lifecycle(r, paths, action, cb)
        _print_rows(ui, data)
        return _fleet_outcome(ui, data, f"class {action}")

    run_command(ctx, f"class {action}", body)


@class_app.command("stop", cls=Command, epilog="""
    mlops-env class stop cohort.yaml --yes
    """)
def class_stop(ctx: typer.Context, roster: RosterArg, yes: Yes = False) -> None:
    """Stop every student's workstation (the disks are kept, and billed)."""
    _lifecycle(ctx, roster, "stop", yes)


@class_app.command("start", cls=Command, epilog="""
    mlops-env class start cohort.yaml
    """)
def class_start(ctx: typer.Context, roster: RosterArg) -> None:
    """Start every student's workstation again (new public IPs: hand out new bundles)."""
    _lifecycle(ctx, roster, "start", True)


@class_app.command("down", cls=Command, epilog="""
    mlops-env class down cohort.yaml --yes
    """)
def class_down(ctx: typer.Context, roster: RosterArg, yes: Yes = False) -> None:
    """Remove every workstation of the class, then prove that nothing tagged
    mlops-env:class=CLASS is left in the region."""
    _lifecycle(ctx, roster, "down", yes)


@app.command("join", cls=Command, short_help="Install a class bundle: SSH alias + pinned host key.", epilog="""
    mlops-env join ~/Downloads/alice.yaml     # then: ssh mlops-mlops-2026-alice
    """)
def join_cmd(
    ctx: typer.Context,
    bundle_file: Annotated[Path, typer.Argument(metavar="BUNDLE", help="The STUDENT.yaml your instructor gave you.")],
    identity: Annotated[Path | None, typer.Option(
        "--identity", metavar="KEYFILE", help="Your private key (default: ssh's own, e.g. ~/.ssh/id_ed25519).")] = None,
) -> None:
    """On a student's machine: the SSH alias of your class workstation and its pinned host key
    (Include line in ~/.ssh/config, StrictHostKeyChecking yes), as `up` installs its own. A
    bundle whose host key differs from the one already pinned for that alias is refused."""

    def body(ui: Any) -> Any:
        from mlops_env.classroom import bundle
        from mlops_env.paths import get_paths

        data = bundle.join(get_paths(), bundle_file, identity)
        if not ui.json_mode:
            ui.info(f"joined: `ssh {data['alias']}` (host key {data['fingerprint']} pinned)")
            ui.detail(f"VS Code: {data['code_command']}")
        return data

    run_command(ctx, "join", body)
