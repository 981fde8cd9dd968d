"""What every bench/ script shares: the installed `mlops-env`, timing a child process, an
isolated HOME/MLOPS_ENV_HOME, running `mlops-env --json ...` and failing loudly when it fails,
the test infrastructure (tests/hosts.py, the stand-in installer) and the side-by-side table.

A bench script measures; it never asserts a threshold (this is not a test)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "mlops-env"


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of one child process (stdin closed), and its result."""
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,  # noqa: S603
                       stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0, p


def isolated_env(tmp: Path) -> dict[str, str]:
    """This environment with HOME and MLOPS_ENV_HOME below TMP, no colour, no ssh-agent."""
    (tmp / "home").mkdir(parents=True, exist_ok=True)
    e = dict(os.environ, HOME=str(tmp / "home"), MLOPS_ENV_HOME=str(tmp / "mlops"), NO_COLOR="1")
    e.pop("SSH_AUTH_SOCK", None)
    return e


def mlops(env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    """`mlops-env --json ARGS`: its wall time and the envelope's data; exits the bench with the
    command's errors when it did not succeed."""
    wall, p = timed([str(BIN), "--json", *args], env)
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        raise SystemExit(f"{' '.join(args[:3])}: no JSON answer\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}") from None
    if doc["status"] != "ok":
        raise SystemExit(f"{' '.join(args[:3])} failed: {doc['errors']}\n{p.stderr[-2000:]}")
    return wall, doc["data"]


def test_infrastructure() -> tuple[Any, Any, Any]:
    """(hosts, standin, client): tests/hosts.py, the stand-in installer module and a Docker client
    with the test images present. Exits the bench when there is no engine."""
    sys.path.insert(0, str(ROOT / "tests"))
    import hosts  # type: ignore[import-not-found]
    from standin import make_conda_installer as standin  # type: ignore[import-not-found]

    client, why = hosts.docker_client_or_none()
    if client is None:
        raise SystemExit(f"no Docker engine: {why}")
    hosts.ensure_images(client)
    return hosts, standin, client


def print_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell."""
    w = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    for r in (head, *rows):
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())


def load_line() -> str:
    return f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a closed SSH address, a server's port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def moto_stats(url: str, reset: bool = False, latency: float = 0.0) -> dict[str, Any]:
    """The moto launcher's request counts (tests/ec2/moto_launcher.py); ``reset`` clears them and
    any fault rules, and sets the latency added to every answer (seconds)."""
    body = json.dumps({"rules": [], "latency": latency}).encode()
    req = urllib.request.Request(f"{url}/_mlops_test/faults", method="POST" if reset else "GET",
                                 data=body if reset else None)
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
        return dict(json.loads(r.read()))


@dataclass
class Moto:
    """A running moto launcher (tests/ec2/moto_launcher.py: the STAND-IN AWS)."""

    url: str
    pid: int
    #: this process's environment without AWS_/MOTO_/MLOPS_ENV_ variables (nothing real leaks in)
    env0: dict[str, str] = field(default_factory=dict)

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """An isolated HOME/MLOPS_ENV_HOME under ``home`` pointed at this stand-in (eu-west-1)."""
        return dict(self.env0, HOME=str(home / "home"), MLOPS_ENV_HOME=str(home / "mlops"), AWS_ENDPOINT_URL=self.url,
                    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_CONFIG_FILE="/dev/null",
                    AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true",
                    AWS_REGION="eu-west-1", **extra)


@contextmanager
def moto_launcher(tmp: Path) -> Iterator[Moto]:
    """Start the moto launcher (its log in ``tmp/moto.log``); stopped at the end."""
    env0 = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "MLOPS_ENV_"))}
    with open(tmp / "moto.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests/ec2/moto_launcher.py")],  # noqa: S603
                                stdout=subprocess.PIPE, stderr=log, text=True, env=env0)
        try:
            info = json.loads(proc.stdout.readline()) if proc.stdout else {}
            if "port" not in info:
                raise SystemExit(f"the moto launcher did not start: see {tmp / 'moto.log'}")
            yield Moto(f"http://127.0.0.1:{info['port']}", int(info["pid"]), env0)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
