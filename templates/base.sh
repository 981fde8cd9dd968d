#!/usr/bin/env bash
# mlops-env step "base": base packages on a supported OS.
# usage: base.sh check|apply
# exit: 0 done, 1 not done / failed, 3 unsupported OS
set -euo pipefail
# Test seam: unit tests point this at a fixture file; on a box it is always /etc/os-release.
OS_RELEASE=${MLOPS_ENV_OS_RELEASE:-/etc/os-release}

# What the later steps and the course need: downloads (curl, CA certificates), the conda
# installers (bzip2), git for the course repository, ps/kill and friends.
PACKAGES=(ca-certificates curl git bzip2 procps util-linux)

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }

# apt_get / apt_reason: apt's own reason for a failure (templates/lib/apt.sh)
# shellcheck source=lib/apt.sh
. "${BASH_SOURCE[0]%/*}/lib/apt.sh"

supported_os() {
  [ -r "$OS_RELEASE" ] || die "cannot identify the OS (/etc/os-release missing)" \
    "mlops-env supports Ubuntu 22.04, Ubuntu 24.04 and Debian 12" 3
  # shellcheck disable=SC1090,SC1091
  . "$OS_RELEASE"
  case "${ID:-}:${VERSION_ID:-}" in
    ubuntu:22.04|ubuntu:24.04|debian:12) return 0 ;;
  esac
  die "unsupported OS: ${PRETTY_NAME:-${ID:-unknown} ${VERSION_ID:-}}" \
    "mlops-env supports Ubuntu 22.04, Ubuntu 24.04 and Debian 12; use one of those images" 3
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

mode=${1:-}
case "$mode" in
  check)
    supported_os
    missing=$(missing_packages | tr '\n' ' ')
    if [ -n "$missing" ]; then
      echo "mlops: missing packages: $missing"
      exit 1
    fi
    echo "mlops: base packages present"
    ;;
  apply)
    supported_os
    missing=$(missing_packages | tr '\n' ' ')
    if [ -z "$missing" ]; then
      echo "mlops: base packages present"
      exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "mlops: apt-get update"
    apt_get update ||
      die "apt-get update failed: $(apt_reason $?)" "fix the box's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/) or its network, then run \`mlops-env up\` again"
    echo "mlops: installing $missing"
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    apt_get install -y --no-install-recommends $missing ||
      die "apt-get install ${missing% } failed: $(apt_reason $?)" "fix what apt says on the box (sudo apt-get install -f, a held dpkg lock, a full disk?), then run \`mlops-env up\` again"
    echo "mlops: base packages installed"
    ;;
  *) die "usage: base.sh check|apply" "" 2 ;;
esac
