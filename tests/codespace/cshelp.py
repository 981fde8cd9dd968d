"""Helpers of the codespace tests: an isolated user running the INSTALLED mlops-env against the
fake GitHub API (fake_github.py), the fake `gh` (fake_gh.py) on PATH, and a minimal SSH server
(paramiko) that presents a host key, for the tests that need a handshake but no login."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clirun import Run, assert_nowhere, mlops_env_bin, watch, with_default_sigint

HERE = Path(__file__).resolve().parent


def path_without_gh() -> str:
    """PATH minus every directory that holds a `gh` (the machine's own GitHub CLI, if any)."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "gh").exists()]
    return os.pathsep.join(dirs)


def install_fake_gh(directory: Path) -> Path:
    """``directory/gh``: fake_gh.py run by this Python (so it can import docker). Returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    gh = directory / "gh"
    gh.write_text(f"#!{sys.executable}\n" + (HERE / "fake_gh.py").read_text())
    gh.chmod(0o755)
    return directory


@dataclass
class User:
    """One isolated user of mlops-env: HOME and MLOPS_ENV_HOME below tmp, the fake GitHub API,
    a token in GH_TOKEN (unless ``token`` is None), and a fake gh on PATH when ``gh_dir`` is set."""

    home: Path
    root: Path
    api: str
    token: str | None
    gh_dir: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "SSH_AUTH_SOCK")}
        path = path_without_gh()
        if self.gh_dir is not None:
            path = f"{self.gh_dir}{os.pathsep}{path}"
        e.update(HOME=str(self.home), MLOPS_ENV_HOME=str(self.root), NO_COLOR="1", COLUMNS="200", PATH=path,
                 MLOPS_ENV_GITHUB_API_URL=self.api, FAKE_GH_API=self.api, FAKE_GH_LOG=str(self.root.parent / "gh.log"))
        if self.token is not None:
            e["GH_TOKEN"] = self.token
        e.update(self.extra)
        return e

    @property
    def ssh_config(self) -> Path:
        return self.home / ".ssh" / "config"

    @property
    def secrets(self) -> list[str]:
        """The tokens this user's runs are given (GH_TOKEN, the fake gh's `auth token`)."""
        return [t for t in (self.token, self.extra.get("FAKE_GH_TOKEN")) if t]

    def mlops(self, *args: str, timeout: float = 300, input: str | None = None) -> Run:
        """One run; watched: its whole output and the files it wrote are scanned for the token
        after the test (tests/conftest.py ``_leak_check``)."""
        p = subprocess.run([mlops_env_bin(), *args], env=self.env, capture_output=True, text=True,  # noqa: S603
                           timeout=timeout, input=input if input is not None else "", check=False)
        return watch(Run(p.returncode, p.stdout, p.stderr), self.secrets, (self.root, self.home))

    def start(self, *args: str) -> subprocess.Popen[str]:
        """The CLI in the background, in its own process group (to be killed like Ctrl-C or kill -9),
        with SIGINT's default disposition whatever this suite inherited (clirun.with_default_sigint)."""
        return subprocess.Popen(with_default_sigint([mlops_env_bin(), *args]), env=self.env,  # noqa: S603
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                text=True, start_new_session=True)

    def interrupt(self, proc: subprocess.Popen[str], sig: int) -> Run:
        """Send ``sig`` to the run's process group, wait for it; the run is watched like ``mlops``."""
        code, out, err = interrupt(proc, sig)
        return watch(Run(code, out, err), self.secrets, (self.root, self.home))

    def finish(self, proc: subprocess.Popen[str], timeout: float = 300) -> Run:
        """Wait for a ``start``-ed run to end by itself; watched like ``mlops``."""
        out, err = proc.communicate(timeout=timeout)
        return watch(Run(proc.returncode, out, err), self.secrets, (self.root, self.home))

    def state(self, name: str) -> dict[str, Any]:
        return json.loads((self.root / "state" / f"{name}.json").read_text())

    def gh_calls(self) -> list[list[str]]:
        p = self.root.parent / "gh.log"
        if not p.exists():
            return []
        return [json.loads(line)["argv"] for line in p.read_text().splitlines() if line.strip()]

    def everything_written(self) -> str:
        """Every file mlops-env wrote (state, logs, ssh config, known_hosts...), whole, as one text."""
        out = []
        for base in (self.root, self.home):
            for p in sorted(base.rglob("*")):
                if p.is_file() and not p.is_symlink():
                    out.append(p.read_text(errors="replace"))
        return "\n".join(out)

    def ssh_g(self, alias: str) -> subprocess.CompletedProcess[str]:
        """The real OpenSSH's view of ``alias`` through the user's ~/.ssh/config (and its Include)."""
        return subprocess.run(["ssh", "-G", "-F", str(self.ssh_config), alias], capture_output=True,  # noqa: S603
                              text=True, env=self.env, timeout=15, check=False)


def assert_token_nowhere(u: User, fake: Any, *runs: Any) -> None:
    """The fake API's token (and the user's own) is nowhere: not in the WHOLE stdout and stderr of
    each run, nor in any byte of any file below the user's MLOPS_ENV_HOME and HOME."""
    assert_nowhere([fake.token, *u.secrets], *runs, dirs=(u.root, u.home))


def make_user(tmp: Path, api: str, token: str | None, gh_dir: Path | None = None) -> User:
    home = tmp / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700, exist_ok=True)
    return User(home=home, root=tmp / "mlops", api=api, token=token, gh_dir=gh_dir)


def wait_until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def interrupt(proc: subprocess.Popen[str], sig: int) -> tuple[int, str, str]:
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


KILL, CTRL_C = signal.SIGKILL, signal.SIGINT


@contextmanager
def host_key_server(key_file: Path | None = None) -> Iterator[tuple[int, str]]:
    """An SSH server on 127.0.0.1 that completes the key exchange (presenting an ED25519 host
    key) and accepts no login: what a first-contact host key probe needs. Yields (port, key line)."""
    import paramiko

    key = paramiko.Ed25519Key.from_private_key_file(str(key_file)) if key_file else _new_ed25519()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(0.2)
    stop = threading.Event()

    class Server(paramiko.ServerInterface):
        def get_allowed_auths(self, username: str) -> str:
            return "publickey"

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except (TimeoutError, OSError):
                continue
            t = paramiko.Transport(conn)
            t.add_server_key(key)
            try:
                t.start_server(server=Server())
            except (paramiko.SSHException, EOFError, OSError):
                t.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        yield lsock.getsockname()[1], f"{key.get_name()} {key.get_base64()}"
    finally:
        stop.set()
        th.join(timeout=2)
        lsock.close()


def _new_ed25519() -> Any:
    import tempfile

    import paramiko

    d = Path(tempfile.mkdtemp(prefix="hostkey-"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "k")], check=True)  # noqa: S603,S607
    k = paramiko.Ed25519Key.from_private_key_file(str(d / "k"))
    shutil.rmtree(d, ignore_errors=True)
    return k
