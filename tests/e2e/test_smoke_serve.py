"""`mlops-env smoke-test NAME --serve` end to end (issue 15) on a systemd test box.

The box is brought up for real with `up ssh` (Docker from apt inside the box, the STAND-IN
Anaconda installer as in the other e2e tests). There is no registry here, so the service's
base image is made ON THE BOX from the box's own python3 (binary, stdlib, shared libraries,
`docker import`), the way the docker step makes its probe image, and passed with
`--serve-base-image`. Everything else is real: `docker build`, docker compose (v1 from
bookworm's apt), the published loopback port, the on-box check, and the query through the
CLI's SSH connection (a direct-tcpip channel, like `ssh -L`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hosts
import pytest
from e2ehelp import Env, mlops_env_bin
from servebox import MAKE_PY_IMAGE, PY_IMAGE

NAME = f"srv{os.getpid() % 100000}"


def _box_state(docker_engine: Any, box: Any) -> dict[str, str]:
    """What serve leaves on the box: containers, network, images, port listeners."""
    script = ("docker ps -aq --filter label=mlops-env.serve=1 | tr '\\n' ' '; echo '|';"
              "docker network ls -q --filter name=mlops-env-serve | tr '\\n' ' '; echo '|';"
              "docker images -q mlops-env/ride-duration | tr '\\n' ' '; echo '|';"
              "ss -Hltn 'sport = :9696' | tr '\\n' ' '")
    out = hosts.exec_in(docker_engine, box.container_id, script).stdout
    keys = ("containers", "networks", "images", "listeners")
    return dict(zip(keys, (p.strip() for p in out.split("|")), strict=True))


CLEAN = {"containers": "", "networks": "", "images": "", "listeners": ""}


@pytest.fixture(scope="module")
def served_box(tmp_path_factory: pytest.TempPathFactory, vm_host_module: Any, docker_engine: Any,
               standin_conda_installer: Any) -> Iterator[tuple[Env, Any]]:
    base = tmp_path_factory.mktemp("serve-user")
    home = base / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    env = Env(home=home, root=base / "mlops")
    box = vm_host_module(user="ubuntu")
    url = hosts.mirror_into(docker_engine, box.container_id, standin_conda_installer.path)
    r = env.mlops("--json", "up", "ssh", NAME, "--host", box.host_spec, "--identity", str(box.identity),
                  "--host-key-fingerprint", box.host_key_fingerprint, "--smoke-test", "off",
                  "--conda-installer", url, "--conda-sha256", standin_conda_installer.sha256,
                  "--accept-anaconda-tos", "--ssh-timeout", "20")
    assert r.code == 0, r.stdout + r.stderr
    hosts.exec_in(docker_engine, box.container_id, MAKE_PY_IMAGE, env={"IMG": PY_IMAGE})
    yield env, box
    env.mlops("down", NAME, "--yes")


def _serve(env: Env, *extra: str) -> Any:
    return env.mlops("--json", "smoke-test", NAME, "--sample", "--serve", "--serve-base-image", PY_IMAGE, *extra)


def test_serve_builds_checks_queries_through_the_tunnel_and_removes_everything(
        served_box: tuple[Env, Any], docker_engine: Any) -> None:
    env, box = served_box
    r = _serve(env)
    assert r.code == 0, r.stdout + r.stderr
    d = r.data
    s = d["serve"]
    print("serve:", json.dumps(s))
    assert s["image"] == f"mlops-env/ride-duration:{d['model_hash']}" and s["ok"] is True
    assert (s["predictions_checked"], s["matches"]) == (200, 200)
    assert s["via_tunnel"] is True and isinstance(s["tunnel_duration"], float)
    assert 0 < s["p50_ms"] <= s["p99_ms"] and s["build_seconds"] > 0 and s["start_seconds"] > 0
    assert s["compose"] in ("docker compose", "docker-compose")
    # The tunnel answer is the trained model's own prediction for that ride (the saved rides).
    rides = json.loads(hosts.exec_in(docker_engine, box.container_id,
                                     ["cat", "/home/ubuntu/.mlops-env/smoke/report/serve-rides.json"]).stdout)
    assert abs(s["tunnel_duration"] - rides["rides"][0]["duration"]) <= 1e-9
    # The saved report carries the serve result (what `status` shows).
    saved = json.loads(Path(d["report"]).read_text())
    assert saved["data"]["serve"]["matches"] == 200
    assert _box_state(docker_engine, box) == CLEAN


def test_keep_serving_leaves_it_up_and_the_next_run_replaces_it(served_box: tuple[Env, Any], docker_engine: Any) -> None:
    env, box = served_box
    r = _serve(env, "--keep-serving")
    assert r.code == 0, r.stdout + r.stderr
    assert r.data["serve"]["url"] == "http://127.0.0.1:9696"
    state = _box_state(docker_engine, box)
    assert state["containers"] and state["listeners"]
    got = hosts.exec_in(docker_engine, box.container_id,
                        "curl -s -d '{\"PULocationID\": 43, \"DOLocationID\": 151, \"trip_distance\": 1.01}' "
                        "http://127.0.0.1:9696/predict", user="ubuntu").stdout
    assert json.loads(got)["model"] == r.data["model_hash"]
    # A service left up by us is not "a busy port": the next run replaces it, and removes it.
    again = _serve(env)
    assert again.code == 0, again.stdout + again.stderr
    assert _box_state(docker_engine, box) == CLEAN


def test_unpullable_base_image_is_a_clear_error_and_leaves_nothing(served_box: tuple[Env, Any], docker_engine: Any) -> None:
    env, box = served_box
    r = env.mlops("--json", "smoke-test", NAME, "--sample", "--serve", "--serve-base-image",
                  "registry.invalid/python:3.11-slim")
    assert r.code == 3, r.stdout + r.stderr
    assert r.error["code"] == "serve-base-image"
    assert "registry.invalid/python:3.11-slim" in r.error["message"] and "--serve-base-image" in r.error["hint"]
    assert _box_state(docker_engine, box) == CLEAN


def test_busy_port_names_the_process_and_leaves_nothing(served_box: tuple[Env, Any], docker_engine: Any) -> None:
    env, box = served_box
    pid = hosts.exec_in(docker_engine, box.container_id,
                        "nohup python3 -m http.server 9797 --bind 127.0.0.1 >/dev/null 2>&1 & echo $!; sleep 1",
                        user="ubuntu").stdout.strip()
    try:
        r = _serve(env, "--serve-port", "9797")
        assert r.code == 10, r.stdout + r.stderr
        assert r.error["code"] == "serve-port-busy"
        assert "port 9797" in r.error["message"] and f"python3 (pid {pid})" in r.error["message"], r.error
        assert "--serve-port" in r.error["hint"]
    finally:
        hosts.exec_in(docker_engine, box.container_id, ["kill", pid], check=False)
    assert _box_state(docker_engine, box)["containers"] == ""
    assert _box_state(docker_engine, box)["images"] == ""


def test_a_base_image_without_python_fails_clearly_with_the_container_log(
        served_box: tuple[Env, Any], docker_engine: Any) -> None:
    env, box = served_box
    # The docker step's probe image exists on the box (no python3 in it): the build works, the
    # service cannot start.
    r = env.mlops("--json", "smoke-test", NAME, "--sample", "--serve", "--serve-base-image", "mlops-env/probe:1")
    assert r.code == 1, r.stdout + r.stderr
    assert r.error["code"] in ("serve-start-failed", "serve-not-answering"), r.error
    assert "python3" in r.error["message"], r.error
    assert _box_state(docker_engine, box) == CLEAN


def test_a_killed_serve_run_leaves_nothing_the_next_run_trips_on(served_box: tuple[Env, Any], docker_engine: Any) -> None:
    env, box = served_box
    p = subprocess.Popen(  # noqa: S603 - our CLI
        [mlops_env_bin(), "--json", "smoke-test", NAME, "--sample", "--serve", "--serve-base-image", PY_IMAGE],
        env=env.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and p.poll() is None:
            if _box_state(docker_engine, box)["containers"]:
                break
            time.sleep(0.2)
        assert p.poll() is None, "the run ended before its service started"
    finally:
        p.kill()
        p.wait()
    # The box-side command goes on without us (no pty): the next run waits for it, then
    # removes what it left, and succeeds.
    r = _serve(env)
    assert r.code == 0, r.stdout + r.stderr
    assert r.data["serve"]["matches"] == 200
    assert _box_state(docker_engine, box) == CLEAN


def test_up_with_serve_serves_in_the_smoke_step(served_box: tuple[Env, Any], docker_engine: Any) -> None:
    """`up ... --serve` (here through MLOPS_ENV_SERVE, the option's environment form): the smoke
    step trains, serves and checks. The default base python:3.11-slim cannot be pulled here, so
    the box's python image is tagged with that name on the box first."""
    env, box = served_box
    hosts.exec_in(docker_engine, box.container_id, ["docker", "tag", PY_IMAGE, "python:3.11-slim"])
    try:
        p = subprocess.run(  # noqa: S603 - our CLI
            [mlops_env_bin(), "--json", "up", "ssh", NAME, "--host", box.host_spec, "--identity", str(box.identity),
             "--smoke-test", "sample", "--ssh-timeout", "20"],
            env={**env.env, "MLOPS_ENV_SERVE": "1"}, capture_output=True, text=True, timeout=900, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        report = json.loads((env.root / "reports" / NAME / "smoke-report.json").read_text())
        s = report["data"]["serve"]
        assert s["ok"] is True and (s["predictions_checked"], s["matches"]) == (200, 200) and s["via_tunnel"] is True
        assert s["image"] == f"mlops-env/ride-duration:{report['data']['model_hash']}"
        assert _box_state(docker_engine, box) == CLEAN
    finally:
        hosts.exec_in(docker_engine, box.container_id, ["docker", "rmi", "python:3.11-slim"], check=False)


def test_doctor_checks_the_builder_and_the_serve_port_read_only(served_box: tuple[Env, Any], docker_engine: Any) -> None:
    env, box = served_box
    r = env.mlops("--json", "doctor", NAME)
    checks = {c["id"]: c for c in r.data["checks"]}
    assert checks["docker.build"]["status"] == "ok", checks["docker.build"]
    assert "classic builder" in checks["docker.build"]["message"] or "BuildKit" in checks["docker.build"]["message"]
    assert checks["network.port-9696"]["status"] == "ok" and "free" in checks["network.port-9696"]["message"]
    # Held by another program: a warning naming it (the user's own: ss shows its name).
    pid = hosts.exec_in(docker_engine, box.container_id,
                        "nohup python3 -m http.server 9696 --bind 127.0.0.1 >/dev/null 2>&1 & echo $!; sleep 1",
                        user="ubuntu").stdout.strip()
    try:
        r = env.mlops("--json", "doctor", NAME)
        c = {c["id"]: c for c in r.data["checks"]}["network.port-9696"]
        assert c["status"] == "warn" and "python3" in c["message"] and "--serve-port" in c["hint"], c
    finally:
        hosts.exec_in(docker_engine, box.container_id, ["kill", pid], check=False)
