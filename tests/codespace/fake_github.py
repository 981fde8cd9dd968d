"""STAND-IN for GitHub's REST API: exactly the endpoints `mlops-env up codespace` uses, written
from GitHub's documented request and response shapes (docs.github.com/rest/codespaces,
API version 2022-11-28; github/rest-api-description), served over real HTTP on 127.0.0.1.

This is NOT GitHub. What it models:

* auth: ``Authorization: Bearer TOKEN`` (or ``token TOKEN``) must equal ``FakeGitHub.token``,
  else 401 ``{"message": "Bad credentials", ...}``; every answer carries ``X-OAuth-Scopes``
  (``scopes``; ``None`` leaves it out, like a fine-grained token) and ``X-RateLimit-*``.
* ``GET /user``; ``GET /repos/{owner}/{repo}`` (404 unknown, 403 ``no_access``);
  ``GET /repos/{owner}/{repo}/contents/{path}?ref=`` (the dev container files, base64);
  ``GET /repos/{owner}/{repo}/codespaces/machines?ref=`` ``{"total_count", "machines"}``;
  ``POST /repos/{owner}/{repo}/codespaces`` (201 + codespace; a machine not in the repo's list
  is refused with 422 -- GitHub's exact wording for that refusal is not documented, the text
  here is ours);
  ``GET /user/codespaces[?repository_id=]`` ``{"total_count", "codespaces"}``, paginated;
  ``GET /user/codespaces/{name}``; ``POST .../start`` and ``.../stop`` (200 + codespace);
  ``DELETE /user/codespaces/{name}`` (202).
* states by the clock: a new codespace is ``Queued`` for ``queued_s``, ``Provisioning`` for
  ``provisioning_s`` (``math.inf``: until the test calls ``Codespace.go``), then ``Available``;
  stop -> ``ShuttingDown`` for ``stop_s`` -> ``Shutdown``; start -> ``Starting`` for ``start_s``
  -> ``Available``. Or, with ``states_per_poll`` set (e.g. ``("Queued", "Provisioning",
  "Available")``), by what the client saw: the create answer shows the first state and each
  ``GET /user/codespaces/{name}`` the next one (the last one stays); no clock, no timing luck.
* injected faults: ``fail(method, path_regex, status, body, headers, times)`` answers the next
  matching requests with that status (a 429 with ``Retry-After``, a 403 secondary rate limit, a
  402 billing refusal, a 403 quota refusal...); ``redirect(method, path_regex, location)``
  answers with a redirect (e.g. to ``Eavesdropper``, another loopback server that records the
  headers it is sent).

Every request is logged in ``calls`` as ``(method, path, query, json body)``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DOCS = "https://docs.github.com/rest/codespaces/codespaces"
GIB = 2**30

# GitHub's machine types as the machines endpoint describes them (name, display name, cores,
# memory, storage); which ones a repository offers is up to GitHub (here: ``Repo.machines``).
MACHINES = {
    "basicLinux32gb": ("2 cores, 8 GB RAM, 32 GB storage", 2, 8, 32),
    "standardLinux32gb": ("4 cores, 16 GB RAM, 32 GB storage", 4, 16, 32),
    "premiumLinux": ("8 cores, 32 GB RAM, 64 GB storage", 8, 32, 64),
    "largePremiumLinux": ("16 cores, 64 GB RAM, 128 GB storage", 16, 64, 128),
}
DEVCONTAINER = """{
  "name": "MLOps Zoomcamp (mlops-env)",
  "build": {"dockerfile": "../devcontainer/Dockerfile"},
  "features": {
    "ghcr.io/devcontainers/features/docker-in-docker:2": {},
    "ghcr.io/devcontainers/features/sshd:1": {}
  }
}
"""


def machine_json(name: str) -> dict[str, Any]:
    display, cpus, mem, disk = MACHINES[name]
    return {"name": name, "display_name": display, "operating_system": "linux",
            "storage_in_bytes": disk * GIB, "memory_in_bytes": mem * GIB, "cpus": cpus,
            "prebuild_availability": None}


@dataclass
class Repo:
    full_name: str
    id: int
    default_branch: str = "main"
    private: bool = False
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # ref -> path -> text
    machines: tuple[str, ...] = ("basicLinux32gb", "standardLinux32gb", "premiumLinux")
    no_access: bool = False  # 403 on everything about it

    def json(self, base: str) -> dict[str, Any]:
        owner, name = self.full_name.split("/")
        return {"id": self.id, "node_id": f"R_{self.id}", "name": name, "full_name": self.full_name,
                "private": self.private, "owner": user_json(owner, base), "html_url": f"https://github.com/{self.full_name}",
                "description": None, "fork": False, "url": f"{base}/repos/{self.full_name}",
                "default_branch": self.default_branch, "visibility": "private" if self.private else "public",
                "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}}


def user_json(login: str, base: str) -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**7, "node_id": f"U_{login}", "avatar_url": "",
            "gravatar_id": "", "url": f"{base}/users/{login}", "html_url": f"https://github.com/{login}",
            "type": "User", "site_admin": False}


@dataclass
class Codespace:
    name: str
    display_name: str
    repo: Repo
    ref: str
    machine: str
    created: float
    idle_timeout_minutes: int = 30
    retention_period_minutes: int | None = 43200
    devcontainer_path: str | None = ".devcontainer/devcontainer.json"
    timeline: list[tuple[str, float]] = field(default_factory=list)  # (state, until monotonic time; inf = stays)
    deleted: bool = False
    has_uncommitted_changes: bool = False
    ahead: int = 0
    per_poll: tuple[str, ...] = ()  # states shown one per GET (FakeGitHub.states_per_poll)
    polls: int = 0

    def state(self) -> str:
        if self.per_poll:
            return self.per_poll[min(self.polls, len(self.per_poll) - 1)]
        now = time.monotonic()
        for st, until in self.timeline:
            if now < until:
                return st
        return self.timeline[-1][0]

    def go(self, *steps: tuple[str, float]) -> None:
        """Replace the timeline: each (state, seconds); the last one stays."""
        self.per_poll = ()
        t = time.monotonic()
        self.timeline = []
        for st, secs in steps[:-1]:
            t += secs
            self.timeline.append((st, t))
        self.timeline.append((steps[-1][0], float("inf")))

    def json(self, base: str, login: str) -> dict[str, Any]:
        st = self.state()
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))
        ret = self.retention_period_minutes
        return {
            "id": abs(hash(self.name)) % 10**7, "name": self.name, "display_name": self.display_name,
            "environment_id": "26a7c758-7299-4a73-b978-5a92a7ae98a0", "owner": user_json(login, base),
            "billable_owner": user_json(login, base), "repository": self.repo.json(base),
            "machine": machine_json(self.machine), "devcontainer_path": self.devcontainer_path, "prebuild": False,
            "created_at": iso, "updated_at": iso, "last_used_at": iso, "state": st,
            "url": f"{base}/user/codespaces/{self.name}",
            "git_status": {"ahead": self.ahead, "behind": 0, "has_unpushed_changes": self.ahead > 0,
                           "has_uncommitted_changes": self.has_uncommitted_changes, "ref": self.ref},
            "location": "WestEurope", "idle_timeout_minutes": self.idle_timeout_minutes,
            "web_url": f"https://{self.name}.github.dev", "machines_url": f"{base}/user/codespaces/{self.name}/machines",
            "start_url": f"{base}/user/codespaces/{self.name}/start", "stop_url": f"{base}/user/codespaces/{self.name}/stop",
            "pulls_url": None, "recent_folders": [], "runtime_constraints": {"allowed_port_privacy_settings": ["private"]},
            "pending_operation": False, "pending_operation_disabled_reason": None, "idle_timeout_notice": None,
            "retention_period_minutes": ret,
            "retention_expires_at": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + ret * 60))
                                     if ret and st == "Shutdown" else None),
            "last_known_stop_notice": None,
        }


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


class FakeGitHub:
    """The stand-in's state; ``serve()`` runs it on 127.0.0.1 (see the module docstring)."""

    def __init__(self, token: str | None = None, login: str = "student") -> None:
        self.token = token or "ghp_" + secrets.token_hex(18)  # looks like a classic token
        self.login = login
        self.scopes: str | None = "codespace, gist, read:org, repo"
        self.repos: dict[str, Repo] = {}
        self.codespaces: dict[str, Codespace] = {}
        self.calls: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.faults: list[Fault] = []
        self.queued_s, self.provisioning_s, self.stop_s, self.start_s = 0.3, 0.5, 0.3, 0.3
        self.states_per_poll: tuple[str, ...] = ()
        self.lock = threading.RLock()
        self.base = ""
        self._next_repo_id = 1000

    # -- set-up ----------------------------------------------------------------------------------
    def add_repo(self, full_name: str, *, devcontainer: str | None = DEVCONTAINER,
                 path: str = ".devcontainer/devcontainer.json", **kw: Any) -> Repo:
        self._next_repo_id += 1
        repo = Repo(full_name, self._next_repo_id, **kw)
        if devcontainer is not None:
            repo.files.setdefault(repo.default_branch, {})[path] = devcontainer
        self.repos[full_name.lower()] = repo
        return repo

    def fail(self, method: str, path: str, status: int, body: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.faults.append(Fault(method, re.compile(path), status, body or {"message": "injected"},
                                 headers or {}, times))

    def redirect(self, method: str, path: str, location: str, status: int = 302, times: int = 1) -> None:
        """Answer the next matching request(s) with a redirect to ``location``."""
        self.fail(method, path, status, {"message": "Moved"}, {"Location": location}, times)

    def add_codespace(self, repo: Repo, display_name: str, *, state: str = "Available", machine: str = "standardLinux32gb",
                      ref: str | None = None) -> Codespace:
        cs = Codespace(self._new_name(repo), display_name, repo, ref or repo.default_branch, machine, time.time())
        cs.go((state, 0))
        self.codespaces[cs.name] = cs
        return cs

    def _new_name(self, repo: Repo) -> str:
        # GitHub's names look like "monalisa-octocat-hello-world-g4wpq6h95q" (user, repo, random).
        return f"{self.login}-{repo.full_name.split('/')[1]}-{secrets.token_hex(5)}".lower()[:90]

    # -- inspection ------------------------------------------------------------------------------
    def requests(self, method: str | None = None, path: str | None = None) -> list[tuple[str, str, Any]]:
        with self.lock:
            return [(m, p, b) for m, p, _, b in self.calls
                    if (method is None or m == method) and (path is None or re.fullmatch(path, p))]

    def live(self) -> list[Codespace]:
        with self.lock:
            return [cs for cs in self.codespaces.values() if not cs.deleted]

    # -- HTTP ------------------------------------------------------------------------------------
    @contextmanager
    def serve(self) -> Iterator[FakeGitHub]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                u = urlsplit(self.path)
                query = parse_qs(u.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = "<invalid json>"
                with fake.lock:
                    fake.calls.append((self.command, unquote(u.path), query, body))
                    status, data, headers = fake.answer(self.command, unquote(u.path), query, body,
                                                        self.headers.get("Authorization") or "")
                out = b"" if data is None else json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
                self.send_header("X-RateLimit-Limit", "5000")
                self.send_header("X-RateLimit-Resource", "core")
                if fake.scopes is not None and status != 401:
                    self.send_header("X-OAuth-Scopes", fake.scopes)
                    self.send_header("X-Accepted-OAuth-Scopes", "codespace")
                for k, v in headers.items():
                    self.send_header(k, v)
                if "X-RateLimit-Remaining" not in headers:
                    self.send_header("X-RateLimit-Remaining", "4999")
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.base = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="fake-github", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()

    # -- the endpoints ---------------------------------------------------------------------------
    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any,
               auth: str) -> tuple[int, Any, dict[str, str]]:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or value != self.token:
            return 401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
                         "status": "401"}, {}
        for f in self.faults:
            if f.times > 0 and f.method == method and f.path.fullmatch(path):
                f.times -= 1
                return f.status, f.body, dict(f.headers)
        q = {k: v[0] for k, v in query.items()}
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if m:
            repo = self.repos.get(m.group(1).lower())
            if repo is None:
                return self._404()
            if repo.no_access:
                return 403, {"message": "Must have admin rights to Repository.", "documentation_url": DOCS}, {}
            return self._repo(method, repo, m.group(2) or "", q, body)
        if path == "/user" and method == "GET":
            return 200, user_json(self.login, self.base), {}
        if path == "/user/codespaces" and method == "GET":
            items = [cs for cs in self.live()
                     if "repository_id" not in q or str(cs.repo.id) == q["repository_id"]]
            return 200, self._page(items, q), {}
        m = re.fullmatch(r"/user/codespaces/([^/]+)(/start|/stop)?", path)
        if m:
            cs = self.codespaces.get(m.group(1))
            if cs is None or cs.deleted:
                return self._404()
            action = m.group(2)
            if method == "GET" and not action:
                cs.polls += 1
                return 200, cs.json(self.base, self.login), {}
            if method == "DELETE" and not action:
                cs.deleted = True
                return 202, {}, {}
            if method == "POST" and action == "/stop":
                if cs.state() in ("Available", "Starting"):
                    cs.go(("ShuttingDown", self.stop_s), ("Shutdown", 0))
                return 200, cs.json(self.base, self.login), {}
            if method == "POST" and action == "/start":
                st = cs.state()
                if st == "ShuttingDown":
                    return 409, {"message": "Codespace is shutting down", "documentation_url": DOCS}, {}
                if st in ("Shutdown", "Archived"):
                    cs.go(("Starting", self.start_s), ("Available", 0))
                return 200, cs.json(self.base, self.login), {}
        return self._404()

    def _repo(self, method: str, repo: Repo, rest: str, q: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if rest == "" and method == "GET":
            return 200, repo.json(self.base), {}
        m = re.fullmatch(r"/contents/(.+)", rest)
        if m and method == "GET":
            ref = q.get("ref") or repo.default_branch
            text = repo.files.get(ref, {}).get(m.group(1))
            if text is None:
                return self._404()
            return 200, {"type": "file", "encoding": "base64", "size": len(text), "name": m.group(1).split("/")[-1],
                         "path": m.group(1), "sha": secrets.token_hex(20),
                         "content": base64.encodebytes(text.encode()).decode()}, {}
        if rest == "/codespaces/machines" and method == "GET":
            ms = [machine_json(n) for n in repo.machines]
            return 200, {"total_count": len(ms), "machines": ms}, {}
        if rest == "/codespaces" and method == "GET":
            items = [cs for cs in self.live() if cs.repo is repo]
            return 200, self._page(items, q), {}
        if rest == "/codespaces" and method == "POST":
            b = body if isinstance(body, dict) else {}
            machine = b.get("machine") or repo.machines[0]
            if machine not in repo.machines:
                return 422, {"message": f"Machine type '{machine}' is not allowed for this repository",
                             "documentation_url": DOCS}, {}
            ref = b.get("ref") or repo.default_branch
            if ref not in repo.files and ref != repo.default_branch:
                return 422, {"message": f"Ref '{ref}' not found", "documentation_url": DOCS}, {}
            for key, lo, hi in (("idle_timeout_minutes", 5, 240), ("retention_period_minutes", 0, 43200)):
                if key in b and not (isinstance(b[key], int) and lo <= b[key] <= hi):
                    return 422, {"message": f"{key} must be between {lo} and {hi}", "documentation_url": DOCS}, {}
            cs = Codespace(self._new_name(repo), str(b.get("display_name") or ""), repo, ref, machine, time.time(),
                           idle_timeout_minutes=b.get("idle_timeout_minutes", 30),
                           retention_period_minutes=b.get("retention_period_minutes", 43200),
                           devcontainer_path=b.get("devcontainer_path"))
            cs.go(("Queued", self.queued_s), ("Provisioning", self.provisioning_s), ("Available", 0))
            cs.per_poll = self.states_per_poll
            self.codespaces[cs.name] = cs
            return 201, cs.json(self.base, self.login), {}
        return self._404()

    def _page(self, items: list[Codespace], q: dict[str, str]) -> dict[str, Any]:
        per = int(q.get("per_page") or 30)
        page = int(q.get("page") or 1)
        chunk = items[(page - 1) * per: page * per]
        return {"total_count": len(items), "codespaces": [cs.json(self.base, self.login) for cs in chunk]}

    @staticmethod
    def _404() -> tuple[int, Any, dict[str, str]]:
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, {}


class Eavesdropper:
    """Another HTTP server on loopback (its own port): what a redirect to a foreign origin would
    reach. It answers every request 200 with a harmless JSON body and records each request's
    method, path and headers in ``seen``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.url = ""

    @contextmanager
    def serve(self) -> Iterator[Eavesdropper]:
        spy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                spy.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                out = json.dumps({"login": "not-github", "id": 1}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="eavesdropper", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()

    def authorization_headers(self) -> list[str]:
        return [h["authorization"] for _, _, h in self.seen if "authorization" in h]
