"""The ``mlops-env`` command line (Typer).

Start-up must stay fast: this package imports only typer and the standard library. Heavy
modules (boto3, paramiko, docker, rich, pandas) are imported inside command bodies.

Global options (``--json``, ``-v``, ``--debug``) may appear anywhere before a ``--``; the
group hoists them in front of the sub-command so ``mlops-env up docker --json`` works.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer >= 0.24 vendors click (typer._click); older releases use the click package
    from typer._click.exceptions import ClickException  # type: ignore[import-not-found]
    from typer.exceptions import Abort  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import Abort, ClickException  # type: ignore[assignment]

from mlops_env import __version__
from mlops_env.errors import ExitCode, Interrupted, MlopsError


def _log() -> Any:
    """The package logger; `logging` is imported when a command runs, not for `--help`."""
    import logging

    return logging.getLogger("mlops_env")

_HOISTED = {"--json", "--debug", "--verbose"}


def _is_global(token: str) -> bool:
    return token in _HOISTED or (len(token) >= 2 and token[0] == "-" and set(token[1:]) == {"v"})


def hoist_globals(args: list[str]) -> list[str]:
    """Move global flags in front of the sub-command (never past a ``--``)."""
    if "--" in args:
        cut = args.index("--")
        head, tail = args[:cut], args[cut:]
    else:
        head, tail = args, []
    flags = [a for a in head if _is_global(a)]
    rest = [a for a in head if not _is_global(a)]
    return flags + rest + tail


#: complete_var of shell completion (Typer's, from the program name): see _Group.main
COMPLETE_VAR = "_MLOPS_ENV_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell")
#: the order of `mlops-env --help`'s commands: the one a new user needs first, then the rest
#: as README's Commands table lists them
COMMAND_ORDER = ("up", "list", "status", "ssh", "code", "stop", "start", "down", "idle-stop",
                 "doctor", "smoke-test", "image", "devcontainer", "class", "join")


def _arg_metavar(param: Any) -> str:
    """One notation for arguments everywhere: ``NAME`` (its metavar, else its name upper-cased)."""
    name = str(param.metavar or (param.name or "").upper())
    return name + ("..." if param.nargs != 1 else "")


class _HelpMixin:
    """Help that can be scanned: arguments as ``NAME`` / ``[NAME]`` (never Typer's ``{name}``
    nor a Python type such as ``<str>``), and the epilog as an "Examples" section whose lines
    are kept as written (click would re-wrap them into one paragraph)."""

    options_metavar: str | None
    epilog: str | None

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        rv = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            if param.param_type_name == "argument":
                meta = str(param.metavar or (param.name or "").upper())
                meta = meta if param.required else f"[{meta}]"
                rv.append(meta + ("..." if param.nargs != 1 else ""))
            else:
                rv.extend(param.get_usage_pieces(ctx))
        rv.extend(self._usage_tail())
        return rv

    def _usage_tail(self) -> list[str]:
        return []

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            rv = param.get_help_record(ctx)
            if rv is None:
                continue
            if param.param_type_name == "argument":
                args.append((_arg_metavar(param), rv[1]))
            else:
                opts.append(rv)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)
        self._format_commands(ctx, formatter)

    def _format_commands(self, ctx: Any, formatter: Any) -> None:
        pass

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        if not self.epilog:
            return
        import textwrap

        with formatter.section("Examples"):
            for line in textwrap.dedent(self.epilog).strip("\n").splitlines():
                formatter.write(f"{'':>{formatter.current_indent}}{line.rstrip()}\n" if line.strip() else "\n")


class Command(_HelpMixin, TyperCommand):
    """Every mlops-env command (``@app.command(..., cls=Command)``): see ``_HelpMixin``."""


class SubGroup(_HelpMixin, TyperGroup):
    """A command group below the root (``up``, ``devcontainer``): see ``_HelpMixin``."""

    def _usage_tail(self) -> list[str]:
        return [self.subcommand_metavar] if getattr(self, "subcommand_metavar", None) else []

    def _format_commands(self, ctx: Any, formatter: Any) -> None:
        self.format_commands(ctx, formatter)


class _Group(SubGroup):
    """Root group: hoists global flags, lists ``up`` first, completes in the shell and renders
    usage errors as JSON under ``--json``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_globals(list(args)))

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(super().list_commands(ctx))
        return sorted(names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER))

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,  # type: ignore[override]
             standalone_mode: bool = True, **extra: Any) -> Any:
        if os.environ.get(COMPLETE_VAR):  # a shell asks for completions: Typer's protocol
            _completion_init()
        argv = list(sys.argv[1:] if args is None else args)
        head = argv[: argv.index("--")] if "--" in argv else argv
        json_mode = "--json" in head
        try:
            rv = super().main(args=argv, prog_name=prog_name or "mlops-env",
                              complete_var=complete_var, standalone_mode=False, **extra)
        except ClickException as e:
            if json_mode:
                from mlops_env.output import UI, Outcome

                UI(json_mode=True).emit_json(Outcome(
                    errors=[{"code": "usage", "message": e.format_message(),
                             "hint": "see `mlops-env --help`"}],
                    exit_code=ExitCode.USAGE))
            else:
                e.show()
            code = e.exit_code if e.exit_code else ExitCode.USAGE
            if not standalone_mode:
                return code
            sys.exit(code)
        except Abort:
            sys.stderr.write("\naborted\n")
            if not standalone_mode:
                return ExitCode.INTERRUPTED
            sys.exit(ExitCode.INTERRUPTED)
        if not standalone_mode:
            return rv
        sys.exit(rv or 0)


