"""Students' public keys from GitHub's ``https://github.com/USER.keys`` endpoint.

Through ``httpclient``'s rules (https only, http only to loopback; redirects only within the
origin). ``MLOPS_ENV_GITHUB_KEYS_URL`` replaces ``https://github.com`` (a GitHub Enterprise
host, or a local stand-in in tests). No token is sent: the endpoint is public.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mlops_env.errors import ConfigError, MlopsError

if TYPE_CHECKING:
    from mlops_env.classroom.roster import Roster, Student

ENV_BASE = "MLOPS_ENV_GITHUB_KEYS_URL"
DEFAULT_BASE = "https://github.com"
MAX_BYTES = 64 * 1024


def base_url(env: Mapping[str, str] | None = None) -> str:
    from mlops_env.httpclient import check_url

    env = os.environ if env is None else env
    url = (env.get(ENV_BASE) or DEFAULT_BASE).rstrip("/")
    return check_url(url, ENV_BASE, hint=f"unset {ENV_BASE} (default {DEFAULT_BASE}) or give an https:// URL")


def fetch(user: str, *, where: str, timeout: float = 10.0) -> tuple[str, ...]:
    """The user's keys, normalised ``type base64 USER@github``; ``where`` (``roster:LINE``)
    names the roster line in errors. An unknown user or one without keys is refused."""
    import requests

    from mlops_env.httpclient import CrossOriginRedirect, error_reason, send, session
    from mlops_env.ssh.keys import split_public_key

    url = f"{base_url()}/{user}.keys"
    try:
        with session() as s:
            resp = send(s, "GET", url, headers={"Accept": "text/plain"}, timeout=timeout)
    except CrossOriginRedirect as e:
        raise MlopsError(f"{where}: {url} redirected to another site ({e.location})",
                         hint="mlops-env follows redirects only within the same site", code="github-keys") from None
    except requests.RequestException as e:
        raise MlopsError(f"{where}: cannot fetch {url}: {error_reason(e)}",
                         hint="check the network, or give the student's key inline (public_key:)",
                         code="github-keys-unreachable") from None
    if resp.status_code == 404:
        raise ConfigError(f"{where}: GitHub user {user!r} does not exist ({url}: 404)",
                          hint="check the spelling of github:, or use public_key:", code="github-user-unknown")
    if resp.status_code != 200:
        raise MlopsError(f"{where}: {url} answered HTTP {resp.status_code}",
                         hint="try again later, or give the student's key inline (public_key:)", code="github-keys")
    text = resp.content[:MAX_BYTES].decode("utf-8", "replace")
    keys: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            ktype, b64 = split_public_key(line)
        except MlopsError:
            continue  # a line we do not understand is skipped, never passed on
        if ktype == "ssh-dss":
            continue
        k = f"{ktype} {b64} {user}@github"
        if k not in keys:
            keys.append(k)
    if not keys:
        raise ConfigError(f"{where}: GitHub user {user!r} has no SSH keys ({url} is empty)",
                          hint="ask the student to add a key on github.com/settings/keys, or use public_key:",
                          code="github-user-no-keys")
    return tuple(keys)


def resolve_all(roster: Roster, *, jobs: int = 8) -> dict[str, tuple[str, ...]]:
    """Every student's keys (inline + GitHub), fetched side by side: ``{student: keys}``. The
    first error (in roster order) is raised, before anything is created."""
    from concurrent.futures import ThreadPoolExecutor

    def one(st: Student) -> tuple[str, ...]:
        keys = list(st.public_keys)
        if st.github:
            for k in fetch(st.github, where=f"{roster.path}:{st.line}"):
                if k.split()[:2] not in [x.split()[:2] for x in keys]:
                    keys.append(k)
        return tuple(keys)

    students = list(roster.students)
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(students)))) as pool:
        results = list(pool.map(lambda s: _capture(one, s), students))
    out: dict[str, tuple[str, ...]] = {}
    for st, (val, err) in zip(students, results, strict=True):
        if err is not None:
            raise err
        out[st.name] = val
    return out


def _capture(fn: Callable[[Any], Any], arg: Any) -> tuple[Any, MlopsError | None]:
    try:
        return fn(arg), None
    except MlopsError as e:
        return None, e
