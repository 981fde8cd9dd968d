"""The idle-stop agent's ``tick`` end to end on a fake root (``MLOPS_ENV_IDLE_ROOT``): the real
script gathers from fake ``ps``/``who``/``docker``/``curl`` and files under the fake root's
``proc``/``sys``/``home``, decides, warns with a fake ``wall``, powers off with a fake
``systemctl``; time is set per check with ``MLOPS_ENV_IDLE_NOW``. Plus ``merge``/``configure``
(the ONE definition of the settings file) and ``status``."""

from __future__ import annotations

import http.server
import json
import os
import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_target import system_bin

from mlops_env.paths import templates_dir

AGENT = templates_dir() / "idle-agent.sh"
FIX = Path(__file__).parent / "fixtures" / "idle"
BOOT_ID = "738df423-7eb0-458e-be21-c7e6d9496013"
REAL_CURL = "/usr/bin/curl"

FAKE_CMD = r'''#!/bin/bash
# fake NAME: prints FAKE/NAME.out when present (exit code from FAKE/NAME.rc), logs its argv
printf '%s\n' "$(printf '%q ' "$0" "$@")" >>'__FAKE__/calls.log'
n=$(basename "$0")
[ -f "__FAKE__/$n.out" ] && cat "__FAKE__/$n.out"
exit "$(cat "__FAKE__/$n.rc" 2>/dev/null || echo 0)"
'''
STDIN_TO_LOG = r'''#!/bin/bash
printf '%s\n' "$(printf '%q ' "$0" "$@")" >>'__FAKE__/calls.log'
{ printf '%s ' "$@"; cat; echo; } >>'__FAKE__/__NAME__.log'
'''
PS_SEQUENCE = r'''#!/bin/bash
# fake ps serving FAKE/ps.seq.1, .2, ... one per call (the last one again after that)
printf '%s\n' "$(printf '%q ' "$0" "$@")" >>'__FAKE__/calls.log'
n=$(( $(cat '__FAKE__/ps.count' 2>/dev/null || echo 0) + 1 )); echo "$n" >'__FAKE__/ps.count'
while [ "$n" -gt 1 ] && [ ! -f "__FAKE__/ps.seq.$n" ]; do n=$((n - 1)); done
cat "__FAKE__/ps.seq.$n"
'''
CURL = r'''#!/bin/bash
# logs curl's argv (a token must never be there), then runs the real curl
printf '%s\n' "$(printf '%q ' "$0" "$@")" >>'__FAKE__/calls.log'
exec '__REAL__' "$@"
'''


