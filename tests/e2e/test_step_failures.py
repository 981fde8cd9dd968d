"""A failed step says why (issue 11 item 10), on real boxes: systemd test containers that
behave like fresh VMs, reached over real SSH by the installed `mlops-env up ssh`.

- a box whose Docker engine cannot start: its iptables fails exactly as on an arm64 box
  under emulation (TESTBED.md), "Could not fetch rule set generation id: Protocol not
  supported" (an `iptables` earlier on dockerd's PATH, in /usr/local/sbin);
- a box whose apt sources are broken (a malformed entry written before `up`).

The user sees the real cause on the terminal (the error line, the step's last lines under
it) and in the run's log (all of the step's output), and --json carries both.

The conda step is not under test: it is satisfied by a STAND-IN prefix made on the box
before `up` (a `bin/conda` that prints a version, a `bin/python` whose import probe finds
nothing missing, the `conda init` block), so that only the failing step fails.
"""

from __future__ import annotations

import json
import re
from typing import Any

import hosts

BROKEN_IPTABLES = """#!/bin/sh
echo "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Protocol not supported" >&2
exit 1
"""

STANDIN_CONDA_PREFIX = r"""set -e
p=$HOME/miniforge3
mkdir -p "$p/bin"
printf '#!/bin/sh\necho "conda 24.7.1 (STAND-IN prefix, e2e test)"\n' >"$p/bin/conda"
printf '#!/bin/sh\ncat >/dev/null; echo\n' >"$p/bin/python"
chmod 755 "$p/bin/conda" "$p/bin/python"
printf '# >>> conda initialize >>>\n# (STAND-IN)\n# <<< conda initialize <<<\n' >>"$HOME/.bashrc"
"""

ENGINE_REASON = ("failed to create NAT chain DOCKER: iptables failed: iptables -t nat -N DOCKER: iptables v1.8.9 "
                 "(nf_tables): Could not fetch rule set generation id: Protocol not supported")


def _box(vm_host: Any, docker_engine: Any) -> Any:
    vm = vm_host(user="tester")
    hosts.exec_in(docker_engine, vm.container_id, STANDIN_CONDA_PREFIX, user="tester",
                  env={"HOME": "/home/tester"})
    return vm


def _args(vm: Any, *extra: str) -> list[str]:
    return [*extra, "up", "ssh", "ws", "--host", vm.host_spec, "--identity", str(vm.identity),
            "--host-key-fingerprint", vm.host_key_fingerprint, "--python-dist", "miniforge",
            "--smoke-test", "off", "--ssh-timeout", "20"]


def _statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in doc["data"]["steps"]}


def _logs(user_env: Any) -> str:
    return "\n".join(p.read_text() for p in sorted((user_env.root / "logs").glob("*-up.log")))


def test_an_engine_that_does_not_start_says_its_own_error(user_env: Any, vm_host: Any, docker_engine: Any) -> None:
    vm = _box(vm_host, docker_engine)
    for name in ("iptables", "ip6tables"):
        hosts.exec_in(docker_engine, vm.container_id,
                      f'printf "%s" "$S" >/usr/local/sbin/{name} && chmod 755 /usr/local/sbin/{name}',
                      env={"S": BROKEN_IPTABLES})

    r = user_env.mlops(*_args(vm, "--json"))
    assert r.code == 1, r
    doc = json.loads(r.stdout)
    st = _statuses(doc)
    assert (st["base"], st["conda"], st["docker"]) == ("changed", "unchanged", "failed"), st
    err = doc["errors"][0]
    assert err["code"] == "step-failed"
    # the engine's own last error line is the message (was: "exited with code 1")
    assert err["message"].startswith("step docker failed: the Docker engine did not start: ")
    assert err["message"].endswith(ENGINE_REASON), err["message"]
    assert "journalctl -u docker" in err["hint"]
    tail = err["output"].splitlines()
    assert 0 < len(tail) <= 20
    assert "starting the Docker engine" in tail
    assert any("docker.service failed" in ln for ln in tail), tail  # systemctl's own complaint

    # As a user sees it on a terminal-less run (text): the cause, the tail, the hint.
    r = user_env.mlops(*_args(vm))
    assert r.code == 1, r
    assert "Traceback" not in r.stderr
    text = " ".join(r.stderr.split())  # whatever the line wrapping
    assert f"error: step docker failed: the Docker engine did not start: Error initializing network controller: " \
           f"error obtaining controller instance: {ENGINE_REASON}" in text, r.stderr
    assert "hint: see `journalctl -u docker` on the box" in text
    assert re.search(r"its last \d+ lines of output \(all of it in /\S+-up\.log\):", text), r.stderr

    log = _logs(user_env)
    assert ENGINE_REASON in log
    assert "step docker| mlops: installing docker.io" in log  # the step's whole output, line by line
    assert "step docker| Setting up docker.io" in log
    assert "step docker| mlops: starting the Docker engine" in log


def test_broken_apt_sources_say_apts_own_error(user_env: Any, vm_host: Any, docker_engine: Any) -> None:
    vm = _box(vm_host, docker_engine)
    hosts.exec_in(docker_engine, vm.container_id,
                  'echo "deb http://127.0.0.1:9/debian" >/etc/apt/sources.list.d/broken.list')
    reason = "Malformed entry 1 in list file /etc/apt/sources.list.d/broken.list (Suite)"

    r = user_env.mlops(*_args(vm, "--json"))
    assert r.code == 1, r
    doc = json.loads(r.stdout)
    st = _statuses(doc)
    assert (st["base"], st["conda"], st["docker"]) == ("failed", "unchanged", "skipped"), st
    err = doc["errors"][0]
    assert err["message"] == f"step base failed: apt-get update failed: {reason}"
    assert "/etc/apt/sources.list" in err["hint"]
    assert err["output"].splitlines()[-2:] == [f"E: {reason}", "E: The list of sources could not be read."]

    r = user_env.mlops(*_args(vm))
    assert r.code == 1, r
    text = " ".join(r.stderr.split())
    assert f"error: step base failed: apt-get update failed: {reason}" in text, r.stderr
    assert f"E: {reason}" in r.stderr
    log = _logs(user_env)
    assert f"step base| E: {reason}" in log
