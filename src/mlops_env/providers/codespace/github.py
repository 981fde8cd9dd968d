"""A small GitHub REST client (``requests``, through ``httpclient``) for the Codespaces endpoints
``up codespace`` uses, and where its token comes from.

Token, in this order: ``GH_TOKEN``, ``GITHUB_TOKEN`` (the names the GitHub CLI reads), then
``gh auth token``. Its value is registered with the output masking at once, is sent only in the
``Authorization`` header and only to the configured API origin: a redirect to any other origin
(another host or port, https -> http) is refused and not followed. It is never logged, saved
or printed.

``MLOPS_ENV_GITHUB_API_URL`` replaces ``https://api.github.com`` (GitHub Enterprise's
``https://HOST/api/v3``, or the tests' local stand-in). It must be https; plain http only to a
loopback host (exit 2 otherwise).

Errors become one ``GitHubError`` (an ``MlopsError``) with the fix: 401 (expired or revoked
token) and a missing ``codespace`` scope name ``gh auth refresh -h github.com -s codespace``.
Rate limits (429, or 403 with ``x-ratelimit-remaining: 0`` or a "secondary rate limit"
message) are waited out as GitHub asks (``Retry-After``, else ``x-ratelimit-reset``, else a
minute), within a bound; beyond it the error says when to retry. Reads are retried on 5xx and
network errors; a POST is never re-sent after an error that may have reached GitHub.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops_env.errors import ExitCode, MlopsError, PrereqError

log = logging.getLogger(__name__)

API_URL_ENV = "MLOPS_ENV_GITHUB_API_URL"
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
TOKEN_ENVS = ("GH_TOKEN", "GITHUB_TOKEN")
REFRESH = "gh auth refresh -h github.com -s codespace"
TIMEOUT = 30.0  # seconds per HTTP request
RATE_WAIT_MAX = 120.0  # total seconds one request may wait for rate limits before giving up
READ_RETRIES = 3  # extra attempts for a GET/DELETE after a 5xx or a network error


class GitHubError(MlopsError):
    """A refused or failed GitHub API call. ``status`` is the HTTP status (0: no answer),
    ``gh_message`` GitHub's own ``message``."""

    code = "github"
    exit_code = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None, *, code: str | None = None,
                 exit_code: ExitCode | None = None, status: int = 0, gh_message: str = "",
                 errors: list[Any] | None = None) -> None:
        super().__init__(message, hint, code=code, exit_code=exit_code)
        self.status = status
        self.gh_message = gh_message
        self.errors = errors or []


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    data: Any = None


@dataclass
class Token:
    value: str = field(repr=False)
    source: str  # "GH_TOKEN", "GITHUB_TOKEN" or "gh auth token"


def api_url(env: Mapping[str, str] | None = None) -> str:
    """The API's base URL: https, or http to a loopback host; ``UsageError`` (exit 2) otherwise."""
    from mlops_env.httpclient import check_url

    env = os.environ if env is None else env
    url = (env.get(API_URL_ENV) or DEFAULT_API_URL).strip().rstrip("/")
    return check_url(url, API_URL_ENV, hint=f"unset it (default {DEFAULT_API_URL}) or give the API's "
                     "https:// base URL (GitHub Enterprise: https://HOST/api/v3)")


