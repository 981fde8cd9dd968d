"""Strict JSONC (mlops_env.devcontainer.parse_jsonc): JSON plus comments and trailing commas,
nothing else; every error names the file, line and column."""

from __future__ import annotations

import json

import pytest

from mlops_env.devcontainer import DevcontainerError, parse_jsonc


def test_comments_and_trailing_commas_are_jsonc() -> None:
    text = (
        "\ufeff// a line comment\n"
        "/* a block\n   comment */ {\n"
        '  "a": 1, // after a value\n'
        '  "b": [1, 2, /* inside */ 3,],\n'
        '  "c": {"d": "x // not a comment", "e": "/* nor this */",},\n'
        "}\n// the end"
    )
    doc = parse_jsonc(text, "f.json")
    assert doc.value == {"a": 1, "b": [1, 2, 3], "c": {"d": "x // not a comment", "e": "/* nor this */"}}
    # in the array, in the inner object, and the outer object's last member
    assert [doc.line_col(c) for c in doc.trailing_commas] == [(5, 29), (6, 57), (6, 59)]


@pytest.mark.parametrize("text", [
    '{"s": "\\u00e9\\n\\t\\"\\\\\\/", "n": -1.5e3, "z": 0, "t": true, "f": false, "x": null}',
    '[]', '{}', '"just a string"', '{"nested": {"deep": [[{"k": []}]]}}',
])
def test_plain_json_parses_like_the_json_module(text: str) -> None:
    assert parse_jsonc(text).value == json.loads(text)


def test_positions_of_values_and_keys() -> None:
    doc = parse_jsonc('{\n  "build": {\n    "args": {"A": "b"}\n  },\n  "ports": [8888, 5000]\n}')
    assert doc.line_col(doc.values[("build", "args", "A")][0]) == (3, 19)
    assert doc.line_col(doc.keys[("build", "args")][0]) == (3, 5)
    assert doc.line_col(doc.values[("ports", 1)][0]) == (5, 19)


@pytest.mark.parametrize(("text", "line", "col", "words"), [
    ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "comma is missing"),
    ("{\n  'a': 1\n}", 2, 3, "double quotes"),
    ('{\n  "a": \'x\'\n}', 2, 8, "double quotes"),
    ("{\n  a: 1\n}", 2, 3, "double quotes"),
    ('{"a": 1,\n "a": 2}', 2, 2, "duplicate property 'a'"),
    ('{"a": tru}', 1, 7, "unexpected word 'tru'"),
    ('{"a": NaN}', 1, 7, "unexpected word 'NaN'"),
    ('{"a": 01}', 1, 7, "leading zeros"),
    ('{"a": 1.}', 1, 7, "invalid number"),
    ('{"a": +1}', 1, 7, "expected a value"),
    ('{"a": "C:\\Users"}', 1, 10, "invalid escape"),
    ('{"a": "line\nbreak"}', 1, 12, "line break inside a string"),
    ('{"a": "open', 1, 7, "unterminated string"),
    ('{"a": 1 /* open', 1, 9, "unterminated /* comment */"),
    ('{"a": 1}\n}', 2, 1, "after the end of the document"),
    ('{"a": [1 2]}', 1, 10, "expected ',' or ']'"),
    ('{"a" 1}', 1, 6, "expected ':'"),
    ('{,}', 1, 2, "expected a property name"),
    ("", 1, 1, "empty file"),
    ("  // only a comment\n", 2, 1, "empty file"),
    ('{"a": [1,,2]}', 1, 10, "expected a value"),
])
def test_errors_name_file_line_and_column(text: str, line: int, col: int, words: str) -> None:
    with pytest.raises(DevcontainerError) as ei:
        parse_jsonc(text, "x/devcontainer.json")
    (p,) = ei.value.problems
    assert (p.file, p.line, p.col, p.kind) == ("x/devcontainer.json", line, col, "syntax"), str(p)
    assert words in p.message
    assert str(p).startswith(f"x/devcontainer.json:{line}:{col}: ")
    assert ei.value.exit_code == 2 and ei.value.code == "devcontainer-invalid"


def test_columns_count_characters_not_bytes() -> None:
    with pytest.raises(DevcontainerError) as ei:
        parse_jsonc('{"é": "ü" "x": 1}')
    assert (ei.value.problems[0].line, ei.value.problems[0].col) == (1, 11)
