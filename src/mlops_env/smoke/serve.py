"""``smoke-test NAME --serve`` (issue 15): the trained model as a web service on the box.

After the training (``ridetrain.py`` exported ``model.json`` and ``serve-rides.json`` in the
box's report dir), ``templates/serve.sh up`` builds ``mlops-env/ride-duration:<hash>`` with
``docker build`` (a stdlib-only service, :mod:`mlops_env.smoke.serve_app`), starts it with
docker compose on ``127.0.0.1:PORT`` and checks 200 validation rides on the box
(:mod:`mlops_env.smoke.serve_check`). Then this module asks the same question from here,
through a ``direct-tcpip`` channel of the run's SSH connection (no port is opened on the box
beyond loopback), and ``serve.sh down`` removes the service unless ``--keep-serving``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_env.errors import (
    BusyError,
    ExitCode,
    IntegrityError,
    MlopsError,
    NotFoundError,
    PrereqError,
    StepFailed,
    UsageError,
)

DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEFAULT_PORT = 9696
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_HERE = Path(__file__).parent
PROGRAMS = ("serve_app.py", "serve_check.py")

_BY_EXIT: dict[int, type[MlopsError]] = {
    ExitCode.USAGE: UsageError,
    ExitCode.NOT_FOUND: NotFoundError,
    ExitCode.PREREQ: PrereqError,
    ExitCode.INTEGRITY: IntegrityError,
    ExitCode.BUSY: BusyError,
}


@dataclass(frozen=True)
class ServeOptions:
    base_image: str = DEFAULT_BASE_IMAGE
    port: int = DEFAULT_PORT
    keep: bool = False

    def __post_init__(self) -> None:
        if not _IMAGE_RE.match(self.base_image) or len(self.base_image) > 255:
            raise UsageError(f"invalid image name {self.base_image!r} for --serve-base-image",
                             hint="an image reference like python:3.11-slim or registry.example/python:3.11-slim")
        if not 1 <= int(self.port) <= 65535:
            raise UsageError(f"invalid port {self.port} for --serve-port", hint="a TCP port 1..65535")


def escape(text: str) -> str:
    """Text from the box, printable: control characters (ANSI escapes, CR) shown as \\xNN."""
    return "".join(c if c.isprintable() or c == "\n" else f"\\x{ord(c):02x}" for c in text)


def upload_programs(transport: Any) -> None:
    """serve_app.py and serve_check.py to ~/.mlops-env/ on the box."""
    for name in PROGRAMS:
        res = transport.run(["sh", "-c", 'mkdir -p "$HOME/.mlops-env" && cat > "$HOME/.mlops-env/$1"', "sh", name],
                            stdin=(_HERE / name).read_bytes())
        if not res.ok:
            raise StepFailed(f"could not upload {name} to the box: {escape(res.tail(3))}")


def _parse(stdout: str, stderr: str) -> tuple[dict[str, str], dict[str, Any] | None, dict[str, Any]]:
    kv: dict[str, str] = {}
    check: dict[str, Any] | None = None
    for line in stdout.splitlines():
        if line.startswith("mlops-serve: ") and "=" in line:
            k, _, v = line[len("mlops-serve: "):].partition("=")
            kv[k.strip()] = v.strip()
        elif line.startswith("{"):
            try:
                val = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(val, dict) and "status" in val:
                check = val
    err: dict[str, Any] = {"details": []}
    for line in stderr.splitlines():
        for key in ("code", "error", "hint"):
            if line.startswith(f"mlops-{key}: "):
                err[key] = line[len(f"mlops-{key}: "):]
        if line.startswith("mlops-detail: "):
            err["details"].append(line[len("mlops-detail: "):])
    return kv, check, err


def tunnel_request(transport: Any, port: int, method: str, path: str, body: bytes | None = None,
                   timeout: float = 10.0) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:PORT on the box through a direct-tcpip channel of the
    run's SSH connection (what ``ssh -L`` does; nothing new is opened on the box)."""
    from mlops_env.transport import ChannelError

    opener = getattr(transport, "open_channel", None)
    if opener is None:
        raise StepFailed("the SSH connection to the box is not open: cannot forward to the service")
    try:
        chan = opener("127.0.0.1", port, timeout=timeout)
    except ChannelError as e:
        if e.closed:
            raise StepFailed("the SSH connection to the box is not open: cannot forward to the service") from e
        if e.refused:
            raise StepFailed(f"the box's sshd refused to forward to 127.0.0.1:{port} ({e})",
                             hint="allow TCP forwarding in the box's sshd_config (AllowTcpForwarding yes)",
                             code="serve-tunnel") from e
        raise StepFailed(f"could not open a forward to 127.0.0.1:{port} on the box: {e}",
                         code="serve-tunnel") from e
    try:
        chan.settimeout(timeout)
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
                + (f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body is not None else "")
                + "\r\n").encode("latin-1")
        chan.sendall(head + (body or b""))
        chunks = []
        while True:
            data = chan.recv(65536)
            if not data:
                break
            chunks.append(data)
    except OSError as e:
        raise StepFailed(f"no answer from the service through the SSH connection: {e}", code="serve-tunnel") from e
    finally:
        chan.close()
    raw = b"".join(chunks)
    header, _, payload = raw.partition(b"\r\n\r\n")
    try:
        status = int(header.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise StepFailed(f"not an HTTP answer through the tunnel: {escape(raw[:80].decode('latin-1'))}",
                         code="serve-tunnel") from None
    return status, payload


def run_serve(transport: Any, *, python: str, model_hash: str, rides_path: str | None,
              opts: ServeOptions, ui: Any, name: str = "", provider: str = "") -> dict[str, Any]:
    """Build, start, check on the box, query through the tunnel, remove (unless ``keep``).

    Returns the report's ``serve`` dict; raises ``MlopsError`` (the box keeps nothing running).
    """
    from mlops_env.paths import template

    upload_programs(transport)
    args = ("up", "--tag", model_hash, "--port", str(opts.port), "--base-image", opts.base_image,
            "--python", python)
    res = transport.run_script(template("serve.sh"), args, on_line=lambda line: ui.detail(line))
    kv, check, err = _parse(res.stdout, res.stderr)
    if not res.ok:
        raise _error(res.exit_code, err, check, f"{provider or '<provider>'} {name}" if name else "")
    if check is None:
        _down(transport, ui)
        raise StepFailed("the serve check on the box printed no result",
                         hint=escape(res.tail(3)) or "see the log file", code="serve-failed")
    out: dict[str, Any] = {
        "image": kv.get("image"),
        "base_image": opts.base_image,
        "compose": kv.get("compose"),
        "build_seconds": _float(kv.get("build_seconds")),
        "start_seconds": _float(kv.get("start_seconds")),
        "p50_ms": check.get("p50_ms"),
        "p99_ms": check.get("p99_ms"),
        "predictions_checked": check.get("checked"),
        "matches": check.get("matches"),
        "port": opts.port,
        "via_tunnel": False,
        "kept": opts.keep,
    }
    try:
        out.update(_tunnel_check(transport, opts.port, model_hash, rides_path))
        out["via_tunnel"] = True
    except BaseException:
        _down(transport, ui)
        raise
    if opts.keep:
        out["url"] = f"http://127.0.0.1:{opts.port}"
        out["hint"] = (f"on this machine: ssh -L {opts.port}:127.0.0.1:{opts.port} "
                       f"{'mlops-' + name if name else 'ALIAS'}, then POST http://127.0.0.1:{opts.port}/predict")
    else:
        _down(transport, ui)
    out["checked_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return out


def _tunnel_check(transport: Any, port: int, model_hash: str, rides_path: str | None) -> dict[str, Any]:
    ride: dict[str, Any] = {"PULocationID": 43, "DOLocationID": 151, "trip_distance": 1.01}
    expected: float | None = None
    if rides_path:
        got = transport.run(["cat", rides_path])
        if got.ok:
            try:
                first = json.loads(got.stdout)["rides"][0]
                ride, expected = first["ride"], float(first["duration"])
            except (ValueError, KeyError, IndexError, TypeError):
                pass
    t0 = time.perf_counter()
    status, payload = tunnel_request(transport, port, "POST", "/predict", json.dumps(ride).encode())
    ms = (time.perf_counter() - t0) * 1000
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = None
    if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("duration"), (int, float)):
        raise StepFailed(f"the service answered HTTP {status} through the SSH connection: "
                         f"{escape(payload[:200].decode('utf-8', 'replace'))}", code="serve-tunnel")
    if answer.get("model") != model_hash:
        raise IntegrityError(f"through the SSH connection the service runs model {answer.get('model')!r}, "
                             f"expected {model_hash}", code="predictions-differ")
    if expected is not None and abs(float(answer["duration"]) - expected) > 1e-9:
        raise IntegrityError(
            f"through the SSH connection, ride {json.dumps(ride)}: model {expected!r}, service {answer['duration']!r}",
            hint="the service's model differs from the trained one", code="predictions-differ")
    return {"tunnel_ride": ride, "tunnel_duration": answer["duration"], "tunnel_ms": round(ms, 2)}


def _down(transport: Any, ui: Any) -> None:
    from mlops_env.paths import template

    try:
        res = transport.run_script(template("serve.sh"), ("down",), on_line=lambda line: ui.detail(line))
        if not res.ok:
            ui.warn(f"could not remove the service on the box: {escape(res.tail(2))}")
    except MlopsError as e:
        ui.warn(f"could not remove the service on the box: {e.message}")


def _float(text: str | None) -> float | None:
    try:
        return round(float(text), 3) if text is not None else None
    except ValueError:
        return None


def _error(exit_code: int, err: dict[str, Any], check: dict[str, Any] | None, workstation: str) -> MlopsError:
    code = err.get("code") or "serve-failed"
    message = err.get("error") or f"serve.sh failed with exit {exit_code}"
    hint = err.get("hint")
    details = [escape(d) for d in err.get("details", [])]
    if code == "predictions-differ" and check and check.get("message"):
        message = check["message"]
        hint = "the service's model differs from the trained one (see the log file)"
    elif code == "not-answering" and check and check.get("message"):
        message = check["message"]
    if code in ("no-docker", "no-compose") and workstation:
        hint = (f"the docker step of `mlops-env up` installs Docker and compose: "
                f"run `mlops-env up {workstation}` again")
    if details:
        if code in ("build-failed", "start-failed"):
            message += ": " + " | ".join(details[-4:])
        elif code in ("not-answering", "predictions-differ"):
            message += "; container log: " + " | ".join(details[-6:])
    try:
        ec = ExitCode(exit_code)
    except ValueError:
        ec = ExitCode.FAILED
    cls = _BY_EXIT.get(ec, StepFailed)
    e = cls(escape(message), escape(hint) if hint else None, code=f"serve-{code}" if not code.startswith("serve") else code,
            exit_code=ec if ec in _BY_EXIT else ExitCode.FAILED)
    e.data = {"serve": {"error": code, "details": details}}  # type: ignore[attr-defined]
    return e


def summary(s: dict[str, Any]) -> str:
    """The human lines of a ``serve`` result (also used by ``status``)."""
    if not s.get("ok", True):
        return f"  serve        FAILED: {s.get('message')}"
    lines = [
        f"  serve        {s.get('image')} built in {s.get('build_seconds')} s, answered in "
        f"{s.get('start_seconds')} s ({s.get('compose')})",
        f"  predictions  {s.get('matches')}/{s.get('predictions_checked')} equal to the model's (1e-9); "
        f"p50 {s.get('p50_ms')} ms, p99 {s.get('p99_ms')} ms on the box",
        f"  tunnel       {'same answer through the SSH connection' if s.get('via_tunnel') else 'not checked'}"
        + (f" ({s.get('tunnel_duration'):.3f} min)" if isinstance(s.get('tunnel_duration'), (int, float)) else ""),
    ]
    if s.get("kept"):
        lines.append(f"  running      {s.get('url')} on the box; {s.get('hint')}")
    else:
        lines.append("  removed      the service was stopped and removed")
    return "\n".join(lines)
