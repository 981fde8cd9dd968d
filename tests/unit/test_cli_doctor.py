"""`mlops-env doctor` through Typer's CliRunner in an isolated MLOPS_ENV_HOME and HOME: option
validation, exit codes, the JSON envelope, the flutter-style report, and a local `--fix` of
the SSH config (the ssh-config step of `up`, applied per known workstation)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlops_env.cli import app

CHECK_KEYS = {"id", "category", "status", "message", "hint", "seconds"}


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    for var in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLOPS_ENV_PYTHON_DIST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    runner = CliRunner()

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), input=input)

    run.home = home  # type: ignore[attr-defined]
    run.root = tmp_path / "mlops"  # type: ignore[attr-defined]
    return run


def envelope(out: str) -> dict[str, Any]:
    doc = json.loads(out)
    assert set(doc) == {"status", "exit_code", "data", "errors"}
    return doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workstation(name: str, port: int, provider: str = "ssh", *, pin: bool = True) -> Any:
    """A known workstation record (as `up` leaves it), its Host block and the tool's key."""
    from mlops_env.paths import get_paths
    from mlops_env.ssh import keys, knownhosts
    from mlops_env.ssh.config import alias_for, host_key_alias_for
    from mlops_env.state import Endpoint, Record, Store

    paths = get_paths()
    kp = keys.ensure_keypair(paths)
    ep = Endpoint("127.0.0.1", port, "dev", str(kp.private_path), host_key_alias_for(name))
    rec = Record(name=name, provider=provider, alias=alias_for(name), endpoint=ep, phase="ready",
                 options={"python_dist": "miniforge", "smoke_test": "sample", "forward": True},
                 provider_data={"target": f"dev@127.0.0.1:{port}"})
    Store(paths).save(rec)
    if pin:
        knownhosts.pin(paths, ep.host_key_alias, keys.generate_host_keypair().public_line)
    return paths, rec


