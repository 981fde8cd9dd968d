"""`pip install .` from a clean clone must work without the repo: the wheel ships the shell
scripts and config templates (top-level templates/ -> mlops_env/templates) and the package
finds them there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_every_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.split("mlops_env/templates/", 1)[1] for n in names if n.startswith("mlops_env/templates/")}
    in_repo = {str(p.relative_to(ROOT / "templates")) for p in (ROOT / "templates").rglob("*") if p.is_file()}
    assert in_repo and in_repo <= shipped
    assert "mlops_env/smoke/ridetrain.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mlops-env = mlops_env.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_package_finds_its_templates_without_the_repo(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from mlops_env.paths import templates_dir; from mlops_env.steps import template; "
            "print(templates_dir()); assert template('conda.sh').startswith('#!')")
    p = subprocess.run([sys.executable, "-I", "-c", code, str(site)], capture_output=True, text=True,
                       cwd=tmp_path, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(site / "mlops_env" / "templates")
