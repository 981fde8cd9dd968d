"""`mlops-env up` on the scripted fake box (``fake_target.FakeBox``), with one step whose
check, apply and errors print Rich markup (``[/opt/x]``, ``[bold]``, ``[x86_64]``).

Everything is the real CLI, pipeline, engine and transport, except two stand-ins: the provider
(``ExistingBox``: the box exists, its host key comes through a trusted channel) and the
connection (a login on the fake box instead of SSH). ``patch(box, mode, set_attr)`` installs
them (``set_attr`` is ``monkeypatch.setattr`` in a test, ``setattr`` in a subprocess).

As a program (for tests that need a real terminal and a real Ctrl-C)::

    python fake_up.py BOX_DIR MODE [mlops-env arguments ...]

MODE: ``ok``, ``fail`` or ``slow`` (apply writes ``~/.markup-step-started`` on the box, then
waits until ``~/.markup-step-release`` exists).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fake_target import FakeBox

from mlops_env.providers import Provider
from mlops_env.steps import ScriptCall, Step, StepContext, raise_for_script

MARKUP = ("[/opt/x]", "[bold]", "[x86_64]")

# A step script whose every message and output line carries Rich markup. `apply --fail` fails
# the way a real step does (an apt-like E: line, then the protocol's error line).
MARKUP_SCRIPT = r'''#!/usr/bin/env bash
set -euo pipefail
stamp="$HOME/.markup-step-done"
case "${1:-}" in
  check)
    if [ -f "$stamp" ]; then echo "mlops: built for [x86_64] in [/opt/x] [bold]"; exit 0; fi
    echo "mlops: not built for [x86_64] in [/opt/x] yet"; exit 1 ;;
  apply)
    echo "mlops: building [bold]not bold[/bold] in [/opt/x]"
    if [ "${2:-}" = --slow ]; then
      touch "$HOME/.markup-step-started"
      while [ ! -f "$HOME/.markup-step-release" ]; do sleep 0.1; done
    fi
    for i in $(seq 1 30); do echo "compiling unit $i for [x86_64]"; done
    echo "warning: [/opt/x] is nearly full [red]" >&2
    if [ "${2:-}" = --fail ]; then
      echo "E: cannot write [/opt/x]/lib: [red]Permission denied[/red]" >&2
      echo "mlops-error: cannot write [/opt/x] for [x86_64] [bold]" >&2
      echo "mlops-hint: check the permissions of [/opt/x] [dim]" >&2
      exit 1
    fi
    touch "$stamp" ;;
  verify) [ -f "$stamp" ] && echo "mlops: built for [x86_64] in [/opt/x] [bold]" ;;
  *) exit 2 ;;
esac
'''


class MarkupStep(Step):
    id = "markup"
    title = "markup"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def check_call(self, ctx: StepContext) -> ScriptCall:
        return ScriptCall("markup-step.sh", ("check",))

    def apply(self, ctx: StepContext) -> None:
        args = ("apply",) if self.mode == "ok" else ("apply", f"--{self.mode}")
        raise_for_script(self.id, ctx.run_call(self.id, ScriptCall("markup-step.sh", args)))


FAKE_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2UgaG9zdCBrZXkgb2YgdGhlIGZha2UgYm94ISE="


class ExistingBox(Provider):
    """Provider stand-in: the fake box already exists (as for `up ssh`) and its host key is
    known through a trusted channel, so the pipeline pins it without asking. The pipeline's
    hooks are the Provider base class's (a box that gets the bootstrap steps)."""

    kind = "ssh"

    def __init__(self, box: FakeBox) -> None:
        super().__init__(None)  # type: ignore[arg-type] - no paths: the fake box needs none
        self.box = box

    def plan(self, record: Any, options: Any) -> list[str]:
        return []

    def state(self, record: Any) -> dict[str, Any]:
        return {"state": "running"}

    def destroy(self, record: Any, progress: Any) -> list[str]:
        return []

    def ensure(self, record: Any, options: Any, key: Any, progress: Any) -> Any:
        from mlops_env.providers import Provisioned
        from mlops_env.state import Endpoint

        ep = Endpoint("127.0.0.1", 22, self.box.user, str(key.private_path), f"mlops-env-{record.name}")
        return Provisioned(ep, "unchanged", host_key=FAKE_HOST_KEY, detail="the fake box [/opt/x]")


def patch(box: FakeBox, mode: Callable[[], str] | str, set_attr: Callable[[Any, str, Any], None] = setattr) -> None:
    """Point ``up`` at the fake box; ``mode`` (or a function giving it) picks the step's mode."""
    from mlops_env import engine, pipeline
    from mlops_env import steps as steps_mod

    real_template = steps_mod.template

    def template(name: str) -> str:
        return MARKUP_SCRIPT if name == "markup-step.sh" else real_template(name)

    set_attr(steps_mod, "template", template)
    set_attr(engine, "template", template)
    set_attr(pipeline, "get_provider", lambda kind, paths: ExistingBox(box))
    set_attr(pipeline, "connect", lambda paths, ep, timeout: box.transport())
    set_attr(pipeline, "steps_for", lambda options, provider="": [MarkupStep(mode() if callable(mode) else mode)])


UP_ARGS = ("up", "ssh", "mk", "--host", "tester@127.0.0.1", "--smoke-test", "off", "--accept-anaconda-tos")


if __name__ == "__main__":
    patch(FakeBox(Path(sys.argv[1])), sys.argv[2])
    from mlops_env.cli import app

    app(sys.argv[3:], prog_name="mlops-env")
