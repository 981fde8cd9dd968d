"""SSH transport (paramiko) with the host key pinned before any authentication.

We drive ``paramiko.Transport`` directly instead of ``SSHClient`` so that the host key check
is ours: the key the server presents is compared with the pinned key (from the tool's
known_hosts, keyed by HostKeyAlias) and anything else is refused. There is no
trust-on-first-use path here; first contact is handled by ``probe_host_key`` + an explicit
confirmation in the caller.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_env.errors import ConnectError, HostKeyError, MlopsError
from mlops_env.transport import ChannelError, LineCallback, RunResult, Transport, shell_join

log = logging.getLogger(__name__)
# Handshake retries while sshd boots make paramiko log tracebacks; never on the terminal.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

# Host key algorithms to ask for, by pinned key type.
_KEY_ALGOS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
}

#: Held open on every connection for its whole life (see ``SSHTransport._hold_presence``): a
#: shell whose $0 is ``mlops-env`` (the mark of mlops-env's command wrapper, ``run_script``),
#: reading its stdin until the connection closes. With it under the session, the box's
#: idle-stop agent tells this connection from a person's even between two commands, however
#: long the pause (docs/idle-stop.md, "mlops-env's own connections do not count").
PRESENCE_COMMAND = "sh -c 'while read -r _; do :; done' mlops-env"


def fingerprint(key_type: str, key_b64: str) -> str:
    """``SHA256:...`` fingerprint, formatted like ``ssh-keygen -lf``."""
    import base64
    import hashlib

    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _open_transport(host: str, port: int, deadline: float, key_types: tuple[str, ...] | None,
                    proxy_command: str | None = None) -> Any:
    """Open a TCP connection (or run ``proxy_command``, OpenSSH's ProxyCommand, and talk over its
    stdin/stdout) and complete the SSH handshake, retrying until ``deadline``.

    Retries cover a box that is still booting: connection refused, no banner yet, reset.
    """
    import paramiko

    delay = 0.2
    last: Exception | None = None
    attempts = 0
    while True:
        attempts += 1
        sock = None
        try:
            if proxy_command:
                sock = _proxy_socket(proxy_command)
            else:
                sock = socket.create_connection((host, port), timeout=min(10.0, max(1.0, deadline - time.monotonic())))
            t = paramiko.Transport(sock)
            if key_types:
                t.get_security_options().key_types = key_types
            t.banner_timeout = 15
            t.start_client(timeout=15)
            log.debug("ssh handshake with %s:%s after %d attempt(s)", host, port, attempts)
            return t
        except paramiko.SSHException as e:
            if "no acceptable host key" in str(e).lower() or "incompatible" in str(e).lower():
                raise HostKeyError(
                    f"{host}:{port} does not offer the pinned host key type ({', '.join(key_types or ())})",
                    hint="the box's SSH server was reconfigured or replaced; if you trust the change, "
                    "run `mlops-env down NAME` and `up` again",
                ) from e
            last = e
        except (OSError, EOFError) as e:
            last = e
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
            if proxy_command:
                last = _proxy_failure(sock, last)
        if time.monotonic() + delay > deadline:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    if proxy_command:
        raise ConnectError(
            f"cannot reach SSH on {host} through `{proxy_command}`: {_describe(last)}",
            hint="check that the box is running (`mlops-env status NAME`) and that the proxy command works",
            code="unreachable",
        )
    raise ConnectError(
        f"cannot reach SSH on {host}:{port}: {_describe(last)}",
        hint="check that the box is running and that its address and port are right "
        "(`mlops-env status NAME`); a firewall may block port 22",
        code="unreachable",
    )


def _describe(e: Exception | None) -> str:
    if e is None:
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, socket.gaierror):
        return f"unknown host ({e.strerror})"
    text = str(e) or type(e).__name__
    return text.splitlines()[0]


def _proxy_socket(command: str) -> Any:
    """paramiko's ProxyCommand, except that the command's end of output is the end of the
    connection (paramiko's own spins until its timeout when the command exits), that its output
    is read by a thread (``select`` on a pipe does not work on Windows), that the command line is
    run as OpenSSH would on this system (``osenv.proxy_popen_args``), and that closing it reaps
    the process."""
    import subprocess

    import paramiko

    from mlops_env import osenv

    class _Proxy(paramiko.ProxyCommand):  # type: ignore[misc]
        def __init__(self, command_line: str) -> None:  # noqa: D107 - paramiko's, without shlex on Windows
            self.cmd = command_line
            proc: Any = subprocess.Popen(  # noqa: S603 - the endpoint's own ProxyCommand
                osenv.proxy_popen_args(command_line), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, bufsize=0)
            self.process = proc
            self.timeout = None
            self.reader = osenv.PipeReader(proc.stdout)
            self.errors = osenv.PipeReader(proc.stderr)

        def send(self, content: bytes) -> int:
            try:
                self.process.stdin.write(content)
                self.process.stdin.flush()
            except (OSError, ValueError) as e:
                raise paramiko.ProxyCommandFailure(self.cmd, str(e)) from e
            return len(content)

        def recv(self, size: int) -> bytes:
            # TimeoutError is socket.timeout: paramiko reads it as "no data yet";
            # b"" = EOF: paramiko raises EOFError.
            return self.reader.recv(size, self.timeout)

        def close(self) -> None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except Exception:  # noqa: BLE001 - a proxy that ignores SIGTERM
                    self.process.kill()
                    self.process.wait(timeout=5)
            for f in (self.process.stdin, self.process.stdout):
                try:
                    f.close()
                except OSError:
                    pass

    return _Proxy(command)


def _proxy_failure(sock: Any, last: Exception | None) -> Exception | None:
    """The proxy command's last stderr line (it says why it could not connect), when it wrote one."""
    proc = getattr(sock, "process", None)
    errors = getattr(sock, "errors", None)
    if proc is None or errors is None:
        return last
    try:
        proc.wait(timeout=2)
        err = errors.drain(0.5)
        if proc.stderr is not None:
            proc.stderr.close()
    except Exception:  # noqa: BLE001 - best effort: the error message only
        return last
    lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return last
    log.debug("proxy command stderr: %s", " | ".join(lines[-5:]))
    return ConnectionError(f"{lines[-1].strip()} (proxy command exit {proc.returncode})")


def probe_host_key(host: str, port: int, timeout: float = 30.0,
                   proxy_command: str | None = None) -> tuple[str, str]:
    """Return ``(key_type, base64)`` of the host key the server presents (ED25519 preferred).

    Used only for first contact with a box the user brings (``up ssh``); the caller shows the
    fingerprint and asks for confirmation (or compares ``--host-key-fingerprint``).
    """
    t = _open_transport(host, port, time.monotonic() + timeout, None, proxy_command)
    try:
        key = t.get_remote_server_key()
        return key.get_name(), key.get_base64()
    finally:
        t.close()


def load_private_key(path: str) -> Any:
    import paramiko

    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        raise ConnectError(f"identity file {path} not found", hint="check --identity",
                           code="identity-missing") from None
    except paramiko.PasswordRequiredException:
        return None  # encrypted: try the agent
    except (paramiko.SSHException, ValueError, OSError) as e:
        raise ConnectError(f"cannot load identity file {path}: {e}",
                           hint="pass an OpenSSH private key with --identity", code="identity-invalid") from e


class SSHTransport(Transport):
    """One authenticated SSH connection, reused for every command of a run."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        identity_file: str,
        host_key: str,
        *,
        timeout: float = 60.0,
        label: str = "",
        proxy_command: str | None = None,
    ) -> None:
        self.host, self.port, self.user = host, port, user
        self.proxy_command = proxy_command
        self.identity_file = identity_file
        self.host_key = host_key
        self.timeout = timeout
        self.label = label or f"{host}:{port}"
        self.where = f"{user}@{host}:{port}"
        self.round_trips = 0
        self.connects = 0
        self._lock = threading.Lock()
        self._t: Any = None
        self._presence: Any = None
        self._connect()

    # -- connection -------------------------------------------------------------------------
    def _connect(self) -> None:
        parts = self.host_key.split()
        if len(parts) < 2:
            raise HostKeyError(f"no pinned host key for {self.label}",
                               hint="run `mlops-env up` for this workstation again")
        ktype, kb64 = parts[0], parts[1]
        deadline = time.monotonic() + self.timeout
        t = _open_transport(self.host, self.port, deadline, _KEY_ALGOS.get(ktype, (ktype,)), self.proxy_command)
        try:
            presented = t.get_remote_server_key()
            if presented.get_name() != ktype or presented.get_base64() != kb64:
                raise HostKeyError(
                    f"host key for {self.label} changed: expected {fingerprint(ktype, kb64)}, "
                    f"got {fingerprint(presented.get_name(), presented.get_base64())}",
                    hint="this may be an attack (or the box was rebuilt); nothing was sent. If you "
                    "rebuilt it, run `mlops-env down NAME` and `mlops-env up` again",
                    code="host-key-changed",
                )
            self._auth(t)
            t.set_keepalive(30)
        except BaseException:
            t.close()
            raise
        self._t = t
        self.connects += 1
        threading.Thread(target=self._hold_presence, args=(t,), name="ssh-presence", daemon=True).start()

    def _hold_presence(self, t: Any) -> None:
        """Open the presence channel (``PRESENCE_COMMAND``) beside the caller's first command,
        off the caller's thread, so that no round trip is added to a run. Best effort: a server
        that refuses another session (MaxSessions 1) only loses the idle agent's certainty."""
        import paramiko

        try:
            chan = t.open_session(timeout=30)
            chan.exec_command(PRESENCE_COMMAND)
        except (paramiko.SSHException, EOFError, OSError) as e:
            if t.is_active():
                log.debug("no presence channel on %s: %s", self.where, e)
            return
        self._presence = chan  # held: paramiko closes a channel that is garbage-collected
        log.debug("presence channel open on %s", self.where)

    def _auth(self, t: Any) -> None:
        import paramiko

        key = load_private_key(self.identity_file)
        keys = [key] if key is not None else list(paramiko.Agent().get_keys())
        last: Exception | None = None
        for k in keys:
            try:
                t.auth_publickey(self.user, k)
                if t.is_authenticated():
                    return
            except paramiko.AuthenticationException as e:
                last = e
            except paramiko.SSHException as e:
                last = e
        hint = (f"add the public key {self.identity_file}.pub to ~{self.user}/.ssh/authorized_keys on the box "
                f"(ssh-copy-id -i {self.identity_file} -p {self.port} {self.user}@{self.host})")
        if key is None and not keys:
            hint = f"{self.identity_file} is passphrase-protected: load it into ssh-agent (ssh-add {self.identity_file})"
        raise ConnectError(
            f"{self.where} refused the key {self.identity_file}" + (f" ({last})" if last and str(last) else ""),
            hint=hint,
            code="auth-refused",
        )

    def fresh(self) -> SSHTransport:
        """A second, new login: group changes (usermod -aG docker) apply there."""
        return SSHTransport(self.host, self.port, self.user, self.identity_file, self.host_key,
                            timeout=self.timeout, label=self.label, proxy_command=self.proxy_command)

    def close(self) -> None:
        if self._t is not None:
            self._t.close()
            self._t = None
        self._presence = None

    def open_channel(self, host: str, port: int, *, timeout: float = 10.0) -> Any:
        """A ``direct-tcpip`` channel to HOST:PORT as the box sees it, over this connection (what
        ``ssh -L`` does; nothing is opened on the box). A socket-like object (``sendall``,
        ``recv``, ``settimeout``, ``close``). Raises ``ChannelError`` (``refused`` when the
        box's sshd does not allow the forward, ``closed`` when the connection is not open)."""
        import paramiko

        t = self._t
        if t is None or not t.is_active():
            raise ChannelError(f"the SSH connection to {self.where} is not open", closed=True)
        try:
            return t.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as e:
            raise ChannelError(str(e), refused=True) from e
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise ChannelError(str(e)) from e

    # -- commands ---------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
    ) -> RunResult:
        import paramiko

        command = shell_join(argv)
        start = time.monotonic()
        with self._lock:
            self.round_trips += 1
            if self._t is None or not self._t.is_active():
                raise ConnectError(f"the SSH connection to {self.where} was lost",
                                   hint="run the same command again: it picks up where it stopped",
                                   code="connection-lost")
            try:
                chan = self._t.open_session(timeout=30)
            except (paramiko.SSHException, EOFError, OSError) as e:
                raise ConnectError(f"the SSH connection to {self.where} was lost ({e})",
                                   hint="run the same command again: it picks up where it stopped",
                                   code="connection-lost") from e
        log.debug("run on %s: %s", self.where, command[:500])
        try:
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = _collect(chan, timeout, on_line)
            if out is None:
                raise MlopsError(
                    f"command timed out after {timeout:.0f}s on {self.where}: {command[:120]}",
                    hint="the box may be overloaded or waiting for input; see the log file",
                    code="timeout",
                )
            code = chan.recv_exit_status()
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise ConnectError(f"the SSH connection to {self.where} dropped ({e})",
                               hint="run the same command again: it picks up where it stopped",
                               code="connection-lost") from e
        finally:
            chan.close()
        if code == -1:  # channel closed without an exit status: the connection died
            raise ConnectError(f"the SSH connection to {self.where} dropped",
                               hint="run the same command again: it picks up where it stopped",
                               code="connection-lost")
        res = RunResult(tuple(argv), code, out, err or "", time.monotonic() - start)
        log.debug("exit %s after %.2fs", code, res.seconds)
        return res


