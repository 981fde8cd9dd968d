"""Checks of this machine's side only (category ``local``): the SSH client and config, the
tool's key and ``~/.ssh`` permissions, VS Code and its Remote-SSH extension, AWS credentials
(``providers/ec2/localsetup.py``).

Pure helpers (``aws_source``, ``aws_region``, ``sso_status``, ``perm_problems``,
``remote_ssh_from_*``) are unit-tested on captured inputs; the ``*_check`` functions read files
or run a program with a short timeout. Nothing here writes anything. boto3 is imported only
when credentials are configured (it costs about 0.3 s).
"""

from __future__ import annotations

import re
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_env.checks import FAIL, OK, SKIP, WARN, Check, bounded  # noqa: F401 - bounded: doctor runs checks with it

# AWS: the EC2 provider's side of this machine (its own module); doctor runs its checks.
from mlops_env.providers.ec2.localsetup import (  # noqa: F401 - part of doctor's local checks
    AWS_TIMEOUT,
    aws_checks,
    aws_profile,
    aws_region,
    aws_source,
    sso_status,
    sts_check,
    uses_sso,
)

if TYPE_CHECKING:
    from mlops_env.paths import Paths
    from mlops_env.ssh.config import HostEntry

DOCKER_TIMEOUT = 3.0  # seconds for the engine's ping and version (laptop: `up docker` needs it)
GH_TIMEOUT = 5.0  # `gh --version`
CODE_TIMEOUT = 5.0  # `code --list-extensions` (only when the extension folder is not found)
REMOTE_SSH = "ms-vscode-remote.remote-ssh"


