"""Dev containers (GitHub Codespaces, VS Code): the one definition, strict JSONC, the schema.

The definition lives in the repository's top-level ``devcontainer/`` (shipped in the wheel as
``mlops_env/devcontainer_files``): ``devcontainer.json``, a ``Dockerfile`` (base image + login
user), ``on-create.sh`` (base packages and conda, installed by the workstation's own
``templates/base.sh`` and ``templates/conda.sh`` with the pinned ``installers.yaml``) and
``post-create.sh`` (mlops-env, ``mlops-env doctor``, the smoke test, a summary). Everything else
is derived from it here:

- :func:`render_repo`: this repository's ``.devcontainer/devcontainer.json`` (what Codespaces
  reads): the same text under a "generated" header; its paths resolve to the same files from
  both folders. ``python -m mlops_env.devcontainer sync`` writes it, a test checks it.
- :func:`render_user`: what ``mlops-env devcontainer init`` writes into another repository:
  ``.devcontainer/`` with the same files, the JSON edited in place (comments kept) for the
  chosen distribution, Docker or not, and where post-create installs mlops-env from.

Validation is strict (``jsonc.py``, ``schema.py``; re-exported here): :func:`parse_jsonc` accepts JSON plus what JSONC adds (``//`` and
``/* */`` comments, trailing commas) and nothing else, with file, line and column in every
error; :func:`schema_problems` checks against the official dev container schema kept in
``mlops_env/devcontainer/schemas/`` (source and license in the README there). ``jsonschema`` is imported
only here, inside functions: ``mlops-env --help`` does not load it.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_env.devcontainer.jsonc import (
    DevcontainerError,
    Jsonc,
    JsonPath,
    Problem,
    dotted,
    parse_jsonc,
)
from mlops_env.devcontainer.schema import (
    SCHEMA_FILE,
    SCHEMA_REF,
    check_text,
    schema,
    schema_path,
    schema_problems,
)
from mlops_env.errors import NotFoundError, PrereqError, UsageError

__all__ = ["SCHEMA_FILE", "SCHEMA_REF", "DevcontainerError", "JsonPath", "Jsonc", "Problem", "check_text", "dotted",
           "parse_jsonc", "schema", "schema_path", "schema_problems"]

DEFINITION_FILES = ("devcontainer.json", "Dockerfile", "on-create.sh", "post-create.sh")
TEMPLATE_FILES = ("base.sh", "conda.sh", "installers.yaml")  # from templates/ (lib/ includes inlined)
USER_DIR = ".devcontainer"  # where Codespaces looks (also .devcontainer.json, .devcontainer/*/)
USERNAME = "vscode"  # the Dockerfile's USERNAME build arg and remoteUser
DISTS = ("anaconda", "miniconda", "miniforge")
TOS_URL = "https://www.anaconda.com/legal/terms"

REPO_HEADER = """\
// GENERATED from devcontainer/devcontainer.json by `python -m mlops_env.devcontainer sync`:
// edit that file, not this one (tests/devcontainer fail while the two differ). GitHub
// Codespaces and VS Code read only .devcontainer/devcontainer.json (or .devcontainer.json);
// the definition and its scripts live in devcontainer/. See docs/devcontainer.md.
"""

USER_HEADER = """\
// The MLOps Zoomcamp workstation as a dev container (GitHub Codespaces, VS Code Dev Containers),
// written by mlops-env {version}: `mlops-env devcontainer init {options}`.
// Update it with `mlops-env devcontainer init --force`; check it with `mlops-env devcontainer
// validate`. Next to this file: Dockerfile (base image + login user), on-create.sh (base
// packages and conda, with base.sh, conda.sh and the pinned installers.yaml: the checksum-
// verified steps of `mlops-env up`) and post-create.sh (mlops-env, `mlops-env doctor`, the smoke
// test and a summary).
"""


# --------------------------------------------------------------------------- the definition


def definition_dir() -> Path:
    """The shipped definition: inside the wheel, or ``devcontainer/`` at the repo top."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "devcontainer_files"
    if packaged.is_dir():
        return packaged
    return here.parent.parent / "devcontainer"


def _read(name: str) -> str:
    if name in TEMPLATE_FILES:  # a script's lib/ includes inlined: the copy stands alone
        from mlops_env.paths import template

        return template(name)
    return (definition_dir() / name).read_text(encoding="utf-8")


def source_text() -> str:
    return _read("devcontainer.json")


def _replace_header(doc: Jsonc, header: str) -> str:
    """The text with everything before the top-level ``{`` (the leading comment) replaced."""
    start = doc.values[()][0]
    return header + doc.text[start:]


def render_repo() -> str:
    """This repository's ``.devcontainer/devcontainer.json``: the source under a header."""
    doc = parse_jsonc(source_text(), "devcontainer/devcontainer.json")
    return _replace_header(doc, REPO_HEADER)


def _replace_value(text: str, path: JsonPath, value: Any, file: str) -> str:
    doc = parse_jsonc(text, file)
    if path not in doc.values:
        raise KeyError(f"{file}: {dotted(path)} not found")
    start, end = doc.values[path]
    return text[:start] + json.dumps(value) + text[end:]


