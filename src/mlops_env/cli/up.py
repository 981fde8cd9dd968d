"""``mlops-env up docker|ssh``: create or resume a workstation and bootstrap it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops_env.cli import Command, SubGroup, app, complete_name, run_command

up_app = typer.Typer(
    cls=SubGroup,
    help="Create or resume a workstation and make it ready. Anaconda, Docker, the SSH config and "
    "the smoke-test training, on a local container, your own box, EC2 or a codespace. Re-running on "
    "a ready workstation changes nothing.",
    epilog="""
    mlops-env up docker --accept-anaconda-tos        # a local container `default`
    mlops-env up ssh course --host ubuntu@203.0.113.7  # your own box
    mlops-env up ec2 course --python-dist miniforge  # AWS (asks before it costs)
    mlops-env up docker --dry-run                    # what would change; changes nothing
    """,
    no_args_is_help=True, rich_markup_mode=None,
)
app.add_typer(up_app, name="up")

#: the values of the options with a fixed set (config.py validates them: one definition of what
#: is accepted; these only show and complete them)
PYTHON_DISTS = ("anaconda", "miniconda", "miniforge")
DOCKER_SOURCES = ("distro", "docker")
SMOKE_TESTS = ("course", "sample", "off")


def _choices(values: tuple[str, ...]) -> Any:
    """Completion of a fixed set of values."""
    return lambda incomplete: [v for v in values if v.startswith(incomplete)]


def _metavar(values: tuple[str, ...]) -> str:
    return "[" + "|".join(values) + "]"


NameArg = Annotated[str, typer.Argument(help="Workstation name ([a-z0-9-], 1-32).", autocompletion=complete_name)]
# Options shared by every provider (defaults may come from the config file or MLOPS_ENV_*).
PythonDist = Annotated[str | None, typer.Option(
    "--python-dist", metavar=_metavar(PYTHON_DISTS), autocompletion=_choices(PYTHON_DISTS),
    help="Python distribution (default anaconda, as the course; miniforge needs no terms).", show_default=False)]
AcceptTos = Annotated[bool | None, typer.Option(
    "--accept-anaconda-tos/--no-accept-anaconda-tos",
    help="Accept Anaconda's terms of service (needed for anaconda/miniconda).", show_default=False)]
CondaInstaller = Annotated[str | None, typer.Option(
    "--conda-installer", metavar="URL",
    help="Installer URL (http(s) or file:// on the box) replacing the pinned download.")]
CondaSha = Annotated[str | None, typer.Option("--conda-sha256", metavar="HEX",
                                                 help="sha256 of --conda-installer.")]
DockerSource = Annotated[str | None, typer.Option(
    "--docker-source", metavar=_metavar(DOCKER_SOURCES), autocompletion=_choices(DOCKER_SOURCES),
    help="distro (default: docker.io + compose) or docker (Docker's apt repository).")]
SmokeTest = Annotated[str | None, typer.Option(
    "--smoke-test", metavar=_metavar(SMOKE_TESTS), autocompletion=_choices(SMOKE_TESTS),
    help="course (default: downloads the TLC files), sample (synthetic data, no download) or off.")]
Forward = Annotated[bool | None, typer.Option(
    "--forward/--no-forward", help="Forward Jupyter 8888 and MLflow 5000 in the SSH config (default on).",
    show_default=False)]
SshTimeout = Annotated[int | None, typer.Option("--ssh-timeout", metavar="SECONDS",
                                                   help="How long to wait for the box's SSH server (default 60).")]
ConfigFile = Annotated[Path | None, typer.Option("--config", metavar="FILE",
                                                    help="YAML file with defaults for these options.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would change (and where each value "
                                                         "came from); change nothing.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to questions (never to trusting an "
                                                        "unknown host key).")]
Jobs = Annotated[int, typer.Option("--jobs", min=1, max=8, hidden=True,
                                   help="Steps applied at once (1 = one after another).")]
IdleStop = Annotated[str | None, typer.Option(
    "--idle-stop", metavar="DURATION",
    help="Power the box off after DURATION (30m, 2h, off) without SSH sessions, Jupyter runs, CPU "
    "load or running containers (default: 60m on ec2; off elsewhere). See docs/idle-stop.md.")]
MaxHours = Annotated[str | None, typer.Option(
    "--max-hours", metavar="N", help="Also power it off after N hours of uptime, whatever happens (0: no cap).")]
Serve = Annotated[bool | None, typer.Option(
    "--serve/--no-serve", help="After the smoke test, serve the model as a web service in Docker on "
    "the box (docker build, compose, 127.0.0.1:9696) and check its predictions, also through the SSH "
    "connection; see docs/smoke-test.md.", show_default=False)]

Clone = Annotated[str | None, typer.Option(
    "--clone", metavar="URL", help="Clone this git repository (https://, ssh://, git:// or USER@HOST:PATH) "
    "on the box, only if its folder is absent; `mlops-env code NAME` opens it.")]
CloneDir = Annotated[str | None, typer.Option(
    "--clone-dir", metavar="DIR", help="Folder for --clone under the home directory (default: the "
    "repository's name).")]


def _common(**kw: Any) -> dict[str, Any]:
    return {
        "python_dist": kw.get("python_dist"), "accept_anaconda_tos": kw.get("accept_tos"),
        "conda_installer": kw.get("conda_installer"), "conda_sha256": kw.get("conda_sha256"),
        "docker_source": kw.get("docker_source"), "smoke_test": kw.get("smoke_test"),
        "forward": kw.get("forward"), "ssh_timeout": kw.get("ssh_timeout"),
        "image": kw.get("image"), "user": kw.get("user"),
        "region": kw.get("region"), "profile": kw.get("profile"), "instance_type": kw.get("instance_type"),
        "disk_gb": kw.get("disk_gb"), "ami": kw.get("ami"), "spot": kw.get("spot"),
        "allow_cidr": kw.get("allow_cidr"), "subnet": kw.get("subnet"),
        "idle_stop": kw.get("idle_stop"), "max_hours": kw.get("max_hours"), "serve": kw.get("serve"),
        "from_image": kw.get("from_image"), "clone": kw.get("clone"), "clone_dir": kw.get("clone_dir"),
    }


def _run_up(ctx: typer.Context, provider: str, name: str, flags: dict[str, Any], config: Path | None,
            dry_run: bool, yes: bool, jobs: int,
            provider_data: Callable[[], dict[str, Any]] | None = None,
            fingerprint: str | None = None, provision_only: bool = False,
            summary: Callable[[Any, dict[str, Any]], None] | None = None) -> None:
    """``pipeline.up`` for every provider; ``summary(ui, data)`` replaces the default summary
    (a codespace's)."""
    def body(ui: Any) -> Any:
        from mlops_env import config as cfg
        from mlops_env.cli.progress import StepView
        from mlops_env.paths import get_paths
        from mlops_env.pipeline import Declined, Events, UpRequest, up
        from mlops_env.state import Store, validate_name

        validate_name(name)
        paths = get_paths()
        # The workstation's own options (how it was made) are the defaults of this run.
        known = Store(paths).find(name)
        mine = known if known is not None and known.provider == provider else None
        opts = cfg.resolve(flags, config_path=config, default_config=paths.config_file,
                           workstation=mine.options if mine else None,
                           workstation_sources=mine.option_sources if mine else None)
        req = UpRequest(name=name, provider=provider, options=opts,
                        provider_data=provider_data() if provider_data else {},
                        host_key_fingerprint=fingerprint, dry_run=dry_run, jobs=jobs,
                        provision_only=provision_only)
        if dry_run:
            data = up(req, paths, Events())
            _print_dry_run(ui, data)
            return data

        view = StepView(ui)
        live = False

        def ask(question: str, *, honour_yes: bool, declinable: bool) -> bool:
            """False when there is no terminal to ask on (the caller refuses with its own
            error); a "no" to a question asked before any change raises Declined."""
            if honour_yes and yes:
                return True
            if ui.json_mode or not ui.interactive:
                return False
            from rich.prompt import Confirm

            from mlops_env.output import literal

            with view.paused():
                try:
                    answer = bool(Confirm.ask(literal(question), console=ui.console, default=False))
                except EOFError:  # the terminal closed its input: that is no answer, so no
                    answer = False
            if not answer and declinable:
                raise Declined(question)
            return answer

        def started() -> None:
            # The live display starts with the first step, after the up-front questions:
            # it never draws over a question.
            nonlocal live
            if not live:
                live = True
                view.__enter__()

        def step(*a: Any, **k: Any) -> None:
            started()
            view.step(*a, **k)

        events = Events(
            progress=view.progress, step=step, warn=lambda m: ui.warn(m),
            confirm_host_key=lambda q: ask(q, honour_yes=False, declinable=True),
            confirm_terms=lambda q: ask(q, honour_yes=False, declinable=True),
            confirm=lambda q: ask(q, honour_yes=True, declinable=False),
        )
        if not ui.json_mode:
            ui.console.print(f"[bold]mlops-env up {provider} {name}[/bold]")
        try:
            data = up(req, paths, events)
        except Declined:
            if live:
                view.__exit__(None, None, None)
            ui.info("nothing changed")
            return {"name": name, "provider": provider, "declined": True, "changed": False}
        except BaseException as e:
            if live:
                view.__exit__(type(e), e, e.__traceback__)
            raise
        if live:
            view.__exit__(None, None, None)
        (summary or _print_summary)(ui, data)
        return data

    run_command(ctx, "up", body)


def _print_dry_run(ui: Any, data: dict[str, Any]) -> None:
    if ui.json_mode:
        return
    from mlops_env.config import applies

    c = ui.out
    c.print(f"[bold]dry run: mlops-env up {data['provider']} {data['name']}[/bold] (nothing is changed)")
    for line in data["provider_plan"]:
        c.print(f"  box:  {line}")
    for s in data["steps"]:
        if s.get("would_change"):
            c.print(f"  {s['id']:<11} would: {s['would_change']}")
        else:
            c.print(f"  {s['id']:<11} ok: {s['message']}")
    c.print("[bold]options[/bold]")
    for k, v in data["options"].items():
        if not applies(k, data["provider"]):
            continue
        c.print(f"  {k:<20} {v['value']!s:<28} [dim]({v['source']})[/dim]")


def _print_summary(ui: Any, data: dict[str, Any]) -> None:
    if ui.json_mode:
        return
    c = ui.out
    changed = sum(1 for s in data["steps"] if s["status"] == "changed")
    verdict = "ready, nothing to change" if changed == 0 else \
        f"ready ({changed} step{'' if changed == 1 else 's'} changed)"
    if data.get("provision_only"):
        verdict = "provisioned (--provision-only: no bootstrap, no smoke test)"
    c.print(f"\n[bold green]{data['name']}[/bold green] is {verdict} in {data['seconds']:.1f}s")
    if data.get("smoke"):
        s = data["smoke"]
        kind = "synthetic sample" if s.get("synthetic") else "course data"
        c.print(f"  smoke test   RMSE train {s['rmse_train']:.3f}, validation {s['rmse_val']:.3f} "
                f"min ({kind}, {s['train_rows']:,} rows)")
    c.print(f"  connect      {data['ssh_command']}")
    c.print(f"  VS Code      {data['code_command']}")
    c.print("  Jupyter      http://localhost:8888 (forwarded while `ssh` is connected)")
    cost = data.get("cost") or {}
    if cost.get("hourly_usd") is not None:
        c.print(f"  cost         ${cost['hourly_usd']:.4f}/hour while running ({cost.get('hourly_source')}); "
                f"`mlops-env stop {data['name']}` when you are done")
    if ui.log_file:
        c.print(f"  log          {ui.log_file}")


@up_app.command("docker", cls=Command, epilog="""
    mlops-env up docker --accept-anaconda-tos       # then: ssh mlops-default
    mlops-env up docker course --python-dist miniforge --smoke-test sample
    mlops-env up docker alice --from-image course-2026   # from a prebuilt image
    mlops-env up docker --image debian:12 --smoke-test sample --accept-anaconda-tos \\
      --conda-installer file:///opt/mirror/Anaconda3.sh --conda-sha256 HEX   # offline
    """)
def up_docker(
    ctx: typer.Context,
    name: NameArg = "default",
    image: Annotated[str | None, typer.Option("--image", metavar="IMAGE",
                                              help="Debian/Ubuntu base image (default ubuntu:24.04).")] = None,
    user: Annotated[str | None, typer.Option("--user", metavar="USER",
                                             help="Login user created in the container (default mlops).")] = None,
    python_dist: PythonDist = None, accept_tos: AcceptTos = None, conda_installer: CondaInstaller = None,
    conda_sha256: CondaSha = None, docker_source: DockerSource = None, smoke_test: SmokeTest = None,
    forward: Forward = None, ssh_timeout: SshTimeout = None, config: ConfigFile = None,
    dry_run: DryRun = False, yes: Yes = False, jobs: Jobs = 4,
    idle_stop: IdleStop = None, max_hours: MaxHours = None, serve: Serve = None,
    clone: Clone = None, clone_dir: CloneDir = None,
    from_image: Annotated[str | None, typer.Option(
        "--from-image", metavar="IMAGE|auto",
        help="Start from a prebuilt image (`mlops-env image build docker`); auto: the newest image of "
        "today's recipe, else a fresh bootstrap. Every step is still checked.")] = None,
) -> None:
    """A workstation in a local Docker container. Free: systemd, sshd on 127.0.0.1, its own
    Docker engine inside.

    The defaults need the network (the ubuntu:24.04 image, apt packages, the Anaconda installer,
    the course's data). Without Internet it needs an image that is already here (--image), an
    apt mirror the container reaches, --conda-installer file://... with --conda-sha256 (a file
    in the image) and --smoke-test sample."""
    flags = _common(**locals())
    _run_up(ctx, "docker", name, flags, config, dry_run, yes, jobs)


@up_app.command("ssh", cls=Command, epilog="""
    mlops-env up ssh course --host ubuntu@203.0.113.7 --identity ~/.ssh/course.pem
    mlops-env up ssh lab --host me@lab.example.org:2222 --host-key-fingerprint SHA256:...
    """)
def up_ssh(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Workstation name ([a-z0-9-], 1-32).", autocompletion=complete_name)],
    host: Annotated[str, typer.Option("--host", metavar="USER@HOST[:PORT]", help="The box to use.")],
    identity: Annotated[Path | None, typer.Option("--identity", metavar="KEYFILE",
                                                     help="Private key to log in with (default: mlops-env's key).")] = None,
    host_key_fingerprint: Annotated[str | None, typer.Option(
        "--host-key-fingerprint", metavar="SHA256:...",
        help="The box's host key fingerprint, to trust it without a question.")] = None,
    python_dist: PythonDist = None, accept_tos: AcceptTos = None, conda_installer: CondaInstaller = None,
    conda_sha256: CondaSha = None, docker_source: DockerSource = None, smoke_test: SmokeTest = None,
    forward: Forward = None, ssh_timeout: SshTimeout = None, config: ConfigFile = None,
    dry_run: DryRun = False, yes: Yes = False, jobs: Jobs = 4,
    idle_stop: IdleStop = None, max_hours: MaxHours = None, serve: Serve = None,
    clone: Clone = None, clone_dir: CloneDir = None,
) -> None:
    """Bring your own box. Any Ubuntu 22.04/24.04 or Debian 12 machine you can SSH into (with
    passwordless sudo); the first contact shows its host key for you to confirm."""
    flags = _common(**locals())

    def target() -> dict[str, Any]:
        from mlops_env.errors import UsageError
        from mlops_env.providers.ssh import parse_target

        data: dict[str, Any] = {"target": str(parse_target(host))}
        if identity is not None:
            p = identity.expanduser().absolute()
            if not p.is_file():
                raise UsageError(f"identity file {p} not found", hint="check --identity", code="identity-missing")
            data["identity"] = str(p)
        return data

    _run_up(ctx, "ssh", name, flags, config, dry_run, yes, jobs, target, host_key_fingerprint)


@up_app.command("ec2", cls=Command, epilog="""
    mlops-env up ec2 course --region eu-west-1 --accept-anaconda-tos
    mlops-env up ec2 course --spot --idle-stop 30m --max-hours 8
    mlops-env up ec2 course --dry-run          # the plan and its price; nothing is made
    mlops-env up ec2 alice --from-image course-2026   # from a prebuilt image (`image build ec2`)
    """)
def up_ec2(
    ctx: typer.Context,
    name: NameArg = "default",
    region: Annotated[str | None, typer.Option(
        "--region", metavar="REGION", help="AWS region (default: AWS_REGION or your profile's).")] = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", metavar="PROFILE",
        help="AWS profile (default: AWS_PROFILE / the standard credential chain).")] = None,
    instance_type: Annotated[str | None, typer.Option(
        "--instance-type", metavar="TYPE", help="Instance type (default t3.xlarge: 4 vCPU, 16 GiB).")] = None,
    disk_gb: Annotated[int | None, typer.Option(
        "--disk-gb", metavar="GB", help="Root volume in GB, gp3, encrypted (default 30; 20..2000).")] = None,
    ami: Annotated[str | None, typer.Option(
        "--ami", metavar="AMI", help="ubuntu-24.04 (default), ubuntu-22.04 or an ami-... id.")] = None,
    spot: Annotated[bool | None, typer.Option(
        "--spot/--on-demand", help="A spot instance (cheaper; AWS may stop it) instead of on-demand.",
        show_default=False)] = None,
    allow_cidr: Annotated[str | None, typer.Option(
        "--allow-cidr", metavar="CIDR", help="Who may reach SSH (default: your public IP as /32).")] = None,
    subnet: Annotated[str | None, typer.Option(
        "--subnet", metavar="SUBNET_ID", help="Subnet to launch in (default: the default VPC's).")] = None,
    provision_only: Annotated[bool, typer.Option(
        "--provision-only", help="Create or resume the instance and write the SSH config; no SSH "
        "connection, no bootstrap, no smoke test.")] = False,
    python_dist: PythonDist = None, accept_tos: AcceptTos = None, conda_installer: CondaInstaller = None,
    conda_sha256: CondaSha = None, docker_source: DockerSource = None, smoke_test: SmokeTest = None,
    forward: Forward = None, ssh_timeout: SshTimeout = None, config: ConfigFile = None,
    dry_run: DryRun = False, yes: Yes = False, jobs: Jobs = 4,
    idle_stop: IdleStop = None, max_hours: MaxHours = None, serve: Serve = None,
    from_image: Annotated[str | None, typer.Option(
        "--from-image", metavar="IMAGE|ami-...|auto",
        help="Boot a new instance from a prebuilt image (`mlops-env image build ec2`) or AMI; auto: the "
        "newest image of today's recipe in the region, else a fresh bootstrap. Every step is still checked.")] = None,
    clone: Clone = None, clone_dir: CloneDir = None,
) -> None:
    """A workstation on an AWS EC2 instance. SSH only from your IP, host key pinned before the
    first connection, encrypted disk, idle stop after 60 minutes; stop/start/down manage its
    cost. See docs/ec2.md."""
    flags = _common(**locals())
    _run_up(ctx, "ec2", name, flags, config, dry_run, yes, jobs, provision_only=provision_only)

