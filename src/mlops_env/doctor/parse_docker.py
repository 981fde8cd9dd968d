"""Doctor's ``docker`` checks from what the box reported (``doctor.sh`` sections and
``docker.sh``'s own check): the engine and its version, compose, the user's group and its
sessions, build space. Pure functions, tested on captured outputs (see ``parse.py``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops_env.checks import FAIL, OK, SKIP, WARN, Check
from mlops_env.doctor.parse import Section, _fmt_gib, _sec, _step_problems, _timed_out, parse_df

if TYPE_CHECKING:
    from mlops_env.checks import CheckResult


@dataclass(frozen=True)
class DockerVersion:
    client: str | None
    server: str | None
    error: str | None  # None | "daemon-down" | "permission" | "timeout" | "missing" | "other"
    detail: str = ""


def parse_docker_version(sec: Section) -> DockerVersion:
    """``docker version`` (plain output: its layout differs between 20.10, 24 and 28; the
    server part is missing, with an error, when the daemon cannot be reached)."""
    if sec.missing:
        return DockerVersion(None, None, "missing")
    client = server = None
    part = ""
    for line in sec.text.splitlines():
        s = line.strip()
        if line.startswith("Client"):
            part = "client"
        elif line.startswith("Server"):
            part = "server"
        elif s.startswith("Version:") and part:
            v = s.split(":", 1)[1].strip()
            if part == "client" and client is None:
                client = v
            elif part == "server" and server is None:
                server = v  # the first Version under Server is the Engine's
    low = sec.text.lower()
    err_line = next((ln.strip() for ln in sec.text.splitlines()
                     if "daemon" in ln.lower() or "permission denied" in ln.lower() or ln.startswith("error")), "")
    if sec.timed_out:
        return DockerVersion(client, server, "timeout", err_line)
    if server:
        return DockerVersion(client, server, None)
    if "permission denied" in low:
        return DockerVersion(client, None, "permission", err_line)
    if "cannot connect to the docker daemon" in low or "is the docker daemon running" in low:
        return DockerVersion(client, None, "daemon-down", err_line)
    return DockerVersion(client, None, "other" if sec.rc != 0 else None, err_line)


_SEMVER = re.compile(r"v?(\d+\.\d+(?:\.\d+)?)")


def parse_compose_version(sec: Section) -> str | None:
    """Compose's version from ``docker compose version`` ("Docker Compose version v2.24.6")
    or ``docker-compose version`` ("docker-compose version 1.29.2, build unknown", sometimes
    after Python warnings on Ubuntu 22.04). None when absent."""
    if sec.rc != 0:
        return None
    for line in sec.text.splitlines():
        m = re.match(r"^\s*(?:Docker Compose|docker-compose) version:?\s+" + _SEMVER.pattern, line, re.I)
        if m:
            return m.group(1)
    return None


def parse_groups(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k:
            out[k] = v.strip()
    return out


def _docker_gid(group_line: str) -> str | None:
    parts = group_line.split(":")
    return parts[2] if len(parts) >= 3 and parts[2].isdigit() else None


def parse_sessions(text: str) -> list[tuple[str, int, set[str]]]:
    """(self|other, pid, supplementary gids) per SSH connection of the user."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("self", "other") and parts[1].isdigit():
            out.append((parts[0], int(parts[1]), set(parts[2:])))
    return out


