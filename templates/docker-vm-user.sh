#!/usr/bin/env bash
# mlops-env: the login user of a workstation container: a sudo user (no password, like the
# default user of a cloud image) whose only way in is mlops-env's key. Idempotent.
# usage: docker-vm-user.sh USER PUBLIC-KEY-LINE
set -euo pipefail

user=${1:?user}
pubkey=${2:?public key}
case "$user" in
  [a-z_]*) ;;
  *) echo "mlops-error: invalid user name: $user" >&2; exit 2 ;;
esac
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$user"
fi
passwd -l "$user" >/dev/null 2>&1 || true
usermod -aG sudo "$user" 2>/dev/null || true
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" > "/etc/sudoers.d/90-mlops-env-$user"
chmod 0440 "/etc/sudoers.d/90-mlops-env-$user"
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 0700 -o "$user" -g "$(id -gn "$user")" "$home/.ssh"
printf '%s\n' "$pubkey" > "$home/.ssh/authorized_keys"
chown "$user:$(id -gn "$user")" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
echo "mlops: user $user ready"
