"""A scripted fake target box for the unit tests of the step scripts (``templates/*.sh``).

In the style of pyinfra's tests, but the REAL bash scripts run: a ``FakeBox`` is a temporary
directory with

* ``bin/``: small fake commands (bash scripts) first on PATH: ``apt-get``, ``dpkg-query``,
  ``dpkg``, ``systemctl``, ``service``, ``pgrep``, ``id``, ``getent``, ``groupadd``,
  ``usermod``, ``sudo`` and ``journalctl`` (the engine's journal: ``docker_journal()``).
  Commands that come with packages appear when the fake
  ``apt-get install`` (or ``FakeBox(packages=...)``) installs them: ``curl`` (a logging shim:
  ``file://`` URLs go to the real curl, other hosts are unreachable except Docker's apt key,
  served from ``fixtures/docker-apt-key.asc``), ``bzip2``, ``git`` and ``gpg`` (the real
  ones), a fake ``docker`` (``docker.io`` or
  ``docker-ce``), ``docker compose`` (``docker-compose-v2`` / ``docker-compose-plugin``) and
  the v1 ``docker-compose``.
* a shared ``sysbin/`` of symlinks to the machine's own tools, WITHOUT the ones faked above or
  dangerous here (the machine's real docker, apt, sudo, systemctl ...). PATH is ``bin:sysbin``
  only, so a script can never reach the real thing by accident.
* ``state/``: the box's state (installed packages, group database, daemon running, images,
  login uid, sudo mode); ``home/<user>`` is HOME, ``root/`` is root's HOME under sudo.
* ``calls.log``: one line per fake command run (``uid<TAB>name args...``, args ``%q``-quoted)
  and ``changes.log``: one line per state change a fake made (package installed, group
  changed, daemon started, image imported, conda installed/initialised ...). "A second apply
  changes nothing" is asserted on both.

The box is used through ``LocalTransport(env=...)`` (``FakeBoxTransport``, which only adds
login-session semantics: the session's groups are fixed when it starts, ``fresh()`` logs in
again), so the real ``Transport.run_script`` path runs the real template text.

``MLOPS_ENV_OS_RELEASE`` points at ``fixtures/os-release/<name>`` (a seam the scripts honour).

Writing outside the box: ``docker.sh apply --source docker`` writes ``/etc/apt/keyrings`` and
``/etc/apt/sources.list.d``. For it (and for the systemd branch, ``/run/systemd/system``) a
box can run each command in a private mount namespace (``unshare -m``) where ``/etc/apt``,
``/var/lib/apt/lists``, ``/var/log`` and ``/run/systemd`` are the box's own directories
(``namespace=True``; see ``namespace_ok``).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlops_env.steps import parse_script_output, template
from mlops_env.transport import RunResult
from mlops_env.transport.local import LocalTransport

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
OS_RELEASE_DIR = FIXTURES / "os-release"
VENV_PYTHON = sys.executable

#: tools of this machine that a fake box must never reach (faked in bin/, or dangerous)
DENY = frozenset(
    """
    apt apt-get apt-cache apt-config apt-key apt-mark aptitude dpkg dpkg-query dpkg-deb
    docker dockerd docker-compose containerd containerd-shim ctr runc docker-init docker-proxy
    sudo sudoedit su systemctl service invoke-rc.d update-rc.d deb-systemd-invoke
    pgrep pkill id getent groupadd groupdel groupmod usermod useradd userdel gpasswd newgrp sg
    conda mamba curl wget bzip2 git gpg journalctl reboot shutdown halt poweroff
    """.split()
)

#: what base.sh installs
BASE_PACKAGES = ("ca-certificates", "curl", "git", "bzip2", "procps", "util-linux")
DOCKER_VERSION = "24.0.7"
COMPOSE_V2_VERSION = "2.24.6"
COMPOSE_V1_VERSION = "1.29.2"
CONDA_VERSION = "24.7.1"
#: the packages whose postinst creates the docker group, as Debian's and Docker's do
DOCKER_ENGINES = ("docker.io", "docker-ce")
DOCKER_REPO_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
                        "docker-compose-plugin")


# --------------------------------------------------------------------------- fake commands
COMMON = r'''# fake box: shared by every fake command (sourced)
FAKEBOX='__ROOT__'
S="$FAKEBOX/state"
FB_UID=${FAKEBOX_UID:-$(<"$S/uid")}
fb_user() { if [ "$FB_UID" = 0 ]; then echo root; else cat "$S/user"; fi; }
fb_log() {
  local line=$1 a q; shift
  for a in "$@"; do printf -v q '%q' "$a"; line+=" $q"; done
  printf '%s\t%s\n' "$FB_UID" "$line" >>"$FAKEBOX/calls.log"
}
fb_change() { printf '%s\n' "$*" >>"$FAKEBOX/changes.log"; }
fb_user_exists() { [ "$1" = root ] || [ "$1" = "$(cat "$S/user")" ]; }
# primary group (named like the user) + supplementary groups from the group database
fb_groups_of() {
  local u=$1 out g members
  out=$u
  while IFS=: read -r g _ _ members; do
    [ "$g" = "$u" ] && continue
    case ",$members," in *",$u,"*) out+=" $g" ;; esac
  done <"$S/group"
  echo "$out"
}
# the groups of this login session: fixed when the session started (FAKEBOX_SESSION_GROUPS)
fb_session_groups() {
  if [ "$FB_UID" = 0 ]; then fb_groups_of root
  elif [ -n "${FAKEBOX_SESSION_GROUPS+x}" ]; then echo "$FAKEBOX_SESSION_GROUPS"
  else fb_groups_of "$(fb_user)"; fi
}
fb_in_session_group() { [[ " $(fb_session_groups) " == *" $1 "* ]]; }
fb_docker_installed() { [ -x "$FAKEBOX/bin/docker" ]; }
fb_start_docker() {
  if [ "$FB_UID" != 0 ]; then echo "Failed to start docker.service: Access denied" >&2; return 1; fi
  if ! fb_docker_installed; then echo "Failed to start docker.service: Unit docker.service not found." >&2; return 5; fi
  if [ -f "$S/dockerd-fails" ]; then
    echo "Job for docker.service failed because the control process exited with error code." >&2; return 1
  fi
  if [ ! -f "$S/dockerd-running" ]; then touch "$S/dockerd-running"; fb_change "docker daemon started"; fi
}
'''

APT_GET = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log apt-get "$@"
if [ "$FB_UID" != 0 ]; then
  echo "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)" >&2
  echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?" >&2
  exit 100
fi
cmd=""; pkgs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o) shift 2 ;;
    -q|-qq|-y|--yes|--assume-yes|--no-install-recommends) shift ;;
    -*) echo "E: Command line option '$1' is not understood (fake apt-get)" >&2; exit 100 ;;
    *) if [ -z "$cmd" ]; then cmd=$1; else pkgs+=("$1"); fi; shift ;;
  esac
done
available() {
  if [ -f "$S/apt-unavailable" ] && grep -qx -- "$1" "$S/apt-unavailable"; then return 1; fi
  case "$1" in
    docker-ce|docker-ce-cli|containerd.io|docker-buildx-plugin|docker-compose-plugin)
      # only from Docker's own apt repository
      [ -f /etc/apt/sources.list.d/docker.list ] ;;
  esac
}
install_pkg() {
  [ -f "$S/dpkg/$1" ] && return 0
  if [ -f "$S/postinst-fails" ] && grep -qx -- "$1" "$S/postinst-fails"; then
    echo "dpkg: error processing package $1 (--configure):"
    echo " installed $1 package post-installation script subprocess returned error exit status 1"
    echo "Errors were encountered while processing:"
    echo " $1"
    echo "E: Sub-process /usr/bin/dpkg returned an error code (1)" >&2; exit 100
  fi
  touch "$S/dpkg/$1"; fb_change "package $1 installed"
  case "$1" in
    curl) install -m 0755 "$FAKEBOX/lib/curl" "$FAKEBOX/bin/curl" ;;
    bzip2|git|gpg) ln -sf "$FAKEBOX/lib/real-$1" "$FAKEBOX/bin/$1" ;;
    docker.io|docker-ce)
      install -m 0755 "$FAKEBOX/lib/docker" "$FAKEBOX/bin/docker"
      grep -q '^docker:' "$S/group" || { echo "docker:x:998:" >>"$S/group"; fb_change "group docker created"; } ;;
    docker-compose-v2|docker-compose-plugin) touch "$S/compose-plugin" ;;
    docker-compose) install -m 0755 "$FAKEBOX/lib/docker-compose" "$FAKEBOX/bin/docker-compose" ;;
  esac
}
case "$cmd" in
  update)
    if [ -f "$S/apt-update-fails" ]; then echo "E: Failed to fetch http://deb.example/dists/InRelease" >&2; exit 100; fi
    # inside the box's mount namespace /var/lib/apt/lists is the box's own directory
    [ -n "${FAKEBOX_NS:-}" ] && touch /var/lib/apt/lists/fake.example_dists_stable_main_binary-amd64_Packages
    echo "Reading package lists... Done"; touch "$S/apt-updated"; fb_change "apt lists updated" ;;
  install)
    for p in "${pkgs[@]}"; do
      available "$p" || { echo "E: Unable to locate package $p" >&2; exit 100; }
    done
    for p in "${pkgs[@]}"; do echo "Setting up $p (fake) ..."; install_pkg "$p"; done ;;
  *) echo "E: Invalid operation $cmd" >&2; exit 100 ;;
esac
'''

DPKG_QUERY = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log dpkg-query "$@"
pkg=""; show=0
for a in "$@"; do case "$a" in -W|--show) show=1 ;; -*) ;; *) pkg=$a ;; esac; done
[ "$show" = 1 ] && [ -n "$pkg" ] || { echo "dpkg-query: fake supports -W -f=FORMAT PKG only" >&2; exit 2; }
if [ -f "$S/dpkg/$pkg" ]; then printf 'install ok installed'; else
  echo "dpkg-query: no packages found matching $pkg" >&2; exit 1; fi
'''

DPKG = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log dpkg "$@"
case "${1:-}" in
  --print-architecture) echo amd64 ;;
  *) echo "dpkg: fake supports --print-architecture only" >&2; exit 2 ;;
esac
'''

SYSTEMCTL = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log systemctl "$@"
quiet=0; words=()
for a in "$@"; do case "$a" in --quiet|-q) quiet=1 ;; --now|--no-block) ;; *) words+=("$a") ;; esac; done
verb=${words[0]:-}; unit=${words[1]:-}; unit=${unit%.service}
if [ "$unit" != docker ]; then echo "Unit $unit.service could not be found." >&2; exit 4; fi
case "$verb" in
  is-active)
    if [ -f "$S/dockerd-running" ]; then [ $quiet = 1 ] || echo active; exit 0; fi
    [ $quiet = 1 ] || echo inactive; exit 3 ;;
  enable|start|restart) fb_start_docker ;;
  is-failed)
    # a failing engine is given up on (systemd's start limit) once a start was tried
    if [ -f "$S/dockerd-fails" ] && grep -q "systemctl.*start" "$FAKEBOX/calls.log"; then
      [ $quiet = 1 ] || echo failed; exit 0; fi
    [ $quiet = 1 ] || echo inactive; exit 1 ;;
  reset-failed) ;;
  *) echo "systemctl (fake): unsupported: $*" >&2; exit 1 ;;
esac
'''

SERVICE = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log service "$@"
[ "${1:-}" = docker ] || { echo "${1:-}: unrecognized service" >&2; exit 1; }
case "${2:-}" in
  start|restart) fb_start_docker ;;
  status) [ -f "$S/dockerd-running" ] && { echo "Docker is running."; exit 0; }; echo "Docker is not running"; exit 3 ;;
  *) echo "Usage: service docker {start|stop|restart|status}" >&2; exit 1 ;;
esac
'''

JOURNALCTL = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log journalctl "$@"
# the engine's own messages (state/docker-journal), for `journalctl _SYSTEMD_UNIT=docker.service`
case " $* " in
  *" _SYSTEMD_UNIT=docker.service "*) [ ! -f "$S/docker-journal" ] || cat "$S/docker-journal" ;;
  *) echo "journalctl (fake): _SYSTEMD_UNIT=docker.service only" >&2; exit 1 ;;
esac
'''

PGREP = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log pgrep "$@"
name=${!#}
if [ "$name" = dockerd ] && [ -f "$S/dockerd-running" ]; then echo 4242; exit 0; fi
exit 1
'''

ID = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log id "$@"
flags=""; target=""
for a in "$@"; do case "$a" in -*) flags+=${a#-} ;; *) target=$a ;; esac; done
if [ -n "$target" ] && ! fb_user_exists "$target"; then echo "id: '$target': no such user" >&2; exit 1; fi
who=${target:-$(fb_user)}
if [ "$who" = root ]; then num=0; else num=$(<"$S/uid"); [ "$num" = 0 ] && num=1000; fi
if [ -n "$target" ]; then groups=$(fb_groups_of "$who"); else groups=$(fb_session_groups); fi
case "$flags" in
  u|g) echo "$num" ;;
  un|nu|gn|ng) echo "$who" ;;
  nG|Gn) echo "$groups" ;;
  "") echo "uid=$num($who) gid=$num($who) groups=$(echo "$groups" | tr ' ' ',')" ;;
  *) echo "id (fake): unsupported flags -$flags" >&2; exit 2 ;;
esac
'''

GETENT = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log getent "$@"
[ "${1:-}" = group ] || { echo "getent (fake): group only" >&2; exit 1; }
[ -n "${2:-}" ] || { cat "$S/group"; exit 0; }
grep "^$2:" "$S/group" || exit 2
'''

GROUPADD = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log groupadd "$@"
[ "$FB_UID" = 0 ] || { echo "groupadd: Permission denied." >&2; exit 10; }
g=${!#}
if grep -q "^$g:" "$S/group"; then echo "groupadd: group '$g' already exists" >&2; exit 9; fi
echo "$g:x:999:" >>"$S/group"; fb_change "group $g created"
'''

USERMOD = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log usermod "$@"
[ "$FB_UID" = 0 ] || { echo "usermod: Permission denied." >&2; exit 1; }
append=0; groups=""; user=""
while [ $# -gt 0 ]; do
  case "$1" in
    -aG) append=1; groups=$2; shift 2 ;;
    -a) append=1; shift ;;
    -G) groups=$2; shift 2 ;;
    -*) echo "usermod (fake): unsupported option $1" >&2; exit 2 ;;
    *) user=$1; shift ;;
  esac
done
[ "$append" = 1 ] || { echo "usermod (fake): only -aG is supported (without -a it REPLACES groups)" >&2; exit 2; }
fb_user_exists "$user" || { echo "usermod: user '$user' does not exist" >&2; exit 6; }
IFS=, read -ra gs <<<"$groups"
for g in "${gs[@]}"; do
  grep -q "^$g:" "$S/group" || { echo "usermod: group '$g' does not exist" >&2; exit 6; }
done
for g in "${gs[@]}"; do
  awk -F: -v OFS=: -v g="$g" -v u="$user" '
    $1 == g { n = split($4, m, ","); has = 0; for (i = 1; i <= n; i++) if (m[i] == u) has = 1;
              if (!has) $4 = ($4 == "" ? u : $4 "," u) } { print }' "$S/group" >"$S/group.new"
  mv "$S/group.new" "$S/group"
done
fb_change "user $user added to $groups"
'''

SUDO = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log sudo "$@"
noninteractive=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--non-interactive) noninteractive=1; shift ;;
    -H|-E) shift ;;
    -u) shift 2 ;;
    --) shift; break ;;
    -*) echo "sudo (fake): unsupported option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ "$FB_UID" != 0 ] && [ "$(<"$S/sudo")" = password ]; then
  if [ "$noninteractive" = 1 ]; then echo "sudo: a password is required" >&2
  else echo "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper" >&2; fi
  exit 1
fi
[ $# -gt 0 ] || { echo "usage: sudo [-n] [-H] -- command" >&2; exit 1; }
export FAKEBOX_UID=0 HOME="$FAKEBOX/root" USER=root LOGNAME=root
unset FAKEBOX_SESSION_GROUPS
exec "$@"
'''

DOCKER = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log docker "$@"
need_daemon() {
  if [ ! -f "$S/dockerd-running" ]; then
    echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1
  fi
  if [ "$FB_UID" != 0 ] && ! fb_in_session_group docker; then
    echo "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: connect: permission denied" >&2; exit 1
  fi
}
img() { local n=$1; case "${n##*/}" in *:*) ;; *) n+=":latest" ;; esac; echo "$S/images/${n//[\/:]/_}"; }
sub=${1:-}; shift || true
case "$sub" in
  info) need_daemon; echo "Server Version: __DOCKER_VERSION__" ;;
  version) need_daemon; if [ "${1:-}" = --format ]; then echo "__DOCKER_VERSION__"; else echo "Server: Docker Engine (fake) __DOCKER_VERSION__"; fi ;;
  compose)
    [ -f "$S/compose-plugin" ] || { echo "docker: 'compose' is not a docker command." >&2; exit 1; }
    [ "${1:-}" = version ] || { echo "docker compose (fake): version only" >&2; exit 1; }
    if [ "${2:-}" = --short ]; then echo "__COMPOSE_V2__"; else echo "Docker Compose version v__COMPOSE_V2__"; fi ;;
  image)
    [ "${1:-}" = inspect ] || { echo "docker image (fake): inspect only" >&2; exit 1; }
    need_daemon
    if [ -e "$(img "$2")" ]; then echo '[{"Id": "sha256:fake"}]'; else echo "[]"; echo "Error: No such image: $2" >&2; exit 1; fi ;;
  pull)
    need_daemon
    [ "${1:-}" = -q ] && shift
    if [ -f "$S/registry" ]; then touch "$(img "$1")"; fb_change "image $1 pulled"; echo "docker.io/library/$1:latest"
    else echo "Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host" >&2; exit 1; fi ;;
  import)
    need_daemon
    change=""; name=""
    while [ $# -gt 0 ]; do
      case "$1" in -c|--change) change=$2; shift 2 ;; -) shift ;; *) name=$1; shift ;; esac
    done
    f=$(img "$name")
    cat >"$f.tar"
    if ! tar -tf "$f.tar" >"$f.list" 2>/dev/null || [ ! -s "$f.list" ]; then
      rm -f "$f.tar" "$f.list"; echo "Error response from daemon: archive/tar: invalid tar header" >&2; exit 1
    fi
    printf '%s\n' "$change" >"$f.cmd"; touch "$f"; fb_change "image $name imported"
    echo "sha256:$(sha256sum <"$f.tar" | cut -c1-64)" ;;
  run)
    need_daemon
    while [ $# -gt 0 ]; do
      case "$1" in --rm|-i|-t|-it) shift ;; --network|--name) shift 2 ;; --network=*|--name=*) shift ;; *) break ;; esac
    done
    image=$1; shift; f=$(img "$image")
    if [ ! -e "$f" ]; then
      echo "Unable to find image '$image' locally" >&2
      echo "docker: Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host." >&2; exit 125
    fi
    if [ -f "$S/docker-run-fails" ]; then echo "docker: Error response from daemon: failed to create task for container: fake failure." >&2; exit 125; fi
    fb_change "container from $image ran"
    if [ ! -f "$f.tar" ]; then echo "Hello from Docker!"; echo "This message shows that your installation appears to be working correctly."; exit 0; fi
    # an imported image: its CMD ["/path", "arg", ...] runs on the image's own files
    if [ $# -gt 0 ]; then argv=("$@"); else
      s=$(sed -n 's/^CMD \[\(.*\)\]$/\1/p' "$f.cmd"); argv=()
      IFS=, read -ra parts <<<"$s"
      for p in "${parts[@]}"; do p=${p# }; p=${p#\"}; p=${p%\"}; argv+=("$p"); done
    fi
    [ ${#argv[@]} -gt 0 ] || { echo "docker: Error response from daemon: No command specified." >&2; exit 125; }
    grep -qx -- "${argv[0]#/}" "$f.list" || { echo "docker: Error response from daemon: exec: \"${argv[0]}\": no such file or directory." >&2; exit 127; }
    if [ "$(/usr/bin/id -u)" = 0 ] && [ -x /usr/sbin/chroot ]; then
      root=$(mktemp -d); tar -C "$root" -xf "$f.tar"
      rc=0; /usr/sbin/chroot "$root" "${argv[@]}" || rc=$?
      rm -rf "$root"; exit "$rc"
    fi
    echo "${argv[*]:1}" ;;
  *) echo "docker (fake): unsupported command $sub" >&2; exit 1 ;;
esac
'''

DOCKER_COMPOSE_V1 = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log docker-compose "$@"
case "$*" in
  "version --short") echo "__COMPOSE_V1__" ;;
  version) echo "docker-compose version __COMPOSE_V1__, build unknown" ;;
  *) echo "docker-compose (fake): version only" >&2; exit 1 ;;
esac
'''

CURL = r'''#!/bin/bash
. '__ROOT__/lib/common.sh'
fb_log curl "$@"
url=""; out=""; prev=""
for a in "$@"; do
  case "$a" in http://*|https://*|file://*|ftp://*) url=$a ;; esac
  [ "$prev" = -o ] && out=$a
  prev=$a
done
case "$url" in
  https://download.docker.com/*/gpg)
    # Docker's real apt key (fixtures/docker-apt-key.asc), served without a network; a test
    # may replace what is served (state/docker-key: another key, garbage ...)
    key='__DOCKER_KEY__'
    [ ! -f "$S/docker-key" ] || key="$S/docker-key"
    if [ -n "$out" ]; then cat "$key" >"$out"; else cat "$key"; fi
    exit 0 ;;
  http://*|https://*|ftp://*)
    if [ ! -f "$S/online" ]; then host=${url#*://}; host=${host%%/*}; echo "curl: (6) Could not resolve host: $host" >&2; exit 6; fi ;;
esac
exec '__REAL_CURL__' "$@"
'''

FAKES = {
    "apt-get": APT_GET, "dpkg-query": DPKG_QUERY, "dpkg": DPKG, "systemctl": SYSTEMCTL,
    "service": SERVICE, "pgrep": PGREP, "id": ID, "getent": GETENT, "groupadd": GROUPADD,
    "usermod": USERMOD, "sudo": SUDO, "journalctl": JOURNALCTL,
}
#: installed into bin/ by the fake apt-get (package of the same name; docker: docker.io or
#: docker-ce), kept in lib/ until then
PACKAGED = {"docker": DOCKER, "docker-compose": DOCKER_COMPOSE_V1, "curl": CURL}
#: packages that bring one of this machine's real tools (linked from lib/real-NAME)
REAL_TOOLS = ("bzip2", "git", "gpg")
#: Docker's apt key as download.docker.com serves it (fingerprint 9DC8 5822 9FC7 DD38 854A
#: E2D8 8D81 803C 0EBF CD88, the one Docker's install docs name)
DOCKER_APT_KEY = FIXTURES / "docker-apt-key.asc"


# --------------------------------------------------------------------------- stand-in conda
STANDIN_INSTALLER = r'''#!/bin/bash
# STAND-IN conda installer (mlops-env unit-test double): NOT Anaconda, Miniconda or Miniforge.
# It honours the real installers' unattended flags: -b (batch), -p PREFIX, -u (update an
# existing prefix), -f (force). It installs PREFIX/bin/conda (a conda STAND-IN) and
# PREFIX/bin/python (the test venv's Python, or a scripted import probe).
set -euo pipefail
. '__ROOT__/lib/common.sh'
fb_log conda-installer "$@"
batch=0; update=0; force=0; prefix="$HOME/anaconda3"
while getopts "bufp:h" o; do
  case "$o" in b) batch=1 ;; u) update=1 ;; f) force=1 ;; p) prefix=$OPTARG ;;
    *) echo "usage: $0 [-b] [-u] [-f] [-p PREFIX]"; exit 2 ;; esac
done
[ "$batch" = 1 ] || { echo "STAND-IN installer: interactive mode is not supported; pass -b" >&2; exit 2; }
if [ -e "$prefix" ] && [ "$update" = 0 ] && [ "$force" = 0 ]; then
  echo "ERROR: File or directory already exists: '$prefix'" >&2
  echo "If you want to update an existing installation, use the -u option." >&2
  exit 1
fi
echo "PREFIX=$prefix"
echo "Unpacking payload ... (STAND-IN installer, __LABEL__)"
mkdir -p "$prefix/bin" "$prefix/conda-meta"
base64 -d >"$prefix/bin/conda" <<'B64'
__CONDA_B64__
B64
base64 -d >"$prefix/bin/python" <<'B64'
__PYTHON_B64__
B64
chmod 0755 "$prefix/bin/conda" "$prefix/bin/python"
printf '%s\n' __MISSING__ >"$prefix/.standin-missing-modules"
fb_change "conda installed into $prefix"
echo "installation finished."
'''

STANDIN_CONDA = r'''#!/bin/bash
# conda STAND-IN (mlops-env unit-test double, NOT the real conda).
. '__ROOT__/lib/common.sh'
fb_log conda "$@"
prefix=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "${1:-}" in
  --version|-V) echo "conda __CONDA_VERSION__" ;;
  init)
    [ "${2:-}" = bash ] || { echo "conda STAND-IN: init bash only" >&2; exit 2; }
    rc="$HOME/.bashrc"
    if ! grep -q '^# >>> conda initialize >>>' "$rc" 2>/dev/null; then
      {
        echo ""
        echo "# >>> conda initialize >>>"
        echo "# !! Contents within this block are managed by 'conda init' !!"
        echo "__conda_setup=\"\$('$prefix/bin/conda' 'shell.bash' 'hook' 2> /dev/null)\""
        echo "# <<< conda initialize <<<"
      } >>"$rc"
      fb_change "conda init bash"
      echo "modified      $rc"
    else
      echo "no change     $rc"
    fi ;;
  tos)
    [ -f "$prefix/.standin-no-tos" ] && { echo "conda: error: argument COMMAND: invalid choice: 'tos'" >&2; exit 2; }
    case "${2:-}" in
      --help) echo "usage: conda tos [-h] {accept,reject,view,interactive} ..." ;;
      accept) shift 2; echo "$*" >>"$prefix/.standin-tos"; fb_change "conda tos accept $*"; echo "accepted Terms of Service" ;;
      *) echo "conda STAND-IN: tos --help|accept only" >&2; exit 2 ;;
    esac ;;
  install)
    shift; env=""; pkgs=()
    while [ $# -gt 0 ]; do
      case "$1" in -y|--yes) shift ;; -n|--name) env=$2; shift 2 ;; -*) shift ;; *) pkgs+=("$1"); shift ;; esac
    done
    [ "$env" = base ] || { echo "EnvironmentLocationNotFound: Not a conda environment: $env" >&2; exit 1; }
    : >"$prefix/.standin-missing-modules"
    fb_change "conda install into base: ${pkgs[*]}"
    echo "Executing transaction: done" ;;
  *) echo "conda STAND-IN: unsupported command: $*" >&2; exit 2 ;;
esac
'''

# The test venv's interpreter (numpy, pandas, pyarrow, scikit-learn installed); modules listed
# in PREFIX/.standin-missing-modules are hidden (a sitecustomize blocks them), as if absent.
STANDIN_PYTHON_VENV = r'''#!/bin/bash
# python STAND-IN: the mlops-env test venv's Python (numpy, pandas, pyarrow, scikit-learn).
prefix=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -s "$prefix/.standin-missing-modules" ]; then
  shadow="$prefix/.standin-shadow"; mkdir -p "$shadow"
  cat >"$shadow/sitecustomize.py" <<PYEOF
import sys
class _Hide:
    hidden = set(open("$prefix/.standin-missing-modules").read().split())
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Hide())
PYEOF
  export PYTHONPATH="$shadow${PYTHONPATH:+:$PYTHONPATH}"
fi
exec '__VENV_PY__' "$@"
'''

# Scripted: answers conda.sh's library probe (`python - spec|import MODULE...` with the probe
# program on stdin, or `-c "import a,b"`) without starting Python (fast); anything else goes to
# the test venv's Python.
STANDIN_PYTHON_SCRIPTED = r'''#!/bin/bash
# python STAND-IN (scripted library probe): answered from PREFIX/.standin-missing-modules;
# anything else runs the test venv's Python.
prefix=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
missing() { grep -qx -- "$1" "$prefix/.standin-missing-modules" 2>/dev/null; }
if [ "${1:-}" = - ] && { [ "${2:-}" = spec ] || [ "${2:-}" = import ]; }; then
  cat >/dev/null
  bad=()
  for m in "${@:3}"; do missing "$m" && bad+=("$m"); done
  echo "${bad[*]}"; exit 0
fi
if [ "${1:-}" = -c ] && [[ ${2:-} == "import "* ]]; then
  IFS=, read -ra mods <<<"${2#import }"
  for m in "${mods[@]}"; do
    missing "$m" && { echo "ModuleNotFoundError: No module named '$m'" >&2; exit 1; }
  done
  exit 0
fi
exec '__VENV_PY__' "$@"
'''


@dataclass(frozen=True)
class Standin:
    """A stand-in conda installer served from the box's ``mirror/`` directory."""

    path: Path
    sha256: str

    @property
    def url(self) -> str:
        return self.path.as_uri()


