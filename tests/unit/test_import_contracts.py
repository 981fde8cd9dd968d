"""The import contracts in pyproject.toml ([tool.importlinter]), run by the real `lint-imports`
(import-linter), as .ci/run does: the package keeps them, and a copy of the package with a
deliberate violation breaks them (so the contracts can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[test]')")


def lint(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT), "--no-logo", "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_package_keeps_its_import_contracts() -> None:
    p = lint(ROOT, ROOT / "src")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 broken" in p.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contracts(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "mlops_env", src / "mlops_env",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # a step that reaches up into the pipeline, and paramiko outside the SSH layer
    steps = src / "mlops_env" / "steps" / "builtin.py"
    steps.write_text(steps.read_text(encoding="utf-8") + "\nfrom mlops_env import pipeline  # deliberate\n",
                     encoding="utf-8")
    state = src / "mlops_env" / "state.py"
    state.write_text(state.read_text(encoding="utf-8") + "\nimport paramiko  # deliberate\n", encoding="utf-8")
    p = lint(tmp_path, src)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "mlops_env.steps is not allowed to import mlops_env.pipeline" in out
    assert "- mlops_env.steps.builtin -> mlops_env.pipeline" in out
    assert "paramiko only in the SSH layer BROKEN" in out
    assert "- mlops_env.state -> paramiko" in out
    assert "no import cycles between sibling modules BROKEN" in out  # steps -> pipeline -> steps