def docker_checks(docker: CheckResult | None, secs: Mapping[str, Section], *,
                  fresh_session: bool) -> list[Check]:
    """Engine installed, daemon running, the user reaching it without sudo (in a new login
    and in this one), compose, a container that runs. ``fresh_session``: these probes ran
    in a login made just now (remote doctor: a new SSH connection)."""
    if docker is None:
        return []
    problems = _step_problems(docker)
    ver = parse_docker_version(_sec(secs, "version"))
    groups = parse_groups(_sec(secs, "groups").text)
    user = groups.get("user") or "the user"
    uid = groups.get("uid", "")
    service = _sec(secs, "service").text.strip()
    systemd = service.startswith("systemd")
    start_cmd = "sudo systemctl start docker" if systemd else "sudo service docker start"
    checks: list[Check] = []
    explained: set[str] = set()

    def has(fragment: str) -> str | None:
        p = next((p for p in problems if fragment in p), None)
        if p:
            explained.add(p)
        return p

    if has("docker is not installed") or ver.error == "missing":
        checks.append(Check("docker.engine", FAIL, "Docker is not installed",
                            "`sudo apt-get install docker.io` (Ubuntu: plus docker-compose-v2)", step="docker"))
        for cid in ("docker.daemon", "docker.compose", "docker.access", "docker.run"):
            checks.append(Check(cid, SKIP, "Docker is not installed"))
        return checks
    if _timed_out(docker) and ver.error == "timeout":
        explained.add(docker.message)
    engine = f"Docker Engine {ver.server}" if ver.server else "Docker CLI"
    if ver.client and ver.client != ver.server:
        engine += f" (client {ver.client})"
    checks.append(Check("docker.engine", OK, engine, seconds=_sec(secs, "version").seconds))

    # daemon
    daemon_down = bool(has("the docker daemon is not running")) or ver.error == "daemon-down"
    if daemon_down:
        checks.append(Check("docker.daemon", FAIL, "the Docker daemon is not running",
                            f"`{start_cmd}` (`sudo systemctl enable --now docker` to start it at boot)",
                            step="docker"))
    elif ver.error == "timeout":
        checks.append(Check("docker.daemon", FAIL, "the Docker daemon does not answer (timed out)",
                            "`sudo systemctl restart docker`; see `journalctl -u docker`",
                            _sec(secs, "version").seconds))
    else:
        how = "systemd: active" if systemd else "dockerd running"
        checks.append(Check("docker.daemon", OK, f"running ({how})"))

    # compose
    v2 = parse_compose_version(_sec(secs, "compose_v2"))
    v1 = parse_compose_version(_sec(secs, "compose_v1"))
    if has("docker compose is not installed") or not (v2 or v1):
        checks.append(Check("docker.compose", FAIL, "Docker Compose is not installed",
                            "`sudo apt-get install docker-compose-v2` (Ubuntu) or `docker-compose` (Debian 12)",
                            step="docker"))
    elif v2:
        checks.append(Check("docker.compose", OK, f"Compose {v2} (`docker compose`)"))
    else:
        checks.append(Check("docker.compose", OK, f"Compose {v1} (v1, `docker-compose`)"))

    # access without sudo: the group database (a new login) vs this login session
    session = set(groups.get("session", "").split())
    database = set(groups.get("database", "").split())
    in_db = "docker" in database
    in_session = "docker" in session
    has("is not in the docker group")
    has("cannot reach the docker daemon in this session")
    if uid == "0":
        checks.append(Check("docker.access", OK, "root uses the daemon directly"))
    elif daemon_down or ver.error == "timeout":
        checks.append(Check("docker.access", SKIP, "the daemon is not running"))
    elif ver.server:  # reached it just now, without sudo
        how = "docker group" if in_session else "socket permissions, not the docker group"
        checks.append(Check("docker.access", OK, f"{user} reaches the daemon without sudo ({how})"))
    elif not in_db:
        checks.append(Check("docker.access", FAIL, f"{user} is not in the docker group: docker needs sudo",
                            f"`sudo usermod -aG docker {user}`, then log in again", step="docker"))
    elif not in_session:
        if fresh_session:
            checks.append(Check("docker.access", FAIL,
                                f"{user} is in the docker group, but a new login does not get it",
                                "the group database and logins disagree (sssd/nscd cache? `sudo nscd -i group`)"))
        else:
            checks.append(Check("docker.access", WARN,
                                f"{user} joined the docker group after this login session started: docker "
                                "needs sudo here until you log in again (new logins have it)",
                                "log out and back in (a remote box: open a new SSH connection; VS Code: "
                                "reconnect); `newgrp docker` works for one shell"))
    elif ver.error == "permission":
        sock = _sec(secs, "socket").text.strip().replace("\n", "; ")
        checks.append(Check("docker.access", FAIL, f"{user} cannot use the Docker socket ({sock})",
                            "`sudo systemctl restart docker.socket docker` resets its owner (root:docker, 660)"))
    else:
        checks.append(Check("docker.access", FAIL, f"docker cannot reach the daemon: {ver.detail or 'unknown error'}",
                            "see `docker version` and `journalctl -u docker` on the box"))

    # older SSH connections that predate joining the group
    gid = _docker_gid(groups.get("group", ""))
    if uid != "0" and in_db and gid:
        stale = [pid for kind, pid, gids in parse_sessions(_sec(secs, "sessions").text)
                 if kind == "other" and gid not in gids]
        if stale:
            n = len(stale)
            checks.append(Check("docker.sessions", WARN,
                                f"{n} older SSH connection{'s' if n > 1 else ''} of {user} started before it "
                                f"joined the docker group (pid {', '.join(map(str, stale[:5]))}): docker needs "
                                "sudo in them", "reconnect them; VS Code: run 'Remote-SSH: Kill VS Code Server "
                                "on Host', then connect again"))
        else:
            checks.append(Check("docker.sessions", OK, f"every SSH connection of {user} has the docker group"))

    # a container runs
    run = _sec(secs, "run")
    stamp = _sec(secs, "stamp")
    never_ran = has("no container has been run as")
    access_ok = any(c.id == "docker.access" and c.status == OK for c in checks)
    image = next((ln.split(" ", 1)[1] for ln in run.lines() if ln.startswith("image ")), "")
    if not access_ok:
        checks.append(Check("docker.run", SKIP, "docker is not usable without sudo yet"))
    elif run.ok:
        checks.append(Check("docker.run", OK, f"ran a container ({image}) as {user} without sudo",
                            seconds=run.seconds))
    elif run.timed_out:
        checks.append(Check("docker.run", FAIL, f"a test container ({image}) did not finish in time",
                            "see `journalctl -u docker` on the box", run.seconds))
    elif run.rc != 3 and image:
        last = run.lines()[-1] if run.lines() else f"exit {run.rc}"
        checks.append(Check("docker.run", FAIL, f"`docker run {image}` failed: {last}",
                            "see `journalctl -u docker` on the box", run.seconds))
    elif stamp.ok and stamp.text.strip():
        checks.append(Check("docker.run", OK, f"a container ran as {user} without sudo "
                            f"(mlops-env proved it at {stamp.text.strip()})"))
    elif never_ran:
        checks.append(Check("docker.run", FAIL, f"no container has been run as {user} yet",
                            "`--fix` runs a test container (a local image, no registry needed)",
                            step="docker"))
    else:
        checks.append(Check("docker.run", SKIP, "no local image to run a test container with"))

    if ver.error != "missing" and "build" in secs:
        checks.append(_build_check(_sec(secs, "build")))

    rest = [p for p in problems if p not in explained]
    if rest and not any(c.status == FAIL and c.step == "docker" for c in checks):
        checks.append(Check("docker.step", FAIL, "; ".join(rest), docker.hint, step="docker"))
    return checks


