"""Pure functions that turn what a box reported into doctor checks.

Two kinds of input, both plain text captured on the box in one batched round-trip:

- the bootstrap steps' own checks (``base.sh``, ``conda.sh``, ``docker.sh`` and ``smoke.sh``
  in ``check`` mode, as ``CheckResult``): they are the ONE definition of "this step is done",
  shared with ``up``. Their problems become doctor checks that ``doctor --fix`` repairs with
  the step's ``apply``;
- ``templates/doctor.sh`` sections (``@@ NAME EXIT MS`` + raw output): read-only probes that
  explain and add what no step checks (memory, disk, clock, versions, ports, sessions...).

Nothing here runs a command or reads a file: every function is tested on captured outputs
from several OS and tool versions (tests/unit/fixtures/doctor/).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mlops_env.checks import CATEGORIES, FAIL, OK, SKIP, STATUSES, WARN, Check

if TYPE_CHECKING:
    from mlops_env.checks import CheckResult, Facts

__all__ = ["CATEGORIES", "FAIL", "OK", "SKIP", "STATUSES", "WARN", "Check"]

# The course's needs (issue 5): below these, a warning.
MIN_CPUS = 4
MIN_MEMORY_GIB = 16.0
# A "16 GiB" VM shows 15.x GiB in MemTotal (the kernel keeps some): accept 90 %.
MEMORY_SLACK = 0.9
MIN_DISK_GIB = 20.0
# Below this, a problem: Anaconda alone needs about 5 GiB, a docker image pull 1 GiB or more.
LOW_DISK_GIB = 5.0
CLOCK_WARN_S = 60.0
CLOCK_FAIL_S = 300.0  # AWS refuses signed requests more than 5 minutes off
PORTS = {8888: "Jupyter", 5000: "MLflow"}
# Programs that may hold the course's ports: the user's own Jupyter/MLflow, or ssh forwarding.
_PORT_OWNERS_OK = ("ssh", "jupyter", "python", "mlflow", "gunicorn", "waitress")


@dataclass(frozen=True)
class Section:
    """One probe of ``doctor.sh``: its exit code, run time and raw output."""

    name: str
    rc: int
    ms: int
    text: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def timed_out(self) -> bool:
        return self.rc in (124, 137)

    @property
    def missing(self) -> bool:
        """The probe's program is not installed (exit 127)."""
        return self.rc == 127

    @property
    def seconds(self) -> float:
        return self.ms / 1000.0

    def lines(self) -> list[str]:
        return [ln for ln in self.text.splitlines() if ln.strip()]


def sections(text: str) -> dict[str, Section]:
    """Split ``doctor.sh`` output into its sections (``@@ NAME EXIT MS`` headers)."""
    out: dict[str, Section] = {}
    name: str | None = None
    rc = ms = 0
    body: list[str] = []

    def flush() -> None:
        if name is not None:
            out[name] = Section(name, rc, ms, "\n".join(body))

    for line in text.splitlines():
        if line.startswith("@@ "):
            parts = line.split()
            if len(parts) >= 3 and parts[2].lstrip("-").isdigit():
                flush()
                name, rc = parts[1], int(parts[2])
                ms = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
                body = []
                continue
        if name is not None:
            body.append(line[1:] if line.startswith(" @@ ") else line)
    flush()
    return out


_EMPTY = Section("", 125, 0, "")


def _sec(secs: Mapping[str, Section], name: str) -> Section:
    return secs.get(name, replace(_EMPTY, name=name))


def _gib(kib: float) -> float:
    return kib / (1024 * 1024)


def _fmt_gib(gib: float) -> str:
    return f"{gib:.1f} GiB" if gib >= 1 else f"{gib * 1024:.0f} MiB"


def _step_problems(res: CheckResult | None) -> list[str]:
    """The problems a step's check reported: its ``mlops:`` summary split at ``;``."""
    if res is None or res.exit_code == 0:
        return []
    return [p.strip() for p in res.message.split(";") if p.strip()]


def _timed_out(res: CheckResult | None) -> bool:
    return res is not None and res.exit_code in (124, 137)


def tilde(path: str, home: str) -> str:
    """``/home/u/anaconda3`` -> ``~/anaconda3`` (for messages)."""
    if home and (path == home or path.startswith(home.rstrip("/") + "/")):
        return "~" + path[len(home.rstrip("/")):]
    return path


