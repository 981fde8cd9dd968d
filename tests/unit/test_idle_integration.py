"""The idle stop inside the other commands: ``up`` runs the step (by default on ec2, on request
elsewhere), ``doctor NAME`` checks it with the step's own check and ``--fix`` applies the step,
``status``/``list`` show the agent, the price and the running time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_target import BASE_PACKAGES
from test_idle_step import IdleBox

from mlops_env import config, doctor
from mlops_env.cli import idlestop as cli_idle
from mlops_env.doctor.parse import FAIL, OK
from mlops_env.paths import Paths
from mlops_env.pipeline import Events, steps_for
from mlops_env.state import Endpoint, Record
from mlops_env.steps import idlestop as idle_steps
from mlops_env.steps.idlestop import IdleStopStep


def resolve(tmp_path: Path, **flags: Any) -> config.Resolved:
    return config.resolve(flags, config_path=None, default_config=tmp_path / "none.yaml", env={})


# -- up --------------------------------------------------------------------------------------
def test_up_ec2_runs_the_step_by_default(tmp_path: Path) -> None:
    steps = steps_for(resolve(tmp_path), "ec2")
    assert [s.id for s in steps] == ["base", "conda", "docker", "smoke", "idle-stop", "ssh-config"]
    step = steps[4]
    assert isinstance(step, IdleStopStep)
    assert (dict(step.settings.sets), dict(step.settings.defaults)) == ({}, {"window": "3600", "max_uptime": "0"})
    off = next(s for s in steps_for(resolve(tmp_path, idle_stop="off"), "ec2") if isinstance(s, IdleStopStep))
    assert dict(off.settings.sets) == {"window": "0"}


def test_up_docker_and_ssh_only_on_request(tmp_path: Path) -> None:
    for provider in ("docker", "ssh"):
        assert "idle-stop" not in [s.id for s in steps_for(resolve(tmp_path), provider)]
    steps = steps_for(resolve(tmp_path, idle_stop="20m", max_hours="8"), "ssh")
    step = next(s for s in steps if isinstance(s, IdleStopStep))
    assert dict(step.settings.sets) == {"window": "1200", "max_uptime": "28800"}


def test_up_options_validated_and_from_the_config_file(tmp_path: Path) -> None:
    from mlops_env.errors import ConfigError, UsageError

    with pytest.raises(UsageError, match="--idle-stop: expected a duration"):
        resolve(tmp_path, idle_stop="soon")
    with pytest.raises(UsageError, match="--max-hours"):
        resolve(tmp_path, max_hours="-2")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("idle_stop: 45m\nmax-hours: 12\n")
    o = config.resolve({}, config_path=cfg, default_config=cfg, env={})
    assert (o["idle_stop"], o["max_hours"]) == ("45m", 12.0)
    assert o.sources["idle_stop"].startswith("file ")
    cfg.write_text("idle_stop: [1]\n")
    with pytest.raises(ConfigError):
        config.resolve({}, config_path=cfg, default_config=cfg, env={})


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from mlops_env.cli import app

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    runner = CliRunner()
    return lambda *a: runner.invoke(app, list(a))


def test_up_ssh_dry_run_with_idle_stop(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "up", "ssh", "box", "--host", "me@127.0.0.1:2222", "--dry-run", "--idle-stop", "30m",
            "--max-hours", "8")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)["data"]
    assert [s["id"] for s in data["steps"]] == ["base", "conda", "docker", "smoke", "idle-stop", "ssh-config"]
    assert data["options"]["idle_stop"] == {"value": "30m", "source": "flag"}
    assert data["options"]["max_hours"] == {"value": 8.0, "source": "flag"}
    bad = cli("--json", "up", "ssh", "box", "--host", "me@127.0.0.1:2222", "--dry-run", "--idle-stop", "2d")
    assert bad.exit_code == 2 and "--idle-stop" in json.loads(bad.stdout)["errors"][0]["message"]


def test_up_help_names_the_options(cli) -> None:  # type: ignore[no-untyped-def]
    for provider in ("ec2", "ssh", "docker"):
        r = cli("up", provider, "--help")
        assert "--idle-stop" in r.stdout and "--max-hours" in r.stdout


# -- doctor ----------------------------------------------------------------------------------
def _target(box: IdleBox, provider: str) -> doctor.Target:
    ep = Endpoint("fake", 22, box.user, "/k", "mlops-env-ws")
    rec = Record("ws", provider, "mlops-ws", endpoint=ep)
    return doctor.Target("workstation", "workstation ws", rec, ep, "mlops-env doctor ws --fix",
                         connect=lambda: box.transport())


def _paths(tmp_path: Path) -> Paths:
    return Paths(data=tmp_path / "data", config=tmp_path, cache=tmp_path, logs=tmp_path)


def test_doctor_ec2_without_the_agent_then_fix(tmp_path: Path) -> None:
    box = IdleBox(tmp_path / "box", packages=BASE_PACKAGES)
    paths = _paths(tmp_path)
    rep = doctor.diagnose(_target(box, "ec2"), resolve(tmp_path), ["system"], paths, keep_transport=True)
    c = {x.id: x for x in rep.checks}["tools.idle-stop"]
    assert (c.status, c.message, c.step) == (FAIL, "the idle-stop agent is not installed", "idle-stop")
    assert "mlops-env doctor ws --fix" in (c.hint or "") and "idle-stop NAME off" in (c.hint or "")
    assert rep.fixable_steps() == ["idle-stop"] and rep.round_trips == 1
    questions: list[str] = []
    try:
        reports = doctor.repair(rep, paths, Events(), confirm=questions.append)
    finally:
        assert rep.transport is not None
        rep.transport.close()
    assert [(r.id, r.status) for r in reports] == [("idle-stop", "changed")]
    after = doctor.diagnose(_target(box, "ec2"), resolve(tmp_path), ["system"], paths)
    c = {x.id: x for x in after.checks}["tools.idle-stop"]
    assert (c.status, c.message) == (OK, "idle-stop after 1 h idle; checked every 30 s")


def test_doctor_keeps_what_the_user_chose_and_sees_a_stopped_timer(tmp_path: Path) -> None:
    from test_idle_step import apply

    box = IdleBox(tmp_path / "box", packages=BASE_PACKAGES)
    apply(box, "--set", "window=1800")  # `mlops-env idle-stop ws 30m`
    rep = doctor.diagnose(_target(box, "ec2"), resolve(tmp_path), ["system"], _paths(tmp_path))
    assert {x.id: x for x in rep.checks}["tools.idle-stop"].status == OK
    (box.state / "units" / "mlops-env-idle.timer.active").unlink()
    rep = doctor.diagnose(_target(box, "ec2"), resolve(tmp_path), ["system"], _paths(tmp_path))
    c = {x.id: x for x in rep.checks}["tools.idle-stop"]
    assert (c.status, c.message) == (FAIL, "mlops-env-idle.timer is not active")


def test_doctor_docker_box_without_idle_stop_is_fine(tmp_path: Path) -> None:
    box = IdleBox(tmp_path / "box", packages=BASE_PACKAGES)
    rep = doctor.diagnose(_target(box, "docker"), resolve(tmp_path), ["system"], _paths(tmp_path))
    c = {x.id: x for x in rep.checks}["tools.idle-stop"]
    assert (c.status, c.message) == (OK, "idle-stop off")


def test_doctor_host_mode_does_not_ask() -> None:
    ep = Endpoint("fake", 22, "u", "/k", "a")
    t = doctor.Target("host", "x", Record("host", "ssh", "a", endpoint=ep), ep, "fix")
    assert "idle-stop" not in [s.id for s in doctor._steps(t, config.Resolved({"smoke_test": "off"}, {}), ["system"])]


# -- status and list -------------------------------------------------------------------------
def _rec(provider: str = "ec2", **pd: Any) -> Record:
    ep = Endpoint("203.0.113.7", 22, "ubuntu", "/k", "mlops-env-ws")
    return Record("ws", provider, "mlops-ws", endpoint=ep, phase="ready", provider_data=pd)


def test_list_columns() -> None:
    rec = _rec(cost={"hourly_usd": 0.1664, "hourly_source": "fallback table"})
    row = cli_idle.list_columns(rec, {"state": "running", "uptime_seconds": 5400})
    assert row == {"hourly_usd": 0.1664, "uptime_s": 5400}
    assert cli_idle.format_list_columns(row) == ("$0.1664", "90 min")
    stopped = cli_idle.list_columns(rec, {"state": "stopped"})
    assert cli_idle.format_list_columns(stopped) == ("$0.1664", "-")
    assert cli_idle.format_list_columns(cli_idle.list_columns(_rec("docker"), {"state": "running"})) == ("-", "-")


def test_status_lines_with_cost_until_the_stop() -> None:
    rec = _rec(cost={"hourly_usd": 0.2})
    agent = {"installed": True, "enabled": True, "summary": "power off after 60m idle", "idle_for_s": 1800,
             "stop_in_s": 1800, "stop_at": 0.0, "warning_sent": False}
    lines = cli_idle.agent_lines(agent, rec, {"state": "running", "uptime_seconds": 7200})
    assert lines[0].startswith("idle stop power off after 60m idle; idle for 30 min; stops at ")
    assert lines[0].endswith("(in 30 min)")
    assert lines[1].strip() == "about $0.50 compute from the last start to that stop ($0.2000/h)"
    assert cli_idle.agent_lines({"error": "connection refused"}, rec, {}) == ["idle stop unknown: connection refused"]
    assert cli_idle.agent_lines(None, rec, {}) == []


def test_status_does_not_connect_when_there_is_nothing_to_ask(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    assert idle_steps.read_agent(paths, _rec(), {"state": "stopped"}) is None
    assert idle_steps.read_agent(paths, _rec("docker"), {"state": "running"}) is None  # never turned on
    got = idle_steps.read_agent(paths, _rec("docker", idle_stop_agent=True), {"state": "running"})
    assert got is not None and "error" in got  # installed once: asked (unreachable here)
    # an ec2 box that cannot be reached: reported, not raised (no pinned key here)
    got = idle_steps.read_agent(paths, _rec(), {"state": "running"})
    assert got is not None and "no pinned host key" in got["error"]


def test_codespaces_are_left_alone(tmp_path: Path) -> None:
    """A codespace has GitHub's own idle timeout and no systemd: never the agent, even when
    the config file asks for an idle stop (meant for ec2)."""
    from mlops_env.steps import idlestop

    assert not idlestop.wanted("codespace", resolve(tmp_path, idle_stop="30m"))
    ep = Endpoint("fake", 22, "u", "/k", "a")
    t = doctor.Target("workstation", "x", Record("cs", "codespace", "mlops-cs", endpoint=ep), ep, "fix")
    assert "idle-stop" not in [s.id for s in doctor._steps(t, config.Resolved({"smoke_test": "off"}, {}), ["system"])]


def test_idle_stop_command_refuses_a_codespace(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mlops_env.paths import get_paths
    from mlops_env.state import Store

    Store(get_paths()).save(Record("cs", "codespace", "mlops-cs", endpoint=Endpoint("x", 22, "u", "/k", "a")))
    r = cli("--json", "idle-stop", "cs", "30m")
    assert r.exit_code == 2 and json.loads(r.stdout)["errors"][0]["code"] == "unsupported-provider"
