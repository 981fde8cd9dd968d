"""``mlops-env image build|list|share|copy|delete``: prebuilt workstation images (the work is in
``mlops_env.images`` (Docker) and ``mlops_env.providers.ec2.imagebuild``/``providers.ec2.images`` (EC2), imported
inside the command bodies)."""

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
    mlops-env image build ec2 course-2026 --region eu-west-1 --accept-anaconda-tos
    mlops-env image list --region eu-west-1
    mlops-env image share course-2026 --region eu-west-1 --account 123456789012
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
    mlops-env image build ec2 course-2026 --region eu-west-1 --accept-anaconda-tos
    """,
    no_args_is_help=True, rich_markup_mode=None,
)
image_app.add_typer(build_app, name="build")

ImageName = Annotated[str, typer.Argument(metavar="NAME", help="Image name ([a-z0-9-], 1-32).")]
Region = Annotated[str | None, typer.Option(
    "--region", metavar="REGION", help="EC2: the AWS region (default: AWS_REGION or your profile's).")]
Profile = Annotated[str | None, typer.Option("--profile", metavar="PROFILE", help="EC2: the AWS profile.")]


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
        from mlops_env.images import validate_image_name
        from mlops_env.paths import get_paths
        from mlops_env.providers.docker.images import DockerImages

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


@build_app.command("ec2", cls=Command, epilog="""
    mlops-env image build ec2 course-2026 --region eu-west-1 --accept-anaconda-tos
    mlops-env image build ec2 course-2026 --region eu-west-1 --python-dist miniforge --instance-type m7g.xlarge
    mlops-env up ec2 alice --from-image course-2026     # then: workstations from it
    """)
def build_ec2(
    ctx: typer.Context,
    name: ImageName,
    region: Region = None, profile: Profile = None,
    instance_type: Annotated[str | None, typer.Option(
        "--instance-type", metavar="TYPE", help="The builder's type; its architecture is the image's (default t3.xlarge).")] = None,
    disk_gb: Annotated[int | None, typer.Option(
        "--disk-gb", metavar="GB", help="The image's disk in GB (default 30); workstations need at least this.")] = None,
    ami: Annotated[str | None, typer.Option(
        "--ami", metavar="AMI", help="Base: ubuntu-24.04 (default), ubuntu-22.04 or an ami-... id.")] = None,
    allow_cidr: Annotated[str | None, typer.Option(
        "--allow-cidr", metavar="CIDR", help="Who may reach the builder's SSH (default: your public IP as /32).")] = None,
    subnet: Annotated[str | None, typer.Option("--subnet", metavar="SUBNET_ID", help="Subnet for the builder.")] = None,
    python_dist: PythonDist = None, accept_tos: AcceptTos = None, conda_installer: CondaInstaller = None,
    conda_sha256: CondaSha = None, docker_source: DockerSource = None, smoke_test: SmokeTest = None,
    ssh_timeout: SshTimeout = None, config: ConfigFile = None,
) -> None:
    """Build an AMI in REGION: a temporary builder instance from Canonical's Ubuntu AMI (tagged
    `mlops-env:image-build=NAME`), the workstation steps of `up` (not the idle agent, not the SSH
    config), generalized (`image-generalize.sh`, `cloud-init clean --logs`), stopped, CreateImage
    with the recipe as tags; the builder is removed. Shows the snapshot storage per month before,
    and the builder's compute while it runs. An interrupted build is finished or cleaned by the
    next `image build`/`image delete`."""
    flags = _common(**locals())

    def body(ui: Any) -> Any:
        from mlops_env import config as cfg
        from mlops_env.cli.progress import StepView
        from mlops_env.images import check_terms, validate_image_name
        from mlops_env.paths import get_paths
        from mlops_env.providers.ec2.imagebuild import Ec2ImageBuild
        from mlops_env.providers.ec2.session import Aws

        validate_image_name(name)
        paths = get_paths()
        opts = cfg.resolve(flags, config_path=config, default_config=paths.config_file)
        check_terms(opts)
        aws = Aws(opts.get("region"), opts.get("profile"))
        view = StepView(ui)
        with view:
            if not ui.json_mode:
                ui.console.print(f"[bold]mlops-env image build ec2 {name}[/bold] in {aws.region}")
            data = Ec2ImageBuild(paths, aws, name, warn=ui.warn).build(opts, view.progress, on_step=view.step)
        if not ui.json_mode:
            b = data.get("builder") or {}
            cost = f", builder compute ~${b['compute_usd']:.2f}" if b.get("compute_usd") is not None else ""
            ui.out.print(f"\n[bold green]{data['id']}[/bold green] ({name}, {aws.region}) {data['action']}: "
                         f"{data['snapshot_gb']} GB of snapshots, at most ${data['monthly_cost_usd']:.2f}/month{cost}; "
                         f"use it: mlops-env up ec2 NAME --region {aws.region} --from-image {name}")
        return data

    run_command(ctx, "image build", body)


def _ec2_regions(paths: Any, region: str | None) -> list[str]:
    """Where to look for EC2 images: --region, else the regions this machine built or copied
    images in and those of its EC2 workstations (no AWS call for a Docker-only user)."""
    from mlops_env.providers.ec2.imagebuild import build_state_regions
    from mlops_env.state import Store

    if region:
        return [region]
    regions = set(build_state_regions(paths))
    for r in Store(paths).all():
        if r.provider == "ec2" and r.provider_data.get("region"):
            regions.add(str(r.provider_data["region"]))
    return sorted(regions)


@image_app.command("list", cls=Command, epilog="""
    mlops-env image list
    mlops-env image list --region eu-west-1
    mlops-env --json image list
    """)
def list_cmd(ctx: typer.Context, region: Region = None, profile: Profile = None) -> None:
    """List the prebuilt images: name, provider, id, recipe (current, or stale against today's
    scripts and pinned installers), age, size, storage cost per month, workstations made from it.
    EC2 images: of --region, else of the regions this machine built images or workstations in."""

    def body(ui: Any) -> Any:
        from mlops_env.errors import MlopsError
        from mlops_env.paths import get_paths

        paths = get_paths()
        rows: list[dict[str, Any]] = []
        if not region:
            try:
                from mlops_env.providers.docker.images import DockerImages

                rows += DockerImages(paths).list()
            except MlopsError as e:
                ui.warn(f"Docker images not listed: {e.message}")
        for where in _ec2_regions(paths, region):
            from mlops_env.providers.ec2.imagebuild import list_images
            from mlops_env.providers.ec2.session import Aws

            try:
                rows += list_images(Aws(where, profile))
            except MlopsError as e:
                if region:
                    raise
                ui.warn(f"EC2 images in {where} not listed: {e.message}")
        if not ui.json_mode:
            if not rows:
                ui.out.print("no images (build one: mlops-env image build docker|ec2 NAME)")
            for r in rows:
                stale = f" ({'; '.join(r['recipe_why'])})" if r["recipe_why"] else ""
                where = "local" if r["provider"] == "docker" else r["region"]
                short = r["id"][7:19] if r["provider"] == "docker" else r["id"]
                ui.out.print(f"{r['name']:<20} {r['provider']:<6} {where:<12} {short:<21} {r['recipe']}{stale:<2} "
                             f"{_age(r['age_seconds']):>6} {_size(r['size_bytes']):>9}  "
                             f"${r['monthly_cost_usd']:.2f}/month  in use by: {', '.join(r['in_use_by']) or '-'}",
                             markup=False)
        return {"images": rows}

    run_command(ctx, "image list", body)


Account = Annotated[list[str], typer.Option("--account", metavar="ACCOUNT_ID",
                                            help="AWS account id (12 digits); repeat for several.")]


@image_app.command("share", cls=Command, epilog="""
    mlops-env image share course-2026 --region eu-west-1 --account 123456789012
    mlops-env image share course-2026 --account 123456789012 --account 210987654321
    """)
def share_cmd(ctx: typer.Context, name: ImageName, account: Account, region: Region = None,
              profile: Profile = None) -> None:
    """EC2: let other AWS accounts launch the image (launch permission on the AMI and
    createVolumePermission on its snapshots); they launch it with `up ec2 --from-image ami-...`."""

    def body(ui: Any) -> Any:
        from mlops_env.images import validate_image_name
        from mlops_env.providers.ec2.imagebuild import unknown_image
        from mlops_env.providers.ec2.images import Ec2Images, validate_account_id
        from mlops_env.providers.ec2.session import Aws

        validate_image_name(name)
        ids = [validate_account_id(a) for a in account]  # every id checked before any call
        aws = Aws(region, profile)
        imgs = Ec2Images(aws, name)
        if not [i for i in imgs.images() if i.get("State") in ("available", "pending")]:
            raise unknown_image(aws, name)
        data = imgs.share(ids, ui.info)
        if not ui.json_mode:
            ui.out.print(f"{data['image_id']} ({name}, {aws.region}) shared with {', '.join(ids)} "
                         f"(and its snapshots {', '.join(data['snapshots']) or '-'}); they use: "
                         f"mlops-env up ec2 NAME --region {aws.region} --from-image {data['image_id']}", markup=False)
        return {"name": name, "region": aws.region, **data}

    run_command(ctx, "image share", body)


@image_app.command("copy", cls=Command, epilog="""
    mlops-env image copy course-2026 --region eu-west-1 --to-region us-east-1
    """)
def copy_cmd(ctx: typer.Context, name: ImageName,
             to_region: Annotated[str, typer.Option("--to-region", metavar="REGION", help="Where the copy goes.")],
             region: Region = None, profile: Profile = None) -> None:
    """EC2: copy the image (and its snapshots, tagged there too) to another region; then
    `up ec2 --region TO --from-image NAME` works there. Its storage is billed in both regions."""

    def body(ui: Any) -> Any:
        from mlops_env.images import validate_image_name
        from mlops_env.paths import get_paths
        from mlops_env.providers.ec2.imagebuild import remember_region, unknown_image
        from mlops_env.providers.ec2.images import Ec2Images
        from mlops_env.providers.ec2.session import Aws, check_region

        validate_image_name(name)
        aws = Aws(region, profile)
        check_region(aws.session, to_region)
        imgs = Ec2Images(aws, name)
        if not [i for i in imgs.images() if i.get("State") in ("available", "pending")]:
            raise unknown_image(aws, name)
        data = imgs.copy(to_region, ui.info)
        remember_region(get_paths(), to_region)
        if not ui.json_mode:
            ui.out.print(f"{name}: {data['source']} ({aws.region}) copied to {data['image_id']} ({to_region})",
                         markup=False)
        return {"name": name, **data}

    run_command(ctx, "image copy", body)


@image_app.command("delete", cls=Command, epilog="""
    mlops-env image delete course-2026
    mlops-env image delete course-2026 --yes
    mlops-env image delete course-2026 --region eu-west-1 --yes     # the EC2 image there
    """)
def delete_cmd(ctx: typer.Context, name: ImageName,
               yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
               region: Region = None, profile: Profile = None) -> None:
    """Delete an image (and anything an interrupted build left). Without --region the local
    Docker image; with --region the EC2 image there: AMIs deregistered, snapshots deleted, the
    builder removed, then a check that nothing tagged `mlops-env:image-build=NAME` remains.
    Workstations made from it keep running (a warning names them); `down` never deletes images."""

    def body(ui: Any) -> Any:
        from mlops_env.errors import NotFoundError
        from mlops_env.images import validate_image_name
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

        if region:
            return _delete_ec2(ui, name, region, profile, confirm)
        from mlops_env.providers.docker.images import DockerImages

        imgs = DockerImages(get_paths())
        # Warn before the question: the user decides knowing who uses it.
        users = imgs.in_use_by(name)
        if users:
            ui.warn(f"workstations made from image {name!r}: {', '.join(users)} (they keep running)")
        try:
            data = imgs.delete(name, ui.info, confirm)
        except NotFoundError as e:  # not a Docker image: an EC2 one needs its region
            from mlops_env.providers.ec2.imagebuild import build_state_regions

            regions = build_state_regions(get_paths())
            e.hint = (f"{e.hint}; an EC2 image? pass --region REGION"
                      + (f" (this machine built EC2 images in: {', '.join(regions)})" if regions else ""))
            raise
        if not ui.json_mode:
            ui.out.print(f"deleted: {', '.join(data['removed'])}" if data["removed"] else "nothing to delete",
                         markup=False)
        return data

    run_command(ctx, "image delete", body)


def _delete_ec2(ui: Any, name: str, region: str, profile: str | None, confirm: Any) -> dict[str, Any]:
    from mlops_env.errors import UsageError
    from mlops_env.images import clear_state, image_lock, read_state
    from mlops_env.paths import get_paths
    from mlops_env.providers.ec2.imagebuild import in_use_by, unknown_image
    from mlops_env.providers.ec2.images import Ec2Images
    from mlops_env.providers.ec2.session import Aws

    paths = get_paths()
    aws = Aws(region, profile)
    imgs = Ec2Images(aws, name)
    with image_lock(paths, name):
        left = imgs.leftovers()
        if not left:
            raise unknown_image(aws, name)
        have_image = [i for i in imgs.images() if i.get("State") in ("available", "pending")]
        users = in_use_by(aws).get(name, [])
        warnings = []
        if users:
            warnings.append(f"workstations made from image {name!r} keep running: {', '.join(users)} (their disks are "
                            "their own; they cannot be re-created from this image once it is gone)")
            ui.warn(warnings[-1])
        if have_image and not confirm(f"Delete image {name} ({', '.join(i['ImageId'] for i in have_image)}) in "
                                      f"{aws.region} and its snapshots?"):
            raise UsageError(f"image {name!r} was not deleted", hint="re-run with --yes to delete without a question",
                             code="not-confirmed")
        data = imgs.delete(ui.info)
        st = read_state(paths, name)
        if st and st.get("provider") == "ec2" and st.get("region") == aws.region:
            clear_state(paths, name)
    if not ui.json_mode:
        ui.out.print(f"deleted: {', '.join(data['removed']) or 'nothing'}; {data['verified']}", markup=False)
    return {**data, "deleted": bool(have_image), "in_use_by": users, "warnings": warnings}


def _size(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _age(s: int | None) -> str:
    if s is None:
        return "-"
    return f"{s // 86400}d" if s >= 86400 else f"{s // 3600}h" if s >= 3600 else f"{max(s // 60, 0)}m"


