"""The class roster (YAML), validated where it is read; every error names the file and line.

    class: mlops-2026            # tag mlops-env:class=mlops-2026 on everything
    region: eu-west-1
    instance_type: t3.xlarge
    image: course-2026           # a baked image; `auto` or absent = fresh bootstrap
    idle_stop: 30m
    max_hours: 8
    repo: https://github.com/DataTalksClub/mlops-zoomcamp
    instructor_access: true
    students:
      - name: alice
        github: alice-gh
      - name: bob
        public_key: ssh-ed25519 AAAA... bob@laptop

Reference: docs/class.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_env.classroom import workstation_name
from mlops_env.errors import ConfigError, NotFoundError
from mlops_env.state import NAME_RE

TOP_KEYS = ("class", "region", "instance_type", "image", "idle_stop", "max_hours", "repo",
            "instructor_access", "allow_cidr", "students")
STUDENT_KEYS = ("name", "github", "public_key")
GITHUB_USER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
STUDENT_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
HINT = "see docs/class.md for the roster format"


@dataclass(frozen=True)
class Student:
    name: str
    line: int
    github: str | None = None
    public_keys: tuple[str, ...] = ()  # inline keys, normalised "type base64 [comment]"

    def workstation(self, class_name: str) -> str:
        return workstation_name(class_name, self.name)


@dataclass(frozen=True)
class Roster:
    path: Path
    name: str
    students: tuple[Student, ...]
    region: str | None = None
    instance_type: str = "t3.xlarge"
    image: str | None = None  # None: a fresh bootstrap
    idle_stop: Any = None
    max_hours: Any = None
    repo: str | None = None
    instructor_access: bool = True
    allow_cidr: str | None = None  # who may reach SSH; default: the instructor's public IP /32
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    def student(self, name: str) -> Student | None:
        return next((s for s in self.students if s.name == name), None)

    def options(self) -> dict[str, Any]:
        """The ``up ec2`` flags every student's workstation is made with."""
        return {"region": self.region, "instance_type": self.instance_type, "idle_stop": self.idle_stop,
                "max_hours": self.max_hours, "clone": self.repo, "from_image": self.image,
                "allow_cidr": self.allow_cidr}

    def max_hours_value(self) -> float | None:
        """The uptime cap in hours (None: no cap)."""
        return float(self.max_hours) if self.max_hours else None


def _err(path: Path, line: int, msg: str, hint: str = HINT, code: str = "roster-invalid") -> ConfigError:
    return ConfigError(f"{path}:{line}: {msg}", hint=hint, code=code)


def load(path: Path) -> Roster:
    """Read and validate a roster; ``ConfigError`` (exit 2) naming the line on any problem."""
    import yaml

    from mlops_env import config as cfg

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"roster {path} not found", hint="check the path", code="roster-missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read roster {path}: {e}", hint="check its permissions and encoding") from None
    node = cfg.compose_yaml(text, path, hint=HINT, code="roster-invalid")
    if node is None or not isinstance(node, yaml.MappingNode):
        raise _err(path, node.start_mark.line + 1 if node is not None else 1,
                   "expected a mapping with class: and students:")
    top = _mapping(path, node, TOP_KEYS, "roster")
    loader = yaml.SafeLoader("")

    def scalar(key: str) -> tuple[Any, int] | None:
        if key not in top:
            return None
        k, v = top[key]
        if not isinstance(v, yaml.ScalarNode):
            raise _err(path, v.start_mark.line + 1, f"{key}: expected a single value")
        return loader.construct_object(v), v.start_mark.line + 1

    lines = {k: kv[0].start_mark.line + 1 for k, kv in top.items()}
    got = scalar("class")
    if got is None:
        raise _err(path, 1, "missing class: (the class name, e.g. class: mlops-2026)")
    class_name, cline = got
    if not isinstance(class_name, str) or not NAME_RE.match(class_name):
        raise _err(path, cline, f"class: {class_name!r} is not a valid name (a-z, 0-9 and '-', 1-32 characters)")

    kw: dict[str, Any] = {}
    from mlops_env import config as cfg

    for key in ("region", "instance_type", "idle_stop", "max_hours", "allow_cidr"):
        got = scalar(key)
        if got is None or got[0] is None:
            continue
        value, line = got
        try:
            kw[key] = cfg.UP_OPTIONS[key].convert(value)
        except (ValueError, TypeError) as e:
            raise _err(path, line, f"{key}: {e}") from None
    got = scalar("image")
    if got is not None and got[0] is not None:
        value, line = got
        try:
            image = cfg.UP_OPTIONS["from_image"].convert(value)
        except (ValueError, TypeError) as e:
            raise _err(path, line, f"image: {e}") from None
        kw["image"] = image
    got = scalar("repo")
    if got is not None and got[0] is not None:
        value, line = got
        from mlops_env.gitrepo import check_url

        try:
            kw["repo"] = check_url(value)
        except ValueError as e:
            raise _err(path, line, f"repo: {e}") from None
    got = scalar("instructor_access")
    if got is not None:
        value, line = got
        if not isinstance(value, bool):
            raise _err(path, line, f"instructor_access: expected true or false, got {value!r}")
        kw["instructor_access"] = value

    if "students" not in top:
        raise _err(path, 1, "missing students: (a list of name + github or public_key)")
    snode = top["students"][1]
    if not isinstance(snode, yaml.SequenceNode) or not snode.value:
        raise _err(path, snode.start_mark.line + 1, "students: expected a list with at least one student")
    students: list[Student] = []
    seen: dict[str, int] = {}
    for item in snode.value:
        students.append(_student(path, item, loader, class_name, seen))
    return Roster(path=path, name=class_name, students=tuple(students), lines=lines, **kw)


