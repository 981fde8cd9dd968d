"""Every question the CLI asks honours the answer, through a real pseudo-terminal (issue 16,
items 1 and 4): the INSTALLED ``mlops-env`` runs on a pty (stdin, stdout and stderr are a
terminal, as for a user), the test waits for the question, then answers ``n``, Enter or ``y``.

"No" (and Enter, whose default is no) ends with exit 0 and "nothing changed", and nothing is
touched: not an error, and not 130 (which means Ctrl-C). The questions of ``up`` come before
anything is made, so a "no" leaves no container and no record.

Fails on the old code: ``stop`` stopped the container whatever the answer; ``down`` exited 130
on "no"; ``up docker`` created the container before asking for Anaconda's terms (and a "no"
left it running and listed); a first ``up`` that failed left a record behind.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import time
from pathlib import Path
from typing import Any

import hosts
import pytest
from e2ehelp import Env, mlops_env_bin

ANSWERS = {"n": b"n\r", "enter": b"\r", "y": b"y\r"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def run_on_pty(env: Env, args: list[str], question: str, answer: bytes, timeout: float = 240) -> tuple[int, str, str]:
    """Run the CLI on a pseudo-terminal; type ``answer`` once ``question`` shows. Returns
    (exit code, output before the answer, whole output), escape sequences removed."""
    e = env.env
    e.update(TERM="xterm", COLUMNS="100", LINES="30")
    pid, fd = pty.fork()
    if pid == 0:  # the child: default SIGINT (it may be inherited as ignored), then the CLI
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(mlops_env_bin(), [mlops_env_bin(), *args], e)
    buf = b""
    before = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"timed out; output so far:\n{_clean(buf)}")
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                buf += chunk
            if before is None and question in _clean(buf) and _clean(buf).rstrip().endswith("(n):"):
                before = _clean(buf)
                os.write(fd, answer)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert before is not None, f"the question {question!r} was never asked:\n{_clean(buf)}"
    return code, before, _clean(buf)


def _clean(b: bytes) -> str:
    return _ANSI.sub("", b.decode("utf-8", "replace"))


def _fake_workstation(env: Env, client: Any, image: str, name: str) -> Any:
    """A running container with the provider's label and the record `up` would have left (a
    full bootstrap is not needed to ask `stop`/`down` a question)."""
    c = client.containers.run(image, ["sleep", "infinity"], detach=True, name=f"mlops-env-{name}",
                              labels={"mlops-env.name": name, "mlops-env.managed": "1", hosts.TEST_LABEL: "1",
                                      f"{hosts.TEST_LABEL}.pid": str(os.getpid())})
    state = env.root / "state"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    (state / f"{name}.json").write_text(json.dumps({
        "schema": 1, "name": name, "provider": "docker", "alias": f"mlops-{name}", "endpoint": None,
        "phase": "ready", "options": {}, "provider_data": {"container": c.name}, "steps": {}}))
    return c


def _status(client: Any, name: str) -> str | None:
    found = client.containers.list(all=True, filters={"label": f"mlops-env.name={name}"})
    return found[0].status if found else None


@pytest.mark.parametrize("answer", ["n", "enter", "y"])
def test_stop_honours_the_answer(user_env: Env, docker_engine: Any, base_image: str, answer: str) -> None:
    name = f"pty-stop-{answer}-{os.getpid() % 10000}"
    c = _fake_workstation(user_env, docker_engine, base_image, name)
    try:
        code, before, out = run_on_pty(user_env, ["stop", name], f"Stop {name}?", ANSWERS[answer])
        assert code == 0, out
        if answer == "y":
            assert _status(docker_engine, name) == "exited"
            assert "nothing changed" not in out
        else:
            assert _status(docker_engine, name) == "running", out  # untouched
            assert "nothing changed" in out
    finally:
        c.remove(force=True)


@pytest.mark.parametrize("answer", ["n", "enter", "y"])
def test_down_honours_the_answer(user_env: Env, docker_engine: Any, base_image: str, answer: str) -> None:
    name = f"pty-down-{answer}-{os.getpid() % 10000}"
    c = _fake_workstation(user_env, docker_engine, base_image, name)
    record = user_env.root / "state" / f"{name}.json"
    try:
        code, before, out = run_on_pty(user_env, ["down", name], f"Remove {name}?", ANSWERS[answer])
        assert code == 0, out  # the old code: 130 on "no"
        assert "will remove" in before
        if answer == "y":
            assert _status(docker_engine, name) is None and not record.exists()
        else:
            assert _status(docker_engine, name) == "running" and record.exists(), out
            assert "nothing changed" in out
    finally:
        if _status(docker_engine, name) is not None:
            c.remove(force=True)


def _nothing_left(env: Env, client: Any, name: str) -> None:
    assert client.containers.list(all=True, filters={"label": f"mlops-env.name={name}"}) == []
    assert [v for v in client.volumes.list() if v.name == f"mlops-env-{name}-docker"] == []
    assert not (env.root / "state" / f"{name}.json").exists()
    ls = json.loads(env.mlops("--json", "list").stdout)
    assert [w["name"] for w in ls["data"]["workstations"]] == []


TERMS = "Accept them?"


@pytest.mark.parametrize("answer", ["n", "enter"])
def test_up_docker_asks_for_the_terms_before_making_anything(
        user_env: Env, docker_engine: Any, base_image_with_standin: Any, answer: str) -> None:
    name = f"pty-tos-{answer}-{os.getpid() % 10000}"
    try:
        code, before, out = run_on_pty(
            user_env, ["up", "docker", name, "--image", base_image_with_standin.image, "--smoke-test", "sample"],
            TERMS, ANSWERS[answer])
        assert code == 0, out
        assert "terms of service" in before and "nothing changed" in out
        assert "starting…" not in before  # no live display drawn before (or over) the question
        assert "creating container" not in out
        _nothing_left(user_env, docker_engine, name)
    finally:
        user_env.mlops("down", name, "--yes")


def test_up_docker_goes_on_after_yes_and_a_failure_that_made_nothing_leaves_no_record(
        user_env: Env, docker_engine: Any) -> None:
    """"y" is honoured (the run goes on to the image, which cannot be had): exit 3, and since
    nothing was made, no record (the old code listed `missing new`)."""
    name = f"pty-tos-y-{os.getpid() % 10000}"
    code, before, out = run_on_pty(
        user_env, ["up", "docker", name, "--image", "mlops-env-test/no-such-image:1"], TERMS, ANSWERS["y"])
    assert code == 3, out
    assert "cannot be pulled" in out and "nothing changed" not in out
    _nothing_left(user_env, docker_engine, name)


HOST_KEY = "Is this the box's key?"


@pytest.mark.parametrize("answer", ["n", "enter", "y"])
def test_up_ssh_host_key_question(user_env: Env, vm_host: Any, tmp_path: Path, answer: str) -> None:
    """First contact with a box we did not make: "no" keeps nothing (no pin, no record);
    "y" pins the key and goes on (then the box refuses our key: exit 5, and the record stays,
    because `down` must remove the pin)."""
    box = vm_host("alice")  # its authorized key is not mlops-env's: the login after "y" fails
    name = f"pty-ssh-{answer}-{os.getpid() % 10000}"
    code, before, out = run_on_pty(
        user_env, ["up", "ssh", name, "--host", box.host_spec, "--python-dist", "miniforge"],
        HOST_KEY, ANSWERS[answer], timeout=120)
    known_hosts = user_env.root / "ssh" / "known_hosts"
    pinned = known_hosts.exists() and f"mlops-env-{name}" in known_hosts.read_text()
    record = user_env.root / "state" / f"{name}.json"
    assert box.host_key_fingerprint in before
    if answer == "y":
        assert code == 5, out
        assert pinned and record.exists()
        assert user_env.mlops("down", name, "--yes").code == 0
    else:
        assert code == 0, out
        assert "nothing changed" in out
        assert not pinned and not record.exists()


@pytest.mark.parametrize("answer", ["n", "enter", "y"])
def test_devcontainer_init_terms_question(user_env: Env, tmp_path: Path, answer: str) -> None:
    """`devcontainer init` asks for Anaconda's terms on a terminal: "no" (or Enter) writes
    nothing and exits 0 with "nothing changed" (it used to be exit 4, terms-not-accepted);
    "yes" writes the files."""
    repo = tmp_path / "course-repo"
    repo.mkdir()
    code, before, out = run_on_pty(user_env, ["devcontainer", "init", str(repo)],
                                   "Accept them on their behalf?", ANSWERS[answer], timeout=120)
    written = sorted(p.name for p in (repo / ".devcontainer").glob("*")) if (repo / ".devcontainer").exists() else []
    assert code == 0, out
    if answer == "y":
        assert "devcontainer.json" in written, out
    else:
        assert written == [] and "nothing changed" in out, out