# Building an image (`smoke-test --serve`, the course's deployment weeks) needs room for layers:
# a python:3.11-slim base is about 150 MB, a course image with scikit-learn about 1.5 GB.
BUILD_FAIL_GIB = 2.0
BUILD_WARN_GIB = 5.0


def _build_check(sec: Section) -> Check:
    """``docker.build`` (issue 15): a builder, and free disk where Docker keeps layers."""
    lines = sec.lines()
    builder = next((ln.split(" ", 1)[1] for ln in lines if ln.startswith("builder ")), "")
    root = next((ln.split(" ", 1)[1] for ln in lines if ln.startswith("root ")), "/var/lib/docker")
    if sec.missing or sec.timed_out:
        return Check("docker.build", SKIP, "could not check the image builder", seconds=sec.seconds)
    if builder.startswith("none") or not builder:
        why = builder[len("none"):].strip(" ()") if builder.startswith("none") else ""
        return Check("docker.build", FAIL, "docker cannot build images (no builder" + (f": {why})" if why else ")"),
                     "reinstall Docker with `mlops-env up` (its docker step)", sec.seconds, step="docker")
    kind = "BuildKit (buildx)" if builder.startswith("buildx") else "the classic builder"
    rows = parse_df("\n".join(ln for ln in lines if not ln.startswith(("builder ", "root "))))
    if not rows:
        return Check("docker.build", OK, f"{kind}; free space for layers unknown", seconds=sec.seconds)
    free = rows[-1].free_gib
    where = f"{_fmt_gib(free)} free for layers in {root}"
    if free < BUILD_FAIL_GIB:
        return Check("docker.build", FAIL, f"{kind}, but only {where}",
                     "free disk space (`docker system prune` removes unused images)", sec.seconds)
    if free < BUILD_WARN_GIB:
        return Check("docker.build", WARN, f"{kind}; only {where}",
                     "course images need a few GB: `docker system prune` removes unused ones", sec.seconds)
    return Check("docker.build", OK, f"{kind}; {where}", seconds=sec.seconds)


# -- network -----------------------------------------------------------------------------------