def test_help(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("doctor", "--help")
    assert r.exit_code == 0
    for opt in ("--host", "--identity", "--host-key-fingerprint", "--only", "--skip", "--fix", "--yes",
                "--python-dist", "--conda-installer", "--accept-anaconda-tos"):
        assert opt in r.stdout


@pytest.mark.parametrize("args,fragment", [
    (["--only", "dockr"], "unknown check category: dockr"),
    (["--only", "docker,gpu", "--skip", "cuda"], "unknown check categories: cuda, gpu"),
    (["--only", "docker", "--skip", "docker"], "leave no category"),
])
def test_bad_categories(cli, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "doctor", *args)
    assert r.exit_code == 2, r.output
    err = envelope(r.stdout)["errors"][0]
    assert err["code"] == "invalid-category" and fragment in err["message"]
    assert "system, python, docker, network, tools, local" in err["hint"]


def test_usage_errors(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "doctor", "ws", "--host", "me@127.0.0.1")
    assert r.exit_code == 2 and "not both" in envelope(r.stdout)["errors"][0]["message"]
    r = cli("--json", "doctor", "--identity", str(tmp_path))
    assert r.exit_code == 2 and "go with --host" in envelope(r.stdout)["errors"][0]["message"]
    r = cli("--json", "doctor", "--host", "me@127.0.0.1", "--only", "local")
    assert r.exit_code == 2 and envelope(r.stdout)["errors"][0]["code"] == "invalid-category"
    r = cli("--json", "doctor", "--host", "nobody")
    assert r.exit_code == 2 and envelope(r.stdout)["errors"][0]["code"] == "invalid-host"
    r = cli("--json", "doctor", "--host", "me@127.0.0.1")  # no --identity, and no mlops-env key yet
    assert r.exit_code == 2 and envelope(r.stdout)["errors"][0]["code"] == "identity-missing"


def test_unknown_workstation_is_exit_3(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "doctor", "ghost")
    assert r.exit_code == 3 and envelope(r.stdout)["errors"][0]["code"] == "unknown-workstation"


def test_local_json_envelope(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "doctor")
    assert r.exit_code in (0, 1), r.output
    doc = envelope(r.stdout)
    data = doc["data"]
    assert data["target"]["mode"] == "local" and data["categories"] == ["system", "python", "docker", "network",
                                                                         "tools", "local"]
    assert data["checks"] and all(set(c) == CHECK_KEYS for c in data["checks"])
    assert {c["category"] for c in data["checks"]} == set(data["categories"])
    assert all(c["status"] in ("ok", "warn", "fail", "skip") for c in data["checks"])
    assert data["ssh_connections"] == 0 and data["ssh_round_trips"] == 0
    fails = [c for c in data["checks"] if c["status"] == "fail"]
    # no conda in this fresh HOME: a problem, repaired by the conda step
    assert any(c["id"] == "python.conda" for c in fails)
    assert "conda" in data["fixable_steps"]
    assert (doc["exit_code"], doc["status"]) == (1, "error") and doc["errors"][0]["code"] == "problems-found"
    assert data["summary"]["fail"] == len(fails)


def test_local_only_report_human(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("doctor", "--only", "local")
    assert r.exit_code == 0, r.output  # warnings only: VS Code, AWS
    out = r.stdout
    assert out.splitlines()[0] == "Doctor summary for this machine; -v shows every check"
    assert "[!] This machine:" in out
    assert "! no AWS credentials configured (only `up ec2` needs them)" in out
    assert "→ `aws configure`, or `aws configure sso` and `aws sso login`" in out
    assert "(local.aws-credentials)" not in out  # ids only with -v
    assert out.splitlines()[-2].startswith("✓ No problems found (")
    v = cli("doctor", "--only", "local", "-v")
    assert "(local.ssh-client)" in v.stdout and "(local.ssh-key)" in v.stdout


def test_local_fix_of_the_ssh_config(cli) -> None:  # type: ignore[no-untyped-def]
    from mlops_env.ssh import config as sshconfig

    paths, rec = workstation("ws", 2222)
    r = cli("--json", "doctor", "--only", "local")
    data = envelope(r.stdout)["data"]
    assert r.exit_code == 1
    checks = {c["id"]: c for c in data["checks"]}
    assert checks["local.ssh-include"]["status"] == "fail"
    assert checks["local.ssh-hosts"]["status"] == "fail" and "mlops-ws" in checks["local.ssh-hosts"]["message"]
    assert "run `mlops-env doctor --fix`" in checks["local.ssh-include"]["hint"]
    assert data["fixable_steps"] == ["ssh-config"]

    # no terminal, no --yes: the usual confirmation error, nothing written
    r = cli("--json", "doctor", "--only", "local", "--fix")
    assert r.exit_code == 2 and envelope(r.stdout)["errors"][0]["code"] == "confirmation-required"
    assert not (cli.home / ".ssh" / "config").exists()

    r = cli("--json", "doctor", "--only", "local", "--fix", "--yes")
    assert r.exit_code == 0, r.output
    data = envelope(r.stdout)["data"]
    assert [(s["id"], s["status"]) for s in data["fix"]["steps"]] == [("ssh-config", "changed")]
    assert data["fix"]["before_summary"]["fail"] == 2 and data["summary"]["fail"] == 0
    assert sshconfig.check_include(paths) == "unchanged" and sshconfig.list_hosts(paths) == ["mlops-ws"]


def test_workstation_unreachable_is_exit_5_with_a_hint(cli) -> None:  # type: ignore[no-untyped-def]
    workstation("gone", free_port(), provider="docker")
    r = cli("--json", "doctor", "gone", "--ssh-timeout", "1")
    assert r.exit_code == 5, r.output
    err = envelope(r.stdout)["errors"][0]
    assert err["code"] == "unreachable" and "`mlops-env start gone`" in err["hint"]


def test_workstation_without_pin_is_exit_6(cli) -> None:  # type: ignore[no-untyped-def]
    workstation("nopin", free_port(), pin=False)
    r = cli("--json", "doctor", "nopin", "--ssh-timeout", "1")
    assert r.exit_code == 6 and envelope(r.stdout)["errors"][0]["code"] == "host-key"


def test_workstation_local_only_needs_no_connection(cli) -> None:  # type: ignore[no-untyped-def]
    workstation("far", free_port())
    r = cli("--json", "doctor", "far", "--only", "local")
    data = envelope(r.stdout)["data"]
    assert data["ssh_connections"] == 0 and data["target"]["name"] == "far"
    assert {c["id"] for c in data["checks"]} >= {"local.ssh-include", "local.ssh-hosts", "local.ssh-key"}
    assert not any(c["id"].startswith("local.aws") for c in data["checks"])  # not an EC2 workstation


def test_host_unreachable_is_exit_5(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "id"
    key.write_text("x")
    r = cli("--json", "doctor", "--host", f"me@127.0.0.1:{free_port()}", "--identity", str(key), "--ssh-timeout", "1")
    assert r.exit_code == 5 and envelope(r.stdout)["errors"][0]["code"] == "unreachable"
    assert not (cli.root / "ssh" / "known_hosts").exists()


# -- what this machine is for (a laptop that drives workstations, or a workstation) -------------------


def _ready_ssh_side(name: str) -> Any:
    """A known workstation whose Host block and Include line are written, as after `up`."""
    from mlops_env.config import resolve
    from mlops_env.doctor import _record_ctx
    from mlops_env.ssh import config as sshconfig
    from mlops_env.steps.sshconfig import SshConfigStep

    paths, rec = workstation(name, 2222)
    step = SshConfigStep()
    opts = resolve({}, config_path=None, default_config=paths.config_file)
    sshconfig.upsert_host(paths, step.entry(_record_ctx(rec, paths, opts)))
    sshconfig.ensure_include(paths)
    return paths, rec


def test_laptop_is_not_failed_for_what_belongs_on_the_workstation(cli) -> None:  # type: ignore[no-untyped-def]
    """Before: a machine that drives a workstation failed for its own missing conda and compose."""
    _ready_ssh_side("ws")
    r = cli("--json", "doctor")
    assert r.exit_code == 0, r.output
    data = envelope(r.stdout)["data"]
    assert data["target"]["role"] == "laptop" and data["categories"] == ["local"]
    assert "this machine drives workstation ws" in data["note"] and "--as-workstation" in data["note"]
    ids = {c["id"]: c["status"] for c in data["checks"]}
    assert not [i for i in ids if not i.startswith("local.")]
    assert ids["local.ssh-include"] == "ok" and ids["local.docker"] == "warn" and "local.gh" in ids
    human = cli("doctor")
    assert human.exit_code == 0
    assert human.stdout.splitlines()[1].startswith("Checked as a laptop (this machine drives workstation ws)")
    # asking for a box category here: nothing checked, the note says how
    only = cli("--json", "doctor", "--only", "python")
    assert only.exit_code == 0 and envelope(only.stdout)["data"]["checks"] == []


def test_as_workstation_checks_this_machine_as_one(cli) -> None:  # type: ignore[no-untyped-def]
    _ready_ssh_side("ws")
    r = cli("--json", "doctor", "--as-workstation", "--only", "python,local")
    assert r.exit_code == 1, r.output
    data = envelope(r.stdout)["data"]
    assert data["target"]["role"] == "workstation" and data["note"] is None
    conda = next(c for c in data["checks"] if c["id"] == "python.conda")
    assert conda["status"] == "fail" and "mlops-env doctor --as-workstation --fix" in conda["hint"]
    r = cli("--json", "doctor", "ws", "--as-workstation")
    assert r.exit_code == 2 and envelope(r.stdout)["errors"][0]["code"] == "usage"


def test_windows_laptop_doctor(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import winsim

    undo = winsim.install(tmp_path / "acl.json")
    try:
        r = cli("--json", "doctor")
        w = cli("--json", "doctor", "--as-workstation")
    finally:
        undo()
    assert r.exit_code == 0, r.output
    data = envelope(r.stdout)["data"]
    assert data["target"]["role"] == "laptop" and "a Windows machine drives Linux workstations" in data["note"]
    docker = next(c for c in data["checks"] if c["id"] == "local.docker")
    assert "unix://" in docker["message"]  # the cli fixture's DOCKER_HOST wins over the named pipe
    assert w.exit_code == 7 and envelope(w.stdout)["errors"][0]["code"] == "unsupported-os"
    assert "WSL" in envelope(w.stdout)["errors"][0]["hint"]


def test_macos_laptop_doctor(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from mlops_env import osenv

    monkeypatch.setattr(osenv, "system", lambda: osenv.MACOS)
    r = cli("--json", "doctor")
    assert r.exit_code == 0, r.output
    assert envelope(r.stdout)["data"]["target"]["role"] == "laptop"


# -- rendering: long lines wrap at word boundaries, text is literal ----------------------------
def test_the_report_wraps_at_word_boundaries_on_a_100_column_terminal(tmp_path: Path) -> None:
    """A fresh box's report (long hints with commands and URLs) on a 100-column terminal: no
    line is wider than the terminal and no word is cut (the old renderer let the terminal cut
    lines mid-word with soft_wrap); piped, each message is one whole line."""
    import io
    import re

    from rich.console import Console
    from test_doctor_parse import replay

    from mlops_env.cli.doctor import _render
    from mlops_env.output import UI

    checks, report = replay("debian12-fresh", tmp=tmp_path)
    report.checks.append(type(checks[0])("system.os", "warn", "a [bold] note about [/x] and [x86_64]",
                                         hint="run `x --y` " + "word " * 40))

    def render(width: int, terminal: bool) -> str:
        ui = UI(verbose=1)
        buf = io.StringIO()
        ui._out = Console(file=buf, width=width, force_terminal=terminal, color_system=None,
                          highlight=False)
        _render(ui, report, fix_requested=False)
        return buf.getvalue()

    text = render(100, True)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 100
    words = set(re.findall(r"\S+", render(10_000, False)))
    for ln in lines:  # every word of the wrapped output is a whole word of the unwrapped one
        for w in re.findall(r"\S+", ln):
            assert w in words, f"cut word {w!r} in {ln!r}"
    assert "a [bold] note about [/x] and [x86_64]" in text  # literal, never markup
    piped = render(80, False)
    assert any(ln.strip().startswith("→ run `x --y` word word") and len(ln) > 200 for ln in piped.splitlines())
