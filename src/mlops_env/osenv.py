"""The laptop's operating system: one seam for what differs between Windows, macOS and Linux.

mlops-env runs on the student's laptop; the boxes are Linux. Everything laptop-side that is not
the same on every system goes through this module, so the rest of the code stays one code path:

- **private files** (the tool's key, its ssh config, ``~/.ssh/config``): POSIX permission bits;
  on Windows the file's ACL, which is what Windows OpenSSH checks (only the user, SYSTEM and
  Administrators; Python's ``st_mode`` there says 0666 or 0444 whatever the ACL is, so it is
  never read). ``protect`` sets, ``protection_problem`` checks.
- **processes**: a new process group and killing the whole tree on a timeout (``os.killpg`` and
  ``SIGKILL`` do not exist on Windows); running the system ``ssh`` in the foreground (``os.execv``
  on Windows starts a new process and returns at once: there it runs as a child and its exit
  code is passed on).
- **pipes**: reading a child's stdout with a timeout through a reader thread (``select`` on
  Windows takes sockets only).
- **command lines**: a ProxyCommand quoted for what runs it (OpenSSH on POSIX: ``sh -c``;
  Windows OpenSSH: ``CreateProcess``, the C runtime's quoting rules).
- **programs**: ``ssh``, ``code`` and ``gh`` where their installers put them when they are not
  on ``PATH`` (VS Code's ``code.cmd``, GitHub CLI's ``gh.exe``, a Mac app bundle, Homebrew).
- **os.replace**: retried briefly on Windows, where another process holding the target open
  (VS Code reading ``~/.ssh/config``, a virus scanner) makes it fail for a moment.

``system()`` is the one place that asks which system this is; tests replace it (and the
Windows API object ``winapi()``) to run the Windows and macOS paths on Linux.
"""

from __future__ import annotations

import os
import queue
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

WINDOWS, MACOS, LINUX = "windows", "macos", "linux"

# Well-known SIDs Windows OpenSSH accepts next to the user on a private key or config file.
SID_SYSTEM = "S-1-5-18"
SID_ADMINISTRATORS = "S-1-5-32-544"
_SID_NAMES = {SID_SYSTEM: "SYSTEM", SID_ADMINISTRATORS: "Administrators", "S-1-1-0": "Everyone",
              "S-1-5-11": "Authenticated Users", "S-1-5-32-545": "Users", "S-1-5-32-546": "Guests"}
REPLACE_RETRY_SECONDS = 2.0


def system() -> str:
    """``windows``, ``macos`` or ``linux`` (any other POSIX system counts as linux)."""
    if sys.platform == "win32":
        return WINDOWS
    if sys.platform == "darwin":
        return MACOS
    return LINUX


def is_windows() -> bool:
    return system() == WINDOWS


# -- private files -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Ace:
    """One entry of a Windows ACL, as ``WinApi.read_acl`` returns it."""

    sid: str
    allow: bool = True
    mask: int = 0x1F01FF  # FILE_ALL_ACCESS
    inherit_only: bool = False  # applies to children only, not to the file itself


@dataclass(frozen=True)
class Acl:
    owner: str
    entries: tuple[Ace, ...]
    null_dacl: bool = False  # no DACL at all: everyone has full access


class WinApi(Protocol):
    """The Windows calls the seam needs (``_RealWinApi`` binds them with ctypes and icacls;
    tests pass a fake with the same semantics)."""

    def user_sid(self) -> str: ...

    def read_acl(self, path: str) -> Acl: ...

    def set_private(self, path: str, user_sid: str, directory: bool) -> None: ...


_winapi: WinApi | None = None


def winapi() -> WinApi:
    global _winapi
    if _winapi is None:
        _winapi = _RealWinApi()
    return _winapi


def set_winapi(api: WinApi | None) -> None:
    """Use ``api`` for the Windows ACL calls (tests); ``None`` goes back to the real one."""
    global _winapi
    _winapi = api


