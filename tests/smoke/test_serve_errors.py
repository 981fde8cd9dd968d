"""`smoke-test --serve`: its option checks, how serve.sh's failures become one clear error each
(exit code, escaped box text), and serve.sh itself on a machine without Docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_env.cli import app
from mlops_env.errors import ExitCode
from mlops_env.smoke import serve

RUNNER = CliRunner()
SERVE_SH = Path(__file__).resolve().parents[2] / "templates" / "serve.sh"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops-home"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def invoke(*args: str) -> tuple[int, dict]:
    r = RUNNER.invoke(app, ["--json", *args])
    return r.exit_code, json.loads(r.stdout)


@pytest.mark.parametrize(("args", "fragment"), [
    (["smoke-test", "--sample", "--serve"], "give its NAME"),
    (["smoke-test", "box1", "--sample", "--keep-serving"], "need --serve"),
    (["smoke-test", "box1", "--sample", "--serve-port", "9000"], "need --serve"),
    (["smoke-test", "box1", "--sample", "--serve", "--serve-base-image", "bad image;rm"], "--serve-base-image"),
    (["smoke-test", "box1", "--sample", "--serve", "--serve-port", "70000"], "--serve-port"),
])
def test_bad_serve_options_are_usage_errors(home: Path, args: list[str], fragment: str) -> None:
    code, doc = invoke(*args)
    assert code == ExitCode.USAGE and fragment in doc["errors"][0]["message"], doc


def test_serve_options_reach_the_remote_side(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    fake = types.ModuleType("mlops_env.smoketest")

    def run_on_workstation(*, name, args, ui, serve=None):  # type: ignore[no-untyped-def]
        seen["serve"] = serve
        return {"host": "box"}

    fake.run_on_workstation = run_on_workstation  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlops_env.smoketest", fake)
    code, _ = invoke("smoke-test", "box1", "--sample", "--serve", "--serve-base-image", "mirror.example/py:3.11",
                     "--serve-port", "9697", "--keep-serving")
    assert code == 0
    assert seen["serve"] == serve.ServeOptions("mirror.example/py:3.11", 9697, True)


def _err(rc: int, stderr: str, check: dict | None = None, workstation: str = "ssh box1") -> serve.MlopsError:
    _, _, err = serve._parse("", stderr)
    return serve._error(rc, err, check, workstation)


def test_no_docker_names_the_step_that_installs_it() -> None:
    e = _err(4, "mlops-code: no-docker\nmlops-error: Docker is not installed on the box\nmlops-hint: x\n")
    assert e.exit_code == ExitCode.PREREQ and e.code == "serve-no-docker"
    assert "docker step" in (e.hint or "") and "mlops-env up ssh box1" in (e.hint or "")


def test_build_failure_shows_the_last_lines_escaped() -> None:
    e = _err(1, "mlops-detail: Step 2/6 : COPY x y\nmlops-detail: \x1b[31mCOPY failed: no such file\x1b[0m\r\n"
                "mlops-code: build-failed\nmlops-error: docker build of mlops-env/ride-duration:ab failed (exit 1)\n")
    assert e.exit_code == ExitCode.FAILED and e.code == "serve-build-failed"
    assert "COPY failed: no such file" in e.message and "\x1b" not in e.message and "\\x1b[31m" in e.message


def test_busy_port_and_unpullable_base_have_their_own_codes() -> None:
    e = _err(10, "mlops-code: port-busy\nmlops-error: port 9696 on the box is in use by the process node (pid 7)\n"
                 "mlops-hint: stop it, or choose another port with --serve-port\n")
    assert (e.exit_code, e.code) == (ExitCode.BUSY, "serve-port-busy") and "node (pid 7)" in e.message
    e = _err(3, "mlops-code: base-image\nmlops-error: the base image x cannot be pulled\n"
                "mlops-hint: pass --serve-base-image IMAGE\n")
    assert (e.exit_code, e.code) == (ExitCode.NOT_FOUND, "serve-base-image") and "--serve-base-image" in (e.hint or "")


def test_not_answering_carries_the_container_log_tail() -> None:
    check = {"status": "error", "code": "not-answering",
             "message": "the service did not answer GET /health within 30 s (ConnectionRefusedError)"}
    e = _err(1, "mlops-detail: Traceback (most recent call last):\nmlops-detail: ValueError: not a model\n"
                "mlops-code: not-answering\nmlops-error: the service did not answer\n", check)
    assert e.code == "serve-not-answering" and "within 30 s" in e.message and "ValueError: not a model" in e.message


def test_differing_predictions_name_the_first_ride_and_both_values() -> None:
    check = {"status": "error", "code": "predictions-differ",
             "message": 'validation row 3 {"PULocationID": 1}: model 12.5, service 12.6'}
    e = _err(8, "mlops-code: predictions-differ\nmlops-error: differ\n", check)
    assert (e.exit_code, e.code) == (ExitCode.INTEGRITY, "serve-predictions-differ")
    assert "row 3" in e.message and "12.5" in e.message and "12.6" in e.message


def _bash_env(path: str) -> dict[str, str]:
    return {"PATH": path, "HOME": os.environ.get("HOME", "/root")}


def test_serve_sh_without_docker_exits_4_naming_the_docker_step(tmp_path: Path) -> None:
    p = subprocess.run(["/bin/bash", str(SERVE_SH), "up", "--tag", "ab12"], env=_bash_env(str(tmp_path)),
                       capture_output=True, text=True, timeout=30, check=False)
    assert p.returncode == 4, p.stderr
    assert "mlops-code: no-docker" in p.stderr and "docker step" in p.stderr


def test_serve_sh_refuses_bad_arguments(tmp_path: Path) -> None:
    for args in (["up", "--tag", "x;y"], ["up", "--port", "99999"], ["up", "--base-image", "a b"], ["nope"]):
        p = subprocess.run(["/bin/bash", str(SERVE_SH), *args], env=_bash_env(str(tmp_path)),
                           capture_output=True, text=True, timeout=30, check=False)
        assert p.returncode == 2, (args, p.stderr)


def test_escape_keeps_text_and_shows_control_characters() -> None:
    assert serve.escape("ok é\n\x1b[0m\r") == "ok é\n\\x1b[0m\\x0d"


class _Forwarder:
    """A transport whose ``open_channel`` fails the way SSHTransport's does (ChannelError)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.asked: list[tuple[str, int]] = []

    def open_channel(self, host: str, port: int, *, timeout: float = 10.0) -> object:
        self.asked.append((host, port))
        raise self.error


@pytest.mark.parametrize(("error", "code", "fragment"), [
    ("refused", "serve-tunnel", "refused to forward to 127.0.0.1:9696"),
    ("closed", "step-failed", "the SSH connection to the box is not open"),
    ("other", "serve-tunnel", "could not open a forward to 127.0.0.1:9696 on the box: boom"),
])
def test_the_tunnel_goes_through_the_transports_open_channel(error: str, code: str, fragment: str) -> None:
    from mlops_env.errors import StepFailed
    from mlops_env.transport import ChannelError

    t = _Forwarder(ChannelError("boom", refused=error == "refused", closed=error == "closed"))
    with pytest.raises(StepFailed) as e:
        serve.tunnel_request(t, 9696, "GET", "/health")
    assert t.asked == [("127.0.0.1", 9696)]
    assert fragment in e.value.message and e.value.code == code
    with pytest.raises(StepFailed, match="not open"):  # a transport that cannot forward at all
        serve.tunnel_request(object(), 9696, "GET", "/health")