class Root:
    """A fake box for the agent: ``root`` stands for /, ``fake`` holds the fake commands."""

    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.fake = base / "fake"
        self.bin = self.fake / "bin"
        self.bin.mkdir(parents=True)
        for name in ("ps", "who", "docker", "systemctl"):
            self._cmd(name, FAKE_CMD)
        for name in ("wall", "logger"):
            self._cmd(name, STDIN_TO_LOG.replace("__NAME__", name))
        self._cmd("curl", CURL.replace("__REAL__", REAL_CURL))
        (self.fake / "calls.log").touch()
        self.resamples = "0"  # how often an SSH session without processes is looked at again
        self.proc("uptime", "5000.00 9000.00\n")
        self.proc("1/stat", "1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 2 5 13 8 20 0 1 0 100000 0 0\n")
        self.proc("loadavg", "0.01 0.03 0.05 1/180 4321\n")
        self.proc("sys/kernel/random/boot_id", BOOT_ID + "\n")
        self.out("ps", (FIX / "ps-bookworm-idle.txt").read_text())
        self.out("who", "")
        (self.bin / "docker").unlink()  # no docker on the box unless a test installs it
        self.conf("window=60\nwarn=10\n")

    def _cmd(self, name: str, text: str) -> None:
        p = self.bin / name
        p.write_text(text.replace("__FAKE__", str(self.fake)))
        p.chmod(0o755)

    def proc(self, rel: str, text: str) -> None:
        p = self.root / "proc" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def out(self, cmd: str, text: str, rc: int = 0) -> None:
        if cmd == "ps":
            text = with_ppid(text)
        (self.fake / f"{cmd}.out").write_text(text)
        (self.fake / f"{cmd}.rc").write_text(str(rc))

    def conf(self, text: str) -> None:
        p = self.root / "etc/mlops-env/idle-stop.conf"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def docker(self, ps_output: str, rc: int = 0) -> None:
        self._cmd("docker", FAKE_CMD)
        self.out("docker", ps_output, rc)
        sock = self.root / "var/run/docker.sock"
        sock.parent.mkdir(parents=True, exist_ok=True)
        if not sock.exists():
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(sock))
            s.close()

    def ps_sequence(self, *texts: str) -> None:
        """``ps`` answers each call with the next of TEXTS (the process list changes between
        the agent's looks), then keeps answering the last."""
        self._cmd("ps", PS_SEQUENCE)
        (self.fake / "ps.count").unlink(missing_ok=True)
        for i, text in enumerate(texts, 1):
            (self.fake / f"ps.seq.{i}").write_text(text)

    def cmdlines(self, argvs: dict[str, list[str]]) -> None:
        """/proc/PID/cmdline of these processes (NUL-separated, as the kernel writes it)."""
        for pid, argv in argvs.items():
            p = self.root / "proc" / pid / "cmdline"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"".join(a.encode() + b"\0" for a in argv))

    def env(self, now: int) -> dict[str, str]:
        return {"PATH": f"{self.bin}:{system_bin()}", "MLOPS_ENV_IDLE_ROOT": str(self.root),
                "MLOPS_ENV_IDLE_NOW": str(now), "HOME": str(self.fake), "LANG": "C.UTF-8",
                "MLOPS_ENV_IDLE_RESAMPLES": self.resamples}

    def run(self, *args: str, now: int = 1000, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["bash", str(AGENT), *args], env=self.env(now), capture_output=True, text=True,
                           timeout=30, check=False)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    def tick(self, now: int) -> None:
        self.run("tick", now=now)

    def state(self) -> dict[str, str]:
        text = (self.root / "var/lib/mlops-env/idle-stop/state").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def journal(self) -> list[str]:
        p = self.fake / "logger.log"
        return p.read_text().splitlines() if p.exists() else []

    def wall(self) -> str:
        p = self.fake / "wall.log"
        return p.read_text() if p.exists() else ""

    def calls(self, name: str) -> list[list[str]]:
        out = []
        for line in (self.fake / "calls.log").read_text().splitlines():
            argv = shlex.split(line)
            if Path(argv[0]).name == name:
                out.append(argv[1:])
        return out

    def powered_off(self) -> bool:
        return ["poweroff"] in self.calls("systemctl")