# -- system ------------------------------------------------------------------------------------
def parse_os_release(text: str) -> dict[str, str]:
    vals: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            vals[k.strip()] = v.strip().strip('"').strip("'")
    return vals


def effective_cpus(cpus_text: str, quota_text: str) -> int | None:
    """CPUs the box may use: ``nproc``, lowered by a cgroup CPU quota (``docker --cpus``)."""
    try:
        n = int(cpus_text.strip().splitlines()[0])
    except (ValueError, IndexError):
        return None
    parts = quota_text.split()
    quota = period = None
    if len(parts) >= 3 and parts[0] == "v2" and parts[1] != "max":
        quota, period = parts[1], parts[2]
    elif len(parts) >= 3 and parts[0] == "v1" and not parts[1].startswith("-"):
        quota, period = parts[1], parts[2]
    if quota and period:
        try:
            q = math.ceil(int(quota) / int(period))
            if q > 0:
                n = min(n, q)
        except (ValueError, ZeroDivisionError):
            pass
    return n


def memory_gib(text: str) -> float | None:
    """Memory the box may use, in GiB: MemTotal, lowered by a cgroup limit."""
    total_kib: float | None = None
    limit: float | None = None
    for line in text.splitlines():
        m = re.match(r"^MemTotal:\s+(\d+)\s*kB", line)
        if m:
            total_kib = float(m.group(1))
        m = re.match(r"^cgroup:\s*(\d+)\s*$", line)
        if m:
            limit = float(m.group(1)) / 1024  # bytes -> KiB; "max" (v2) does not match
    if total_kib is None:
        return None
    if limit is not None and limit < total_kib:
        total_kib = limit
    return _gib(total_kib)


@dataclass(frozen=True)
class DiskRow:
    filesystem: str
    size_kib: int
    avail_kib: int
    mount: str

    @property
    def free_gib(self) -> float:
        return _gib(self.avail_kib)


def parse_df(text: str) -> list[DiskRow]:
    """``df -Pk`` rows (the header skipped). A long filesystem name may wrap in non-POSIX
    output; -P keeps each row on one line, but we tolerate a wrapped one too."""
    rows: list[DiskRow] = []
    pending = ""
    for line in text.splitlines():
        if line.startswith("Filesystem") or not line.strip():
            continue
        parts = (pending + " " + line).split() if pending else line.split()
        if len(parts) < 6:
            pending = line.strip()
            continue
        pending = ""
        try:
            rows.append(DiskRow(parts[0], int(parts[1]), int(parts[3]), " ".join(parts[5:])))
        except ValueError:
            continue
    return rows


def parse_clock(text: str) -> tuple[bool | None, bool | None]:
    """(synchronized, ntp service on) from ``timedatectl show`` or, on systemd < 239,
    ``timedatectl status`` (whose wording changed across versions). None = unknown."""
    synced: bool | None = None
    ntp: bool | None = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("NTPSynchronized="):
            synced = s.split("=", 1)[1] == "yes"
        elif s.startswith("NTP="):
            ntp = s.split("=", 1)[1] == "yes"
        elif re.match(r"^(System clock synchronized|NTP synchronized):", s):
            synced = s.split(":", 1)[1].strip() == "yes"
        elif re.match(r"^(NTP service|Network time on|systemd-timesyncd\.service active):", s):
            ntp = s.split(":", 1)[1].strip() in ("yes", "active")
    return synced, ntp


