"""Run the smoke test here, in-process, and map ridetrain's errors to the tool's errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_env.errors import (
    ExitCode,
    IntegrityError,
    Interrupted,
    MlopsError,
    NotFoundError,
    StepFailed,
    UsageError,
)

_BY_EXIT: dict[int, type[MlopsError]] = {
    ExitCode.USAGE: UsageError,
    ExitCode.NOT_FOUND: NotFoundError,
    ExitCode.INTEGRITY: IntegrityError,
    ExitCode.INTERRUPTED: Interrupted,
}


def as_mlops_error(err: Any) -> MlopsError:
    """A ``ridetrain.SmokeError`` as the matching ``mlops_env.errors`` class (code kept)."""
    try:
        exit_code = ExitCode(int(err.exit_code))
    except ValueError:
        exit_code = ExitCode.FAILED
    cls = _BY_EXIT.get(exit_code, StepFailed)
    return cls(err.message, err.hint, code=err.code, exit_code=exit_code)


def ridetrain_args(*, train: str | None, val: str | None, features: str | None,
                   sample: bool) -> list[str]:
    """The ridetrain command-line arguments for the user's choices (no paths of this host)."""
    args: list[str] = []
    if train:
        args += ["--train", train]
    if val:
        args += ["--val", val]
    if features:
        args += ["--features", features]
    if sample:
        args.append("--sample")
    return args


def run_local(*, train: str | None, val: str | None, features: str | None, sample: bool,
              report_dir: Path, cache_dir: Path, ui: Any) -> dict[str, Any]:
    """Train here; return ridetrain's data dict or raise ``MlopsError``."""
    from mlops_env.smoke import ridetrain

    try:
        return ridetrain.run(train=train, val=val, features=features, sample=sample,
                             report_dir=str(report_dir), cache_dir=str(cache_dir), log=ui.info)
    except ridetrain.SmokeError as e:
        if e.exit_code != ExitCode.USAGE:
            ridetrain.write_failure_report(str(report_dir), e)
        raise as_mlops_error(e) from e
