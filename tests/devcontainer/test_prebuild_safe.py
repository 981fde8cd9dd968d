"""The dev container's onCreateCommand is prebuild-safe (issue 13, docs/devcontainer.md
"Codespaces prebuilds"): a prebuild's snapshot is shared by everyone who opens a codespace, so
what onCreateCommand runs (on-create.sh and the step scripts it calls) reads nothing
user-specific: no tokens or secrets, no user or codespace names, no git identity, no SSH keys."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USER_SPECIFIC = re.compile(r"GITHUB_TOKEN|GH_TOKEN|GITHUB_USER|CODESPACE_NAME|CODESPACES_|\bsecrets?\b|"
                           r"git config|\.ssh/|authorized_keys|AWS_|\.netrc|\.git-credentials")


def _jsonc(path: Path) -> dict:
    text = re.sub(r"^\s*//.*$", "", path.read_text(encoding="utf-8"), flags=re.M)
    return dict(json.loads(re.sub(r",(\s*[}\]])", r"\1", text)))


def test_on_create_command_runs_only_on_create_sh() -> None:
    for p in (ROOT / "devcontainer" / "devcontainer.json", ROOT / ".devcontainer" / "devcontainer.json"):
        cmd = _jsonc(p).get("onCreateCommand")
        assert isinstance(cmd, str) and cmd.startswith("bash ") and "on-create.sh" in cmd, (p, cmd)
        assert not USER_SPECIFIC.search(cmd)


def test_what_on_create_runs_reads_nothing_user_specific() -> None:
    for name in ("devcontainer/on-create.sh", "templates/base.sh", "templates/conda.sh"):
        code = "\n".join(line for line in (ROOT / name).read_text(encoding="utf-8").splitlines()
                         if not line.lstrip().startswith("#"))
        hit = USER_SPECIFIC.search(code)
        assert hit is None, f"{name}: {hit.group(0) if hit else ''}"
