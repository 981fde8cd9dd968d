"""HTTPS to the two web services mlops-env calls itself: GitHub's REST API (``providers/codespace/github.py``) and
the caller-IP lookup (``providers/ec2/netinfo.py``).

The rules, the same for both:

* the configured URL must be ``https://``; ``http://`` only when its host is loopback
  (``localhost``, ``127.0.0.0/8``, ``::1``: a local stand-in or tunnel), else ``UsageError``
  (exit 2) naming the setting;
* a redirect is followed only within the configured origin (scheme, host and port); a redirect
  anywhere else (another host or port, ``https`` -> ``http``) is refused with
  ``CrossOriginRedirect`` and never contacted, so headers such as ``Authorization`` reach
  nobody but the configured origin;
* certificates are checked against the system's trust store (what ``urllib`` used), plus
  ``requests``' own bundle; proxies come from the environment (``HTTPS_PROXY``) as before.

``requests`` is imported inside the functions: ``mlops-env --help`` must not pay for it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from mlops_env.errors import UsageError

MAX_REDIRECTS = 5


class CrossOriginRedirect(Exception):
    """The server redirected to another origin; ``location`` is where (not contacted)."""

    def __init__(self, location: str, status: int) -> None:
        super().__init__(f"redirect {status} to {location}")
        self.location = location
        self.status = status


def is_loopback_host(host: str | None) -> bool:
    h = (host or "").strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` with the scheme's default port filled in."""
    u = urlsplit(url)
    scheme = u.scheme.lower()
    port = u.port or (443 if scheme == "https" else 80 if scheme == "http" else 0)
    return scheme, (u.hostname or "").lower(), port


def check_url(url: str, setting: str, *, hint: str) -> str:
    """``url`` if it is ``https://HOST...`` (or ``http://`` to a loopback host); else
    ``UsageError`` (exit 2) saying which setting is wrong. ``hint`` says what to do instead."""
    try:
        u = urlsplit(url)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"{setting}={url!r} is not a valid URL", hint=hint, code="bad-url") from None
    scheme = u.scheme.lower()
    if scheme not in ("https", "http") or not u.hostname:
        raise UsageError(f"{setting}={url!r} is not an https:// URL", hint=hint, code="bad-url")
    if scheme == "http" and not is_loopback_host(u.hostname):
        raise UsageError(
            f"{setting}={url!r} uses plain http to {u.hostname}: only https:// is allowed (http:// only "
            "for a loopback host such as 127.0.0.1)", hint=hint, code="insecure-url")
    return url


def session() -> Any:
    """A ``requests.Session`` that trusts the system's certificates (as urllib did)."""
    import ssl

    import requests
    from requests.adapters import HTTPAdapter

    class SystemTrust(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("ssl_context", ssl.create_default_context())
            super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            kwargs.setdefault("ssl_context", ssl.create_default_context())
            return super().proxy_manager_for(proxy, **kwargs)

    s = requests.Session()
    s.mount("https://", SystemTrust())
    # Headers are the caller's alone: no credentials from ~/.netrc (requests would put them in
    # place of the caller's Authorization header). Proxies still come from the environment.
    s.auth = _keep_headers
    s.max_redirects = MAX_REDIRECTS
    return s


def error_reason(e: BaseException) -> str:
    """The cause of a network error, short: what urllib3 wrapped inside requests' exception."""
    inner = e.args[0] if e.args and isinstance(e.args[0], BaseException) else e
    inner = getattr(inner, "reason", None) or inner  # urllib3's MaxRetryError carries the cause
    text = str(inner)
    for sep in (">: ", "): "):  # "<...Connection object at 0x..>: Failed to ..." / "Pool(host=..): Read timed out"
        if sep in text:
            text = text.rsplit(sep, 1)[-1]
            break
    return text[:200]


def _keep_headers(request: Any) -> Any:
    return request


def send(sess: Any, method: str, url: str, *, headers: Mapping[str, str], data: bytes | None = None,
         timeout: float, stream: bool = False) -> Any:
    """One request; redirects within ``url``'s origin are followed (at most ``MAX_REDIRECTS``),
    any other raises ``CrossOriginRedirect`` before it is contacted. Network errors are
    ``requests``' own (``requests.RequestException``)."""
    import requests

    home = origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        resp = sess.request(method, url, headers=dict(headers), data=data, timeout=timeout,
                            allow_redirects=False, stream=stream)
        if not resp.is_redirect:
            return resp
        location = urljoin(url, resp.headers.get("location", ""))
        resp.close()
        if origin(location) != home:
            raise CrossOriginRedirect(location, resp.status_code)
        if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
            method, data = "GET", None  # what browsers and requests do
        url = location
    raise requests.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")