def _collect(chan: Any, timeout: float | None, on_line: LineCallback | None) -> tuple[Any, Any]:
    out_b: list[bytes] = []
    err_b: list[bytes] = []
    partial = {"o": b"", "e": b""}
    deadline = None if timeout is None else time.monotonic() + timeout

    def feed(key: str, data: bytes, sink: list[bytes]) -> None:
        sink.append(data)
        if on_line:
            buf = partial[key] + data
            *lines, partial[key] = buf.split(b"\n")
            for line in lines:
                on_line(line.decode("utf-8", "replace").rstrip("\r"))

    while True:
        if deadline is not None and time.monotonic() > deadline:
            return None, None
        got = False
        while chan.recv_ready():
            feed("o", chan.recv(65536), out_b)
            got = True
        while chan.recv_stderr_ready():
            feed("e", chan.recv_stderr(65536), err_b)
            got = True
        if chan.closed and not chan.recv_ready() and not chan.recv_stderr_ready():
            break  # connection closed under us (Ctrl-C closes it on purpose)
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            # drain what raced in after the exit status
            if not got:
                break
            continue
        if not got:
            # A paramiko Channel's fileno is a socket pair on Windows (paramiko.pipe), so this
            # select works there too; it is never given a process pipe (see _proxy_socket).
            select.select([chan], [], [], 0.1)
    for key in ("o", "e"):
        if on_line and partial[key]:
            on_line(partial[key].decode("utf-8", "replace"))
    return b"".join(out_b).decode("utf-8", "replace"), b"".join(err_b).decode("utf-8", "replace")


def identity_public_line(identity_file: str) -> str | None:
    pub = Path(identity_file + ".pub")
    try:
        return pub.read_text().strip()
    except OSError:
        return None
