"""A Windows laptop, simulated on Linux at the boundary of ``mlops_env.osenv`` (no Windows machine
is available here; .github/workflows/laptops.yml runs the suite on a real one).

What the simulation makes true, as on native Windows with CPython:

- ``osenv.system()`` says ``windows``; ``sys.platform`` is left alone (only the seam may ask);
- ``os.stat`` reports permission bits 0666 for files (0444 once ``chmod`` cleared the write bit:
  the read-only attribute, the only thing ``os.chmod`` changes there) and 0777 for folders, and
  ``st_uid`` 0; ``os.chmod`` changes nothing else (the real bits stay as the file was made);
- ``os.getuid``, ``os.geteuid`` and ``os.killpg`` do not exist;
- ``os.execv`` starts the program and ends the calling process at once with exit code 0 (the
  console then has two programs reading it; the caller never learns the exit code);
- ``select.select`` refuses anything that is not a socket (WinError 10038); paramiko's Channel is
  let through, since its ``fileno`` is a socket pair on Windows (``paramiko.pipe``);
- ``subprocess.Popen`` given a string without ``shell=True`` runs it as ``CreateProcess`` would:
  split by the C runtime's rules (``split_cmdline``); ``CREATE_NEW_PROCESS_GROUP`` is accepted
  (as a new session); ``taskkill /T /F /PID`` kills a process tree (a stand-in on PATH);
- the Windows ACL calls go to ``FakeWinApi``: a file nobody protected has the ACL it inherits
  from a folder outside the user profile (the user, SYSTEM, Administrators, and Users who may
  read), ``set_private`` leaves only the user, SYSTEM and Administrators; a rename keeps the ACL
  with the file (NTFS moves the descriptor), a delete drops it. The ACLs live in a JSON file, so
  a CLI subprocess (``sitecustomize`` in winsim_site/) and the test share them.

``install(store)`` applies all of it to this process and returns an undo function.
"""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

USER_SID = "S-1-5-21-3623811015-3361044348-30300820-1013"
SYSTEM, ADMINS, USERS = "S-1-5-18", "S-1-5-32-544", "S-1-5-32-545"
SITE_DIR = Path(__file__).resolve().parent / "winsim_site"
ENV_VAR = "MLOPS_ENV_TEST_WINSIM"  # the ACL store's path; set it (and PYTHONPATH) for a CLI run


