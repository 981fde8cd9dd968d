#!/usr/bin/env bash
# mlops-env doctor: read-only diagnostics of a box, one mode per category.
#
# usage: doctor.sh system
#        doctor.sh python  --prefix DIR            (DIR may start with ~/)
#        doctor.sh docker
#        doctor.sh network --timeout SECONDS [--url NAME=URL]...
#        doctor.sh tools
#
# Prints one section per probe, the probe's raw output (stdout and stderr) under a header:
#
#     @@ NAME EXIT-CODE MILLISECONDS
#     ...output...                 (a line that itself starts with "@@ " is indented by one space)
#
# The probes of a mode run side by side, each bounded by a timeout of at most 10 s (exit code
# 124 = timed out), below the 15 s that doctor gives each batched script.
# Deciding ok/warn/fail is the Python side's job (mlops_env.doctor.parse, pure functions tested on
# captured outputs), so this script never judges. It changes nothing on the box.
# Exit: 0 (a probe's failure is data, not an error), 2 usage.
set -euo pipefail
# Test seam: unit tests point this at a fixture file; on a box it is always /etc/os-release.
export OS_RELEASE=${MLOPS_ENV_OS_RELEASE:-/etc/os-release}

die() { echo "mlops-error: $1" >&2; exit "${2:-2}"; }

mode=${1:-}; shift || true
export PREFIX=""
TIMEOUT=3
URLS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --url) URLS+=("$2"); shift 2 ;;
    *) die "unknown argument: $1" ;;
  esac
done
case "$PREFIX" in \~/*) PREFIX="$HOME/${PREFIX#\~/}" ;; esac
case "$TIMEOUT" in ''|*[!0-9]*) die "--timeout must be whole seconds" ;; esac

TMP=$(mktemp -d) || exit 97
trap 'rm -rf "$TMP"' EXIT
NAMES=()

# probe NAME SECONDS COMMAND [ARGS...]: run in the background, bounded by SECONDS. COMMAND may
# be one of the functions below (exported, so that `timeout` can run it through bash -c).
# Forks are what a small box pays for here: the clock is read without one (bash 5's
# EPOCHREALTIME; older bash reports 0 ms), and a program runs without an extra bash.
probe() {
  local name=$1 secs=$2
  shift 2
  # Test seam: a lower cap for every probe (tests of a hanging probe need not wait long).
  if [ -n "${MLOPS_ENV_PROBE_TIMEOUT:-}" ] && [ "$MLOPS_ENV_PROBE_TIMEOUT" -lt "$secs" ]; then
    secs=$MLOPS_ENV_PROBE_TIMEOUT
  fi
  NAMES+=("$name")
  (
    t0=${EPOCHREALTIME:-0}; t0=${t0//[.,]/}; rc=0
    if declare -F "$1" >/dev/null; then set -- bash -c '"$@"' probe "$@"; fi
    if [ "$HAVE_TIMEOUT" = 1 ]; then
      timeout -k 1 "$secs" "$@" >"$TMP/$name.out" 2>&1 </dev/null || rc=$?
    else
      "$@" >"$TMP/$name.out" 2>&1 </dev/null || rc=$?
    fi
    t1=${EPOCHREALTIME:-0}; t1=${t1//[.,]/}
    echo "$rc $(( (t1 - t0) / 1000 ))" >"$TMP/$name.rc"
  ) &
}
HAVE_TIMEOUT=0
if command -v timeout >/dev/null 2>&1; then HAVE_TIMEOUT=1; fi

finish() {
  wait || true
  local n rc ms line
  for n in "${NAMES[@]}"; do
    rc=125; ms=0
    [ -f "$TMP/$n.rc" ] && read -r rc ms <"$TMP/$n.rc"
    printf '@@ %s %s %s\n' "$n" "$rc" "$ms"
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in "@@ "*) line=" $line" ;; esac
      printf '%s\n' "$line"
    done <"$TMP/$n.out"
  done
}

# -- probes (each prints raw data; a non-zero exit is reported, not fatal) -------------------
ncpu() { nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu; }
cpu_quota() {
  # cgroup v2: "max 100000" or "200000 100000"; v1: quota and period in two files.
  if [ -r /sys/fs/cgroup/cpu.max ]; then echo "v2 $(cat /sys/fs/cgroup/cpu.max)"
  elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    echo "v1 $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
  fi
}
memory() {
  if [ -r /proc/meminfo ]; then grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
  else echo "MemTotal: $(( $(sysctl -n hw.memsize) / 1024 )) kB"; fi
  # a container's memory limit (cgroup v2, then v1): the box may have less than the host
  if [ -r /sys/fs/cgroup/memory.max ]; then echo "cgroup: $(cat /sys/fs/cgroup/memory.max)"
  elif [ -r /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
    echo "cgroup: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
  fi
}
disk() {
  df -Pk "$HOME"
  # Docker's images live in /var/lib/docker: report it when it is another filesystem
  if [ -d /var/lib/docker ]; then df -Pk /var/lib/docker | tail -n +2; fi
}
clock() {
  local out
  if out=$(timedatectl show 2>/dev/null); then printf '%s\n' "$out"; else timedatectl status; fi
}
virt() { systemd-detect-virt 2>/dev/null || true; }

conda_version() {
  # conda's own package record names its version: no Python start-up (`conda --version` takes
  # about half a second on a real Anaconda, and the conda step's check runs it already)
  local f
  for f in "$PREFIX"/conda-meta/conda-[0-9]*.json; do
    [ -e "$f" ] || break
    f=${f##*/}; f=${f#conda-}; echo "conda ${f%%-*}"; return 0
  done
  "$PREFIX/bin/conda" --version
}
conda_elsewhere() {
  local d
  for d in "$HOME/anaconda3" "$HOME/miniconda3" "$HOME/miniforge3" "$HOME/mambaforge" /opt/conda; do
    if [ -x "$d/bin/conda" ]; then echo "prefix $d"; fi
  done
  if command -v conda >/dev/null 2>&1; then echo "path $(command -v conda)"; fi
}
libraries() {
  # versions from the packages' metadata: fast, no import (the step's verify imports them)
  "$PREFIX/bin/python" - <<'PYEOF'
import sys
from importlib import metadata
print("python", ".".join(map(str, sys.version_info[:3])))
for dist in ("numpy", "pandas", "pyarrow", "scikit-learn"):
    try:
        print(dist, metadata.version(dist))
    except Exception:
        print(dist, "-")
PYEOF
}
shell_init() {
  local f
  echo "shell $(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f7)"
  for f in .bashrc .bash_profile .zshrc; do
    if [ -f "$HOME/$f" ] && grep -q '^# >>> conda initialize >>>' "$HOME/$f"; then echo "init $f"; fi
  done
}