def _remove_member(text: str, path: JsonPath, file: str) -> str:
    """Remove an object member with the comment lines right above it and its comma."""
    doc = parse_jsonc(text, file)
    kstart = doc.keys[path][0]
    vend = doc.values[path][1]
    start = text.rfind("\n", 0, kstart) + 1
    if text[start:kstart].strip():
        start = kstart  # something else precedes it on its line
    # comment lines directly above belong to it
    while start > 0:
        prev = text.rfind("\n", 0, start - 1) + 1
        if text[prev:start].strip().startswith("//"):
            start = prev
        else:
            break
    end = vend
    rest = text[end:]
    m = re.match(r"[ \t]*,", rest)
    if m:
        end += m.end()
    else:  # the last member: drop the comma before it instead
        before = text[:start].rstrip()
        if before.endswith(","):
            cut = len(before) - 1
            text = text[:cut] + text[cut + 1:]
            start -= 1
            end -= 1
    nl = re.match(r"[ \t]*(//[^\n]*)?\n", text[end:])
    if nl and (start == 0 or text[start - 1] == "\n"):
        end += nl.end()
    return text[:start] + text[end:]


@dataclass(frozen=True)
class Options:
    """What ``init`` writes: the distribution, Docker or not, where mlops-env comes from."""

    python_dist: str = "anaconda"
    docker: bool = True
    mlops_env_source: str = ""  # a pip requirement; default mlops-env==<this version>

    def source(self) -> str:
        from mlops_env import __version__

        return self.mlops_env_source or f"mlops-env=={__version__}"


def _prefix_name(dist: str) -> str:
    from mlops_env.installers import table

    return str(table()[dist]["prefix"])


def _needs_tos(dist: str) -> bool:
    from mlops_env.installers import table

    return bool(table()[dist].get("terms_of_service"))


def render_user(opts: Options) -> dict[str, str]:
    """The files ``init`` writes, relative to the repository: ``.devcontainer/...`` -> text."""
    from mlops_env import __version__

    if opts.python_dist not in DISTS:
        raise UsageError(f"unknown Python distribution {opts.python_dist!r}",
                         hint="use anaconda, miniconda or miniforge")
    file = f"{USER_DIR}/devcontainer.json"
    text = source_text()
    on_create = f"bash {USER_DIR}/on-create.sh --templates {USER_DIR}"
    if _needs_tos(opts.python_dist):
        on_create += " --accept-anaconda-tos"
    post_create = f"bash {USER_DIR}/post-create.sh --install {shlex.quote(opts.source())}"
    if not opts.docker:
        post_create += " --no-docker"
    edits: list[tuple[JsonPath, Any]] = [
        (("build", "dockerfile"), "Dockerfile"),
        (("build", "context"), "."),
        (("containerEnv", "MLOPS_ENV_PYTHON_DIST"), opts.python_dist),
        (("onCreateCommand",), on_create),
        (("postCreateCommand",), post_create),
        (("customizations", "vscode", "settings", "python.defaultInterpreterPath"),
         f"/home/{USERNAME}/{_prefix_name(opts.python_dist)}/bin/python"),
    ]
    for path, value in edits:
        text = _replace_value(text, path, value, file)
    if not opts.docker:
        text = _remove_member(text, ("features", "ghcr.io/devcontainers/features/docker-in-docker:2"), file)
    flags = [f"--python-dist {opts.python_dist}"] + ([] if opts.docker else ["--no-docker"])
    if opts.mlops_env_source:
        flags.append(f"--mlops-env-source {shlex.quote(opts.mlops_env_source)}")
    header = USER_HEADER.format(version=__version__, options=" ".join(flags))
    text = _replace_header(parse_jsonc(text, file), header)
    files = {file: text}
    for name in DEFINITION_FILES[1:] + TEMPLATE_FILES:
        files[f"{USER_DIR}/{name}"] = _read(name)
    return files


def validate_rendered(files: dict[str, str]) -> None:
    """What ``init`` is about to write must be valid, and every file it refers to written too.
    A failure here is a bug in mlops-env (the definition or its rendering), not the user's."""
    name = f"{USER_DIR}/devcontainer.json"
    doc, warnings = check_text(files[name], name)
    if warnings:
        raise AssertionError(f"{name} has trailing commas: {warnings}")
    build = doc.value["build"]
    wanted = {f"{USER_DIR}/{build['dockerfile']}"}
    for cmd in (doc.value["onCreateCommand"], doc.value["postCreateCommand"]):
        wanted |= {w for w in shlex.split(cmd) if w.startswith(f"{USER_DIR}/")}
    missing = wanted - set(files)
    if missing:
        raise AssertionError(f"{name} refers to files that are not written: {sorted(missing)}")


# --------------------------------------------------------------------------- init


