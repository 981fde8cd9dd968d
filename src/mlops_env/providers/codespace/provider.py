"""``up codespace``: a workstation in a GitHub Codespace, made from a repository's dev container.

The provider makes the codespace exist and answer (GitHub REST API, ``mlops_env.providers.codespace.github``) and
says how to reach it over SSH (the GitHub CLI's tunnel, ``mlops_env.providers.codespace.ghcli``). A
codespace is a ready box (``installs = False``): the dev container installed the software, so
the shared pipeline (``pipeline.up``) writes the SSH alias, runs doctor's box checks and the
smoke test in it, and installs nothing. Without the GitHub CLI the codespace is made and its
browser / VS Code URLs are the way in (no SSH alias, no doctor, no smoke test from here).

Idempotent by name: the codespace mlops-env made for workstation NAME carries the display name
``mlops-env-NAME`` in its repository. The record remembers its GitHub name from the moment the
create call returns, before the wait, so a run stopped anywhere (Ctrl-C, a killed process) is
resumed by the next ``up``, which waits on the same codespace; when the record lost it, the
display name finds it again. Available -> reuse; Shutdown/Archived -> start; Queued,
Provisioning, Starting... -> wait; gone -> create; more than one -> refuse.

SSH goes through ``gh codespace ssh --stdio`` (a ProxyCommand): GitHub authenticates the tunnel
end to end (the user's token, to this codespace only), and gh hands mlops-env's public key to
the codespace's SSH server. The host key the codespace presents through that tunnel is pinned
at first contact (trusted because only the codespace can answer at the end of an authenticated
tunnel that GitHub opened to it) and checked on every later connection, by mlops-env and by
``ssh`` (``StrictHostKeyChecking yes``): a key that changes later is refused.

This module (about 800 lines) is one thing: ``CodespaceProvider``, the codespace's lifecycle
against the GitHub API (find, create, wait, start, stop, delete, adopt) and its pipeline hooks.
Prices and lifetimes are ``billing.py``, the REST client ``github.py``, the gh CLI ``ghcli.py``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlops_env.errors import HostKeyError, MlopsError, NotFoundError, PrereqError, UsageError
from mlops_env.providers import Progress, Provider, Provisioned
from mlops_env.providers.codespace.billing import (  # noqa: F401 - part of this module's API
    STORAGE_NOTE,
    _after_stop,
    _mins,
    cost_of,
    describe_cost,
    describe_retention,
)
from mlops_env.ssh.config import alias_for, host_key_alias_for
from mlops_env.state import Endpoint, Record

if TYPE_CHECKING:
    from mlops_env.config import Resolved
    from mlops_env.providers.codespace.github import GitHub, GitHubError
    from mlops_env.ssh.keys import KeyPair

log = logging.getLogger(__name__)

DISPLAY_PREFIX = "mlops-env-"  # display name of the codespace of workstation NAME: mlops-env-NAME
CREATE_TIMEOUT = 900.0  # a codespace without a prebuild builds its dev container first
STATE_TIMEOUT = 300.0  # stop, start
POLL_MAX = 5.0
ADOPT_WINDOW = 120.0  # a create this recent may not be listed yet
# What `up codespace` uses of the shared options (the rest install software: not here).
OPTIONS = ("repo", "branch", "machine", "idle_timeout", "retention", "python_dist", "smoke_test", "forward",
           "ssh_timeout")
COURSE_CPUS, COURSE_MEMORY = 4, 15 * 2**30  # the course's 4 cores / 16 GB (GitHub reports 16 GiB, give or take)

WAITING = {"Queued", "Provisioning", "Starting", "Created", "Awaiting", "Rebuilding", "Updating",
           "Exporting", "Unavailable", "Unknown", "ShuttingDown"}
STOPPED = {"Shutdown", "Archived"}
GONE = {"Deleted", "Moved"}
DEVCONTAINER_PATHS = (".devcontainer/devcontainer.json", ".devcontainer.json")


def display_name(name: str) -> str:
    return DISPLAY_PREFIX + name


def vscode_url(codespace: str) -> str:
    return f"vscode://github.codespaces/connect?name={quote(codespace, safe='')}"


def live_state(cs: dict[str, Any]) -> str:
    st = str(cs.get("state") or "Unknown")
    return {"Available": "running", "Shutdown": "stopped", "Archived": "stopped",
            "ShuttingDown": "stopping", "Failed": "failed"}.get(st, st.lower())


@dataclass
class CodespaceUp:
    """What ``provision`` did. ``endpoint`` is None when the GitHub CLI is missing (no SSH)."""

    codespace: dict[str, Any]
    action: str  # created | started | unchanged | adopted (from an interrupted run, or another machine)
    endpoint: Endpoint | None = None
    host_key: str | None = None
    replace_pin: bool = False  # a different codespace now backs the workstation: its new key replaces the pin
    gh: str | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def detail(self) -> str:
        cs = self.codespace
        m = (cs.get("machine") or {}).get("name") or "?"
        ref = (cs.get("git_status") or {}).get("ref") or "?"
        return f"codespace {cs.get('name')} ({(cs.get('repository') or {}).get('full_name')}@{ref}, {m}) {self.action}"


class CodespaceProvider(Provider):
    kind = "codespace"

    # -- GitHub ----------------------------------------------------------------------------------
    def _client(self, progress: Progress | None = None) -> GitHub:
        from mlops_env.providers.codespace.github import GitHub, find_token

        return GitHub(find_token(), on_wait=progress or self.warn)

    @staticmethod
    def _repo(record: Record, options: Resolved | None) -> str:
        pd = record.provider_data
        given = options.get("repo") if options else None
        saved = pd.get("repo")
        if given and saved and given.lower() != str(saved).lower():
            raise UsageError(f"workstation {record.name!r} is a codespace of {saved}, not {given}",
                             hint=f"drop --repo, or `mlops-env down {record.name}` first to move it (or pick another name)",
                             code="repo-mismatch")
        repo = given or saved
        if not repo:
            raise UsageError("which repository? `up codespace` needs --repo OWNER/REPO (one with the dev container)",
                             hint=f"for example: mlops-env up codespace {record.name} --repo YOU/mlops-zoomcamp",
                             code="repo-missing")
        return str(repo)

    @staticmethod
    def _branch(record: Record, options: Resolved | None) -> str | None:
        given = options.get("branch") if options else None
        saved = record.provider_data.get("branch")
        if given and saved and given != saved and record.provider_data.get("codespace"):
            raise UsageError(f"workstation {record.name!r} is a codespace of branch {saved}, not {given}",
                             hint=f"drop --branch (switch branches inside it with git), or `mlops-env down {record.name}` "
                             "first", code="branch-mismatch")
        return given or saved

    def _repo_info(self, gh: GitHub, repo: str) -> dict[str, Any]:
        from mlops_env.providers.codespace.github import GitHubError

        try:
            data = gh.get(f"/repos/{repo}")
        except GitHubError as e:
            if e.status == 404:
                raise NotFoundError(f"repository {repo} not found on GitHub, or the token cannot see it",
                                    hint="check --repo OWNER/REPO; a private repository needs a token with access to it "
                                    "(`gh auth refresh -h github.com -s codespace,repo`)", code="repo-not-found") from None
            if e.status == 403:
                e.message = f"no access to repository {repo}: {e.gh_message or 'forbidden'}"
                e.hint = "check that your account can open codespaces on it (a fork of your own always can)"
            raise
        return dict(data or {})

    @staticmethod
    def _get(gh: GitHub, name: str) -> dict[str, Any] | None:
        from mlops_env.providers.codespace.github import GitHubError

        try:
            return dict(gh.get(f"/user/codespaces/{quote(name, safe='')}") or {})
        except GitHubError as e:
            if e.status == 404:
                return None
            raise

    def _find(self, gh: GitHub, name: str, repo_id: Any = None, repo: str | None = None) -> dict[str, Any] | None:
        """The codespace with display name mlops-env-NAME (in ``repo``, when given)."""
        params = {"repository_id": repo_id} if repo_id else {}
        found = [cs for cs in gh.paginate("/user/codespaces", "codespaces", **params)
                 if cs.get("display_name") == display_name(name) and cs.get("state") not in GONE
                 and (repo is None or str((cs.get("repository") or {}).get("full_name", "")).lower() == repo.lower())]
        if len(found) > 1:
            names = ", ".join(f"{cs['name']} ({(cs.get('repository') or {}).get('full_name')}, {cs.get('state')})"
                              for cs in found)
            raise UsageError(f"{len(found)} codespaces carry the display name {display_name(name)}: {names}",
                             hint="keep one: delete the others with `gh codespace delete -c NAME` (or on "
                             "https://github.com/codespaces), then run the same command again", code="ambiguous")
        return found[0] if found else None

    def _locate(self, gh: GitHub, record: Record, repo: str, repo_id: Any) -> tuple[dict[str, Any] | None, str]:
        """The workstation's codespace: the one the record names, else found by display name."""
        pd = record.provider_data
        known = pd.get("codespace")
        if known:
            cs = self._get(gh, str(known))
            if cs is not None and cs.get("state") not in GONE:
                return cs, "known"
            self.warn(f"codespace {known} of {record.name} is gone (deleted on GitHub, or its retention period "
                      "ran out): making a new one")
            pd.pop("codespace", None)
        cs = self._find(gh, record.name, repo_id, repo)
        creating = pd.get("creating") or {}
        if cs is None and creating and time.time() - float(creating.get("at") or 0) < ADOPT_WINDOW:
            # The previous run asked for a codespace moments ago and was stopped before the answer:
            # the list may lag behind the create; look again before asking for a second one.
            for _ in range(5):
                time.sleep(3)
                cs = self._find(gh, record.name, repo_id, repo)
                if cs is not None:
                    break
        if cs is None:
            return None, ""
        pd["codespace"] = cs["name"]
        return cs, "adopted"

    # -- what a new codespace needs ---------------------------------------------------------------
    def _devcontainer(self, gh: GitHub, repo: str, ref: str) -> dict[str, Any]:
        """Where the repository's dev container is (contents API); whether it has an SSH server."""
        from mlops_env.providers.codespace.github import GitHubError

        for path in DEVCONTAINER_PATHS:
            try:
                data = gh.get(f"/repos/{repo}/contents/{path}", ref=ref)
            except GitHubError as e:
                if e.status == 404:
                    continue
                raise
            text = ""
            if isinstance(data, dict) and data.get("encoding") == "base64":
                try:
                    text = base64.b64decode(str(data.get("content") or "")).decode("utf-8", "replace")
                except (binascii.Error, ValueError):
                    text = ""
            sshd = ("features/sshd" in text or "sshd" in text.lower()) if text else None
            return {"path": path, "sshd": sshd}
        raise PrereqError(
            f"{repo} has no dev container on {ref} (neither .devcontainer/devcontainer.json nor .devcontainer.json): a "
            "codespace would get GitHub's default image, without the course's conda, Docker and checks",
            hint="add it: in a clone of the repository run `mlops-env devcontainer init`, commit and push "
            f".devcontainer/ to {ref}, then run the same command again", code="no-devcontainer")

    def _machines(self, gh: GitHub, repo: str, ref: str) -> list[dict[str, Any]]:
        data = gh.get(f"/repos/{repo}/codespaces/machines", ref=ref) or {}
        machines = [m for m in data.get("machines") or [] if isinstance(m, dict) and m.get("name")]
        if not machines:
            raise PrereqError(f"GitHub offers no machine type for codespaces of {repo}",
                              hint="Codespaces may be disabled for this repository, its organisation or your account "
                              "(https://github.com/settings/codespaces)", code="no-machines")
        return machines

    @staticmethod
    def _pick_machine(machines: list[dict[str, Any]], wanted: str | None, repo: str) -> tuple[dict[str, Any], str]:
        by_name = {str(m["name"]): m for m in machines}
        if wanted:
            if wanted not in by_name:
                raise UsageError(f"machine type {wanted!r} is not available for codespaces of {repo}",
                                 hint="choose one of: " + ", ".join(f"{m['name']} ({describe_machine(m)})" for m in machines),
                                 code="machine-not-allowed")
            return by_name[wanted], ""
        ordered = sorted(machines, key=lambda m: (int(m.get("cpus") or 0), int(m.get("memory_in_bytes") or 0)))
        fit = [m for m in ordered if int(m.get("cpus") or 0) >= COURSE_CPUS
               and int(m.get("memory_in_bytes") or 0) >= COURSE_MEMORY]
        if fit:
            return fit[0], ""
        best = ordered[-1]
        return best, (f"no machine type with {COURSE_CPUS} cores and 16 GB is available for {repo}; using "
                      f"{best['name']} ({describe_machine(best)}): the course's training may be slow")

    # -- provision -------------------------------------------------------------------------------
    def provision(self, record: Record, options: Resolved, key: KeyPair, progress: Progress, *,
                  probe: bool = True) -> CodespaceUp:
        """Find, create or start the codespace, wait until it is Available, then learn how to reach
        it over SSH (``endpoint`` None without the GitHub CLI). ``probe=False``: a key already
        pinned for this very codespace is not read again here (the caller's connection checks it:
        one trip through gh's tunnel instead of two)."""
        from mlops_env.state import Store

        gh = self._client(progress)
        repo = self._repo(record, options)
        branch = self._branch(record, options)
        progress(f"looking for codespace {display_name(record.name)} of {repo}")
        info = self._repo_info(gh, repo)
        repo = str(info.get("full_name") or repo)
        record.provider_data["repo"] = repo
        cs, how = self._locate(gh, record, repo, info.get("id"))
        if cs is None:
            cs = self._create(gh, record, options, info, branch, progress)
            action = "created"
        else:
            action = "adopted" if how == "adopted" else "unchanged"
            if how == "adopted":
                progress(f"found codespace {cs['name']} ({cs.get('state')})")
            Store(self.paths).save(record)
        first = cs.get("state")
        cs, started = self._wait_available(gh, cs, progress, CREATE_TIMEOUT)
        if action == "unchanged" and started:
            action = "started"
        elif action == "unchanged" and first != "Available":
            action = f"resumed (it was {first})"  # an earlier run was stopped while it waited
        self._remember(record, cs)
        up = CodespaceUp(codespace=cs, action=action)
        self._ssh(record, up, key, options, progress, probe=probe)
        return up

    def _create(self, gh: GitHub, record: Record, options: Resolved, info: dict[str, Any], branch: str | None,
                progress: Progress) -> dict[str, Any]:
        from mlops_env.providers.codespace.github import GitHubError
        from mlops_env.state import Store

        pd = record.provider_data
        repo = str(info.get("full_name"))
        ref = branch or str(info.get("default_branch") or "main")
        # Everything that can be refused is checked before anything is made.
        dc = self._devcontainer(gh, repo, ref)
        if dc["sshd"] is False:
            self.warn(f"{repo}'s {dc['path']} names no SSH server feature: `gh codespace ssh` (and so the SSH alias, "
                      "doctor and the smoke test) needs one unless its image has sshd; add "
                      '"ghcr.io/devcontainers/features/sshd:1": {} to its features')
        machine, note = self._pick_machine(self._machines(gh, repo, ref), options.get("machine"), repo)
        if note:
            self.warn(note)
        body: dict[str, Any] = {"ref": ref, "machine": machine["name"], "display_name": display_name(record.name),
                                "devcontainer_path": dc["path"]}
        if options.get("idle_timeout") is not None:
            body["idle_timeout_minutes"] = int(options["idle_timeout"])
        if options.get("retention") is not None:
            body["retention_period_minutes"] = int(options["retention"])
        pd.update(repo=repo, branch=branch, ref=ref, devcontainer=dc, machine=machine["name"], cost=cost_of(machine))
        pd["creating"] = {"at": time.time()}
        pd.pop("codespace", None)
        Store(self.paths).save(record)
        progress(f"creating codespace {display_name(record.name)}: {repo}@{ref} on {machine['name']} "
                 f"({describe_machine(machine)})")
        try:
            resp = gh.request("POST", f"/repos/{repo}/codespaces", body=body, ok=(201, 202))
        except GitHubError as e:
            if e.status and e.status < 500:
                # GitHub answered no: nothing was made, the next run need not look for it.
                pd.pop("creating", None)
                Store(self.paths).save(record)
                raise _create_error(e, repo, machine["name"]) from None
            raise
        cs = dict(resp.data or {})
        # Remembered before the wait: a run stopped from here on resumes waiting on this codespace.
        pd["codespace"] = cs.get("name")
        pd.pop("creating", None)
        Store(self.paths).save(record)
        log.info("created codespace %s (%s)", cs.get("name"), resp.status)
        if resp.status == 202:
            progress("GitHub accepted the request and finishes it in the background")
        return cs

    def _wait_available(self, gh: GitHub, cs: dict[str, Any], progress: Progress,
                        timeout: float) -> tuple[dict[str, Any], bool]:
        name = str(cs.get("name"))
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = None
        started = False
        starts = 0
        interval = 1.0
        while True:
            st = str(cs.get("state") or "Unknown")
            if cs.get("pending_operation"):
                raise MlopsError(f"codespace {name} is busy: {cs.get('pending_operation_disabled_reason') or 'an operation is pending'}",
                                 hint="wait until it is done (see https://github.com/codespaces), then run the same command "
                                 "again", code="codespace-busy")
            if st == "Available":
                return cs, started
            if st in GONE:
                raise NotFoundError(f"codespace {name} was deleted while mlops-env waited for it",
                                    hint="run the same command again to make a new one", code="codespace-gone")
            if st == "Failed":
                raise MlopsError(f"codespace {name} failed to start",
                                 hint=f"see why with `gh codespace logs -c {name}` or at {cs.get('web_url') or 'https://github.com/codespaces'}; "
                                 "`mlops-env down NAME` deletes it", code="codespace-failed")
            if st in STOPPED and starts < 3:
                progress(f"starting codespace {name} ({st})")
                cs = self._start(gh, name) or cs
                starts += 1
                started = True
                if str(cs.get("state")) not in STOPPED:
                    continue
            if st != last:
                progress(f"codespace {name}: {st}")
                last = st
            if time.monotonic() > deadline:
                raise MlopsError(f"codespace {name} is still {st} after {timeout / 60:.0f} min",
                                 hint=f"run the same command again: it keeps waiting on {name} and never makes a second "
                                 f"one (its creation log: `gh codespace logs -c {name}`)", code="codespace-timeout")
            time.sleep(interval)
            interval = min(interval * 1.5, POLL_MAX)
            cs = self._get(gh, name) or {"name": name, "state": "Deleted"}
            if st != str(cs.get("state")):
                log.info("codespace %s: %s -> %s after %.0fs", name, st, cs.get("state"), time.monotonic() - t0)

    def _start(self, gh: GitHub, name: str) -> dict[str, Any] | None:
        from mlops_env.providers.codespace.github import GitHubError

        try:
            resp = gh.request("POST", f"/user/codespaces/{quote(name, safe='')}/start", ok=(200, 202, 304))
        except GitHubError as e:
            if e.status == 409:  # "already starting", or still shutting down: wait, then look again
                log.info("start %s: conflict (%s)", name, e.gh_message)
                return None
            if e.status == 402:
                e.message = f"GitHub refuses to start codespace {name}: {e.gh_message or 'payment required'}"
            raise
        return dict(resp.data) if isinstance(resp.data, dict) and resp.data.get("state") else None

    def _remember(self, record: Record, cs: dict[str, Any]) -> None:
        pd = record.provider_data
        repo = (cs.get("repository") or {}).get("full_name") or pd.get("repo")
        machine = cs.get("machine") or {}
        pd.update({
            "codespace": cs.get("name"), "display_name": cs.get("display_name"), "repo": repo,
            "ref": (cs.get("git_status") or {}).get("ref") or pd.get("ref"),
            "machine": machine.get("name") or pd.get("machine"), "web_url": cs.get("web_url"),
            "vscode_url": vscode_url(str(cs.get("name"))), "location": cs.get("location"),
            "idle_timeout_minutes": cs.get("idle_timeout_minutes"),
            "retention_period_minutes": cs.get("retention_period_minutes"),
            "workdir": f"/workspaces/{str(repo).split('/')[-1]}" if repo else None,
        })
        if machine:
            pd["cost"] = cost_of(machine)
        pd.pop("creating", None)

    def _ssh(self, record: Record, up: CodespaceUp, key: KeyPair, options: Resolved, progress: Progress, *,
             probe: bool = True) -> None:
        """SSH through gh's tunnel: the login user from `gh codespace ssh --config`, the host
        key read through the tunnel (see the module docstring for why that is a trusted channel)."""
        from mlops_env.providers.codespace import ghcli
        from mlops_env.ssh import knownhosts
        from mlops_env.ssh.keys import fingerprint_of, split_public_key
        from mlops_env.ssh.transport import probe_host_key

        name = str(up.codespace.get("name"))
        gh = ghcli.find_gh()
        up.gh = gh
        if gh is None:
            up.notices.append(
                "the GitHub CLI (gh) is not installed: no SSH alias, and doctor and the smoke test cannot run "
                f"in the codespace from here; {ghcli.INSTALL_HINT}, then run the same command again")
            return
        progress("asking gh how to reach the codespace over SSH")
        det = ghcli.ssh_details(gh, name)
        import os

        gh_exec = det.gh_exec if os.path.isabs(det.gh_exec) else gh
        proxy = ghcli.proxy_command(gh_exec, name, str(key.private_path))
        alias = host_key_alias_for(record.name)
        ep = Endpoint(host=name, port=22, user=det.user, identity_file=str(key.private_path),
                      host_key_alias=alias, proxy_command=proxy)
        pd = record.provider_data
        pinned = [split_public_key(p) for p in knownhosts.lookup(self.paths, alias)]
        if pinned and not probe and pd.get("host_key_for") == name:
            pd["ssh_user"] = det.user
            up.endpoint, up.host_key = ep, " ".join(pinned[0])
            return
        progress("reading the codespace's SSH host key through gh's tunnel")
        ktype, kb64 = probe_host_key(name, 22, timeout=max(30.0, float(options.get("ssh_timeout") or 60)),
                                     proxy_command=proxy)
        line = f"{ktype} {kb64}"
        if pinned and (ktype, kb64) not in pinned:
            if pd.get("host_key_for") == name:
                raise host_key_changed(self.paths, record.name, name, fingerprint_of(line))
            up.replace_pin = True  # a new codespace behind the same workstation name
        pd["host_key_for"] = name
        pd["ssh_user"] = det.user
        up.endpoint, up.host_key = ep, line

    # -- the Provider contract -------------------------------------------------------------------
    def ensure(self, record: Record, options: Resolved, key: KeyPair, progress: Progress) -> Provisioned:
        # With a key already pinned for this codespace, the pipeline's connection checks it (one
        # trip through gh's tunnel); --provision-only makes no connection, so it is read here.
        up = self.provision(record, options, key, progress, probe=not self.will_connect)
        self.created({})  # a codespace exists now: the record stays
        cs = up.codespace
        summary: dict[str, Any] = {
            "codespace": {"name": cs.get("name"), "display_name": cs.get("display_name"),
                          "repo": (cs.get("repository") or {}).get("full_name"),
                          "ref": (cs.get("git_status") or {}).get("ref"), "state": cs.get("state"),
                          "machine": (cs.get("machine") or {}).get("name"), "action": up.action,
                          "idle_timeout_minutes": cs.get("idle_timeout_minutes"),
                          "retention_period_minutes": cs.get("retention_period_minutes"),
                          "retention_expires_at": cs.get("retention_expires_at")},
            "links": self.links(record), "notices": list(up.notices),
            "lifetime": describe_retention(cs), "storage": STORAGE_NOTE.replace("NAME", record.name),
        }
        cost = cost_of(cs.get("machine"))
        summary["cost"] = {**cost, "summary": describe_cost(cost)}
        return Provisioned(endpoint=up.endpoint, action=up.action, host_key=up.host_key,
                           provider_data=dict(record.provider_data), detail=up.detail, ready_timeout=30.0,
                           replace_pin=up.replace_pin, notices=list(up.notices), summary=summary,
                           unreachable=None if up.endpoint else "the GitHub CLI (gh) is not installed")

    # -- hooks of the pipeline: a ready box ------------------------------------------------------
    installs = False
    up_options = OPTIONS
    connect_via = " through gh"
    box_noun = "the codespace"
    made_by = "the dev container"

    @property
    def box_title(self) -> str:
        return "codespace"

    def remember_options(self, record: Record, options: Resolved) -> None:
        # Only what a codespace uses; what the record already says wins over "not given".
        saved = dict(record.options)
        record.options = {k: v for k, v in options.values.items() if k in OPTIONS}
        for k in ("repo", "branch"):
            if record.options.get(k) is None and saved.get(k) is not None:
                record.options[k] = saved[k]

    def made_something(self, record: Record) -> bool:
        # A first run refused before a codespace exists or is being created (bad repository,
        # no token, GitHub said no) leaves no record behind.
        pd = record.provider_data
        return bool(pd.get("codespace") or pd.get("creating"))

    def host_key_refused(self, record: Record, error: Exception) -> Exception:
        if getattr(error, "code", None) == "host-key-changed" and record.endpoint is not None:
            return host_key_changed(self.paths, record.name, record.endpoint.host)
        return error

    def describe(self, record: Record) -> str:
        return f"codespace {record.provider_data.get('codespace')} ({record.name})"

    def setup_hint(self, record: Record) -> str:
        return ("the dev container sets these up (onCreate/postCreate): if it is still running, wait and check "
                f"again with `mlops-env doctor {record.name}` (its log: `gh codespace logs -c "
                f"{record.provider_data.get('codespace')}`); otherwise fix the repository's dev container "
                "(`mlops-env devcontainer init`) and rebuild the codespace")

    def ready_steps_plan(self, record: Record, options: Resolved) -> list[tuple[str, str]]:
        from mlops_env.providers.codespace import ghcli

        has_gh = ghcli.find_gh() is not None
        no_gh = "nothing: the GitHub CLI (gh) is not installed"
        return [
            ("ssh-config", "write Host " + record.alias + " (ProxyCommand through gh, pinned host key) and the "
             "Include line in ~/.ssh/config" if has_gh else no_gh),
            ("doctor", "run mlops-env doctor's checks in the codespace (system, python, docker, network, tools)"
             if has_gh else no_gh),
            ("smoke", (f"train the ride-duration model in the codespace ({options['smoke_test']} data), unless it "
                       "passed already" if options["smoke_test"] != "off" else "nothing: --smoke-test off")
             if has_gh else no_gh),
        ]

    def plan(self, record: Record | None, options: Resolved) -> list[str]:
        """Read-only: GETs only, nothing created, started or saved."""
        from mlops_env.providers.codespace import ghcli
        from mlops_env.providers.codespace.github import GitHubError

        assert record is not None
        gh = self._client()
        repo = self._repo(record, options)
        branch = self._branch(record, options)
        info = self._repo_info(gh, repo)
        repo = str(info.get("full_name") or repo)
        lines = [f"GitHub API {gh.base_url} with the token from {gh.token.source} (scopes checked)"]
        cs = None
        known = record.provider_data.get("codespace")
        if known:
            cs = self._get(gh, str(known))
        if cs is None or cs.get("state") in GONE:
            cs = self._find(gh, record.name, info.get("id"), repo)
        if cs is not None:
            st = str(cs.get("state"))
            verb = "reuse it" if st == "Available" else "start it" if st in STOPPED else "wait until it is Available"
            lines.append(f"codespace {cs['name']} ({display_name(record.name)}, {repo}@"
                         f"{(cs.get('git_status') or {}).get('ref')}, {(cs.get('machine') or {}).get('name')}, {st}): {verb}")
            lines.append("cost: " + describe_cost(cost_of(cs.get("machine"))))
            lines.append("lifetime: " + describe_retention(cs))
        else:
            ref = branch or str(info.get("default_branch") or "main")
            try:
                dc = self._devcontainer(gh, repo, ref)
                lines.append(f"dev container: {dc['path']} on {ref}" + (
                    "" if dc["sshd"] is not False else " (WARNING: no SSH server feature: gh cannot reach it)"))
            except PrereqError as e:
                lines.append(f"dev container: MISSING ({e.message}); {e.hint}")
            try:
                machine, note = self._pick_machine(self._machines(gh, repo, ref), options.get("machine"), repo)
                lines.append(f"codespace: create {display_name(record.name)} in {repo}@{ref} on {machine['name']} "
                             f"({describe_machine(machine)})" + (f"; {note}" if note else ""))
                lines.append("cost: " + describe_cost(cost_of(machine)))
            except (UsageError, PrereqError, GitHubError) as e:
                lines.append(f"codespace: cannot be created as asked: {e.message}")
            lines.append("lifetime: " + describe_retention({"idle_timeout_minutes": options.get("idle_timeout"),
                                                            "retention_period_minutes": options.get("retention")}))
        lines.append(STORAGE_NOTE.replace("NAME", record.name))
        gh_bin = ghcli.find_gh()
        if gh_bin:
            lines.append(f"SSH: through `{gh_bin} codespace ssh --stdio` with mlops-env's key; the host key the codespace "
                         "presents through that tunnel is pinned at first contact (StrictHostKeyChecking yes)")
        else:
            lines.append("SSH: the GitHub CLI (gh) is not installed: no SSH alias, no doctor or smoke test from here; "
                         "the browser and VS Code URLs are printed")
        return lines

    def state(self, record: Record) -> dict[str, Any]:
        try:
            gh = self._client()
            cs = self._current(gh, record)
        except MlopsError as e:
            return {"state": "unknown", "detail": e.message}
        if cs is None:
            return {"state": "missing", "detail": f"no codespace {display_name(record.name)} on GitHub (deleted?)"}
        return _live(record, cs)

    def _current(self, gh: GitHub, record: Record) -> dict[str, Any] | None:
        known = record.provider_data.get("codespace")
        cs = self._get(gh, str(known)) if known else None
        if cs is None or cs.get("state") in GONE:
            cs = self._find(gh, record.name, None, record.provider_data.get("repo"))
        return cs

    def _require(self, gh: GitHub, record: Record) -> dict[str, Any]:
        cs = self._current(gh, record)
        if cs is None:
            raise NotFoundError(f"no codespace {display_name(record.name)} on GitHub",
                                hint=f"`mlops-env up codespace {record.name}` makes a new one", code="codespace-missing")
        return cs

    def stop(self, record: Record, progress: Progress) -> str:
        gh = self._client(progress)
        cs = self._require(gh, record)
        name = str(cs["name"])
        storage = "; " + STORAGE_NOTE.replace("NAME", record.name)
        if cs.get("state") in STOPPED:
            return f"codespace {name} is already stopped{storage}"
        progress(f"stopping codespace {name}")
        gh.request("POST", f"/user/codespaces/{quote(name, safe='')}/stop", ok=(200, 202))
        cs = self._wait_for(gh, name, STOPPED, "stopping", progress)
        return f"stopped codespace {name}: no core-hours while stopped; {_after_stop(cs)}{storage}"

    def start(self, record: Record, progress: Progress) -> str:
        gh = self._client(progress)
        cs = self._require(gh, record)
        cs, started = self._wait_available(gh, cs, progress, STATE_TIMEOUT)
        self._remember(record, cs)
        cost = describe_cost(cost_of(cs.get("machine")))
        return f"{'started' if started else 'already running:'} codespace {cs['name']} ({cost})"

    def _wait_for(self, gh: GitHub, name: str, states: set[str], what: str, progress: Progress) -> dict[str, Any]:
        deadline = time.monotonic() + STATE_TIMEOUT
        interval = 1.0
        while True:
            cs = self._get(gh, name) or {"name": name, "state": "Deleted"}
            if cs.get("state") in states:
                return cs
            if cs.get("state") in GONE:
                raise NotFoundError(f"codespace {name} was deleted", code="codespace-gone",
                                    hint="`mlops-env up codespace NAME` makes a new one")
            if time.monotonic() > deadline:
                raise MlopsError(f"codespace {name} is still {cs.get('state')} after {STATE_TIMEOUT / 60:.0f} min of {what}",
                                 hint="run the same command again", code="codespace-timeout")
            time.sleep(interval)
            interval = min(interval * 1.5, POLL_MAX)

    def endpoint(self, record: Record) -> Endpoint | None:
        return record.endpoint  # the tunnel goes by the codespace's name: nothing moves on start

    def links(self, record: Record) -> dict[str, str]:
        pd = record.provider_data
        out = {}
        if pd.get("web_url"):
            out["browser"] = str(pd["web_url"])
        if pd.get("codespace"):
            out["vscode"] = vscode_url(str(pd["codespace"]))
            out["codespace"] = str(pd["codespace"])
        return out

    def describe_destroy(self, record: Record) -> list[str]:
        pd = record.provider_data
        try:
            cs = self._current(self._client(), record)
        except MlopsError as e:
            log.debug("describe_destroy: %s", e.message)
            cs = None
        if cs is None:
            name = pd.get("codespace")
            return [f"delete codespace {name} ({pd.get('repo')}), if it still exists" if name else
                    f"delete the codespace {display_name(record.name)}, if any"]
        gs = cs.get("git_status") or {}
        what = [f"delete codespace {cs['name']} ({display_name(record.name)}, {(cs.get('repository') or {}).get('full_name')}"
                f"@{gs.get('ref')}, {cs.get('state')}) on GitHub, with its disk"]
        lost = []
        if gs.get("has_uncommitted_changes"):
            lost.append("uncommitted changes")
        if gs.get("has_unpushed_changes") or gs.get("ahead"):
            lost.append(f"{gs.get('ahead') or 'some'} unpushed commit(s)")
        if lost:
            what.append(f"WARNING: it has {' and '.join(lost)}: they are lost with it (push them first)")
        return what

    def destroy(self, record: Record, progress: Progress) -> list[str]:
        from mlops_env.providers.codespace.github import GitHubError

        gh = self._client(progress)
        cs = self._current(gh, record)
        if cs is None:
            return [f"no codespace {display_name(record.name)} left on GitHub"]
        name = str(cs["name"])
        progress(f"deleting codespace {name}")
        try:
            gh.request("DELETE", f"/user/codespaces/{quote(name, safe='')}", ok=(200, 202, 204))
        except GitHubError as e:
            if e.status != 404:
                raise
        removed = [f"codespace {name} ({(cs.get('repository') or {}).get('full_name')})"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            left = self._get(gh, name)
            if left is None or left.get("state") in GONE:
                removed.append(f"verified: codespace {name} is gone from GitHub")
                return removed
            time.sleep(1)
        removed.append(f"GitHub is still deleting codespace {name} (it finishes in the background)")
        return removed

    def discover(self, records: list[Record], hints: dict[str, Any]) -> list[dict[str, Any]]:
        """Codespaces mlops-env made that this machine does not know: looked up when a codespace
        workstation is known here or ``list --codespaces`` asks (otherwise no GitHub call)."""
        if not hints.get("codespaces") and not any(r.provider == "codespace" for r in records):
            return []
        from mlops_env.state import NAME_RE

        gh = self._client()
        known = {r.name for r in records}
        known_cs = {r.provider_data.get("codespace") for r in records if r.provider == "codespace"}
        rows = []
        for cs in gh.paginate("/user/codespaces", "codespaces"):
            dn = str(cs.get("display_name") or "")
            if not dn.startswith(DISPLAY_PREFIX) or cs.get("name") in known_cs or cs.get("state") in GONE:
                continue
            name = dn[len(DISPLAY_PREFIX):]
            if not NAME_RE.match(name) or name in known:
                continue
            rows.append({"name": name, "provider": "codespace", "alias": "-",
                         "address": (cs.get("repository") or {}).get("full_name") or "-", "state": live_state(cs),
                         "phase": "not on this machine", "codespace": cs.get("name"), "known": False})
        return rows

    def adopt(self, name: str, hints: dict[str, Any]) -> Record | None:
        if not hints.get("codespaces"):
            return None
        cs = self._find(self._client(), name)
        if cs is None:
            return None
        return Record(name=name, provider="codespace", alias=alias_for(name),
                      provider_data={"codespace": cs["name"], "repo": (cs.get("repository") or {}).get("full_name")})


def host_key_changed(paths: Any, workstation: str, codespace: str, presented: str | None = None) -> HostKeyError:
    from mlops_env.ssh import knownhosts

    alias = host_key_alias_for(workstation)
    return HostKeyError(
        f"the SSH host key of codespace {codespace} changed: pinned "
        f"{', '.join(knownhosts.fingerprints(paths, alias))}" + (f", it now presents {presented}" if presented else ""),
        hint="if you rebuilt the codespace's container (a rebuild makes new host keys), forget the old key with "
        f"`ssh-keygen -R {alias} -f {paths.known_hosts}` and run the same command again; otherwise do not connect",
        code="host-key-changed")


def describe_machine(m: dict[str, Any]) -> str:
    cpus = m.get("cpus")
    mem = int(m.get("memory_in_bytes") or 0) / 2**30
    disk = int(m.get("storage_in_bytes") or 0) / 2**30
    return f"{cpus} cores, {mem:.0f} GB RAM, {disk:.0f} GB disk"


def _create_error(e: GitHubError, repo: str, machine: str) -> MlopsError:
    """GitHub's refusal of a create, with the fix."""
    msg = (e.gh_message or "").lower()
    if e.status in (400, 422) and "machine" in msg:
        return UsageError(f"GitHub refuses machine type {machine} for codespaces of {repo}: {e.gh_message}",
                          hint="pick another with --machine (the allowed ones: `mlops-env up codespace NAME --repo "
                          f"{repo} --dry-run`)", code="machine-not-allowed")
    if e.status == 402 or "billing" in msg or "spending limit" in msg or "payment" in msg:
        return PrereqError(f"GitHub refuses to create a codespace: {e.gh_message or 'billing'}",
                           hint="see https://github.com/settings/billing: the included Codespaces usage may be used up, "
                           "or a spending limit is needed", code="github-billing")
    if e.status == 403 and any(w in msg for w in ("limit", "maximum", "quota")):
        return PrereqError(f"GitHub refuses to create a codespace: {e.gh_message}",
                           hint="delete codespaces you no longer need (`gh codespace list`, `gh codespace delete`) "
                           "or stop running ones, then run the same command again", code="codespace-quota")
    e.message = f"GitHub refuses to create a codespace in {repo}: {e.gh_message or e.status}"
    return e


def _live(record: Record, cs: dict[str, Any]) -> dict[str, Any]:
    gs = cs.get("git_status") or {}
    repo = (cs.get("repository") or {}).get("full_name")
    machine = cs.get("machine") or {}
    st = live_state(cs)
    lines = [f"codespace {cs.get('name')} ({cs.get('display_name')}) {repo}@{gs.get('ref')}: {cs.get('state')}",
             f"machine   {machine.get('name')}: " + describe_cost(cost_of(machine)),
             f"lifetime  {describe_retention(cs)}"]
    if st == "stopped":
        lines.append("storage   " + STORAGE_NOTE.replace("NAME", record.name))
    changes = []
    if gs.get("has_uncommitted_changes"):
        changes.append("uncommitted changes")
    if gs.get("has_unpushed_changes") or gs.get("ahead"):
        changes.append(f"{gs.get('ahead') or 'some'} unpushed commit(s)")
    if changes:
        lines.append("git       " + " and ".join(changes))
    if cs.get("web_url"):
        lines.append(f"browser   {cs['web_url']}")
    lines.append(f"VS Code   {vscode_url(str(cs.get('name')))}")
    return {"state": st, "github_state": cs.get("state"), "codespace": cs.get("name"), "repo": repo,
            "ref": gs.get("ref"), "machine": machine.get("name"), "web_url": cs.get("web_url"),
            "retention_expires_at": cs.get("retention_expires_at"), "cost": cost_of(machine), "lines": lines}