def system_checks(facts: Facts, base: CheckResult | None, secs: Mapping[str, Section], *,
                  supported_arches: Iterable[str] = ("x86_64", "amd64", "aarch64", "arm64"),
                  local_time: float | None = None) -> list[Check]:
    """OS (the base step's own check), architecture, CPUs, memory, free disk, clock, sudo.
    ``local_time``: this machine's clock when the box's answer arrived (remote doctor), to
    compare the two clocks."""
    checks: list[Check] = []
    osr = parse_os_release(_sec(secs, "os_release").text)
    label = osr.get("PRETTY_NAME") or facts.os_label or "unknown OS"

    # OS: base.sh is the one definition of "supported" (exit 3 = unsupported)
    if base is not None and base.exit_code == 3:
        checks.append(Check("system.os", FAIL, base.message, base.hint))
    elif _timed_out(base):
        checks.append(Check("system.os", FAIL, f"{label}: the OS check timed out", None))
    else:
        kernel = " ".join(_sec(secs, "uname").text.split()[:2])
        checks.append(Check("system.os", OK, label + (f" ({kernel})" if kernel else "")))

    uname = _sec(secs, "uname").text.split()
    arch = facts.arch or (uname[-1] if uname else "")
    if not arch:
        checks.append(Check("system.arch", SKIP, "architecture unknown"))
    elif arch in set(supported_arches):
        checks.append(Check("system.arch", OK, arch))
    else:
        checks.append(Check("system.arch", FAIL, f"{arch}: no conda installer for this architecture",
                            "use an x86_64 or aarch64 box"))

    cpus = effective_cpus(_sec(secs, "cpus").text or facts.get("nproc"), _sec(secs, "cpu_quota").text)
    if cpus is None:
        checks.append(Check("system.cpu", SKIP, "CPU count unknown"))
    elif cpus >= MIN_CPUS:
        checks.append(Check("system.cpu", OK, f"{cpus} vCPUs"))
    else:
        checks.append(Check("system.cpu", WARN, f"{cpus} vCPU{'s' if cpus != 1 else ''} "
                            f"(the course recommends {MIN_CPUS})",
                            "training and docker builds will be slow; a bigger box helps "
                            "(EC2: t3.xlarge has 4 vCPUs and 16 GiB)"))

    mem_text = _sec(secs, "memory").text
    if not mem_text and facts.get("mem_kb").isdigit():
        mem_text = f"MemTotal: {facts.get('mem_kb')} kB"
    mem = memory_gib(mem_text)
    if mem is None:
        checks.append(Check("system.memory", SKIP, "memory size unknown"))
    elif mem >= MIN_MEMORY_GIB * MEMORY_SLACK:
        checks.append(Check("system.memory", OK, f"{mem:.1f} GiB memory"))
    else:
        checks.append(Check("system.memory", WARN, f"{mem:.1f} GiB memory (the course recommends "
                            f"{MIN_MEMORY_GIB:.0f} GiB)",
                            "pandas on a month of taxi data and MLflow side by side need more; "
                            "close other programs or use a bigger box"))

    checks.append(_disk_check(_sec(secs, "disk"), facts))
    checks.append(_clock_check(secs, local_time))

    sudo = facts.sudo
    if sudo in ("root", "ok"):
        checks.append(Check("system.sudo", OK, "running as root" if sudo == "root"
                            else "sudo works without a password"))
    elif sudo in ("password", "missing"):
        user = facts.get("user") or "USER"
        what = "asks for a password" if sudo == "password" else "is not installed"
        checks.append(Check("system.sudo", WARN, f"sudo {what}: `--fix` cannot install system packages",
                            f"allow passwordless sudo: echo '{user} ALL=(ALL) NOPASSWD:ALL' | "
                            "sudo tee /etc/sudoers.d/mlops-env (or connect as root)"))
    else:
        checks.append(Check("system.sudo", SKIP, "sudo unknown"))
    return checks


def _disk_check(sec: Section, facts: Facts) -> Check:
    rows = parse_df(sec.text)
    if not rows:
        kb = facts.get("disk_free_kb")
        if kb.isdigit():
            rows = [DiskRow("?", 0, int(kb), facts.home or "~")]
    if sec.timed_out and not rows:
        return Check("system.disk", FAIL, "`df` did not answer within its timeout (a hung network mount?)",
                     "check `mount` and `df -h` on the box", sec.seconds)
    if not rows:
        return Check("system.disk", SKIP, "free disk space unknown", seconds=sec.seconds)
    home = rows[0]
    where = [(home, tilde(facts.home, facts.home) if facts.home else "home")]
    for other in rows[1:]:
        # /var/lib/docker: only when it is another filesystem (a bind mount of the same one
        # shows the same device and size; an overlay over it the same size and free space)
        same = other.size_kib == home.size_kib and abs(other.avail_kib - home.avail_kib) < 1024 * 1024
        if other.mount != home.mount and not same:
            where.append((other, other.mount))
    worst = min(where, key=lambda w: w[0].free_gib)
    detail = ", ".join(f"{_fmt_gib(r.free_gib)} free in {name}" for r, name in where)
    hint = ("free space (`du -xsh ~/* | sort -h`, `conda clean --all`, `docker system prune`) "
            "or grow the disk")
    if worst[0].free_gib < LOW_DISK_GIB:
        return Check("system.disk", FAIL, f"disk nearly full: {detail} (installs need "
                     f"{LOW_DISK_GIB:.0f} GiB, the course {MIN_DISK_GIB:.0f} GiB)", hint, sec.seconds)
    if worst[0].free_gib < MIN_DISK_GIB:
        return Check("system.disk", WARN, f"{detail} (the course recommends {MIN_DISK_GIB:.0f} GiB)",
                     hint, sec.seconds)
    return Check("system.disk", OK, detail, seconds=sec.seconds)