def init(target: Path, opts: Options, *, accept_tos: bool, force: bool, dry_run: bool,
         confirm_terms: Any = None) -> dict[str, Any]:
    """Write the definition into the repository at ``target`` (``target/.devcontainer/``).

    Never overwrites a file whose content differs unless ``force``; files already identical are
    left alone. Returns the command's data: the files and what happened to each.
    """
    from mlops_env.fsutil import atomic_write

    if not target.exists():
        raise NotFoundError(f"{target} does not exist", hint="pass the folder of your repository (default: .)")
    if not target.is_dir():
        raise UsageError(f"{target} is not a folder", hint="pass the folder of your repository (default: .)")
    if _needs_tos(opts.python_dist) and not accept_tos:
        label = {"anaconda": "Anaconda", "miniconda": "Miniconda"}[opts.python_dist]
        question = (f"{label} is distributed under Anaconda's terms of service ({TOS_URL}); whoever "
                    "opens this dev container installs it.\nAccept them on their behalf? (No: stop "
                    "here; `--python-dist miniforge` has no such terms)")
        if not (confirm_terms and confirm_terms(question)):
            raise PrereqError(f"{label} requires accepting Anaconda's terms of service",
                              hint=f"re-run with --accept-anaconda-tos ({TOS_URL}), or use "
                              "--python-dist miniforge (conda-forge, no terms to accept)",
                              code="terms-not-accepted")
    files = render_user(opts)
    validate_rendered(files)

    plan: list[dict[str, Any]] = []
    conflicts: list[str] = []
    for rel, text in files.items():
        path = target / rel
        data = text.encode("utf-8")
        if path.is_dir():
            raise UsageError(f"{path} is a folder", hint="move it away, then run init again")
        if not path.exists():
            action = "create"
        elif path.read_bytes() == data:
            action = "unchanged"
        else:
            action = "overwrite"
            conflicts.append(rel)
        plan.append({"path": rel, "action": action, "bytes": len(data)})
    if conflicts and not force:
        err = UsageError(f"{len(conflicts)} file(s) exist with other content: {', '.join(conflicts)}; "
                         "nothing was written",
                         hint="re-run with --force to overwrite them (their content is lost), or move them away",
                         code="files-exist")
        err.data = {"dir": str(target), "conflicts": conflicts, "files": plan}  # type: ignore[attr-defined]
        raise err
    if not dry_run:
        for item in plan:
            if item["action"] == "unchanged":
                continue
            rel = item["path"]
            mode = 0o755 if rel.endswith(".sh") else 0o644
            atomic_write(target / rel, files[rel], mode=mode)
    done = {"create": "created", "overwrite": "overwritten", "unchanged": "unchanged"}
    would = {"create": "would create", "overwrite": "would overwrite", "unchanged": "unchanged"}
    for item in plan:
        item["action"] = (would if dry_run else done)[item["action"]]
    warnings = []
    if (target / ".devcontainer.json").exists():
        warnings.append(f"{target / '.devcontainer.json'} exists too: Codespaces and VS Code will "
                        "ask which dev container configuration to use")
    return {
        "dir": str(target.resolve()),
        "python_dist": opts.python_dist,
        "docker": opts.docker,
        "mlops_env_source": opts.source(),
        "dry_run": dry_run,
        "files": plan,
        "validated": {"jsonc": True, "schema": SCHEMA_REF},
        "warnings": warnings,
    }


# --------------------------------------------------------------------------- validate


def find_configs(path: Path) -> list[Path]:
    """The dev container configurations at ``path`` (a file, or a folder searched like
    Codespaces: .devcontainer/devcontainer.json, .devcontainer.json, .devcontainer/*/devcontainer.json)."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise NotFoundError(f"{path} does not exist", hint="pass a devcontainer.json or the folder of a repository")
    found = [p for p in (path / ".devcontainer" / "devcontainer.json", path / ".devcontainer.json") if p.is_file()]
    found += sorted((path / ".devcontainer").glob("*/devcontainer.json"))
    if not found and (path / "devcontainer.json").is_file():
        found = [path / "devcontainer.json"]
    if not found:
        raise NotFoundError(f"no dev container configuration in {path}",
                            hint="looked for .devcontainer/devcontainer.json, .devcontainer.json and "
                            ".devcontainer/*/devcontainer.json; `mlops-env devcontainer init` writes one")
    return found


def validate_file(path: Path, *, display: str | None = None) -> dict[str, Any]:
    """Validate one file; raises DevcontainerError. Returns ``{file, warnings}``."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DevcontainerError([Problem(name, 1, 1, f"not UTF-8 text ({e.reason} at byte {e.start})")]) from None
    _, warnings = check_text(text, name, base_dir=path.parent)
    return {"file": name, "valid": True, "warnings": [w.as_dict() for w in warnings]}


# --------------------------------------------------------------------------- sync (developers)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent.parent.parent


def sync(check: bool = False) -> int:
    """Write (or with ``check`` compare) this repository's .devcontainer/devcontainer.json."""
    target = repo_root() / ".devcontainer" / "devcontainer.json"
    want = render_repo()
    have = target.read_text(encoding="utf-8") if target.exists() else None
    if have == want:
        print(f"{target}: up to date")
        return 0
    if check:
        print(f"{target}: out of date; run `python -m mlops_env.devcontainer sync`", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(want, encoding="utf-8")
    print(f"{target}: written")
    return 0