def protect(path: Path, *, directory: bool | None = None) -> None:
    """Make ``path`` private to the user: 0600 (0700 for a directory) on POSIX; on Windows an
    ACL with only the user, SYSTEM and Administrators (inheritance from the folder removed)."""
    is_dir = path.is_dir() if directory is None else directory
    if is_windows():
        api = winapi()
        api.set_private(str(path), api.user_sid(), is_dir)
        return
    os.chmod(path, 0o700 if is_dir else 0o600)


def protection_problem(path: Path, want: int = 0o600) -> str | None:
    """``None`` when ``path`` is as private as ``want`` asks (POSIX bits; on Windows: no one but
    the user, SYSTEM and Administrators may access it), else what is wrong, in words. A missing
    file has no problem (nothing to protect yet)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if is_windows():
        return _acl_problem(path)
    mode = stat.S_IMODE(st.st_mode)
    if mode & ~want:
        return f"{path} has mode {mode:04o}, expected {want:04o}"
    return None


def is_loose(path: Path, want: int = 0o600) -> bool:
    return protection_problem(path, want) is not None


def _acl_problem(path: Path) -> str | None:
    api = winapi()
    me = api.user_sid()
    acl = api.read_acl(str(path))
    allowed = {me, SID_SYSTEM, SID_ADMINISTRATORS}
    if acl.null_dacl:
        return f"{path} has no access list (everyone may read it)"
    others = sorted({a.sid for a in acl.entries if a.allow and not a.inherit_only and a.sid not in allowed})
    if others:
        who = ", ".join(_SID_NAMES.get(s, s) for s in others)
        return f"{path} can be read by {who} (only you, SYSTEM and Administrators may)"
    if acl.owner not in allowed:
        return f"{path} belongs to {_SID_NAMES.get(acl.owner, acl.owner)}, not to you"
    return None


def protect_hint(path: Path, *, directory: bool = False) -> str:
    """The command a user runs to make ``path`` private by hand."""
    if is_windows():
        grant = "(OI)(CI)F" if directory else "F"
        return (f'`icacls "{path}" /inheritance:r /grant:r "%USERNAME%:{grant}" '
                f'/grant:r "*{SID_SYSTEM}:{grant}" /grant:r "*{SID_ADMINISTRATORS}:{grant}"`')
    return f"`chmod {'700' if directory else '600'} {shlex.quote(str(path))}`"


def current_uid() -> int | None:
    """The POSIX user id; ``None`` on Windows (there is no ``os.getuid``)."""
    getuid = getattr(os, "getuid", None)
    return None if is_windows() or getuid is None else int(getuid())


class _RealWinApi:  # pragma: no cover - runs on Windows only (the CI workflow's windows-latest job)
    """advapi32 through ctypes for reading; ``icacls`` (in every Windows since Vista) for setting.
    SIDs, never account names: names are translated ("Administrateurs")."""

    def __init__(self) -> None:
        import ctypes
        from ctypes import wintypes

        self.ctypes, self.wintypes = ctypes, wintypes
        self.advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)  # type: ignore[attr-defined]
        self.kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        self._me: str | None = None

    def _sid_str(self, psid: Any) -> str:
        ctypes, wintypes = self.ctypes, self.wintypes
        out = wintypes.LPWSTR()
        if not self.advapi32.ConvertSidToStringSidW(psid, ctypes.byref(out)):
            raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]
        try:
            return str(out.value)
        finally:
            self.kernel32.LocalFree(out)

    def user_sid(self) -> str:
        if self._me is None:
            ctypes, wintypes = self.ctypes, self.wintypes
            token = wintypes.HANDLE()
            self.advapi32.OpenProcessToken.argtypes = [wintypes.HANDLE, wintypes.DWORD, ctypes.POINTER(wintypes.HANDLE)]
            self.kernel32.GetCurrentProcess.restype = wintypes.HANDLE
            if not self.advapi32.OpenProcessToken(self.kernel32.GetCurrentProcess(), 0x0008, ctypes.byref(token)):
                raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]
            try:
                size = wintypes.DWORD()
                self.advapi32.GetTokenInformation(token, 1, None, 0, ctypes.byref(size))  # TokenUser
                buf = ctypes.create_string_buffer(size.value)
                if not self.advapi32.GetTokenInformation(token, 1, buf, size, ctypes.byref(size)):
                    raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]
                psid = ctypes.cast(buf, ctypes.POINTER(ctypes.c_void_p))[0]  # TOKEN_USER.User.Sid
                self._me = self._sid_str(ctypes.c_void_p(psid))
            finally:
                self.kernel32.CloseHandle(token)
        return self._me

    def read_acl(self, path: str) -> Acl:
        import ctypes

        wintypes = self.wintypes

        class AclHeader(ctypes.Structure):
            _fields_ = [("AclRevision", ctypes.c_ubyte), ("Sbz1", ctypes.c_ubyte), ("AclSize", ctypes.c_ushort),
                        ("AceCount", ctypes.c_ushort), ("Sbz2", ctypes.c_ushort)]

        class AceHeader(ctypes.Structure):
            _fields_ = [("AceType", ctypes.c_ubyte), ("AceFlags", ctypes.c_ubyte), ("AceSize", ctypes.c_ushort)]

        owner, dacl, sd = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        gnsi = self.advapi32.GetNamedSecurityInfoW
        gnsi.argtypes = [wintypes.LPCWSTR, ctypes.c_int, wintypes.DWORD, ctypes.POINTER(ctypes.c_void_p),
                         ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
                         ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]
        # SE_FILE_OBJECT = 1; OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION
        err = gnsi(path, 1, 0x1 | 0x4, ctypes.byref(owner), None, ctypes.byref(dacl), None, ctypes.byref(sd))
        if err:
            raise ctypes.WinError(err)  # type: ignore[attr-defined]
        try:
            owner_sid = self._sid_str(owner)
            if not dacl.value:
                return Acl(owner_sid, (), null_dacl=True)
            header = ctypes.cast(dacl, ctypes.POINTER(AclHeader)).contents
            entries = []
            get_ace = self.advapi32.GetAce
            get_ace.argtypes = [ctypes.c_void_p, wintypes.DWORD, ctypes.POINTER(ctypes.c_void_p)]
            for i in range(header.AceCount):
                pace = ctypes.c_void_p()
                if not get_ace(dacl, i, ctypes.byref(pace)):
                    raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]
                ah = ctypes.cast(pace, ctypes.POINTER(AceHeader)).contents
                if ah.AceType not in (0, 1):  # ACCESS_ALLOWED_ACE / ACCESS_DENIED_ACE
                    continue
                mask = ctypes.cast(ctypes.c_void_p(pace.value + 4), ctypes.POINTER(ctypes.c_uint32))[0]  # type: ignore[operator]
                sid = self._sid_str(ctypes.c_void_p(pace.value + 8))  # type: ignore[operator]
                entries.append(Ace(sid, allow=ah.AceType == 0, mask=int(mask), inherit_only=bool(ah.AceFlags & 0x08)))
            return Acl(owner_sid, tuple(entries))
        finally:
            self.kernel32.LocalFree(sd)

    def set_private(self, path: str, user_sid: str, directory: bool) -> None:
        grant = "(OI)(CI)F" if directory else "F"
        argv = [_system32("icacls.exe"), path, "/inheritance:r"]
        for sid in (user_sid, SID_SYSTEM, SID_ADMINISTRATORS):
            argv += ["/grant:r", f"*{sid}:{grant}"]
        p = subprocess.run(argv, capture_output=True, text=True, check=False,  # noqa: S603 - fixed argv
                           stdin=subprocess.DEVNULL, errors="replace")
        if p.returncode != 0:
            raise PermissionError(f"icacls could not protect {path}: {(p.stdout + p.stderr).strip()[-300:]}")
        # icacls adds to an existing ACL: remove any other grant the file had explicitly.
        acl = self.read_acl(path)
        for sid in sorted({a.sid for a in acl.entries if a.sid not in (user_sid, SID_SYSTEM, SID_ADMINISTRATORS)}):
            subprocess.run([_system32("icacls.exe"), path, "/remove:g", f"*{sid}"],  # noqa: S603
                           capture_output=True, check=False, stdin=subprocess.DEVNULL)


def _system32(exe: str) -> str:
    root = os.environ.get("SystemRoot", r"C:\Windows")
    p = Path(root) / "System32" / exe
    return str(p) if p.exists() else exe


# -- processes ---------------------------------------------------------------------------------
def new_group_kwargs() -> dict[str, Any]:
    """``Popen`` arguments that put the child in its own process group, so a timeout can kill
    a script and its children (POSIX: a new session; Windows: a new process group)."""
    if is_windows():
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


def kill_tree(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` and everything it started (made with ``new_group_kwargs``). POSIX: SIGKILL
    to the process group; Windows: ``taskkill /T /F`` (the tree), else ``proc.kill()``."""
    if proc.poll() is not None:
        return
    if is_windows():
        try:
            subprocess.run([_system32("taskkill.exe"), "/T", "/F", "/PID", str(proc.pid)],  # noqa: S603
                           capture_output=True, check=False, stdin=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        return
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_foreground(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Hand the terminal to ``argv`` (the system ``ssh``) and return its exit code.

    POSIX replaces this process (``os.execv``: signals and the terminal go straight to ssh, and
    this call does not return). Windows has no exec: ``os.execv`` there starts a new process and
    ends this one at once, so the console sees the shell prompt and ssh fight over it; ssh runs
    as a child instead, with Ctrl-C left to it (the console sends it to both)."""
    if not is_windows():
        os.execv(argv[0], list(argv))  # noqa: S606 - argv list, no shell
    import signal

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.call(list(argv), env=None if env is None else dict(env))  # noqa: S603
    finally:
        signal.signal(signal.SIGINT, old)


# -- pipes -------------------------------------------------------------------------------------
class PipeReader:
    """Reads a pipe in a daemon thread, so that the consumer can wait with a timeout on any
    system (``select`` on pipes is POSIX-only). ``recv`` gives what arrived, ``b""`` at EOF."""

    def __init__(self, stream: IO[bytes], chunk: int = 65536) -> None:
        self._q: queue.Queue[bytes] = queue.Queue()
        self._buf = b""
        self._eof = False
        self._stream = stream
        self._chunk = chunk
        self._t = threading.Thread(target=self._pump, daemon=True, name="mlops-env-pipe")
        self._t.start()

    def _pump(self) -> None:
        read = getattr(self._stream, "read1", self._stream.read)
        try:
            while True:
                data = read(self._chunk)
                if not data:
                    break
                self._q.put(data)
        except (OSError, ValueError):
            pass
        self._q.put(b"")

    def recv(self, size: int, timeout: float | None) -> bytes:
        """Up to ``size`` bytes; ``b""`` at end of file; ``TimeoutError`` when nothing came in
        ``timeout`` seconds (``None``: wait)."""
        if not self._buf and not self._eof:
            try:
                got = self._q.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError() from None
            if got:
                self._buf = got
            else:
                self._eof = True
        out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def drain(self, timeout: float) -> bytes:
        """Everything until EOF or until ``timeout`` seconds pass without data."""
        chunks = []
        while True:
            try:
                d = self.recv(1 << 20, timeout)
            except TimeoutError:
                break
            if not d:
                break
            chunks.append(d)
        return b"".join(chunks)


# -- command lines -----------------------------------------------------------------------------
def join_command(argv: Sequence[str]) -> str:
    """One command line for a ProxyCommand: POSIX OpenSSH runs it with ``sh -c`` (shell quoting);
    Windows OpenSSH hands it to ``CreateProcess`` (the C runtime's quoting: ``"C:\\Program
    Files\\GitHub CLI\\gh.exe"``, backslashes kept)."""
    if is_windows():
        return subprocess.list2cmdline(list(argv))
    return shlex.join(list(argv))


def proxy_popen_args(command: str) -> str | list[str]:
    """What ``Popen`` runs for a ProxyCommand, the way OpenSSH would: POSIX ``shlex.split`` (no
    shell: the line is ours, written by ``join_command``); Windows the line as it is
    (``CreateProcess`` parses it, as Windows OpenSSH does)."""
    if is_windows():
        return command
    return shlex.split(command)


# -- programs ----------------------------------------------------------------------------------
def _candidates(name: str, env: Mapping[str, str]) -> list[Path]:
    home = Path(env.get("USERPROFILE") or env.get("HOME") or str(Path.home()))
    sysname = system()
    if sysname == WINDOWS:
        root = Path(env.get("SystemRoot", r"C:\Windows"))
        pf = [Path(env[v]) for v in ("ProgramFiles", "ProgramW6432", "ProgramFiles(x86)") if env.get(v)]
        local = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return {
            # Sysnative: a 32-bit Python on 64-bit Windows does not see System32\OpenSSH.
            "ssh": [root / "System32" / "OpenSSH" / "ssh.exe", root / "Sysnative" / "OpenSSH" / "ssh.exe",
                    *(p / "Git" / "usr" / "bin" / "ssh.exe" for p in pf)],
            "code": [local / "Programs" / "Microsoft VS Code" / "bin" / "code.cmd",
                     *(p / "Microsoft VS Code" / "bin" / "code.cmd" for p in pf)],
            "gh": [*(p / "GitHub CLI" / "gh.exe" for p in pf), local / "Programs" / "GitHub CLI" / "gh.exe"],
            "docker": [*(p / "Docker" / "Docker" / "resources" / "bin" / "docker.exe" for p in pf)],
        }.get(name, [])
    brew = [Path("/opt/homebrew/bin"), Path("/usr/local/bin")]
    if sysname == MACOS:
        return {
            "code": [Path("/Applications/Visual Studio Code.app/Contents/Resources/app/bin/code"),
                     home / "Applications" / "Visual Studio Code.app" / "Contents" / "Resources" / "app" / "bin" / "code"],
            "gh": [b / "gh" for b in brew],
            "docker": [*(b / "docker" for b in brew), home / ".docker" / "bin" / "docker",
                       home / ".orbstack" / "bin" / "docker",
                       Path("/Applications/Docker.app/Contents/Resources/bin/docker")],
            "ssh": [Path("/usr/bin/ssh")],
        }.get(name, [])
    return {"code": [Path("/snap/bin/code")], "gh": [Path("/snap/bin/gh")]}.get(name, [])


def find_program(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """``name`` (``ssh``, ``code``, ``gh``, ``docker``) on ``PATH`` (Windows: with ``PATHEXT``,
    so ``code`` finds ``code.cmd``), else where its installer puts it on this system."""
    env = os.environ if env is None else env
    found = shutil.which(name, path=env.get("PATH"))
    if found:
        return found
    for p in _candidates(name, env):
        if p.is_file() and (is_windows() or os.access(p, os.X_OK)):
            return str(p)
    return None


# -- files -------------------------------------------------------------------------------------
def replace(src: str | Path, dst: str | Path, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """``os.replace``; on Windows retried for up to ``REPLACE_RETRY_SECONDS`` while another
    process holds ``dst`` open (PermissionError: sharing violation / access denied)."""
    if not is_windows():
        os.replace(src, dst)
        return
    deadline = time.monotonic() + REPLACE_RETRY_SECONDS
    delay = 0.02
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if time.monotonic() + delay > deadline:
                raise
            sleep(delay)
            delay = min(delay * 2, 0.25)
