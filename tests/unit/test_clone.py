"""``up --clone URL [--clone-dir DIR]``: URL and folder validation, and templates/clone.sh run
for real (real git) on the scripted fake box: clone once, never touch an existing folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fake_target import BASE_PACKAGES, FakeBox, error, summary

from mlops_env.config import Resolved
from mlops_env.gitrepo import check_dir, check_url, default_dir
from mlops_env.pipeline import code_command, steps_for
from mlops_env.state import Endpoint, Record
from mlops_env.steps.clone import CloneStep, clone_dir


@pytest.mark.parametrize("url", [
    "https://github.com/DataTalksClub/mlops-zoomcamp",
    "https://github.com/DataTalksClub/mlops-zoomcamp.git",
    "ssh://git@github.com/DataTalksClub/mlops-zoomcamp.git",
    "ssh://git@example.org:2222/x/y",
    "git://127.0.0.1:9418/course.git",
    "git@github.com:DataTalksClub/mlops-zoomcamp.git",
])
def test_accepted_urls(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize("url", [
    "-uhttps://evil", "--upload-pack=touch /tmp/x", "ext::sh -c touch% /tmp/pwned", "fd::3",
    "file:///etc", "/srv/repo.git", "http://github.com/x/y", "https://github.com/x y",
    "https://github.com/x\ny", "git@host:-oProxyCommand=x", "", "ftp://host/x", "https://-host/x",
])
def test_refused_urls(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url)


@pytest.mark.parametrize("d,ok", [("course", "course"), ("src/course", "src/course"), ("~/course/", "course"),
                                  ("../x", None), ("/etc", None), ("-x", None), ("a/../b", None), ("a b", None)])
def test_clone_dir(d: str, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(ValueError):
            check_dir(d)
    else:
        assert check_dir(d) == ok


def test_default_dir() -> None:
    assert default_dir("https://github.com/DataTalksClub/mlops-zoomcamp.git") == "mlops-zoomcamp"
    assert default_dir("git@github.com:a/b") == "b"


def _opts(**kw: object) -> Resolved:
    base = {"smoke_test": "off", "serve": False, "idle_stop": None, "max_hours": None}
    base.update(kw)
    return Resolved(values=base, sources={k: "flag" for k in base})


def test_step_only_with_clone() -> None:
    assert "clone" not in [s.id for s in steps_for(_opts(clone=None))]
    steps = [s for s in steps_for(_opts(clone="https://h.example/a/course.git")) if s.id == "clone"]
    assert len(steps) == 1 and steps[0].dir == "course"
    assert [s.dir for s in steps_for(_opts(clone="https://h.example/a/b", clone_dir="work/b"))
            if s.id == "clone"] == ["work/b"]


def test_step_refuses_bad_values_even_if_not_validated_before() -> None:
    with pytest.raises(ValueError):
        CloneStep("-oProxyCommand=x", "course")
    with pytest.raises(ValueError):
        CloneStep("https://h.example/a/b", "../b")


def test_code_command_opens_the_clone() -> None:
    rec = Record(name="w", provider="docker", alias="mlops-w",
                 endpoint=Endpoint(host="127.0.0.1", port=2222, user="mlops", identity_file="/k", host_key_alias="a"))
    rec.provider_data["facts"] = {"home": "/home/mlops"}
    assert code_command(rec) == "code --remote ssh-remote+mlops-w /home/mlops"
    rec.options = {"clone": "https://h.example/a/course.git"}
    assert clone_dir(rec.options) == "course"
    assert code_command(rec) == "code --remote ssh-remote+mlops-w /home/mlops/course"
    rec.options = {"clone": "https://h.example/a/course.git", "clone_dir": "src/c"}
    assert code_command(rec) == "code --remote ssh-remote+mlops-w /home/mlops/src/c"


# -- templates/clone.sh on the fake box (real git, a local bare repository as the server) -------
@pytest.fixture
def origin(tmp_path: Path) -> str:
    work = tmp_path / "src"
    work.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    (work / "README.md").write_text("course\n")
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "."], ["git", "commit", "-qm", "one"]):
        subprocess.run(cmd, cwd=work, env=env, check=True)  # noqa: S603
    bare = tmp_path / "course.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], env=env, check=True)  # noqa: S603,S607
    return str(bare)


@pytest.fixture
def box(tmp_path: Path) -> FakeBox:
    return FakeBox(tmp_path / "box", packages=BASE_PACKAGES)


def test_clone_once_then_unchanged(box: FakeBox, origin: str) -> None:
    r = box.run("clone.sh", "check", "--url", origin, "--dir", "course")
    assert r.exit_code == 1 and summary(r) == "~/course is absent"
    r = box.run("clone.sh", "apply", "--url", origin, "--dir", "course")
    assert r.exit_code == 0, r
    assert (box.home / "course" / "README.md").read_text() == "course\n"
    assert not [p for p in box.home.iterdir() if p.name.startswith(".mlops-clone")]  # temp folder gone
    r = box.run("clone.sh", "check", "--url", origin, "--dir", "course")
    assert r.exit_code == 0 and summary(r) == f"~/course is a checkout of {origin}"
    # a student's work is never touched by a second apply
    (box.home / "course" / "README.md").write_text("my notes\n")
    (box.home / "course" / "new.txt").write_text("mine\n")
    r = box.run("clone.sh", "apply", "--url", origin, "--dir", "course")
    assert r.exit_code == 0
    assert (box.home / "course" / "README.md").read_text() == "my notes\n"
    assert (box.home / "course" / "new.txt").exists()


def test_existing_checkout_of_another_remote_is_kept(box: FakeBox, origin: str, tmp_path: Path) -> None:
    subprocess.run(["git", "clone", "-q", origin, str(box.home / "course")], check=True,  # noqa: S603,S607
                   env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    subprocess.run(["git", "-C", str(box.home / "course"), "remote", "set-url", "origin",  # noqa: S603,S607
                    "https://elsewhere.example/x.git"], check=True)
    r = box.run("clone.sh", "apply", "--url", origin, "--dir", "course")
    assert r.exit_code == 0
    assert "left as it is" in summary(r)


def test_folder_that_is_not_a_checkout_is_refused_and_kept(box: FakeBox, origin: str) -> None:
    (box.home / "course").mkdir()
    (box.home / "course" / "data.csv").write_text("1,2\n")
    r = box.run("clone.sh", "check", "--url", origin, "--dir", "course")
    assert r.exit_code == 1 and "not a git checkout" in summary(r)
    r = box.run("clone.sh", "apply", "--url", origin, "--dir", "course")
    assert r.exit_code == 4 and "not a git checkout" in (error(r) or "")
    assert (box.home / "course" / "data.csv").read_text() == "1,2\n"


def test_failed_clone_leaves_nothing(box: FakeBox, tmp_path: Path) -> None:
    r = box.run("clone.sh", "apply", "--url", str(tmp_path / "no-such.git"), "--dir", "course")
    assert r.exit_code == 1 and "git clone" in (error(r) or "")
    assert not (box.home / "course").exists()
    assert [p.name for p in box.home.iterdir() if p.name.startswith(".mlops-clone")] == []


def test_script_refuses_option_like_url_and_escaping_dir(box: FakeBox) -> None:
    assert box.run("clone.sh", "apply", "--url", "--upload-pack=touch /tmp/x", "--dir", "c").exit_code == 2
    assert box.run("clone.sh", "apply", "--url", "https://h/x", "--dir", "../c").exit_code == 2
    assert box.run("clone.sh", "apply", "--url", "https://h/x", "--dir", "/etc").exit_code == 2