def timed(fn: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run a check function; give its checks the time it took (when they have none)."""
    t0 = time.monotonic()
    out = fn()
    secs = time.monotonic() - t0
    items = out if isinstance(out, list) else [out]
    return [c if c.seconds else Check(c.id, c.status, c.message, c.hint, secs, c.step) for c in items]


# -- SSH ---------------------------------------------------------------------------------------
_SSH_INSTALL = {
    "windows": "add Windows' own OpenSSH client: Settings > System > Optional features > OpenSSH Client "
               "(or, as administrator: `Add-WindowsCapability -Online -Name OpenSSH.Client~~~~0.0.1.0`)",
    "macos": "macOS ships it in /usr/bin/ssh: check that PATH includes /usr/bin",
    "linux": "install it: `sudo apt-get install openssh-client`",
}


def ssh_client_check() -> Check:
    from mlops_env import osenv

    ssh = osenv.find_program("ssh")
    if ssh is None:
        return Check("local.ssh-client", FAIL, "the OpenSSH client `ssh` is not installed (VS Code Remote-SSH needs it)",
                     _SSH_INSTALL[osenv.system()])
    try:
        p = subprocess.run([ssh, "-V"], capture_output=True, text=True, timeout=3, check=False,  # noqa: S603
                           stdin=subprocess.DEVNULL)
        version = (p.stderr or p.stdout).strip().split(",")[0]
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    return Check("local.ssh-client", OK, f"{version or 'ssh'} ({ssh})")


def ssh_include_check(paths: Paths, has_workstations: bool, fix: str) -> Check:
    from mlops_env.errors import MlopsError
    from mlops_env.ssh import config as sshconfig

    try:
        status = sshconfig.check_include(paths)
        line = sshconfig.include_line(paths)
    except MlopsError as e:
        return Check("local.ssh-include", FAIL, e.message, e.hint)
    if status == "unchanged":
        return Check("local.ssh-include", OK, "~/.ssh/config includes mlops-env's SSH config first")
    if not has_workstations:
        return Check("local.ssh-include", SKIP, "no workstations yet (`up` adds the Include line)")
    if status == "moved":
        return Check("local.ssh-include", FAIL, "mlops-env's Include line in ~/.ssh/config comes after your own "
                     "Host/Match lines or options, which then win", f"move `{line}` to the top; or {fix}",
                     step="ssh-config")
    return Check("local.ssh-include", FAIL, "~/.ssh/config does not include mlops-env's SSH config: "
                 "`ssh mlops-NAME` and VS Code cannot find the workstations",
                 f"add `{line}` as the first line of ~/.ssh/config; or {fix}", step="ssh-config")


def ssh_hosts_check(paths: Paths, entries: Sequence[HostEntry], include_ok: bool, fix: str) -> Check:
    """Each workstation's Host block is in the tool's config (the ssh-config step's check) and
    not shadowed by the user's own settings (``ssh -G``)."""
    from concurrent.futures import ThreadPoolExecutor

    from mlops_env.ssh import config as sshconfig
    from mlops_env.ssh import overrides

    if not entries:
        return Check("local.ssh-hosts", SKIP, "no workstations yet")
    try:
        missing = [e.alias for e in entries if sshconfig.check_upsert_host(paths, e)]
    except Exception as e:  # noqa: BLE001 - an unreadable tool config is a finding
        return Check("local.ssh-hosts", FAIL, str(getattr(e, "message", e)), getattr(e, "hint", None),
                     step="ssh-config")
    if missing:
        return Check("local.ssh-hosts", FAIL, f"Host block missing or outdated for {', '.join(missing)} "
                     f"in {paths.ssh_config}", fix, step="ssh-config")
    if not include_ok:
        return Check("local.ssh-hosts", SKIP, "ssh does not read mlops-env's config yet (the Include line)")
    with ThreadPoolExecutor(max_workers=min(8, len(entries))) as pool:
        reports = list(pool.map(lambda e: overrides.find_overrides(e, paths=paths), entries))
    warnings = [w for r in reports for w in r.warnings]
    skipped = next((r.skipped for r in reports if r.skipped), None)
    if warnings:
        return Check("local.ssh-hosts", WARN, "; ".join(warnings),
                     "limit your own `Host *`/`Match` settings to your other hosts, or put them below "
                     "mlops-env's Include line")
    if skipped:
        return Check("local.ssh-hosts", SKIP, skipped)
    aliases = ", ".join(e.alias for e in entries[:4]) + (" ..." if len(entries) > 4 else "")
    return Check("local.ssh-hosts", OK, f"`ssh {aliases}` use mlops-env's settings (checked with ssh -G)")


def ssh_key_check(paths: Paths) -> Check:
    from mlops_env.ssh.keys import check_keypair

    kc = check_keypair(paths)
    if not kc.exists and not kc.problems:
        return Check("local.ssh-key", SKIP, "no mlops-env key yet (the first `up` makes it)")
    from mlops_env import osenv

    if kc.problems:
        loose = [p for p in kc.problems if "has mode" in p or "can be read by" in p or "belongs to" in p
                 or "no access list" in p]
        hint = " and ".join([osenv.protect_hint(paths.keys_dir, directory=True),
                             osenv.protect_hint(paths.keys_dir / "id_ed25519")]) if loose else None
        return Check("local.ssh-key", FAIL, "; ".join(kc.problems), hint)
    assert kc.keypair is not None
    how = "only you, SYSTEM and Administrators may read it" if osenv.is_windows() else "0600 in a 0700 folder"
    return Check("local.ssh-key", OK, f"mlops-env key {kc.keypair.fingerprint} ({how})")


def perm_problems(items: Iterable[tuple[str, str, int, int]], uid: int) -> list[tuple[str, str, str]]:
    """(status, problem, fix) for ``(path, kind, mode, owner uid)`` items; kind is ``sshdir``,
    ``config`` or ``key``. What OpenSSH itself refuses is a fail; the rest a warning."""
    out: list[tuple[str, str, str]] = []
    for path, kind, mode, owner in items:
        m = stat.S_IMODE(mode)
        if owner not in (uid, 0):
            out.append((FAIL, f"{path} belongs to another user (uid {owner}): ssh refuses it",
                        f"`sudo chown {uid} {path}`"))
        elif kind == "config" and m & 0o022:
            out.append((FAIL, f"{path} is writable by others ({m:04o}): ssh refuses it "
                        "(\"Bad owner or permissions\")", f"`chmod 600 {path}`"))
        elif kind == "key" and m & 0o077:
            out.append((FAIL, f"the private key {path} is readable by others ({m:04o}): ssh ignores it "
                        "(\"UNPROTECTED PRIVATE KEY FILE\")", f"`chmod 600 {path}`"))
        elif kind == "sshdir" and m & 0o022:
            out.append((WARN, f"{path} is writable by others ({m:04o})", f"`chmod 700 {path}`"))
    return out


_PRIVATE_KEY = re.compile(r"^id_[a-z0-9_]+$|\.pem$")


def acl_problems(items: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Windows: (status, problem, fix) for ``(path, kind)`` items, from each file's ACL. Windows
    OpenSSH refuses a private key or config that anyone but the user, SYSTEM and Administrators
    can access; it does not check the ``.ssh`` folder."""
    from mlops_env import osenv

    out: list[tuple[str, str, str]] = []
    for path, kind in items:
        if kind == "sshdir":
            continue
        problem = osenv.protection_problem(Path(path))
        if problem:
            why = "ssh ignores it (\"UNPROTECTED PRIVATE KEY FILE\")" if kind == "key" else \
                "ssh refuses it (\"Bad permissions\")"
            out.append((FAIL, f"{problem}: {why}", osenv.protect_hint(Path(path))))
    return out


def ssh_perms_check(home: Path, identities: Iterable[str]) -> Check:
    from mlops_env import osenv

    items: list[tuple[str, str, int, int]] = []
    d = home / ".ssh"
    paths = [(d, "sshdir"), (d / "config", "config")]
    try:
        paths += [(p, "key") for p in sorted(d.iterdir()) if _PRIVATE_KEY.search(p.name)]
    except OSError:
        pass
    paths += [(Path(i), "key") for i in identities]
    seen: set[str] = set()
    for p, kind in paths:
        if str(p) in seen:
            continue
        seen.add(str(p))
        try:
            st = p.stat()
        except OSError:
            continue
        items.append((str(p), kind, st.st_mode, st.st_uid))
    uid = osenv.current_uid()
    if uid is None:  # Windows: the ACLs (st_mode is always 0666 or 0444 there, st_uid 0)
        problems = acl_problems([(path, kind) for path, kind, _m, _o in items])
    else:
        problems = perm_problems(items, uid)
    if not items:
        return Check("local.ssh-perms", SKIP, "no ~/.ssh yet")
    if not problems:
        return Check("local.ssh-perms", OK, f"~/.ssh and {len(items) - 1} file(s) in it have safe permissions")
    status = FAIL if any(s == FAIL for s, _, _ in problems) else WARN
    return Check("local.ssh-perms", status, "; ".join(p for _, p, _ in problems),
                 " && ".join(f for _, _, f in problems).replace("` && `", " && "))


def run_quick(argv: Sequence[str], timeout: float) -> str:
    """stdout of ``argv``; past ``timeout`` its whole process group is killed (a launcher
    script's children too) and ``TimeoutExpired`` raised."""
    from mlops_env import osenv

    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,  # noqa: S603
                            stdin=subprocess.DEVNULL, text=True, **osenv.new_group_kwargs())
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        osenv.kill_tree(proc)
        proc.communicate()
        raise
    return out


# -- VS Code -----------------------------------------------------------------------------------
def remote_ssh_from_dirs(names: Iterable[str]) -> str | None:
    """The Remote-SSH version from extension folder names (``ms-vscode-remote.remote-ssh-0.110.1``;
    ``remote-ssh-edit`` is another extension)."""
    best = None
    for n in names:
        m = re.match(rf"^{re.escape(REMOTE_SSH)}-(\d[\w.+-]*)$", n, re.I)
        if m:
            best = m.group(1)
    return best


def remote_ssh_from_list(text: str) -> bool:
    """Whether ``code --list-extensions`` lists Remote-SSH (ids, maybe ``@version``)."""
    return any(ln.strip().split("@")[0].lower() == REMOTE_SSH for ln in text.splitlines())


def vscode_checks(home: Path, *, timeout: float = CODE_TIMEOUT) -> list[Check]:
    from mlops_env import osenv

    code = osenv.find_program("code")
    out = []
    if code:
        out.append(Check("local.vscode", OK, f"VS Code's `code` command: {code}"))
    else:
        out.append(Check("local.vscode", WARN, "VS Code's `code` command is not on PATH",
                         "install VS Code (https://code.visualstudio.com); on macOS, in VS Code run "
                         "'Shell Command: Install code command in PATH'"))
    names: list[str] = []
    for d in (home / ".vscode" / "extensions", home / ".vscode-insiders" / "extensions"):
        try:
            names += [p.name for p in d.iterdir()]
        except OSError:
            pass
    version = remote_ssh_from_dirs(names)
    if version:
        out.append(Check("local.vscode-remote-ssh", OK, f"Remote-SSH {version}"))
        return out
    listed = False
    if code:  # the slow way (VS Code's CLI starts Electron): only when the folder is elsewhere
        try:
            listed = remote_ssh_from_list(run_quick([code, "--list-extensions"], timeout))
        except subprocess.TimeoutExpired:
            out.append(Check("local.vscode-remote-ssh", WARN,
                             f"`code --list-extensions` did not answer within {timeout:g} s",
                             f"check by hand: `code --list-extensions | grep -i {REMOTE_SSH}`"))
            return out
        except OSError:
            listed = False
    if listed:
        out.append(Check("local.vscode-remote-ssh", OK, "Remote-SSH installed"))
    else:
        out.append(Check("local.vscode-remote-ssh", WARN, "VS Code's Remote-SSH extension is not installed",
                         f"`code --install-extension {REMOTE_SSH}`"))
    return out


# -- Docker and gh (a laptop: `up docker`, `up codespace`) ------------------------------------
def docker_check(env: Mapping[str, str], home: Path, *, timeout: float = DOCKER_TIMEOUT) -> Check:
    """The engine the docker CLI would use (``dockerhost``: DOCKER_HOST, the context, the
    platform's default) answers. Only ``up docker`` needs one: a warning otherwise."""
    from mlops_env.errors import MlopsError
    from mlops_env.providers.docker import host as dockerhost

    try:
        ep = dockerhost.resolve(env, home)
        client = dockerhost.docker_client(timeout, env=env, home=home)
        try:
            v = client.version()
        finally:
            client.close()
    except MlopsError as e:
        return Check("local.docker", WARN, f"{e.message} (only `up docker` needs it)", e.hint)
    except Exception as e:  # noqa: BLE001 - an engine answering nonsense is a finding, not a crash
        return Check("local.docker", WARN, f"the Docker engine did not answer as expected: {type(e).__name__}: {e}",
                     "check `docker info`")
    os_arch = f"{v.get('Os', '?')}/{v.get('Arch', '?')}"
    return Check("local.docker", OK, f"Docker engine {v.get('Version', '?')} ({os_arch}) at {ep.host} [{ep.source}]")


_GH_INSTALL = {"windows": "`winget install --id GitHub.cli`, or https://cli.github.com",
               "macos": "`brew install gh`, or https://cli.github.com",
               "linux": "https://cli.github.com (apt repository), or `sudo apt-get install gh`"}


def gh_check(env: Mapping[str, str], *, timeout: float = GH_TIMEOUT) -> Check:
    from mlops_env import osenv
    from mlops_env.providers.codespace import ghcli

    gh = ghcli.find_gh(env)
    if gh is None:
        return Check("local.gh", WARN, "the GitHub CLI `gh` is not installed (only `up codespace` needs it)",
                     _GH_INSTALL[osenv.system()])
    try:
        first = run_quick([gh, "--version"], timeout).strip().splitlines()
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check("local.gh", WARN, f"{gh} does not run: {e}", _GH_INSTALL[osenv.system()])
    return Check("local.gh", OK, f"{first[0] if first else 'gh'} ({gh})")


# -- MLOPS_ENV_HOME ------------------------------------------------------------------------------
def home_check() -> list[Check]:
    """A warning when ``$MLOPS_ENV_HOME`` is open to other users (``paths.home_exposure``, where
    that function exists; it reads POSIX modes, so not on Windows, where the key and config files
    carry their own ACLs)."""
    from mlops_env import osenv
    from mlops_env import paths as paths_module

    exposure = getattr(paths_module, "home_exposure", None)
    if exposure is None or osenv.is_windows():
        return []
    msg = exposure()
    return [Check("local.home", WARN, msg)] if msg else []
