"""Idle stop end to end: the installed ``mlops-env idle-stop`` puts the real agent on a systemd
Debian container that behaves like a fresh cloud VM (tests/hosts.py), with a window of a few
seconds, and the box is watched from outside:

* nobody uses it: it warns, then powers itself off (systemd's poweroff makes PID 1 exit, so the
  container stops, as an EC2 instance with shutdown behaviour "stop" would);
* an open SSH session, a busy CPU or a running container keeps it up; once that ends, it stops
  after a whole window again;
* ``off`` disables it; the warning reaches an open terminal (``wall``); the uptime cap stops it
  even while a session is open.

The workstation is registered in an isolated MLOPS_ENV_HOME as ``up ssh`` would leave it (state
record + pinned host key); everything after that is the product's own command and step.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import hosts
import pytest
from e2ehelp import Env

from mlops_env.paths import Paths
from mlops_env.ssh import knownhosts
from mlops_env.state import Endpoint, Record, Store

WINDOW = "6s"
WARN = "2"
#: long enough that a box that was going to stop would have: window + warning + slack
KEEP_UP = 6 + 2 + 4
STOP_WITHIN = 40  # seconds from "nothing is active" to "the container has stopped", at most


def register(env: Env, box: Any, name: str) -> None:
    """What `up ssh` leaves behind: the state record and the pinned host key."""
    paths = Paths(data=env.root, config=env.root, cache=env.root / "cache", logs=env.root / "logs")
    alias = f"mlops-env-{name}"
    knownhosts.pin(paths, alias, box.host_key, replace=True)
    ep = Endpoint(box.host, box.port, box.user, str(box.identity), alias)
    Store(paths).save(Record(name=name, provider="ssh", alias=f"mlops-{name}", endpoint=ep, phase="ready",
                             provider_data={"target": box.host_spec, "identity": str(box.identity)}))


def idle_stop(env: Env, name: str, *args: str) -> dict[str, Any]:
    r = env.mlops("--json", "idle-stop", name, *args, "--ssh-timeout", "20", timeout=120)
    assert r.code == 0, r.stdout + r.stderr
    return r.data


def status(engine: Any, box: Any) -> str:
    c = engine.containers.get(box.container_id)
    c.reload()
    return str(c.status)


def wait_stopped(engine: Any, box: Any, timeout: float = STOP_WITHIN) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if status(engine, box) == "exited":
            return time.monotonic() - t0
        time.sleep(0.5)
    raise AssertionError(f"{box.name} did not power itself off within {timeout:.0f} s:\n" + journal(engine, box))


def journal(engine: Any, box: Any) -> str:
    if status(engine, box) != "running":
        return events(engine, box)
    return hosts.exec_in(engine, box.container_id, ["journalctl", "-t", "mlops-env-idle", "--no-pager", "-q"],
                         check=False).stdout


def events(engine: Any, box: Any) -> str:
    """The agent's event log (/var/lib: kept on the stopped container's disk)."""
    stream, _ = engine.containers.get(box.container_id).get_archive("/var/lib/mlops-env/idle-stop/events")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tf:
        f = tf.extractfile("events")
        return f.read().decode() if f else ""


def session(engine: Any, box: Any, out: Path) -> subprocess.Popen[bytes]:
    """An interactive SSH session with a terminal (as a person's), its screen going to OUT."""
    known_hosts = hosts.write_known_hosts(out.with_name(out.name + ".known_hosts"), box)
    argv = [*hosts.ssh_argv(box, known_hosts=known_hosts), "-tt", "sleep 600"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = hosts.exec_in(engine, box.container_id, ["sh", "-c", "ps -eo args= | grep -c '^sshd: .*@pts'"],
                          check=False)
        if r.stdout.strip() not in ("", "0"):
            return p
        time.sleep(0.2)
    p.kill()
    raise AssertionError("the SSH session did not start")


@pytest.fixture
def box(vm_host: Any, user_env: Env) -> Any:
    b = vm_host(user="ubuntu")
    register(user_env, b, "ws")
    return b


def test_nobody_there_warns_then_powers_off(box: Any, docker_engine: Any, user_env: Env) -> None:
    t0 = time.monotonic()  # the idle clock may start while the command is still connected:
    data = idle_stop(user_env, "ws", WINDOW, "--warn", WARN)  # its own connection is no activity
    assert data["step"]["status"] == "changed"
    assert data["step"]["message"] == "idle-stop after 6 s idle; checked every 1 s"
    assert data["agent"]["enabled"] and data["agent"]["window_s"] == 6
    waited = wait_stopped(docker_engine, box)
    assert time.monotonic() - t0 >= 6 - 1, "stopped before the window had passed"
    ev = [line.split()[1:3] for line in events(docker_engine, box).splitlines()]
    assert ev == [["warn", "idle"], ["poweroff", "idle"]], ev
    assert waited < STOP_WITHIN


def test_open_ssh_session_keeps_it_up_until_it_closes(box: Any, docker_engine: Any, user_env: Env,
                                                       tmp_path: Path) -> None:
    s = session(docker_engine, box, tmp_path / "screen")
    try:
        idle_stop(user_env, "ws", WINDOW, "--warn", WARN)
        time.sleep(KEEP_UP)
        assert status(docker_engine, box) == "running"
        assert "active: ssh 1 session(s) (ubuntu@pts/0)" in journal(docker_engine, box)
    finally:
        s.terminate()
        s.wait(10)
    t0 = time.monotonic()
    wait_stopped(docker_engine, box)
    assert time.monotonic() - t0 >= 6 - 1  # a whole window after the session closed


def test_busy_cpu_keeps_it_up(box: Any, docker_engine: Any, user_env: Env) -> None:
    # Four busy loops that are not SSH sessions. The box shares the host's 2 CPUs with the other
    # tests (two pytest workers, maybe a CPU hog beside the run): in a CI run at host load ~12, two
    # loops stayed under the default threshold 0.5 and the box stopped. Four loops and a threshold of 0.3
    # keep "busy" busy on a loaded host; the agent's own checks stay far below it (it stops after).
    for i in (1, 2, 3, 4):
        hosts.exec_in(docker_engine, box.container_id,
                      ["sh", "-c", f"nohup sh -c 'echo $$ >/tmp/busy{i}; while :; do :; done' >/dev/null 2>&1 &"])
    idle_stop(user_env, "ws", WINDOW, "--warn", WARN, "--load-threshold", "0.3")
    time.sleep(KEEP_UP)
    assert status(docker_engine, box) == "running"
    assert "active: load CPU load" in journal(docker_engine, box)
    hosts.exec_in(docker_engine, box.container_id, ["sh", "-c", "kill $(cat /tmp/busy1 /tmp/busy2 /tmp/busy3 /tmp/busy4)"])
    wait_stopped(docker_engine, box)


def _tiny_image(docker_engine: Any, box: Any) -> None:
    """docker.io from the apt mirror, and a one-binary image made on the box (no registry)."""
    hosts.exec_in(docker_engine, box.container_id, ["sh", "-c",
                  "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/dev/null && "
                  "apt-get install -y -qq --no-install-recommends docker.io >/dev/null"])
    hosts.exec_in(docker_engine, box.container_id, ["sh", "-c",
                  'files=$(echo bin/sleep; ldd /bin/sleep | awk \'$2 == "=>" && $3 ~ /^\\// {print substr($3, 2)} '
                  '$1 ~ /^\\// {print substr($1, 2)}\'); '
                  'tar -C / -chf - $files | docker import -c \'CMD ["/bin/sleep", "600"]\' - tiny:sleep >/dev/null'])


def test_running_container_keeps_it_up(box: Any, docker_engine: Any, user_env: Env) -> None:
    _tiny_image(docker_engine, box)
    run = ["docker", "run", "-d", "--pull", "never", "--network", "none"]
    hosts.exec_in(docker_engine, box.container_id, [*run, "--name", "training", "tiny:sleep"])
    # a service labelled to be ignored does not keep the box up
    hosts.exec_in(docker_engine, box.container_id, [*run, "--name", "mlflow", "--label", "mlops-env.idle=ignore",
                                                    "tiny:sleep"])
    idle_stop(user_env, "ws", WINDOW, "--warn", WARN)
    time.sleep(KEEP_UP)
    assert status(docker_engine, box) == "running"
    assert "active: containers 1 running (training)" in journal(docker_engine, box)
    hosts.exec_in(docker_engine, box.container_id, ["docker", "rm", "-f", "training"])
    wait_stopped(docker_engine, box)


def test_off_disables_it(box: Any, docker_engine: Any, user_env: Env) -> None:
    idle_stop(user_env, "ws", WINDOW, "--warn", WARN)  # on, then off before the window has passed
    data = idle_stop(user_env, "ws", "off")
    assert (data["step"]["status"], data["step"]["message"]) == ("changed", "idle-stop off")
    assert data["agent"]["installed"] and not data["agent"]["enabled"]
    time.sleep(KEEP_UP)
    assert status(docker_engine, box) == "running"
    r = hosts.exec_in(docker_engine, box.container_id, ["systemctl", "is-active", "mlops-env-idle.timer"], check=False)
    assert r.stdout.strip() == "inactive"
    again = idle_stop(user_env, "ws", "off")  # nothing left to do
    assert again["step"]["status"] == "unchanged"


def test_warning_reaches_an_open_terminal(box: Any, docker_engine: Any, user_env: Env, tmp_path: Path) -> None:
    """With the SSH rule off (so the open session does not count), the idle warning is written
    to the session's terminal before the power-off."""
    screen = tmp_path / "screen"
    s = session(docker_engine, box, screen)
    try:
        idle_stop(user_env, "ws", WINDOW, "--warn", "3", "--rules", "jupyter,load,containers")
        wait_stopped(docker_engine, box)
        s.wait(10)
    finally:
        s.kill()
    text = screen.read_bytes().decode(errors="replace")
    assert "Broadcast message from root@" in text
    warn_at = text.find("and will power off at")
    assert warn_at >= 0 and "to save money. Its disk is kept." in text, text
    assert text.find("powering off now", warn_at) > warn_at


def test_uptime_cap_stops_it_despite_a_session(box: Any, docker_engine: Any, user_env: Env,
                                               tmp_path: Path) -> None:
    screen = tmp_path / "screen"
    s = session(docker_engine, box, screen)
    try:
        up = int(hosts.exec_in(docker_engine, box.container_id, ["sh", "-c", "ps -o etimes= -p 1"]).stdout)
        cap_h = f"{(up + 12) / 3600:.5f}"  # about 12 s from now
        data = idle_stop(user_env, "ws", "off", "--max-hours", cap_h, "--warn", "4")
        assert data["step"]["message"].startswith("no idle stop, power-off after ")
        wait_stopped(docker_engine, box)
        s.wait(10)
    finally:
        s.kill()
    text = screen.read_bytes().decode(errors="replace")
    assert "reached its uptime limit" in text and "Save your work now" in text, text
    ev = [line.split()[1:3] for line in events(docker_engine, box).splitlines()]
    assert ev == [["warn", "cap"], ["poweroff", "cap"]], ev


def test_status_and_doctor_show_the_agent(box: Any, docker_engine: Any, user_env: Env) -> None:
    """`status` reads the agent's state; `doctor` checks it with the step's own check and
    `--fix` repairs a stopped timer."""
    idle_stop(user_env, "ws", "10m")
    r = user_env.mlops("--json", "status", "ws")
    assert r.code == 0, r.stdout + r.stderr
    agent = r.data["idle_stop"]
    assert agent["installed"] and agent["enabled"] and agent["window_s"] == 600 and agent["timer_active"]
    human = user_env.mlops("status", "ws")
    assert "idle stop power off after 10m idle" in human.stdout, human.stdout

    d = user_env.mlops("--json", "doctor", "ws", "--only", "system")
    c = {x["id"]: x for x in d.data["checks"]}["tools.idle-stop"]
    assert (c["status"], c["message"]) == ("ok", "idle-stop after 10 min idle; checked every 30 s"), d.stdout
    hosts.exec_in(docker_engine, box.container_id, ["systemctl", "stop", "mlops-env-idle.timer"])
    d = user_env.mlops("--json", "doctor", "ws", "--only", "system")
    c = {x["id"]: x for x in d.data["checks"]}["tools.idle-stop"]
    assert d.code == 1 and (c["status"], c["message"]) == ("fail", "mlops-env-idle.timer is not active")
    assert "mlops-env doctor ws --fix" in c["hint"]
    f = user_env.mlops("--json", "doctor", "ws", "--only", "system", "--fix", "--yes")
    assert f.code == 0, f.stdout + f.stderr
    r = hosts.exec_in(docker_engine, box.container_id, ["systemctl", "is-active", "mlops-env-idle.timer"], check=False)
    assert r.stdout.strip() == "active"


class _Connected:
    """mlops-env's own transport holding ONE connection to the box and running a command now
    and then, with pauses between commands (as `up` or `doctor --fix` do), until stopped or
    until the box goes away."""

    def __init__(self, box: Any) -> None:
        import threading

        from mlops_env.ssh.transport import SSHTransport

        self.t = SSHTransport(box.host, box.port, box.user, str(box.identity), box.host_key, timeout=20)
        self.commands = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from mlops_env.errors import MlopsError

        try:
            while not self.stop.is_set():
                self.t.run_script("sleep 0.7", [])  # a command ...
                self.commands += 1
                # ... then no command for longer than the agent's re-looks at a bare session
                # (4 x 0.25 s): only the transport's presence channel tells it this is mlops-env
                self.stop.wait(2.5)
        except MlopsError:
            pass  # the box powered off under it
        finally:
            self.t.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


def _activity_lines(engine: Any, box: Any) -> list[str]:
    return [line for line in journal(engine, box).splitlines() if "active: " in line or " idle " in line]


def test_mlops_env_connections_are_not_activity(box: Any, docker_engine: Any, user_env: Env) -> None:
    """While mlops-env stays connected (commands and pauses) and `status` asks again and again,
    the box is idle to the agent: it warns and powers off; `status` never reports an SSH session."""
    idle_stop(user_env, "ws", WINDOW, "--warn", WARN)  # itself a connection, under which a check runs
    conn = _Connected(box)
    seen: list[str] = []
    try:
        t0 = time.monotonic()
        while status(docker_engine, box) == "running" and time.monotonic() - t0 < STOP_WITHIN:
            r = user_env.mlops("--json", "status", "ws")
            agent = (r.data.get("idle_stop") or {}) if r.code == 0 else {}
            if agent.get("activity"):
                seen.append(str(agent["activity"]))
            time.sleep(0.5)
        assert status(docker_engine, box) == "exited" or wait_stopped(docker_engine, box) >= 0
    finally:
        conn.close()
    assert conn.commands >= 2, "the connection did not run commands while the box was up"
    assert seen and not [a for a in seen if "ssh" in a and "active" in a], seen
    ev = [line.split()[1:3] for line in events(docker_engine, box).splitlines()]
    assert ev == [["warn", "idle"], ["poweroff", "idle"]], ev


def test_mlops_env_between_commands_is_known_at_first_look(box: Any, docker_engine: Any, user_env: Env,
                                                            tmp_path: Path) -> None:
    """mlops-env's connection, seconds after its last command and never seen by a check before,
    is left out at the agent's FIRST look with no re-looks (the transport holds a presence
    channel for its whole life); a person's `ssh -N` tunnel, looked at the same way, counts."""
    idle_stop(user_env, "ws", "30m")
    hosts.exec_in(docker_engine, box.container_id, ["systemctl", "stop", "mlops-env-idle.timer"])
    gather = ["env", "MLOPS_ENV_IDLE_RESAMPLES=0", "/usr/local/lib/mlops-env/idle-agent", "gather"]

    def ssh_verdict() -> str:
        out = hosts.exec_in(docker_engine, box.container_id, gather).stdout
        return next(line for line in out.splitlines() if line.split()[1:2] == ["ssh"])

    from mlops_env.ssh.transport import SSHTransport

    t = SSHTransport(box.host, box.port, box.user, str(box.identity), box.host_key, timeout=20)
    try:
        t.run_script("true", [])
        time.sleep(2)  # nothing of mlops-env's runs under the connection now but its presence
        assert ssh_verdict() == "idle ssh"
        known_hosts = hosts.write_known_hosts(tmp_path / "known_hosts", box)
        tunnel = subprocess.Popen([*hosts.ssh_argv(box, known_hosts=known_hosts), "-N"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(2)
            assert ssh_verdict() == "active ssh 1 session(s) (ubuntu@forwarding)"
        finally:
            tunnel.kill()
    finally:
        t.close()


def test_a_persons_tunnel_counts_beside_mlops_env(box: Any, docker_engine: Any, user_env: Env,
                                                  tmp_path: Path) -> None:
    """A person's `ssh -N -L` (a Jupyter tunnel: no process under its session, like mlops-env's
    connection between two commands) keeps the box up, and is the only session counted; once it
    closes, the box powers off although mlops-env is still connected."""
    known_hosts = hosts.write_known_hosts(tmp_path / "known_hosts", box)
    tunnel = subprocess.Popen([*hosts.ssh_argv(box, known_hosts=known_hosts), "-N", "-L", "18888:127.0.0.1:8888"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = _Connected(box)
    try:
        idle_stop(user_env, "ws", WINDOW, "--warn", WARN)
        time.sleep(KEEP_UP)
        assert status(docker_engine, box) == "running", journal(docker_engine, box)
        lines = _activity_lines(docker_engine, box)
        assert any("active: ssh 1 session(s) (ubuntu@forwarding)" in line for line in lines), lines
        assert not [line for line in lines if "ssh 2 session(s)" in line or "ssh 3 session(s)" in line], lines
        tunnel.terminate()
        tunnel.wait(10)
        t0 = time.monotonic()
        wait_stopped(docker_engine, box)
        assert time.monotonic() - t0 >= 6 - 1  # a whole window after the tunnel closed
    finally:
        tunnel.kill()
        conn.close()
