"""The step ``clone``: a git repository (``up --clone URL [--clone-dir DIR]``, a roster's
``repo:``) cloned on the box, once. An existing folder is never touched (templates/clone.sh)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_env.gitrepo import check_dir, check_url, default_dir
from mlops_env.steps import ScriptCall, Step, StepContext, raise_for_script

if TYPE_CHECKING:
    from mlops_env.config import Resolved


def clone_dir(options: Resolved | dict) -> str | None:  # type: ignore[type-arg]
    """The folder (relative to the home directory) of the options' ``clone``, or None."""
    url = options.get("clone")
    if not url:
        return None
    return str(options.get("clone_dir") or default_dir(str(url)))


class CloneStep(Step):
    id = "clone"
    title = "course repository"
    needs = ("base",)  # git comes with the base packages

    def __init__(self, url: str, directory: str) -> None:
        # Validated again here: the values reach a remote shell script (as quoted arguments).
        self.url = check_url(url)
        self.dir = check_dir(directory)

    def check_call(self, ctx: StepContext) -> ScriptCall:
        return ScriptCall("clone.sh", ("check", "--url", self.url, "--dir", self.dir))

    def apply(self, ctx: StepContext) -> None:
        raise_for_script(self.id, ctx.run_call(self.id, ScriptCall(
            "clone.sh", ("apply", "--url", self.url, "--dir", self.dir))))

    def describe_apply(self, ctx: StepContext) -> str:
        return f"git clone {self.url} into ~/{self.dir} (only if that folder is absent)"


def steps_for(options: Resolved) -> list[Step]:
    d = clone_dir(options)
    return [CloneStep(str(options["clone"]), d)] if d else []