@up_app.command("codespace", cls=Command, epilog="""
    mlops-env up codespace course --repo YOU/mlops-zoomcamp --idle-timeout 30m
    mlops-env up codespace course                  # again: the repository is remembered
    """)
def up_codespace(
    ctx: typer.Context,
    name: NameArg = "default",
    repo: Annotated[str | None, typer.Option(
        "--repo", metavar="OWNER/REPO", help="The repository with the dev container (remembered after the first up).")] = None,
    branch: Annotated[str | None, typer.Option(
        "--branch", metavar="BRANCH", help="Branch to open (default: the repository's default branch).")] = None,
    machine: Annotated[str | None, typer.Option(
        "--machine", metavar="TYPE", help="Machine type, e.g. basicLinux32gb, standardLinux32gb (default: the smallest allowed "
        "one with 4 cores and 16 GB).")] = None,
    idle_timeout: Annotated[str | None, typer.Option(
        "--idle-timeout", metavar="DURATION", help="Stop after this much inactivity, e.g. 30m (5m..4h; default: "
        "your GitHub setting).")] = None,
    retention: Annotated[str | None, typer.Option(
        "--retention", metavar="DURATION", help="Delete this long after it stops, e.g. 7d (0m..30d; default: your "
        "GitHub setting).")] = None,
    provision_only: Annotated[bool, typer.Option(
        "--provision-only", help="Create or resume the codespace and write the SSH alias; no doctor, no smoke "
        "test.")] = False,
    python_dist: PythonDist = None, smoke_test: SmokeTest = None, forward: Forward = None,
    ssh_timeout: SshTimeout = None, config: ConfigFile = None, dry_run: DryRun = False, yes: Yes = False,
) -> None:
    """A workstation in a GitHub Codespace. The repository needs the dev container (`mlops-env
    devcontainer init`); SSH alias through the GitHub CLI, then doctor and the smoke test inside
    it. Token: GH_TOKEN, GITHUB_TOKEN or `gh auth token` (codespace scope). See docs/codespace.md."""
    flags = _common(python_dist=python_dist, smoke_test=smoke_test, forward=forward, ssh_timeout=ssh_timeout)
    flags.update(repo=repo, branch=branch, machine=machine, idle_timeout=idle_timeout, retention=retention)

    _run_up(ctx, "codespace", name, flags, config, dry_run, yes, 1, provision_only=provision_only,
            summary=_print_codespace_summary)


def _print_codespace_summary(ui: Any, data: dict[str, Any]) -> None:
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
