"""The workstation's bootstrap steps, in dependency order:

    base ──> conda ──> smoke
      └────> docker
    ssh-config (local, independent)
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mlops_env.errors import PrereqError, StepFailed
from mlops_env.installers import Installer
from mlops_env.installers import resolve as resolve_installer
from mlops_env.steps import Facts, ScriptCall, Step, StepContext, raise_for_script

log = logging.getLogger(__name__)


class BaseStep(Step):
    id = "base"
    title = "base packages"
    sudo = True

    def check_call(self, ctx: StepContext) -> ScriptCall:
        return ScriptCall("base.sh", ("check",))

    def apply(self, ctx: StepContext) -> None:
        raise_for_script(self.id, ctx.run_call(self.id, ScriptCall("base.sh", ("apply",), sudo=True)))

    def describe_apply(self, ctx: StepContext) -> str:
        return "apt-get install curl, ca-certificates, git, bzip2 and friends"


class CondaStep(Step):
    id = "conda"
    title = "conda"
    needs = ("base",)

    def dependencies(self, facts: Facts) -> tuple[str, ...]:
        # The download and install need only curl, bzip2 and CA certificates: when the box
        # has them, start at once, alongside the apt work of the base and docker steps.
        if all(facts.has(t) for t in ("curl", "bzip2")) and facts.get("ca_certs") == "1":
            return ()
        return self.needs

    def installer(self, ctx: StepContext) -> Installer:
        o = ctx.options
        return resolve_installer(o["python_dist"], ctx.facts.arch,
                                 url=o.get("conda_installer"), sha256=o.get("conda_sha256"))

    @staticmethod
    def prefix_name(dist: str) -> str:
        from mlops_env.installers import table

        return str(table()[dist]["prefix"])

    def prefix(self, ctx: StepContext) -> str:
        """The install prefix, ``~/``-relative: the scripts expand it on the box, so checks
        can be built before the box's facts are known (one batched round-trip)."""
        return f"~/{self.prefix_name(ctx.options['python_dist'])}"

    def python(self, ctx: StepContext) -> str:
        return f"{self.prefix(ctx)}/bin/python"

    def check_call(self, ctx: StepContext) -> ScriptCall:
        return ScriptCall("conda.sh", ("check", "--prefix", self.prefix(ctx),
                                       "--dist", ctx.options["python_dist"]))

    def verify_call(self, ctx: StepContext) -> ScriptCall:
        # After an install, really import the libraries (the check only looks them up).
        return ScriptCall("conda.sh", ("verify", "--prefix", self.prefix(ctx),
                                       "--dist", ctx.options["python_dist"]))

    def needs_terms(self, ctx: StepContext) -> bool:
        return self.installer(ctx).terms_of_service

    def apply(self, ctx: StepContext) -> None:
        inst = self.installer(ctx)
        if inst.terms_of_service and not ctx.options["accept_anaconda_tos"]:
            raise PrereqError(
                f"{inst.label} requires accepting Anaconda's terms of service",
                hint="re-run with --accept-anaconda-tos (https://www.anaconda.com/legal/terms), "
                "or use --python-dist miniforge (conda-forge, no terms to accept)",
                code="terms-not-accepted",
            )
        args = ["apply", "--prefix", self.prefix(ctx), "--dist", inst.dist, "--url", inst.url,
                "--tos", "1" if ctx.options["accept_anaconda_tos"] else "0",
                "--packages", " ".join(inst.packages)]
        if inst.sha256:
            args += ["--sha256", inst.sha256]
        elif inst.sha256_url:
            args += ["--sha256-url", inst.sha256_url]
        raise_for_script(self.id, ctx.run_call(self.id, ScriptCall("conda.sh", tuple(args))))

    def describe_apply(self, ctx: StepContext) -> str:
        inst = self.installer(ctx)
        check = f"sha256 {inst.sha256[:12]}…" if inst.sha256 else "vendor sha256 file"
        return f"install {inst.label} ({inst.arch}) into {self.prefix(ctx)} from {inst.url} ({check})"


class DockerStep(Step):
    id = "docker"
    title = "docker"
    needs = ("base",)
    sudo = True
    verify_fresh_session = True

    def check_call(self, ctx: StepContext) -> ScriptCall:
        return ScriptCall("docker.sh", ("check",))

    def apply(self, ctx: StepContext) -> None:
        call = ScriptCall("docker.sh", ("apply", "--user", ctx.facts.get("user"),
                                        "--source", ctx.options["docker_source"]), sudo=True)
        raise_for_script(self.id, ctx.run_call(self.id, call))

    def verify_call(self, ctx: StepContext) -> ScriptCall:
        # Runs in a fresh login (verify_fresh_session), so that the new docker group membership
        # applies, and runs a real container as the user.
        return ScriptCall("docker.sh", ("verify",))

    def describe_apply(self, ctx: StepContext) -> str:
        src = ctx.options["docker_source"]
        pk = "docker-ce from Docker's apt repository" if src == "docker" else "docker.io and compose from the distribution"
        return f"install {pk}, start the service, add {ctx.facts.get('user') or 'the user'} to the docker group"


