"""Strict JSONC: JSON plus what JSONC adds (``//`` and ``/* */`` comments, trailing commas) and
nothing else, with file, line and column in every error; each value's and key's place in the
text (``Jsonc``), so a file can be edited in place with its comments kept. ``Problem`` and
``DevcontainerError``: what is wrong with a dev container file, and where.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlops_env.errors import ConfigError

JsonPath = tuple[str | int, ...]


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
