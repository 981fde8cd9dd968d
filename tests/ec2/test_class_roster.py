"""The class roster: schema errors name the line; students' keys inline or from a fake GitHub
``USER.keys`` server (a real HTTP server on loopback, through httpclient's rules)."""

from __future__ import annotations

from pathlib import Path

import pytest
from keyserver import key_server

from mlops_env.classroom import ghkeys
from mlops_env.classroom.roster import load
from mlops_env.errors import ConfigError, MlopsError, NotFoundError
from mlops_env.ssh.keys import generate_host_keypair


def pub(comment: str = "x") -> str:
    return generate_host_keypair(comment).public_line


KEY = pub("bob@laptop")
GOOD = f"""\
class: mlops-2026
region: eu-west-1
instance_type: t3.large
idle_stop: 30m
max_hours: 8
repo: https://github.com/DataTalksClub/mlops-zoomcamp
instructor_access: false
students:
  - name: alice
    github: alice-gh
  - name: bob
    public_key: {KEY}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "roster.yaml"
    p.write_text(text)
    return p


def test_good_roster(tmp_path: Path) -> None:
    r = load(write(tmp_path, GOOD))
    assert r.name == "mlops-2026" and r.region == "eu-west-1" and r.instance_type == "t3.large"
    assert r.idle_stop == "30m" and r.instructor_access is False
    assert r.repo == "https://github.com/DataTalksClub/mlops-zoomcamp"
    assert [s.name for s in r.students] == ["alice", "bob"]
    assert r.students[0].github == "alice-gh" and r.students[0].public_keys == ()
    assert r.students[1].public_keys[0].split()[:2] == KEY.split()[:2]
    assert r.students[1].workstation(r.name) == "mlops-2026-bob"
    assert r.options()["clone"] == r.repo and r.options()["from_image"] is None


@pytest.mark.parametrize("text,line,words", [
    ("class: c\nstudents:\n  - name: a\n    github: a\n    shoe: 9\n", 5, "unknown key 'shoe'"),
    ("class: c\ncolour: red\nstudents: []\n", 2, "unknown key 'colour'"),
    ("class: c\nstudents: []\n", 2, "at least one student"),
    ("class: c\n", 1, "missing students"),
    ("students:\n  - name: a\n    github: a\n", 1, "missing class"),
    ("class: C_2026\nstudents:\n  - name: a\n    github: a\n", 1, "not a valid name"),
    ("class: c\nstudents:\n  - name: a\n    github: a\n  - name: a\n    github: b\n", 5, "listed twice (first on line 3)"),
    ("class: c\nstudents:\n  - name: Alice\n    github: a\n", 3, "'Alice' is invalid"),
    ("class: c\nstudents:\n  - name: a\n", 3, "neither github: nor public_key:"),
    ("class: c\nstudents:\n  - name: a\n    public_key: ssh-ed25519 AAAAnotakey x\n", 4, "not an OpenSSH public key"),
    ("class: c\nstudents:\n  - name: a\n    github: -bad-\n", 4, "not a GitHub user name"),
    ("class: c\nregion: mars\nstudents:\n  - name: a\n    github: a\n", 2, "region"),
    ("class: c\nrepo: --upload-pack=x\nstudents:\n  - name: a\n    github: a\n", 2, "repo"),
    ("class: c\ninstructor_access: maybe\nstudents:\n  - name: a\n    github: a\n", 2, "true or false"),
    ("class: c\nclass: d\nstudents:\n  - name: a\n    github: a\n", 2, "appears twice"),
    ("class: a-very-long-class-name-2026\nstudents:\n  - name: bartholomew\n    github: b\n", 3, "too long"),
    ("class: c\nstudents:\n  - name: a\n    github: [a\n", 5, "malformed YAML"),
])
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load(p)
    msg = ei.value.message
    assert msg.startswith(f"{p}:{line}"), msg
    assert words in msg
    assert ei.value.hint


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load(tmp_path / "nope.yaml")


def test_keys_from_fake_github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k1, k2 = pub("a1"), pub("a2")
    r = load(write(tmp_path, GOOD))
    with key_server({"alice-gh": f"{k1}\n{k2}\n\ngarbage line\n"}) as (url, seen):
        monkeypatch.setenv(ghkeys.ENV_BASE, url)
        keys = ghkeys.resolve_all(r)
    assert seen == ["/alice-gh.keys"]
    assert [k.split()[:2] for k in keys["alice"]] == [k1.split()[:2], k2.split()[:2]]
    assert keys["alice"][0].endswith("alice-gh@github")
    assert keys["bob"][0].split()[:2] == KEY.split()[:2]


def test_unknown_github_user_and_user_without_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, GOOD)
    r = load(p)
    with key_server({}) as (url, _):
        monkeypatch.setenv(ghkeys.ENV_BASE, url)
        with pytest.raises(ConfigError) as ei:
            ghkeys.resolve_all(r)
    assert ei.value.message.startswith(f"{p}:9: GitHub user 'alice-gh' does not exist")
    with key_server({"alice-gh": ""}) as (url, _):
        monkeypatch.setenv(ghkeys.ENV_BASE, url)
        with pytest.raises(ConfigError) as ei:
            ghkeys.resolve_all(r)
    assert "has no SSH keys" in ei.value.message


def test_httpclient_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ghkeys.ENV_BASE, "http://github.example.org")
    with pytest.raises(MlopsError) as ei:
        ghkeys.base_url()
    assert "plain http" in ei.value.message
    with key_server({}, redirect="http://127.0.0.2:9/x.keys") as (url, _):
        monkeypatch.setenv(ghkeys.ENV_BASE, url)
        with pytest.raises(MlopsError) as ei:
            ghkeys.fetch("alice", where="r:1")
    assert "redirected to another site" in ei.value.message
