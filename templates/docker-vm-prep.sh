#!/usr/bin/env bash
# mlops-env: turn a stock Debian/Ubuntu image into a workstation image (run once per base
# image inside a temporary container, then committed as mlops-env/workstation:<id>).
# Installs what a small VM needs and the image lacks: systemd as init, dbus, sshd, sudo,
# ca-certificates, curl. Host keys are removed: each container makes its own at first boot.
# usage: docker-vm-prep.sh INIT-SCRIPT-PATH
# Exit: 0 ok, 3 not a Debian/Ubuntu image, 1 failed (e.g. apt cannot reach its mirror).
set -euo pipefail

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }

init_src=${1:?init script path}
[ -r /etc/os-release ] || die "the image has no /etc/os-release" "use a Debian or Ubuntu image (default ubuntu:24.04)" 3
# shellcheck disable=SC1091
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "*|*" ubuntu "*) ;;
  *) die "the image is ${PRETTY_NAME:-${ID:-unknown}}, not Debian/Ubuntu based" "use a Debian or Ubuntu image (default ubuntu:24.04)" 3 ;;
esac
command -v apt-get >/dev/null || die "the image has no apt-get" "use a Debian or Ubuntu image" 3

want=(systemd systemd-sysv dbus openssh-server sudo ca-certificates curl procps iproute2)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  echo "mlops: installing ${missing[*]}"
  apt-get -q update || die "apt-get update failed inside the container" "the Docker engine's containers need to reach the distribution's package mirror"
  apt-get -q install -y --no-install-recommends "${missing[@]}"
  apt-get clean
  rm -rf /var/lib/apt/lists/*
fi

install -m 0755 "$init_src" /usr/local/sbin/mlops-env-init
rm -f /etc/ssh/ssh_host_*
# Units that make no sense in a container and only slow boot or fail.
systemctl mask getty.target console-getty.service systemd-udevd.service \
  systemd-udev-trigger.service systemd-modules-load.service sys-kernel-config.mount \
  sys-kernel-debug.mount sys-kernel-tracing.mount >/dev/null 2>&1 || true
if systemctl list-unit-files ssh.service >/dev/null 2>&1; then
  systemctl enable ssh.service >/dev/null 2>&1 || true
fi
mkdir -p /etc/ssh/sshd_config.d
# Keys only; no passwords over the network.
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' \
  > /etc/ssh/sshd_config.d/10-mlops-env.conf
echo "mlops: workstation image ready"
