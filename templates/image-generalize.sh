#!/usr/bin/env bash
# mlops-env: generalize a builder (`mlops-env image build`) before it is captured as an image
# that may be shared with a class. Run as root on the builder. Removes everything that belongs
# to one machine or one person: SSH host keys, every authorized_keys (mlops-env's key too),
# shell histories, the downloaded conda installer, apt lists, idle-agent settings and state,
# credentials of any kind, the smoke test's "passed" stamp and report (the next workstation runs
# the smoke test itself), cloud-init instance state and seed (`cloud-init clean --logs --seed`:
# the next boot is a first boot) and the machine id. Kept: the installed
# packages, Docker, conda and its libraries, the smoke program and its data cache.
# Idempotent. Prints one line per area; exits non-zero only when a removal fails.
set -euo pipefail
shopt -s nullglob dotglob

rm -f /etc/ssh/ssh_host_*
for h in /root /home/*; do
  [ -d "$h" ] || continue
  rm -rf "$h/.ssh/authorized_keys" "$h/.ssh/authorized_keys2" "$h/.ssh/known_hosts" \
         "$h/.ssh/known_hosts.old" "$h"/.ssh/id_*
  rm -f "$h/.bash_history" "$h/.python_history" "$h/.lesshst" "$h/.wget-hsts" "$h/.viminfo" \
        "$h/.sudo_as_admin_successful" "$h/.zsh_history" "$h/.node_repl_history"
  rm -rf "$h/.cache/mlops-env/installers" "$h/.aws" "$h/.docker/config.json" "$h/.git-credentials" \
         "$h/.netrc" "$h/.config/gh" "$h/.kaggle" "$h/.mlops-env/smoke/passed" "$h/.mlops-env/smoke/report" \
         "$h/.ipython/profile_default/history.sqlite" "$h/.local/share/jupyter/runtime"
done
echo "mlops: keys, histories, credentials and the installer download removed"
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
echo "mlops: apt lists removed"
rm -rf /etc/mlops-env/idle-stop.conf /var/lib/mlops-env/idle-stop
echo "mlops: idle-agent settings and state removed"
if command -v cloud-init >/dev/null 2>&1; then
  # The next boot is a first boot (host keys and the login key from that instance's data).
  # --seed: a NoCloud seed (the builder's user data, with its host key) must not travel either.
  cloud-init clean --logs --seed >/dev/null 2>&1 || cloud-init clean --logs >/dev/null 2>&1 || true
  rm -rf /var/lib/cloud/instances /var/lib/cloud/instance /var/lib/cloud/seed /var/log/cloud-init*.log
  echo "mlops: cloud-init state cleaned"
fi
rm -rf /tmp/* /var/tmp/*
if [ -f /etc/machine-id ]; then : > /etc/machine-id; fi
rm -f /var/lib/dbus/machine-id
echo "mlops: generalized"
