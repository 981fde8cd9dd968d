"""doctor's pure parsers (``mlops_env.doctor.parse``) on captured outputs.

Two sources, labelled:

* CAPTURED: ``fixtures/doctor/*.json``, real answers of real boxes to doctor's batched calls,
  recorded with ``fixtures/doctor/capture.py`` (the mlops-env-test/vm:bookworm systemd
  container in each deliberately broken state, a Fedora os-release on it, and the development
  machine itself). Replayed through ``doctor.interpret_box``, as ``doctor`` does.
* RECONSTRUCTED: single probe outputs of OS and tool versions this offline machine cannot run
  (Ubuntu 22.04/24.04, Docker CE 24/27, compose v2, older systemd, macOS lsof), written from
  those tools' published output formats; each one says where it comes from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops_env import config, doctor
from mlops_env.doctor import parse, parse_docker, parse_network
from mlops_env.doctor.parse import FAIL, OK, SKIP, WARN, Check, Section
from mlops_env.paths import Paths
from mlops_env.state import Endpoint, Record
from mlops_env.steps import CheckResult, Facts, StepContext
from mlops_env.transport import RunResult

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "doctor"


def sec(name: str, text: str, rc: int = 0, ms: int = 5) -> Section:
    return Section(name, rc, ms, text)


def secs(**kw: Any) -> dict[str, Section]:
    out = {}
    for k, v in kw.items():
        out[k] = v if isinstance(v, Section) else sec(k, v)
    return out


def by_id(checks: list[Check]) -> dict[str, Check]:
    return {c.id: c for c in checks}


# -- replay of captured boxes -------------------------------------------------------------------
def replay(name: str, *, fresh_session: bool = True, tmp: Path) -> tuple[list[Check], doctor.Report]:
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    meta = doc["meta"]
    results = {k: RunResult((k,), v["exit_code"], v["stdout"], v["stderr"], 0.5) for k, v in doc["results"].items()}
    opts = config.resolve({"python_dist": meta["python_dist"], "smoke_test": "sample"}, config_path=None,
                          default_config=tmp / "none.yaml", env={})
    ep = Endpoint("127.0.0.1", 2222, "u", "/k", "mlops-env-doctor")
    mode = "local" if meta["target"] == "local" else "host"
    target = doctor.Target(mode, "box", Record("host", "ssh", "mlops-doctor", endpoint=ep), ep,
                           "mlops-env doctor --host u@127.0.0.1:2222 --fix")
    paths = Paths(data=tmp, config=tmp, cache=tmp, logs=tmp)
    cats = list(doctor.BOX_CATEGORIES)
    steps = doctor._steps(target, opts, cats)
    ctx = StepContext(transport=None, facts=Facts({}), options=opts, record=target.record,  # type: ignore[arg-type]
                      paths=paths, endpoint=ep)
    checks, step_results = doctor.interpret_box(results, ctx, steps, cats, target=target,
                                                fresh_session=fresh_session, local_time=None)
    checks = doctor._with_fix_hints(checks, step_results, target)
    report = doctor.Report(target, checks, step_results, ctx.facts, steps, opts, tuple(cats))
    return checks, report


CAPTURED = sorted(p.stem for p in FIXTURES.glob("*.json"))


def test_every_capture_is_replayed() -> None:
    assert set(CAPTURED) >= {"debian12-fresh", "debian12-ready", "debian12-no-pandas", "debian12-daemon-stopped",
                             "debian12-not-in-group", "debian12-old-session", "debian12-new-session-old-held",
                             "debian12-disk-full", "fedora40-os-release", "debian12-dev-host-root"}


@pytest.mark.parametrize("name", CAPTURED)
def test_capture_gives_well_formed_checks(name: str, tmp_path: Path) -> None:
    checks, report = replay(name, tmp=tmp_path)
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids)), ids
    for c in checks:
        assert c.status in parse.STATUSES and c.category in doctor.CATEGORIES and c.message
        if c.status in (WARN, FAIL):
            assert c.hint, f"{c.id} has no hint: {c.message}"
    # a failing check's --fix promise is only made where that step's own check fails too
    for c in report.problems:
        if c.step:
            assert not report.step_results[c.step].ok
            assert "--fix" in (c.hint or "")


def test_fresh_box(tmp_path: Path) -> None:
    checks, report = replay("debian12-fresh", tmp=tmp_path)
    c = by_id(checks)
    assert c["system.os"].status == OK and "Debian GNU/Linux 12" in c["system.os"].message
    assert (c["python.conda"].status, c["python.conda"].step) == (FAIL, "conda")
    assert c["python.conda"].message == "conda is not installed in ~/anaconda3"
    assert c["python.libraries"].status == SKIP
    assert (c["docker.engine"].status, c["docker.engine"].step) == (FAIL, "docker")
    assert "apt-get install docker.io" in c["docker.engine"].hint
    assert all(c[i].status == SKIP for i in ("docker.daemon", "docker.compose", "docker.access", "docker.run"))
    assert (c["tools.git"].status, c["tools.packages"].message) == (FAIL, "missing packages: git")
    assert c["network.tlc"].status == WARN and "DNS" in c["network.tlc"].message
    assert c["network.pypi"].status == WARN and "TLS certificate" in c["network.pypi"].message
    assert c["network.ports"].status == OK and "8888 free" in c["network.ports"].message
    assert c["system.clock"].status == SKIP  # a container, no skew measured here
    assert report.fixable_steps() == ["base", "conda", "docker"]
    assert [s.id for s in doctor.fix_plan(report)] == ["base", "conda", "docker"]
    assert report.exit_code == 1


def test_ready_box_has_no_problem(tmp_path: Path) -> None:
    checks, report = replay("debian12-ready", tmp=tmp_path)
    c = by_id(checks)
    assert report.problems == []
    assert c["python.conda"].message == "conda 24.5.0 in ~/anaconda3"
    assert "pandas 3.1.1" in c["python.libraries"].message and "Python 3.11.2" in c["python.libraries"].message
    assert c["python.conda-init"].message == "conda init done (~/.bashrc)"
    assert c["python.terms"].status == OK
    assert c["docker.engine"].message == "Docker Engine 20.10.24+dfsg1"
    assert c["docker.compose"].message == "Compose 1.29.2 (v1, `docker-compose`)"
    assert c["docker.access"].status == OK and "docker group" in c["docker.access"].message
    assert c["docker.run"].message == "ran a container (mlops-env/probe:1) as ubuntu without sudo"
    assert c["docker.sessions"].status == OK
    assert report.fixable_steps() == [] and report.exit_code == 0


def test_conda_without_pandas(tmp_path: Path) -> None:
    c = by_id(replay("debian12-no-pandas", tmp=tmp_path)[0])
    lib = c["python.libraries"]
    assert (lib.status, lib.step) == (FAIL, "conda")
    assert lib.message == "the base env cannot import: pandas"
    assert "`~/anaconda3/bin/conda install -n base pandas`" in lib.hint
    assert c["python.conda"].status == OK


def test_daemon_stopped(tmp_path: Path) -> None:
    c = by_id(replay("debian12-daemon-stopped", tmp=tmp_path)[0])
    d = c["docker.daemon"]
    assert (d.status, d.step) == (FAIL, "docker")
    assert "`sudo systemctl start docker`" in d.hint
    assert c["docker.access"].status == SKIP and c["docker.run"].status == SKIP
    assert "docker.step" not in c  # "cannot reach ... in this session" is explained by the daemon


def test_not_in_group(tmp_path: Path) -> None:
    c = by_id(replay("debian12-not-in-group", tmp=tmp_path)[0])
    a = c["docker.access"]
    assert (a.status, a.step) == (FAIL, "docker")
    assert a.message == "ubuntu is not in the docker group: docker needs sudo"
    assert "`sudo usermod -aG docker ubuntu`" in a.hint and "--fix" in a.hint


def test_group_added_but_check_ran_in_the_old_session(tmp_path: Path) -> None:
    checks, report = replay("debian12-old-session", fresh_session=False, tmp=tmp_path)
    a = by_id(checks)["docker.access"]
    assert a.status == WARN and a.step is None  # not `--fix`'s business: a new login is the fix
    assert "joined the docker group after this login session started" in a.message
    assert "log out and back in" in a.hint and "new SSH connection" in a.hint
    assert [p.id for p in report.problems if p.category == "docker"] == []
    # the same answers from a login made just now would mean logins do not get the group
    a2 = by_id(replay("debian12-old-session", fresh_session=True, tmp=tmp_path)[0])["docker.access"]
    assert a2.status == FAIL and "a new login does not get it" in a2.message


def test_new_connection_while_an_old_one_is_held(tmp_path: Path) -> None:
    c = by_id(replay("debian12-new-session-old-held", tmp=tmp_path)[0])
    assert c["docker.access"].status == OK
    s = c["docker.sessions"]
    assert s.status == WARN and s.message.startswith("1 older SSH connection of ubuntu started before it joined")
    assert "reconnect" in s.hint


def test_disk_nearly_full(tmp_path: Path) -> None:
    d = by_id(replay("debian12-disk-full", tmp=tmp_path)[0])["system.disk"]
    assert d.status == FAIL and d.message.startswith("disk nearly full: 16 MiB free in ~")
    assert "docker system prune" in d.hint


def test_unsupported_os(tmp_path: Path) -> None:
    checks, report = replay("fedora40-os-release", tmp=tmp_path)
    c = by_id(checks)
    assert c["system.os"].status == FAIL and c["system.os"].message == "unsupported OS: Fedora Linux 40 (Container Image)"
    assert "Ubuntu 22.04, Ubuntu 24.04 and Debian 12" in c["system.os"].hint
    assert c["system.os"].step is None and c["tools.packages"].status == SKIP
    assert "python.terms" not in c  # checked for miniforge: no terms
    assert c["python.conda"].message == "conda is not installed in ~/miniforge3"


def test_dev_machine_as_root(tmp_path: Path) -> None:
    c = by_id(replay("debian12-dev-host-root", tmp=tmp_path)[0])
    assert c["docker.access"].message == "root uses the daemon directly"
    assert c["docker.engine"].message == "Docker Engine 20.10.24+dfsg1 (client 28.2.2)"
    assert c["docker.compose"].status == FAIL
    assert c["docker.run"].status == SKIP and "docker.step" not in c  # root's group "problem" is no problem


# -- sections ---------------------------------------------------------------------------------
def test_sections_split_and_unescape() -> None:
    text = "@@ a 0 12\nline 1\n @@ b 0 1\n@@ b 124 3000\n@@ c 127 1\nbash: x: command not found\n"
    s = parse.sections(text)
    assert s["a"].text == "line 1\n@@ b 0 1" and s["a"].ms == 12
    assert s["b"].timed_out and s["b"].text == "" and s["c"].missing


# -- system (RECONSTRUCTED samples of other versions) -----------------------------------------
@pytest.mark.parametrize("cpus,quota,want", [
    ("2\n", "v1 -1 100000", 2),            # Debian 12 container, cgroup v1, no quota (captured)
    ("8\n", "v2 max 100000", 8),           # Ubuntu 24.04 VM, cgroup v2, no limit
    ("8\n", "v2 200000 100000", 2),        # docker run --cpus 2 on cgroup v2
    ("8\n", "v1 150000 100000", 2),        # --cpus 1.5 on cgroup v1: rounded up
    ("4\n", "", 4),                        # macOS (no cgroup)
    ("", "", None),
])
def test_effective_cpus(cpus: str, quota: str, want: int | None) -> None:
    assert parse.effective_cpus(cpus, quota) == want


@pytest.mark.parametrize("text,want", [
    ("MemTotal:       16181252 kB\nMemAvailable:   15500000 kB\ncgroup: max\n", 15.43),  # EC2 t3.xlarge, cgroup v2
    ("MemTotal:       8039508 kB\nMemAvailable:   7000000 kB\n", 7.67),                  # t3.large
    ("MemTotal:       24684084 kB\ncgroup: 4294967296\n", 4.0),                          # container limited to 4 GiB
    ("MemTotal:       24684084 kB\ncgroup: 9223372036854771712\n", 23.54),              # v1 "no limit" (captured)
    ("MemTotal: 17179869184 kB\n", 16384.0),
])
def test_memory(text: str, want: float) -> None:
    assert parse.memory_gib(text) == pytest.approx(want, abs=0.01)


def system(facts: dict[str, str], **probes: Any) -> dict[str, Check]:
    return by_id(parse.system_checks(Facts(facts), CheckResult("ok", "base packages present"), secs(**probes)))


def test_memory_and_cpu_thresholds() -> None:
    c = system({"arch": "x86_64", "sudo": "ok"}, cpus="4", memory="MemTotal:       16181252 kB\n")
    assert c["system.cpu"].status == OK and c["system.memory"].status == OK  # a 16 GiB VM shows 15.4
    c = system({"arch": "x86_64"}, cpus="2", memory="MemTotal:       8039508 kB\n")
    assert c["system.cpu"].status == WARN and "the course recommends 4" in c["system.cpu"].message
    assert c["system.memory"].status == WARN and c["system.memory"].message.startswith("7.7 GiB")


@pytest.mark.parametrize("df,home,status,msg", [
    # EC2 Ubuntu 22.04 with the default 8 GB volume: /dev/root
    ("Filesystem     1024-blocks    Used Available Capacity Mounted on\n"
     "/dev/root          7941576 1761344   6163848      23% /\n", "/home/ubuntu", WARN, "5.9 GiB free in ~"),
    # 30 GB gp3, Ubuntu 24.04 (nvme)
    ("Filesystem     1024-blocks    Used Available Capacity Mounted on\n"
     "/dev/nvme0n1p1    30298176 4000000  26281792      14% /\n", "/home/ubuntu", OK, "25.1 GiB free in ~"),
    # docker's data on its own, nearly full disk
    ("Filesystem     1024-blocks    Used Available Capacity Mounted on\n"
     "/dev/sda1       103081248 20000000 77822464      21% /\n"
     "/dev/sdb1        10255636 9700000    31000      99% /var/lib/docker\n", "/home/me", FAIL,
     "disk nearly full: 74.2 GiB free in ~, 30 MiB free in /var/lib/docker"),
])
def test_disk(df: str, home: str, status: str, msg: str) -> None:
    c = system({"arch": "x86_64", "home": home}, disk=df)["system.disk"]
    assert c.status == status and c.message.startswith(msg), c.message


@pytest.mark.parametrize("text,synced,ntp", [
    # systemd >= 239 (Ubuntu 22.04/24.04, Debian 12): `timedatectl show`
    ("Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\n", True, True),
    ("Timezone=Etc/UTC\nCanNTP=no\nNTP=no\nNTPSynchronized=no\n", False, False),  # captured in the vm container
    # systemd 237 (Ubuntu 18.04): no `show`, status wording of that era
    ("                      Local time: Mon 2024-05-20 10:00:00 UTC\n"
     "       System clock synchronized: yes\nsystemd-timesyncd.service active: yes\n", True, True),
    # systemd 229 (Ubuntu 16.04)
    (" Network time on: yes\nNTP synchronized: no\n RTC in local TZ: no\n", False, True),
    # systemd 252 status (Debian 12)
    ("System clock synchronized: yes\n              NTP service: active\n", True, True),
    ("", None, None),
])
def test_parse_clock(text: str, synced: bool | None, ntp: bool | None) -> None:
    assert parse.parse_clock(text) == (synced, ntp)


def test_clock_checks() -> None:
    def clock(**kw: Any) -> Check:
        local_time = kw.pop("local_time", None)
        return by_id(parse.system_checks(Facts({"arch": "x86_64"}), None, secs(**kw), local_time=local_time))["system.clock"]

    assert clock(clock="NTP=yes\nNTPSynchronized=yes\n", virt="kvm").status == OK
    off = clock(clock="NTP=no\nNTPSynchronized=no\n", virt="kvm")
    assert off.status == WARN and "set-ntp true" in off.hint
    assert clock(clock="NTP=no\nNTPSynchronized=no\n", virt="docker", now="1000", local_time=1010.0).status == OK
    skew = clock(clock="NTPSynchronized=yes\n", virt="kvm", now="1000", local_time=1000.0 + 600)
    assert skew.status == FAIL and skew.message == "the box's clock is 10 min behind this machine's"
    assert clock(clock="NTPSynchronized=yes\n", virt="kvm", now="1090", local_time=1000.0).status == WARN


def test_arch_and_sudo() -> None:
    c = by_id(parse.system_checks(Facts({"arch": "armv7l", "sudo": "password", "user": "pi"}), None, {},
                                  supported_arches=("x86_64", "aarch64")))
    assert c["system.arch"].status == FAIL and "no conda installer" in c["system.arch"].message
    assert c["system.sudo"].status == WARN and "pi ALL=(ALL) NOPASSWD:ALL" in c["system.sudo"].hint


def test_os_release_ubuntu() -> None:
    # RECONSTRUCTED: Ubuntu 24.04's /etc/os-release (first lines)
    text = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
    c = by_id(parse.system_checks(Facts({"arch": "x86_64"}), CheckResult("ok", "base packages present"),
                                  secs(os_release=text, uname="Linux 6.8.0-1012-aws x86_64")))
    assert c["system.os"].message == "Ubuntu 24.04.1 LTS (Linux 6.8.0-1012-aws)"


# -- docker versions (RECONSTRUCTED unless said) ----------------------------------------------
DOCKER_CE_24_UBUNTU_2204 = """Client: Docker Engine - Community
 Version:           24.0.7
 API version:       1.43
 Go version:        go1.20.10
 Git commit:        afdd53b
 Built:             Thu Oct 26 09:07:41 2023
 OS/Arch:           linux/amd64
 Context:           default

