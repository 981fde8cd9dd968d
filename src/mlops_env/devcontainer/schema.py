"""The official dev container JSON schema (kept in ``schemas/`` with its source and license) and
the checks of one file against it: JSONC syntax, schema, and the files it refers to.
``jsonschema`` is imported inside functions only: ``mlops-env --help`` does not load it.
"""

from __future__ import annotations

import json
import re
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

SCHEMA_FILE = "devContainer.base.schema.json"
SCHEMA_REF = "devcontainers/spec schemas/devContainer.base.schema.json @ 08c3f97f7138"


# --------------------------------------------------------------------------- schema


def schema_path() -> Path:
    return Path(__file__).resolve().parent / "schemas" / SCHEMA_FILE


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_path().read_text(encoding="utf-8"))
    return data


_UNEXPECTED = re.compile(r"\((.*) (?:was|were) unexpected\)")


def schema_problems(doc: Jsonc) -> list[Problem]:
    """Problems of ``doc.value`` under the official dev container schema (empty: valid)."""
    from jsonschema import Draft201909Validator

    validator = Draft201909Validator(schema())
    errors = list(validator.iter_errors(doc.value))
    # A failed oneOf leaves every property "unevaluated": those reports are noise next to the
    # oneOf's own reason, at the same place.
    real = {tuple(e.absolute_path) for e in errors if e.validator != "unevaluatedProperties"}
    errors = [e for e in errors
              if e.validator != "unevaluatedProperties" or tuple(e.absolute_path) not in real]
    problems: list[Problem] = []
    for e in (leaf for err in errors for leaf in _leaves(err)):
        path: JsonPath = tuple(e.absolute_path)
        at = doc.where(path)
        message = e.message
        m = _UNEXPECTED.search(message) if e.validator in ("unevaluatedProperties", "additionalProperties") else None
        if m:
            names = re.findall(r"'((?:[^'\\]|\\.)*)'", m.group(1))
            if names and path + (names[0],) in doc.keys:
                at = doc.keys[path + (names[0],)][0]
            listed = ", ".join(repr(n) for n in names)
            where = f"in {dotted(path)}" if path else "at the top level"
            message = (f"unknown propert{'y' if len(names) == 1 else 'ies'} {listed} {where} "
                       "(the dev container schema allows no other names here)")
        elif e.validator == "required" and not path and not {"image", "build", "dockerFile",
                                                              "dockerComposeFile"} & set(doc.value):
            message = ('nothing to start a container from: add "image", "build" (with '
                       '"dockerfile") or "dockerComposeFile"')
        elif len(message) > 240:
            message = message[:237] + "..."
        problems.append(doc.problem(at, message, "schema", path))
    return sorted(set(problems), key=lambda p: (p.line, p.col, p.message))


def _leaves(err: Any) -> list[Any]:
    """The reasons behind an error. For oneOf/anyOf (every branch failed), the branch the
    document most nearly matches: the one whose errors reach deepest into the document, then
    the one with the fewest errors."""
    if not err.context:
        return [err]
    branches: dict[Any, list[Any]] = {}
    for sub in err.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    best = max(branches.values(),
               key=lambda subs: (max(len(s.absolute_path) for s in subs), -len(subs)))
    return [leaf for sub in best for leaf in _leaves(sub)]


def check_text(text: str, file: str, *, base_dir: Path | None = None) -> tuple[Jsonc, list[Problem]]:
    """Parse and validate; return the document and its warnings. Raises DevcontainerError.

    With ``base_dir`` (the folder of the file), the Dockerfile and build context it names must
    exist there.
    """
    doc = parse_jsonc(text, file)
    if not isinstance(doc.value, dict):
        raise DevcontainerError([doc.problem(0, "a devcontainer.json must be a JSON object ({ ... })", "schema")])
    problems = schema_problems(doc)
    if base_dir is not None and not problems:
        problems += _reference_problems(doc, base_dir)
    if problems:
        raise DevcontainerError(problems, hint="fix these against the dev container reference "
                                "(https://containers.dev/implementors/json_reference/)")
    warnings = [doc.problem(c, "trailing comma: VS Code, Codespaces and the devcontainer CLI accept "
                            "it, but the schema says allowTrailingCommas: false", "warning")
                for c in doc.trailing_commas]
    return doc, warnings


def _reference_problems(doc: Jsonc, base_dir: Path) -> list[Problem]:
    build = doc.value.get("build")
    out: list[Problem] = []
    if isinstance(build, dict):
        for key, want_dir in (("dockerfile", False), ("context", True)):
            rel = build.get(key)
            if isinstance(rel, str):
                target = (base_dir / rel).resolve()
                ok = target.is_dir() if want_dir else target.is_file()
                if not ok:
                    kind = "folder" if want_dir else "file"
                    out.append(doc.problem(doc.where(("build", key)),
                                           f"build.{key} {rel!r}: no such {kind} ({target})",
                                           "reference", ("build", key)))
    return out
