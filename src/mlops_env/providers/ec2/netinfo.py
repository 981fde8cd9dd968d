"""Who may reach SSH: the caller's public IP (the default ``--allow-cidr``) and CIDR checks.

The caller's IP comes from an HTTPS echo service (``https://checkip.amazonaws.com``, run by
AWS) with a short timeout. ``MLOPS_ENV_IP_LOOKUP_URL`` replaces the URL (a proxy-friendly
mirror, or a local server in tests): https, or http only to a loopback host (exit 2 otherwise),
and no redirect to another origin is followed (``httpclient``): the answer decides who may
reach SSH, so it must come from the service the user chose, over TLS.

``MLOPS_ENV_TEST_SSH_ADDRESS_MAP`` is a TEST-ONLY seam (docs/ec2.md): it redirects the SSH
address of an instance (its public IP, port 22) to another ``HOST:PORT``, because the test
"instance" is a local container. Nothing else in the EC2 path changes.
"""

from __future__ import annotations

import ipaddress
import logging
import os

from mlops_env.errors import PrereqError, UsageError

log = logging.getLogger(__name__)

IP_LOOKUP_URL = "https://checkip.amazonaws.com"
ENV_IP_LOOKUP_URL = "MLOPS_ENV_IP_LOOKUP_URL"
ENV_ADDRESS_MAP = "MLOPS_ENV_TEST_SSH_ADDRESS_MAP"
OPEN_WORLD = ("0.0.0.0/0", "::/0")


def parse_cidr(text: str) -> str:
    """A normalised CIDR (``203.0.113.7`` -> ``203.0.113.7/32``); ``UsageError`` otherwise.

    Host bits set (``203.0.113.7/24``) are refused rather than silently widened or narrowed.
    """
    s = str(text).strip()
    try:
        net = ipaddress.ip_network(s, strict=True)
    except ValueError as e:
        try:
            loose = ipaddress.ip_network(s, strict=False)
        except ValueError:
            raise UsageError(f"invalid --allow-cidr {text!r}: {e}",
                             hint="for example --allow-cidr 203.0.113.7/32 (one address) or "
                             "198.51.100.0/24 (a network)", code="invalid-cidr") from None
        raise UsageError(f"invalid --allow-cidr {text!r}: host bits set",
                         hint=f"did you mean {loose} (the network) or {s.split('/')[0]}/"
                         f"{loose.max_prefixlen} (the one address)?", code="invalid-cidr") from None
    return str(net)


def is_open_world(cidr: str) -> bool:
    return ipaddress.ip_network(cidr).prefixlen == 0


def caller_ip(timeout: float = 5.0) -> str:
    """The public IP address this machine reaches the internet from."""
    import requests

    from mlops_env import httpclient

    url = os.environ.get(ENV_IP_LOOKUP_URL) or IP_LOOKUP_URL
    hint = ("pass --allow-cidr YOUR.PUBLIC.IP/32 (or a network such as 198.51.100.0/24); "
            f"{ENV_IP_LOOKUP_URL} selects another lookup service (https://)")
    httpclient.check_url(url, ENV_IP_LOOKUP_URL, hint=hint)
    try:
        with httpclient.session() as sess:
            resp = httpclient.send(sess, "GET", url, headers={"User-Agent": "mlops-env"}, timeout=timeout,
                                   stream=True)
            with resp:
                if resp.status_code >= 400:
                    raise PrereqError(f"cannot find your public IP address for the SSH rule ({url}: HTTP "
                                      f"{resp.status_code})", hint=hint, code="caller-ip-unknown")
                body = resp.raw.read(256, decode_content=True).decode("ascii", "replace").strip()
    except httpclient.CrossOriginRedirect:
        raise PrereqError(f"cannot find your public IP address for the SSH rule ({url} redirected to "
                          "another address, which mlops-env does not follow)", hint=hint,
                          code="caller-ip-unknown") from None
    except (requests.RequestException, OSError, ValueError) as e:
        raise PrereqError(f"cannot find your public IP address for the SSH rule ({url}: "
                          f"{httpclient.error_reason(e)})",
                          hint=hint, code="caller-ip-unknown") from None
    try:
        ip = ipaddress.ip_address(body)
    except ValueError:
        raise PrereqError(f"{url} did not answer with an IP address ({body[:40]!r})",
                          hint=hint, code="caller-ip-unknown") from None
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local:
        raise PrereqError(f"{url} answered {ip}, which cannot be your public address",
                          hint=hint, code="caller-ip-unknown")
    log.debug("caller public IP: %s (from %s)", ip, url)
    return str(ip)


def caller_cidr(timeout: float = 5.0) -> str:
    ip = ipaddress.ip_address(caller_ip(timeout))
    return f"{ip}/{ip.max_prefixlen}"


def mapped_address(host: str, port: int) -> tuple[str, int]:
    """Apply the TEST-ONLY ``MLOPS_ENV_TEST_SSH_ADDRESS_MAP`` (``IP=HOST:PORT,...``; ``*``
    matches any address). Without it the address is returned unchanged."""
    spec = os.environ.get(ENV_ADDRESS_MAP, "").strip()
    if not spec:
        return host, port
    table: dict[str, tuple[str, int]] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        try:
            key, target = item.split("=", 1)
            thost, tport = target.strip().rsplit(":", 1)
            table[key.strip()] = (thost.strip(), int(tport))
        except ValueError:
            raise UsageError(f"malformed {ENV_ADDRESS_MAP} entry {item!r}",
                             hint="expected IP=HOST:PORT[,...] (a test seam; unset it for real use)") from None
    hit = table.get(host) or table.get("*")
    if hit:
        log.warning("TEST SEAM %s: SSH to %s:%s goes to %s:%s", ENV_ADDRESS_MAP, host, port, *hit)
        return hit
    return host, port
