"""Pure functions that turn what a box reported into doctor checks.

Two kinds of input, both plain text captured on the box in one batched round-trip:

- the bootstrap steps' own checks (``base.sh``, ``conda.sh``, ``docker.sh`` and ``smoke.sh``
  in ``check`` mode, as ``CheckResult``): they are the ONE definition of "this step is done",
  shared with ``up``. Their problems become doctor checks that ``doctor --fix`` repairs with
  the step's ``apply``;
- ``templates/doctor.sh`` sections (``@@ NAME EXIT MS`` + raw output): read-only probes that
  explain and add what no step checks (memory, disk, clock, versions, ports, sessions...).

Nothing here runs a command or reads a file: every function is tested on captured outputs
from several OS and tool versions (tests/unit/fixtures/doctor/). This module: the sections,
the ``system``, ``python`` and ``tools`` checks; ``parse_docker.py`` and ``parse_network.py``
the other two categories.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
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