# --------------------------------------------------------------------------- the box
@dataclass(frozen=True)
class Call:
    uid: int
    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.argv[0]

    @property
    def args(self) -> tuple[str, ...]:
        return self.argv[1:]

    def __str__(self) -> str:
        return f"[uid {self.uid}] {shlex.join(self.argv)}"


def _parse_call(line: str) -> Call:
    uid, _, rest = line.partition("\t")
    try:
        argv = tuple(shlex.split(rest))
    except ValueError:  # $'..' quoting of control characters: keep the raw words
        argv = tuple(rest.split(" "))
    return Call(int(uid), argv)


@functools.cache
def system_bin() -> Path:
    """One directory of symlinks to this machine's tools, minus ``DENY`` (shared by all boxes)."""
    d = Path(tempfile.mkdtemp(prefix="fakebox-sysbin-"))
    atexit.register(shutil.rmtree, d, True)
    for src in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        p = Path(src)
        if not p.is_dir():
            continue
        for entry in os.scandir(p):
            if entry.name in DENY or (d / entry.name).exists() or (d / entry.name).is_symlink():
                continue
            try:
                if entry.is_file() and os.access(entry.path, os.X_OK):
                    (d / entry.name).symlink_to(entry.path)
            except OSError:
                continue
    return d


@functools.cache
def namespace_ok() -> str | None:
    """``None`` when a private mount namespace can be made here (``unshare -m``), else why not."""
    if not shutil.which("unshare"):
        return "unshare (util-linux) is not installed"
    d = Path(tempfile.mkdtemp(prefix="fakebox-ns-"))
    try:
        (d / ".fakebox-probe").touch()
        r = subprocess.run(  # noqa: S603 - fixed argv
            ["unshare", "-m", "--", "sh", "-c",
             'mount --bind "$1" /etc/apt && test -f /etc/apt/.fakebox-probe', "sh", str(d)],
            capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"cannot make a private mount namespace here: {e}"
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if r.returncode != 0:
        return f"cannot make a private mount namespace here (unshare -m: {r.stderr.strip()[:200]})"
    return None


# Runs one command in a private mount namespace with the box's /etc/apt, /var/lib/apt/lists
# and (systemd boxes) /run/systemd.
_NS_SETUP = (
    'set -e; root=$1; shift; export FAKEBOX_NS=1; mount --bind "$root/ns/etc-apt" /etc/apt; '
    'mkdir -p /var/lib/apt/lists; mount --bind "$root/ns/apt-lists" /var/lib/apt/lists; '
    'mount --bind "$root/ns/var-log" /var/log; '
    'if [ -d "$root/ns/run-systemd" ]; then mkdir -p /run/systemd; mount --bind "$root/ns/run-systemd" /run/systemd; fi; '
    'exec "$@"'
)


class FakeBoxTransport(LocalTransport):
    """A login session on a fake box: ``LocalTransport(env=box env)``. The session's groups are
    fixed when it starts (as on a real box); ``fresh()`` is a new login."""

    def __init__(self, box: FakeBox, *, session_groups: str | None = None) -> None:
        env = box.env()
        env["FAKEBOX_SESSION_GROUPS"] = (" ".join(box.groups(box.user)) if session_groups is None
                                         else session_groups)
        super().__init__(env=env)
        self.box = box
        self.user = box.user
        self.where = f"fake box {box.root.name}"
        self.logins = 1

    def fresh(self) -> FakeBoxTransport:
        t = FakeBoxTransport(self.box)
        t.logins = self.logins + 1
        return t

    def run(self, argv: Sequence[str], **kw):  # type: ignore[no-untyped-def,override]
        if self.box.namespace:
            argv = ["unshare", "-m", "--", "sh", "-c", _NS_SETUP, "fakebox-ns", str(self.box.root), *argv]
        return super().run(argv, **kw)


class FakeBox:
    """A fake target box (see the module docstring).

    ``packages``: installed from the start (with their commands), e.g. the base packages.

    ``os_release``: a name in ``fixtures/os-release`` (or ``None``: no os-release file);
    ``uid``: the login user's uid (0: log in as root); ``sudo``: ``nopasswd``, ``password``
    (``sudo -n`` fails like a password-asking sudo) or ``none`` (not installed);
    ``registry``: ``docker pull`` works; ``online``: http(s) downloads work (they never do
    here: only file:// URLs and the faked Docker GPG key); ``systemd``: ``/run/systemd/system``
    exists (needs ``namespace``); ``namespace``: run in a private mount namespace.
    """

    def __init__(self, root: Path, *, os_release: str | None = "ubuntu-24.04", user: str = "tester",
                 uid: int = 1000, sudo: str = "nopasswd", registry: bool = False,
                 systemd: bool = False, namespace: bool = False, packages: Iterable[str] = ()) -> None:
        self.root = root
        self.namespace = namespace or systemd
        self.user = "root" if uid == 0 else user
        self.uid = uid
        self.bin = root / "bin"
        self.lib = root / "lib"
        self.state = root / "state"
        self.home = root / "root" if uid == 0 else root / "home" / user
        self.root_home = root / "root"
        self.calls_log = root / "calls.log"
        self.changes_log = root / "changes.log"
        self.mirror = root / "mirror"
        self.os_release = OS_RELEASE_DIR / os_release if os_release else root / "no-such-os-release"
        for d in (self.bin, self.lib, self.state / "dpkg", self.state / "images", self.home,
                  self.root_home, self.mirror):
            d.mkdir(parents=True, exist_ok=True)
        if self.namespace:
            (root / "ns" / "etc-apt" / "sources.list.d").mkdir(parents=True, exist_ok=True)
            (root / "ns" / "apt-lists").mkdir(parents=True, exist_ok=True)
            (root / "ns" / "var-log").mkdir(parents=True, exist_ok=True)
            if systemd:
                (root / "ns" / "run-systemd" / "system").mkdir(parents=True, exist_ok=True)
        self.calls_log.touch()
        self.changes_log.touch()
        (self.state / "uid").write_text(str(uid))
        (self.state / "user").write_text(self.user)
        (self.state / "sudo").write_text(sudo)
        (self.state / "group").write_text(
            "root:x:0:\nsudo:x:27:" + ("" if uid == 0 else user) + "\n"
            + ("" if uid == 0 else f"{user}:x:{uid}:\n"))
        if registry:
            (self.state / "registry").touch()
        real_curl = shutil.which("curl") or "/usr/bin/curl"
        subst = {"__ROOT__": str(root), "__REAL_CURL__": real_curl, "__DOCKER_KEY__": str(DOCKER_APT_KEY),
                 "__DOCKER_VERSION__": DOCKER_VERSION,
                 "__COMPOSE_V2__": COMPOSE_V2_VERSION, "__COMPOSE_V1__": COMPOSE_V1_VERSION}
        self._write(self.lib / "common.sh", COMMON, subst, mode=0o644)
        for name, text in FAKES.items():
            if name == "sudo" and sudo == "none":
                continue
            self._write(self.bin / name, text, subst)
        for name, text in PACKAGED.items():
            self._write(self.lib / name, text, subst)
        for name in REAL_TOOLS:
            real = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
            if real:
                (self.lib / f"real-{name}").symlink_to(real)
            else:
                self._write(self.lib / f"real-{name}", f"#!/bin/sh\necho '{name} (fake box stub)'\n", {})
        self.preinstall(*packages)

    @staticmethod
    def _write(path: Path, text: str, subst: Mapping[str, str], mode: int = 0o755) -> None:
        for k, v in subst.items():
            text = text.replace(k, v)
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)

    # -- running scripts
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}:{system_bin()}",
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "MLOPS_ENV_OS_RELEASE": str(self.os_release),
        }

    def transport(self, *, session_groups: str | None = None) -> FakeBoxTransport:
        return FakeBoxTransport(self, session_groups=session_groups)

    def run(self, script: str, *args: str, sudo: bool = False, transport: FakeBoxTransport | None = None,
            timeout: float = 120) -> RunResult:
        """Run ``templates/<script>`` with ``args`` the way the steps do (``run_script``)."""
        t = transport or self.transport()
        return t.run_script(template(script), args, sudo=sudo, is_root=self.uid == 0, timeout=timeout)

    # -- the logs
    def calls(self, *names: str, since: int = 0) -> list[Call]:
        lines = self.calls_log.read_text(encoding="utf-8").splitlines()[since:]
        out = [_parse_call(line) for line in lines if line]
        return [c for c in out if not names or c.name in names]

    def mark(self) -> tuple[int, int]:
        """A point in the logs, for ``calls(since=...)`` and ``changes(since=...)``."""
        return (len(self.calls_log.read_text().splitlines()), len(self.changes_log.read_text().splitlines()))

    def changes(self, since: int = 0) -> list[str]:
        return self.changes_log.read_text(encoding="utf-8").splitlines()[since:]

    def mutating_calls(self, since: int = 0) -> list[Call]:
        """Calls that change a box: apt-get, usermod, groupadd, the conda installer, any
        download (curl), conda init/install/tos accept, docker pull/import."""
        def mutating(c: Call) -> bool:
            a = c.args
            if c.name in ("apt-get", "usermod", "groupadd", "conda-installer", "curl"):
                return True
            if c.name == "conda":
                return bool(a) and (a[0] in ("install", "init", "create") or a[:2] == ("tos", "accept"))
            if c.name == "docker":
                return bool(a) and a[0] in ("pull", "import", "rmi", "build")
            return False
        return [c for c in self.calls(since=since) if mutating(c)]

    # -- the state
    def installed(self, pkg: str) -> bool:
        return (self.state / "dpkg" / pkg).exists()

    def preinstall(self, *pkgs: str) -> None:
        """Mark packages installed (and put their commands on PATH), as on a prepared image."""
        for p in pkgs:
            (self.state / "dpkg" / p).touch()
            if p == "curl":
                shutil.copy(self.lib / "curl", self.bin / "curl")
                (self.bin / "curl").chmod(0o755)
            elif p in REAL_TOOLS and not (self.bin / p).is_symlink():
                (self.bin / p).symlink_to(self.lib / f"real-{p}")

    def preinstall_docker(self, *, compose: bool = True, group: bool = True, running: bool = True) -> None:
        """A box where docker is already there (a prepared image), not via this apply."""
        self.preinstall("docker.io")
        shutil.copy(self.lib / "docker", self.bin / "docker")
        (self.bin / "docker").chmod(0o755)
        if compose:
            self.preinstall("docker-compose-v2")
            (self.state / "compose-plugin").touch()
        if group:
            self.add_group("docker")
        if running:
            (self.state / "dockerd-running").touch()

    def groups(self, user: str) -> list[str]:
        out = [user]
        for line in (self.state / "group").read_text().splitlines():
            name, _x, _gid, members = line.split(":")
            if name != user and user in members.split(","):
                out.append(name)
        return out

    def add_group(self, name: str, *members: str) -> None:
        """Create group ``name`` (if needed) with ``members`` added."""
        db = self.state / "group"
        lines, found = [], False
        for line in db.read_text().splitlines():
            g, x, gid, mem = line.split(":")
            if g == name:
                found = True
                have = [m for m in mem.split(",") if m]
                mem = ",".join(have + [m for m in members if m not in have])
            lines.append(":".join((g, x, gid, mem)))
        if not found:
            lines.append(f"{name}:x:998:{','.join(members)}")
        db.write_text("\n".join(lines) + "\n")

    def set(self, flag: str, on: bool = True) -> None:
        """Toggle a state flag file: ``dockerd-running``, ``dockerd-fails``, ``registry``,
        ``docker-run-fails``, ``apt-update-fails``, ``compose-plugin``, ``online``."""
        p = self.state / flag
        if on:
            p.touch()
        else:
            p.unlink(missing_ok=True)

    def fast_sleep(self) -> None:
        """``sleep`` returns at once (for scripts that poll: docker.sh waits up to 60 s)."""
        self._write(self.bin / "sleep", "#!/bin/sh\nexit 0\n", {})

    def apt_unavailable(self, *pkgs: str) -> None:
        with (self.state / "apt-unavailable").open("a") as f:
            f.writelines(p + "\n" for p in pkgs)

    def postinst_fails(self, *pkgs: str) -> None:
        """Installing these packages fails in dpkg (their maintainer script exits 1)."""
        with (self.state / "postinst-fails").open("a") as f:
            f.writelines(p + "\n" for p in pkgs)

    def serve_docker_key(self, data: bytes) -> None:
        """What download.docker.com/linux/*/gpg serves instead of Docker's real key."""
        (self.state / "docker-key").write_bytes(data)

    def docker_journal(self, text: str) -> None:
        """The engine's own journal lines (`journalctl _SYSTEMD_UNIT=docker.service`)."""
        (self.state / "docker-journal").write_text(text)

    def var_log(self) -> Path:
        """/var/log as the box's commands see it (only in its mount namespace)."""
        assert self.namespace, "/var/log is the box's own only in its mount namespace"
        return self.root / "ns" / "var-log"

    def images(self) -> list[str]:
        return sorted(p.name for p in (self.state / "images").iterdir() if "." not in p.name)

    def image_cmd(self, encoded_name: str) -> str:
        return (self.state / "images" / f"{encoded_name}.cmd").read_text().strip()

    # -- a stand-in conda installer
    def standin_installer(self, name: str = "Miniforge3-STANDIN-Linux-x86_64.sh", *,
                          python: str = "scripted", missing: Iterable[str] = (),
                          label: str | None = None) -> Standin:
        """Write a STAND-IN conda installer into ``mirror/`` (served as ``file://``).

        ``python``: ``venv`` (PREFIX/bin/python runs the test venv's Python, which has numpy,
        pandas, pyarrow, scikit-learn) or ``scripted`` (a fast scripted import probe);
        ``missing``: modules the fresh base env lacks until ``conda install`` runs."""
        import base64

        pytext = STANDIN_PYTHON_VENV if python == "venv" else STANDIN_PYTHON_SCRIPTED
        subst = {"__ROOT__": str(self.root), "__VENV_PY__": VENV_PYTHON, "__CONDA_VERSION__": CONDA_VERSION}

        def fill(t: str) -> str:
            for k, v in subst.items():
                t = t.replace(k, v)
            return t

        text = STANDIN_INSTALLER
        text = text.replace("__CONDA_B64__", base64.encodebytes(fill(STANDIN_CONDA).encode()).decode().strip())
        text = text.replace("__PYTHON_B64__", base64.encodebytes(fill(pytext).encode()).decode().strip())
        text = text.replace("__MISSING__", " ".join(shlex.quote(m) for m in missing) or "''")
        text = text.replace("__LABEL__", label or name)
        text = fill(text)
        path = self.mirror / name
        path.write_text(text, encoding="utf-8")
        return Standin(path, hashlib.sha256(path.read_bytes()).hexdigest())


# --------------------------------------------------------------------------- output helpers
def summary(res: RunResult) -> str:
    """The last ``mlops:`` line of stdout (the protocol's summary)."""
    lines = [ln[7:].strip() for ln in res.stdout.splitlines() if ln.startswith("mlops: ")]
    return lines[-1] if lines else ""


def error(res: RunResult) -> str | None:
    return parse_script_output(res)[1]


def hint(res: RunResult) -> str | None:
    return parse_script_output(res)[2]


def explain(res: RunResult) -> str:
    """For assertion messages."""
    return f"exit {res.exit_code}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
