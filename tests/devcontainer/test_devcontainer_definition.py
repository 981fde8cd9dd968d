"""The dev container definition: this repository's own (devcontainer/ and the generated
.devcontainer/) and what `init` writes, parsed as strict JSONC and validated against the official
schema; broken files rejected with line and column; the scripts' own logic (installer table,
post-create summary) without a container."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from mlops_env import devcontainer as dc
from mlops_env.installers import resolve

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "devcontainer" / "devcontainer.json"
GENERATED = ROOT / ".devcontainer" / "devcontainer.json"
SCHEMA_SHA256 = "0a98ac24a1fc93ab7ec14dc24e9ee379cf9144694170ce41dd8cb7607750a620"


# --------------------------------------------------------------------------- the schema (data)


def test_schema_is_the_pinned_official_file() -> None:
    raw = dc.schema_path().read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256, "schemas/README.md says where it comes from"
    s = json.loads(raw)
    assert s["$schema"] == "https://json-schema.org/draft/2019-09/schema"
    assert s["description"] == "Defines a dev container"
    assert s["unevaluatedProperties"] is False and s["allowTrailingCommas"] is False
    readme = (dc.schema_path().parent / "README.md").read_text()
    assert SCHEMA_SHA256 in readme and "CC BY 4.0" in readme and "08c3f97f" in readme


# --------------------------------------------------------------------------- this repository


@pytest.mark.parametrize("path", [SRC, GENERATED], ids=["devcontainer", ".devcontainer"])
def test_repo_definition_is_valid_jsonc_and_schema_valid(path: Path) -> None:
    out = dc.validate_file(path)  # raises DevcontainerError with line:col otherwise
    assert out["valid"] and out["warnings"] == []


def test_generated_dot_devcontainer_is_current() -> None:
    """.devcontainer/devcontainer.json is the source under a header, never edited by hand."""
    assert GENERATED.read_text(encoding="utf-8") == dc.render_repo(), \
        "run `python -m mlops_env.devcontainer sync` and commit .devcontainer/devcontainer.json"
    assert GENERATED.read_text().startswith("// GENERATED from devcontainer/devcontainer.json")
    # the same JSON (comments aside) as the source: one definition
    assert dc.parse_jsonc(GENERATED.read_text()).value == dc.parse_jsonc(SRC.read_text()).value
    assert sorted(p.name for p in GENERATED.parent.iterdir()) == ["devcontainer.json"]


@pytest.mark.parametrize("config", [SRC, GENERATED], ids=["devcontainer", ".devcontainer"])
def test_both_configs_build_the_same_dockerfile_from_the_same_small_context(config: Path) -> None:
    build = dc.parse_jsonc(config.read_text()).value["build"]
    assert (config.parent / build["dockerfile"]).resolve() == ROOT / "devcontainer" / "Dockerfile"
    # the context is devcontainer/ (a few KB), not the repository with its .venv
    assert (config.parent / build["context"]).resolve() == ROOT / "devcontainer"


def test_repo_definition_has_what_the_course_needs() -> None:
    v = dc.parse_jsonc(SRC.read_text()).value
    assert v["build"]["args"]["BASE_IMAGE"] == "mcr.microsoft.com/devcontainers/base:noble"
    # docker-in-docker, and sshd for `gh codespace ssh` / `mlops-env up codespace`
    assert v["features"] == {"ghcr.io/devcontainers/features/docker-in-docker:2": {},
                             "ghcr.io/devcontainers/features/sshd:1": {}}
    assert v["forwardPorts"] == [8888, 5000]
    assert v["portsAttributes"]["8888"]["label"] == "Jupyter"
    assert v["portsAttributes"]["5000"]["label"] == "MLflow"
    assert v["customizations"]["vscode"]["extensions"] == ["ms-python.python", "ms-toolsai.jupyter"]
    assert v["hostRequirements"] == {"cpus": 4, "memory": "16gb"}
    assert v["remoteUser"] == dc.USERNAME == v["build"]["args"]["USERNAME"]
    assert v["containerEnv"]["MLOPS_ENV_PYTHON_DIST"] == "anaconda"  # `up`'s default
    assert v["onCreateCommand"] == "bash devcontainer/on-create.sh --templates templates --accept-anaconda-tos"
    assert v["postCreateCommand"] == "bash devcontainer/post-create.sh --install . --editable"
    assert v["customizations"]["vscode"]["settings"]["python.defaultInterpreterPath"] == \
        "/home/vscode/anaconda3/bin/python"


# --------------------------------------------------------------------------- what init writes


@pytest.mark.parametrize("docker", [True, False], ids=["docker", "no-docker"])
@pytest.mark.parametrize("dist", dc.DISTS)
def test_init_output_is_valid_for_every_distribution(dist: str, docker: bool) -> None:
    files = dc.render_user(dc.Options(python_dist=dist, docker=docker))
    dc.validate_rendered(files)
    name = ".devcontainer/devcontainer.json"
    doc, warnings = dc.check_text(files[name], name)
    assert warnings == []
    v = doc.value
    prefix = resolve(dist, "x86_64").prefix_name
    assert v["containerEnv"]["MLOPS_ENV_PYTHON_DIST"] == dist
    assert v["customizations"]["vscode"]["settings"]["python.defaultInterpreterPath"] == f"/home/vscode/{prefix}/bin/python"
    assert v["build"]["dockerfile"] == "Dockerfile" and v["build"]["context"] == "."
    tos = " --accept-anaconda-tos" if dist != "miniforge" else ""
    assert v["onCreateCommand"] == f"bash .devcontainer/on-create.sh --templates .devcontainer{tos}"
    assert v["postCreateCommand"] == ("bash .devcontainer/post-create.sh --install mlops-env==0.1.0"
                                      + ("" if docker else " --no-docker"))
    assert ("ghcr.io/devcontainers/features/docker-in-docker:2" in v["features"]) is docker
    assert "ghcr.io/devcontainers/features/sshd:1" in v["features"]
    # everything else as in this repository's own definition
    src = dc.parse_jsonc(SRC.read_text()).value
    for key in ("name", "forwardPorts", "portsAttributes", "hostRequirements", "remoteUser"):
        assert v[key] == src[key]
    assert v["customizations"]["vscode"]["extensions"] == src["customizations"]["vscode"]["extensions"]
    # comments survive the edits; the header says how it was made
    assert files[name].startswith("// The MLOps Zoomcamp workstation as a dev container")
    assert f"--python-dist {dist}" in files[name].splitlines()[1]
    assert "// The course's machine: 4 cores, 16 GB" in files[name]
    assert ("// Docker inside the container" in files[name]) is docker


def test_init_copies_the_scripts_and_the_pinned_table_unchanged() -> None:
    """The workstation's scripts as a box gets them: their templates/lib includes inlined, since
    the copies run from .devcontainer/ where no lib/ folder is written."""
    from mlops_env.paths import template

    files = dc.render_user(dc.Options())
    assert sorted(files) == sorted(f".devcontainer/{n}" for n in
                                   ("devcontainer.json", "Dockerfile", "on-create.sh", "post-create.sh",
                                    "base.sh", "conda.sh", "installers.yaml"))
    for name in ("Dockerfile", "on-create.sh", "post-create.sh"):
        assert files[f".devcontainer/{name}"] == (ROOT / "devcontainer" / name).read_text()
    for name in ("base.sh", "conda.sh", "installers.yaml"):
        assert files[f".devcontainer/{name}"] == template(name)
        assert not [ln for ln in files[f".devcontainer/{name}"].splitlines() if ln.startswith('. "${BASH_SOURCE')]
    assert "apt_reason() {" in files[".devcontainer/base.sh"]


def test_init_quotes_the_install_source_for_the_shell() -> None:
    files = dc.render_user(dc.Options(mlops_env_source="git+https://example.org/a b.git@v1;rm -rf ~"))
    v = json.loads(_strip_comments(files[".devcontainer/devcontainer.json"]))
    assert v["postCreateCommand"] == \
        "bash .devcontainer/post-create.sh --install 'git+https://example.org/a b.git@v1;rm -rf ~'"


def _strip_comments(text: str) -> str:
    return json.dumps(dc.parse_jsonc(text).value)


# --------------------------------------------------------------------------- broken files


def _src() -> str:
    return SRC.read_text()


def _line_col_of(text: str, marked: str) -> tuple[int, int]:
    """Line and column of the "|" in ``marked``, found in ``text``."""
    i = text.index(marked.replace("|", "")) + marked.index("|")
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


@pytest.mark.parametrize(("old", "new", "at", "words"), [
    ('"remoteUser": "vscode",', '"remoteUser": "vscode",\n\t"remoteUsr": "vscode",', '|"remoteUsr"',
     "unknown property 'remoteUsr' at the top level"),
    ('"context": "../devcontainer",', '"context": "../devcontainer",\n\t\t"dockerfil": "x",', '|"dockerfil"',
     "unknown property 'dockerfil' in build"),
    ('"cpus": 4,', '"cpus": 4,\n\t\t"gpus": 1,', '|"gpus"', "unknown property 'gpus' in hostRequirements"),
    ('"memory": "16gb"', '"memory": "16 GB"', '|"16 GB"', "does not match"),
    ('"cpus": 4', '"cpus": "4"', '"cpus": |"4"', "is not of type 'integer'"),
    ('"label": "Jupyter"', '"label": 8888', '"label": |8888', "is not of type 'string'"),
    ('"onAutoForward": "notify"', '"onAutoForward": "sometimes"', '|"sometimes"', "is not one of"),
    ("8888,\n", "88888,\n", "|88888", "greater than the maximum of 65535"),
    ('"MLOPS_ENV_PYTHON_DIST": "anaconda"', '"MLOPS_ENV_PYTHON_DIST": true', '"MLOPS_ENV_PYTHON_DIST": |true',
     "is not of type 'string'"),
])
def test_schema_violations_are_rejected_with_line_and_column(old: str, new: str, at: str, words: str) -> None:
    text = _src().replace(old, new, 1)
    assert text != _src()
    with pytest.raises(dc.DevcontainerError) as ei:
        dc.check_text(text, "devcontainer.json")
    p = ei.value.problems[0]
    assert p.kind == "schema" and words in p.message, str(p)
    assert (p.line, p.col) == _line_col_of(text, at), str(p)
    assert ei.value.exit_code == 2


def test_no_build_no_image_says_what_is_missing() -> None:
    text = _src().replace('"build": {', '"buildx": {', 1)
    with pytest.raises(dc.DevcontainerError) as ei:
        dc.check_text(text, "devcontainer.json")
    (p,) = ei.value.problems
    assert (p.line, p.col) == _line_col_of(text, "|{\n")  # the document: nothing there to point at
    assert p.message.startswith('nothing to start a container from: add "image", "build"')


def test_syntax_error_in_the_definition_has_line_and_column() -> None:
    text = _src().replace('"remoteUser": "vscode",', '"remoteUser": "vscode"', 1)
    with pytest.raises(dc.DevcontainerError) as ei:
        dc.check_text(text, "devcontainer.json")
    (p,) = ei.value.problems
    assert (p.line, p.col) == _line_col_of(text, '|"containerEnv"'), str(p)  # after the comments
    assert "comma is missing" in p.message and p.kind == "syntax"


def test_trailing_commas_are_accepted_with_a_warning() -> None:
    text = _src().replace('"ms-toolsai.jupyter"', '"ms-toolsai.jupyter",', 1)
    _, warnings = dc.check_text(text, "devcontainer.json")
    (w,) = warnings
    assert w.kind == "warning" and "allowTrailingCommas" in w.message
    assert (w.line, w.col) == _line_col_of(text, '"ms-toolsai.jupyter"|,')


def test_missing_dockerfile_is_a_reference_problem(tmp_path: Path) -> None:
    cfg = tmp_path / ".devcontainer" / "devcontainer.json"
    cfg.parent.mkdir()
    cfg.write_text(_src())  # ../devcontainer/Dockerfile does not exist here
    with pytest.raises(dc.DevcontainerError) as ei:
        dc.validate_file(cfg)
    kinds = {(p.kind, p.path) for p in ei.value.problems}
    assert kinds == {("reference", "build.dockerfile"), ("reference", "build.context")}


# --------------------------------------------------------------------------- on-create.sh


ON_CREATE = ROOT / "devcontainer" / "on-create.sh"


def _on_create(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_ENV_")}
    e.update(env or {})
    return subprocess.run(["bash", str(ON_CREATE), "--templates", str(ROOT / "templates"), *args],
                          capture_output=True, text=True, env=e, check=False, timeout=30)


def _resolved(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines())


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "amd64", "arm64"])
@pytest.mark.parametrize("dist", dc.DISTS)
def test_on_create_reads_the_pinned_table_like_the_product(dist: str, arch: str) -> None:
    """on-create.sh reads installers.yaml with a small awk reader: the same answers as
    mlops_env.installers.resolve() for every entry."""
    r = _on_create("--resolve-only", "--arch", arch, env={"MLOPS_ENV_PYTHON_DIST": dist})
    assert r.returncode == 0, r.stderr
    got = _resolved(r.stdout)
    want = resolve(dist, arch)
    assert got["url"] == want.url
    assert got["sha256"] == (want.sha256 or "")
    assert got["sha256_url"] == (want.sha256_url or "")
    assert got["prefix"] == f"{Path.home()}/{want.prefix_name}"
    assert got["terms_of_service"] == str(want.terms_of_service).lower()
    assert got["packages"].split() == list(want.packages)
    assert got["label"] == want.label and got["arch"] == want.arch


def test_on_create_mirror_replaces_the_pinned_download() -> None:
    sha = "a" * 64
    r = _on_create("--resolve-only", env={"MLOPS_ENV_CONDA_INSTALLER": "file:///opt/mirror/x.sh",
                                          "MLOPS_ENV_CONDA_SHA256": sha})
    got = _resolved(r.stdout)
    assert (got["url"], got["sha256"], got["sha256_url"], got["label"]) == \
        ("file:///opt/mirror/x.sh", sha, "", "Anaconda (mirror)")
    half = _on_create("--resolve-only", env={"MLOPS_ENV_CONDA_INSTALLER": "file:///x"})
    assert half.returncode == 2 and "go together" in half.stderr


def test_on_create_refuses_anaconda_without_the_terms_before_touching_anything() -> None:
    r = _on_create(env={"HOME": "/nonexistent-home"})
    assert r.returncode == 4, r.stderr
    assert "terms of service" in r.stderr and "--accept-anaconda-tos" in r.stderr and "miniforge" in r.stderr


@pytest.mark.parametrize(("args", "env", "code", "words"), [
    ((), {"MLOPS_ENV_PYTHON_DIST": "conda"}, 2, "anaconda, miniconda or miniforge"),
    (("--resolve-only", "--arch", "riscv64"), {}, 3, "no installer for this architecture"),
    (("--bogus",), {}, 2, "unknown argument"),
])
def test_on_create_bad_input(args: tuple[str, ...], env: dict[str, str], code: int, words: str) -> None:
    r = _on_create(*args, env=env)
    assert r.returncode == code and words in r.stderr, r.stderr


# --------------------------------------------------------------------------- post-create.sh


POST_CREATE = ROOT / "devcontainer" / "post-create.sh"

FAKE_PIP_PYTHON = """#!/bin/sh
# test double: `python -m pip install ...` installs the fake mlops-env; anything else is python3
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  cp "$(dirname "$0")/mlops-env.fake" "$(dirname "$0")/mlops-env"; chmod +x "$(dirname "$0")/mlops-env"
  echo "fake pip: $*"; exit 0
