"""Which Docker engine to talk to, found the way the ``docker`` CLI finds it.

``docker.from_env()`` reads only ``DOCKER_HOST`` and otherwise tries ``/var/run/docker.sock``;
Docker Desktop on a Mac, Colima and OrbStack put their socket elsewhere and select it with a
*Docker context*, and Docker Desktop on Windows listens on a named pipe. So, in the CLI's order:

1. ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH``, as docker-py reads them);
2. the current context: ``DOCKER_CONTEXT``, else ``currentContext`` in ``config.json`` (in
   ``DOCKER_CONFIG`` or ``~/.docker``), its endpoint from
   ``contexts/meta/<sha256 of the name>/meta.json`` and TLS files from ``contexts/tls/...``;
3. the platform's default: ``npipe:////./pipe/docker_engine`` on Windows;
   ``~/.docker/run/docker.sock`` (Docker Desktop 4.13+) or ``/var/run/docker.sock`` on macOS;
   ``/var/run/docker.sock`` on Linux.

Errors name the endpoint and where it came from (the context tried), with a hint for the engine
that context belongs to. docker-py is imported only by ``docker_client``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_env import osenv
from mlops_env.errors import PrereqError

WINDOWS_PIPE = "npipe:////./pipe/docker_engine"
UNIX_DEFAULT = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class DockerEndpoint:
    host: str  # a docker base URL: unix://..., npipe://..., tcp://..., ssh://...
    source: str  # where it came from, for messages ("DOCKER_HOST", "docker context colima ...")
    context: str | None = None  # the context's name, when one was used
    tls_dir: Path | None = None  # a context's TLS files (ca.pem, cert.pem, key.pem)
    skip_tls_verify: bool = False


def config_dir(env: Mapping[str, str], home: Path) -> Path:
    d = env.get("DOCKER_CONFIG")
    return Path(d) if d else home / ".docker"


def current_context(env: Mapping[str, str], home: Path) -> tuple[str | None, str]:
    """(context name or None for ``default``, where the name came from)."""
    name = env.get("DOCKER_CONTEXT")
    if name:
        return (None if name == "default" else name), "DOCKER_CONTEXT"
    cfg = config_dir(env, home) / "config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, ""
    name = data.get("currentContext") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name or name == "default":
        return None, ""
    return name, str(cfg)


def resolve(env: Mapping[str, str] | None = None, home: Path | None = None) -> DockerEndpoint:
    """The engine endpoint the ``docker`` CLI would use (see the module's docstring)."""
    env = os.environ if env is None else env
    home = home or Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    if env.get("DOCKER_HOST"):
        return DockerEndpoint(env["DOCKER_HOST"], "DOCKER_HOST")
    name, where = current_context(env, home)
    if name is not None:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        base = config_dir(env, home) / "contexts"
        meta = base / "meta" / digest / "meta.json"
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
            ep = doc["Endpoints"]["docker"]
            host = str(ep["Host"])
        except (OSError, ValueError, KeyError, TypeError):
            raise PrereqError(
                f"the current Docker context {name!r} (from {where}) has no readable endpoint in {meta}",
                hint="`docker context ls` lists the contexts; `docker context use default` (or one that "
                "exists) picks another, or set DOCKER_HOST",
                code="docker-context") from None
        tls = base / "tls" / digest / "docker"
        return DockerEndpoint(host, f"docker context {name!r} (from {where})", name,
                              tls if tls.is_dir() else None, bool(ep.get("SkipTLSVerify")))
    sysname = osenv.system()
    if sysname == osenv.WINDOWS:
        return DockerEndpoint(WINDOWS_PIPE, "the default for Windows (Docker Desktop)")
    if sysname == osenv.MACOS:
        desktop = home / ".docker" / "run" / "docker.sock"
        if desktop.exists():
            return DockerEndpoint(f"unix://{desktop}", "the default for macOS (Docker Desktop)")
        return DockerEndpoint(UNIX_DEFAULT, "the default for macOS")
    return DockerEndpoint(UNIX_DEFAULT, "the default")


def start_hint(ep: DockerEndpoint) -> str:
    """How to start the engine behind ``ep``."""
    name = (ep.context or "").lower()
    host = ep.host.lower()
    if "colima" in name or "/.colima/" in host:
        return "start Colima (`colima start`)"
    if "orbstack" in name or "/.orbstack/" in host:
        return "start OrbStack (`orb start`)"
    if "rancher" in name or "/.rd/" in host:
        return "start Rancher Desktop"
    if host.startswith("npipe:") or "desktop" in name or "/.docker/run/" in host:
        return "start Docker Desktop"
    if osenv.system() == osenv.MACOS:
        return "start Docker Desktop, Colima (`colima start`) or OrbStack"
    return "start Docker (`sudo systemctl start docker`, or Docker Desktop)"


def docker_client(timeout: float = 120, *, ping: bool = True, env: Mapping[str, str] | None = None,
                  home: Path | None = None) -> Any:
    """A docker-py client for the engine ``resolve`` finds, answering a ping (unless ``ping`` is
    False). Raises ``PrereqError`` (``no-docker-engine``) naming the endpoint and context tried."""
    import docker
    from docker.errors import DockerException

    env = os.environ if env is None else env
    ep = resolve(env, home)
    try:
        if ep.source == "DOCKER_HOST":
            client = docker.from_env(timeout=int(timeout), environment=dict(env))
        else:
            tls: Any = False
            if ep.host.startswith("tcp://") and (ep.tls_dir is not None or ep.skip_tls_verify):
                from docker.tls import TLSConfig

                d = ep.tls_dir
                cert = (str(d / "cert.pem"), str(d / "key.pem")) if d and (d / "cert.pem").is_file() else None
                ca = str(d / "ca.pem") if d and (d / "ca.pem").is_file() and not ep.skip_tls_verify else None
                tls = TLSConfig(client_cert=cert, ca_cert=ca, verify=bool(ca))
            client = docker.DockerClient(base_url=ep.host, timeout=int(timeout), tls=tls)
        if ping:
            client.ping()
    except DockerException as e:
        raise PrereqError(
            f"no Docker engine reachable at {ep.host} ({ep.source}): {_short(e)}",
            hint=f"{start_hint(ep)} and check `docker info`; DOCKER_HOST or `docker context use NAME` "
            "selects another engine",
            code="no-docker-engine") from None
    return client


def _short(e: Exception) -> str:
    text = str(e)
    for marker in ("Connection refused", "No such file or directory", "Permission denied",
                   "timed out", "cannot find the file"):
        if marker in text:
            return marker
    return text.splitlines()[0][:200] if text else type(e).__name__
