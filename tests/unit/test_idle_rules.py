"""The idle-stop agent's rules, one by one, as pure functions on CAPTURED outputs
(``idle-agent rule NAME < fixture``; fixtures/idle/README.md says how each file was made),
and its decision state machine (``idle-agent rule decide``)."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mlops_env.paths import templates_dir

FIX = Path(__file__).parent / "fixtures" / "idle"
AGENT = templates_dir() / "idle-agent.sh"


def rule(name: str, *args: str, stdin: str | Path = "") -> list[str]:
    text = stdin.read_text() if isinstance(stdin, Path) else stdin
    r = subprocess.run(["bash", str(AGENT), "rule", name, *args], input=text, capture_output=True,
                       text=True, timeout=20, check=False)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line]


# -- SSH sessions (ps) -----------------------------------------------------------------------
def test_ps_sessions_counts_terminal_command_and_tunnel_sessions() -> None:
    # a pty (ssh -tt), a command without a terminal (VS Code Remote-SSH, ssh host cmd) and a
    # port forward without any channel (ssh -N -L: a Jupyter tunnel) are all sessions; the
    # privileged monitors, the listener and a bare TCP connection are not
    assert rule("ps-sessions", stdin=FIX / "ps-bookworm-sessions.txt") == [
        "ssh 118 tester@notty", "ssh 123 tester@forwarding", "ssh 128 tester@pts/0"]


def test_ps_sessions_ignores_unauthenticated_connections() -> None:
    # port scanners and password guessers on a public IP must not keep a box up forever
    assert rule("ps-sessions", stdin=FIX / "ps-bookworm-preauth.txt") == []
    assert rule("ps-sessions", stdin=FIX / "ps-bookworm-idle.txt") == []


def test_ps_sessions_openssh_98_names_and_ssm() -> None:
    assert rule("ps-sessions", stdin=FIX / "ps-openssh98-constructed.txt") == [
        "ssh 1230 ubuntu@pts/0", "ssh 1310 ubuntu@notty", "ssm 1402 root@ssm"]


def test_ps_sessions_long_user_names() -> None:
    # `ps -o user:32` keeps a long name whole, so a tunnel-only session still matches its user
    text = "  200 data-scientist-01                sshd: data-scientist-01\n"
    assert rule("ps-sessions", stdin=text) == ["ssh 200 data-scientist-01@forwarding"]
    assert rule("ps-sessions", stdin="  201 data-sc+  sshd: data-scientist-01\n") == []


# -- logins (who) ----------------------------------------------------------------------------
def test_who_sessions_c_locale() -> None:
    assert rule("who-sessions", stdin=FIX / "who-u-C.txt") == ["who 107 tester@pts/0"]


def test_who_sessions_iso_dates_and_idle_column() -> None:
    # the date has one field here and two in the C locale; the idle column may look like a time
    assert rule("who-sessions", stdin=FIX / "who-u-C.UTF-8.txt") == [
        "who 107 tester@pts/0", "who 160 tester@pts/1"]


def test_who_sessions_empty() -> None:
    assert rule("who-sessions", stdin="") == []


# -- load ------------------------------------------------------------------------------------
def test_loadavg_against_threshold() -> None:
    text = (FIX / "loadavg-container-host.txt").read_text()  # 0.69 ...
    assert rule("loadavg", "0.5", stdin=text) == ["active load load average 0.69 (threshold 0.5)"]
    assert rule("loadavg", "0.7", stdin=text) == ["idle load"]
    assert rule("loadavg", "0.69", stdin=text)[0].startswith("active")  # at the threshold: busy
    assert rule("loadavg", "0.5", stdin="0.00 0.01 0.05 1/180 4321\n") == ["idle load"]
    assert rule("loadavg", "0.5", stdin="garbage\n")[0].startswith("unknown load")


def test_cgroup_usage_v1_and_v2() -> None:
    assert rule("cgroup-usage", stdin=FIX / "cgroup-v1-cpuacct.usage") == ["596558615"]
    assert rule("cgroup-usage", stdin=FIX / "cgroup-v2-cpu.stat") == ["599135000"]  # usec -> ns


def test_cpu_load_from_two_samples() -> None:
    # 1.5 CPU-seconds in 1.5 s: one CPU busy
    assert rule("cpu-load", "1000000000", "10.0", "2500000000", "11.5", "0.5") == [
        "active load CPU load 1.00 (threshold 0.5)"]
    # 60 ms in 30 s: idle (the agent's own checks cost about this)
    assert rule("cpu-load", "1000000000", "10.0", "1060000000", "40.0", "0.5") == ["idle load"]
    # no previous sample, or a counter that went back (a new cgroup): not known yet
    assert rule("cpu-load", "", "", "5", "1", "0.5")[0].startswith("unknown load")
    assert rule("cpu-load", "9000", "1", "5", "2", "0.5")[0].startswith("unknown load")


def test_uptime_is_pid1_age() -> None:
    # /proc/uptime is the host's in a container: PID 1's start time gives the box's own
    assert rule("uptime", "100", stdin=FIX / "uptime-container.txt") == ["45"]
    assert rule("uptime", "100", stdin="5000.5 9000.1\n@\n") == ["5000"]  # no stat: /proc/uptime


# -- Jupyter ---------------------------------------------------------------------------------
def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp())


def test_jupyter_runtime_file() -> None:
    info = dict(x.split("=", 1) for x in rule("jupyter-server", stdin=FIX / "jpserver-runtime.json"))
    assert info["pid"] == "18641" and info["port"] == "18888" and info["token"] == "c0ffee0123456789"
    assert info["base_url"] == "/" and info["secure"] == "false" and info["sock"] == ""


def test_jupyter_kernels_busy_is_activity() -> None:
    assert rule("jupyter-kernels", stdin=FIX / "jupyter-kernels-busy.json") == [
        "active jupyter kernel 732aef51 is busy"]


def test_jupyter_kernels_idle_reports_last_activity() -> None:
    # the kernel ran something at 21:43:07.498667Z: idle since then, not since this check
    assert rule("jupyter-kernels", stdin=FIX / "jupyter-kernels-idle-after-run.json") == [
        f"idle jupyter {_epoch('2026-11-27T21:43:07Z')}"]
    # two kernels: the latest activity of either
    assert rule("jupyter-kernels", stdin=FIX / "jupyter-kernels-two-kernels.json") == [
        f"idle jupyter {_epoch('2026-11-27T21:43:08Z')}"]


def test_jupyter_kernel_stuck_starting_is_not_activity_forever() -> None:
    # a kernel nobody connected to stays "starting": only its last_activity counts
    assert rule("jupyter-kernels", stdin=FIX / "jupyter-kernels-starting.json") == [
        f"idle jupyter {_epoch('2026-11-27T21:42:58Z')}"]


def test_jupyter_kernels_none_and_errors() -> None:
    assert rule("jupyter-kernels", stdin=FIX / "jupyter-kernels-empty.json") == ["idle jupyter"]
    assert rule("jupyter-kernels", stdin=FIX / "jupyter-kernels-forbidden.json")[0].startswith("unknown jupyter")
    assert rule("jupyter-kernels", stdin="")[0].startswith("unknown jupyter")


@pytest.mark.parametrize("stamp", ["2026-11-27T21:43:07.498667Z", "2026-11-27T21:43:07Z",
                                   "2026-11-27T21:43:07.5+00:00", "2026-11-27T23:43:07+02:00",
                                   "2024-02-29T00:00:00Z", "1999-12-31T23:59:59Z"])
def test_jupyter_timestamps(stamp: str) -> None:
    body = f'[{{"id": "k1", "name": "python3", "last_activity": "{stamp}", "execution_state": "idle", "connections": 1}}]'
    assert rule("jupyter-kernels", stdin=body) == [f"idle jupyter {_epoch(stamp)}"]


def test_jupyter_kernels_braces_in_strings() -> None:
    body = ('[{"id": "a}b{", "name": "py}", "last_activity": "2026-01-01T00:00:00Z", "execution_state": "idle"},'
            '{"id": "k2", "name": "r", "last_activity": "2026-01-01T00:00:05Z", "execution_state": "busy"}]')
    assert rule("jupyter-kernels", stdin=body) == ["active jupyter kernel k2 is busy"]


# -- containers ------------------------------------------------------------------------------
def test_containers_counts_user_containers_only() -> None:
    # one plain container counts; the one labelled mlops-env.idle=ignore does not
    assert rule("containers", stdin=FIX / "docker-ps-labelled.txt") == [
        "active containers 1 running (idle-cap-train)"]


def test_containers_ignores_the_probe_and_nothing_running() -> None:
    probe = "0123abcd\tmlops-env/probe:1\tcool_name\t\n"
    assert rule("containers", stdin=probe) == ["idle containers"]
    assert rule("containers", stdin="") == ["idle containers"]


# -- the decision ----------------------------------------------------------------------------
def decide(**kw: object) -> dict[str, str]:
    base: dict[str, object] = {"now": 1000, "up": 100, "window": 100, "max_uptime": 0, "warn": 10,
                               "active": 0, "last": 0, "idle_since": "", "deadline": "", "reason": ""}
    base.update(kw)
    out = rule("decide", *(f"{k}={v}" for k, v in base.items()))
    return dict(line.split("=", 1) for line in out)


def test_decide_idle_clock_starts_now() -> None:
    d = decide()
    assert d["action"] == "none" and d["idle_since"] == "1000" and d["stop_at"] == "1100"


def test_decide_activity_resets_the_clock() -> None:
    d = decide(active=1, idle_since=500)
    assert d["action"] == "none" and d["idle_since"] == "" and d["stop_at"] == ""


def test_decide_latest_reported_activity_moves_the_clock() -> None:
    assert decide(idle_since=500, last=700)["idle_since"] == "700"
    assert decide(idle_since=800, last=700)["idle_since"] == "800"
    assert decide(idle_since="", last=700)["idle_since"] == "1000"  # just became idle
    assert decide(idle_since=500, last=5000)["idle_since"] == "500"  # a clock from the future


def test_decide_warns_before_and_fixes_a_deadline() -> None:
    d = decide(idle_since=905)  # stop at 1005, warn from 995
    assert d["action"] == "warn" and d["deadline"] == "1010" and d["reason"] == "idle"
    d = decide(idle_since=895)  # stop due at 995: the warning still comes a full 10 s before
    assert d["action"] == "warn" and d["deadline"] == "1010"
    assert decide(idle_since=911)["action"] == "none"  # stop at 1011: warn from 1001
    assert decide(idle_since=910)["action"] == "warn"  # stop at 1010: warn from 1000, now


def test_decide_waits_then_powers_off_at_the_deadline() -> None:
    assert decide(idle_since=895, deadline=1010, reason="idle")["action"] == "wait"
    d = decide(now=1010, idle_since=895, deadline=1010, reason="idle")
    assert d["action"] == "poweroff" and d["reason"] == "idle"


def test_decide_activity_during_the_warning_cancels() -> None:
    d = decide(now=1005, active=1, idle_since=895, deadline=1010, reason="idle")
    assert d["action"] == "cancel" and d["deadline"] == "" and d["idle_since"] == ""
    d = decide(now=1010, active=1, idle_since=895, deadline=1010, reason="idle")  # at the deadline
    assert d["action"] == "cancel"


def test_decide_longer_window_or_off_cancels() -> None:
    assert decide(window=1000, idle_since=895, deadline=1010, reason="idle")["action"] == "cancel"
    assert decide(window=0, idle_since=895, deadline=1010, reason="idle")["action"] == "cancel"


def test_decide_cap_ignores_activity() -> None:
    d = decide(window=0, max_uptime=3600, up=3595, active=1)
    assert d["action"] == "warn" and d["reason"] == "cap" and d["deadline"] == "1010"
    d = decide(window=0, max_uptime=3600, up=3610, active=1, deadline=1010, reason="cap", now=1010)
    assert d["action"] == "poweroff" and d["reason"] == "cap"
    assert decide(window=0, max_uptime=3600, up=100, active=1)["action"] == "none"


def test_decide_earlier_of_idle_and_cap() -> None:
    d = decide(window=100, max_uptime=150, up=100, idle_since=1000)
    assert d["stop_at"] == "1050" and d["why"] == "cap"
    d = decide(window=100, max_uptime=1000, up=100, idle_since=1000)
    assert d["stop_at"] == "1100" and d["why"] == "idle"


def test_decide_off() -> None:
    d = decide(window=0, max_uptime=0, idle_since=500)
    assert d == {"action": "none", "idle_since": "", "deadline": "", "reason": "", "stop_at": "", "why": ""}


def test_decide_rejects_bad_input() -> None:
    r = subprocess.run(["bash", str(AGENT), "rule", "decide", "now=12x"], capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "whole seconds" in r.stderr


# -- mlops-env's own connections (ps tree) ---------------------------------------------------
def test_own_sessions_are_those_above_an_mlops_env_command() -> None:
    """Captured in the Debian 12 box: a person's `ssh -tt` (173) and `ssh host cmd` (163, with
    its `sleep`), a tunnel `ssh -N -L` (159), and three connections of mlops-env's transport: one
    running a command (142 -> 178 `sh -c ... mlops-env x y`), one running it through sudo
    (171 -> 179 sudo -> 182), one between two commands (149, nothing under it)."""
    fix = FIX / "ps-tree-bookworm-mlops-env.txt"
    assert rule("own-sessions", "178", "182", stdin=fix) == ["own 142", "bare 149", "bare 159", "own 171"]
    # nothing marked: only the sessions with no process under them are in question
    assert rule("own-sessions", stdin=fix) == ["bare 149", "bare 159"]
    # a marked process outside any session (a local `sh -c ... mlops-env`) marks no session
    assert rule("own-sessions", "1", stdin=fix) == ["bare 149", "bare 159"]


def test_own_sessions_openssh_98_names() -> None:
    text = ("  500  1 root     sshd-session: ana [priv]\n"
            "  501  500 ana      sshd-session: ana@notty\n"
            "  502  501 ana      sh -c t=$(mktemp) mlops-env\n"
            "  510  1 root     sshd-session: ana [priv]\n"
            "  511  510 ana      sshd-session: ana@pts/1\n")
    assert rule("own-sessions", "502", stdin=text) == ["own 501"]