def find_token(env: Mapping[str, str] | None = None, *, gh: str | None = None) -> Token:
    """The token to use, from the environment or the GitHub CLI; registered for masking."""
    from mlops_env.output import register_secret

    env = os.environ if env is None else env
    for name in TOKEN_ENVS:
        value = (env.get(name) or "").strip()
        if value:
            register_secret(value)
            return Token(value, name)
    if not gh:
        from mlops_env.providers.codespace.ghcli import find_gh

        gh = find_gh(env)
    if gh:
        try:
            proc = subprocess.run(  # noqa: S603 - fixed argv
                [gh, "auth", "token"], capture_output=True, text=True, timeout=15,
                stdin=subprocess.DEVNULL, env=dict(env), check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.debug("gh auth token failed: %s", type(e).__name__)
        else:
            value = proc.stdout.strip()
            if proc.returncode == 0 and value and " " not in value:
                register_secret(value)
                return Token(value, "gh auth token")
            log.debug("gh auth token: exit %s", proc.returncode)
    raise PrereqError(
        "no GitHub token: GH_TOKEN and GITHUB_TOKEN are not set"
        + (" and the GitHub CLI is not logged in" if gh else " and the GitHub CLI (gh) is not installed"),
        hint="log in with `gh auth login -h github.com -s codespace` (https://cli.github.com), or set GH_TOKEN "
        "to a token with the `codespace` scope",
        code="github-no-token")


class GitHub:
    """One authenticated client. ``on_wait(message)`` is told about rate-limit waits."""

    def __init__(self, token: Token, *, base_url: str | None = None,
                 on_wait: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, rate_wait_max: float = RATE_WAIT_MAX) -> None:
        self.token = token
        self.base_url = (base_url or api_url()).rstrip("/")
        self._session: Any = None
        self.on_wait = on_wait or (lambda message: None)
        self.sleep = sleep
        self.rate_wait_max = rate_wait_max
        self.calls = 0
        self.scopes_checked = False

    # -- requests --------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Any = None, ok: tuple[int, ...] = (200,)) -> Response:
        """One API call; raises ``GitHubError`` unless the status is in ``ok``."""
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            resp = self._send(method, url, data, path, idempotent=method in ("GET", "DELETE"), attempt=attempt)
            if resp.status in ok:
                self._check_scopes(resp)
                return resp
            wait = _rate_limit_wait(resp)
            if wait is not None:
                if waited + wait > self.rate_wait_max:
                    raise _rate_limit_error(resp, method, path, wait)
                msg = f"GitHub API rate limit: waiting {wait:.0f} s as GitHub asks (Retry-After)"
                log.info("%s %s: %s", method, path, msg)
                self.on_wait(msg)
                self.sleep(wait)
                waited += wait
                continue
            if resp.status >= 500 and method in ("GET", "DELETE") and attempt <= READ_RETRIES:
                log.info("%s %s: %s, retrying", method, path, resp.status)
                self.sleep(min(2.0 * attempt, 5.0))
                continue
            raise self._error(resp, method, path)

    def _send(self, method: str, url: str, data: bytes | None, path: str, *, idempotent: bool,
              attempt: int) -> Response:
        import requests

        from mlops_env import __version__, httpclient

        if self._session is None:
            self._session = httpclient.session()
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token.value}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"mlops-env/{__version__}",
            **({"Content-Type": "application/json"} if data is not None else {}),
        }
        self.calls += 1
        t0 = time.monotonic()
        try:
            # Only this origin ever gets the header: a redirect elsewhere is refused, not followed.
            r = httpclient.send(self._session, method, url, headers=headers, data=data, timeout=TIMEOUT)
            status, answer_headers, raw = r.status_code, dict(r.headers.items()), r.content
        except httpclient.CrossOriginRedirect as e:
            log.debug("%s %s: redirect %s to another origin, not followed", method, path, e.status)
            raise GitHubError(
                f"the GitHub API at {self.base_url} redirected {method} {path} to another address "
                f"({_origin_text(e.location)}); mlops-env does not send your token there",
                hint=f"check {API_URL_ENV} (it must be the API's own base URL) and whether a proxy or "
                "captive portal redirects HTTPS; then run the same command again",
                code="github-redirect", exit_code=ExitCode.CONNECT, status=e.status) from None
        except requests.RequestException as e:
            reason = httpclient.error_reason(e)
            log.debug("%s %s: no answer (%s)", method, path, reason)
            if idempotent and attempt <= READ_RETRIES:
                self.sleep(min(2.0 * attempt, 5.0))
                return self._send(method, url, data, path, idempotent=idempotent, attempt=attempt + 1)
            raise GitHubError(
                f"cannot reach the GitHub API at {self.base_url} ({reason})",
                hint="check the network (and HTTPS_PROXY); then run the same command again",
                code="github-unreachable", exit_code=ExitCode.CONNECT) from None
        log.debug("%s %s -> %s (%.2fs)", method, path, status, time.monotonic() - t0)
        text = raw.decode("utf-8", "replace") if raw else ""
        try:
            parsed = json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            parsed = {"message": text.strip()[:300]}
        return Response(status, {k.lower(): v for k, v in answer_headers.items()}, parsed)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).data

    def paginate(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a ``{"total_count": N, key: [...]}`` list, 100 per page."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self.request("GET", path, params={**params, "per_page": 100, "page": page}).data or {}
            batch = list(data.get(key) or [])
            items += batch
            total = data.get("total_count")
            if len(batch) < 100 or (isinstance(total, int) and len(items) >= total) or page >= 50:
                return items
            page += 1

    # -- errors ----------------------------------------------------------------------------------
    def _check_scopes(self, resp: Response) -> None:
        """Classic and OAuth tokens (gh's) list their scopes in ``X-OAuth-Scopes``: refuse one
        without ``codespace`` on the first answer, before anything is asked of Codespaces."""
        if self.scopes_checked:
            return
        self.scopes_checked = True
        scopes = resp.headers.get("x-oauth-scopes")
        if scopes is None:  # a fine-grained token or an app token: no scopes header
            return
        have = {s.strip() for s in scopes.split(",") if s.strip()}
        if "codespace" not in have:
            raise GitHubError(
                f"the GitHub token (from {self.token.source}) lacks the `codespace` scope "
                f"(it has: {', '.join(sorted(have)) or 'none'})",
                hint=f"run `{REFRESH}` (adds the scope to gh's token), or use a token with the codespace scope",
                code="github-scope", exit_code=ExitCode.PREREQ, status=resp.status)

    def _error(self, resp: Response, method: str, path: str) -> GitHubError:
        d = resp.data if isinstance(resp.data, dict) else {}
        gh_msg = str(d.get("message") or "").strip()
        errors = d.get("errors") if isinstance(d.get("errors"), list) else []
        detail = gh_msg + (f" ({_errors_text(errors)})" if errors else "")
        where = f"GitHub API {method} {path}: {resp.status}" + (f" {detail}" if detail else "")
        st = resp.status
        if st == 401:
            return GitHubError(
                f"GitHub rejected the token from {self.token.source} ({gh_msg or 'Bad credentials'}): it has "
                "expired or was revoked",
                hint=f"run `{REFRESH}` (or `gh auth login -h github.com -s codespace`), or set GH_TOKEN to a valid token",
                code="github-auth", exit_code=ExitCode.PREREQ, status=st, gh_message=gh_msg)
        if st == 403:
            scopes = resp.headers.get("x-oauth-scopes")
            if (scopes is not None and "codespace" not in scopes) or "scope" in gh_msg.lower():
                return GitHubError(
                    f"{where}: the token (from {self.token.source}) lacks the `codespace` scope",
                    hint=f"run `{REFRESH}`", code="github-scope", exit_code=ExitCode.PREREQ,
                    status=st, gh_message=gh_msg)
            if "personal access token" in gh_msg.lower():
                return GitHubError(
                    f"{where}", hint="give the fine-grained token the Codespaces permission (read and write) "
                    f"for this repository, or use gh's token (`{REFRESH}`)", code="github-forbidden",
                    exit_code=ExitCode.PREREQ, status=st, gh_message=gh_msg)
            return GitHubError(where, hint="check that your account may use Codespaces for this repository",
                               code="github-forbidden", exit_code=ExitCode.PREREQ, status=st, gh_message=gh_msg)
        if st == 402:
            return GitHubError(
                f"{where}: a Codespaces billing problem", code="github-billing", exit_code=ExitCode.PREREQ,
                hint="see https://github.com/settings/billing: the included usage may be used up, or a "
                "spending limit for Codespaces is needed", status=st, gh_message=gh_msg)
        if st == 404:
            return GitHubError(where, hint="check the name; a private repository needs a token that can see it",
                               code="github-not-found", exit_code=ExitCode.NOT_FOUND, status=st, gh_message=gh_msg)
        if st in (400, 422):
            return GitHubError(where, hint="check the options; GitHub's message says which one",
                               code="github-invalid", exit_code=ExitCode.USAGE, status=st, gh_message=gh_msg,
                               errors=errors)
        if st >= 500:
            return GitHubError(where, hint="GitHub had a problem; run the same command again in a minute "
                               "(https://www.githubstatus.com)", code="github-unavailable",
                               exit_code=ExitCode.CONNECT, status=st, gh_message=gh_msg)
        return GitHubError(where, code="github-error", status=st, gh_message=gh_msg, errors=errors,
                           hint="see the log file")


def _origin_text(url: str) -> str:
    """``scheme://host:port`` of a URL (no path or query: they may carry anything)."""
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.hostname or '?'}" + (f":{u.port}" if u.port else "") if u.scheme else "?"


