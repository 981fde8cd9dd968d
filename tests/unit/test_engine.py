"""The engine (``mlops_env.engine``): batched checks in one round-trip, and ``apply`` with
needs, concurrency, failures, a no-op second run and Ctrl-C.

Fake Python steps (``FakeStep``: a ``Step`` that records its calls) drive ``apply``; the
batching runs for real through ``LocalTransport``; the last tests run the real workstation
steps against the scripted fake box (``fake_target.FakeBox``).
"""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from fake_target import FakeBox

from mlops_env import engine
from mlops_env.engine import (
    CHANGED,
    FAILED,
    SKIPPED,
    UNCHANGED,
    Plan,
    apply,
    batch_script,
    gather,
    parse_batch,
    run_checks,
)
from mlops_env.errors import MlopsError, StepFailed
from mlops_env.steps import CheckResult, Facts, ScriptCall, Step, StepContext, result_from_run
from mlops_env.steps.builtin import workstation_steps
from mlops_env.transport import RunResult
from mlops_env.transport.local import LocalTransport


# --------------------------------------------------------------------------- fakes
class Recorder:
    """Thread-safe log of (time, step, what) events."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def add(self, step: str, what: str) -> None:
        with self.lock:
            self.events.append((time.monotonic(), step, what))
            if what == "start":
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            elif what == "end":
                self.active -= 1

    def times(self, step: str, what: str) -> float:
        return next(t for t, s, w in self.events if s == step and w == what)

    def order(self, what: str = "start") -> list[str]:
        return [s for _t, s, w in self.events if w == what]


class FakeStep(Step):
    """A local step whose state is a flag: check passes once applied."""

    local = True

    def __init__(self, sid: str, needs: Sequence[str] = (), *, rec: Recorder, done: bool = False,
                 fail: MlopsError | BaseException | None = None, takes: bool = True, delay: float = 0.0,
                 during: Callable[[], None] | None = None) -> None:
        self.id = sid
        self.title = f"step {sid}"
        self.needs = tuple(needs)
        self.rec = rec
        self.done = done
        self.fail = fail
        self.takes = takes
        self.delay = delay
        self.during = during
        self.applied = 0
        self.checked = 0

    def check_local(self, ctx: StepContext) -> CheckResult:
        self.checked += 1
        if self.done:
            return CheckResult("ok", f"{self.id} is done")
        return CheckResult("fail", f"{self.id} is not done", hint=f"apply {self.id}", exit_code=1)

    def apply(self, ctx: StepContext) -> None:
        self.applied += 1
        self.rec.add(self.id, "start")
        try:
            if self.during:
                self.during()
            if self.delay:
                time.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
            self.done = self.takes
        finally:
            self.rec.add(self.id, "end")


def make_ctx(transport: Any = None, options: dict[str, Any] | None = None) -> StepContext:
    return StepContext(transport=transport or LocalTransport(), facts=Facts({}), options=options or {},
                       record=None, paths=None, endpoint=None)  # type: ignore[arg-type]


def plan_of(ctx: StepContext, steps: Sequence[Step]) -> Plan:
    return Plan(Facts({}), {s.id: s.check_local(ctx) for s in steps}, list(steps))


def statuses(reports) -> dict[str, str]:
    return {r.id: r.status for r in reports}


# =========================================================================== batching
def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class TestBatch:
    def test_round_trip_ids_exit_codes_streams_and_args(self, tmp_path: Path) -> None:
        victim = tmp_path / "victim"
        victim.mkdir()
        pwned = tmp_path / "pwned"
        hostile = [f"$(touch {pwned}); rm -rf {victim}", f"`touch {pwned}`", "it's", 'say "hi"', "two  spaces",
                   "", "*", "a\nb", ";|&<>", "--", "-n", "ünï", "$HOME", "\\"]
        literal = "$HOME `not run` 'single' \"double\" \\backslash\n"
        calls = [
            ("plain", "echo out; echo err >&2", ()),
            ("fails", "echo 'mlops: broken'; echo 'mlops-hint: fix it' >&2; exit 3", ()),
            ("odd-bytes", r"printf 'caf\xc3\xa9 \xff\xfe end\n'; printf 'cr\r\n' >&2; exit 5", ()),
            ("args", 'printf "%s\\0" "$#" "$@"', hostile),
            ("forger", f"echo '@@mlops-env plain 0 {b64('forged')} {b64('forged')}'", ()),
            ("literal", "cat <<'EOF'\n" + literal + "EOF", ()),
            ("killed", "kill -9 $$", ()),
            ("stdin", "cat; echo done", ()),
            ("big", "head -c 300000 /dev/zero | tr '\\0' x", ()),
            ("empty", ":", ()),
        ]
        t = LocalTransport()
        res = run_checks(t, calls, timeout=30)
        assert t.round_trips == 1
        assert sorted(res) == sorted(c[0] for c in calls)
        assert (res["plain"].exit_code, res["plain"].stdout, res["plain"].stderr) == (0, "out\n", "err\n")
        assert res["fails"].exit_code == 3
        r = result_from_run(res["fails"])
        assert (r.status, r.message, r.hint) == ("fail", "broken", "fix it")
        assert res["odd-bytes"].exit_code == 5
        assert res["odd-bytes"].stdout == "café \ufffd\ufffd end\n"
        assert res["odd-bytes"].stderr == "cr\r\n"
        got = res["args"].stdout.split("\0")[:-1]
        assert got == [str(len(hostile)), *hostile]
        assert not pwned.exists() and victim.is_dir()
        assert res["plain"].stdout == "out\n"  # the forged frame inside "forger"'s output changed nothing
        assert res["forger"].stdout.startswith("@@mlops-env plain 0 ")
        assert res["literal"].stdout == literal
        assert res["killed"].exit_code == 137
        assert (res["stdin"].exit_code, res["stdin"].stdout) == (0, "done\n")
        assert res["big"].stdout == "x" * 300000
        assert (res["empty"].exit_code, res["empty"].stdout, res["empty"].stderr) == (0, "", "")

    def test_script_text_and_args_never_appear_unquoted(self) -> None:
        text = "echo MARKER-TEXT"
        script = batch_script([("a", text, ("$(evil)",))], timeout=5)
        assert "MARKER-TEXT" not in script  # travels base64-encoded
        assert "'$(evil)'" in script and " $(evil)" not in script.replace("'$(evil)'", "")

    def test_parse_batch_ignores_noise(self) -> None:
        out = ("Welcome to Ubuntu (motd)\n"
               f"@@mlops-env one 0 {b64('a')} {b64('b')}\n"
               "@@mlops-env short 1\n"
               f"@@mlops-env two 124 {b64('partial')} \n"
               f"@@mlops-env three x{b64('')}  \n"
               f"  @@mlops-env indented 0 {b64('no')} \n")
        res = parse_batch(out, 1.5)
        assert sorted(res) == ["one", "three", "two"]
        assert (res["one"].stdout, res["one"].stderr, res["one"].seconds) == ("a", "b", 1.5)
        assert res["two"].exit_code == 124 and res["two"].stdout == "partial"
        assert result_from_run(res["two"]).message == "check timed out"
        assert res["three"].exit_code == 1  # unreadable code: failed, not ok

    def test_missing_reports_are_an_error(self) -> None:
        class Mute(LocalTransport):
            def run(self, argv, **kw):  # type: ignore[no-untyped-def,override]
                self.round_trips += 1
                return RunResult(tuple(argv), 127, "", "bash: not found", 0.1)

        with pytest.raises(StepFailed, match=r"did not report back from this machine \(facts, base\)"):
            run_checks(Mute(), [("facts", "true", ()), ("base", "true", ())])

    def test_a_hanging_check_is_cut_off_and_reported_failed(self) -> None:
        t = LocalTransport()
        start = time.monotonic()
        res = run_checks(t, [("fast", "echo 'mlops: fine'", ()),
                             ("hang", "echo 'mlops: started'; sleep 30; echo never", ())], timeout=1)
        took = time.monotonic() - start
        assert took < 8, f"the batch waited {took:.1f}s for a check with a 1 s timeout"
        assert res["fast"].exit_code == 0 and result_from_run(res["fast"]).ok
        hang = result_from_run(res["hang"])
        assert (hang.status, hang.message, hang.exit_code) == ("fail", "check timed out", 124)
        assert "never" not in res["hang"].stdout and "started" in res["hang"].stdout

    def test_a_check_that_ignores_sigterm_is_still_cut_off(self) -> None:
        # `timeout -k 2 N`: SIGTERM at N s, SIGKILL 2 s later; the check would run 6 s.
        start = time.monotonic()
        res = run_checks(LocalTransport(), [("stubborn", "trap '' TERM; sleep 6", ())], timeout=1)
        assert res["stubborn"].exit_code in (124, 137)
        assert time.monotonic() - start < 4.5

    def test_local_transport_timeout_cuts_off_the_script(self) -> None:
        res = LocalTransport().run_script("sleep 1; echo late", timeout=0.2)
        assert res.exit_code == 124
        assert res.seconds < 0.8 and "late" not in res.stdout


# =========================================================================== gather
class RemoteStep(Step):
    def __init__(self, sid: str, script: str, args: tuple[str, ...] = ()) -> None:
        self.id = sid
        self.title = sid
        self.script = script
        self.args = args

    def check_call(self, ctx: StepContext) -> ScriptCall:
        return ScriptCall(self.script, self.args)

    def apply(self, ctx: StepContext) -> None:
        raise AssertionError("not applied in these tests")


class CountingTransport(LocalTransport):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.argvs: list[tuple[str, ...]] = []

    def run(self, argv, **kw):  # type: ignore[no-untyped-def,override]
        self.argvs.append(tuple(argv))
        return super().run(argv, **kw)


class TestGather:
    def test_all_remote_checks_in_one_round_trip(self, monkeypatch) -> None:
        texts = {
            "ok.sh": "echo 'mlops: fine'",
            "fail.sh": "echo 'mlops: not yet'; echo 'mlops-hint: apply it' >&2; exit 1",
            "args.sh": 'echo "mlops: got $#: $*"; [ "$1" = "a b" ]',
        }
        real = engine.template
        monkeypatch.setattr(engine, "template", lambda name: texts.get(name) or real(name))
        rec = Recorder()
        local = FakeStep("local", rec=rec)
        steps = [RemoteStep("r1", "ok.sh"), RemoteStep("r2", "fail.sh"), RemoteStep("r3", "args.sh", ("a b", "c")),
                 local]
        t = CountingTransport()
        ctx = make_ctx(t)
        plan = gather(ctx, steps)
        assert plan.round_trips == 1 and t.round_trips == 1
        assert t.argvs == [("bash", "-c", "exec bash -s")]
        assert (plan.checks["r1"].status, plan.checks["r1"].message) == ("ok", "fine")
        assert (plan.checks["r2"].status, plan.checks["r2"].message, plan.checks["r2"].hint) == (
            "fail", "not yet", "apply it")
        assert plan.checks["r3"].message == "got 2: a b c"
        assert local.checked == 1 and plan.checks["local"].status == "fail"
        assert [s.id for s in plan.pending()] == ["r2", "local"]
        assert plan.facts.get("user") and ctx.facts is plan.facts

    def test_real_checks_on_a_fresh_fake_box_in_one_round_trip(self, tmp_path: Path) -> None:
        box = FakeBox(tmp_path / "box")
        t = box.transport()
        ctx = make_ctx(t, {"python_dist": "miniforge", "smoke_test": "sample"})
        plan = gather(ctx, workstation_steps("sample"))
        assert plan.round_trips == 1
        assert (plan.facts.get("os_id"), plan.facts.get("user"), plan.facts.sudo) == ("ubuntu", "tester", "ok")
        msgs = {k: v.message for k, v in plan.checks.items()}
        assert msgs["base"].startswith("missing packages: ca-certificates curl git")
        assert msgs["conda"] == f"conda not installed in {box.home}/miniforge3"
        assert msgs["docker"] == "docker is not installed"
        assert msgs["smoke"] == "smoke test has not passed on this box yet"
        assert [s.id for s in plan.pending()] == ["base", "conda", "docker", "smoke"]
        assert box.mutating_calls() == []


# =========================================================================== apply
class TestApply:
    def test_only_failing_steps_are_applied(self) -> None:
        rec = Recorder()
        a, b = FakeStep("a", rec=rec, done=True), FakeStep("b", rec=rec)
        ctx = make_ctx()
        events: list[tuple[str, str]] = []
        reports = apply(ctx, plan_of(ctx, [a, b]), on_event=lambda kind, sid, **kw: events.append((kind, sid)))
        assert (a.applied, b.applied) == (0, 1)
        assert statuses(reports) == {"a": UNCHANGED, "b": CHANGED}
        assert [r.message for r in reports] == ["a is done", "b is done"]  # b: the verify's message
        assert ("start", "a") not in events and ("start", "b") in events
        assert sorted(e for e in events if e[0] == "done") == [("done", "a"), ("done", "b")]

    def test_needs_are_respected(self) -> None:
        rec = Recorder()
        c = FakeStep("c", ["b"], rec=rec, delay=0.02)
        b = FakeStep("b", ["a"], rec=rec, delay=0.05)
        a = FakeStep("a", rec=rec, delay=0.05)
        ctx = make_ctx()
        reports = apply(ctx, plan_of(ctx, [c, b, a]), jobs=4)  # listed backwards on purpose
        assert [r.id for r in reports] == ["c", "b", "a"]  # reports in plan order
        assert rec.order() == ["a", "b", "c"]
        assert rec.times("b", "start") >= rec.times("a", "end")
        assert rec.times("c", "start") >= rec.times("b", "end")

    def test_independent_steps_run_concurrently(self) -> None:
        rec = Recorder()
        barrier = threading.Barrier(3, timeout=5)  # all three must be inside apply at once
        steps = [FakeStep(s, ["root"], rec=rec, during=barrier.wait) for s in ("x", "y", "z")]
        root = FakeStep("root", rec=rec)
        ctx = make_ctx()
        reports = apply(ctx, plan_of(ctx, [root, *steps]), jobs=4)
        assert statuses(reports) == {"root": CHANGED, "x": CHANGED, "y": CHANGED, "z": CHANGED}
        assert rec.max_active == 3

    def test_jobs_limits_concurrency_and_jobs_1_is_sequential(self) -> None:
        for jobs, expect in ((1, 1), (2, 2)):
            rec = Recorder()
            steps = [FakeStep(s, rec=rec, delay=0.05) for s in "abcd"]
            ctx = make_ctx()
            apply(ctx, plan_of(ctx, steps), jobs=jobs)
            assert rec.max_active == expect, f"jobs={jobs}"
            if jobs == 1:
                spans = [(rec.times(s, "start"), rec.times(s, "end")) for s in "abcd"]
                assert all(spans[i][1] <= spans[i + 1][0] for i in range(3)), spans
                assert rec.order() == list("abcd")

    def test_failed_dependency_skips_dependents_ok_ones_stay_unchanged(self) -> None:
        rec = Recorder()
        a = FakeStep("a", rec=rec, fail=StepFailed("step a failed: boom", hint="fix a"))
        b = FakeStep("b", ["a"], rec=rec)
        c = FakeStep("c", ["a"], rec=rec, done=True)
        d = FakeStep("d", ["b"], rec=rec)
        e = FakeStep("e", rec=rec)  # independent: still applied
        ctx = make_ctx()
        with pytest.raises(StepFailed) as exc:
            apply(ctx, plan_of(ctx, [a, b, c, d, e]))
        reports = exc.value.reports  # type: ignore[attr-defined]
        assert statuses(reports) == {"a": FAILED, "b": SKIPPED, "c": UNCHANGED, "d": SKIPPED, "e": CHANGED}
        by = {r.id: r for r in reports}
        assert by["b"].message == "skipped: a did not succeed"
        assert by["d"].message == "skipped: b did not succeed"
        assert (by["a"].message, by["a"].hint) == ("step a failed: boom", "fix a")
        assert (b.applied, c.applied, d.applied, e.applied) == (0, 0, 0, 1)

    def test_first_error_is_raised_after_running_steps_finish(self) -> None:
        rec = Recorder()
        first = StepFailed("step a failed: first")
        a = FakeStep("a", rec=rec, fail=first)
        b = FakeStep("b", rec=rec, delay=0.2, fail=StepFailed("step b failed: second"))
        slow = FakeStep("slow", rec=rec, delay=0.4)
        ctx = make_ctx()
        with pytest.raises(StepFailed) as exc:
            apply(ctx, plan_of(ctx, [b, a, slow]))
        assert exc.value is first
        assert statuses(exc.value.reports) == {"b": FAILED, "a": FAILED, "slow": CHANGED}  # type: ignore[attr-defined]
        assert slow.done

    def test_a_step_that_did_not_take_fails(self) -> None:
        rec = Recorder()
        a = FakeStep("a", rec=rec, takes=False)
        ctx = make_ctx()
        with pytest.raises(StepFailed, match="step a did not take: a is not done") as exc:
            apply(ctx, plan_of(ctx, [a]))
        assert exc.value.hint == "apply a"
        assert statuses(exc.value.reports) == {"a": FAILED}  # type: ignore[attr-defined]

    def test_second_apply_after_success_changes_nothing(self) -> None:
        rec = Recorder()
        steps = [FakeStep("a", rec=rec), FakeStep("b", ["a"], rec=rec), FakeStep("c", rec=rec, done=True)]
        t = CountingTransport()
        ctx = make_ctx(t)
        first = apply(ctx, gather(ctx, steps))
        assert statuses(first) == {"a": CHANGED, "b": CHANGED, "c": UNCHANGED}
        applied = [s.applied for s in steps]
        plan = gather(ctx, steps)
        assert plan.pending() == []
        second = apply(ctx, plan)
        assert statuses(second) == {"a": UNCHANGED, "b": UNCHANGED, "c": UNCHANGED}
        assert [s.applied for s in steps] == applied
        assert t.round_trips == 2  # the two gathers; apply of local steps runs nothing remote

    def test_dependencies_may_depend_on_the_facts(self) -> None:
        """A step may drop a need the box already satisfies (conda when curl is there)."""

        class Eager(FakeStep):
            def dependencies(self, facts: Facts) -> tuple[str, ...]:
                return () if facts.has("curl") else self.needs

        for tools, overlap in (("curl bzip2", True), ("bzip2", False)):
            rec = Recorder()
            base = FakeStep("base", rec=rec, delay=0.2)
            eager = Eager("conda", ["base"], rec=rec, delay=0.05)
            ctx = make_ctx()
            plan = Plan(Facts({"tools": tools}), {s.id: s.check_local(ctx) for s in (base, eager)}, [base, eager])
            assert statuses(apply(ctx, plan)) == {"base": CHANGED, "conda": CHANGED}
            assert (rec.max_active == 2) is overlap, tools
            if not overlap:
                assert rec.times("conda", "start") >= rec.times("base", "end")

    def test_a_need_outside_the_plan_does_not_block(self) -> None:
        rec = Recorder()
        smoke = FakeStep("smoke", ["conda"], rec=rec)  # e.g. `up` with conda already filtered out
        ctx = make_ctx()
        assert statuses(apply(ctx, plan_of(ctx, [smoke]))) == {"smoke": CHANGED}

    def test_unorderable_needs_are_a_bug_not_a_hang(self) -> None:
        rec = Recorder()
        aborted: list[bool] = []
        ctx = make_ctx()
        steps = [FakeStep("a", ["b"], rec=rec), FakeStep("b", ["a"], rec=rec)]
        with pytest.raises(RuntimeError, match="cannot be ordered"):
            apply(ctx, plan_of(ctx, steps), abort=lambda: aborted.append(True))
        assert aborted == [True]

    def test_keyboard_interrupt_aborts_without_waiting_for_running_steps(self) -> None:
        rec = Recorder()
        release = threading.Event()
        aborted: list[float] = []
        slow = FakeStep("slow", rec=rec, during=lambda: release.wait(10))
        fast = FakeStep("fast", rec=rec)
        after = FakeStep("after", ["fast", "slow"], rec=rec)

        def on_event(kind: str, sid: str, **kw: Any) -> None:
            if kind == "done" and sid == "fast":  # runs in the main thread, like Ctrl-C would
                raise KeyboardInterrupt

        ctx = make_ctx()
        start = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt):
                apply(ctx, plan_of(ctx, [slow, fast, after]), on_event=on_event,
                      abort=lambda: aborted.append(time.monotonic()))
            took = time.monotonic() - start
            assert len(aborted) == 1
            assert took < 2, f"apply waited {took:.1f}s for a running step after Ctrl-C"
            assert not release.is_set() and slow.applied == 1 and not slow.done
            assert after.applied == 0
        finally:
            release.set()

    def test_real_sigint_while_waiting_for_steps(self) -> None:
        rec = Recorder()
        release = threading.Event()
        aborted: list[bool] = []
        main = threading.main_thread().ident
        assert main == threading.get_ident()

        def interrupt() -> None:
            signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C, delivered to the main thread
            release.wait(10)

        step = FakeStep("hang", rec=rec, during=interrupt)
        ctx = make_ctx()
        # Python's own Ctrl-C handler, whatever this process inherited: a suite started from a
        # background job of a non-interactive shell begins with SIGINT ignored.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with pytest.raises(KeyboardInterrupt):
                apply(ctx, plan_of(ctx, [step]), abort=lambda: aborted.append(True))
            assert aborted == [True]
            # apply did not wait for the step: it is still blocked inside (no wall clock needed)
            assert not release.is_set() and not step.done
            assert [(s, w) for _, s, w in rec.events] == [("hang", "start")]
        finally:
            release.set()
            signal.signal(signal.SIGINT, previous)

    def test_no_abort_on_success_or_step_failure(self) -> None:
        rec = Recorder()
        aborted: list[bool] = []
        ctx = make_ctx()
        apply(ctx, plan_of(ctx, [FakeStep("a", rec=rec)]), abort=lambda: aborted.append(True))
        with pytest.raises(StepFailed):
            apply(ctx, plan_of(ctx, [FakeStep("b", rec=rec, fail=StepFailed("x"))]),
                  abort=lambda: aborted.append(True))
        assert aborted == []

    def test_a_bug_in_a_step_aborts_and_propagates(self) -> None:
        rec = Recorder()
        aborted: list[bool] = []
        bug = ValueError("a bug")
        ctx = make_ctx()
        with pytest.raises(ValueError) as exc:
            apply(ctx, plan_of(ctx, [FakeStep("a", rec=rec, fail=bug)]), abort=lambda: aborted.append(True))
        assert exc.value is bug and aborted == [True]


# =========================================================================== the real steps
@pytest.mark.skipif(os.environ.get("MLOPS_SKIP_SLOW_UNIT") == "1", reason="MLOPS_SKIP_SLOW_UNIT=1")
def test_up_on_a_fake_box_then_a_second_up_changes_nothing(tmp_path: Path) -> None:
    """gather + apply with the real workstation steps (base, conda from a STAND-IN installer
    mirror, docker, the real smoke training on sample data) on a fresh fake box; then a second
    gather finds everything done in ONE round trip and apply changes nothing."""
    box = FakeBox(tmp_path / "box")
    standin = box.standin_installer()  # a stand-in Miniforge; its python trains with the venv's
    options = {"python_dist": "miniforge", "conda_installer": standin.url, "conda_sha256": standin.sha256,
               "accept_anaconda_tos": False, "docker_source": "distro", "smoke_test": "sample"}
    t = box.transport()
    ctx = make_ctx(t, options)
    steps = workstation_steps("sample")
    events: list[tuple[str, str]] = []
    plan = gather(ctx, steps)
    assert not plan.facts.has("curl")  # a fresh box: conda must wait for the base packages
    reports = apply(ctx, plan, on_event=lambda kind, sid, **kw: events.append((kind, sid)))
    assert statuses(reports) == {"base": CHANGED, "conda": CHANGED, "docker": CHANGED, "smoke": CHANGED}, \
        [r.as_dict() for r in reports]
    assert ctx.data["smoke"]["status"] == "ok"
    at = {e: i for i, e in enumerate(events)}
    assert at[("done", "base")] < at[("start", "conda")] and at[("done", "base")] < at[("start", "docker")]
    assert at[("done", "conda")] < at[("start", "smoke")]
    assert [c.uid for c in box.calls("apt-get", "usermod")] == [0] * len(box.calls("apt-get", "usermod"))

    calls_at, changes_at = box.mark()
    again = box.transport()  # a new `up`: a new connection
    ctx2 = make_ctx(again, options)
    plan = gather(ctx2, workstation_steps("sample"))
    assert plan.round_trips == 1
    assert plan.pending() == [], {k: v.message for k, v in plan.checks.items()}
    second = apply(ctx2, plan)
    assert statuses(second) == {"base": UNCHANGED, "conda": UNCHANGED, "docker": UNCHANGED, "smoke": UNCHANGED}
    assert again.round_trips == 1, "a ready box must take one round trip"
    assert box.mutating_calls(since=calls_at) == [] and box.changes(since=changes_at) == []


def test_failed_step_on_the_fake_box_becomes_the_matching_error(tmp_path: Path) -> None:
    """A checksum mismatch in conda.sh (exit 8) surfaces as IntegrityError, the dependent smoke
    step is skipped, and the independent docker step still runs."""
    from mlops_env.errors import IntegrityError

    box = FakeBox(tmp_path / "box")
    standin = box.standin_installer()
    options = {"python_dist": "miniforge", "conda_installer": standin.url, "conda_sha256": "0" * 64,
               "accept_anaconda_tos": False, "docker_source": "distro", "smoke_test": "sample"}
    ctx = make_ctx(box.transport(), options)
    with pytest.raises(IntegrityError) as exc:
        apply(ctx, gather(ctx, workstation_steps("sample")))
    assert exc.value.message.startswith("step conda failed: checksum mismatch")
    assert "nothing was installed" in (exc.value.hint or "")
    assert statuses(exc.value.reports) == {  # type: ignore[attr-defined]
        "base": CHANGED, "conda": FAILED, "docker": CHANGED, "smoke": SKIPPED}
    assert box.calls("conda-installer") == []
    assert not (box.home / "miniforge3").exists()