def _clock_check(secs: Mapping[str, Section], local_time: float | None) -> Check:
    sec = _sec(secs, "clock")
    virt = _sec(secs, "virt").text.strip()
    skew: float | None = None
    now = _sec(secs, "now").text.strip()
    if local_time is not None and now.isdigit():
        skew = float(now) - local_time
    if skew is not None and abs(skew) > CLOCK_WARN_S:
        direction = "ahead of" if skew > 0 else "behind"
        msg = f"the box's clock is {_duration(abs(skew))} {direction} this machine's"
        return Check("system.clock", FAIL if abs(skew) > CLOCK_FAIL_S else WARN, msg,
                     "turn on time sync on the box (`sudo timedatectl set-ntp true`), or fix this "
                     "machine's clock; AWS and TLS refuse clocks that are minutes off", sec.seconds)
    synced, ntp = parse_clock(sec.text) if sec.ok else (None, None)
    agrees = f", {abs(skew):.0f} s from this machine's" if skew is not None else ""
    if virt in _CONTAINERS:  # its clock is the host's kernel clock: NTP inside is moot
        return Check("system.clock", OK if skew is not None or synced else SKIP,
                     f"a container: the host keeps the time{agrees}", seconds=sec.seconds)
    if synced:
        return Check("system.clock", OK, f"clock synchronized (NTP){agrees}", seconds=sec.seconds)
    if synced is False:
        return Check("system.clock", WARN, "clock not synchronized" + (" (NTP is off)" if ntp is False else ""),
                     "`sudo timedatectl set-ntp true` (Debian: `sudo apt-get install systemd-timesyncd`)",
                     sec.seconds)
    if skew is not None:
        return Check("system.clock", OK, f"no NTP status (no timedatectl){agrees}", seconds=sec.seconds)
    return Check("system.clock", SKIP, "no NTP status (timedatectl unavailable)", seconds=sec.seconds)


_CONTAINERS = ("docker", "podman", "lxc", "lxc-libvirt", "systemd-nspawn", "container-other", "wsl", "rkt")


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


# -- python ------------------------------------------------------------------------------------
def parse_libraries(text: str) -> tuple[str | None, dict[str, str | None]]:
    """(python version, {distribution: version or None}) from the ``libraries`` probe."""
    py = None
    libs: dict[str, str | None] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        if parts[0] == "python":
            py = parts[1]
        else:
            libs[parts[0]] = None if parts[1] == "-" else parts[1]
    return py, libs


