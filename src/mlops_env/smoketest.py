"""``mlops-env smoke-test NAME``: run the training on a workstation, in its conda env, over
the same pinned SSH transport as ``up``; the data is downloaded there and the report (and the
fitted model) are brought back to ``<data dir>/reports/<NAME>/``."""

from __future__ import annotations

import base64
import json
import time
from pathlib import PurePosixPath
from typing import Any

from mlops_env.errors import MlopsError, StepFailed, UsageError
from mlops_env.fsutil import atomic_write
from mlops_env.paths import ensure_private_dir, get_paths
from mlops_env.state import Store, validate_name


def run_on_workstation(*, name: str, args: list[str], ui: Any, serve: Any = None) -> dict[str, Any]:
    """Train on the box; with ``serve`` (a ``smoke.serve.ServeOptions``) also serve the model
    there as a web service and check it (issue 15); its result is the report's ``serve``."""
    from mlops_env.smoke.local import as_mlops_error
    from mlops_env.smoke.ridetrain import SmokeError
    from mlops_env.ssh.connect import connect
    from mlops_env.steps import template
    from mlops_env.steps.builtin import CondaStep, last_json, upload_program

    validate_name(name)
    paths = get_paths()
    rec = Store(paths).load(name)
    if rec.endpoint is None:
        raise UsageError(f"workstation {name!r} was never reached", hint=f"run `mlops-env up {rec.provider} {name}` first")
    dist = rec.options.get("python_dist") or "anaconda"
    python = f"~/{CondaStep.prefix_name(dist)}/bin/python"
    timeout = int(rec.options.get("ssh_timeout") or 60)
    transport = connect(paths, rec.endpoint, timeout)
    try:
        upload_program(transport)
        res = transport.run_script(template("smoke.sh"), ("run", "--python", python, "--", *args),
                                   on_line=lambda line: ui.detail(line))
        envelope = last_json(res.stdout)
        model = None
        serve_result: dict[str, Any] | None = None
        serve_error: Exception | None = None
        remote_model = (envelope or {}).get("data", {}).get("model") if envelope else None
        if envelope and envelope.get("status") == "ok":
            if remote_model:
                got = transport.run(["base64", "-w0", str(remote_model)])
                if got.ok:
                    model = base64.b64decode(got.stdout.strip())
            if serve is not None:
                from mlops_env.smoke.serve import run_serve

                d = envelope.get("data") or {}
                if not d.get("model_hash"):
                    raise StepFailed("the box's training program exported no model for the service",
                                     hint="run the smoke test again (it uploads the current program)")
                try:
                    serve_result = run_serve(transport, python=python, model_hash=str(d["model_hash"]),
                                             rides_path=d.get("serve_rides"), opts=serve, ui=ui,
                                             name=name, provider=rec.provider)
                except MlopsError as e:
                    serve_error = e
    finally:
        transport.close()
    if envelope is None:
        raise StepFailed(f"the smoke test on {name} printed no report (exit {res.exit_code})",
                         hint=res.tail(3) or "see the log file")
    if envelope.get("status") != "ok":
        err = (envelope.get("errors") or [{}])[0]
        raise as_mlops_error(SmokeError(err.get("code", "failed"), err.get("message", "failed"),
                                        err.get("hint"), int(envelope.get("exit_code") or 1)))
    data = dict(envelope.get("data") or {})
    if serve is not None:
        # The last serve result (or failure) is part of the saved report: `status` shows it.
        data["serve"] = serve_result if serve_error is None else {
            "ok": False, "error": getattr(serve_error, "code", "serve-failed"),
            "message": getattr(serve_error, "message", str(serve_error)),
            "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if serve_error is None:
            data["serve"]["ok"] = True
        envelope = {**envelope, "data": data}
    out = paths.reports_dir / name
    ensure_private_dir(out)
    atomic_write(out / "smoke-report.json", json.dumps(envelope, indent=2) + "\n", mode=0o600)
    if serve_error is not None:
        raise serve_error
    data["remote_report"], data["report"] = data.get("report"), str(out / "smoke-report.json")
    if model is not None:
        local_model = out / PurePosixPath(str(remote_model)).name
        atomic_write(local_model, model, mode=0o600)
        data["remote_model"], data["model"] = data.get("model"), str(local_model)
    return data

