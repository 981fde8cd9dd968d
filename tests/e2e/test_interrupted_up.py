"""An interrupted `up` is finished by the next `up`: Ctrl-C, a killed process and a dropped
connection, each in the middle of the conda install (the longest step). Real engine, real
container, the STAND-IN Anaconda installer from tests/standin (see test_up_docker.py).

No timing luck: each interruption waits for a marker on the box (the installer's pip running; a
step's `apply` process of this run), and the runs get SIGINT's default disposition whatever
the suite inherited (clirun.with_default_sigint)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

from clirun import with_default_sigint
from e2ehelp import Env, mlops_env_bin, step_status

NAME = f"e2e-i{os.getpid() % 100000}"


def _start(env: Env, mirror: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603
        with_default_sigint([mlops_env_bin(), "--json", "up", "docker", NAME, "--image", mirror.image,
                             "--conda-installer", mirror.url, "--conda-sha256", mirror.sha256,
                             "--accept-anaconda-tos", "--smoke-test", "sample"]),
        env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_conda_install(docker_engine: Any, proc: subprocess.Popen[str], timeout: float = 240) -> None:
    """Until the installer is busy on the box (its python env exists, conda not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"up ended early: {proc.communicate()}"
        try:
            c = docker_engine.containers.get(f"mlops-env-{NAME}")
            rc, _ = c.exec_run(["sh", "-c", "test -d /home/mlops/anaconda3 && pgrep -f 'pip install' >/dev/null"])
            if rc == 0:
                return
        except Exception:  # noqa: BLE001 - container not there yet
            pass
        time.sleep(0.3)
    raise AssertionError("the conda install never started")


def _applies(c: Any) -> set[str]:
    """PIDs of step scripts running in `apply` mode on the box (transport.SCRIPT_WRAPPER runs
    `sh -c '...' mlops-env apply ARGS`, under sudo for root steps)."""
    _, out = c.exec_run(["pgrep", "-f", "mlops-env apply"])
    return set(out.decode().split())


def test_interrupted_runs_are_finished_by_the_next_up(user_env: Env, docker_engine: Any,
                                                      base_image_with_standin: Any) -> None:
    env, mirror = user_env, base_image_with_standin
    try:
        # 1. Ctrl-C: exits 130 quickly, with one JSON document saying so.
        p = _start(env, mirror)
        _wait_for_conda_install(docker_engine, p)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 130, out + err
        assert json.loads(out)["errors"][0]["code"] == "interrupted"
        assert "Traceback" not in err

        # 2. SIGKILL in the middle of the (resumed) install: no chance to clean up at all.
        p = _start(env, mirror)
        _wait_for_conda_install(docker_engine, p)
        p.kill()
        p.communicate(timeout=30)

        # 3. The connection drops (sshd's session processes die) while steps are applied. The
        # install killed in 2 may still run on the box (nothing told it to stop): this run
        # waits for it on the box-side lock, and the connection dies meanwhile.
        c = docker_engine.containers.get(f"mlops-env-{NAME}")
        before = _applies(c)  # the install killed in 2 may still be one of them
        p = _start(env, mirror)
        deadline = time.monotonic() + 120
        while not (_applies(c) - before):  # this run is past the batched checks, in apply
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.2)
        rc, out = c.exec_run(["pkill", "-KILL", "-f", "sshd: mlops"])
        assert rc == 0, out
        out, err = p.communicate(timeout=120)
        assert p.returncode == 5, out + err
        assert json.loads(out)["errors"][0]["code"] == "connection-lost"

        # 4. The next up finishes the job; the state file was readable throughout.
        r = env.mlops("--json", "up", "docker", NAME, "--image", mirror.image, "--conda-installer", mirror.url,
                      "--conda-sha256", mirror.sha256, "--accept-anaconda-tos", "--smoke-test", "sample")
        assert r.code == 0, r.stdout + r.stderr
        st = step_status(r)
        assert st["conda"] == "changed" and st["smoke"] == "changed"
        assert st["provision"] == "unchanged" and st["ssh-config"] == "unchanged"
        s = env.ssh(f"mlops-{NAME}", "~/anaconda3/bin/python -c 'import pandas, sklearn; print(42)'")
        assert s.returncode == 0 and s.stdout.strip() == "42", s.stderr
        final = env.mlops("--json", "up", "docker", NAME, "--image", mirror.image, "--conda-installer", mirror.url,
                          "--conda-sha256", mirror.sha256, "--accept-anaconda-tos", "--smoke-test", "sample")
        assert final.code == 0 and set(step_status(final).values()) == {"unchanged"}
    finally:
        env.mlops("down", NAME, "--yes")
        for c in docker_engine.containers.list(all=True, filters={"label": f"mlops-env.name={NAME}"}):
            c.remove(force=True, v=True)
