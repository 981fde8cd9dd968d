#!/usr/bin/env bash
# mlops-env: read-only facts about the box, one KEY=VALUE per line.
# usage: facts.sh
set -uo pipefail
# Test seam: unit tests point this at a fixture file; on a box it is always /etc/os-release.
OS_RELEASE=${MLOPS_ENV_OS_RELEASE:-/etc/os-release}

os_id=""; os_version=""; os_pretty=""; os_codename=""
if [ -r "$OS_RELEASE" ]; then
  # shellcheck disable=SC1090,SC1091
  . "$OS_RELEASE"
  os_id=${ID:-}; os_version=${VERSION_ID:-}; os_pretty=${PRETTY_NAME:-}; os_codename=${VERSION_CODENAME:-}
fi
echo "os_id=$os_id"
echo "os_version=$os_version"
echo "os_pretty=$os_pretty"
echo "os_codename=$os_codename"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "uid=$(id -u)"
echo "user=$(id -un)"
echo "home=$HOME"
echo "shell=${SHELL:-}"
echo "hostname=$(hostname 2>/dev/null || cat /etc/hostname)"
echo "nproc=$(nproc 2>/dev/null || echo 0)"
echo "mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
echo "disk_free_kb=$(df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print $4}')"
tools=""
for t in curl wget bzip2 git sudo python3 docker conda; do
  command -v "$t" >/dev/null 2>&1 && tools="$tools $t"
done
echo "tools=${tools# }"
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then echo "ca_certs=1"; else echo "ca_certs=0"; fi
if [ -d /run/systemd/system ]; then echo "systemd=1"; else echo "systemd=0"; fi
if [ "$(id -u)" = 0 ]; then
  echo "sudo=root"
elif ! command -v sudo >/dev/null 2>&1; then
  echo "sudo=missing"
elif sudo -n true 2>/dev/null; then
  echo "sudo=ok"
else
  echo "sudo=password"
fi
