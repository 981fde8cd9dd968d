"""STAND-IN for the GitHub CLI (`gh`), installed on PATH as an executable named ``gh`` by the
codespace tests (``cshelp.install_fake_gh``). Not gh. It does the three things mlops-env asks of
gh, the way gh 2.x does them (cli/cli pkg/cmd/codespace/ssh.go):

* ``gh auth token``: prints ``FAKE_GH_TOKEN`` (exit 1 "no oauth token" when unset).
* ``gh codespace ssh --config -c NAME``: asks the (fake) API for the codespace like gh does,
  then prints gh's template exactly::

      Host cs.NAME.REF
      <TAB>User USER
      <TAB>ProxyCommand GHEXEC cs ssh -c NAME --stdio -- -i ~/.ssh/codespaces.auto
      <TAB>UserKnownHostsFile=/dev/null
      <TAB>StrictHostKeyChecking no
      <TAB>LogLevel quiet
      <TAB>ControlMaster auto
      <TAB>IdentityFile ~/.ssh/codespaces.auto

* ``gh codespace ssh -c NAME --stdio -- -i KEY``: like gh, hands ``KEY.pub`` to the codespace's
  SSH server (here: appends it to USER's authorized_keys in the container ``FAKE_GH_CONTAINER``
  through the Docker API, when set), then relays stdin/stdout to the codespace's sshd -- here
  the TCP address ``FAKE_GH_SSHD`` (host:port), instead of GitHub's tunnel.
* ``gh codespace code -c NAME``: recorded, nothing else.

Environment: FAKE_GH_API (the fake REST API's base URL), FAKE_GH_TOKEN, FAKE_GH_SSH_USER,
FAKE_GH_SSHD, FAKE_GH_CONTAINER, FAKE_GH_LOG (every invocation appended as a JSON line).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

TEMPLATE = """Host cs.{name}.{ref}
\tUser {user}
\tProxyCommand {gh} cs ssh -c {name} --stdio -- -i {key}
\tUserKnownHostsFile=/dev/null
\tStrictHostKeyChecking no
\tLogLevel quiet
\tControlMaster auto
\tIdentityFile {key}

"""


def log(argv: list[str]) -> None:
    path = os.environ.get("FAKE_GH_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"argv": argv, "pid": os.getpid()}) + "\n")


def token() -> str:
    return os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN") or os.environ.get("FAKE_GH_TOKEN") or ""


def api(path: str) -> dict:
    req = urllib.request.Request(os.environ["FAKE_GH_API"] + path,
                                 headers={"Authorization": f"token {token()}", "Accept": "application/vnd.github+json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - the test's loopback fake
        return json.loads(r.read())


def option(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a in (name, "--codespace") and i + 1 < len(argv):
            return argv[i + 1]
    return None


def ssh_config(argv: list[str]) -> int:
    name = option(argv, "-c")
    if not name:
        print("fake gh: --config without -c is not modelled", file=sys.stderr)
        return 1
    try:
        cs = api(f"/user/codespaces/{name}")
    except urllib.error.HTTPError as e:
        print(f"error getting codespace info: HTTP {e.code}", file=sys.stderr)
        return 1
    if cs.get("state") != "Available":
        print(f"error connecting to codespace: codespace is {cs.get('state')}", file=sys.stderr)
        return 1
    ref = str((cs.get("git_status") or {}).get("ref") or "main").replace("/", "-")
    key = Path.home() / ".ssh" / "codespaces.auto"
    sys.stdout.write(TEMPLATE.format(name=name, ref=ref, user=os.environ.get("FAKE_GH_SSH_USER", "vscode"),
                                     gh=os.path.abspath(sys.argv[0]), key=key))
    return 0


def hand_over_key(pub: Path) -> None:
    """gh's StartSSHServerWithOptions(UserPublicKeyFile): the codespace's sshd accepts the key."""
    container = os.environ.get("FAKE_GH_CONTAINER")
    if not container:
        return
    import docker

    user = os.environ.get("FAKE_GH_SSH_USER", "vscode")
    line = pub.read_text().strip()
    script = ('set -e; d=/home/"$1"/.ssh; mkdir -p "$d"; touch "$d/authorized_keys"; '
              'grep -qxF "$2" "$d/authorized_keys" || echo "$2" >> "$d/authorized_keys"; '
              'chown -R "$1:$1" "$d"; chmod 700 "$d"; chmod 600 "$d/authorized_keys"')
    client = docker.from_env(timeout=30)
    try:
        res = client.containers.get(container).exec_run(["sh", "-c", script, "sh", user, line])
        if res.exit_code != 0:
            raise SystemExit(f"fake gh: could not hand the key over: {res.output!r}")
    finally:
        client.close()


def stdio(argv: list[str]) -> int:
    name = option(argv, "-c")
    key = None
    if "--" in argv:
        rest = argv[argv.index("--") + 1:]
        if "-i" in rest and rest.index("-i") + 1 < len(rest):
            key = Path(rest[rest.index("-i") + 1])
    if key is None or not Path(str(key) + ".pub").is_file():
        print("selecting ssh keys: SSH key file does not exist", file=sys.stderr)
        return 1
    try:
        cs = api(f"/user/codespaces/{name}")
    except urllib.error.HTTPError as e:
        print(f"error getting codespace info: HTTP {e.code}", file=sys.stderr)
        return 1
    if cs.get("state") != "Available":
        print(f"error connecting to codespace: codespace is {cs.get('state')}", file=sys.stderr)
        return 1
    hand_over_key(Path(str(key) + ".pub"))
    host, _, port = os.environ.get("FAKE_GH_SSHD", "").rpartition(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=10)
    except (OSError, ValueError) as e:
        print(f"tunnel closed: {e}", file=sys.stderr)
        return 1
    sock.settimeout(None)

    def up() -> None:  # ssh client -> sshd
        try:
            while True:
                data = os.read(0, 65536)
                if not data:
                    break
                sock.sendall(data)
        except OSError:
            pass
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=up, daemon=True).start()
    try:
        while True:  # sshd -> ssh client
            data = sock.recv(65536)
            if not data:
                break
            os.write(1, data)
    except OSError:
        pass
    return 0


def main() -> int:
    argv = sys.argv[1:]
    log(argv)
    if argv[:2] == ["auth", "token"]:
        t = os.environ.get("FAKE_GH_TOKEN")
        if not t:
            print("no oauth token found for github.com", file=sys.stderr)
            return 1
        print(t)
        return 0
    if argv[:1] in (["codespace"], ["cs"]) and argv[1:2] == ["ssh"]:
        if "--config" in argv:
            return ssh_config(argv)
        if "--stdio" in argv:
            return stdio(argv)
    if argv[:1] in (["codespace"], ["cs"]) and argv[1:2] == ["code"]:
        return 0
    print(f"fake gh: {' '.join(argv)} is not modelled", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
