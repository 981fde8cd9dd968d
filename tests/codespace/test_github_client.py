"""mlops_env.providers.codespace.github against the STAND-IN GitHub API (fake_github.py) over real loopback HTTP:
where the token comes from, missing scope and expired token with the exact fix, rate limits
waited out as GitHub asks (Retry-After, x-ratelimit-reset) within a bound, retries of reads
only, and the token masked in logs and JSON."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cshelp import install_fake_gh, path_without_gh
from fake_github import Eavesdropper, FakeGitHub

from mlops_env.errors import ExitCode, PrereqError, UsageError
from mlops_env.output import mask_secrets, register_secret
from mlops_env.providers.codespace.github import (
    REFRESH,
    GitHub,
    GitHubError,
    Token,
    api_url,
    find_token,
)


def client(fake: FakeGitHub, token: str | None = None, **kw: object) -> tuple[GitHub, list[float]]:
    waits: list[float] = []
    gh = GitHub(Token(token or fake.token, "GH_TOKEN"), base_url=fake.base, sleep=waits.append, **kw)  # type: ignore[arg-type]
    return gh, waits


def test_token_order_env_then_gh(tmp_path: Path) -> None:
    base = {"PATH": path_without_gh()}
    assert find_token({**base, "GH_TOKEN": "a" * 40, "GITHUB_TOKEN": "b" * 40}).source == "GH_TOKEN"
    assert find_token({**base, "GITHUB_TOKEN": "b" * 40}).value == "b" * 40
    gh_dir = install_fake_gh(tmp_path / "bin")
    env = {"PATH": f"{gh_dir}{os.pathsep}{path_without_gh()}", "FAKE_GH_TOKEN": "gho_" + "c" * 36}
    t = find_token(env)
    assert (t.value, t.source) == ("gho_" + "c" * 36, "gh auth token")
    assert "c" * 36 not in repr(t)  # never in a repr (tracebacks, debug logs)


def test_no_token_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(PrereqError) as e:
        find_token({"PATH": path_without_gh()})
    assert e.value.code == "github-no-token" and "not installed" in e.value.message
    assert "gh auth login -h github.com -s codespace" in (e.value.hint or "")
    gh_dir = install_fake_gh(tmp_path / "bin")  # gh present but not logged in
    with pytest.raises(PrereqError) as e:
        find_token({"PATH": f"{gh_dir}{os.pathsep}{path_without_gh()}"})
    assert "not logged in" in e.value.message


def test_missing_codespace_scope_is_refused_on_the_first_answer(github: FakeGitHub) -> None:
    github.scopes = "gist, read:org, repo"
    gh, _ = client(github)
    with pytest.raises(GitHubError) as e:
        gh.get("/user")
    assert e.value.code == "github-scope" and e.value.exit_code == ExitCode.PREREQ
    assert REFRESH in (e.value.hint or "") and "gist, read:org, repo" in e.value.message
    github.scopes = None  # a fine-grained token: no scopes header, nothing to check up front
    assert client(github)[0].get("/user")["login"] == "student"


def test_expired_token_names_the_refresh_command(github: FakeGitHub) -> None:
    gh, _ = client(github, token="gho_" + "x" * 36)
    with pytest.raises(GitHubError) as e:
        gh.get("/user")
    assert e.value.code == "github-auth" and e.value.status == 401
    assert "expired or was revoked" in e.value.message and REFRESH in (e.value.hint or "")


@pytest.mark.parametrize("status,headers,body", [
    (429, {"Retry-After": "2"}, {"message": "API rate limit exceeded"}),
    (403, {"Retry-After": "2"}, {"message": "You have exceeded a secondary rate limit."}),
])
def test_rate_limits_wait_as_github_asks(github: FakeGitHub, status: int, headers: dict[str, str],
                                        body: dict[str, str]) -> None:
    github.fail("POST", r"/repos/.*/codespaces", status, body, headers, times=2)
    gh, waits = client(github)
    resp = gh.request("POST", "/repos/student/mlops-zoomcamp/codespaces", body={"machine": "basicLinux32gb"},
                      ok=(201,))
    assert resp.status == 201 and waits == [2.0, 2.0]
    assert len(github.requests("POST")) == 3


def test_primary_rate_limit_waits_until_reset(github: FakeGitHub) -> None:
    reset = int(time.time()) + 3
    github.fail("GET", "/user", 403, {"message": "API rate limit exceeded for user ID 1."},
                {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    gh, waits = client(github)
    assert gh.get("/user")["login"] == "student"
    assert len(waits) == 1 and 2.0 <= waits[0] <= 5.0


def test_a_rate_limit_beyond_the_bound_says_when_to_retry(github: FakeGitHub) -> None:
    github.fail("GET", "/user", 429, {"message": "API rate limit exceeded"}, {"Retry-After": "3600"})
    gh, waits = client(github)
    with pytest.raises(GitHubError) as e:
        gh.get("/user")
    assert waits == [] and e.value.code == "github-rate-limited" and "3600 s" in e.value.message
    assert "run the same command again after" in (e.value.hint or "")


def test_reads_are_retried_a_post_is_not(github: FakeGitHub) -> None:
    github.fail("GET", "/user", 502, {"message": "Server Error"}, times=2)
    gh, _ = client(github)
    assert gh.get("/user")["login"] == "student"
    github.fail("POST", r"/repos/.*/codespaces", 502, {"message": "Server Error"})
    with pytest.raises(GitHubError) as e:
        gh.request("POST", "/repos/student/mlops-zoomcamp/codespaces", body={}, ok=(201,))
    assert e.value.code == "github-unavailable" and len(github.requests("POST")) == 1


def test_pagination_follows_total_count(github: FakeGitHub) -> None:
    repo = github.repos["student/mlops-zoomcamp"]
    for i in range(130):
        github.add_codespace(repo, f"other-{i}")
    gh, _ = client(github)
    assert len(gh.paginate("/user/codespaces", "codespaces")) == 130
    assert [q for m, p, q, _ in github.calls if p == "/user/codespaces"][-1]["page"] == ["2"]


def test_api_url_override_and_validation() -> None:
    assert api_url({"MLOPS_ENV_GITHUB_API_URL": "https://ghe.example.com/api/v3/"}) == "https://ghe.example.com/api/v3"
    assert api_url({}) == "https://api.github.com"
    for loopback in ("http://127.0.0.1:8080", "http://localhost:9/api", "http://[::1]:80"):
        assert api_url({"MLOPS_ENV_GITHUB_API_URL": loopback}) == loopback
    for bad, code in (("file:///etc/passwd", "bad-url"), ("http://ghe.example.com/api/v3", "insecure-url"),
                      ("http://10.0.0.7", "insecure-url"), ("api.github.com", "bad-url"),
                      ("https://h:99999", "bad-url")):
        with pytest.raises(UsageError) as e:
            api_url({"MLOPS_ENV_GITHUB_API_URL": bad})
        assert e.value.code == code and e.value.exit_code == ExitCode.USAGE, bad
        assert "MLOPS_ENV_GITHUB_API_URL" in e.value.message and "https://" in (e.value.hint or "")


def test_a_redirect_to_another_origin_never_gets_the_token(github: FakeGitHub) -> None:
    """The API answers with a redirect to another loopback port: not followed, no token there,
    one clear error. (urllib, used before, copied the Authorization header onto the redirect.)"""
    with Eavesdropper().serve() as spy:
        github.redirect("GET", "/user", f"{spy.url}/user", status=302)
        gh, waits = client(github)
        with pytest.raises(GitHubError) as e:
            gh.get("/user")
        assert len(spy.authorization_headers()) == 0 and github.token not in repr(spy.seen)
        assert e.value.code == "github-redirect" and e.value.exit_code == ExitCode.CONNECT
        assert spy.url in e.value.message and "does not send your token there" in e.value.message
        for status in (301, 303, 307, 308):  # every kind of redirect, reads and writes
            github.redirect("POST", r"/repos/.*/codespaces", f"{spy.url}/x", status=status)
            with pytest.raises(GitHubError) as e:
                gh.request("POST", "/repos/student/mlops-zoomcamp/codespaces", body={}, ok=(201,))
            assert e.value.code == "github-redirect", status
        assert spy.seen == [] and waits == []  # never contacted, never retried


def test_a_redirect_within_the_api_origin_is_followed_with_the_token(github: FakeGitHub) -> None:
    github.redirect("GET", "/users/renamed", f"{github.base}/user", status=301)
    gh, _ = client(github)
    assert gh.get("/users/renamed")["login"] == "student"  # the fake answers /user only with the token
    assert [p for _, p, _ in github.requests("GET")] == ["/users/renamed", "/user"]


def test_registered_tokens_are_masked_whatever_their_shape() -> None:
    odd = "tok-" + "Z9" * 12  # no known prefix
    register_secret(odd)
    assert odd not in mask_secrets(f"url=https://x?a={odd} and {odd}")
    fine_grained = "github_pat_11ABCDEFG0" + "x" * 60
    assert fine_grained not in mask_secrets(f"GH_TOKEN {fine_grained}")