def with_ppid(text: str) -> str:
    """The agent asks ``ps -eo pid=,ppid=,user:32=,args=``; the older fixtures were captured as
    ``pid=,user=,args=``: their lines get a parent PID of 1 (the process tree only matters to the
    own-session tests, which use a tree captured whole)."""
    out = []
    for line in text.splitlines():
        f = line.split()
        out.append(line if len(f) > 2 and f[1].isdigit() else f"{f[0]} 1 {' '.join(f[1:])}" if f else line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


@pytest.fixture
def box(tmp_path: Path) -> Root:
    return Root(tmp_path)


# -- the idle path ---------------------------------------------------------------------------
def test_idle_box_warns_then_powers_off(box: Root) -> None:
    box.tick(1000)
    assert box.state()["idle_since"] == "1000"
    assert "idle 0 s/60 s (no ssh, no jupyter, no load, no containers)" in box.journal()[-1]
    box.tick(1049)
    assert box.wall() == "" and not box.powered_off()
    box.tick(1050)  # stop due at 1060, warn 10 s before
    assert "has been idle for 50 s and will power off at" in box.wall()
    assert "in 10 s" in box.wall() and "Its disk is kept" in box.wall()
    assert "warning sent" in box.journal()[-1]
    assert box.state()["deadline"] == "1060"
    box.tick(1055)
    assert not box.powered_off()
    box.tick(1060)
    assert box.powered_off()
    assert "powering off now (idle)" in box.journal()[-1]
    events = (box.root / "var/lib/mlops-env/idle-stop/events").read_text().splitlines()
    assert [e.split()[1] for e in events] == ["warn", "poweroff"]


def test_activity_during_the_warning_cancels(box: Root) -> None:
    box.tick(1000)
    box.tick(1050)
    assert "will power off" in box.wall()
    box.out("ps", (FIX / "ps-bookworm-sessions.txt").read_text())  # someone logs in
    box.tick(1055)
    assert "power-off cancelled" in box.wall()
    box.tick(1060)
    assert not box.powered_off()
    assert box.state()["deadline"] == "" and box.state()["idle_since"] == ""
    assert "active: ssh 3 session(s) (tester@notty, tester@forwarding, tester@pts/0)" in box.journal()[-1]
    # the session ends: a whole new window from then on
    box.out("ps", (FIX / "ps-bookworm-idle.txt").read_text())
    box.tick(1070)
    assert box.state()["idle_since"] == "1070" and box.state()["stop_at"] == "1130"


def test_every_check_is_one_journal_line(box: Root) -> None:
    for t in (1000, 1010, 1020):
        box.tick(t)
    assert len(box.journal()) == 3


# -- sessions --------------------------------------------------------------------------------
def test_live_who_entry_counts_and_stale_one_does_not(box: Root) -> None:
    box.out("who", (FIX / "who-u-C.txt").read_text())  # pid 107
    box.tick(1000)
    assert box.state()["idle_since"] == "1000"  # no /proc/107: a stale utmp record
    box.proc("107/stat", "107 (sshd) S\n")
    box.tick(1010)
    assert box.state()["idle_since"] == ""
    assert "tester@pts/0" in box.state()["activity"]


def test_a_rule_switched_off_is_not_asked(box: Root) -> None:
    box.out("ps", (FIX / "ps-bookworm-sessions.txt").read_text())
    box.conf("window=60\nwarn=10\nssh=off\n")
    box.tick(1000)
    assert box.state()["idle_since"] == "1000"
    assert "(no jupyter, no load, no containers)" in box.journal()[-1]


# -- load ------------------------------------------------------------------------------------
def test_load_average_on_a_vm(box: Root) -> None:
    box.proc("loadavg", "1.97 1.20 0.80 3/200 999\n")
    box.tick(1000)
    assert "load average 1.97" in box.state()["activity"]
    box.conf("window=60\nload_threshold=2.5\n")
    box.tick(1010)
    assert box.state()["idle_since"] == "1010"


def test_container_load_comes_from_its_own_cgroup(box: Root) -> None:
    """In a container /proc/loadavg is the host's (busy here), so the box's own cgroup CPU time
    is measured instead, between two checks."""
    (box.root / "run/systemd").mkdir(parents=True)
    (box.root / "run/systemd/container").write_text("docker\n")
    box.proc("loadavg", "3.50 3.20 3.00 9/900 999\n")  # the host's
    usage = box.root / "sys/fs/cgroup/cpuacct/cpuacct.usage"
    usage.parent.mkdir(parents=True)
    usage.write_text("1000000000\n")
    box.proc("uptime", "5000.00 9000.00\n")
    box.tick(1000)
    assert "first CPU sample" in box.state()["activity"]  # unknown yet: not idle
    usage.write_text("2500000000\n")
    box.proc("uptime", "5001.50 9000.00\n")
    box.tick(1002)
    assert "CPU load 1.00" in box.state()["activity"]
    usage.write_text("2560000000\n")
    box.proc("uptime", "5031.50 9000.00\n")
    box.tick(1032)
    assert box.state()["idle_since"] == "1032"


# -- containers ------------------------------------------------------------------------------
def test_running_container_is_activity(box: Root) -> None:
    box.docker((FIX / "docker-ps-labelled.txt").read_text())
    box.tick(1000)
    assert "containers 1 running (idle-cap-train)" in box.state()["activity"]
    assert box.calls("docker")[-1][:2] == ["ps", "--no-trunc"]


def test_docker_that_does_not_answer_is_not_idle(box: Root) -> None:
    box.docker("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n", rc=1)
    box.tick(1000)
    assert "docker ps failed" in box.state()["activity"] and box.state()["idle_since"] == ""


def test_docker_installed_but_daemon_not_running_is_idle(box: Root) -> None:
    box.docker("")
    (box.root / "var/run/docker.sock").unlink()
    box.tick(1000)
    assert box.state()["idle_since"] == "1000"
    assert box.calls("docker") == []


# -- Jupyter ---------------------------------------------------------------------------------
class _Jupyter(http.server.BaseHTTPRequestHandler):
    token = "s3cr3t-t0ken"
    body = (FIX / "jupyter-kernels-busy.json").read_text()
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).seen.append(f"{self.path} {self.headers.get('Authorization')}")
        if self.headers.get("Authorization") != f"token {self.token}":
            self.send_response(403)
            self.end_headers()
            self.wfile.write(b'{"message": "Forbidden", "reason": null}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).body.encode())

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def jupyter() -> Iterator[tuple[int, type[_Jupyter]]]:
    handler = type("J", (_Jupyter,), {"seen": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], handler
    finally:
        srv.shutdown()
        srv.server_close()


def _runtime(box: Root, user: str, pid: int, port: int, token: str, *, alive: bool = True) -> None:
    home = box.root / ("root" if user == "root" else f"home/{user}")
    d = home / ".local/share/jupyter/runtime"
    d.mkdir(parents=True, exist_ok=True)
    info = json.loads((FIX / "jpserver-runtime.json").read_text())
    info.update(pid=pid, port=port, token=token, url=f"http://127.0.0.1:{port}/")
    (d / f"jpserver-{pid}.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    if alive:
        box.proc(f"{pid}/stat", f"{pid} (jupyter-server) S\n")


def test_jupyter_busy_kernel_with_token_sent_on_stdin(box: Root, jupyter: tuple[int, type[_Jupyter]]) -> None:
    port, handler = jupyter
    _runtime(box, "alice", 4321, port, handler.token)
    box.tick(1000)
    assert "jupyter kernel 732aef51 is busy (server pid 4321)" in box.state()["activity"]
    assert handler.seen == [f"/api/kernels token {handler.token}"]
    curl = box.calls("curl")
    assert curl and all(handler.token not in " ".join(argv) for argv in curl)  # never in argv (ps)


def test_jupyter_idle_kernel_starts_the_clock_at_its_last_run(box: Root, jupyter: tuple[int, type[_Jupyter]]) -> None:
    port, handler = jupyter
    handler.body = (FIX / "jupyter-kernels-idle-after-run.json").read_text()  # ran at 1795815787
    _runtime(box, "root", 4321, port, handler.token)
    box.tick(1795815800)
    assert box.state()["idle_since"] == "1795815800"
    # the agent was idle since earlier: the kernel's run moves the clock forward
    box.tick(1795815830)
    assert box.state()["idle_since"] == "1795815800"
    state = box.root / "var/lib/mlops-env/idle-stop/state"
    state.write_text(state.read_text().replace("idle_since=1795815800", "idle_since=1795815700"))
    box.tick(1795815840)
    assert box.state()["idle_since"] == "1795815787"


def test_jupyter_stale_runtime_file_is_skipped(box: Root) -> None:
    _runtime(box, "alice", 999999, 9, "x", alive=False)
    box.tick(1000)
    assert box.state()["idle_since"] == "1000"
    assert box.calls("curl") == []


def test_jupyter_server_that_refuses_is_counted_as_activity(box: Root, jupyter: tuple[int, type[_Jupyter]]) -> None:
    port, handler = jupyter
    _runtime(box, "alice", 4321, port, "wrong-token")
    box.tick(1000)
    act = box.state()["activity"]
    assert "did not answer /api/kernels (HTTP 403)" in act and "jupyter=off" in act
    assert box.state()["idle_since"] == ""


# -- the uptime cap, boots, settings ---------------------------------------------------------
def test_cap_powers_off_despite_a_session(box: Root) -> None:
    box.conf("window=0\nmax_uptime=100\nwarn=10\n")
    box.out("ps", (FIX / "ps-bookworm-sessions.txt").read_text())
    box.proc("uptime", "1090.00 9000.00\n")  # PID 1 started at 1000.00 s (100000 ticks): up 90 s
    box.tick(1000)
    assert "reached its uptime limit (100 s, --max-hours) and will power off" in box.wall()
    assert box.state()["reason"] == "cap"
    box.proc("uptime", "1100.00 9000.00\n")
    box.tick(1010)
    assert box.powered_off()


def test_a_new_boot_starts_from_scratch(box: Root) -> None:
    box.tick(1000)
    box.tick(1050)
    assert box.state()["deadline"] == "1060"
    box.proc("sys/kernel/random/boot_id", "another-boot\n")  # stopped and started again
    box.tick(5000)
    assert box.state()["idle_since"] == "5000" and box.state()["deadline"] == ""
    assert not box.powered_off()


def test_bad_settings_change_nothing(box: Root) -> None:
    box.conf("window=60\nwindw=5\n")
    box.tick(1000)
    assert "settings unreadable, doing nothing" in box.journal()[-1]
    assert "unknown key windw" in box.journal()[-1]
    box.conf("window=soon\n")
    box.tick(1010)
    assert "invalid value for window: soon" in box.journal()[-1]
    assert not box.powered_off() and box.wall() == ""


def test_off_does_nothing(box: Root) -> None:
    box.conf("window=0\nmax_uptime=0\n")
    box.tick(1000)
    assert "-- off (window=0, max_uptime=0)" in box.journal()[-1]
    assert box.calls("ps") == []


def test_failed_poweroff_is_logged_and_retried(box: Root) -> None:
    box.out("systemctl", "Failed to power off system via logind\n", rc=1)
    box.tick(1000)
    box.tick(1050)
    box.tick(1060)
    assert "systemctl poweroff failed" in box.journal()[-1]
    box.tick(1070)
    assert box.calls("systemctl") == [["poweroff"], ["poweroff"]]


# -- settings: merge, configure, effective ---------------------------------------------------
def _kv(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_merge_precedence(box: Root) -> None:
    box.conf("# mine\nwindow = 1800\nssh=off\n")
    m = _kv(box.run("merge", "--default", "window=3600", "--default", "max_uptime=0").stdout)
    assert m["window"] == "1800" and m["ssh"] == "off" and m["max_uptime"] == "0"  # file > default
    m = _kv(box.run("merge", "--default", "window=3600", "--set", "window=600").stdout)
    assert m["window"] == "600"  # set > file
    (box.root / "etc/mlops-env/idle-stop.conf").unlink()
    m = _kv(box.run("merge", "--default", "window=0").stdout)
    assert m == {"window": "0", "max_uptime": "0", "warn": "auto", "interval": "auto",
                 "load_threshold": "0.5", "ssh": "on", "jupyter": "on", "load": "on", "containers": "on"}


def test_merge_rejects_bad_values(box: Root) -> None:
    for bad in ("window=1h", "nope=1", "ssh=yes", "load_threshold=high", "interval=0", "window"):
        r = box.run("merge", "--set", bad, check=False)
        assert r.returncode == 2, bad


def test_effective_resolves_auto(box: Root) -> None:
    (box.root / "etc/mlops-env/idle-stop.conf").unlink()
    def eff(*sets: str) -> dict[str, str]:
        return _kv(box.run("effective", *(a for s in sets for a in ("--set", s))).stdout)

    assert (eff("window=3600")["warn"], eff("window=3600")["interval"]) == ("300", "30")
    assert (eff("window=10")["warn"], eff("window=10")["interval"]) == ("5", "1")
    assert (eff("window=0", "max_uptime=28800")["warn"], eff("window=0", "max_uptime=28800")["interval"]) == ("300", "30")
    assert eff("window=10", "warn=3")["warn"] == "3"


def test_configure_writes_once(box: Root) -> None:
    (box.root / "etc/mlops-env/idle-stop.conf").unlink()
    assert box.run("configure", "--set", "window=1800").stdout.strip() == "changed"
    conf = box.root / "etc/mlops-env/idle-stop.conf"
    assert oct(conf.stat().st_mode & 0o777) == "0o644"
    assert conf.read_text().startswith("# mlops-env idle-stop settings")
    assert "window=1800\n" in conf.read_text()
    assert box.run("configure", "--set", "window=1800").stdout.strip() == "unchanged"
    assert box.run("configure", "--default", "window=3600").stdout.strip() == "unchanged"


def test_status_reports_state_and_settings(box: Root) -> None:
    box.tick(1000)
    st = _kv(box.run("status").stdout)
    assert st["agent"] == "installed" and st["setting_window"] == "60" and st["setting_warn"] == "10"
    assert st["idle_since"] == "1000" and st["boot_current"] == "1" and st["stop_at"] == "1060"


def test_gather_is_read_only(box: Root) -> None:
    out = box.run("gather").stdout.splitlines()
    assert out == ["idle ssh", "idle jupyter", "idle load", "idle containers"]
    assert not (box.root / "var/lib/mlops-env").exists()


def test_agent_keys_match_the_step_script() -> None:
    """The settings are defined once (the agent); the step script only passes them through."""
    text = AGENT.read_text()
    keys = text.split('KEYS="', 1)[1].split('"', 1)[0].split()
    from mlops_env.steps.idlestop import RULES

    assert set(RULES) <= set(keys)
    assert os.access(AGENT, os.R_OK)


# -- mlops-env's own SSH connections are not activity ---------------------------------------
TREE = (FIX / "ps-tree-bookworm-mlops-env.txt").read_text()
TREE_ARGV = json.loads((FIX / "ps-tree-bookworm-mlops-env.cmdline.json").read_text())
#: the same box a moment later: the connection that was between two commands (149) runs its
#: next one (constructed from the captured lines 178/183 of the first connection)
TREE_NEXT = TREE + ("    190     149 ubuntu                           sh -c t=$(mktemp) || exit 97; trap 'rm -f \"$t\"' "
                    "EXIT; cat >\"$t\"; bash \"$t\" \"$@\" </dev/null mlops-env\n"
                    "    191     190 ubuntu                           bash /tmp/tmp.Zx81Qa0pLm\n")


def _stat(pid: int, start: int) -> str:
    return f"{pid} (sshd) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"


def test_mlops_env_connections_do_not_count_a_persons_do(box: Root) -> None:
    box.ps_sequence(TREE)
    box.cmdlines({**TREE_ARGV, "190": TREE_ARGV["178"]})
    box.tick(1000)
    # 142 and 171 run mlops-env's commands (171 through sudo): not counted. The person's
    # terminal, command and tunnel are; so is 149, which stays without a process (no resample)
    assert box.state()["activity"] == ("active: ssh 4 session(s) (ubuntu@notty, ubuntu@forwarding, "
                                       "ubuntu@notty, ubuntu@pts/0)")
    assert box.state()["own_ssh"] == "142: 171:"


def test_a_connection_between_two_commands_is_looked_at_again(box: Root) -> None:
    box.resamples = "2"
    # at the third look, 142's command has ended (nothing under it any more)
    after = "".join(line + "\n" for line in TREE_NEXT.splitlines() if line.split()[0] not in {"178", "183", "185"})
    box.ps_sequence(TREE, TREE_NEXT, after)
    box.cmdlines({**TREE_ARGV, "190": TREE_ARGV["178"]})
    box.tick(1000)
    # 149 had nothing under it at the first look and mlops-env's next command at the second;
    # 142 ran mlops-env's command at the first look and nothing at the last: both are ours. The
    # tunnel (159) has nothing under it at every look: a person's forward, counted
    assert box.state()["activity"] == "active: ssh 3 session(s) (ubuntu@forwarding, ubuntu@notty, ubuntu@pts/0)"
    assert len(box.calls("ps")) == 3  # first look, then two more (the tunnel stays in question)


def test_only_mlops_env_connected_is_idle_and_remembered(box: Root) -> None:
    only_ours = "".join(line + "\n" for line in TREE.splitlines()
                        if line.split()[0] in {"1", "116", "141", "142", "144", "171", "178", "179", "182",
                                               "183", "185", "187", "188"})
    box.proc("142/stat", _stat(142, 5000))
    box.proc("171/stat", _stat(171, 5100))
    box.ps_sequence(only_ours)
    box.cmdlines(TREE_ARGV)
    box.tick(1000)
    assert box.state()["activity"].startswith("idle ") and box.state()["idle_since"] == "1000"
    assert box.state()["own_ssh"] == "142:5000 171:5100"
    # later both connections sit between two commands: nothing under them, nothing marked; the
    # agent remembers them (same PID, same start time) and they still do not count
    between = "".join(line + "\n" for line in only_ours.splitlines() if line.split()[0] in {"1", "116", "141",
                                                                                               "142", "144", "171"})
    box.ps_sequence(between)
    box.tick(1030)
    assert box.state()["activity"].startswith("idle ") and box.state()["idle_since"] == "1000"
    # a PID reused by another process (another start time) is not remembered as ours
    box.proc("142/stat", _stat(142, 9999))
    box.tick(1040)
    assert box.state()["activity"] == "active: ssh 1 session(s) (ubuntu@notty)"
    assert box.state()["own_ssh"] == "171:5100"