docker_service() {
  if [ -d /run/systemd/system ]; then
    echo "systemd $(systemctl is-active docker 2>/dev/null || true)"
  elif pgrep -x dockerd >/dev/null 2>&1; then echo "process running"
  else echo "process stopped"; fi
}
groups_info() {
  # `id -nG` without a user = this process's groups (fixed when the login session started);
  # with the user = the group database (what a new login gets).
  echo "user $(id -un)"
  echo "uid $(id -u)"
  echo "session $(id -nG)"
  echo "database $(id -nG "$(id -un)")"
  echo "group $(getent group docker 2>/dev/null || true)"
}
docker_socket() {
  echo "DOCKER_HOST=${DOCKER_HOST:-}"
  if [ -S /var/run/docker.sock ]; then stat -c 'socket %U %G %a' /var/run/docker.sock 2>/dev/null || ls -ln /var/run/docker.sock; fi
}
ssh_sessions() {
  # Every SSH connection of this user is an sshd (OpenSSH >= 9.8: sshd-session) process that
  # holds the groups of its login. Our own chain of parents is marked "self".
  local p chain="" uid f groups
  p=$$
  while [ -n "$p" ] && [ "$p" -gt 1 ] 2>/dev/null; do
    chain="$chain $p"
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
  done
  uid=$(id -u)
  grep -lsE '^Name:[[:space:]]+(sshd|sshd-session)$' /proc/[0-9]*/status | while read -r f; do
    awk -v uid="$uid" '/^Uid:/ { exit ($2 == uid) ? 0 : 1 }' "$f" 2>/dev/null || continue
    p=${f#/proc/}; p=${p%/status}
    groups=$(awk '/^Groups:/ { $1 = ""; print }' "$f" 2>/dev/null)
    case " $chain " in *" $p "*) echo "self $p$groups" ;; *) echo "other $p$groups" ;; esac
  done
}
container_run() {
  # A real container, when an image is on the box already (no registry needed): mlops-env's
  # probe image (made by `up`) or hello-world. Exit 3 = no image to run.
  local img
  for img in mlops-env/probe:1 hello-world; do
    if docker image inspect "$img" >/dev/null 2>&1; then
      echo "image $img"
      docker run --rm --network none "$img"
      return
    fi
  done
  echo "no image"
  return 3
}
compose_v1() {
  local v
  if ! command -v docker-compose >/dev/null 2>&1; then echo "docker-compose: not installed"; return 127; fi
  # The distribution package's version needs no Python start-up (half a second on a small box).
  v=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' docker-compose 2>/dev/null || true)
  case "$v" in
    ii*) v=${v##* }; v=${v#*:}; echo "docker-compose version ${v%%-*}, from dpkg"; return 0 ;;
  esac
  docker-compose version
}
verified_stamp() { cat "$HOME/.mlops-env/docker-verified"; }
docker_build() {
  # Can the user build an image: a builder (BuildKit's buildx plugin, or the classic builder
  # that `docker build` runs without it, unless DOCKER_BUILDKIT=1 demands BuildKit), and free
  # space where the layers go. Exit 3: no builder.
  local root
  if docker buildx version >/dev/null 2>&1; then echo "builder buildx $(docker buildx version | head -n 1)"
  elif [ "${DOCKER_BUILDKIT:-}" = 1 ]; then echo "builder none (DOCKER_BUILDKIT=1 but no buildx plugin)"; return 3
  elif command -v docker >/dev/null 2>&1; then echo "builder classic"
  else echo "builder none"; return 3; fi
  root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || true)
  echo "root ${root:-/var/lib/docker}"
  df -Pk "${root:-/var/lib/docker}" 2>/dev/null || df -Pk /
}