@dataclass
class AppState:
    json_mode: bool = False
    verbose: int = 0
    debug: bool = False
    _ui: Any = field(default=None, repr=False)

    @property
    def ui(self) -> Any:
        if self._ui is None:
            from mlops_env.output import UI

            self._ui = UI(json_mode=self.json_mode, verbose=self.verbose, debug=self.debug)
        return self._ui


app = typer.Typer(
    cls=_Group,
    name="mlops-env",
    help="A ready MLOps workstation in one command: Anaconda, Docker, VS Code Remote-SSH, "
    "proven by training the course's ride-duration model.",
    epilog="""
    mlops-env up docker --accept-anaconda-tos     # a workstation in a local container
    mlops-env status default                      # how it is; `ssh mlops-default` to use it
    mlops-env COMMAND --help                      # each command's options and examples
    """,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,  # our own --install-completion/--show-completion SHELL (see _root)
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlops-env {__version__}")
        raise typer.Exit(0)


def _completion_init() -> None:
    """Register Typer's completion classes (its bash/zsh/fish/PowerShell protocol); done only
    when a shell asks or a script is wanted, not for every run."""
    from typer._completion_classes import completion_init

    completion_init()


def _shell(value: str) -> str:
    shell = value.strip().lower()
    if shell == "pwsh":
        shell = "powershell"
    if shell not in SHELLS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(SHELLS)}")
    return shell


def _show_completion(ctx: typer.Context, value: str | None) -> None:
    if not value or ctx.resilient_parsing:
        return
    from typer._completion_shared import get_completion_script

    _completion_init()
    typer.echo(get_completion_script(prog_name="mlops-env", complete_var=COMPLETE_VAR, shell=_shell(value)))
    raise typer.Exit(0)


def _install_completion(ctx: typer.Context, value: str | None) -> None:
    if not value or ctx.resilient_parsing:
        return
    from typer._completion_shared import install

    _completion_init()
    shell, path = install(shell=_shell(value), prog_name="mlops-env", complete_var=COMPLETE_VAR)
    typer.echo(f"{shell} completion installed in {path}; it works in new shells (or source that file now)")
    raise typer.Exit(0)


def complete_name(incomplete: str) -> list[str]:
    """Shell completion of workstation names: the state records' file names (``state/NAME.json``;
    nothing is parsed, nothing heavy imported, so a TAB costs a directory listing)."""
    from mlops_env.paths import get_paths

    try:
        names = sorted(p.name[:-5] for p in get_paths().state_dir.iterdir()
                       if p.name.endswith(".json") and not p.name.startswith("."))
    except OSError:
        return []
    return [n for n in names if n.startswith(incomplete)]


