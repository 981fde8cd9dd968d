"""Fixtures for the EC2 tests. AWS is the STAND-IN moto (../shared/TESTBED.md): in-process
(``mock_aws``) for provider tests, a server process (``moto_launcher.py``) for the black-box
tests. Canonical's AMIs and SSM parameters are seeded (``seed.py``); fake credentials only.

No test here may reach a real address: IMDS credential lookups are disabled, and the SSH
address of every fake instance is mapped to a closed loopback port unless a test maps it to
its own container (``MLOPS_ENV_TEST_SSH_ADDRESS_MAP``, a documented test-only seam)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

REGION = "eu-west-1"


def fake_aws_environ() -> dict[str, str]:
    """Fake credentials and no config files: nothing can reach a real AWS account."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for k in list(os.environ):
        if k.startswith("AWS_") or k.startswith("MLOPS_ENV_"):
            monkeypatch.delenv(k, raising=False)
    for k, v in fake_aws_environ().items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    from ec2help import closed_port

    monkeypatch.setenv("MLOPS_ENV_TEST_SSH_ADDRESS_MAP", f"*=127.0.0.1:{closed_port()}")
    return tmp_path


@pytest.fixture
def moto_ec2(aws_env: Path) -> Iterator[Any]:
    """An in-process moto with Canonical's (stand-in) Ubuntu AMIs and SSM parameters."""
    import boto3
    import seed
    from moto import mock_aws

    with mock_aws():
        seed.seed_amis_in_process()
        seed.seed_ssm_in_process()
        yield boto3.client("ec2", region_name=REGION)


# --------------------------------------------------------------------------- black-box fixtures


class MotoServer:
    """The moto launcher process (STAND-IN AWS over HTTP on 127.0.0.1) and its fault control."""

    def __init__(self) -> None:
        import json
        import subprocess
        import tempfile

        # The server logs every request: to a file, never to a pipe nobody reads (it would fill
        # up and block the server).
        self.log = Path(tempfile.mkstemp(prefix="mlops-env-moto-", suffix=".log")[1])
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(  # noqa: S603
                [sys.executable, str(_HERE / "moto_launcher.py"), "--port", "0"],
                stdout=subprocess.PIPE, stderr=log, text=True, env={
                    k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))})
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"moto launcher did not start: {self.log.read_text()[-2000:]}")
        self.port = int(json.loads(line)["port"])
        self.url = f"http://127.0.0.1:{self.port}"

    def faults(self, *rules: dict[str, Any]) -> dict[str, Any]:
        return self._control("POST", {"rules": list(rules)})

    def stats(self) -> dict[str, Any]:
        return self._control("GET", None)

    def _control(self, method: str, doc: Any) -> dict[str, Any]:
        import json
        import urllib.request

        data = json.dumps(doc).encode() if doc is not None else None
        req = urllib.request.Request(f"{self.url}/_mlops_test/faults", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback test server
            return dict(json.loads(r.read()))

    def client(self, service: str = "ec2") -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.url, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ip_lookup() -> Iterator[str]:
    """A local stand-in for https://checkip.amazonaws.com (MLOPS_ENV_IP_LOOKUP_URL)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"203.0.113.7\n")

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


@pytest.fixture
def make_user(tmp_path: Path, moto_server: MotoServer, ip_lookup: str) -> Any:
    from ec2help import USER_SSH_CONFIG, User, closed_port

    def make(label: str = "user", ssh_target: str | None = None) -> User:
        home = tmp_path / label / "home"
        (home / ".ssh").mkdir(parents=True, mode=0o700)
        (home / ".ssh" / "config").write_bytes(USER_SSH_CONFIG)
        (home / ".ssh" / "config").chmod(0o600)
        return User(home=home, root=tmp_path / label / "mlops", endpoint=moto_server.url,
                    ip_lookup_url=ip_lookup, ssh_target=ssh_target or f"127.0.0.1:{closed_port()}")

    return make


@pytest.fixture(scope="session")
def cloudinit_image(docker_engine: Any) -> str:
    """``mlops-env-test/vm-cloudinit:bookworm`` (built from the vm image on first use, ~35 s:
    apt-get install cloud-init needs Debian's mirror); the instance stand-in boots it."""
    from images.build import ensure_cloudinit_image

    try:
        return str(ensure_cloudinit_image(docker_engine))
    except Exception as e:  # noqa: BLE001
        why = (f"the cloud-init test image cannot be built here ({type(e).__name__}: {e}); "
               "build it as root with: python tests/images/build.py --only cloudinit")
        if os.environ.get("MLOPS_TEST_REQUIRE_E2E", "") == "1":  # as tests/conftest.py: CI must run it
            pytest.fail(f"{why} (MLOPS_TEST_REQUIRE_E2E=1: e2e tests must run here)", pytrace=False)
        pytest.skip(why)