def split_cmdline(line: str) -> list[str]:
    """``CommandLineToArgvW`` / the MS C runtime: whitespace separates, ``"`` groups, ``\\``
    is literal except before ``"`` (2n backslashes + quote: n backslashes and a group toggle;
    2n+1: n backslashes and a literal quote)."""
    args: list[str] = []
    cur: list[str] = []
    in_q = False
    have = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            n = 0
            while i < len(line) and line[i] == "\\":
                n += 1
                i += 1
            if i < len(line) and line[i] == '"':
                cur.append("\\" * (n // 2))
                if n % 2:
                    cur.append('"')
                    i += 1
                have = True
            else:
                cur.append("\\" * n)
                have = True
            continue
        if c == '"':
            in_q = not in_q
            have = True
        elif c in " \t" and not in_q:
            if have:
                args.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(c)
            have = True
        i += 1
    if have:
        args.append("".join(cur))
    return args


class FakeWinApi:
    """``osenv.WinApi`` with Windows' semantics, kept in a JSON file (see the module docstring)."""

    def __init__(self, store: Path, user_sid: str = USER_SID) -> None:
        self.store = Path(store)
        self.sid = user_sid
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []

    def _load(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.store.read_text()))
        except (OSError, ValueError):
            return {}

    def _save(self, data: dict[str, Any]) -> None:
        tmp = self.store.with_name(self.store.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        _real["replace"](tmp, self.store)

    def user_sid(self) -> str:
        return self.sid

    def read_acl(self, path: str) -> Any:
        from mlops_env.osenv import Ace, Acl

        self.calls.append(("read", path))
        doc = self._load().get(os.path.abspath(path))
        if doc is None:  # inherited from a folder outside the profile
            return Acl(self.sid, (Ace(self.sid), Ace(SYSTEM), Ace(ADMINS), Ace(USERS, mask=0x1200A9)))
        return Acl(doc["owner"], tuple(Ace(*e) for e in doc["entries"]), bool(doc.get("null")))

    def set_acl(self, path: str, owner: str, entries: list[tuple[str, bool, int, bool]], null: bool = False) -> None:
        with self._lock:
            data = self._load()
            data[os.path.abspath(path)] = {"owner": owner, "entries": [list(e) for e in entries], "null": null}
            self._save(data)

    def set_private(self, path: str, user_sid: str, directory: bool) -> None:
        self.calls.append(("set_private", path))
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        self.set_acl(path, user_sid, [(user_sid, True, 0x1F01FF, False), (SYSTEM, True, 0x1F01FF, False),
                                      (ADMINS, True, 0x1F01FF, False)])

    def is_private(self, path: Path) -> bool:
        return self._load().get(os.path.abspath(path)) is not None

    def moved(self, src: str, dst: str) -> None:
        with self._lock:
            data = self._load()
            a, b = os.path.abspath(src), os.path.abspath(dst)
            if a in data:
                data[b] = data.pop(a)
            else:
                data.pop(b, None)  # the new file brings its own (inherited) ACL
            self._save(data)

    def deleted(self, path: str) -> None:
        with self._lock:
            data = self._load()
            if data.pop(os.path.abspath(path), None) is not None:
                self._save(data)


_real: dict[str, Any] = {"replace": os.replace}


class _WinStat:
    """A stat result as CPython on Windows fills it: permission bits from the read-only attribute."""

    def __init__(self, real: os.stat_result, readonly: bool) -> None:
        self._real = real
        kind = stat.S_IFMT(real.st_mode)
        if stat.S_ISDIR(real.st_mode):
            perm = 0o777
        else:
            perm = 0o444 if readonly else 0o666
        self.st_mode = kind | perm

    st_uid = 0
    st_gid = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install(store: Path, *, api: FakeWinApi | None = None) -> Callable[[], None]:
    """Make this process a simulated Windows laptop (see the module docstring); returns undo.
    Linux only (the taskkill stand-in reads /proc); on a real Windows or macOS runner the tests
    that use it skip, and test_osenv_native.py runs the real thing."""
    if not sys.platform.startswith("linux"):
        import pytest

        pytest.skip("the Windows simulation runs on Linux; test_osenv_native.py covers this system")
    try:
        from mlops_env import osenv
    except ImportError:  # the code before the seam existed: simulate the system anyway
        osenv = None  # type: ignore[assignment]

    api = api or FakeWinApi(store)
    readonly: set[str] = set()
    saved: dict[tuple[Any, str], Any] = {}

    def patch(obj: Any, name: str, value: Any) -> None:
        saved[(obj, name)] = getattr(obj, name, _MISSING)
        if value is _MISSING:
            if hasattr(obj, name):
                delattr(obj, name)
        else:
            setattr(obj, name, value)

    real_stat, real_lstat, real_chmod = os.stat, os.lstat, os.chmod
    real_replace, real_unlink = os.replace, os.unlink
    real_select, real_popen_init = select.select, subprocess.Popen.__init__

    def key(p: Any) -> str:
        return os.path.abspath(os.fsdecode(p)) if not isinstance(p, int) else f"fd:{p}"

    def win_stat(path: Any, *a: Any, **kw: Any) -> Any:
        return _WinStat(real_stat(path, *a, **kw), key(path) in readonly)

    def win_lstat(path: Any, *a: Any, **kw: Any) -> Any:
        return _WinStat(real_lstat(path, *a, **kw), key(path) in readonly)

    def win_chmod(path: Any, mode: int, *a: Any, **kw: Any) -> None:
        real_stat(path)  # FileNotFoundError as on Windows
        (readonly.discard if mode & stat.S_IWRITE else readonly.add)(key(path))

    def win_replace(src: Any, dst: Any, *a: Any, **kw: Any) -> None:
        real_replace(src, dst, *a, **kw)
        api.moved(os.fsdecode(src), os.fsdecode(dst))

    def win_unlink(path: Any, *a: Any, **kw: Any) -> None:
        real_unlink(path, *a, **kw)
        if not isinstance(path, int):
            api.deleted(os.fsdecode(path))

    def win_execv(path: Any, args: Any) -> None:
        subprocess.Popen(list(args), executable=path)  # noqa: S603 - the simulation of exec
        os._exit(0)

    def win_select(r: Any, w: Any, x: Any, *timeout: Any) -> Any:
        for obj in [*r, *w, *x]:
            if type(obj).__name__ == "Channel":  # paramiko: a socket pair on Windows
                continue
            fd = obj if isinstance(obj, int) else obj.fileno()
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                raise OSError(10038, "An operation was attempted on something that is not a socket")
        return real_select(r, w, x, *timeout)

    def win_popen_init(self: Any, args: Any, *a: Any, **kw: Any) -> None:
        if isinstance(args, str) and not kw.get("shell"):
            args = split_cmdline(args)
        flags = kw.pop("creationflags", 0)
        if flags & 0x200:  # CREATE_NEW_PROCESS_GROUP: Linux's nearest is a new session
            kw["start_new_session"] = True
        real_popen_init(self, args, *a, **kw)

    if osenv is not None:
        patch(osenv, "system", lambda: osenv.WINDOWS)
        osenv.set_winapi(api)
    bin_dir = Path(store).parent / "winsim-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    tk = bin_dir / "taskkill.exe"
    tk.write_text(TASKKILL.replace("PYTHON", sys.executable))
    real_chmod(tk, 0o755)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    patch(os, "stat", win_stat)
    patch(os, "lstat", win_lstat)
    patch(os, "chmod", win_chmod)
    patch(os, "replace", win_replace)
    patch(os, "unlink", win_unlink)
    patch(os, "remove", win_unlink)
    patch(os, "execv", win_execv)
    for name in ("getuid", "geteuid", "killpg"):
        patch(os, name, _MISSING)
    patch(select, "select", win_select)
    patch(subprocess.Popen, "__init__", win_popen_init)
    os.environ.setdefault("USERNAME", os.environ.get("USER", "student"))

    def undo() -> None:
        for (obj, name), value in reversed(list(saved.items())):
            if value is _MISSING:
                if hasattr(obj, name):
                    delattr(obj, name)
            else:
                setattr(obj, name, value)
        if osenv is not None:
            osenv.set_winapi(None)
        os.environ["PATH"] = os.environ["PATH"].replace(f"{bin_dir}{os.pathsep}", "", 1)

    return undo


_MISSING = object()

# taskkill /T /F /PID N: the process and all its descendants (Linux: found through /proc).
TASKKILL = """#!PYTHON
import os, signal, sys
a = [x.upper() for x in sys.argv[1:]]
pid = int(sys.argv[1:][a.index("/PID") + 1])
kids = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
todo, tree = [pid], []
while todo:
    p = todo.pop()
    tree.append(p)
    todo += kids.get(p, []) if "/T" in a else []
for p in tree:
    try:
        os.kill(p, signal.SIGKILL)
    except ProcessLookupError:
        pass
print(f"SUCCESS: The process with PID {pid} has been terminated.")
"""


def cli_env(base: dict[str, str], store: Path) -> dict[str, str]:
    """Environment for a CLI subprocess that runs as the simulated Windows laptop."""
    env = dict(base)
    tests_dir = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE_DIR), tests_dir, env.get("PYTHONPATH", "")) if p)
    env[ENV_VAR] = str(store)
    return env
