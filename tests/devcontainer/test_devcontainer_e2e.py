"""The dev container end to end, with the REAL devcontainer CLI (@devcontainers/cli) against the
local Docker engine: `devcontainer build`, then `devcontainer up` runs onCreateCommand (base
packages and conda, by the workstation's own base.sh and conda.sh) and postCreateCommand
(mlops-env into conda's base env, `mlops-env doctor`, the smoke test on --sample data).

What is real: the CLI, Docker, this repository's Dockerfile, on-create.sh, post-create.sh,
base.sh (apt from deb.debian.org), conda.sh (download from a file:// mirror, sha256 check,
`bash INSTALLER -b -p`, conda init), pip's editable install of the workspace, doctor, smoke test.

TEST-ONLY changes, made to a copy of .devcontainer/devcontainer.json (every other value is the
real one, which the test asserts):
- BASE_IMAGE: the local Debian 12 test image with the STAND-IN Anaconda installer baked in at
  /opt/mirror (no registry is reachable here: mcr.microsoft.com cannot be pulled);
- no features: ghcr.io (docker-in-docker) is unreachable; so post-create gets --no-docker and
  doctor skips its docker checks (Docker inside is not proven here, see docs/devcontainer.md);
- MLOPS_ENV_CONDA_INSTALLER/SHA256: the stand-in's file:// URL and its real sha256 (as
  tests/e2e do for `up`);
- pip gets mlops-env's dependencies from a wheelhouse made on the host (PIP_NO_INDEX,
  PIP_FIND_LINKS, a read-only bind mount): HTTPS from containers fails TLS here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops_env import devcontainer as dc

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_E2E = os.environ.get("MLOPS_TEST_REQUIRE_E2E", "") == "1"
LABEL = "mlops-env-test.devcontainer"
WHEELHOUSE_MOUNT = "/opt/wheelhouse"
# For pip inside the container (the stand-in's Python is the image's python3, 3.11).
PIP_PLATFORM_ARGS = ("--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                     "--abi", "cp311", "--platform", "manylinux_2_28_x86_64",
                     "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _unavailable(reason: str) -> None:
    """Skip (developer machine) or fail (CI: MLOPS_TEST_REQUIRE_E2E=1), as tests/conftest.py."""
    if REQUIRE_E2E:
        pytest.fail(f"{reason} (MLOPS_TEST_REQUIRE_E2E=1: e2e tests must run here)", pytrace=False)
    pytest.skip(reason)


def _log(msg: str) -> None:
    print(f"[devcontainer-e2e] {msg}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def devcontainer_cli() -> str:
    exe = shutil.which("devcontainer")
    if exe is None:
        _unavailable("the devcontainer CLI is not installed: npm install -g @devcontainers/cli (.ci/run does)")
    p = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False, timeout=60)
    if p.returncode != 0:
        _unavailable(f"`devcontainer --version` failed: {p.stderr.strip()[-300:]}")
    _log(f"devcontainer CLI {p.stdout.strip()} ({exe})")
    return str(exe)


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """mlops-env's runtime dependencies and its build backend, as cp311 manylinux wheels,
    downloaded on the host (cached in $MLOPS_TEST_CACHE) for pip inside the container."""
    import hashlib

    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        pytest.skip("needs Python >= 3.11 (tomllib) to read pyproject.toml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # + editables: what hatchling asks for to build an editable install (`pip install -e .`)
    reqs = [*project["project"]["dependencies"], *project["build-system"]["requires"], "editables"]
    key = hashlib.sha256("\0".join([*reqs, *PIP_PLATFORM_ARGS]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("MLOPS_TEST_CACHE", "/var/cache/mlops-env-test"))
    d = cache / f"devcontainer-wheelhouse-{key}"
    if (d / ".complete").exists():
        return d
    tmp = d.with_name(d.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except PermissionError as e:
        _unavailable(f"cache dir not writable ({e}); set MLOPS_TEST_CACHE")
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        *PIP_PLATFORM_ARGS, "-d", str(tmp), *reqs],
                       capture_output=True, text=True, check=False, timeout=600)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        _unavailable(f"cannot build the wheelhouse for pip in the dev container (is PyPI reachable?): "
                     f"{(p.stderr or p.stdout).strip()[-600:]}")
    (tmp / ".complete").write_text("\n".join(sorted(x.name for x in tmp.glob("*.whl"))) + "\n")
    if d.exists() and not (d / ".complete").exists():
        shutil.rmtree(d, ignore_errors=True)  # left half-made by a killed run
    try:
        tmp.rename(d)
    except OSError:  # another test run finished the same wheelhouse first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (d / ".complete").exists():
            raise
    _log(f"wheelhouse {d} in {time.monotonic() - t0:.1f}s")
    return d


def _workspace(dest: Path) -> Path:
    """A copy of what the dev container needs from this repository (not .venv, .git, caches):
    the workspace Codespaces would clone."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("src", "templates", "devcontainer", ".devcontainer"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for p in [dest, *dest.rglob("*")]:  # readable by the container's user (not root)
        p.chmod(0o755 if p.is_dir() or os.access(p, os.X_OK) else 0o644)
    return dest


