"""Doctor's ``network`` checks from what the box reported: the package indexes it must reach,
the course's ports (8888 Jupyter, 5000 MLflow) and the deployment week's 9696, and who holds
them. Pure functions, tested on captured outputs (see ``parse.py``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mlops_env.checks import OK, SKIP, WARN, Check
from mlops_env.doctor.parse import _PORT_OWNERS_OK, PORTS, Section, _sec

if TYPE_CHECKING:
    pass


def parse_http(sec: Section) -> tuple[bool, str]:
    """(reachable, description) from the ``http_head`` probe (curl -w '%{http_code} %{time}')."""
    code_line = next((ln for ln in reversed(sec.lines()) if re.match(r"^\d{3} [\d.,]+$", ln.strip())), "")
    if code_line:
        code, secs = code_line.split()
        if code != "000":
            return True, f"HTTP {code} in {float(secs.replace(',', '.')):.2f} s"
    if sec.timed_out:
        return False, "no answer (timed out)"
    if sec.text.startswith("no curl") and sec.ok:
        return True, "TCP port 443 answers (no curl to check HTTPS)"
    err = next((ln.strip() for ln in sec.lines() if ln.startswith("curl:") or "bash:" in ln), "")
    m = re.match(r"curl: \((\d+)\)\s*(.*)", err)
    if m:
        num, text = int(m.group(1)), m.group(2)
        reason = {6: "DNS cannot resolve the host", 7: "connection refused or blocked",
                  28: "no answer (timed out)", 35: "TLS handshake failed",
                  60: "TLS certificate not trusted (a proxy that re-signs HTTPS?)",
                  5: "the proxy cannot be resolved", 56: "the connection was reset"}.get(num)
        return False, reason or text
    return False, err or f"exit {sec.rc}"


def network_checks(secs: Mapping[str, Section], *, urls: Mapping[str, str], side: str,
                   listening_ok: Sequence[str] = _PORT_OWNERS_OK) -> list[Check]:
    """The TLC data host and PyPI reachable (warnings), and the course's ports free or
    forwarded. ``side``: "box" (a workstation) or "local" (the machine the user works on)."""
    checks: list[Check] = []
    hints = {
        "tlc": "the course downloads the NYC taxi data from here; offline, use `--smoke-test sample`",
        "pypi": "pip cannot install packages: check the firewall or proxy (HTTPS_PROXY), or use a wheelhouse",
    }
    for key, url in urls.items():
        host = url.split("://", 1)[-1].split("/", 1)[0]
        sec = _sec(secs, f"url_{key}")
        ok, desc = parse_http(sec)
        if ok:
            checks.append(Check(f"network.{key}", OK, f"{host} reachable ({desc})", seconds=sec.seconds))
        else:
            checks.append(Check(f"network.{key}", WARN, f"{host} not reachable: {desc}",
                                hints.get(key), sec.seconds))
    checks.append(_ports_check(_sec(secs, "ports"), side, listening_ok))
    checks.append(_serve_port_check(_sec(secs, "ports"), side))
    return checks


def parse_listening(text: str) -> dict[int, str]:
    """{port: process name or ""} of listening TCP sockets, from ``ss -ltnpH``, ``lsof -nP
    -iTCP -sTCP:LISTEN`` or ``netstat -ltn`` output (first line: ``tool NAME``)."""
    out: dict[int, str] = {}
    lines = text.splitlines()
    tool = lines[0].split()[1] if lines and lines[0].startswith("tool ") and len(lines[0].split()) > 1 else "ss"
    for line in lines[1:] if lines and lines[0].startswith("tool ") else lines:
        parts = line.split()
        if not parts:
            continue
        addr = ""
        proc = ""
        if tool == "ss" and len(parts) >= 4:
            addr = parts[3] if parts[0] == "LISTEN" else parts[2]
            m = re.search(r'users:\(\("([^"]+)"', line)
            proc = m.group(1) if m else ""
        elif tool == "lsof" and len(parts) >= 9 and parts[0] != "COMMAND":
            addr = parts[8]
            proc = parts[0]
        elif tool == "netstat" and len(parts) >= 4 and parts[0].startswith("tcp"):
            addr = parts[3]
        port_s = addr.rsplit(":", 1)[-1] if ":" in addr else addr.rsplit(".", 1)[-1]
        if port_s.isdigit():
            port = int(port_s)
            if port not in out or (proc and not out[port]):
                out[port] = proc
    return out


def _ports_check(sec: Section, side: str, owners_ok: Sequence[str]) -> Check:
    if not sec.ok:
        return Check("network.ports", SKIP, "cannot list listening ports", seconds=sec.seconds)
    if sec.text.startswith("tool none"):
        return Check("network.ports", SKIP, "no ss, lsof or netstat to list listening ports", seconds=sec.seconds)
    listening = parse_listening(sec.text)
    notes: list[str] = []
    bad: list[str] = []
    for port, what in PORTS.items():
        if port not in listening:
            notes.append(f"{port} free")
            continue
        proc = listening[port]
        if proc and proc.lower().startswith(tuple(owners_ok)):
            notes.append(f"{port} forwarded by ssh" if proc == "ssh" else f"{port} used by {proc}")
        else:
            bad.append(f"{port} ({what}) is taken by {proc or 'another program'}")
    if bad:
        hint = ("stop that program, or start Jupyter/MLflow on other ports (e.g. `jupyter notebook --port 8889`)"
                if side == "box" else
                "the SSH forward to the workstation cannot use a taken port: stop that program, or "
                "use `mlops-env up ... --no-forward` and `ssh -L 8889:localhost:8888 ALIAS`")
        return Check("network.ports", WARN, "; ".join(bad), hint, sec.seconds)
    return Check("network.ports", OK, ", ".join(notes), seconds=sec.seconds)


SERVE_PORT = 9696  # the course's deployment week; `smoke-test --serve` publishes the model there


def _serve_port_check(sec: Section, side: str) -> Check:
    """``network.port-9696`` (issue 15): free for the served model (on the box: published on
    loopback by Docker; here: the SSH forward), or already that (docker-proxy / ssh)."""
    cid = f"network.port-{SERVE_PORT}"
    if not sec.ok or sec.text.startswith("tool none"):
        return Check(cid, SKIP, "cannot list listening ports", seconds=sec.seconds)
    listening = parse_listening(sec.text)
    if SERVE_PORT not in listening:
        return Check(cid, OK, f"{SERVE_PORT} free (for the served model)", seconds=sec.seconds)
    proc = listening[SERVE_PORT]
    if proc == "ssh" and side != "box":
        return Check(cid, OK, f"{SERVE_PORT} forwarded by ssh", seconds=sec.seconds)
    if proc == "docker-proxy" and side == "box":
        return Check(cid, OK, f"{SERVE_PORT} published by a container (the served model, if "
                     "`smoke-test --serve --keep-serving` left it)", seconds=sec.seconds)
    hint = ("stop it, or serve on another port: `mlops-env smoke-test NAME --serve --serve-port 9697`"
            if side == "box" else
            f"the SSH forward of the served model needs it: stop that program, or `ssh -L 9697:127.0.0.1:{SERVE_PORT} ALIAS`")
    return Check(cid, WARN, f"{SERVE_PORT} (the served model) is taken by {proc or 'another program'}",
                 hint, sec.seconds)


# -- tools -------------------------------------------------------------------------------------
