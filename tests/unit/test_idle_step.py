"""The idle-stop step: ``templates/idle-stop.sh`` run for real on a scripted fake target
(``FakeBox``, as in test_step_scripts.py) with ``/`` stood in by ``MLOPS_ENV_IDLE_ROOT`` and a
fake ``systemctl`` that knows the agent's units; the Python step through the real engine; the
option parsing; ``mlops-env idle-stop`` refusals (the command over SSH is in tests/e2e)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from fake_target import FakeBox, FakeBoxTransport, error, explain, summary

from mlops_env import engine
from mlops_env.config import Resolved
from mlops_env.errors import IntegrityError, UnsupportedError
from mlops_env.state import Endpoint, Record
from mlops_env.steps import Facts, StepContext, template
from mlops_env.steps import idlestop as ist

SYSTEMCTL = r'''#!/bin/bash
# fake systemctl for the idle-stop agent's units; anything else goes to the fake box's own
words=(); now=0
for a in "$@"; do case "$a" in --quiet|-q|--no-block) ;; --now) now=1 ;; *) words+=("$a") ;; esac; done
verb=${words[0]:-}; unit=${words[1]:-}
case "$verb:$unit" in daemon-reload:*|*:mlops-env-idle.*) ;; *) exec '__ROOT__/lib/systemctl-box' "$@" ;; esac
. '__ROOT__/lib/common.sh'
fb_log systemctl "$@"
U="$S/units"; mkdir -p "$U"
root_only() { [ "$FB_UID" = 0 ] || { echo "Failed to $verb unit: Access denied" >&2; exit 1; }; }
exists() { [ -f "$MLOPS_ENV_IDLE_ROOT/etc/systemd/system/$unit" ] || { echo "Unit $unit does not exist." >&2; exit 5; }; }
on() { [ -f "$U/$unit.$1" ] || { touch "$U/$unit.$1"; fb_change "$unit $2"; }; }
off() { [ ! -f "$U/$unit.$1" ] || { rm -f "$U/$unit.$1"; fb_change "$unit $2"; }; }
case "$verb" in
  daemon-reload) root_only; fb_change "systemd daemon-reload" ;;
  is-enabled) [ -f "$U/$unit.enabled" ] ;;
  is-active) [ -f "$U/$unit.active" ] ;;
  enable) root_only; exists; on enabled enabled; [ "$now" = 0 ] || on active started ;;
  start) root_only; exists; on active started ;;
  restart) root_only; exists; touch "$U/$unit.active"; fb_change "$unit restarted" ;;
  disable) root_only; off enabled disabled; [ "$now" = 0 ] || off active stopped ;;
  stop) root_only; off active stopped ;;
  *) echo "systemctl (idle fake): unsupported: $*" >&2; exit 1 ;;
esac
'''


class IdleBox(FakeBox):
    """A fake box whose / (for the idle-stop files) is ``root/fs``."""

    def __init__(self, root: Path, *, systemd: bool = True, **kw: object) -> None:
        super().__init__(root, **kw)  # type: ignore[arg-type]
        self.fs = root / "fs"
        (self.fs / "proc").mkdir(parents=True)
        if systemd:
            (self.fs / "run/systemd/system").mkdir(parents=True)
        (self.lib / "systemctl-box").write_bytes((self.bin / "systemctl").read_bytes())
        (self.lib / "systemctl-box").chmod(0o755)
        self._write(self.bin / "systemctl", SYSTEMCTL, {"__ROOT__": str(root)})

    def env(self) -> dict[str, str]:
        return {**super().env(), "MLOPS_ENV_IDLE_ROOT": str(self.fs)}

    def units(self) -> set[str]:
        d = self.state / "units"
        return {p.name for p in d.iterdir()} if d.is_dir() else set()

    @property
    def agent(self) -> Path:
        return self.fs / "usr/local/lib/mlops-env/idle-agent"

    @property
    def conf(self) -> Path:
        return self.fs / "etc/mlops-env/idle-stop.conf"


SHA = ist.agent_sha256()
B64 = base64.b64encode(ist.agent_bytes()).decode()


def check(box: IdleBox, *args: str):  # type: ignore[no-untyped-def]
    return box.run("idle-stop.sh", "check", "--agent-sha256", SHA, *args)


def apply(box: IdleBox, *args: str, sha: str = SHA, b64: str = B64):  # type: ignore[no-untyped-def]
    return box.run("idle-stop.sh", "apply", "--agent-sha256", sha, "--agent-b64", b64, *args, sudo=True)


ON = ("--default", "window=3600", "--default", "max_uptime=0")
OFF = ("--default", "window=0", "--default", "max_uptime=0")


@pytest.fixture
def box(tmp_path: Path) -> IdleBox:
    return IdleBox(tmp_path / "box")


def test_off_by_default_on_a_fresh_box_installs_nothing(box: IdleBox) -> None:
    r = check(box, *OFF)
    assert r.exit_code == 0 and summary(r) == "idle-stop off"
    assert not box.agent.exists()


def test_fresh_box_apply_then_check_then_second_apply_changes_nothing(box: IdleBox) -> None:
    r = check(box, *ON)
    assert r.exit_code == 1 and summary(r) == "the idle-stop agent is not installed"
    r = apply(box, *ON)
    assert r.exit_code == 0, explain(r)
    assert summary(r) == "idle-stop after 1 h idle; checked every 30 s"
    assert hashlib.sha256(box.agent.read_bytes()).hexdigest() == SHA
    assert oct(box.agent.stat().st_mode & 0o777) == "0o755"
    assert "window=3600\n" in box.conf.read_text()
    timer = (box.fs / "etc/systemd/system/mlops-env-idle.timer").read_text()
    assert "OnUnitActiveSec=30\n" in timer and "AccuracySec=1s" in timer
    service = (box.fs / "etc/systemd/system/mlops-env-idle.service").read_text()
    assert "ExecStart=/usr/local/lib/mlops-env/idle-agent tick" in service and "Type=oneshot" in service
    assert box.units() == {"mlops-env-idle.timer.enabled", "mlops-env-idle.timer.active"}
    assert any(c.name == "sudo" for c in box.calls())  # apply ran as root through sudo -n
    r = check(box, *ON)
    assert r.exit_code == 0 and summary(r) == "idle-stop after 1 h idle; checked every 30 s", explain(r)
    _, changes_at = box.mark()
    assert apply(box, *ON).exit_code == 0
    assert box.changes(since=changes_at) == []


def test_a_default_never_overrides_the_users_choice(box: IdleBox) -> None:
    assert apply(box, "--set", "window=1800", "--set", "max_uptime=28800").exit_code == 0
    r = check(box, *ON)  # a later `up` with default options
    assert r.exit_code == 0, explain(r)
    assert summary(r) == "idle-stop after 30 min idle, power-off after 8 h uptime; checked every 30 s"


def test_changed_window_is_reported_and_applied(box: IdleBox) -> None:
    apply(box, *ON)
    r = check(box, "--set", "window=600")
    assert r.exit_code == 1 and summary(r) == "settings differ (window 3600 -> 600)"
    assert apply(box, "--set", "window=600").exit_code == 0
    assert check(box, "--set", "window=600").exit_code == 0


def test_short_window_restarts_the_timer_with_a_new_cadence(box: IdleBox) -> None:
    apply(box, *ON)
    _, changes_at = box.mark()
    r = apply(box, "--set", "window=10")
    assert summary(r) == "idle-stop after 10 s idle; checked every 1 s"
    assert "OnUnitActiveSec=1\n" in (box.fs / "etc/systemd/system/mlops-env-idle.timer").read_text()
    assert box.changes(since=changes_at) == ["systemd daemon-reload", "mlops-env-idle.timer restarted"]


def test_off_disables_the_timer_and_keeps_the_files(box: IdleBox) -> None:
    apply(box, *ON)
    state = box.fs / "var/lib/mlops-env/idle-stop/state"
    state.parent.mkdir(parents=True)
    state.write_text("deadline=123\n")
    off = ("--set", "window=0", "--set", "max_uptime=0")
    r = check(box, *off)
    assert r.exit_code == 1
    assert summary(r) == "settings differ (window 3600 -> 0); mlops-env-idle.timer is still enabled or active"
    r = apply(box, *off)
    assert r.exit_code == 0 and summary(r) == "idle-stop off (timer disabled)"
    assert box.units() == set() and box.agent.exists() and not state.exists()
    r = check(box, *off)
    assert r.exit_code == 0 and summary(r) == "idle-stop off"
    assert check(box, *OFF).exit_code == 0  # and `up` with default options keeps it off


def test_cap_only(box: IdleBox) -> None:
    r = apply(box, "--set", "window=0", "--set", "max_uptime=28800")
    assert summary(r) == "no idle stop, power-off after 8 h uptime; checked every 30 s"
    assert "mlops-env-idle.timer.active" in box.units()


def test_rules_off_are_named(box: IdleBox) -> None:
    r = apply(box, *ON, "--set", "load=off", "--set", "containers=off")
    assert summary(r) == "idle-stop after 1 h idle (rules off: load,containers); checked every 30 s"


def test_outdated_agent_is_replaced(box: IdleBox) -> None:
    apply(box, *ON)
    box.agent.write_text(box.agent.read_text() + "# an older version\n")
    r = check(box, *ON)
    assert r.exit_code == 1 and summary(r) == "the idle-stop agent is out of date"
    assert apply(box, *ON).exit_code == 0
    assert check(box, *ON).exit_code == 0


def test_timer_stopped_by_hand_is_reported(box: IdleBox) -> None:
    apply(box, *ON)
    (box.state / "units" / "mlops-env-idle.timer.active").unlink()
    r = check(box, *ON)
    assert r.exit_code == 1 and summary(r) == "mlops-env-idle.timer is not active"


def test_agent_that_did_not_arrive_intact_is_refused(box: IdleBox) -> None:
    r = apply(box, *ON, sha="0" * 64)
    assert r.exit_code == 8 and error(r) == "the agent did not arrive intact (sha256 mismatch)"
    r = apply(box, *ON, b64="!!!not base64")
    assert r.exit_code == 8
    assert not box.agent.exists()


def test_no_systemd_is_unsupported(tmp_path: Path) -> None:
    box = IdleBox(tmp_path / "b", systemd=False)
    r = check(box, *ON)
    assert r.exit_code == 1
    r = apply(box, *ON)
    assert r.exit_code == 3 and "does not run systemd" in (error(r) or "")
    assert not box.conf.exists() and not box.agent.exists()
    assert check(box, *OFF).exit_code == 0  # off needs nothing


def test_invalid_settings_are_a_usage_error(box: IdleBox) -> None:
    apply(box, *ON)
    r = check(box, "--set", "window=soon")
    assert r.exit_code == 2
    assert box.run("idle-stop.sh", "check").exit_code == 2  # --agent-sha256 required


def test_status(box: IdleBox) -> None:
    assert box.run("idle-stop.sh", "status").stdout.strip() == "agent=missing"
    apply(box, *ON)
    st = ist.parse_status(box.run("idle-stop.sh", "status").stdout)
    assert st["agent"] == "installed" and st["setting_window"] == "3600" and st["timer_active"] == "1"
    s = ist.summarize(st)
    assert s["enabled"] and s["window_s"] == 3600 and s["summary"] == "power off after 60m idle"


# -- the Python step through the engine ------------------------------------------------------
def _ctx(box: IdleBox) -> StepContext:
    t = FakeBoxTransport(box)
    ep = Endpoint("127.0.0.1", 22, box.user, "/nonexistent", "mlops-env-t")
    return StepContext(transport=t, facts=Facts({}), options=Resolved({}, {}),
                       record=Record(name="t", provider="ssh", alias="mlops-t", endpoint=ep),
                       paths=None, endpoint=ep)  # type: ignore[arg-type]


def test_step_through_the_engine(box: IdleBox) -> None:
    step = ist.IdleStopStep(ist.command_settings("30m", max_hours="8"))
    ctx = _ctx(box)
    plan = engine.gather(ctx, [step])
    assert plan.round_trips == 1 and plan.checks["idle-stop"].message == "the idle-stop agent is not installed"
    reports = engine.apply(ctx, plan)
    assert reports[0].status == "changed" and ctx.record.provider_data["idle_stop_agent"] is True
    assert reports[0].message == "idle-stop after 30 min idle, power-off after 8 h uptime; checked every 30 s"
    plan = engine.gather(ctx, [step])
    assert plan.checks["idle-stop"].ok
    assert engine.apply(ctx, plan)[0].status == "unchanged"


def test_step_maps_script_failures(tmp_path: Path) -> None:
    box = IdleBox(tmp_path / "b", systemd=False)
    ctx = _ctx(box)
    with pytest.raises(UnsupportedError):
        ist.IdleStopStep(ist.command_settings("30m")).apply(ctx)
    box2 = IdleBox(tmp_path / "c")
    ctx2 = _ctx(box2)
    step = ist.IdleStopStep(ist.command_settings("30m"))
    call = step.check_call(ctx2)
    assert call.script == "idle-stop.sh" and call.args[:3] == ("check", "--agent-sha256", SHA)
    assert template("idle-agent.sh").encode() == ist.agent_bytes()
    bad = ctx2.run_call("idle-stop", ist.ScriptCall("idle-stop.sh", ("apply", "--agent-sha256", "f" * 64,
                                                                      "--agent-b64", B64), sudo=True))
    with pytest.raises(IntegrityError):
        ist.raise_for_script("idle-stop", bad)


# -- options ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "secs"), [("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("90s", 90),
                                            ("45", 2700), ("1.5h", 5400), ("off", 0), ("0", 0), (" 10S ", 10)])
def test_parse_duration(text: str, secs: int) -> None:
    assert ist.parse_duration(text) == secs


@pytest.mark.parametrize("text", ["", "soon", "2d", "-5m", "1s", "30x", "8 days", "200h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        ist.parse_duration(text)


def test_parse_hours_and_format() -> None:
    assert ist.parse_hours("8") == 28800 and ist.parse_hours("1.5") == 5400 and ist.parse_hours("off") == 0
    for bad in ("-1", "x", "1000"):
        with pytest.raises(ValueError):
            ist.parse_hours(bad)
    assert [ist.format_duration(s) for s in (0, 45, 60, 3600, 5400, 7200)] == ["off", "45s", "1m", "60m", "90m", "2h"]
    from mlops_env import config

    assert config.option_idle_stop("1h") == "60m" and config.option_max_hours("1.5") == 1.5
    assert ist.human_duration(45) == "45 s" and ist.human_duration(600) == "10 min"
    assert ist.human_duration(3 * 3600 + 300) == "3 h 5 min"


def _opts(**vals: object) -> Resolved:
    values = {"idle_stop": None, "max_hours": None}
    sources = {"idle_stop": "default", "max_hours": "default"}
    for k, v in vals.items():
        values[k], sources[k] = v, "flag"  # type: ignore[assignment]
    return Resolved(values, sources)


def test_settings_from_up_options() -> None:
    s = ist.settings_from_options(_opts(), "ec2")
    assert (dict(s.sets), dict(s.defaults)) == ({}, {"window": "3600", "max_uptime": "0"})
    s = ist.settings_from_options(_opts(), "docker")
    assert dict(s.defaults) == {"window": "0", "max_uptime": "0"}
    s = ist.settings_from_options(_opts(idle_stop="30m", max_hours=8.0), "ec2")
    assert dict(s.sets) == {"window": "1800", "max_uptime": "28800"}
    assert s.args()[-4:] == ("--set", "window=1800", "--set", "max_uptime=28800")
    s = ist.settings_from_options(_opts(idle_stop="off"), "ec2")
    assert dict(s.sets) == {"window": "0"}


def test_when_up_runs_the_step() -> None:
    assert ist.wanted("ec2", _opts())
    assert not ist.wanted("docker", _opts()) and not ist.wanted("ssh", _opts())
    assert ist.wanted("ssh", _opts(idle_stop="20m")) and ist.wanted("docker", _opts(max_hours=2.0))
    env = Resolved({"idle_stop": "20m", "max_hours": None}, {"idle_stop": "env MLOPS_ENV_IDLE_STOP", "max_hours": "default"})
    assert ist.wanted("ssh", env)


def test_command_settings() -> None:
    s = ist.command_settings("off")
    assert dict(s.sets) == {"window": "0", "max_uptime": "0"}  # off: the cap too
    s = ist.command_settings("off", max_hours="8")
    assert dict(s.sets) == {"window": "0", "max_uptime": "28800"}
    s = ist.command_settings("30m")
    assert dict(s.sets) == {"window": "1800"}  # the cap: keep the box's
    s = ist.command_settings("2h", rules=ist.parse_rules("ssh,jupyter"), load_threshold=1.5, warn=3, interval=1)
    assert dict(s.sets) == {"window": "7200", "ssh": "on", "jupyter": "on", "load": "off", "containers": "off",
                            "load_threshold": "1.5", "warn": "3", "interval": "1"}
    assert ist.parse_rules("all") == list(ist.RULES) and ist.parse_rules("none") == []
    with pytest.raises(ValueError):
        ist.parse_rules("ssh,cpu")


def test_summarize_pending_warning() -> None:
    st = {"agent": "installed", "setting_window": "600", "setting_max_uptime": "0", "timer_active": "1",
          "now": "10000", "boot_current": "1", "last_tick": "9990", "idle_since": "9500",
          "deadline": "10100", "reason": "idle", "stop_at": "10100", "activity": "idle 8 min/10 min (...)"}
    s = ist.summarize(st, now=50000.0)
    assert s["idle_for_s"] == 500 and s["stop_in_s"] == 100 and s["stop_at"] == 50100.0
    assert s["warning_sent"] and s["stop_reason"] == "idle" and s["last_check_s_ago"] == 10
    st["boot_current"] = "0"  # state from before a restart: nothing pending
    s = ist.summarize(st, now=50000.0)
    assert s["idle_for_s"] is None and s["stop_in_s"] is None
    assert ist.summarize({"agent": "missing"})["installed"] is False
    off = ist.summarize({"agent": "installed", "setting_window": "0", "setting_max_uptime": "0"})
    assert off["summary"] == "idle stop off" and not off["enabled"]


# -- the command's refusals ------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from mlops_env.cli import app

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    runner = CliRunner()
    return lambda *a: runner.invoke(app, list(a))


def test_cli_bad_duration_is_usage_error(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("idle-stop", "ws", "soon", "--json")
    assert r.exit_code == 2
    assert "expected a duration" in r.stdout


def test_cli_unknown_workstation(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("idle-stop", "nope", "30m", "--json")
    assert r.exit_code == 3 and "unknown workstation" in r.stdout


def test_cli_help(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("idle-stop", "--help")
    assert r.exit_code == 0 and "--max-hours" in r.stdout
    assert "Usage: mlops-env idle-stop [OPTIONS] NAME DURATION" in r.stdout and "30m, 2h" in r.stdout
    assert "--warn" not in r.stdout  # test-only options stay hidden
