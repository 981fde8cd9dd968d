"""`pip install mlops-env` without the repository: the wheel ships the dev container definition
(devcontainer/ -> mlops_env/devcontainer_files) and the schema, and `init` works from it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_definition_and_the_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in sorted((ROOT / "devcontainer").iterdir()):
        assert f"mlops_env/devcontainer_files/{f.name}" in names
    assert "mlops_env/devcontainer/schemas/devContainer.base.schema.json" in names
    assert "mlops_env/devcontainer/schemas/README.md" in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "Requires-Dist: jsonschema>=4" in zipfile.ZipFile(wheel).read(meta).decode()


def test_init_from_the_installed_package_without_the_repo(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    repo = tmp_path / "repo"
    repo.mkdir()
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
            "from mlops_env import devcontainer as dc; print(dc.definition_dir()); "
            "d = dc.init(Path(sys.argv[2]), dc.Options('miniforge', False), accept_tos=False, force=False, "
            "dry_run=False); print(len(d['files']))")
    p = subprocess.run([sys.executable, "-I", "-c", code, str(site), str(repo)], capture_output=True,
                       text=True, cwd=tmp_path, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(site / "mlops_env" / "devcontainer_files"), "7"]
    for name in ("on-create.sh", "post-create.sh", "Dockerfile"):
        assert (repo / ".devcontainer" / name).read_text() == (ROOT / "devcontainer" / name).read_text()
    assert (repo / ".devcontainer" / "conda.sh").read_text() == (ROOT / "templates" / "conda.sh").read_text()
