"""doctor's checks for `smoke-test --serve` (issue 15): `docker.build` (a builder and disk for
layers) and `network.port-9696` (free for the served model, or already serving/forwarding).
Pure parsing of captured `doctor.sh` output, plus the real probe run here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlops_env.doctor import parse, parse_docker, parse_network

DF = ("Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
      "/dev/root        41152736 10000000  {avail} 30% /var/lib/docker\n")


def _build(text: str, rc: int = 0) -> parse.Check:
    return parse_docker._build_check(parse.Section("build", rc, 12, text))


def test_build_ok_with_room_for_layers() -> None:
    c = _build("builder classic\nroot /var/lib/docker\n" + DF.format(avail=30 * 1024 * 1024))
    assert c.status == parse.OK and "classic builder" in c.message and "/var/lib/docker" in c.message


def test_build_buildx_named() -> None:
    c = _build("builder buildx github.com/docker/buildx 0.11.2\nroot /x\n" + DF.format(avail=30 * 1024 * 1024))
    assert c.status == parse.OK and "BuildKit" in c.message


@pytest.mark.parametrize(("gib", "status"), [(1, parse.FAIL), (3, parse.WARN), (6, parse.OK)])
def test_build_disk_thresholds(gib: int, status: str) -> None:
    c = _build("builder classic\nroot /var/lib/docker\n" + DF.format(avail=gib * 1024 * 1024))
    assert c.status == status, c
    if status != parse.OK:
        assert "docker system prune" in (c.hint or "")


def test_no_builder_is_a_failure_the_docker_step_repairs() -> None:
    c = _build("builder none (DOCKER_BUILDKIT=1 but no buildx plugin)\n", rc=3)
    assert (c.status, c.step) == (parse.FAIL, "docker") and "DOCKER_BUILDKIT=1" in c.message


def test_build_check_is_part_of_docker_checks_only_when_docker_exists() -> None:
    from mlops_env.steps import CheckResult

    out = ("@@ version 0 5\nClient:\n Version: 20.10.24\nServer:\n Engine:\n  Version: 20.10.24\n"
           "@@ build 0 7\nbuilder classic\nroot /var/lib/docker\n" + DF.format(avail=30 * 1024 * 1024))
    checks = {c.id: c for c in parse_docker.docker_checks(CheckResult("ok", "docker ok"), parse.sections(out),
                                                   fresh_session=True)}
    assert checks["docker.build"].status == parse.OK


def _port(text: str, side: str) -> parse.Check:
    secs = {"ports": parse.Section("ports", 0, 3, text)}
    return {c.id: c for c in parse_network.network_checks(secs, urls={}, side=side)}["network.port-9696"]


SS = "tool ss\nLISTEN 0 128 127.0.0.1:{port} 0.0.0.0:* users:((\"{proc}\",pid=42,fd=3))\n"


def test_port_free_ok() -> None:
    assert _port(SS.format(port=8888, proc="jupyter"), "box").status == parse.OK


def test_port_held_by_another_program_warns_with_the_serve_port_option() -> None:
    c = _port(SS.format(port=9696, proc="node"), "box")
    assert c.status == parse.WARN and "node" in c.message and "--serve-port" in (c.hint or "")


def test_port_published_by_docker_on_the_box_or_forwarded_here_is_ok() -> None:
    assert _port(SS.format(port=9696, proc="docker-proxy"), "box").status == parse.OK
    assert _port(SS.format(port=9696, proc="ssh"), "local").status == parse.OK
    assert _port(SS.format(port=9696, proc="ssh"), "box").status == parse.WARN


def test_the_real_probe_runs_here_read_only(tmp_path: Path) -> None:
    """The docker mode of templates/doctor.sh, for real on this machine: a `build` section."""
    script = Path(__file__).resolve().parents[2] / "templates" / "doctor.sh"
    p = subprocess.run(["bash", str(script), "docker"], capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    sec = parse.sections(p.stdout)["build"]
    assert sec.lines()[0].startswith("builder ")
    c = parse_docker._build_check(sec)
    assert c.status in (parse.OK, parse.WARN, parse.FAIL) and c.id == "docker.build"
