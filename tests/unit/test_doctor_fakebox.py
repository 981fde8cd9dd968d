"""doctor end to end on the scripted fake target (tests/unit/fake_target.py): the REAL batched
scripts (facts.sh, docker.sh check, doctor.sh) run through a local transport against fake
system commands, and the real parsers judge. Covers what needs a controllable box: a login
session whose groups predate ``usermod``, a hanging daemon, and ``--fix`` applying the docker
step through the engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fake_target import BASE_PACKAGES, DOCKER_VERSION, FakeBox

from mlops_env import config, doctor
from mlops_env.doctor.parse import FAIL, OK, SKIP, WARN
from mlops_env.paths import Paths
from mlops_env.pipeline import Events
from mlops_env.state import Endpoint, Record
from mlops_env.steps import Facts, StepContext

# The fake docker answers `docker version` in a made-up layout; doctor reads the real one.
# This wrapper (installed as the box's packaged docker) prints the real layout around the
# fake's server version, and hands everything else to the fake.
REAL_LAYOUT = r'''#!/bin/bash
if [ "${1:-}" = version ] && [ $# -eq 1 ]; then
  printf 'Client:\n Version:           %s\n Context:           default\n\n' "__V__"
  out=$('__LIB__/docker-fake' version --format '{{.Server.Version}}' 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
  printf 'Server:\n Engine:\n  Version:          %s\n' "$out"
  exit 0
fi
exec '__LIB__/docker-fake' "$@"
'''


def make_box(tmp_path: Path, name: str = "box", **kw: Any) -> FakeBox:
    box = FakeBox(tmp_path / name, packages=BASE_PACKAGES, **kw)
    (box.lib / "docker").rename(box.lib / "docker-fake")
    (box.lib / "docker").write_text(REAL_LAYOUT.replace("__LIB__", str(box.lib)).replace("__V__", DOCKER_VERSION))
    (box.lib / "docker").chmod(0o755)
    box.fast_sleep()
    return box


def target_for(box: FakeBox, transport: Any = None) -> doctor.Target:
    ep = Endpoint("fake", 22, box.user, "/k", "mlops-env-doctor")
    return doctor.Target("host", f"fake box {box.root.name}", Record("host", "ssh", "mlops-doctor", endpoint=ep), ep,
                         "mlops-env doctor --host x --fix", connect=lambda: transport or box.transport())


def opts(tmp_path: Path) -> Any:
    return config.resolve({"python_dist": "miniforge"}, config_path=None, default_config=tmp_path / "none.yaml",
                          env={})


def paths_of(tmp_path: Path) -> Paths:
    return Paths(data=tmp_path / "data", config=tmp_path, cache=tmp_path, logs=tmp_path)


def checks(report: doctor.Report) -> dict[str, Any]:
    return {c.id: c for c in report.checks}


def test_docker_ready_on_the_fake_box(tmp_path: Path) -> None:
    box = make_box(tmp_path)
    box.preinstall_docker()
    box.add_group("docker", box.user)
    rep = doctor.diagnose(target_for(box), opts(tmp_path), ["docker"], paths_of(tmp_path))
    c = checks(rep)
    assert c["docker.engine"].message == f"Docker Engine {DOCKER_VERSION}"
    assert c["docker.daemon"].status == OK and c["docker.access"].status == OK
    assert c["docker.compose"].message.startswith("Compose ")
    # docker.sh's own check wants a container run as the user once: the step's verdict stands
    assert (c["docker.run"].status, c["docker.run"].step) == (FAIL, "docker")
    assert rep.round_trips == 1 and rep.fixable_steps() == ["docker"]


def test_user_added_to_the_group_but_the_session_is_older(tmp_path: Path) -> None:
    """The old-session case on a box we control: the login session's groups were fixed before
    `usermod -aG docker` (FAKEBOX_SESSION_GROUPS), the group database has the user."""
    box = make_box(tmp_path)
    box.preinstall_docker()
    box.add_group("docker", box.user)
    old = box.transport(session_groups=box.user)  # logged in before joining
    target = target_for(box, old)
    ctx = StepContext(transport=old, facts=Facts({}), options=opts(tmp_path), record=target.record,
                      paths=paths_of(tmp_path), endpoint=target.endpoint)
    steps = doctor._steps(target, ctx.options, ["docker"])
    got, step_results = doctor.check_box(ctx, steps, ["docker"], target=target, fresh_session=False)
    a = {c.id: c for c in got}["docker.access"]
    assert a.status == WARN and "joined the docker group after this login session started" in a.message
    assert "log out and back in" in a.hint
    assert not step_results["docker"].ok  # docker.sh agrees: "cannot reach ... in this session"
    # A new login (what doctor makes for a remote box) has the group
    rep = doctor.diagnose(target_for(box), opts(tmp_path), ["docker"], paths_of(tmp_path))
    assert checks(rep)["docker.access"].status == OK


def test_not_in_group_and_daemon_stopped(tmp_path: Path) -> None:
    box = make_box(tmp_path)
    box.preinstall_docker(group=False, running=False)
    c = checks(doctor.diagnose(target_for(box), opts(tmp_path), ["docker"], paths_of(tmp_path)))
    assert (c["docker.daemon"].status, c["docker.daemon"].step) == (FAIL, "docker")
    assert c["docker.access"].status == SKIP
    box.set("dockerd-running")
    c = checks(doctor.diagnose(target_for(box), opts(tmp_path), ["docker"], paths_of(tmp_path)))
    assert (c["docker.access"].status, c["docker.access"].step) == (FAIL, "docker")
    assert f"sudo usermod -aG docker {box.user}" in c["docker.access"].hint


def test_a_hanging_daemon_is_reported_not_waited_on(tmp_path: Path) -> None:
    box = make_box(tmp_path)
    box.preinstall_docker()
    (box.bin / "docker").write_text("#!/bin/bash\n/bin/sleep 60\n")  # the CLI hangs on the socket
    t = box.transport()
    t.env["MLOPS_ENV_PROBE_TIMEOUT"] = "1"
    t0 = time.monotonic()
    rep = doctor.diagnose(target_for(box, t), opts(tmp_path), ["docker"], paths_of(tmp_path), timeout=3)
    took = time.monotonic() - t0
    c = checks(rep)
    assert c["docker.daemon"].status == FAIL and "does not answer" in c["docker.daemon"].message
    assert took < 10, took


def test_fix_applies_the_docker_step_then_checks_again(tmp_path: Path) -> None:
    box = make_box(tmp_path)
    paths = paths_of(tmp_path)
    rep = doctor.diagnose(target_for(box), opts(tmp_path), ["docker"], paths, keep_transport=True)
    assert checks(rep)["docker.engine"].status == FAIL and rep.fixable_steps() == ["docker"]
    questions: list[str] = []
    try:
        reports = doctor.repair(rep, paths, Events(), confirm=questions.append)
    finally:
        assert rep.transport is not None
        rep.transport.close()
    assert [(r.id, r.status) for r in reports] == [("docker", "changed")], reports
    assert "docker: install docker.io and compose from the distribution" in questions[0]
    assert box.installed("docker.io") and "docker" in box.groups(box.user)
    after = doctor.diagnose(target_for(box), opts(tmp_path), ["docker"], paths)
    assert [c.id for c in after.problems] == []
    assert checks(after)["docker.run"].status == OK


def test_fix_refused_answer_changes_nothing(tmp_path: Path) -> None:
    box = make_box(tmp_path)
    paths = paths_of(tmp_path)
    rep = doctor.diagnose(target_for(box), opts(tmp_path), ["docker"], paths, keep_transport=True)
    mark = box.mark()

    def no(q: str) -> None:
        raise doctor.Declined()

    with pytest.raises(doctor.Declined):
        doctor.repair(rep, paths, Events(), confirm=no)
    assert rep.transport is not None
    rep.transport.close()
    assert box.mutating_calls(since=mark[0]) == [] and box.changes(since=mark[1]) == []


def test_fix_refuses_an_unsupported_os_before_any_change(tmp_path: Path) -> None:
    from mlops_env.errors import UnsupportedError

    box = make_box(tmp_path, os_release="fedora-40")
    paths = paths_of(tmp_path)
    rep = doctor.diagnose(target_for(box), opts(tmp_path), ["system", "docker"], paths, keep_transport=True)
    assert checks(rep)["system.os"].status == FAIL and rep.fixable_steps() == ["docker"]
    mark = box.mark()
    with pytest.raises(UnsupportedError) as e:
        doctor.repair(rep, paths, Events(), confirm=lambda q: None)
    assert rep.transport is not None
    rep.transport.close()
    assert e.value.code == "unsupported-os" and box.mutating_calls(since=mark[0]) == []


def test_conda_version_from_its_package_record_without_starting_conda(tmp_path: Path) -> None:
    import subprocess

    from mlops_env.doctor import parse
    from mlops_env.paths import templates_dir

    prefix = tmp_path / "anaconda3"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "conda-24.5.0-py312h06a4308_0.json").write_text("{}")
    (prefix / "bin").mkdir()
    (prefix / "bin" / "conda").write_text("#!/bin/sh\necho started >&2\nexit 99\n")
    (prefix / "bin" / "conda").chmod(0o755)
    p = subprocess.run(["bash", str(templates_dir() / "doctor.sh"), "python", "--prefix", str(prefix)],
                       capture_output=True, text=True, check=True)
    conda = parse.sections(p.stdout)["conda"]
    assert (conda.rc, conda.text) == (0, "conda 24.5.0")
    (prefix / "conda-meta" / "conda-24.5.0-py312h06a4308_0.json").unlink()  # the STAND-IN has none
    p = subprocess.run(["bash", str(templates_dir() / "doctor.sh"), "python", "--prefix", str(prefix)],
                       capture_output=True, text=True, check=True)
    assert parse.sections(p.stdout)["conda"].rc == 99  # then it asks conda itself