def python_checks(conda: CheckResult | None, secs: Mapping[str, Section], *, prefix: str, home: str,
                  needs_terms: bool, dist_label: str, smoke: CheckResult | None = None,
                  smoke_hint: str | None = None) -> list[Check]:
    """conda present (and its version), ``conda init`` done, the base env's libraries, the
    terms of service, and (for a known workstation) the smoke test; from ``conda.sh check``."""
    where = tilde(prefix, home) if prefix.startswith("/") else prefix
    py = f"{where}/bin"
    problems = _step_problems(conda)
    checks: list[Check] = []
    missing = any(p.startswith("conda not installed") for p in problems)
    version = _sec(secs, "conda").text.strip().splitlines()[0] if _sec(secs, "conda").ok else ""
    if conda is None:
        return checks
    if _timed_out(conda):
        checks.append(Check("python.conda", FAIL, f"the conda check in {where} timed out",
                            f"run `{py}/conda --version` on the box to see what hangs"))
        return checks
    if missing:
        others = [ln.split(" ", 1)[1] for ln in _sec(secs, "conda_elsewhere").lines()
                  if ln.startswith("prefix ") and ln.split(" ", 1)[1].rstrip("/") != prefix.rstrip("/")]
        hint = f"install {dist_label} into {where}"
        if others:
            hint = (f"found conda in {', '.join(tilde(o, home) for o in others)}: pass the matching "
                    f"--python-dist to check that one, or {hint}")
        checks.append(Check("python.conda", FAIL, f"conda is not installed in {where}", hint, step="conda"))
        reason = "conda is not installed"
        checks.append(Check("python.conda-init", SKIP, reason))
        checks.append(Check("python.libraries", SKIP, reason))
        if needs_terms:
            checks.append(Check("python.terms", SKIP, reason))
        return checks

    checks.append(Check("python.conda", OK, f"{version or 'conda'} in {where}"))

    shell_lines = _sec(secs, "shell_init").lines()
    shell = next((ln.split(" ", 1)[1] for ln in shell_lines if ln.startswith("shell ") and " " in ln), "")
    inits = [ln.split(" ", 1)[1] for ln in shell_lines if ln.startswith("init ")]
    if any(p.startswith("conda init") for p in problems):
        checks.append(Check("python.conda-init", FAIL, "`conda init bash` not done: new shells do not see conda",
                            f"`{py}/conda init bash`, then open a new shell", step="conda"))
    elif shell.endswith("/zsh") and ".zshrc" not in inits:
        checks.append(Check("python.conda-init", WARN, "conda init done for bash, but your login shell is zsh",
                            f"`{py}/conda init zsh`, then open a new shell"))
    else:
        checks.append(Check("python.conda-init", OK, "conda init done" + (f" ({', '.join('~/' + i for i in inits)})" if inits else "")))

    pyver, libs = parse_libraries(_sec(secs, "libraries").text)
    cannot = next((p.split(":", 1)[1].split() for p in problems if p.startswith("base env cannot import")), [])
    if cannot:
        pkgs = " ".join("scikit-learn" if m == "sklearn" else m for m in cannot)
        checks.append(Check("python.libraries", FAIL, f"the base env cannot import: {', '.join(cannot)}",
                            f"`{py}/conda install -n base {pkgs}`", step="conda"))
    else:
        have = ", ".join(f"{k} {v}" for k, v in libs.items() if v)
        checks.append(Check("python.libraries", OK, (have or "numpy, pandas, pyarrow, scikit-learn")
                            + (f" (Python {pyver})" if pyver else "")))

    if needs_terms:
        if any("terms of service" in p for p in problems):
            checks.append(Check("python.terms", FAIL, "Anaconda's terms of service are not accepted for this conda",
                                "read https://www.anaconda.com/legal/terms, then pass --accept-anaconda-tos "
                                "with --fix (or use --python-dist miniforge)", step="conda"))
        else:
            checks.append(Check("python.terms", OK, "Anaconda's terms of service accepted"))

    known = ("conda not installed", "conda init", "base env cannot import", "Anaconda terms of service")
    rest = [p for p in problems if not p.startswith(known)]
    if rest:
        checks.append(Check("python.conda-step", FAIL, "; ".join(rest), conda.hint, step="conda"))

    if smoke is not None:
        if smoke.ok:
            checks.append(Check("python.smoke", OK, smoke.message))
        else:
            checks.append(Check("python.smoke", WARN, "the smoke test (training the course's model) has "
                                "not passed on this box with these settings", smoke_hint))
    return checks


# -- docker ------------------------------------------------------------------------------------
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
def tools_checks(base: CheckResult | None, secs: Mapping[str, Section], *,
                 provider: str | None = None) -> list[Check]:
    """The base packages (base.sh's list: its check is the one definition), git and curl.
    (The idle-stop agent is its own step's check, not a tool probe.)"""
    checks: list[Check] = []
    if base is not None:
        if base.exit_code == 0:
            checks.append(Check("tools.packages", OK, base.message))
        elif base.exit_code == 3:
            checks.append(Check("tools.packages", SKIP, "unsupported OS"))
        else:
            missing = base.message.split(":", 1)[1].strip() if base.message.startswith("missing packages") else ""
            checks.append(Check("tools.packages", FAIL, base.message,
                                f"`sudo apt-get install -y {missing}`" if missing else base.hint, step="base"))
    for tool, probe in (("git", "git"), ("curl", "curl")):
        sec = _sec(secs, probe)
        if sec.ok and sec.text.strip():
            first = sec.text.strip().splitlines()[0]
            m = re.match(rf"^{tool}(?: version)? (\S+)", first)
            checks.append(Check(f"tools.{tool}", OK, f"{tool} {m.group(1)}" if m else first, seconds=sec.seconds))
        else:
            checks.append(Check(f"tools.{tool}", FAIL, f"{tool} is not installed",
                                f"`sudo apt-get install -y {tool}`", sec.seconds, step="base"))
    return checks
