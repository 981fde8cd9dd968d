"""The idle-stop step: an agent on the box that powers it off when nobody uses it (an EC2
instance whose shutdown behaviour is "stop" then keeps its disk and stops billing compute).

The agent (``templates/idle-agent.sh``) is installed as ``/usr/local/lib/mlops-env/idle-agent``
and run by ``mlops-env-idle.timer``; its settings are ONE file, ``/etc/mlops-env/idle-stop.conf``.
The step script (``templates/idle-stop.sh``) checks and applies: agent installed (by sha256),
settings as wanted, timer enabled and active; or, when off, the timer disabled.

Settings travel as ``--set K=V`` (values the user chose: a flag, ``MLOPS_ENV_*`` or the config
file) and ``--default K=V`` (used only where the box has no value yet): so a later ``up`` with
default options never undoes ``mlops-env idle-stop NAME 30m``. See docs/idle-stop.md.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_env.checks import FAIL, OK, Check, CheckResult
from mlops_env.durations import (  # noqa: F401 - part of this module's API
    MAX_WINDOW,
    MIN_WINDOW,
    format_duration,
    human_duration,
    parse_duration,
    parse_hours,
)
from mlops_env.steps import ScriptCall, Step, StepContext, raise_for_script, template

if TYPE_CHECKING:
    from mlops_env.config import Resolved

AGENT = "idle-agent.sh"
SCRIPT = "idle-stop.sh"
RULES = ("ssh", "jupyter", "load", "containers")
#: the idle window when the user chose none: on for cloud boxes (they cost money), off for the
#: others (a local container or the user's own box costs nothing when left running)
PROVIDER_WINDOW = {"ec2": 3600}
#: where the agent can run (a systemd box mlops-env reaches over SSH); a codespace has
#: GitHub's own idle timeout and no systemd
PROVIDERS = ("ec2", "docker", "ssh")
@functools.cache
def agent_bytes() -> bytes:
    return template(AGENT).encode("utf-8")


def agent_sha256() -> str:
    return hashlib.sha256(agent_bytes()).hexdigest()


@dataclass(frozen=True)
class IdleSettings:
    """What to ask of the box: ``sets`` (chosen by the user) override the box's settings file;
    ``defaults`` fill only keys the box does not have yet."""

    sets: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)

    def args(self) -> tuple[str, ...]:
        out: list[str] = []
        for k, v in self.defaults.items():
            out += ["--default", f"{k}={v}"]
        for k, v in self.sets.items():
            out += ["--set", f"{k}={v}"]
        return tuple(out)

    def value(self, key: str) -> str | None:
        return self.sets.get(key, self.defaults.get(key))

    @property
    def chosen(self) -> bool:
        return bool(self.sets)

    def describe(self) -> str:
        w = int(self.value("window") or 0)
        m = int(self.value("max_uptime") or 0)
        if not w and not m:
            return "idle stop off"
        parts = [f"power off after {format_duration(w)} idle" if w else "no idle stop"]
        if m:
            parts.append(f"after {m / 3600:g} h uptime")
        keep = "" if self.chosen else " (or keep the box's own settings)"
        return ", ".join(parts) + keep


def settings_from_options(options: Resolved, provider: str) -> IdleSettings:
    """The ``up`` options ``idle_stop`` and ``max_hours``: a value the user chose is a ``--set``;
    the built-in default (the provider's window, no cap) only a ``--default``."""
    sets: dict[str, str] = {}
    defaults: dict[str, str] = {"window": str(PROVIDER_WINDOW.get(provider, 0)), "max_uptime": "0"}
    sources = getattr(options, "sources", {}) or {}
    idle = options.get("idle_stop")
    if idle is not None and sources.get("idle_stop", "default") != "default":
        sets["window"] = str(parse_duration(idle))
    hours = options.get("max_hours")
    if hours is not None and sources.get("max_hours", "default") != "default":
        sets["max_uptime"] = str(parse_hours(hours))
    return IdleSettings(sets, defaults)


def wanted(provider: str, options: Resolved) -> bool:
    """Whether ``up`` runs the step: always for cloud boxes (on by default); for the others
    only when the user asked (``--idle-stop``/``--max-hours``, from a flag, env or config)."""
    if provider in PROVIDER_WINDOW:
        return True
    if provider not in PROVIDERS:
        return False
    sources = getattr(options, "sources", {}) or {}
    return any(options.get(k) is not None and sources.get(k, "default") != "default"
               for k in ("idle_stop", "max_hours"))


def steps_for(provider: str, options: Resolved) -> list[Step]:
    """The idle-stop step for ``up``'s list when it runs (see ``wanted``), else nothing."""
    if not wanted(provider, options):
        return []
    return [IdleStopStep(settings_from_options(options, provider))]


def doctor_step(provider: str) -> IdleStopStep:
    """For ``doctor``: the same check with the provider's defaults only (nothing the user chose
    is asked for), so it passes when the agent is installed, consistent and its timer active,
    or when the stop is off and nothing is installed; ``--fix`` installs what a default asks."""
    return IdleStopStep(IdleSettings({}, {"window": str(PROVIDER_WINDOW.get(provider, 0)), "max_uptime": "0"}))


def doctor_check(res: CheckResult) -> Check:
    """The doctor's ``tools.idle-stop`` check from the step's own check result."""
    if res.ok:
        return Check("tools.idle-stop", OK, res.message)
    return Check("tools.idle-stop", FAIL, res.message,
                 res.hint or "`mlops-env idle-stop NAME off` turns the idle stop off instead", step="idle-stop")


def command_settings(duration: str, *, max_hours: str | None = None, rules: Iterable[str] | None = None,
                     load_threshold: float | None = None, warn: int | None = None,
                     interval: int | None = None) -> IdleSettings:
    """The settings ``mlops-env idle-stop NAME DURATION`` asks for. ``off`` turns everything
    off, the uptime cap too, unless ``--max-hours`` is given with it."""
    sets: dict[str, str] = {"window": str(parse_duration(duration))}
    if max_hours is not None:
        sets["max_uptime"] = str(parse_hours(max_hours))
    elif sets["window"] == "0":
        sets["max_uptime"] = "0"
    if rules is not None:
        chosen = set(rules)
        for r in RULES:
            sets[r] = "on" if r in chosen else "off"
    if load_threshold is not None:
        sets["load_threshold"] = f"{load_threshold:g}"
    if warn is not None:
        sets["warn"] = str(int(warn))
    if interval is not None:
        sets["interval"] = str(int(interval))
    return IdleSettings(sets, {})


def parse_rules(text: str) -> list[str]:
    """``--rules ssh,jupyter`` -> the rules that count as activity; ``all``, ``none``."""
    s = text.strip().lower()
    if s == "all":
        return list(RULES)
    if s in ("none", ""):
        return []
    out = [r.strip() for r in s.split(",") if r.strip()]
    bad = [r for r in out if r not in RULES]
    if bad:
        raise ValueError(f"unknown rule(s) {', '.join(bad)}: use {', '.join(RULES)}, all or none")
    return out


class IdleStopStep(Step):
    id = "idle-stop"
    title = "idle stop"
    sudo = True

    def __init__(self, settings: IdleSettings) -> None:
        self.settings = settings

    def check_call(self, ctx: StepContext) -> ScriptCall:
        return ScriptCall(SCRIPT, ("check", "--agent-sha256", agent_sha256(), *self.settings.args()))

    def apply(self, ctx: StepContext) -> None:
        b64 = base64.b64encode(agent_bytes()).decode("ascii")
        call = ScriptCall(SCRIPT, ("apply", "--agent-sha256", agent_sha256(), "--agent-b64", b64,
                                   *self.settings.args()), sudo=True)
        raise_for_script(self.id, ctx.run_call(self.id, call))
        # `status` asks a docker/ssh box's agent only when mlops-env installed one there
        ctx.record.provider_data["idle_stop_agent"] = True

    def describe_apply(self, ctx: StepContext) -> str:
        return f"install the idle-stop agent and its timer: {self.settings.describe()}"


# -- the agent's state, for `status` ----------------------------------------------------------
def status_call() -> ScriptCall:
    return ScriptCall(SCRIPT, ("status",))


def parse_status(text: str) -> dict[str, str]:
    """``idle-stop.sh status`` output (key=value lines; ``event=`` lines collected in order)."""
    out: dict[str, str] = {}
    events: list[str] = []
    for line in text.splitlines():
        if "=" not in line:
            continue
        k, v = line.split("=", 1)
        if k == "event":
            events.append(v)
        else:
            out[k.strip()] = v.strip()
    if events:
        out["events"] = "\n".join(events)
    return out


def _int(v: str | None) -> int | None:
    return int(v) if v and v.lstrip("-").isdigit() else None


def summarize(st: Mapping[str, str], *, now: float | None = None) -> dict[str, Any]:
    """The agent's state as `status` shows it: on/off, idle for how long, when it will stop.

    Times from the box are converted with the box's own clock (``now=`` in the output), so a
    skewed local clock does not shift them."""
    if st.get("agent") != "installed":
        return {"installed": False, "enabled": False, "summary": "idle stop not installed"}
    box_now = _int(st.get("now")) or int(now or time.time())
    local_now = now if now is not None else time.time()
    window = _int(st.get("setting_window")) or 0
    cap = _int(st.get("setting_max_uptime")) or 0
    enabled = (window > 0 or cap > 0) and st.get("timer_active") == "1"
    out: dict[str, Any] = {
        "installed": True, "enabled": enabled, "window_s": window, "max_uptime_s": cap,
        "timer_active": st.get("timer_active") == "1", "activity": st.get("activity"),
        "uptime_s": _int(st.get("uptime_now")), "last_check_s_ago": None,
        "idle_for_s": None, "stop_at": None, "stop_in_s": None, "stop_reason": None,
        "warning_sent": False,
    }
    fresh = st.get("boot_current") == "1"
    last = _int(st.get("last_tick"))
    if last is not None and fresh:
        out["last_check_s_ago"] = max(0, box_now - last)
    if not enabled:
        out["summary"] = "idle stop off" if not (window or cap) else "idle stop on, but its timer is not active"
        return out
    since = _int(st.get("idle_since")) if fresh else None
    if since is not None:
        out["idle_for_s"] = max(0, box_now - since)
    deadline = _int(st.get("deadline")) if fresh else None
    stop_at = deadline or (_int(st.get("stop_at")) if fresh else None)
    if stop_at is not None:
        out["stop_in_s"] = max(0, stop_at - box_now)
        out["stop_at"] = local_now + out["stop_in_s"]
        out["stop_reason"] = st.get("reason") or st.get("stop_reason") or None
        out["warning_sent"] = deadline is not None
    parts = []
    if window:
        parts.append(f"after {format_duration(window)} idle")
    if cap:
        parts.append(f"after {cap / 3600:g} h uptime")
    out["summary"] = "power off " + " or ".join(parts)
    return out


# -- for `status`, `list` and `class status` ----------------------------------------------------
def read_agent(paths: Any, rec: Any, live: dict[str, Any], timeout: float = 8) -> dict[str, Any] | None:
    """The idle-stop agent's state on a running workstation (one SSH connection, one command),
    or None when there is nothing to ask: not running, never set up, or no agent expected (a
    docker/ssh box whose idle stop was never turned on). A box that cannot be reached gives
    ``{"error": ...}``: `status` must not fail because of it."""
    from mlops_env.errors import MlopsError
    from mlops_env.ssh.connect import connect

    if live.get("state") not in ("running", "reachable") or rec.endpoint is None or rec.phase != "ready":
        return None
    if rec.provider not in PROVIDER_WINDOW and not (rec.provider_data or {}).get("idle_stop_agent"):
        return None
    try:
        transport = connect(paths, rec.endpoint, timeout)
    except MlopsError as e:
        return {"error": e.message}
    try:
        call = status_call()
        res = transport.run_script(template(call.script), call.args, timeout=timeout)
    except MlopsError as e:
        return {"error": e.message}
    finally:
        transport.close()
    return summarize(parse_status(res.stdout))