def _errors_text(errors: list[Any]) -> str:
    out = []
    for e in errors[:3]:
        if isinstance(e, dict):
            out.append(str(e.get("message") or " ".join(str(e.get(k, "")) for k in ("field", "code")).strip()))
        else:
            out.append(str(e))
    return "; ".join(x for x in out if x)


def _rate_limit_wait(resp: Response) -> float | None:
    """Seconds to wait before retrying, when ``resp`` is a rate-limit refusal; else None."""
    if resp.status not in (403, 429):
        return None
    h = resp.headers
    msg = str((resp.data or {}).get("message") or "").lower() if isinstance(resp.data, dict) else ""
    limited = resp.status == 429 or h.get("x-ratelimit-remaining") == "0" or "rate limit" in msg \
        or "retry-after" in h
    if not limited:
        return None
    if h.get("retry-after", "").strip().isdigit():
        return max(1.0, float(h["retry-after"]))
    if h.get("x-ratelimit-remaining") == "0" and h.get("x-ratelimit-reset", "").strip().isdigit():
        return max(1.0, float(h["x-ratelimit-reset"]) - time.time() + 1)
    return 60.0  # GitHub: "wait for at least one minute before retrying"


def _rate_limit_error(resp: Response, method: str, path: str, wait: float) -> GitHubError:
    when = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
    msg = str((resp.data or {}).get("message") or "rate limit exceeded") if isinstance(resp.data, dict) else ""
    return GitHubError(
        f"GitHub API rate limit on {method} {path}: {msg}; GitHub asks to wait {wait:.0f} s",
        hint=f"run the same command again after {when}", code="github-rate-limited",
        exit_code=ExitCode.CONNECT, status=resp.status, gh_message=msg)
