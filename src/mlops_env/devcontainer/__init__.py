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

Validation is strict: :func:`parse_jsonc` accepts JSON plus what JSONC adds (``//`` and
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
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_env.errors import ConfigError, NotFoundError, PrereqError, UsageError

JsonPath = tuple[str | int, ...]

DEFINITION_FILES = ("devcontainer.json", "Dockerfile", "on-create.sh", "post-create.sh")
TEMPLATE_FILES = ("base.sh", "conda.sh", "installers.yaml")  # from templates/, unchanged
USER_DIR = ".devcontainer"  # where Codespaces looks (also .devcontainer.json, .devcontainer/*/)
SCHEMA_FILE = "devContainer.base.schema.json"
SCHEMA_REF = "devcontainers/spec schemas/devContainer.base.schema.json @ 08c3f97f7138"
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


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, at a line and column (1-based; columns count characters)."""

    file: str
    line: int
    col: int
    message: str
    kind: str = "syntax"  # syntax | schema | reference | warning
    path: str = ""  # where in the document, e.g. hostRequirements.memory

    def __str__(self) -> str:
        where = f" (at {self.path})" if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {self.message}{where}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "col": self.col, "kind": self.kind,
                "path": self.path, "message": self.message}


class DevcontainerError(ConfigError):
    """A devcontainer.json that is not valid JSONC or not valid under the schema (exit 2)."""

    code = "devcontainer-invalid"

    def __init__(self, problems: list[Problem], hint: str | None = None) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first}{more}", hint=hint or "fix the file at that line and column")
        self.problems = problems
        self.data = {"problems": [p.as_dict() for p in problems]}


# --------------------------------------------------------------------------- JSONC


@dataclass
class Jsonc:
    """A parsed JSONC document with where each value and key is in the text."""

    text: str
    file: str
    value: Any = None
    values: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)  # (start, end) offsets
    keys: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)  # a member's key string
    trailing_commas: list[int] = field(default_factory=list)
    _lines: list[int] = field(default_factory=list, repr=False)

    def line_col(self, offset: int) -> tuple[int, int]:
        if not self._lines:
            self._lines = [0] + [i + 1 for i, ch in enumerate(self.text) if ch == "\n"]
        line = bisect_right(self._lines, offset)
        return line, offset - self._lines[line - 1] + 1

    def problem(self, offset: int, message: str, kind: str = "syntax", path: JsonPath = ()) -> Problem:
        line, col = self.line_col(offset)
        return Problem(self.file, line, col, message, kind, dotted(path))

    def where(self, path: JsonPath) -> int:
        """The offset of the value at ``path``, or of its nearest parent that exists."""
        p = tuple(path)
        while p not in self.values and p:
            p = p[:-1]
        return self.values.get(p, (0, 0))[0]


class _Syntax(Exception):
    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _show(ch: str) -> str:
    if not ch:
        return "the end of the file"
    return repr(ch) if ch.isprintable() else f"character U+{ord(ch):04X}"


class _Parser:
    def __init__(self, doc: Jsonc) -> None:
        self.doc = doc
        self.s = doc.text
        self.i = 0

    def fail(self, message: str, at: int | None = None) -> _Syntax:
        return _Syntax(self.i if at is None else at, message)

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip(self) -> None:
        """Whitespace and comments."""
        s, n = self.s, len(self.s)
        while self.i < n:
            ch = s[self.i]
            if ch in " \t\r\n":
                self.i += 1
            elif s.startswith("//", self.i):
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end + 1
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                if end < 0:
                    raise self.fail("unterminated /* comment */")
                self.i = end + 2
            elif ch == "\ufeff" and self.i == 0:
                self.i += 1
            else:
                return

    def document(self) -> Any:
        self.skip()
        if self.i >= len(self.s):
            raise self.fail("empty file: expected a JSON object ({ ... })")
        value = self.value(())
        self.skip()
        if self.i < len(self.s):
            raise self.fail(f"unexpected {_show(self.peek())} after the end of the document")
        return value

    def value(self, path: JsonPath) -> Any:
        start = self.i
        ch = self.peek()
        if ch == "{":
            v: Any = self.object(path)
        elif ch == "[":
            v = self.array(path)
        elif ch == '"':
            v = self.string()
        elif ch == "-" or ch.isdigit():
            v = self.number()
        elif ch == "'":
            raise self.fail("strings must be in double quotes (\"...\"), not single quotes")
        else:
            word = re.match(r"[A-Za-z_$][\w$]*", self.s[self.i:])
            if word and word.group() in ("true", "false", "null"):
                self.i += len(word.group())
                v = {"true": True, "false": False, "null": None}[word.group()]
            elif word:
                raise self.fail(f"unexpected word {word.group()!r}: values are strings in double "
                                "quotes, numbers, true, false, null, objects or arrays")
            else:
                raise self.fail(f"expected a value, found {_show(ch)}")
        self.doc.values[path] = (start, self.i)
        return v

    def object(self, path: JsonPath) -> dict[str, Any]:
        self.i += 1  # {
        out: dict[str, Any] = {}
        while True:
            self.skip()
            ch = self.peek()
            if ch == "}":
                self.i += 1
                return out
            if ch != '"':
                if ch == "'":
                    raise self.fail("property names must be in double quotes, not single quotes")
                if ch and (ch.isalpha() or ch in "_$"):
                    raise self.fail("property names must be strings in double quotes")
                raise self.fail(f"expected a property name in double quotes or '}}', found {_show(ch)}")
            kstart = self.i
            key = self.string()
            if key in out:
                raise self.fail(f"duplicate property {key!r} (a second value would silently replace "
                                "the first)", at=kstart)
            self.doc.keys[path + (key,)] = (kstart, self.i)
            self.skip()
            if self.peek() != ":":
                raise self.fail(f"expected ':' after the property name {key!r}, found {_show(self.peek())}")
            self.i += 1
            self.skip()
            out[key] = self.value(path + (key,))
            self.skip()
            ch = self.peek()
            if ch == ",":
                comma = self.i
                self.i += 1
                self.skip()
                if self.peek() == "}":
                    self.doc.trailing_commas.append(comma)
                continue
            if ch == "}":
                continue
            if ch == '"':
                raise self.fail(f"expected ',' or '}}' after the value of {key!r}, found '\"' "
                                "(a comma is missing between two properties)")
            raise self.fail(f"expected ',' or '}}' after the value of {key!r}, found {_show(ch)}")

    def array(self, path: JsonPath) -> list[Any]:
        self.i += 1  # [
        out: list[Any] = []
        while True:
            self.skip()
            if self.peek() == "]":
                self.i += 1
                return out
            out.append(self.value(path + (len(out),)))
            self.skip()
            ch = self.peek()
            if ch == ",":
                comma = self.i
                self.i += 1
                self.skip()
                if self.peek() == "]":
                    self.doc.trailing_commas.append(comma)
                continue
            if ch == "]":
                continue
            raise self.fail(f"expected ',' or ']' in the array, found {_show(ch)}")

    def string(self) -> str:
        start = self.i
        self.i += 1  # "
        parts: list[str] = []
        s, n = self.s, len(self.s)
        while True:
            if self.i >= n:
                raise self.fail("unterminated string (no closing '\"')", at=start)
            ch = s[self.i]
            if ch == '"':
                self.i += 1
                return "".join(parts)
            if ch == "\\":
                esc = s[self.i + 1:self.i + 2]
                if esc in _ESCAPES:
                    parts.append(_ESCAPES[esc])
                    self.i += 2
                elif esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[self.i + 2:self.i + 6]):
                    parts.append(chr(int(s[self.i + 2:self.i + 6], 16)))
                    self.i += 6
                else:
                    raise self.fail(f"invalid escape '\\{esc}' in a string (a Windows path? write "
                                    "'\\\\' or '/')")
            elif ch < " ":
                what = "a line break" if ch in "\r\n" else _show(ch)
                raise self.fail(f"{what} inside a string (unterminated string, or write it as an escape)")
            else:
                parts.append(ch)
                self.i += 1

    def number(self) -> int | float:
        m = _NUMBER.match(self.s, self.i)
        if not m:
            raise self.fail(f"invalid number starting with {_show(self.peek())}")
        text = m.group()
        after = self.s[m.end():m.end() + 1]
        if text.lstrip("-") == "0" and after.isdigit():
            raise self.fail("numbers must not have leading zeros")
        if after and (after.isalnum() or after in "._"):
            raise self.fail(f"invalid number {self.s[self.i:m.end() + 1]!r}")
        self.i = m.end()
        return float(text) if any(c in text for c in ".eE") else int(text)


def parse_jsonc(text: str, file: str = "devcontainer.json") -> Jsonc:
    """Parse strict JSONC: JSON plus comments and trailing commas, nothing else.

    Raises :class:`DevcontainerError` with the file, line and column of the first error.
    """
    doc = Jsonc(text=text, file=file)
    try:
        doc.value = _Parser(doc).document()
    except _Syntax as e:
        raise DevcontainerError([doc.problem(e.offset, e.message)],
                                hint="devcontainer.json is JSON with comments: fix the text at "
                                "that line and column") from None
    except RecursionError:
        raise DevcontainerError([doc.problem(0, "nested too deeply")]) from None
    return doc


def dotted(path: Iterable[str | int]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z_$][\w$]*", p):
            out += f".{p}" if out else p
        else:
            out += f"[{json.dumps(p)}]"
    return out


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


# --------------------------------------------------------------------------- the definition


def definition_dir() -> Path:
    """The shipped definition: inside the wheel, or ``devcontainer/`` at the repo top."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "devcontainer_files"
    if packaged.is_dir():
        return packaged
    return here.parent.parent / "devcontainer"


def _read(name: str) -> str:
    if name in TEMPLATE_FILES:
        from mlops_env.paths import templates_dir

        return (templates_dir() / name).read_text(encoding="utf-8")
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


if __name__ == "__main__":  # pragma: no cover - developer entry point
    args = sys.argv[1:]
    if not args or args[0] != "sync" or set(args[1:]) - {"--check"}:
        print("usage: python -m mlops_env.devcontainer sync [--check]", file=sys.stderr)
        sys.exit(2)
    sys.exit(sync(check="--check" in args))