fi
exec python3 "$@"
"""
FAKE_MLOPS = """#!/bin/sh
# test double of the mlops-env CLI: canned --json answers
case "$*" in
  --version) echo "mlops-env 9.9.9" ;;
  "doctor --help") exit 0 ;;
  "--json doctor --skip local"*)
    echo "$*" > "$(dirname "$0")/doctor-args"
    cat <<'EOF'
{"status": "error", "exit_code": 1, "data": {"checks": [
 {"id": "system.cpu", "category": "system", "status": "warn", "message": "2 vCPUs", "hint": "use 4"},
 {"id": "python.conda", "category": "python", "status": "ok", "message": "conda 24.5.0", "hint": null},
 {"id": "tools.git", "category": "tools", "status": "fail", "message": "git missing", "hint": "apt-get install git"}]},
 "errors": []}
EOF
    exit 1 ;;
  "--json smoke-test --sample")
    echo '{"status": "ok", "exit_code": 0, "data": {"rmse_train": 2.2654, "rmse_val": 2.7791, "synthetic": true, "train_rows": 19186}, "errors": []}' ;;
  *) echo "fake mlops-env: unexpected $*" >&2; exit 99 ;;
esac
"""


def _post_create(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_ENV_")}
    env["HOME"] = str(home)
    return subprocess.run(["bash", str(POST_CREATE), *args], capture_output=True, text=True,
                          env=env, check=False, timeout=60, cwd=home)


def test_post_create_without_conda_says_not_ready_and_fails(tmp_path: Path) -> None:
    r = _post_create(tmp_path, "--install", ".")
    assert r.returncode == 1
    assert "✗ conda" not in r.stdout  # no python: the plain summary
    assert "fail conda" in r.stdout and "on-create.sh did not finish" in r.stdout
    assert "NOT READY" in r.stdout and f"bash {POST_CREATE} --install ." in r.stdout
    assert (tmp_path / ".mlops-env/devcontainer/post-create.log").read_text().count("NOT READY") == 1


def test_post_create_summary_names_each_problem_and_how_to_rerun(tmp_path: Path) -> None:
    prefix = tmp_path / "anaconda3"
    (prefix / "bin").mkdir(parents=True)
    for name, text in (("python", FAKE_PIP_PYTHON), ("mlops-env.fake", FAKE_MLOPS),
                       ("conda", "#!/bin/sh\necho conda 24.5.0\n")):
        (prefix / "bin" / name).write_text(text)
        (prefix / "bin" / name).chmod(0o755)
    state = tmp_path / ".mlops-env" / "devcontainer"
    state.mkdir(parents=True)
    (state / "conda.env").write_text(f"DIST=anaconda\nLABEL='Anaconda 2024.06-1'\nPREFIX={prefix}\n")
    r = _post_create(tmp_path, "--install", "mlops-env==9.9.9", "--no-docker")
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert f"✓ conda       Anaconda 2024.06-1 in {prefix} (conda 24.5.0)" in out
    assert "✓ mlops-env   mlops-env 9.9.9 (pip install mlops-env==9.9.9)" in out
    assert "✗ doctor      system ok (1 warning(s)), python ok, tools 1 problem(s)" in out
    assert "✗ tools.git: git missing -> apt-get install git" in out
    assert "! system.cpu: 2 vCPUs -> use 4" in out
    assert "✓ smoke-test  RMSE train 2.265, validation 2.779 min (synthetic sample, 19,186 rows)" in out
    assert "NOT READY (1 part(s) failed)" in out
    assert f"bash {POST_CREATE} --install mlops-env==9.9.9 --no-docker" in out
    # --no-docker: doctor skips its docker checks (and `local`, the client side)
    assert (prefix / "bin" / "doctor-args").read_text().split() == ["--json", "doctor", "--skip", "local,docker"]
    assert json.loads((state / "smoke.json").read_text())["data"]["train_rows"] == 19186
    assert (state / "summary.txt").read_text().startswith("=" * 78)


# --------------------------------------------------------------------------- shell quality


SCRIPTS = sorted((ROOT / "devcontainer").glob("*.sh"))


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (apt-get install shellcheck)")
def test_scripts_are_shellcheck_clean() -> None:
    r = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_executable_bash(script: Path) -> None:
    assert script.stat().st_mode & stat.S_IXUSR
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
