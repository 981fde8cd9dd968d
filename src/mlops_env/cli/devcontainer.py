"""``mlops-env devcontainer init|validate``: the workstation as a dev container (Codespaces).

The work is in ``mlops_env.devcontainer`` (imported inside the command bodies, with jsonschema
only when validating, so that ``mlops-env --help`` stays fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlops_env.cli import Command, SubGroup, app, run_command

devcontainer_app = typer.Typer(
    cls=SubGroup,
    epilog="""
    mlops-env devcontainer init . --python-dist miniforge
    mlops-env devcontainer validate .
    """,
    help="The workstation as a dev container: open a repository in GitHub Codespaces (or VS "
    "Code Dev Containers) and get the same conda, Docker, ports and checks as `up`.",
    no_args_is_help=True, rich_markup_mode=None,
)
app.add_typer(devcontainer_app, name="devcontainer")


@devcontainer_app.command("init", cls=Command, epilog="""
    mlops-env devcontainer init . --accept-anaconda-tos
    mlops-env devcontainer init ../mlops-zoomcamp --python-dist miniforge --no-docker --dry-run
    """)
def init_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", show_default=False,
        help="The repository to write .devcontainer/ into (default: the current folder).")] = Path("."),
    python_dist: Annotated[str, typer.Option(
        "--python-dist", metavar="[anaconda|miniconda|miniforge]",
        autocompletion=lambda: ["anaconda", "miniconda", "miniforge"],
        help="Python distribution (default anaconda, as the course; miniforge needs no terms).",
        show_default=False)] = "anaconda",
    no_docker: Annotated[bool, typer.Option(
        "--no-docker", help="Leave Docker out (no docker-in-docker feature; doctor skips Docker).")] = False,
    accept_tos: Annotated[bool, typer.Option(
        "--accept-anaconda-tos",
        help="Accept Anaconda's terms of service for whoever opens the dev container (anaconda, "
        "miniconda).")] = False,
    mlops_env_source: Annotated[str | None, typer.Option(
        "--mlops-env-source", metavar="SPEC",
        help="What post-create pip-installs as mlops-env [default: mlops-env==<this version>]; "
        "e.g. a git+https:// URL.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite files that exist with other content.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be written; write nothing.")] = False,
) -> None:
    """Write the dev container into a repository (.devcontainer/), validated, ready for Codespaces.

    Never overwrites a file with other content without --force; files already identical are
    left alone.
    """

    def body(ui: Any) -> dict[str, Any]:
        from mlops_env import devcontainer as dc

        if python_dist not in dc.DISTS:
            from mlops_env.errors import UsageError

            raise UsageError(f"unknown Python distribution {python_dist!r}",
                             hint="use anaconda, miniconda or miniforge")

        class Declined(Exception):  # noqa: N818 - the user's answer, not an error
            pass

        def ask(question: str) -> bool:
            """False without a terminal (init refuses with its own error); a "no" on the
            terminal is an answer: nothing is written, exit 0."""
            if ui.json_mode or not ui.interactive:
                return False
            from rich.prompt import Confirm

            from mlops_env.output import literal

            try:
                answer = bool(Confirm.ask(literal(question), console=ui.console, default=False))
            except EOFError:
                answer = False
            if not answer:
                raise Declined()
            return True

        opts = dc.Options(python_dist=python_dist, docker=not no_docker,
                          mlops_env_source=mlops_env_source or "")
        try:
            data = dc.init(directory, opts, accept_tos=accept_tos, force=force, dry_run=dry_run,
                           confirm_terms=ask)
        except Declined:
            ui.info("nothing changed")
            return {"dir": str(directory), "declined": True, "changed": False}
        if not ui.json_mode:
            _print_init(ui, data)
        return data

    run_command(ctx, "devcontainer-init", body)


def _print_init(ui: Any, data: dict[str, Any]) -> None:
    c = ui.out
    changed = [f for f in data["files"] if f["action"] != "unchanged"]
    label = {"anaconda": "Anaconda", "miniconda": "Miniconda", "miniforge": "Miniforge"}[data["python_dist"]]
    what = f"{label}, {'Docker inside' if data['docker'] else 'no Docker'}"
    verb = "would write" if data["dry_run"] else "wrote"
    head = (f"{verb} {len(changed)} of {len(data['files'])} files" if changed
            else f"nothing to change: the {len(data['files'])} files are up to date")
    c.print(f"[bold]{head}[/bold] in ", end="", soft_wrap=True)
    c.print(f"{data['dir']} ({what}; post-create installs {data['mlops_env_source']})", soft_wrap=True,
            markup=False)
    for f in data["files"]:
        c.print(f"  {f['action']:<16} {f['path']}", highlight=False, markup=False)
    c.print(f"  validated        JSONC and the dev container schema ({data['validated']['schema']})",
            soft_wrap=True)
    for w in data["warnings"]:
        ui.warn(w)
    if not data["dry_run"]:
        c.print("next: commit .devcontainer/ and push; then on GitHub: Code > Codespaces > Create "
                "codespace (or VS Code: \"Dev Containers: Reopen in Container\")", soft_wrap=True)


@devcontainer_app.command("validate", cls=Command, epilog="""
    mlops-env devcontainer validate .
    mlops-env devcontainer validate .devcontainer/devcontainer.json
    """)
def validate_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(
        metavar="PATH", show_default=False,
        help="A devcontainer.json, or a repository folder (its .devcontainer/devcontainer.json, "
        ".devcontainer.json, .devcontainer/*/devcontainer.json; default: the current folder).")] = Path("."),
) -> None:
    """Check dev container configurations: strict JSONC (comments and trailing commas allowed,
    nothing else) and the official dev container schema; errors name file, line and column."""

    def body(ui: Any) -> dict[str, Any]:
        from mlops_env import devcontainer as dc

        results: list[dict[str, Any]] = []
        problems: list[Any] = []
        for cfg in dc.find_configs(path):
            try:
                results.append(dc.validate_file(cfg))
            except dc.DevcontainerError as e:
                results.append({"file": str(cfg), "valid": False,
                                "problems": [p.as_dict() for p in e.problems]})
                problems += e.problems
        for r in results:
            for w in r.get("warnings", []):
                ui.warn(f"{w['file']}:{w['line']}:{w['col']}: {w['message']}")
        if problems:
            if not ui.json_mode and len(problems) > 1:
                for p in problems:
                    ui.console.print(f"  {p}", soft_wrap=True, highlight=False, markup=False)
            err = dc.DevcontainerError(problems)
            err.data = {"files": results}
            raise err
        if not ui.json_mode:
            for r in results:
                ui.out.print(f"ok  {r['file']}: valid JSONC and valid under the dev container schema",
                             highlight=False, soft_wrap=True)
        return {"files": results, "schema": dc.SCHEMA_REF}

    run_command(ctx, "devcontainer-validate", body)
