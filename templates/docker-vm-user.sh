#!/usr/bin/env bash
# mlops-env: the login user of a workstation container: a sudo user (no password, like the
# default user of a cloud image) whose only way in is mlops-env's key. Idempotent.
# usage: docker-vm-user.sh USER PUBLIC-KEY-LINE
set -euo pipefail

user=${1:?user}
pubkey=${2:?public key}
# useradd's default NAME_REGEX, at most 32 characters (mlops-env checks it before anything
# is created; this is the box-side guard).
if ! [[ "$user" =~ ^[a-z_][a-z0-9_-]*[$]?$ ]] || [ "${#user}" -gt 32 ]; then
  echo "mlops-error: invalid user name: $user" >&2
  echo "mlops-hint: use a-z, 0-9, '_' and '-', starting with a letter or '_', at most 32 characters" >&2
  exit 2
fi
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$user"
fi
passwd -l "$user" >/dev/null 2>&1 || true
usermod -aG sudo "$user" 2>/dev/null || true
# A sudoers file that does not parse breaks sudo for everyone: check it with visudo before it
# is installed (atomically, by rename, into the directory sudo reads).
sudoers="/etc/sudoers.d/90-mlops-env-$user"
tmp=$(mktemp /etc/sudoers.d/.mlops-env-XXXXXX)
trap 'rm -f "$tmp"' EXIT
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" > "$tmp"
chmod 0440 "$tmp"
if ! out=$(visudo -cf "$tmp" 2>&1); then
  echo "mlops-error: the sudoers entry for $user does not parse: $out" >&2
  exit 1
fi
mv -f "$tmp" "$sudoers"
trap - EXIT
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 0700 -o "$user" -g "$(id -gn "$user")" "$home/.ssh"
printf '%s\n' "$pubkey" > "$home/.ssh/authorized_keys"
chown "$user:$(id -gn "$user")" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
echo "mlops: user $user ready"
