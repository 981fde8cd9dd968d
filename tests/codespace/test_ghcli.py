"""mlops_env.providers.codespace.ghcli: gh's documented `codespace ssh --config` output parsed, the ProxyCommand
rebuilt with mlops-env's key and quoted for both OpenSSH and paramiko, and the Host block
mlops-env writes from it accepted by the real OpenSSH (`ssh -G`) with pinned host keys."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from cshelp import install_fake_gh, path_without_gh
from fake_github import FakeGitHub

from mlops_env.errors import ConnectError, PrereqError
from mlops_env.paths import Paths
from mlops_env.providers.codespace import ghcli
from mlops_env.ssh.config import ensure_include, upsert_host
from mlops_env.state import Endpoint, Record
from mlops_env.steps.sshconfig import ssh_entry

# gh 2.x's template (cli/cli pkg/cmd/codespace/ssh.go), two codespaces, as `--config` prints them.
GH_OUTPUT = (
    "Host cs.octo-fuzzy-disco-r7x9q2.main\n"
    "\tUser vscode\n"
    "\tProxyCommand /usr/local/bin/gh cs ssh -c octo-fuzzy-disco-r7x9q2 --stdio -- -i /home/me/.ssh/codespaces.auto\n"
    "\tUserKnownHostsFile=/dev/null\n"
    "\tStrictHostKeyChecking no\n"
    "\tLogLevel quiet\n"
    "\tControlMaster auto\n"
    "\tIdentityFile /home/me/.ssh/codespaces.auto\n"
    "\n"
    "Host cs.octo-other-space-x1.feature-x\n"
    "\tUser codespace\n"
    "\tProxyCommand /usr/local/bin/gh cs ssh -c octo-other-space-x1 --stdio -- -i /home/me/.ssh/codespaces.auto\n"
    "\tUserKnownHostsFile=/dev/null\n"
    "\tStrictHostKeyChecking no\n"
    "\tLogLevel quiet\n"
    "\tControlMaster auto\n"
    "\tIdentityFile /home/me/.ssh/codespaces.auto\n"
    "\n"
)


def test_parse_gh_config_blocks() -> None:
    blocks = ghcli.parse_ssh_config(GH_OUTPUT)
    assert [h for h, _ in blocks] == ["cs.octo-fuzzy-disco-r7x9q2.main", "cs.octo-other-space-x1.feature-x"]
    assert blocks[0][1]["userknownhostsfile"] == "/dev/null" and blocks[0][1]["stricthostkeychecking"] == "no"
    got = ghcli.select_block(GH_OUTPUT, "octo-other-space-x1")
    assert (got.user, got.gh_exec, got.host) == ("codespace", "/usr/local/bin/gh", "cs.octo-other-space-x1.feature-x")
    with pytest.raises(PrereqError) as e:
        ghcli.select_block(GH_OUTPUT, "not-there")
    assert e.value.code == "gh-config"


def test_proxy_command_round_trips_through_paramiko_and_the_shell() -> None:
    odd = "/home/a b/100%/it's/id_ed25519"
    cmd = ghcli.proxy_command("/opt/g h/gh", "octo-x", odd)
    argv = ["/opt/g h/gh", "codespace", "ssh", "-c", "octo-x", "--stdio", "--", "-i", odd]
    assert shlex.split(cmd) == argv  # paramiko.ProxyCommand
    out = subprocess.run(["sh", "-c", "printf '%s\\n' " + cmd], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == argv  # OpenSSH: `sh -c "exec CMD"`


def test_written_block_passes_ssh_G_with_pinned_keys(tmp_path: Path) -> None:
    home = tmp_path / "h ome"  # a space in every path (a % is refused in mlops-env's own dir)
    paths = Paths(data=home / "data", config=home / "cfg", cache=home / "cache", logs=home / "logs")
    key = home / "data" / "keys" / "id_ed25519"
    # a "gh" in a directory with a space and a % (ssh's token character): it records its argv
    gh = tmp_path / "g h 100%" / "gh"
    gh.parent.mkdir()
    seen = tmp_path / "argv"
    gh.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{seen}'\nexit 1\n")
    gh.chmod(0o755)
    proxy = ghcli.proxy_command(str(gh), "octo-fuzzy-disco-r7x9q2", str(key))
    ep = Endpoint("octo-fuzzy-disco-r7x9q2", 22, "vscode", str(key), "mlops-env-cs", proxy_command=proxy)
    rec = Record(name="cs", provider="codespace", alias="mlops-cs", endpoint=ep)
    user_cfg = home / ".ssh" / "config"
    user_cfg.parent.mkdir(parents=True)
    user_cfg.write_text("Host *\n    StrictHostKeyChecking no\n")  # gh's habit, in the user's own file
    upsert_host(paths, ssh_entry(paths, rec, ep, True))
    ensure_include(paths, user_cfg)
    p = subprocess.run(["ssh", "-G", "-F", str(user_cfg), "mlops-cs"], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    g = dict(line.split(" ", 1) for line in p.stdout.splitlines() if " " in line)
    # our block comes first (the Include is on top): our values win over the user's `Host *`
    assert (g["user"], g["hostkeyalias"], g["stricthostkeychecking"]) == ("vscode", "mlops-env-cs", "true")
    assert g["userknownhostsfile"] == str(paths.known_hosts) and g["identityfile"] == str(key)
    assert g["proxycommand"] == proxy.replace("%", "%%")  # -G shows it before %-token expansion
    # ...and when ssh runs it, gh gets exactly the argv mlops-env meant
    subprocess.run(["ssh", "-F", str(user_cfg), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "mlops-cs", "true"],
                   capture_output=True, text=True, check=False, timeout=30)
    assert seen.read_text().splitlines() == ["codespace", "ssh", "-c", "octo-fuzzy-disco-r7x9q2", "--stdio", "--",
                                             "-i", str(key)]
    text = paths.ssh_config.read_text()
    assert "StrictHostKeyChecking no" not in text and "/dev/null" not in text


def test_gh_errors_are_explained(tmp_path: Path, github: FakeGitHub) -> None:
    gh = str(install_fake_gh(tmp_path / "bin") / "gh")
    env = {**os.environ, "PATH": path_without_gh(), "FAKE_GH_API": github.base, "GH_TOKEN": github.token}
    with pytest.raises(ConnectError) as e:
        ghcli.ssh_details(gh, "no-such-codespace", env=env)
    assert e.value.code == "gh-ssh" and "HTTP 404" in e.value.message
    assert "gh codespace ssh -c no-such-codespace" in (e.value.hint or "")
    cs = github.add_codespace(github.repos["student/mlops-zoomcamp"], "mlops-env-x")
    got = ghcli.ssh_details(gh, cs.name, env={**env, "FAKE_GH_SSH_USER": "codespace"})
    assert (got.user, got.gh_exec) == ("codespace", gh)