def _mapping(path: Path, node: Any, allowed: tuple[str, ...], what: str) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for knode, vnode in node.value:
        line = knode.start_mark.line + 1
        key = str(knode.value)
        if key not in allowed:
            raise _err(path, line, f"unknown key {key!r} in the {what}",
                       hint=f"known keys: {', '.join(allowed)}; see docs/class.md", code="roster-unknown-key")
        if key in out:
            raise _err(path, line, f"{key!r} appears twice in the {what} (first on line "
                       f"{out[key][0].start_mark.line + 1})", hint="keep one of them")
        out[key] = (knode, vnode)
    return out


def _student(path: Path, item: Any, loader: Any, class_name: str, seen: dict[str, int]) -> Student:
    import yaml

    from mlops_env.ssh.keys import split_public_key

    line = item.start_mark.line + 1
    if not isinstance(item, yaml.MappingNode):
        raise _err(path, line, "a student is a mapping: - name: alice + github: USER or public_key: ...")
    fields = _mapping(path, item, STUDENT_KEYS, "student")
    if "name" not in fields:
        raise _err(path, line, "a student without name:")
    name = loader.construct_object(fields["name"][1])
    nline = fields["name"][1].start_mark.line + 1
    if not isinstance(name, str) or not STUDENT_RE.match(name):
        raise _err(path, nline, f"student name {name!r} is invalid: use a-z, 0-9 and '-' (it becomes part of "
                   "the workstation name and the SSH alias)")
    ws = workstation_name(class_name, name)
    if not NAME_RE.match(ws):
        raise _err(path, nline, f"student name {name!r} is too long: the workstation {ws!r} has {len(ws)} "
                   "characters, at most 32", hint="shorten the student's name or the class name")
    if name in seen:
        raise _err(path, nline, f"student {name!r} is listed twice (first on line {seen[name]})",
                   hint="each student once; give namesakes distinct names (alice-b)")
    seen[name] = nline
    github = None
    if "github" in fields:
        g = loader.construct_object(fields["github"][1])
        gline = fields["github"][1].start_mark.line + 1
        if not isinstance(g, str) or not GITHUB_USER_RE.match(g):
            raise _err(path, gline, f"github: {g!r} is not a GitHub user name")
        github = g
    keys: list[str] = []
    if "public_key" in fields:
        knode = fields["public_key"][1]
        raw = loader.construct_object(knode, deep=True)
        values = raw if isinstance(raw, list) else [raw]
        for i, v in enumerate(values):
            kline = (knode.value[i].start_mark.line + 1) if isinstance(knode, yaml.SequenceNode) else \
                knode.start_mark.line + 1
            if not isinstance(v, str):
                raise _err(path, kline, f"public_key: expected an OpenSSH public key line, got {v!r}")
            try:
                ktype, b64 = split_public_key(v)
            except Exception as e:  # noqa: BLE001 - keys.IntegrityError: the message says why
                raise _err(path, kline, f"public_key of {name}: {getattr(e, 'message', e)}",
                           hint="paste the whole line of the student's id_ed25519.pub (ssh-ed25519 AAAA... comment)") \
                    from None
            if ktype.startswith("ssh-dss"):
                raise _err(path, kline, f"public_key of {name}: DSA keys are refused by OpenSSH",
                           hint="ask the student for an ed25519 key (ssh-keygen -t ed25519)")
            keys.append(f"{ktype} {b64} {name}@roster")
    if github is None and not keys:
        raise _err(path, line, f"student {name!r} has neither github: nor public_key:",
                   hint="add github: THEIR-GITHUB-USER (their keys from github.com/USER.keys) or public_key: ...")
    return Student(name=name, line=line, github=github, public_keys=tuple(keys))
