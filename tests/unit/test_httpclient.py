"""mlops_env.httpclient and the caller-IP lookup (providers/ec2/netinfo.py) over real loopback HTTP:
https only (http only to loopback), redirects followed only within the configured origin, no
credentials from ~/.netrc in place of the caller's headers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlops_env import httpclient
from mlops_env.errors import ExitCode, PrereqError, UsageError
from mlops_env.providers.ec2 import netinfo


@contextmanager
def server(answers: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """A loopback HTTP server: path -> (status, headers, body); 404 otherwise. Yields its base
    URL and the (path, lower-cased headers) of every request it got."""
    seen: list[tuple[str, dict[str, str]]] = []

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            status, headers, body = answers.get(self.path, (404, {}, b"nothing here"))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v.replace("{base}", base))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield base, seen
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("url", ["https://api.github.com", "https://ghe.example.com:8443/api/v3",
                                 "http://127.0.0.1:9", "http://127.5.6.7/x", "http://localhost:80", "http://[::1]:8"])
def test_https_or_loopback_http_is_accepted(url: str) -> None:
    assert httpclient.check_url(url, "SETTING", hint="h") == url


@pytest.mark.parametrize("url,code", [
    ("http://api.github.com", "insecure-url"), ("http://192.168.1.10:8080", "insecure-url"),
    ("http://127.0.0.1.evil.example", "insecure-url"), ("ftp://127.0.0.1/", "bad-url"),
    ("file:///etc/passwd", "bad-url"), ("checkip.amazonaws.com", "bad-url"), ("https://", "bad-url"),
    ("https://h:notaport/", "bad-url"),
])
def test_anything_else_is_a_usage_error_naming_the_setting(url: str, code: str) -> None:
    with pytest.raises(UsageError) as e:
        httpclient.check_url(url, "SETTING", hint="use https")
    assert e.value.code == code and e.value.exit_code == ExitCode.USAGE
    assert e.value.message.startswith("SETTING=") and e.value.hint == "use https"


def test_origins() -> None:
    o = httpclient.origin
    assert o("https://api.github.com/user") == o("https://API.github.com:443/x") == ("https", "api.github.com", 443)
    assert o("https://h/x") != o("http://h/x")  # https -> http is another origin
    assert o("http://127.0.0.1:8000/") != o("http://127.0.0.1:8001/")


def test_a_redirect_to_another_port_is_refused_before_it_is_contacted() -> None:
    with server({}) as (other, other_seen):
        with server({"/ip": (302, {"Location": f"{other}/ip"}, b"")}) as (base, _):
            with httpclient.session() as s, pytest.raises(httpclient.CrossOriginRedirect) as e:
                httpclient.send(s, "GET", f"{base}/ip", headers={"Authorization": "Bearer secret-1"}, timeout=5)
    assert e.value.location == f"{other}/ip" and e.value.status == 302
    assert other_seen == []


def test_same_origin_redirects_are_followed_with_the_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A ~/.netrc entry for the host must not replace the caller's Authorization header.
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login someone password netrc-pass\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    answers = {"/a": (301, {"Location": "/b"}, b""), "/b": (307, {"Location": "{base}/c"}, b""),
               "/c": (200, {}, b"ok")}
    with server(answers) as (base, seen), httpclient.session() as s:
        r = httpclient.send(s, "GET", f"{base}/a", headers={"Authorization": "Bearer secret-2"}, timeout=5)
    assert r.status_code == 200 and r.text == "ok"
    assert [(p, h.get("authorization")) for p, h in seen] == [(p, "Bearer secret-2") for p in ("/a", "/b", "/c")]


def test_a_redirect_loop_ends() -> None:
    import requests

    with server({"/a": (302, {"Location": "/a"}, b"")}) as (base, seen), httpclient.session() as s:
        with pytest.raises(requests.TooManyRedirects):
            httpclient.send(s, "GET", f"{base}/a", headers={}, timeout=5)
    assert len(seen) == httpclient.MAX_REDIRECTS + 1


# -- the caller-IP lookup --------------------------------------------------------------------------
def test_the_caller_ip_comes_from_the_lookup_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with server({"/": (200, {}, b"203.0.113.42\n"), "/moved": (302, {"Location": "/"}, b"")}) as (base, _):
        monkeypatch.setenv(netinfo.ENV_IP_LOOKUP_URL, f"{base}/")
        assert netinfo.caller_cidr() == "203.0.113.42/32"
        monkeypatch.setenv(netinfo.ENV_IP_LOOKUP_URL, f"{base}/moved")
        assert netinfo.caller_ip() == "203.0.113.42"


def test_a_plain_http_lookup_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netinfo.ENV_IP_LOOKUP_URL, "http://checkip.example.com/")
    with pytest.raises(UsageError) as e:
        netinfo.caller_ip()
    assert e.value.code == "insecure-url" and e.value.exit_code == ExitCode.USAGE
    assert netinfo.ENV_IP_LOOKUP_URL in e.value.message and "--allow-cidr" in (e.value.hint or "")


def test_a_lookup_redirected_elsewhere_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    with server({"/": (200, {}, b"198.51.100.66\n")}) as (other, other_seen):
        with server({"/": (302, {"Location": f"{other}/"}, b"")}) as (base, _):
            monkeypatch.setenv(netinfo.ENV_IP_LOOKUP_URL, f"{base}/")
            with pytest.raises(PrereqError) as e:
                netinfo.caller_ip()
    assert e.value.code == "caller-ip-unknown" and "redirected" in e.value.message
    assert other_seen == []


def test_a_lookup_error_status_is_not_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    with server({}) as (base, _):
        monkeypatch.setenv(netinfo.ENV_IP_LOOKUP_URL, f"{base}/nope")
        with pytest.raises(PrereqError) as e:
            netinfo.caller_ip()
    assert e.value.code == "caller-ip-unknown" and "HTTP 404" in e.value.message


# -- real TLS: the system's trust store, and https -> http ----------------------------------------
def _tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    import datetime
    import ipaddress as ip

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlops-env test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (d / "ca.pem", d / "cert.pem", d / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@contextmanager
def tls_server(d: Path, answers: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[tuple[str, Path]]:
    """``server`` behind TLS with a certificate from a throw-away CA. Yields (https URL, ca.pem)."""
    import ssl

    ca, cert, key = _tls_files(d)
    with server(answers) as (plain, _):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        # a TLS front on its own port that relays to the plain server
        import socket

        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        port = lsock.getsockname()[1]
        target = ("127.0.0.1", int(plain.rsplit(":", 1)[1]))

        def relay(a: Any, b: Any) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.close()
                    except OSError:
                        pass

        def accept() -> None:
            while True:
                try:
                    conn, _ = lsock.accept()
                except OSError:
                    return
                try:
                    tconn = ctx.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
                up = socket.create_connection(target)
                threading.Thread(target=relay, args=(tconn, up), daemon=True).start()
                threading.Thread(target=relay, args=(up, tconn), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        try:
            yield f"https://127.0.0.1:{port}", ca
        finally:
            lsock.close()


def test_certificates_are_checked_against_the_systems_trust_store(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """What OpenSSL's default paths trust (SSL_CERT_FILE here; /etc/ssl/certs on a machine
    behind a TLS-inspecting proxy) is trusted, as urllib did; requests alone (certifi) refused it."""
    import requests

    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)
    with tls_server(tmp_path, {"/ip": (200, {}, b"203.0.113.9\n")}) as (base, ca):
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nothing.pem"))
        with httpclient.session() as s, pytest.raises(requests.exceptions.SSLError):
            httpclient.send(s, "GET", f"{base}/ip", headers={}, timeout=5)  # not trusted: refused
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        with httpclient.session() as s:
            assert httpclient.send(s, "GET", f"{base}/ip", headers={}, timeout=5).text == "203.0.113.9\n"
        monkeypatch.setenv(netinfo.ENV_IP_LOOKUP_URL, f"{base}/ip")
        assert netinfo.caller_ip() == "203.0.113.9"


def test_https_to_http_on_the_same_host_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)
    with server({"/user": (200, {}, b"{}")}) as (plain, plain_seen):
        with tls_server(tmp_path, {"/user": (301, {"Location": f"{plain}/user"}, b"")}) as (base, ca):
            monkeypatch.setenv("SSL_CERT_FILE", str(ca))
            with httpclient.session() as s, pytest.raises(httpclient.CrossOriginRedirect) as e:
                httpclient.send(s, "GET", f"{base}/user", headers={"Authorization": "Bearer secret-3"}, timeout=5)
    assert e.value.location.startswith("http://127.0.0.1:") and plain_seen == []
