"""The ``mlops-env`` command line (Typer).

Start-up must stay fast: this package imports only typer and the standard library. Heavy
modules (boto3, paramiko, docker, rich, pandas) are imported inside command bodies.

Global options (``--json``, ``-v``, ``--debug``) may appear anywhere before a ``--``; the
group hoists them in front of the sub-command so ``mlops-env up docker --json`` works.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.24 vendors click (typer._click); older releases use the click package
    from typer._click.exceptions import ClickException  # type: ignore[import-not-found]
    from typer.exceptions import Abort  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import Abort, ClickException  # type: ignore[assignment]

from mlops_env import __version__
from mlops_env.errors import ExitCode, Interrupted, MlopsError

log = logging.getLogger("mlops_env")

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


class _Group(TyperGroup):
    """Root group: hoists global flags and renders usage errors as JSON under ``--json``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_globals(list(args)))

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,  # type: ignore[override]
             standalone_mode: bool = True, **extra: Any) -> Any:
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
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlops-env {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    json_mode: bool = typer.Option(False, "--json", help="Print exactly one JSON document on stdout."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More detail (repeat for more)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug output."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
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
        log.debug("no log file: %s", e)
    log.debug("mlops-env %s: %s", __version__, " ".join(sys.argv[1:]))
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
        log.exception("unexpected error")
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
        log.error("%s: %s (hint: %s)", err.get("code"), err.get("message"), err.get("hint"))
    if ui.json_mode:
        try:
            ui.emit_json(outcome)
        except Exception:  # noqa: BLE001 - a last resort: one valid document, no traceback
            log.exception("could not write the JSON document")
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
            log.exception("could not render the error; writing it as plain text")
            sys.stderr.write(plain_error(message, hint, output))
            sys.stderr.flush()


# Sub-command modules register themselves on ``app``; keep this list in sync with README.
from mlops_env.cli import devcontainer, doctor, idlestop, lifecycle, smoke, up  # noqa: E402,F401


def main() -> None:
    app()