@app.callback()
def _root(
    ctx: typer.Context,
    json_mode: bool = typer.Option(False, "--json", help="Print exactly one JSON document on stdout."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More detail (repeat for more)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug output."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    install_completion: str | None = typer.Option(
        None, "--install-completion", metavar="[bash|zsh|fish|powershell]", callback=_install_completion,
        is_eager=True, expose_value=False, autocompletion=lambda: list(SHELLS),
        help="Install TAB completion of commands, options and workstation names for that shell."),
    show_completion: str | None = typer.Option(
        None, "--show-completion", metavar="[bash|zsh|fish|powershell]", callback=_show_completion,
        is_eager=True, expose_value=False, autocompletion=lambda: list(SHELLS),
        help="Print that shell's completion script (to install it yourself)."),
) -> None:
    ctx.obj = AppState(json_mode=json_mode, verbose=verbose, debug=debug)


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):  # sub-app invoked directly (tests)
        obj = AppState()
        ctx.find_root().obj = obj
    return obj


def run_command(ctx: typer.Context, name: str, body: Callable[[Any], Any]) -> None:
    """Run a command body and turn its result or error into output and an exit code.

    ``body(ui)`` returns a dict (the ``data`` of the envelope) or an ``Outcome``; it raises
    ``MlopsError`` for user-facing failures. Anything else is a bug: logged with its
    traceback, shown only with ``--debug``.
    """
    from mlops_env.output import Outcome
    from mlops_env.paths import get_paths

    st = state(ctx)
    ui = st.ui
    try:
        ui.start_log(get_paths().logs, name)
    except OSError as e:  # a read-only home must not stop read-only commands
        _log().debug("no log file: %s", e)
    _log().debug("mlops-env %s: %s", __version__, " ".join(sys.argv[1:]))
    try:
        result = body(ui)
        outcome = result if isinstance(result, Outcome) else Outcome(data=result or {})
    except MlopsError as e:
        err = e.as_dict()
        output = getattr(e, "output", None)  # a failed step's last lines (steps.raise_for_script)
        if output:
            err["output"] = str(output)
        outcome = Outcome(data=getattr(e, "data", None) or {}, errors=[err], exit_code=e.exit_code)
    except KeyboardInterrupt:
        e2 = Interrupted("interrupted", hint="run the same command again: it picks up where it stopped")
        outcome = Outcome(errors=[e2.as_dict()], exit_code=e2.exit_code)
    except Exception as e:  # noqa: BLE001 - the one place that turns bugs into a clean exit
        _log().exception("unexpected error")
        if st.debug:
            import traceback

            from mlops_env.output import mask_secrets

            sys.stderr.write(mask_secrets(traceback.format_exc()))
        where = f"details in {ui.log_file}" if ui.log_file else "re-run with --debug"
        outcome = Outcome(
            errors=[{"code": "internal", "message": f"unexpected error: {type(e).__name__}: {e}",
                     "hint": f"this is a bug in mlops-env; {where}"}],
            exit_code=ExitCode.INTERNAL,
        )
    _report(ui, outcome)
    raise typer.Exit(int(outcome.exit_code))


def _report(ui: Any, outcome: Any) -> None:
    """Errors to the log and the terminal (or the one JSON document). Whatever the errors
    carry (text from users, files, boxes), this never raises: if rendering fails, the error is
    written as plain text and the exit code stays the command's."""
    from mlops_env.output import plain_error

    for err in outcome.errors:
        _log().error("%s: %s (hint: %s)", err.get("code"), err.get("message"), err.get("hint"))
    if ui.json_mode:
        try:
            ui.emit_json(outcome)
        except Exception:  # noqa: BLE001 - a last resort: one valid document, no traceback
            _log().exception("could not write the JSON document")
            import json

            doc = {"status": "error", "exit_code": int(outcome.exit_code), "data": {},
                   "errors": [{"code": "internal", "message": "could not write the result as JSON",
                               "hint": "this is a bug in mlops-env; see the log file"}]}
            try:
                sys.stdout.write(json.dumps(doc) + "\n")
            except OSError:
                pass
        return
    for err in outcome.errors:
        message, hint, output = str(err.get("message")), err.get("hint"), err.get("output")
        try:
            ui.error(message, hint, output)
        except Exception:  # noqa: BLE001 - rendering must never turn an error into a traceback
            _log().exception("could not render the error; writing it as plain text")
            sys.stderr.write(plain_error(message, hint, output))
            sys.stderr.flush()


# Sub-command modules register themselves on ``app``; keep this list in sync with README.
from mlops_env.cli import classroom, devcontainer, doctor, idlestop, image, lifecycle, smoke, up  # noqa: E402,F401


def main() -> None:
    app()