Server: Docker Engine - Community
 Engine:
  Version:          24.0.7
  API version:      1.43 (minimum version 1.12)
  Go version:       go1.20.10
  Git commit:       311b9ff
  Built:            Thu Oct 26 09:07:41 2023
  OS/Arch:          linux/amd64
  Experimental:     false
 containerd:
  Version:          1.6.26
  GitCommit:        3dd1e886e55dd695541fdcd67420c2888645a495
 runc:
  Version:          1.1.10
  GitCommit:        v1.1.10-0-g18a0cb0
"""
DOCKER_IO_24_UBUNTU_2404 = """Client:
 Version:           24.0.7
 API version:       1.43
 Go version:        go1.22.2
 Git commit:        24.0.7-0ubuntu4
 Built:             Wed Apr 17 20:08:25 2024
 OS/Arch:           linux/amd64
 Context:           default

Server:
 Engine:
  Version:          24.0.7
  API version:      1.43 (minimum version 1.12)
 containerd:
  Version:          1.7.12
"""
PERMISSION_24 = """Client:
 Version:           24.0.7
 API version:       1.43
 Context:           default
permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version": dial unix /var/run/docker.sock: connect: permission denied
"""
PERMISSION_2010 = """Client:
 Version:           20.10.24+dfsg1
 API version:       1.41
 Context:           default
Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version": dial unix /var/run/docker.sock: connect: permission denied
"""
DAEMON_DOWN_27 = """Client: Docker Engine - Community
 Version:           27.3.1
 API version:       1.47
 Context:           default
Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?
"""


@pytest.mark.parametrize("text,rc,want", [
    (DOCKER_CE_24_UBUNTU_2204, 0, ("24.0.7", "24.0.7", None)),
    (DOCKER_IO_24_UBUNTU_2404, 0, ("24.0.7", "24.0.7", None)),
    (PERMISSION_24, 1, ("24.0.7", None, "permission")),
    (PERMISSION_2010, 1, ("20.10.24+dfsg1", None, "permission")),
    (DAEMON_DOWN_27, 1, ("27.3.1", None, "daemon-down")),
    ("probe: line 1: docker: command not found\n", 127, (None, None, "missing")),
    ("Client:\n Version:           24.0.7\n", 124, ("24.0.7", None, "timeout")),
])
def test_docker_version(text: str, rc: int, want: tuple[Any, ...]) -> None:
    v = parse_docker.parse_docker_version(sec("version", text, rc))
    assert (v.client, v.server, v.error) == want


@pytest.mark.parametrize("text,rc,want", [
    ("Docker Compose version v2.24.6\n", 0, "2.24.6"),                           # Docker's plugin
    ("Docker Compose version 2.24.6+ds1-0ubuntu1~24.04.1\n", 0, "2.24.6"),       # Ubuntu 24.04 docker-compose-v2
    ("docker-compose version 1.29.2, build unknown\ndocker-py version: 5.0.3\n", 0, "1.29.2"),  # Debian 12 (captured)
    # Ubuntu 22.04's docker-compose 1.29.2 prints a paramiko warning first
    ("/usr/lib/python3/dist-packages/paramiko/transport.py:237: CryptographyDeprecationWarning: Blowfish has "
     "been deprecated\n  \"class\": algorithms.Blowfish,\ndocker-compose version 1.29.2, build unknown\n", 0, "1.29.2"),
    ("docker-compose version 1.25.0, build unknown\n", 0, "1.25.0"),            # Ubuntu 20.04
    ("docker-compose version 1.29.2, from dpkg\n", 0, "1.29.2"),                # doctor.sh's fast path
    ("docker: 'compose' is not a docker command.\nSee 'docker --help'\n", 1, None),  # docker 20.10 CLI
    ("docker: unknown command: docker compose\n", 1, None),                    # docker 28 CLI (captured)
])
def test_compose_version(text: str, rc: int, want: str | None) -> None:
    assert parse_docker.parse_compose_version(sec("compose", text, rc)) == want


def docker(problems: str | None, **probes: Any) -> dict[str, Check]:
    res = CheckResult("ok", "docker 24.0.7, compose 2.24.6") if problems is None else \
        CheckResult("fail", problems, exit_code=1)
    return by_id(parse_docker.docker_checks(res, secs(**probes), fresh_session=True))


GROUPS_OK = "user dev\nuid 1000\nsession dev docker\ndatabase dev docker\ngroup docker:x:999:dev\n"


def test_docker_ce_with_compose_v2_and_a_permission_problem() -> None:
    c = docker(None, version=DOCKER_CE_24_UBUNTU_2204, compose_v2="Docker Compose version v2.24.6\n",
               compose_v1=sec("compose_v1", "", 127), service="systemd active", groups=GROUPS_OK,
               run=sec("run", "image hello-world\nHello from Docker!\n"))
    assert c["docker.engine"].message == "Docker Engine 24.0.7"
    assert c["docker.compose"].message == "Compose 2.24.6 (`docker compose`)"
    assert c["docker.run"].message == "ran a container (hello-world) as dev without sudo"
    bad = docker(None, version=sec("version", PERMISSION_24, 1), compose_v2="Docker Compose version v2.24.6\n",
                 service="systemd active", groups=GROUPS_OK,
                 socket="DOCKER_HOST=\nsocket root root 660\n")
    assert bad["docker.access"].status == FAIL and "socket root root 660" in bad["docker.access"].message
    assert bad["docker.access"].step is None and bad["docker.run"].status == SKIP


def test_reachable_without_the_group() -> None:
    """Rootless docker, Docker Desktop, a socket opened to the user: no group, no sudo needed."""
    c = docker("dev is not in the docker group", version=DOCKER_IO_24_UBUNTU_2404,
               compose_v2="Docker Compose version v2.24.6\n", service="systemd active",
               groups="user dev\nuid 1000\nsession dev\ndatabase dev\ngroup docker:x:999:\n",
               run=sec("run", "image hello-world\nHello from Docker!\n"))
    a = c["docker.access"]
    assert a.status == OK and "socket permissions, not the docker group" in a.message
    assert "docker.step" not in c and not any(x.status == FAIL for x in c.values())


def test_docker_run_failure_and_hang() -> None:
    base = {"version": DOCKER_IO_24_UBUNTU_2404, "compose_v2": "Docker Compose version v2.24.6\n",
            "service": "systemd active", "groups": GROUPS_OK}
    c = docker(None, **base, run=sec("run", "image mlops-env/probe:1\ndocker: Error response from daemon: "
                                     "failed to create task for container: fake.\n", 125))
    assert c["docker.run"].status == FAIL and "failed to create task" in c["docker.run"].message
    c = docker(None, **base, run=sec("run", "image mlops-env/probe:1\n", 124))
    assert c["docker.run"].status == FAIL and "did not finish in time" in c["docker.run"].message
    # no local image: mlops-env's earlier proof counts; without it, the step's verdict
    c = docker(None, **base, run=sec("run", "no image\n", 3), stamp="2026-01-01T00:00:00Z\n")
    assert c["docker.run"].status == OK and "2026-01-01" in c["docker.run"].message
    c = docker("no container has been run as dev yet", **base, run=sec("run", "no image\n", 3),
               stamp=sec("stamp", "cat: no such file\n", 1))
    assert (c["docker.run"].status, c["docker.run"].step) == (FAIL, "docker")


def test_daemon_hangs() -> None:
    c = by_id(parse_docker.docker_checks(CheckResult("fail", "check timed out", exit_code=124),
                                  secs(version=sec("version", "Client:\n Version: 24.0.7\n", 124),
                                       groups=GROUPS_OK, service="systemd active"), fresh_session=True))
    assert c["docker.daemon"].status == FAIL and "does not answer" in c["docker.daemon"].message
    assert c["docker.access"].status == SKIP


# -- python -----------------------------------------------------------------------------------
def py(problems: str | None, exit_code: int = 1, *, needs_terms: bool = True, **probes: Any) -> dict[str, Check]:
    res = CheckResult("ok", "conda 24.5.0 in /home/u/anaconda3") if problems is None else \
        CheckResult("fail", problems, exit_code=exit_code)
    return by_id(parse.python_checks(res, secs(**probes), prefix="~/anaconda3", home="/home/u",
                                     needs_terms=needs_terms, dist_label="Anaconda"))


def test_conda_problems_from_the_step_check() -> None:
    c = py("conda init bash not done;base env cannot import: numpy pandas pyarrow sklearn;"
           "Anaconda terms of service not accepted", conda="conda 4.12.0\n")
    assert c["python.conda"].message == "conda 4.12.0 in ~/anaconda3"
    assert (c["python.conda-init"].status, c["python.conda-init"].step) == (FAIL, "conda")
    assert "`~/anaconda3/bin/conda init bash`" in c["python.conda-init"].hint
    assert "conda install -n base numpy pandas pyarrow scikit-learn" in c["python.libraries"].hint
    assert (c["python.terms"].status, c["python.terms"].step) == (FAIL, "conda")


def test_conda_elsewhere_and_zsh() -> None:
    c = py("conda not installed in /home/u/anaconda3",
           conda_elsewhere="prefix /home/u/miniforge3\npath /home/u/miniforge3/bin/conda\n")
    assert "found conda in ~/miniforge3" in c["python.conda"].hint and "--python-dist" in c["python.conda"].hint
    c = py(None, shell_init="shell /usr/bin/zsh\ninit .bashrc\n",
           libraries="python 3.12.4\nnumpy 1.26.4\npandas 2.2.2\npyarrow 14.0.2\nscikit-learn 1.4.2\n")
    assert c["python.conda-init"].status == WARN and "conda init zsh" in c["python.conda-init"].hint
    assert c["python.libraries"].message == ("numpy 1.26.4, pandas 2.2.2, pyarrow 14.0.2, scikit-learn 1.4.2 "
                                             "(Python 3.12.4)")


def test_miniforge_has_no_terms_and_smoke_is_a_warning() -> None:
    c = py(None, needs_terms=False)
    assert "python.terms" not in c
    res = parse.python_checks(CheckResult("ok", "conda 24.7.1 in /home/u/miniforge3"), {}, prefix="~/miniforge3",
                              home="/home/u", needs_terms=False, dist_label="Miniforge",
                              smoke=CheckResult("fail", "smoke test has not passed on this box yet", exit_code=1),
                              smoke_hint="`mlops-env smoke-test ws` trains it there")
    s = by_id(res)["python.smoke"]
    assert s.status == WARN and s.step is None and "smoke-test ws" in s.hint


# -- network ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,rc,ok,desc", [
    ("200 0.116398\n", 0, True, "HTTP 200 in 0.12 s"),
    ("403 0,051\n", 0, True, "HTTP 403 in 0.05 s"),  # a comma decimal mark (de_DE locale)
    ("curl: (6) Could not resolve host: d37ci6vzurychx.cloudfront.net\n000 0.000055\n", 6, False,
     "DNS cannot resolve the host"),
    ("curl: (28) Connection timed out after 2001 milliseconds\n000 2.001\n", 28, False, "no answer (timed out)"),
    ("curl: (7) Failed to connect to pypi.org port 443: Connection refused\n000 0.01\n", 7, False,
     "connection refused or blocked"),
    ("", 124, False, "no answer (timed out)"),
    ("no curl; tcp connect to pypi.org:443\n", 0, True, "TCP port 443 answers (no curl to check HTTPS)"),
])
def test_parse_http(text: str, rc: int, ok: bool, desc: str) -> None:
    assert parse_network.parse_http(sec("url", text, rc)) == (ok, desc)


SS_UBUNTU = """tool ss
LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*
LISTEN 0      128        127.0.0.1:8888       0.0.0.0:*    users:(("jupyter-lab",pid=2345,fd=6))
LISTEN 0      4096         0.0.0.0:5000       0.0.0.0:*
LISTEN 0      128            [::1]:8888          [::]:*    users:(("jupyter-lab",pid=2345,fd=7))
"""
SS_FORWARD = """tool ss
LISTEN 0      128        127.0.0.1:8888       0.0.0.0:*    users:(("ssh",pid=999,fd=5))
LISTEN 0      128        127.0.0.1:5000       0.0.0.0:*    users:(("ssh",pid=999,fd=7))
"""
# macOS 12+: AirPlay Receiver (ControlCenter) takes port 5000, the classic MLflow surprise
LSOF_MACOS = """tool lsof
COMMAND     PID USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME
ControlCe   612   me    9u  IPv4 0x8a7b6c5d4e3f2a19      0t0  TCP *:5000 (LISTEN)
ssh       12345   me    5u  IPv4 0x1234567890abcdef      0t0  TCP 127.0.0.1:8888 (LISTEN)
"""
NETSTAT = """tool netstat
Active Internet connections (only servers)
Proto Recv-Q Send-Q Local Address           Foreign Address         State
tcp        0      0 0.0.0.0:5000            0.0.0.0:*               LISTEN
"""


def test_parse_listening() -> None:
    assert parse_network.parse_listening(SS_UBUNTU) == {53: "", 22: "", 8888: "jupyter-lab", 5000: ""}
    assert parse_network.parse_listening(LSOF_MACOS) == {5000: "ControlCe", 8888: "ssh"}
    assert parse_network.parse_listening(NETSTAT) == {5000: ""}


@pytest.mark.parametrize("text,status,fragment", [
    (SS_UBUNTU, WARN, "5000 (MLflow) is taken by another program"),
    (SS_FORWARD, OK, "8888 forwarded by ssh, 5000 forwarded by ssh"),
    (LSOF_MACOS, WARN, "5000 (MLflow) is taken by ControlCe"),
    ("tool ss\nLISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n", OK, "8888 free, 5000 free"),
    ("tool none\n", SKIP, "no ss, lsof or netstat"),
])
def test_ports(text: str, status: str, fragment: str) -> None:
    c = by_id(parse_network.network_checks(secs(ports=text), urls={}, side="local"))["network.ports"]
    assert c.status == status and fragment in c.message, c.message


# -- tools ------------------------------------------------------------------------------------
def test_tools() -> None:
    c = by_id(parse.tools_checks(CheckResult("fail", "missing packages: curl git", exit_code=1),
                                 secs(git=sec("git", "bash: git: command not found", 127),
                                      curl="curl 8.5.0 (x86_64-pc-linux-gnu) libcurl/8.5.0 OpenSSL/3.0.13\n")))
    assert c["tools.packages"].hint == "`sudo apt-get install -y curl git`" and c["tools.packages"].step == "base"
    assert c["tools.git"].status == FAIL and c["tools.curl"].message == "curl 8.5.0"
    assert set(c) == {"tools.packages", "tools.git", "tools.curl"}
