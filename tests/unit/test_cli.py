"""The CLI through Typer's CliRunner, in an isolated MLOPS_ENV_HOME and HOME: exit codes,
one JSON document on stdout (also on failure), global flags anywhere, clear bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_env import __version__
from mlops_env.cli import app, hoist_globals


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    # No engine here: tests that touch Docker must not reach a real one by accident.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    runner = CliRunner()

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), input=input)

    run.home = home  # type: ignore[attr-defined]
    run.root = tmp_path / "mlops"  # type: ignore[attr-defined]
    return run


def _envelope(out: str) -> dict:
    doc = json.loads(out)  # exactly one document: json.loads fails on trailing data
    assert set(doc) == {"status", "exit_code", "data", "errors"}
    return doc


def test_version(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"mlops-env {__version__}"


def test_every_command_has_help(cli) -> None:  # type: ignore[no-untyped-def]
    for cmd in (["up"], ["up", "docker"], ["up", "ssh"], ["list"], ["status"], ["ssh"], ["code"],
                ["down"], ["stop"], ["start"], ["smoke-test"]):
        r = cli(*cmd, "--help")
        assert r.exit_code == 0, (cmd, r.output)
        assert "Usage:" in r.stdout


def test_hoist_globals_keeps_args_after_double_dash() -> None:
    assert hoist_globals(["up", "docker", "x", "--json", "-vv"]) == ["--json", "-vv", "up", "docker", "x"]
    assert hoist_globals(["ssh", "x", "--", "ls", "--json", "-v"]) == ["ssh", "x", "--", "ls", "--json", "-v"]


@pytest.mark.parametrize("name", ["Bad_Name", "-x", "a" * 33, "x;rm -rf ~"])
def test_invalid_name_json_anywhere(cli, name: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("up", "docker", "--", name) if name.startswith("-") else cli("up", "docker", name, "--json")
    if name.startswith("-"):
        assert r.exit_code == 2
        return
    assert r.exit_code == 2
    doc = _envelope(r.stdout)
    assert doc["status"] == "error" and doc["exit_code"] == 2
    assert doc["errors"][0]["code"] == "invalid-name"
    assert doc["errors"][0]["hint"]


def test_unknown_workstation_exit_3(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "status", "ghost")
    assert r.exit_code == 3
    doc = _envelope(r.stdout)
    assert doc["errors"][0]["code"] == "unknown-workstation"
    r = cli("status", "ghost")
    assert r.exit_code == 3
    assert "unknown workstation 'ghost'" in r.stderr and "Traceback" not in r.output


def test_list_empty(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("list", "--json")
    assert r.exit_code == 0
    assert _envelope(r.stdout)["data"] == {"workstations": []}


def test_usage_errors_are_json_under_json(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "up", "ssh", "box")  # --host missing
    assert r.exit_code == 2
    doc = _envelope(r.stdout)
    assert doc["errors"][0]["code"] == "usage" and "--host" in doc["errors"][0]["message"]


@pytest.mark.parametrize("target", ["nohost", "u@", "u@host:0", "u@host:99999", "u@ho st", "@host", "u@h;rm"])
def test_invalid_ssh_target(cli, target: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "up", "ssh", "box", "--host", target)
    assert r.exit_code == 2, r.output
    assert _envelope(r.stdout)["errors"][0]["code"] == "invalid-host"


def test_missing_identity_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "up", "ssh", "box", "--host", "me@127.0.0.1:2222", "--identity", str(tmp_path / "nokey"))
    assert r.exit_code == 2
    assert _envelope(r.stdout)["errors"][0]["code"] == "identity-missing"


def test_no_docker_engine_is_a_clear_error(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("up", "docker", "w1", "--json", "--accept-anaconda-tos")
    assert r.exit_code == 4, r.output
    doc = _envelope(r.stdout)
    assert doc["errors"][0]["code"] == "no-docker-engine"
    assert "docker" in doc["errors"][0]["hint"].lower()
    # Nothing was made, so nothing is kept: no ghost record in `list` (issue 16, item 5).
    r2 = cli("--json", "list")
    assert r2.exit_code == 0
    assert _envelope(r2.stdout)["data"]["workstations"] == []
    assert not (cli.root / "state" / "w1.json").exists()


def test_dry_run_changes_nothing(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("up", "ssh", "box", "--host", "me@127.0.0.1:2222", "--dry-run", "--json",
            "--python-dist", "miniforge")
    assert r.exit_code == 0, r.output
    data = _envelope(r.stdout)["data"]
    assert data["dry_run"] is True
    assert data["options"]["python_dist"] == {"value": "miniforge", "source": "flag"}
    assert data["options"]["smoke_test"]["source"] == "default"
    assert [s["id"] for s in data["steps"]] == ["base", "conda", "docker", "smoke", "ssh-config"]
    assert all(s["would_change"] for s in data["steps"])
    assert not (cli.root / "state").exists()
    assert not (cli.root / "keys").exists()
    assert not (cli.home / ".ssh").exists()


def test_config_file_errors_name_file_and_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("python_dist: miniforge\ncolour: blue\n")
    r = cli("--json", "up", "ssh", "box", "--host", "me@h", "--dry-run", "--config", str(cfg))
    assert r.exit_code == 2
    err = _envelope(r.stdout)["errors"][0]
    assert err["code"] == "config-unknown-key" and f"{cfg}:2" in err["message"]


def test_destructive_commands_refuse_without_terminal_or_yes(cli) -> None:  # type: ignore[no-untyped-def]
    # Make a record by hand (a forgotten ssh box) and try to remove it without --yes.
    from mlops_env.paths import get_paths
    from mlops_env.state import Record, Store

    Store(get_paths()).save(Record(name="b1", provider="ssh", alias="mlops-b1",
                                   provider_data={"target": "me@127.0.0.1:2222"}))
    r = cli("--json", "down", "b1")
    assert r.exit_code == 2
    assert _envelope(r.stdout)["errors"][0]["code"] == "confirmation-required"
    assert (cli.root / "state" / "b1.json").exists()
    r = cli("--json", "down", "b1", "--yes")
    assert r.exit_code == 0, r.output
    assert not (cli.root / "state" / "b1.json").exists()


def test_unexpected_error_is_internal_without_traceback(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import mlops_env.state as state

    def boom(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("kaboom")

    monkeypatch.setattr(state.Store, "all", boom)
    r = cli("list")
    assert r.exit_code == 70
    assert "unexpected error: RuntimeError: kaboom" in r.stderr
    assert "Traceback" not in r.output
    logs = list((cli.root / "logs").glob("*.log"))
    assert logs and "Traceback" in logs[-1].read_text()


def test_unreadable_user_ssh_config_is_refused_before_anything_is_made(cli) -> None:  # type: ignore[no-untyped-def]
    ssh = cli.home / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "config").write_bytes(b"Host caf\xe9\n  User x\n")  # latin-1: not UTF-8
    before = (ssh / "config").read_bytes()
    r = cli("--json", "up", "docker", "w2", "--accept-anaconda-tos")
    assert r.exit_code == 4, r.output
    err = _envelope(r.stdout)["errors"][0]
    assert "config" in err["message"] and err["hint"]
    assert (ssh / "config").read_bytes() == before
    assert not (cli.root / "state" / "w2.json").exists()
    assert not (cli.root / "keys").exists()


def _ssh_record(root: Path, name: str, host: str) -> None:
    state = root / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / f"{name}.json").write_text(json.dumps({
        "schema": 1, "name": name, "provider": "ssh", "alias": f"mlops-{name}",
        "endpoint": {"host": host, "port": 2222, "user": "someone-with-a-long-name",
                     "identity_file": "/nonexistent/key", "host_key_alias": f"mlops-env-{name}"},
        "phase": "ready", "provider_data": {"target": f"someone-with-a-long-name@{host}:2222"}}))


def test_list_piped_prints_whole_values(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 item 10: piped (not a terminal), `list` never cuts a value (`127.0…`), even
    when COLUMNS is small."""
    monkeypatch.setenv("COLUMNS", "40")
    _ssh_record(cli.root, "a-rather-long-workstation-name", "127.0.0.1")
    r = cli("list")
    assert r.exit_code == 0, r.output
    assert "…" not in r.stdout
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PROVIDER", "SSH", "ALIAS", "ADDRESS", "STATE", "SETUP", "PER", "HOUR",
                                "RUNNING"]
    row = lines[1].split()
    assert row[:4] == ["a-rather-long-workstation-name", "ssh", "mlops-a-rather-long-workstation-name",
                       "someone-with-a-long-name@127.0.0.1:2222"]
    assert row[4] in ("reachable", "unreachable") and row[5] == "ready"


