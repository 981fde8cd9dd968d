"""What the user sees is what the box, the file or the user said (issue 11 items 7, 9, 10;
issue 16 item 10).

- Text from boxes, files and users is printed literally: Rich markup in a step's message or
  output line (``[/opt/x]``, ``[bold]``, ``[x86_64]``) is neither interpreted nor fatal; an
  error that cannot be rendered falls back to plain text, never a traceback.
- A failed step shows its last lines of output under the error, carries them in ``--json``,
  and the run's log has all of it.
- Secrets are masked in the log's tracebacks too.
- Long values wrap at word boundaries on a terminal; steps cut off by Ctrl-C say so.

The ``up`` runs here are the real CLI (Typer's runner) and the real pipeline, engine and
transport, against the scripted fake box (``fake_target.FakeBox``): only the provider (a box
that already exists) and the connection (a login on the fake box) are stand-ins.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fake_target import FakeBox
from fake_up import UP_ARGS, patch
from typer.testing import CliRunner

from mlops_env.cli import app


@pytest.fixture()
def fake_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``run(*args, fail=False)``: ``mlops-env up ssh mk ...`` with the markup step on a fake box."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    monkeypatch.setenv("COLUMNS", "200")
    box = FakeBox(tmp_path / "box")
    state = {"mode": "ok"}
    patch(box, lambda: state["mode"], monkeypatch.setattr)

    def run(*args: str, fail: bool = False) -> Any:
        state["mode"] = "fail" if fail else "ok"
        return CliRunner().invoke(app, [*args, *UP_ARGS])

    run.root = tmp_path / "mlops"  # type: ignore[attr-defined]
    run.box = box  # type: ignore[attr-defined]
    return run


def last_log(root: Path) -> str:
    logs = sorted((root / "logs").glob("*-up.log"), key=lambda p: p.stat().st_mtime)
    assert logs, "no log file"
    return logs[-1].read_text()


# =========================================================================== markup (item 9)
def test_a_step_whose_messages_carry_markup_is_shown_verbatim(fake_up) -> None:  # type: ignore[no-untyped-def]
    r = fake_up()
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    row = next(ln for ln in r.stderr.splitlines() if " markup " in ln)
    assert row.endswith("built for [x86_64] in [/opt/x] [bold]"), row
    assert "the fake box [/opt/x]" in r.stderr  # the provider's detail too

    # --json: the same words, raw (no escaping backslashes), and the step's exit code
    fake_up.box.root.joinpath("home", "tester", ".markup-step-done").unlink()
    j = fake_up("--json")
    doc = json.loads(j.stdout)
    assert j.exit_code == 0 and doc["exit_code"] == 0
    step = next(s for s in doc["data"]["steps"] if s["id"] == "markup")
    assert (step["status"], step["message"]) == ("changed", "built for [x86_64] in [/opt/x] [bold]")


def test_a_failed_step_shows_its_markup_verbatim_with_its_last_lines(fake_up) -> None:  # type: ignore[no-untyped-def]
    r = fake_up(fail=True)
    assert r.exit_code == 1, r.output  # the step's: StepFailed
    assert "Traceback" not in r.output
    err = r.stderr
    assert "error: step markup failed: cannot write [/opt/x] for [x86_64] [bold]" in err
    assert "hint: check the permissions of [/opt/x] [dim]" in err
    # the failing step's last lines under the error (item 10), literally: stdout, then stderr
    head = next(ln for ln in err.splitlines() if "its last 20 lines of output" in ln)
    log_path = sorted((fake_up.root / "logs").glob("*-up.log"))[-1]
    assert head.strip() == f"its last 20 lines of output (all of it in {log_path}):"
    tail = err[err.index(head):err.index("hint:")].splitlines()[1:]
    tail = [ln.strip() for ln in tail if ln.strip()]
    assert len(tail) == 20
    assert tail[-2:] == ["warning: [/opt/x] is nearly full [red]", "E: cannot write [/opt/x]/lib: [red]Permission denied[/red]"]
    assert tail[:-2] == [f"compiling unit {i} for [x86_64]" for i in range(13, 31)]
    assert not any(ln.startswith(("mlops-error:", "mlops-hint:")) for ln in tail)
    row = next(ln for ln in err.splitlines() if " markup " in ln and "failed" in ln)
    assert row.endswith("failed  cannot write [/opt/x] for [x86_64] [bold]") or \
        row.split("s  ", 1)[1] == "cannot write [/opt/x] for [x86_64] [bold]", row

    # the run's log has the whole output, every line
    log = last_log(fake_up.root)
    assert "building [bold]not bold[/bold] in [/opt/x]" in log
    assert all(f"compiling unit {i} for [x86_64]" in log for i in range(1, 31))
    assert "E: cannot write [/opt/x]/lib: [red]Permission denied[/red]" in log

    j = fake_up("--json", fail=True)
    assert j.exit_code == 1
    doc = json.loads(j.stdout)  # one document
    e = doc["errors"][0]
    assert e["message"] == "step markup failed: cannot write [/opt/x] for [x86_64] [bold]"
    assert e["hint"] == "check the permissions of [/opt/x] [dim]"
    assert e["output"].splitlines()[-1] == "E: cannot write [/opt/x]/lib: [red]Permission denied[/red]"
    assert len(e["output"].splitlines()) == 20


def test_markup_in_a_name_is_an_ordinary_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlops-env status 'no[/x]'` ended in rich.errors.MarkupError (the error printer ran
    outside the protected block)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    runner = CliRunner()
    for name in ("no[/x]", "no[bold]x", "a[x86_64]"):
        r = runner.invoke(app, ["status", name])
        assert r.exit_code == 2, r.output
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
        assert f"invalid workstation name '{name}'" in r.stderr, r.stderr
        j = runner.invoke(app, ["--json", "status", name])
        assert j.exit_code == 2
        assert f"'{name}'" in json.loads(j.stdout)["errors"][0]["message"]


def test_an_error_that_cannot_be_rendered_is_written_as_plain_text(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_env.output import UI

    def broken(self: Any, *a: Any, **k: Any) -> None:
        raise RuntimeError("the console is broken")

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    monkeypatch.setattr(UI, "error", broken)
    r = CliRunner().invoke(app, ["status", "no[/x]"])
    assert r.exit_code == 2  # the command's code, not a crash
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "error: invalid workstation name 'no[/x]'" in r.stderr
    assert "hint: " in r.stderr and "Traceback" not in r.output


# =========================================================================== secrets (item 7)
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ENV_SECRET = "Zq9XvB3nR7tY2mK8pL4sW6dF1gH5jC0aE3uI7oP2"  # bare: only its value can be masked
GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def test_secrets_in_a_traceback_never_reach_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception (a bug) carrying an AWS secret key and a GitHub token goes
    through run_command: the log has the traceback, but none of the secrets."""
    import mlops_env.state as state

    def boom(self: Any) -> Any:
        try:
            raise ValueError(f"GitHub said no to {GH_TOKEN}")
        except ValueError as inner:
            raise RuntimeError(f"aws_secret_access_key = {AWS_SECRET}; from the environment: {ENV_SECRET}") from inner

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    monkeypatch.setattr(state.Store, "all", boom)
    for args in (["list"], ["--json", "list"], ["--debug", "list"]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 70, r.output
        for secret in (AWS_SECRET, ENV_SECRET, GH_TOKEN):
            assert secret not in r.output, (args, r.output)
    logs = list((tmp_path / "mlops" / "logs").glob("*-list.log"))  # one a second and process
    assert logs
    for path in logs:
        text = path.read_text()
        assert "Traceback" in text and "RuntimeError" in text and "ValueError" in text  # it is there...
        for secret in (AWS_SECRET, ENV_SECRET, GH_TOKEN):
            assert secret not in text, (secret, text)  # ...masked


# =========================================================================== rendering
def terminal_ui(width: int = 100, json_mode: bool = False) -> tuple[Any, io.StringIO]:
    from rich.console import Console

    from mlops_env.output import UI

    buf = io.StringIO()
    ui = UI(json_mode=json_mode)
    ui._console = Console(file=buf, force_terminal=True, width=width, color_system=None, highlight=False)
    return ui, buf


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def screen(buf: io.StringIO) -> str:
    return ANSI.sub("", buf.getvalue())


def test_live_progress_shows_box_text_verbatim() -> None:
    from mlops_env.cli.progress import StepView
    from mlops_env.engine import StepReport

    ui, buf = terminal_ui()
    with StepView(ui) as view:
        assert view.live is not None, "a terminal gets the live display"
        view.progress("connecting to [bold]box[/x]")
        view.step("start", "base", title="base", message="missing [/opt/x]")
        view.step("line", "base", line="mlops: unpacking [x86_64] [bold]")
        view.step("done", "base", report=StepReport("base", "base", "changed", 1.0, "done in [/opt/x] [bold]"))
    out = screen(buf)
    assert "done in [/opt/x] [bold]" in out


def test_steps_cut_off_by_ctrl_c_show_interrupted_not_running() -> None:
    from mlops_env.cli.progress import StepView
    from mlops_env.engine import StepReport

    for terminal in (True, False):
        ui, buf = terminal_ui()
        if not terminal:
            from rich.console import Console

            ui._console = Console(file=buf, force_terminal=False, width=100, color_system=None)
        with pytest.raises(KeyboardInterrupt), StepView(ui) as view:
            view.step("start", "base", title="base", message="")
            view.step("done", "base", report=StepReport("base", "base", "changed", 1.0, "installed"))
            view.step("start", "conda", title="conda", message="conda not installed in ~/anaconda3")
            view.step("line", "conda", line="mlops: installing anaconda into ~/anaconda3")
            raise KeyboardInterrupt
        out = screen(buf)
        final = [ln for ln in out.splitlines() if " conda " in ln][-1]
        assert " interrupted " in final and "running" not in final, out
        assert "installing anaconda" in final
        assert view.rows["conda"]["status"] == "interrupted"


def test_a_step_left_running_by_an_error_is_failed_not_running() -> None:
    from mlops_env.cli.progress import StepView
    from mlops_env.errors import ConnectError

    ui, buf = terminal_ui()
    with pytest.raises(ConnectError), StepView(ui) as view:
        view.step("start", "provision", title="docker box", message="")
        raise ConnectError("engine gone")
    assert view.rows["provision"]["status"] == "failed"


def test_long_values_wrap_at_word_boundaries_on_a_terminal_and_not_when_piped() -> None:
    from rich.console import Console

    from mlops_env.output import print_hanging

    words = ("the Docker engine did not start: Error initializing network controller: failed to create "
             "NAT chain DOCKER: iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: "
             "Protocol not supported [x86_64]")
    buf = io.StringIO()
    print_hanging(Console(file=buf, force_terminal=True, width=50, color_system=None), "[red]error:[/red] ", words)
    lines = screen(buf).rstrip("\n").splitlines()
    assert len(lines) > 2 and all(len(ln) <= 50 for ln in lines)
    assert lines[0].startswith("error: the Docker")
    assert all(ln.startswith(" " * len("error: ")) for ln in lines[1:]), lines  # hanging indent
    assert " ".join(ln.strip() for ln in lines).replace("error: ", "", 1) == words  # no word cut

    piped = io.StringIO()
    print_hanging(Console(file=piped, force_terminal=False, width=50), "[red]error:[/red] ", words)
    assert piped.getvalue() == f"error: {words}\n"


def test_ui_messages_are_literal_and_errors_masked() -> None:
    ui, buf = terminal_ui(width=200)
    ui.info("created [/opt/x] [bold]")
    ui.warn("disk [x86_64] low", hint="free [/opt/x]")
    ui.error(f"token {GH_TOKEN} refused [bold]", "see [/x]", "line [one]\nE: two [/opt/x]")
    out = screen(buf)
    for text in ("created [/opt/x] [bold]", "warning: disk [x86_64] low", "hint: free [/opt/x]",
                 "error: token *** refused [bold]", "hint: see [/x]", "line [one]", "E: two [/opt/x]"):
        assert text in out, (text, out)
    assert GH_TOKEN not in out


def test_a_real_ctrl_c_on_a_terminal_leaves_the_step_interrupted_not_running(tmp_path: Path) -> None:
    """`mlops-env up` in a pseudo-terminal (the live display), a real SIGINT while the step's
    script runs (seen by its stamp on the box): the final screen says `interrupted`, exit 130."""
    import os
    import pty
    import signal
    import struct
    import subprocess
    import sys
    import termios
    import threading
    import time
    from fcntl import ioctl

    here = Path(__file__).resolve().parent
    box_dir = tmp_path / "box"
    env = dict(os.environ, HOME=str(tmp_path / "home"), MLOPS_ENV_HOME=str(tmp_path / "mlops"), TERM="xterm",
               PYTHONPATH=os.pathsep.join([str(here), str(here.parent)]))
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)
    (tmp_path / "home").mkdir()
    master, slave = pty.openpty()
    ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(  # noqa: S603 - this repository's helper
        [sys.executable, str(here / "fake_up.py"), str(box_dir), "slow", *UP_ARGS],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
        # SIGINT may be inherited as ignored (a suite started from a background job): default it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    chunks: list[bytes] = []

    def pump() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    started = box_dir / "home" / "tester" / ".markup-step-started"
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert proc.poll() is None, b"".join(chunks).decode(errors="replace")
            assert time.monotonic() < deadline, "the step never started: " + b"".join(chunks).decode(errors="replace")
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)

        def seen(text: str) -> bool:
            return text in ANSI.sub("", b"".join(chunks).decode(errors="replace"))

        deadline = time.monotonic() + 60
        while not seen("error: interrupted"):
            assert time.monotonic() < deadline, b"".join(chunks).decode(errors="replace")
            time.sleep(0.1)
    finally:
        # the script (a local process here; over SSH the connection is cut) may now end
        (box_dir / "home" / "tester" / ".markup-step-release").touch()
        try:
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(10)
        os.close(master)
    out = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert code == 130, out
    final = [ln for ln in out.splitlines() if " markup " in ln][-1]
    assert " interrupted " in final and "running" not in final, out
    # its last line (or, if that was not read yet, its check's message), literally
    assert final.split("s  ", 1)[1] in ("building [bold]not bold[/bold] in [/opt/x]",
                                         "not built for [x86_64] in [/opt/x] yet"), final
