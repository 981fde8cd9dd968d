"""``mlops-env image build|list|delete``: prebuilt workstation images (the work is in
``mlops_env.images``, imported inside the command bodies)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlops_env.cli import Command, SubGroup, app, run_command
from mlops_env.cli.up import (
    AcceptTos,
    CondaInstaller,
    CondaSha,
    ConfigFile,
    DockerSource,
    PythonDist,
    SmokeTest,
    SshTimeout,
    _common,
)

image_app = typer.Typer(
    cls=SubGroup,
    help="Prebuilt workstation images: bake the bootstrap once (Docker, conda and its libraries, "
    "the smoke test's program and data), then `up --from-image` is ready in a fraction of the time.",
    epilog="""
    mlops-env image build docker course-2026 --accept-anaconda-tos
    mlops-env image list
    mlops-env image delete course-2026 --yes
    """,
    no_args_is_help=True, rich_markup_mode=None,
)
app.add_typer(image_app, name="image")

build_app = typer.Typer(
    cls=SubGroup,
    help="Build an image with the same steps as `up`, generalized (no keys, histories, credentials).",
    epilog="""
    mlops-env image build docker course-2026 --accept-anaconda-tos
    """,
    no_args_is_help=True, rich_markup_mode=None,
)
image_app.add_typer(build_app, name="build")

ImageName = Annotated[str, typer.Argument(metavar="NAME", help="Image name ([a-z0-9-], 1-32).")]


@build_app.command("docker", cls=Command, epilog="""
    mlops-env image build docker course-2026 --accept-anaconda-tos
    mlops-env image build docker course-2026 --python-dist miniforge --smoke-test sample
    mlops-env up docker alice --from-image course-2026     # then: workstations from it
    """)
def build_docker(
    ctx: typer.Context,
    name: ImageName,
    image: Annotated[str | None, typer.Option("--image", metavar="IMAGE",
                                              help="Debian/Ubuntu base image (default ubuntu:24.04).")] = None,
    user: Annotated[str | None, typer.Option("--user", metavar="USER",
                                             help="Login user the image is prepared for (default mlops).")] = None,
    python_dist: PythonDist = None, accept_tos: AcceptTos = None, conda_installer: CondaInstaller = None,
    conda_sha256: CondaSha = None, docker_source: DockerSource = None, smoke_test: SmokeTest = None,
    ssh_timeout: SshTimeout = None, config: ConfigFile = None,
) -> None:
    """Build `mlops-env/image:NAME` on the local Docker engine: a temporary builder container,
    the workstation steps of `up` (base, docker, conda, the smoke test's program and data; not the
    idle agent, not the SSH config), generalized, committed with its recipe as labels; the builder
    is removed. An interrupted build is finished or cleaned by the next `image build`/`image delete`."""
    flags = _common(**locals())

    def body(ui: Any) -> Any:
        from mlops_env import config as cfg
        from mlops_env.cli.progress import StepView
        from mlops_env.images import DockerImages, validate_image_name
        from mlops_env.paths import get_paths

        validate_image_name(name)
        paths = get_paths()
        opts = cfg.resolve(flags, config_path=config, default_config=paths.config_file)
        view = StepView(ui)
        with view:
            if not ui.json_mode:
                ui.console.print(f"[bold]mlops-env image build docker {name}[/bold]")
            data = DockerImages(paths).build(name, opts, view.progress, on_step=view.step)
        if not ui.json_mode:
            ui.out.print(f"\n[bold green]{data['tag']}[/bold green] {data['action']} "
                         f"({_size(data.get('size_bytes'))}); use it: mlops-env up docker NAME --from-image {name}")
        return data

    run_command(ctx, "image build", body)


@image_app.command("list", cls=Command, epilog="""
    mlops-env image list
    mlops-env --json image list
    """)
def list_cmd(ctx: typer.Context) -> None:
    """List the prebuilt images: name, provider, id, recipe (current, or stale against today's
    scripts and pinned installers), age, size, storage cost per month, workstations made from it."""

    def body(ui: Any) -> Any:
        from mlops_env.images import DockerImages
        from mlops_env.paths import get_paths

        rows = DockerImages(get_paths()).list()
        if not ui.json_mode:
            if not rows:
                ui.out.print("no images (build one: mlops-env image build docker NAME)")
            for r in rows:
                stale = f" ({'; '.join(r['recipe_why'])})" if r["recipe_why"] else ""
                ui.out.print(f"{r['name']:<20} {r['provider']:<7} {r['id'][7:19]:<13} {r['recipe']}{stale:<2} "
                             f"{_age(r['age_seconds']):>6} {_size(r['size_bytes']):>9}  $0.00/month (local)  "
                             f"in use by: {', '.join(r['in_use_by']) or '-'}", markup=False)
        return {"images": rows}

    run_command(ctx, "image list", body)


@image_app.command("delete", cls=Command, epilog="""
    mlops-env image delete course-2026
    mlops-env image delete course-2026 --yes
    """)
def delete_cmd(ctx: typer.Context, name: ImageName,
               yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False) -> None:
    """Delete an image (and anything an interrupted build left). Workstations made from it keep
    running (a warning names them); `down` never deletes images."""

    def body(ui: Any) -> Any:
        from mlops_env.images import DockerImages, validate_image_name
        from mlops_env.paths import get_paths

        validate_image_name(name)

        def confirm(q: str) -> bool:
            if yes:
                return True
            if ui.json_mode or not ui.interactive:
                return False
            from rich.prompt import Confirm

            try:
                return bool(Confirm.ask(q, console=ui.console, default=False))
            except EOFError:
                return False

        imgs = DockerImages(get_paths())
        # Warn before the question: the user decides knowing who uses it.
        users = imgs.in_use_by(name)
        if users:
            ui.warn(f"workstations made from image {name!r}: {', '.join(users)} (they keep running)")
        data = imgs.delete(name, ui.info, confirm)
        if not ui.json_mode:
            ui.out.print(f"deleted: {', '.join(data['removed'])}" if data["removed"] else "nothing to delete",
                         markup=False)
        return data

    run_command(ctx, "image delete", body)


def _size(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _age(s: int | None) -> str:
    if s is None:
        return "-"
    return f"{s // 86400}d" if s >= 86400 else f"{s // 3600}h" if s >= 3600 else f"{max(s // 60, 0)}m"