http_head() {
  # http_head URL: "HTTP-CODE SECONDS" from curl, or curl's error; without curl, a TCP connect.
  local url=$1 host
  if command -v curl >/dev/null 2>&1; then
    curl -sS -o /dev/null -I -w '%{http_code} %{time_total}\n' --connect-timeout "$TIMEOUT" -m "$TIMEOUT" "$url"
  else
    host=${url#*://}; host=${host%%/*}
    echo "no curl; tcp connect to $host:443"
    exec 3<>"/dev/tcp/$host/443"
  fi
}
listening() {
  if command -v ss >/dev/null 2>&1; then echo "tool ss"; ss -ltnpH
  elif command -v lsof >/dev/null 2>&1; then echo "tool lsof"; lsof -nP -iTCP -sTCP:LISTEN
  elif command -v netstat >/dev/null 2>&1; then echo "tool netstat"; netstat -ltn
  else echo "tool none"; fi
}
git_version() { git --version; }
curl_version() { curl --version | head -n 1; }

export TIMEOUT
export -f ncpu cpu_quota memory disk clock virt conda_version conda_elsewhere libraries \
  shell_init docker_service groups_info docker_socket ssh_sessions container_run compose_v1 verified_stamp \
  docker_build \
  http_head listening git_version curl_version

case "$mode" in
  system)
    probe os_release 3 cat "$OS_RELEASE"
    probe uname 3 uname -srm
    probe cpus 3 ncpu
    probe cpu_quota 3 cpu_quota
    probe memory 3 memory
    probe disk 5 disk
    probe clock 3 clock
    probe virt 3 virt
    probe now 3 date -u +%s
    ;;
  python)
    [ -n "$PREFIX" ] || die "--prefix is required"
    probe conda 10 conda_version
    probe conda_elsewhere 3 conda_elsewhere
    probe libraries 10 libraries
    probe shell_init 3 shell_init
    ;;
  docker)
    probe version 5 docker version
    probe compose_v2 5 docker compose version
    probe compose_v1 5 compose_v1
    probe service 3 docker_service
    probe groups 3 groups_info
    probe socket 3 docker_socket
    probe sessions 3 ssh_sessions
    probe run 10 container_run
    probe stamp 3 verified_stamp
    probe build 5 docker_build
    ;;
  network)
    for u in "${URLS[@]+"${URLS[@]}"}"; do
      probe "url_${u%%=*}" $(( TIMEOUT + 2 )) http_head "${u#*=}"
    done
    probe ports 3 listening
    ;;
  tools)
    probe git 3 git_version
    probe curl 3 curl_version
    ;;
  *) die "usage: doctor.sh system|python|docker|network|tools [options]" ;;
esac
finish
