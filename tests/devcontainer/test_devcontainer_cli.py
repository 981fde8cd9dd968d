"""`mlops-env devcontainer init|validate` through Typer's CliRunner in an isolated HOME:
what init writes (validated), never overwriting without --force, --dry-run, --json, the
terms of service, and validate's errors with file, line and column."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_env import devcontainer as dc
from mlops_env.cli import app

FILES = [".devcontainer/devcontainer.json", ".devcontainer/Dockerfile", ".devcontainer/on-create.sh",
         ".devcontainer/post-create.sh", ".devcontainer/base.sh", ".devcontainer/conda.sh",
         ".devcontainer/installers.yaml"]


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    runner = CliRunner()

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), input=input)

    return run


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "course-repo"
    (r / "notebooks").mkdir(parents=True)
    (r / "README.md").write_text("# my course work\n")
    return r


def _json(out: str) -> dict:
    doc = json.loads(out)
    assert set(doc) == {"status", "exit_code", "data", "errors"}
    return doc


def test_init_writes_a_valid_dev_container(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "devcontainer", "init", str(repo), "--accept-anaconda-tos")
    assert r.exit_code == 0, r.output
    d = _json(r.stdout)["data"]
    assert [f["path"] for f in d["files"]] == FILES
    assert {f["action"] for f in d["files"]} == {"created"}
    assert (d["python_dist"], d["docker"], d["mlops_env_source"]) == ("anaconda", True, "mlops-env==0.1.0")
    assert d["validated"] == {"jsonc": True, "schema": dc.SCHEMA_REF}
    for rel in FILES:
        mode = (repo / rel).stat().st_mode
        assert bool(mode & stat.S_IXUSR) is rel.endswith(".sh"), rel
    out = dc.validate_file(repo / ".devcontainer/devcontainer.json")  # incl. the Dockerfile it names
    assert out["valid"]
    assert (repo / "README.md").read_text() == "# my course work\n"  # the user's files untouched


def test_init_human_output_lists_the_files(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("devcontainer", "init", str(repo), "--python-dist", "miniforge", "--no-docker")
    assert r.exit_code == 0, r.output
    assert "wrote 7 of 7 files in" in r.stdout and "Miniforge, no Docker" in r.stdout
    for rel in FILES:
        assert f"created          {rel}" in r.stdout
    assert "Codespaces" in r.stdout


def test_init_again_is_a_no_op(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("devcontainer", "init", str(repo), "--accept-anaconda-tos").exit_code == 0
    r = cli("--json", "devcontainer", "init", str(repo), "--accept-anaconda-tos")
    assert r.exit_code == 0, r.output
    assert {f["action"] for f in _json(r.stdout)["data"]["files"]} == {"unchanged"}


def test_init_never_overwrites_without_force(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    (repo / ".devcontainer").mkdir()
    mine = repo / ".devcontainer" / "devcontainer.json"
    mine.write_text('{"image": "python:3.12"}\n')
    (repo / ".devcontainer" / "Dockerfile").write_text("FROM python:3.12\n")
    r = cli("--json", "devcontainer", "init", str(repo), "--python-dist", "miniforge")
    assert r.exit_code == 2
    doc = _json(r.stdout)
    err = doc["errors"][0]
    assert err["code"] == "files-exist"
    assert ".devcontainer/devcontainer.json" in err["message"] and ".devcontainer/Dockerfile" in err["message"]
    assert "--force" in err["hint"]
    assert doc["data"]["conflicts"] == [".devcontainer/devcontainer.json", ".devcontainer/Dockerfile"]
    # nothing at all was written: not the conflicting files, not the missing ones
    assert mine.read_text() == '{"image": "python:3.12"}\n'
    assert sorted(p.name for p in (repo / ".devcontainer").iterdir()) == ["Dockerfile", "devcontainer.json"]
    # human form names them too
    r = cli("devcontainer", "init", str(repo), "--python-dist", "miniforge")
    assert r.exit_code == 2 and ".devcontainer/Dockerfile" in r.output and "--force" in r.output


def test_init_force_overwrites_only_its_own_files(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    (repo / ".devcontainer").mkdir()
    (repo / ".devcontainer" / "devcontainer.json").write_text("{}")
    (repo / ".devcontainer" / "my-notes.txt").write_text("keep me")
    r = cli("--json", "devcontainer", "init", str(repo), "--python-dist", "miniforge", "--force")
    assert r.exit_code == 0, r.output
    actions = {f["path"]: f["action"] for f in _json(r.stdout)["data"]["files"]}
    assert actions[".devcontainer/devcontainer.json"] == "overwritten"
    assert actions[".devcontainer/Dockerfile"] == "created"
    assert (repo / ".devcontainer" / "my-notes.txt").read_text() == "keep me"
    v = dc.parse_jsonc((repo / ".devcontainer/devcontainer.json").read_text()).value
    assert v["containerEnv"]["MLOPS_ENV_PYTHON_DIST"] == "miniforge"


def test_init_dry_run_writes_nothing(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "devcontainer", "init", str(repo), "--python-dist", "miniforge", "--dry-run")
    assert r.exit_code == 0, r.output
    d = _json(r.stdout)["data"]
    assert d["dry_run"] is True and {f["action"] for f in d["files"]} == {"would create"}
    assert not (repo / ".devcontainer").exists()


def test_init_needs_the_anaconda_terms_for_anaconda_and_miniconda(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    for dist in ("anaconda", "miniconda"):
        r = cli("--json", "devcontainer", "init", str(repo), "--python-dist", dist)
        assert r.exit_code == 4, r.output
        err = _json(r.stdout)["errors"][0]
        assert err["code"] == "terms-not-accepted" and "miniforge" in err["hint"]
    assert not (repo / ".devcontainer").exists()


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--python-dist", "mamba"], 2, "unknown Python distribution"),
    (["--python-dist", "miniforge", "{missing}"], 3, "does not exist"),
])
def test_init_bad_input(cli, repo: Path, args: list[str], code: int, words: str) -> None:  # type: ignore[no-untyped-def]
    args = [a.replace("{missing}", str(repo / "nope")) for a in args]
    target = [] if any("nope" in a for a in args) else [str(repo)]
    r = cli("--json", "devcontainer", "init", *target, *args)
    assert r.exit_code == code, r.output
    assert words in _json(r.stdout)["errors"][0]["message"]


def test_init_warns_about_a_second_configuration(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    (repo / ".devcontainer.json").write_text('{"image": "x"}')
    r = cli("--json", "devcontainer", "init", str(repo), "--python-dist", "miniforge")
    assert r.exit_code == 0
    assert "ask which dev container configuration" in _json(r.stdout)["data"]["warnings"][0]


def test_validate_this_repository(cli) -> None:  # type: ignore[no-untyped-def]
    root = Path(__file__).resolve().parents[2]
    r = cli("--json", "devcontainer", "validate", str(root))
    assert r.exit_code == 0, r.output
    files = _json(r.stdout)["data"]["files"]
    assert [f["file"] for f in files] == [str(root / ".devcontainer" / "devcontainer.json")]


def test_validate_reports_every_problem_with_line_and_column(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    cli("devcontainer", "init", str(repo), "--python-dist", "miniforge")
    cfg = repo / ".devcontainer" / "devcontainer.json"
    cfg.write_text(cfg.read_text().replace('"16gb"', '"16 GB"').replace('"cpus": 4', '"cpus": 0'))
    r = cli("--json", "devcontainer", "validate", str(repo))
    assert r.exit_code == 2
    doc = _json(r.stdout)
    assert doc["errors"][0]["code"] == "devcontainer-invalid"
    problems = doc["data"]["files"][0]["problems"]
    assert [(p["path"], p["kind"]) for p in problems] == [("hostRequirements.cpus", "schema"),
                                                         ("hostRequirements.memory", "schema")]
    assert all(p["line"] > 1 and p["col"] > 1 for p in problems)
    r = cli("devcontainer", "validate", str(cfg))
    assert r.exit_code == 2
    assert f"{cfg}:{problems[0]['line']}:{problems[0]['col']}: 0 is less than the minimum of 1" in r.output
    assert f"{cfg}:{problems[1]['line']}:{problems[1]['col']}: '16 GB' does not match" in r.output


def test_validate_broken_jsonc(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "devcontainer.json"
    cfg.write_text('{\n  "image": "x"\n  "name": "y"\n}\n')
    r = cli("devcontainer", "validate", str(cfg))
    assert r.exit_code == 2
    assert f"{cfg}:3:3: expected ',' or '}}' after the value of 'image'" in r.output


def test_validate_without_a_configuration(cli, repo: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "devcontainer", "validate", str(repo))
    assert r.exit_code == 3
    assert "no dev container configuration" in _json(r.stdout)["errors"][0]["message"]


def test_help_does_not_load_jsonschema() -> None:
    code = ("import sys; from mlops_env.cli import app; "
            "assert 'jsonschema' not in sys.modules and 'mlops_env.devcontainer' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("cmd", [["devcontainer"], ["devcontainer", "init"], ["devcontainer", "validate"]])
def test_help(cli, cmd: list[str]) -> None:  # type: ignore[no-untyped-def]
    r = cli(*cmd, "--help")
    assert r.exit_code == 0 and "Usage:" in r.stdout, r.output