def test_up_summary_counts_steps_in_english() -> None:
    from rich.console import Console

    from mlops_env.cli.up import _print_summary

    class Ui:
        json_mode = False
        log_file = None
        out = Console(record=True, width=200)

    base = {"name": "w", "seconds": 1.0, "ssh_command": "ssh mlops-w", "code_command": "code ..."}
    for changed, want in ((1, "ready (1 step changed)"), (2, "ready (2 steps changed)"), (0, "nothing to change")):
        ui = Ui()
        ui.out = Console(record=True, width=200)
        steps = [{"status": "changed"}] * changed + [{"status": "unchanged"}]
        _print_summary(ui, {**base, "steps": steps})
        assert want in ui.out.export_text()


def test_a_bad_docker_user_is_refused_before_anything(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "up", "docker", "w1", "--user", "Bad User", "--accept-anaconda-tos")
    assert r.exit_code == 2, r.output
    err = _envelope(r.stdout)["errors"][0]
    assert err["code"] == "invalid-option" and "--user" in err["message"]
    assert not (cli.root / "state").exists()


def test_dry_run_lists_only_the_providers_options(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("up", "ssh", "box", "--host", "me@127.0.0.1:2222", "--dry-run", "--json", "--python-dist", "miniforge")
    opts = _envelope(r.stdout)["data"]["options"]
    assert "python_dist" in opts and "smoke_test" in opts
    assert not {"image", "user", "region", "instance_type", "repo", "machine"} & set(opts)


@pytest.mark.parametrize("cmd", [["status", "nope"], ["start", "nope"], ["stop", "nope"], ["stop", "nope", "--yes"],
                                 ["down", "nope"], ["down", "nope", "--yes"], ["list"], ["idle-stop", "nope", "30m"],
                                 ["smoke-test", "nope"], ["doctor", "nope"], ["devcontainer", "validate", "/no/such"]])
def test_every_command_prints_one_json_document(cli, cmd: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 item 6 (`ssh NAME -- CMD` is the README's documented exception)."""
    r = cli("--json", *cmd)
    doc = _envelope(r.stdout)
    assert doc["exit_code"] == r.exit_code


def test_terms_are_refused_before_the_box_is_looked_for(cli) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 item 4: without a terminal and without --accept-anaconda-tos, `up` refuses
    before it reaches for the provider (here: no Docker engine, which would be exit 4 too, but
    `no-docker-engine`), and keeps nothing."""
    r = cli("--json", "up", "docker", "w1")
    assert r.exit_code == 4, r.output
    assert _envelope(r.stdout)["errors"][0]["code"] == "terms-not-accepted"
    assert not (cli.root / "state" / "w1.json").exists()
