"""The Docker provider's fixed SSH port, against the real engine (issue 16 item 2), at the
provider level: a container made before fixed ports (Docker picked a port at every start) is
moved to a fixed one at its next start, and a container whose port is taken is re-created on
another; the container's disk (its own layer) and the volume survive; `destroy` removes the
disk images it made. The full workstation (system `ssh` by alias after stop/start, `docker
restart` and a taken port) is in test_up_docker.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import hosts
import pytest

from mlops_env.paths import Paths
from mlops_env.providers.docker.provider import (
    LABEL_MANAGED,
    LABEL_NAME,
    DockerProvider,
    _fixed_port,
    container_name,
    volume_name,
)
from mlops_env.state import Record


@pytest.fixture()
def provider(tmp_path: Path, docker_engine: Any) -> DockerProvider:
    return DockerProvider(Paths(data=tmp_path / "d", config=tmp_path / "c", cache=tmp_path / "x", logs=tmp_path / "l"))


def _old_style(client: Any, image: str, name: str, binding: tuple[str, int | None]) -> Any:
    client.volumes.create(volume_name(name), labels={LABEL_NAME: name, LABEL_MANAGED: "1"})
    c = client.containers.run(
        image, ["sleep", "infinity"], detach=True, name=container_name(name), ports={"22/tcp": binding},
        volumes={volume_name(name): {"bind": "/var/lib/docker", "mode": "rw"}},
        labels={LABEL_NAME: name, LABEL_MANAGED: "1", "mlops-env.base": image, hosts.TEST_LABEL: "1",
                f"{hosts.TEST_LABEL}.pid": str(os.getpid())})
    c.exec_run(["sh", "-c", "echo disk > /root/marker && echo vol > /var/lib/docker/marker"])
    c.stop(timeout=1)
    return c


def _cleanup(provider: DockerProvider, rec: Record) -> None:
    provider.destroy(rec, lambda m: None)


def _read(c: Any, path: str) -> str:
    rc, out = c.exec_run(["cat", path])
    assert rc == 0, out
    return str(out.decode().strip())


def test_a_container_without_a_fixed_port_gets_one_at_its_next_start(
        provider: DockerProvider, docker_engine: Any, base_image: str) -> None:
    name = f"port-legacy-{os.getpid() % 10000}"
    rec = Record(name=name, provider="docker", alias=f"mlops-{name}")
    try:
        old = _old_style(docker_engine, base_image, name, ("127.0.0.1", None))
        assert _fixed_port(old) is None
        msgs: list[str] = []
        assert provider.start(rec, msgs.append) == "started"
        (c,) = docker_engine.containers.list(all=True, filters={"label": f"{LABEL_NAME}={name}"})
        port = _fixed_port(c)
        assert port is not None and rec.provider_data["ssh_port"] == port
        assert c.name == container_name(name) and c.id != old.id and c.status == "running"
        assert (_read(c, "/root/marker"), _read(c, "/var/lib/docker/marker")) == ("disk", "vol")
        assert any("no fixed SSH port yet" in m for m in msgs), msgs
        # stop/start again: the same port, no re-creation
        c.stop(timeout=1)
        assert provider.start(rec, lambda m: None) == "started"
        (again,) = docker_engine.containers.list(all=True, filters={"label": f"{LABEL_NAME}={name}"})
        assert (again.id, _fixed_port(again)) == (c.id, port)
        assert docker_engine.images.list(filters={"label": f"mlops-env.state-of={name}"})
    finally:
        _cleanup(provider, rec)
    assert docker_engine.containers.list(all=True, filters={"label": f"{LABEL_NAME}={name}"}) == []
    assert docker_engine.images.list(filters={"label": f"mlops-env.state-of={name}"}) == []


def test_a_taken_port_moves_the_container_and_keeps_its_disk(
        provider: DockerProvider, docker_engine: Any, base_image: str) -> None:
    name = f"port-taken-{os.getpid() % 10000}"
    rec = Record(name=name, provider="docker", alias=f"mlops-{name}")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    taken = squatter.getsockname()[1]
    try:
        # made with a fixed port that someone else holds now
        squatter.close()
        _old_style(docker_engine, base_image, name, ("127.0.0.1", taken))
        squatter = socket.socket()
        squatter.bind(("127.0.0.1", taken))
        squatter.listen(1)
        assert provider.start(rec, lambda m: None) == "started"
        (c,) = docker_engine.containers.list(all=True, filters={"label": f"{LABEL_NAME}={name}"})
        assert _fixed_port(c) not in (None, taken)
        assert (_read(c, "/root/marker"), _read(c, "/var/lib/docker/marker")) == ("disk", "vol")
        # twice: the previous disk image is untagged, one remains
        c.stop(timeout=1)
        squatter2 = socket.socket()
        squatter2.bind(("127.0.0.1", _fixed_port(c) or 0))
        squatter2.listen(1)
        try:
            assert provider.start(rec, lambda m: None) == "started"
        finally:
            squatter2.close()
        assert len(docker_engine.images.list(filters={"label": f"mlops-env.state-of={name}"})) == 1
    finally:
        squatter.close()
        _cleanup(provider, rec)