class SmokeStep(Step):
    id = "smoke"
    title = "smoke test"
    needs: tuple[str, ...] = ("conda",)

    def __init__(self, conda: CondaStep, serve: bool = False) -> None:
        self.conda = conda
        self.serve = serve  # `up --serve` (issue 15): then serve the model in Docker and check it
        if serve:
            self.needs = ("conda", "docker")

    def mode(self, ctx: StepContext) -> str:
        return str(ctx.options["smoke_test"])

    def key(self, ctx: StepContext) -> str:
        return f"{self.mode(ctx)}:{self.conda.python(ctx)}" + (":serve" if self.serve else "")

    def check_call(self, ctx: StepContext) -> ScriptCall:
        return ScriptCall("smoke.sh", ("check", "--key", self.key(ctx)))

    def ridetrain_args(self, ctx: StepContext) -> list[str]:
        return ["--sample"] if self.mode(ctx) == "sample" else []

    def apply(self, ctx: StepContext) -> None:
        upload_program(ctx.transport)
        call = ScriptCall("smoke.sh", ("apply", "--key", self.key(ctx), "--python", self.conda.python(ctx),
                                       "--", *self.ridetrain_args(ctx)))
        res = ctx.run_call(self.id, call)
        report = last_json(res.stdout)
        if report is not None:
            ctx.data["smoke"] = report
        if res.ok and report is not None and report.get("status") == "ok":
            if self.serve:
                self.apply_serve(ctx, report)
            return
        if report and report.get("errors"):
            err = report["errors"][0]
            hint = err.get("hint")
            if self.mode(ctx) == "course" and err.get("code") in ("download", "download-failed", "network"):
                hint = "the box cannot download the TLC data: use --smoke-test sample (offline, synthetic data)"
            raise StepFailed(f"step smoke failed: {err.get('message')}", hint=hint)
        raise_for_script(self.id, res)
        raise StepFailed("step smoke failed: the training printed no report",
                         hint="see the log file for its output")

    def apply_serve(self, ctx: StepContext, report: dict[str, Any]) -> None:
        """Serve the trained model in Docker and check it (smoke.serve); a failure un-passes."""
        from mlops_env.errors import MlopsError
        from mlops_env.smoke.serve import ServeOptions, run_serve

        d = report.get("data") or {}
        transport = ctx.transport.fresh()  # a new login: the docker group applies there
        try:
            d["serve"] = run_serve(
                transport, python=self.conda.python(ctx), model_hash=str(d.get("model_hash") or ""),
                rides_path=d.get("serve_rides"), opts=ServeOptions(), ui=_StepUi(ctx, self.id),
                name=ctx.record.name, provider=ctx.record.provider)
            d["serve"]["ok"] = True
        except MlopsError as e:
            d["serve"] = {"ok": False, "error": e.code, "message": e.message}
            try:  # not passed: the next `up` runs it again
                transport.run(["sh", "-c", 'rm -f "$HOME/.mlops-env/smoke/passed"'])
            except MlopsError:
                pass
            raise StepFailed(f"step smoke failed: serving the model: {e.message}", hint=e.hint) from e
        finally:
            if transport is not ctx.transport:
                transport.close()

    def describe_apply(self, ctx: StepContext) -> str:
        data = "synthetic sample data" if self.mode(ctx) == "sample" else "the course's TLC data (Jan/Feb 2021)"
        return f"train the ride-duration model on {data} with {self.conda.python(ctx)}"


def upload_program(transport: Any) -> None:
    """Put the training program (ridetrain.py) at ~/.mlops-env/ridetrain.py on the box."""
    from mlops_env.smoke import ridetrain_source

    res = transport.run(
        ["sh", "-c", 'mkdir -p "$HOME/.mlops-env" && cat > "$HOME/.mlops-env/ridetrain.py"'],
        stdin=ridetrain_source().encode("utf-8"))
    if not res.ok:
        raise StepFailed(f"could not upload the training program: {res.tail(3)}")


def last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                val = json.loads(line)
                return val if isinstance(val, dict) else None
            except json.JSONDecodeError:
                continue
    # ridetrain may pretty-print: try the whole text from the first brace
    start = text.find("{")
    if start >= 0:
        try:
            val = json.loads(text[start:])
            return val if isinstance(val, dict) else None
        except json.JSONDecodeError:
            return None
    return None


class _StepUi:
    """The few ui calls smoke.serve makes, as step output lines."""

    def __init__(self, ctx: StepContext, step_id: str) -> None:
        self.ctx, self.step_id = ctx, step_id

    def detail(self, line: str) -> None:
        self.ctx.on_line(self.step_id, line)

    def warn(self, line: str) -> None:
        self.ctx.on_line(self.step_id, line)


def workstation_steps(smoke: str = "course", serve: bool = False) -> list[Step]:
    """The remote bootstrap steps of ``up`` (the local ssh-config step is added by the pipeline)."""
    conda = CondaStep()
    steps: list[Step] = [BaseStep(), conda, DockerStep()]
    if smoke != "off":
        steps.append(SmokeStep(conda, serve=serve))
    return steps
