"""Refusals before anything changes on a box: an unsupported OS or a sudo that asks for a
password (``preflight``), and Anaconda's terms of service (``terms``), for ``up`` and
``doctor --fix`` alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_env.config import Resolved
from mlops_env.errors import PrereqError
from mlops_env.steps import StepContext

if TYPE_CHECKING:
    from mlops_env.engine import Plan
    from mlops_env.events import Events


def preflight(plan: Plan, ctx: StepContext) -> None:
    """Refuse before changing anything: unsupported OS, or sudo that asks for a password."""
    from mlops_env.errors import UnsupportedError

    base = plan.checks.get("base")
    if base is not None and base.exit_code == 3:
        raise UnsupportedError(base.message, hint=base.hint, code="unsupported-os")
    pending_sudo = [s.id for s in plan.pending() if s.sudo]
    if pending_sudo and plan.facts.sudo not in ("root", "ok"):
        what = "asks for a password" if plan.facts.sudo == "password" else "is not installed"
        raise UnsupportedError(
            f"sudo on {ctx.transport.where} {what}; the steps {', '.join(pending_sudo)} need root",
            hint=f"allow passwordless sudo for {plan.facts.get('user')} "
            f"(echo '{plan.facts.get('user')} ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/mlops-env), "
            "or connect as root",
            code="sudo-password",
        )


def terms_question(label: str) -> str:
    return (f"{label} is distributed under Anaconda's terms of service "
            "(https://www.anaconda.com/legal/terms).\nAccept them? (No: stop here; "
            "`--python-dist miniforge` installs conda-forge's Miniforge, which has no such terms)")


def terms_refused(label: str) -> PrereqError:
    return PrereqError(
        f"{label} requires accepting Anaconda's terms of service",
        hint="re-run with --accept-anaconda-tos (https://www.anaconda.com/legal/terms), "
        "or use --python-dist miniforge (conda-forge, no terms to accept)",
        code="terms-not-accepted",
    )


def accepted(opts: Resolved) -> Resolved:
    values, sources = dict(opts.values), dict(opts.sources)
    values["accept_anaconda_tos"], sources["accept_anaconda_tos"] = True, "answered on the terminal"
    return Resolved(values=values, sources=sources)


def terms(plan: Plan, ctx: StepContext, events: Events) -> Resolved:
    """Anaconda's and Miniconda's terms must be accepted explicitly before their installer runs:
    ``--accept-anaconda-tos``, or a question on a terminal that names Miniforge as the
    alternative. Refused before anything changes."""
    from mlops_env.installers import resolve as resolve_installer

    opts = ctx.options
    if opts["accept_anaconda_tos"] or "conda" not in {s.id for s in plan.pending()}:
        return opts
    inst = resolve_installer(opts["python_dist"], plan.facts.arch, url=opts.get("conda_installer"),
                             sha256=opts.get("conda_sha256"))
    if not inst.terms_of_service:
        return opts
    if not events.confirm_terms(terms_question(inst.label)):
        raise terms_refused(inst.label)
    return accepted(opts)
