"""`mlops-env up codespace` and the lifecycle verbs: the INSTALLED CLI against the STAND-IN GitHub
API (fake_github.py, real HTTP on loopback). Without gh on PATH unless a test says otherwise
(the SSH path with a real sshd is test_e2e_codespace.py).

Shown here: the codespace is created once (Queued -> Provisioning -> Available, with progress)
and reused; a run killed or interrupted while waiting is resumed by the next `up` on the same
codespace; stop/start/down call GitHub's endpoints; every bad input is one clear error with its
fix; the token appears nowhere (stdout, stderr, logs, state, ssh files)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from cshelp import (
    CTRL_C,
    KILL,
    User,
    assert_token_nowhere,
    host_key_server,
    install_fake_gh,
    make_user,
    wait_until,
)
from fake_github import DEVCONTAINER, Eavesdropper, FakeGitHub

REPO = "student/mlops-zoomcamp"


def posts(fake: FakeGitHub) -> list[object]:
    return [b for _, _, b in fake.requests("POST", r"/repos/[^/]+/[^/]+/codespaces")]


# -- create, reuse, resume -------------------------------------------------------------------------
def test_created_once_with_progress_then_reused(user: User, github: FakeGitHub) -> None:
    github.states_per_poll = ("Queued", "Provisioning", "Available")  # one state per poll: no clock
    r = user.mlops("up", "codespace", "c1", "--repo", REPO, "--machine", "standardLinux32gb",
                   "--idle-timeout", "45m", "--retention", "7d")
    assert r.code == 0, r
    [body] = posts(github)
    assert body == {"ref": "main", "machine": "standardLinux32gb", "display_name": "mlops-env-c1",
                    "devcontainer_path": ".devcontainer/devcontainer.json", "idle_timeout_minutes": 45,
                    "retention_period_minutes": 10080}
    [cs] = github.live()
    err = r.stderr
    assert err.index(f"codespace {cs.name}: Queued") < err.index(f"codespace {cs.name}: Provisioning")
    # no gh: said clearly, and the ways in are printed either way
    assert "the GitHub CLI (gh) is not installed" in err and "no SSH alias" in r.stdout
    assert f"https://{cs.name}.github.dev" in r.stdout
    assert f"vscode://github.codespaces/connect?name={cs.name}" in r.stdout
    assert "4 cores = 4 core-hours per running hour" in r.stdout
    assert "stops after 45 min idle; deleted 7 days after it stops" in r.stdout
    assert "a stopped codespace still bills storage" in r.stdout
    assert user.state("c1")["provider_data"]["codespace"] == cs.name

    again = user.mlops("--json", "up", "codespace", "c1")  # --repo remembered
    assert again.code == 0, again
    assert len(posts(github)) == 1
    d = again.data
    assert d["codespace"]["name"] == cs.name and d["codespace"]["action"] == "unchanged"
    assert d["steps"][0] == {**d["steps"][0], "id": "provision", "status": "unchanged"}
    assert d["alias"] is None and d["links"]["vscode"].endswith(cs.name)
    assert d["cost"]["core_hours_per_hour"] == 4 and d["cost"]["compute_usd_per_hour"] == 0.36
    assert_token_nowhere(user, github, r, again)


def test_default_machine_is_the_smallest_with_four_cores(user: User, github: FakeGitHub) -> None:
    github.repos[REPO].machines = ("premiumLinux", "basicLinux32gb", "standardLinux32gb")
    r = user.mlops("--json", "up", "codespace", "m", "--repo", REPO)
    assert r.code == 0, r
    assert posts(github)[0]["machine"] == "standardLinux32gb"  # type: ignore[index]


@pytest.mark.parametrize("sig,code", [(KILL, -9), (CTRL_C, 130)])
def test_an_interrupted_wait_is_resumed_on_the_same_codespace(user: User, github: FakeGitHub, sig: int,
                                                              code: int) -> None:
    github.queued_s, github.provisioning_s = 0.3, math.inf  # Provisioning until the test says so
    proc = user.start("up", "codespace", "w", "--repo", REPO)
    # the CLI is polling the new codespace: it has been created and remembered
    wait_until(lambda: len(github.requests("GET", r"/user/codespaces/[^/]+")) >= 1, what="the wait")
    stopped = user.interrupt(proc, sig)
    assert stopped.code == code, stopped
    if sig == CTRL_C:
        assert "run the same command again" in stopped.stderr
    [cs] = github.live()
    assert cs.state() == "Provisioning"
    assert user.state("w")["provider_data"]["codespace"] == cs.name

    # The next up finds it still Provisioning (it has polled it once), then GitHub finishes it.
    polled = len(github.requests("GET", f"/user/codespaces/{cs.name}"))
    again = user.start("--json", "up", "codespace", "w")
    wait_until(lambda: len(github.requests("GET", f"/user/codespaces/{cs.name}")) > polled, what="the next up's poll")
    cs.go(("Available", 0))
    r = user.finish(again)
    assert r.code == 0, r
    assert len(posts(github)) == 1 and len(github.live()) == 1  # never a second one
    assert r.data["codespace"]["name"] == cs.name
    assert r.data["codespace"]["action"] == "resumed (it was Provisioning)"
    assert r.data["steps"][0]["status"] == "changed"


def test_killed_before_the_name_was_saved_the_display_name_finds_it(user: User, github: FakeGitHub) -> None:
    """The record lost the codespace's name (a run killed between GitHub's answer and the save, or
    another machine): the display name mlops-env-NAME finds it again."""
    cs = github.add_codespace(github.repos[REPO], "mlops-env-lost", state="Provisioning")
    cs.go(("Provisioning", 1.0), ("Available", 0))
    r = user.mlops("--json", "up", "codespace", "lost", "--repo", REPO)
    assert r.code == 0, r
    assert posts(github) == [] and r.data["codespace"]["name"] == cs.name
    assert r.data["codespace"]["action"] == "adopted"


def test_a_stopped_codespace_is_started_by_up(user: User, github: FakeGitHub) -> None:
    cs = github.add_codespace(github.repos[REPO], "mlops-env-s", state="Shutdown")
    r = user.mlops("--json", "up", "codespace", "s", "--repo", REPO)
    assert r.code == 0, r
    assert github.requests("POST", f"/user/codespaces/{cs.name}/start")
    assert cs.state() == "Available"


# -- lifecycle -------------------------------------------------------------------------------------
def test_status_stop_start_down_call_the_right_endpoints(user: User, github: FakeGitHub) -> None:
    assert user.mlops("up", "codespace", "l", "--repo", REPO).code == 0
    [cs] = github.live()
    st = user.mlops("--json", "status", "l")
    assert st.code == 0, st
    assert st.data["live"]["state"] == "running" and st.data["live"]["codespace"] == cs.name

    stop = user.mlops("--json", "stop", "l", "--yes")
    assert stop.code == 0, stop
    assert github.requests("POST", f"/user/codespaces/{cs.name}/stop") and cs.state() == "Shutdown"
    assert "still bills storage" in stop.data["result"]
    listed = user.mlops("--json", "list")
    assert [(w["name"], w["state"]) for w in listed.data["workstations"]] == [("l", "stopped")]
    st = user.mlops("status", "l")
    assert "storage   a stopped codespace still bills storage" in st.stdout

    start = user.mlops("--json", "start", "l")
    assert start.code == 0, start
    assert github.requests("POST", f"/user/codespaces/{cs.name}/start") and cs.state() == "Available"

    ssh = user.mlops("--json", "ssh", "l")  # no gh, no alias: said so, with the browser URL
    assert ssh.code == 3 and ssh.error["code"] == "no-ssh-alias" and cs.name in ssh.error["hint"]
    code = user.mlops("--json", "code", "l")
    assert code.code == 0 and code.data["url"] == f"vscode://github.codespaces/connect?name={cs.name}"

    cs.has_uncommitted_changes, cs.ahead = True, 2
    refused = user.mlops("down", "l")  # no terminal, no --yes: nothing deleted
    assert refused.code == 2 and "uncommitted changes and 2 unpushed commit(s)" in refused.stderr
    assert not github.requests("DELETE")
    down = user.mlops("--json", "down", "l", "--yes")
    assert down.code == 0, down
    assert github.requests("DELETE") == [("DELETE", f"/user/codespaces/{cs.name}", None)]
    assert github.live() == [] and not (user.root / "state" / "l.json").exists()


def test_list_and_down_find_codespaces_this_machine_does_not_know(user: User, github: FakeGitHub) -> None:
    repo = github.repos[REPO]
    other = github.add_codespace(repo, "mlops-env-laptop", state="Shutdown")
    github.add_codespace(repo, "my own codespace")  # not mlops-env's: never listed or touched
    plain = user.mlops("--json", "list")
    assert plain.data["workstations"] == [] and not github.calls  # no GitHub call unless asked
    r = user.mlops("--json", "list", "--codespaces")
    assert r.code == 0, r
    assert [(w["name"], w["state"], w["codespace"]) for w in r.data["workstations"]] == \
        [("laptop", "stopped", other.name)]
    d = user.mlops("--json", "down", "laptop", "--codespaces", "--yes")
    assert d.code == 0, d
    assert [p for _, p, _ in github.requests("DELETE")] == [f"/user/codespaces/{other.name}"]
    assert len(github.live()) == 1


# -- bad input -------------------------------------------------------------------------------------
def test_unknown_repo(user: User, github: FakeGitHub) -> None:
    r = user.mlops("--json", "up", "codespace", "x", "--repo", "student/nope")
    assert r.code == 3 and r.error["code"] == "repo-not-found" and "student/nope" in r.error["message"]
    assert not (user.root / "state" / "x.json").exists()  # nothing was made: no ghost in `list`


def test_no_access_to_the_repo(user: User, github: FakeGitHub) -> None:
    github.add_repo("org/secret", no_access=True)
    r = user.mlops("--json", "up", "codespace", "x", "--repo", "org/secret")
    assert r.code == 4 and r.error["code"] == "github-forbidden" and "no access to repository org/secret" in r.error["message"]


def test_a_machine_type_the_repo_does_not_offer_is_refused_before_creating(user: User, github: FakeGitHub) -> None:
    r = user.mlops("--json", "up", "codespace", "x", "--repo", REPO, "--machine", "largePremiumLinux")
    assert r.code == 2 and r.error["code"] == "machine-not-allowed"
    assert "basicLinux32gb (2 cores, 8 GB RAM, 32 GB disk)" in r.error["hint"]
    assert posts(github) == []


def test_a_machine_refused_by_create_422(user: User, github: FakeGitHub) -> None:
    github.fail("POST", r"/repos/.*/codespaces", 422,
                {"message": "Machine type 'premiumLinux' is not allowed for this repository",
                 "documentation_url": "https://docs.github.com/rest"})
    r = user.mlops("--json", "up", "codespace", "x", "--repo", REPO, "--machine", "premiumLinux")
    assert r.code == 2 and r.error["code"] == "machine-not-allowed", r
    # GitHub said no: nothing to look for later, and no record of a workstation that never existed
    assert not (user.root / "state" / "x.json").exists()


@pytest.mark.parametrize("status,message,code", [
    (402, "Payment required: your account has a billing issue", "github-billing"),
    (403, "You've reached the maximum number of codespaces (10)", "codespace-quota"),
])
def test_quota_and_billing_refusals(user: User, github: FakeGitHub, status: int, message: str, code: str) -> None:
    github.fail("POST", r"/repos/.*/codespaces", status, {"message": message})
    r = user.mlops("--json", "up", "codespace", "x", "--repo", REPO)
    assert r.code == 4 and r.error["code"] == code and message in r.error["message"], r
    assert not (user.root / "state" / "x.json").exists()


def test_a_repo_without_a_dev_container_points_to_devcontainer_init(user: User, github: FakeGitHub) -> None:
    github.add_repo("student/bare", devcontainer=None)
    r = user.mlops("--json", "up", "codespace", "x", "--repo", "student/bare")
    assert r.code == 4 and r.error["code"] == "no-devcontainer"
    assert "mlops-env devcontainer init" in r.error["hint"] and posts(github) == []
    github.add_repo("student/top", devcontainer=DEVCONTAINER, path=".devcontainer.json")
    ok = user.mlops("--json", "up", "codespace", "y", "--repo", "student/top")
    assert ok.code == 0 and posts(github)[0]["devcontainer_path"] == ".devcontainer.json"  # type: ignore[index]


def test_a_dev_container_without_sshd_is_warned_about(user: User, github: FakeGitHub) -> None:
    github.add_repo("student/nossh", devcontainer='{"image": "mcr.microsoft.com/devcontainers/base:noble"}')
    r = user.mlops("up", "codespace", "x", "--repo", "student/nossh")
    assert r.code == 0 and "ghcr.io/devcontainers/features/sshd:1" in r.stderr


def test_missing_scope_and_expired_token_name_the_fix(user: User, github: FakeGitHub) -> None:
    github.scopes = "gist, read:org, repo"
    r = user.mlops("--json", "up", "codespace", "x", "--repo", REPO)
    assert r.code == 4 and r.error["code"] == "github-scope"
    assert "gh auth refresh -h github.com -s codespace" in r.error["hint"] and posts(github) == []
    github.scopes = "codespace, repo"
    bad = make_user(user.root.parent / "other", github.base, "gho_" + "E" * 36)
    r2 = bad.mlops("--json", "up", "codespace", "x", "--repo", REPO)
    assert r2.code == 4 and r2.error["code"] == "github-auth" and "expired" in r2.error["message"]
    assert "gh auth refresh -h github.com -s codespace" in r2.error["hint"]
    assert "E" * 36 not in r2.stdout + r2.stderr + bad.everything_written()


def test_a_redirect_to_another_origin_fails_cleanly_and_never_carries_the_token(user: User, github: FakeGitHub) -> None:
    """The API answers one call with a redirect to another loopback port (a compromised proxy, a
    wrong MLOPS_ENV_GITHUB_API_URL): the server there never sees an Authorization header, the
    run ends with one clear error (exit 5) and creates nothing."""
    with Eavesdropper().serve() as spy:
        github.redirect("GET", "/repos/student/mlops-zoomcamp", f"{spy.url}/repos/student/mlops-zoomcamp", status=307)
        r = user.mlops("--json", "up", "codespace", "x", "--repo", REPO)
    assert len(spy.authorization_headers()) == 0, "the token went to another origin"
    assert r.code == 5 and r.error["code"] == "github-redirect", r
    assert spy.url in r.error["message"] and "MLOPS_ENV_GITHUB_API_URL" in r.error["hint"]
    assert "Traceback" not in r.stderr and posts(github) == [] and github.live() == []
    assert_token_nowhere(user, github, r)


def test_a_plain_http_api_url_is_refused_unless_loopback(tmp_path: Path, github: FakeGitHub) -> None:
    u = make_user(tmp_path / "u", "http://api.github.example", github.token)
    r = u.mlops("--json", "up", "codespace", "x", "--repo", REPO)
    assert r.code == 2 and r.error["code"] == "insecure-url", r
    assert "MLOPS_ENV_GITHUB_API_URL" in r.error["message"] and "https://" in r.error["hint"]
    assert github.calls == [] and "Traceback" not in r.stderr


def test_no_token_anywhere(tmp_path: Path, github: FakeGitHub) -> None:
    u = make_user(tmp_path / "u", github.base, None)
    r = u.mlops("--json", "up", "codespace", "x", "--repo", REPO)
    assert r.code == 4 and r.error["code"] == "github-no-token" and "gh auth login" in r.error["hint"]


def test_the_token_from_gh_auth_token_is_used_and_masked(tmp_path: Path, github: FakeGitHub) -> None:
    github.token = "a-token-of-no-known-shape-" + "Q" * 20  # only the exact-value masking can hide it
    u = make_user(tmp_path / "u", github.base, None, gh_dir=install_fake_gh(tmp_path / "bin"))
    u.extra["FAKE_GH_TOKEN"] = github.token
    with host_key_server() as (port, _):
        u.extra["FAKE_GH_SSHD"] = f"127.0.0.1:{port}"
        r = u.mlops("-v", "--json", "up", "codespace", "x", "--repo", REPO, "--provision-only")
        assert r.code == 0, r
    assert ["auth", "token"] in u.gh_calls()
    assert_token_nowhere(u, github, r)


def test_rate_limit_with_retry_after_is_waited_out(user: User, github: FakeGitHub) -> None:
    github.fail("POST", r"/repos/.*/codespaces", 429, {"message": "API rate limit exceeded"}, {"Retry-After": "1"})
    t0 = time.monotonic()
    r = user.mlops("up", "codespace", "x", "--repo", REPO)
    assert r.code == 0, r
    assert time.monotonic() - t0 >= 1.0 and "waiting 1 s as GitHub asks" in r.stderr
    assert len(posts(github)) == 2 and len(github.live()) == 1


def test_two_codespaces_with_the_name_are_refused(user: User, github: FakeGitHub) -> None:
    repo = github.repos[REPO]
    github.add_codespace(repo, "mlops-env-dup")
    github.add_codespace(repo, "mlops-env-dup")
    r = user.mlops("--json", "up", "codespace", "dup", "--repo", REPO)
    assert r.code == 2 and r.error["code"] == "ambiguous" and "gh codespace delete" in r.error["hint"]
    assert posts(github) == []


def test_a_failed_codespace_is_reported(user: User, github: FakeGitHub) -> None:
    cs = github.add_codespace(github.repos[REPO], "mlops-env-f", state="Failed")
    r = user.mlops("--json", "up", "codespace", "f", "--repo", REPO)
    assert r.code == 1 and r.error["code"] == "codespace-failed" and f"gh codespace logs -c {cs.name}" in r.error["hint"]


@pytest.mark.parametrize("args,code", [
    (["--idle-timeout", "1m"], "invalid-option"), (["--idle-timeout", "5h"], "invalid-option"),
    (["--retention", "31d"], "invalid-option"), (["--retention", "soon"], "invalid-option"),
    (["--repo", "not a repo"], "invalid-option"), ([], "repo-missing"),
])
def test_bad_options(user: User, github: FakeGitHub, args: list[str], code: str) -> None:
    if "--repo" not in args and code != "repo-missing":
        args = [*args, "--repo", REPO]
    r = user.mlops("--json", "up", "codespace", "x", *args)
    assert r.code == 2 and r.error["code"] == code, r
    assert github.requests("POST") == []


def test_another_repo_for_the_same_workstation_is_refused(user: User, github: FakeGitHub) -> None:
    assert user.mlops("up", "codespace", "x", "--repo", REPO).code == 0
    github.add_repo("student/other")
    r = user.mlops("--json", "up", "codespace", "x", "--repo", "student/other")
    assert r.code == 2 and r.error["code"] == "repo-mismatch"


def test_dry_run_changes_nothing(user: User, github: FakeGitHub) -> None:
    r = user.mlops("--json", "up", "codespace", "d", "--repo", REPO, "--dry-run")
    assert r.code == 0, r
    plan = "\n".join(r.data["provider_plan"])
    assert "create mlops-env-d in student/mlops-zoomcamp@main on standardLinux32gb" in plan
    assert "4 core-hours per running hour" in plan and "still bills storage" in plan
    assert {m for m, _, _ in github.requests()} == {"GET"}
    assert not (user.root / "state").exists()


# -- the SSH alias with the (fake) GitHub CLI, no login -------------------------------------------
def test_provision_only_writes_the_alias_through_gh_and_pins_the_key(gh_user: User, github: FakeGitHub) -> None:
    gh_user.ssh_config.write_text("Host *\n    ServerAliveInterval 60\n")
    with host_key_server() as (port, key):
        gh_user.extra["FAKE_GH_SSHD"] = f"127.0.0.1:{port}"
        r = gh_user.mlops("--json", "up", "codespace", "a", "--repo", REPO, "--provision-only")
        assert r.code == 0, r
        again = gh_user.mlops("--json", "up", "codespace", "a", "--provision-only")
        assert again.code == 0 and {s["id"]: s["status"] for s in again.data["steps"]} == \
            {"provision": "unchanged", "ssh-config": "unchanged"}
    name = r.data["codespace"]["name"]
    assert (r.data["alias"], r.data["user"], r.data["ssh_command"]) == ("mlops-a", "vscode", "ssh mlops-a")
    assert gh_user.ssh_config.read_text().startswith(f"Include {gh_user.root / 'ssh' / 'config'}\n")
    assert (gh_user.root / "ssh" / "known_hosts").read_text().endswith(f"mlops-env-a {key}\n")
    g = gh_user.ssh_g("mlops-a")
    assert g.returncode == 0, g.stderr
    opts = dict(line.split(" ", 1) for line in g.stdout.splitlines() if " " in line)
    assert opts["proxycommand"] == (f"{gh_user.gh_dir}/gh codespace ssh -c {name} --stdio -- -i "
                                    f"{gh_user.root}/keys/id_ed25519")
    assert opts["stricthostkeychecking"] == "true" and opts["hostkeyalias"] == "mlops-env-a"
    assert "StrictHostKeyChecking no" not in (gh_user.root / "ssh" / "config").read_text()
    st = gh_user.mlops("--json", "status", "a")
    assert st.data["host_key"].startswith("SHA256:")
    code = gh_user.mlops("--json", "code", "a")  # `code` is not installed here: the command is printed
    assert code.data == {"command": "code --remote ssh-remote+mlops-a /workspaces/mlops-zoomcamp", "launched": False}


def test_the_state_and_log_files_hold_no_token(gh_user: User, github: FakeGitHub) -> None:
    with host_key_server() as (port, _):
        gh_user.extra["FAKE_GH_SSHD"] = f"127.0.0.1:{port}"
        runs = [gh_user.mlops("-v", "--debug", "up", "codespace", "t", "--repo", REPO, "--provision-only"),
                gh_user.mlops("--json", "status", "t"), gh_user.mlops("--json", "stop", "t", "--yes"),
                gh_user.mlops("--json", "down", "t", "--yes")]
    assert [r.code for r in runs] == [0, 0, 0, 0], runs
    logs = list((gh_user.root / "logs").glob("*.log"))
    assert len(logs) == 4 and any("POST /repos/student/mlops-zoomcamp/codespaces" in p.read_text() for p in logs)
    assert_token_nowhere(gh_user, github, *runs)
    state_files = list((gh_user.root / "state").glob("*.json"))
    assert all(github.token not in json.dumps(json.loads(p.read_text())) for p in state_files)