def _test_config(mirror: Any, wheels: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The TEST-ONLY config: the real .devcontainer/devcontainer.json with the changes listed
    in this module's docstring. Returns (text, test value, real value)."""
    real = dc.parse_jsonc((ROOT / ".devcontainer" / "devcontainer.json").read_text()).value
    v = json.loads(json.dumps(real))
    v["name"] += " [TEST-ONLY: local base image, no features]"
    v["build"]["args"]["BASE_IMAGE"] = mirror.image
    del v["features"]
    v["containerEnv"].update({
        "MLOPS_ENV_CONDA_INSTALLER": mirror.url, "MLOPS_ENV_CONDA_SHA256": mirror.sha256,
        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": WHEELHOUSE_MOUNT,
    })
    v["mounts"] = [{"type": "bind", "source": str(wheels), "target": WHEELHOUSE_MOUNT}]
    v["postCreateCommand"] = real["postCreateCommand"] + " --no-docker"
    text = ("// TEST-ONLY dev container config, generated by tests/devcontainer/test_devcontainer_e2e.py\n"
            "// from .devcontainer/devcontainer.json: local base image with the STAND-IN Anaconda\n"
            "// installer, no features (ghcr.io unreachable), a host-built wheelhouse for pip.\n"
            + json.dumps(v, indent="\t") + "\n")
    dc.check_text(text, "test-only devcontainer.json")  # valid under the schema too
    return text, v, real


@dataclass
class DevContainer:
    cli: str
    workspace: Path
    config: Path
    up: subprocess.CompletedProcess[str]
    build: subprocess.CompletedProcess[str]
    container_id: str
    remote_user: str
    remote_workspace: str
    seconds: dict[str, float]
    test_value: dict[str, Any]
    real_value: dict[str, Any]

    def exec(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`devcontainer exec`: as the remote user, with the container's and remote env."""
        return subprocess.run([self.cli, "exec", "--workspace-folder", str(self.workspace),
                               "--config", str(self.config), *_id_labels(self.workspace), *cmd],
                              capture_output=True, text=True, check=False, timeout=timeout)

    def read(self, path: str) -> str:
        r = self.exec("cat", path)
        assert r.returncode == 0, r.stderr
        return r.stdout


def _id_labels(workspace: Path) -> list[str]:
    """How `devcontainer up` labels the container and `devcontainer exec` finds it again."""
    return ["--id-label", f"{LABEL}=1", "--id-label", f"{LABEL}.pid={os.getpid()}",
            "--id-label", f"{LABEL}.workspace={workspace.name}"]


def _remove_images(client: Any, prefixes: tuple[str, ...]) -> None:
    """Only the images this test made, by tag: the CLI names them vsc-<workspace folder>-<hash>
    [-uid]. By tag, not by id: a parallel run's identical build has the same id."""
    for img in client.images.list():
        for tag in img.tags:
            if tag.startswith(prefixes):
                try:
                    client.images.remove(tag, noprune=False)
                except Exception as e:  # noqa: BLE001 - still in use
                    _log(f"could not remove image {tag}: {e}")


_OUR_IMAGE = re.compile(r"^(?:vsc-(?:mlops-env|course)-dc-(\d+)-|mlops-env-test/devcontainer:(\d+)$)")


def _remove_stale(client: Any) -> None:
    """Containers and images a killed earlier run left behind (their test process is gone)."""
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        pid = c.labels.get(f"{LABEL}.pid", "")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _log(f"removing stale dev container {c.name}")
            c.remove(force=True, v=True)
    for img in client.images.list():
        for tag in img.tags:
            m = _OUR_IMAGE.match(tag)
            if m and not Path(f"/proc/{m.group(1) or m.group(2)}").exists():
                _remove_images(client, (tag,))


@pytest.fixture(scope="module")
def devcontainer(devcontainer_cli: str, docker_engine: Any, base_image_with_standin: Any, wheelhouse: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevContainer]:
    _remove_stale(docker_engine)
    base = tmp_path_factory.mktemp("devcontainer")
    base.chmod(0o755)
    ws_name = f"mlops-env-dc-{os.getpid()}"
    ws = _workspace(base / ws_name)
    text, test_value, real_value = _test_config(base_image_with_standin, wheelhouse)
    # A sibling folder of devcontainer/: the definition's "../devcontainer/..." paths resolve
    # exactly as from .devcontainer/ (the CLI wants the file named devcontainer.json).
    cfg = ws / ".devcontainer-test-only" / "devcontainer.json"
    cfg.parent.mkdir(mode=0o755)
    cfg.write_text(text)
    seconds: dict[str, float] = {}
    build_image = f"mlops-env-test/devcontainer:{os.getpid()}"
    try:
        t0 = time.monotonic()
        build = subprocess.run([devcontainer_cli, "build", "--workspace-folder", str(ws), "--config", str(cfg),
                                "--image-name", build_image],
                               capture_output=True, text=True, check=False, timeout=600)
        seconds["build"] = time.monotonic() - t0
        _log(f"devcontainer build: exit {build.returncode} in {seconds['build']:.1f}s")
        t0 = time.monotonic()
        up = subprocess.run([devcontainer_cli, "up", "--workspace-folder", str(ws), "--config", str(cfg),
                             *_id_labels(ws)], capture_output=True, text=True, check=False, timeout=900)
        seconds["up"] = time.monotonic() - t0
        _log(f"devcontainer up: exit {up.returncode} in {seconds['up']:.1f}s")
        result = json.loads(up.stdout.strip().splitlines()[-1]) if up.stdout.strip() else {}
        yield DevContainer(devcontainer_cli, ws, cfg, up, build, result.get("containerId", ""),
                           result.get("remoteUser", ""), result.get("remoteWorkspaceFolder", ""),
                           seconds, test_value, real_value)
    finally:
        for c in docker_engine.containers.list(all=True, filters={"label": f"{LABEL}.workspace={ws_name}"}):
            c.remove(force=True, v=True)
        _remove_images(docker_engine, (f"vsc-{ws_name}-", build_image))


def _fail_with_logs(dev: DevContainer) -> str:
    return (f"--- build (exit {dev.build.returncode}) ---\n{dev.build.stderr[-3000:]}\n"
            f"--- up (exit {dev.up.returncode}) ---\n{dev.up.stdout[-2000:]}\n{dev.up.stderr[-8000:]}")


def test_build_and_up_with_the_real_cli_run_on_create_and_post_create(devcontainer: DevContainer) -> None:
    dev = devcontainer
    assert dev.build.returncode == 0, _fail_with_logs(dev)
    assert dev.up.returncode == 0, _fail_with_logs(dev)
    assert json.loads(dev.up.stdout.strip().splitlines()[-1])["outcome"] == "success"
    assert dev.remote_user == "vscode" and dev.remote_workspace == f"/workspaces/{dev.workspace.name}"
    logs = dev.up.stderr
    # onCreateCommand: the workstation's steps, from a file:// mirror with the real sha256
    assert "Running the onCreateCommand from devcontainer.json" in logs
    assert "mlops-env on-create: Anaconda (mirror) for x86_64 into /home/vscode/anaconda3" in logs
    assert "STAND-IN" in logs and "installation finished." in logs  # the stand-in installer ran
    assert "mlops-env on-create: ready in" in logs
    # postCreateCommand: its summary
    assert "Running the postCreateCommand from devcontainer.json" in logs
    assert "mlops-env dev container: READY" in logs, _fail_with_logs(dev)
    summary = dev.read("/home/vscode/.mlops-env/devcontainer/summary.txt")
    _log("post-create summary:\n" + summary)
    assert "✓ conda       Anaconda (mirror) in /home/vscode/anaconda3 (conda 24.5.0)" in summary
    assert "✓ mlops-env   mlops-env 0.1.0 (pip install -e .)" in summary
    assert "✓ doctor" in summary and "✓ smoke-test  RMSE train" in summary
    _log(f"timings: {dev.seconds}")


def test_test_config_changes_only_what_is_labelled_test_only(devcontainer: DevContainer) -> None:
    t, r = devcontainer.test_value, devcontainer.real_value
    changed = {k for k in set(t) | set(r) if t.get(k) != r.get(k)}
    assert changed == {"name", "build", "features", "containerEnv", "mounts", "postCreateCommand"}
    assert {k: v for k, v in t["build"]["args"].items() if k != "BASE_IMAGE"} == \
        {k: v for k, v in r["build"]["args"].items() if k != "BASE_IMAGE"}
    assert (t["build"]["dockerfile"], t["build"]["context"]) == (r["build"]["dockerfile"], r["build"]["context"])
    assert t["containerEnv"]["MLOPS_ENV_PYTHON_DIST"] == r["containerEnv"]["MLOPS_ENV_PYTHON_DIST"]
    assert t["postCreateCommand"] == r["postCreateCommand"] + " --no-docker"
    assert t["onCreateCommand"] == r["onCreateCommand"]


def test_doctor_passes_python_and_tools_inside(devcontainer: DevContainer) -> None:
    """The post-create step's own `mlops-env doctor` run (its JSON), then doctor again in an
    interactive shell through `devcontainer exec`."""
    dev = devcontainer
    doc = json.loads(dev.read("/home/vscode/.mlops-env/devcontainer/doctor.json"))
    assert doc["exit_code"] == 0, doc
    checks = {c["id"]: c for c in doc["data"]["checks"]}
    for cid in ("python.conda", "python.conda-init", "python.libraries", "python.terms",
                "tools.packages", "tools.git", "tools.curl"):
        assert checks[cid]["status"] == "ok", checks[cid]
    bad = [c for c in checks.values() if c["category"] in ("python", "tools") and c["status"] not in ("ok", "skip")]
    assert bad == []
    assert "docker" not in doc["data"]["categories"] and "local" not in doc["data"]["categories"]
    # a terminal in the container: conda's base env active (conda init), mlops-env on PATH
    r = dev.exec("bash", "-ic", "which python mlops-env && mlops-env --json doctor --only python,tools")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["/home/vscode/anaconda3/bin/python", "/home/vscode/anaconda3/bin/mlops-env"]
    again = json.loads("\n".join(lines[2:]))
    assert again["exit_code"] == 0 and {c["status"] for c in again["data"]["checks"]} <= {"ok", "skip"}


def test_smoke_test_passes_on_sample_data_inside(devcontainer: DevContainer) -> None:
    s = json.loads(devcontainer.read("/home/vscode/.mlops-env/devcontainer/smoke.json"))
    assert s["exit_code"] == 0, s
    d = s["data"]
    assert d["synthetic"] is True and 0 < d["rmse_train"] < 60 and 0 < d["rmse_val"] < 60
    assert d["train_rows"] > 1000


def test_mlops_env_is_the_workspace_installed_editable(devcontainer: DevContainer) -> None:
    dev = devcontainer
    r = dev.exec("/home/vscode/anaconda3/bin/python", "-c", "import mlops_env; print(mlops_env.__file__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{dev.remote_workspace}/src/mlops_env/__init__.py"


def test_the_container_carries_the_definitions_ports_and_extensions(devcontainer: DevContainer, docker_engine: Any) -> None:
    c = docker_engine.containers.get(devcontainer.container_id)
    meta = json.loads(c.labels["devcontainer.metadata"])
    merged: dict[str, Any] = {}
    for entry in meta:
        for k, v in entry.items():
            merged.setdefault(k, []).append(v)
    assert [8888, 5000] in merged["forwardPorts"]
    attrs = merged["portsAttributes"][-1]
    assert attrs["8888"]["label"] == "Jupyter" and attrs["5000"]["label"] == "MLflow"
    ext = merged["customizations"][-1]["vscode"]["extensions"]
    assert ext == ["ms-python.python", "ms-toolsai.jupyter"]
    assert merged["hostRequirements"][-1] == {"cpus": 4, "memory": "16gb"}
    assert merged["remoteUser"][-1] == "vscode"


# --------------------------------------------------------------------------- what `init` writes


@dataclass
class InitContainer:
    repo: Path
    init: subprocess.CompletedProcess[str]
    up: subprocess.CompletedProcess[str]
    exec: Any


@pytest.fixture(scope="module")
def init_devcontainer(devcontainer_cli: str, docker_engine: Any, base_image_with_standin: Any,
                      wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InitContainer]:
    """A course repository set up by the installed `mlops-env devcontainer init --python-dist
    miniforge --no-docker`, started with `devcontainer up`. Post-create installs the default
    source, `mlops-env==<version>`, which pip finds in a find-links folder holding this
    checkout's wheel (the stand-in for PyPI). TEST-ONLY override (`--override-config`): the
    local base image, no features (the sshd one needs ghcr.io), the stand-in installer mirror,
    the wheelhouses."""
    _remove_stale(docker_engine)
    base = tmp_path_factory.mktemp("devcontainer-init")
    base.chmod(0o755)
    ws_name = f"course-dc-{os.getpid()}"
    repo = base / ws_name
    repo.mkdir(mode=0o755)
    (repo / "README.md").write_text("# my MLOps Zoomcamp homework\n")
    (repo / "README.md").chmod(0o644)
    own = base / "mlops-env-wheel"
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(own), str(ROOT)],
                       capture_output=True, text=True, check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    own.chmod(0o755)
    exe = Path(sys.executable).parent / "mlops-env"
    init = subprocess.run([str(exe), "--json", "devcontainer", "init", str(repo), "--python-dist", "miniforge",
                           "--no-docker"], capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "MLOPS_ENV_HOME": str(base / "mlops-home")})
    real = dc.parse_jsonc((repo / ".devcontainer" / "devcontainer.json").read_text()).value
    v = json.loads(json.dumps(real))
    v["name"] += " [TEST-ONLY: local base image, no features]"
    v["build"]["args"]["BASE_IMAGE"] = base_image_with_standin.image
    v.pop("features")  # what init wrote keeps the sshd feature; ghcr.io is unreachable here
    v["containerEnv"].update({
        "MLOPS_ENV_CONDA_INSTALLER": base_image_with_standin.url,
        "MLOPS_ENV_CONDA_SHA256": base_image_with_standin.sha256,
        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": f"{WHEELHOUSE_MOUNT} /opt/mlops-env-wheel",
    })
    v["mounts"] = [{"type": "bind", "source": str(wheelhouse), "target": WHEELHOUSE_MOUNT},
                   {"type": "bind", "source": str(own), "target": "/opt/mlops-env-wheel"}]
    override = base / "test-only-override" / "devcontainer.json"
    override.parent.mkdir()
    override.write_text("// TEST-ONLY override of what `mlops-env devcontainer init` wrote\n"
                        + json.dumps(v, indent="\t") + "\n")
    args = ["--workspace-folder", str(repo), "--override-config", str(override), *_id_labels(repo)]
    try:
        t0 = time.monotonic()
        up = subprocess.run([devcontainer_cli, "up", *args], capture_output=True, text=True, check=False,
                            timeout=900)
        _log(f"devcontainer up (init's files): exit {up.returncode} in {time.monotonic() - t0:.1f}s")

        def run(*cmd: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([devcontainer_cli, "exec", *args, *cmd], capture_output=True, text=True,
                                  check=False, timeout=120)

        yield InitContainer(repo, init, up, run)
    finally:
        for c in docker_engine.containers.list(all=True, filters={"label": f"{LABEL}.workspace={ws_name}"}):
            c.remove(force=True, v=True)
        _remove_images(docker_engine, (f"vsc-{ws_name}-",))


def test_what_init_writes_builds_and_starts_ready(init_devcontainer: InitContainer) -> None:
    d = init_devcontainer
    assert d.init.returncode == 0, d.init.stdout + d.init.stderr
    assert d.up.returncode == 0, d.up.stdout[-2000:] + d.up.stderr[-8000:]
    logs = d.up.stderr
    assert "mlops-env on-create: Miniforge (mirror) for x86_64 into /home/vscode/miniforge3" in logs
    assert "mlops-env dev container: READY" in logs, logs[-6000:]
    summary = d.exec("cat", "/home/vscode/.mlops-env/devcontainer/summary.txt").stdout
    assert "✓ mlops-env   mlops-env 0.1.0 (pip install mlops-env==0.1.0)" in summary
    doc = json.loads(d.exec("cat", "/home/vscode/.mlops-env/devcontainer/doctor.json").stdout)
    checks = {c["id"]: c["status"] for c in doc["data"]["checks"]}
    assert doc["exit_code"] == 0 and checks["python.conda"] == checks["python.libraries"] == "ok"
    assert "python.terms" not in checks  # Miniforge: no Anaconda terms to check
    r = d.exec("bash", "-ic", "which python")
    assert r.stdout.strip() == "/home/vscode/miniforge3/bin/python"
    # the repository's own files are untouched, and init's files are what the container used
    assert (d.repo / "README.md").read_text() == "# my MLOps Zoomcamp homework\n"
