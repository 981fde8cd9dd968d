#!/bin/sh
# mlops-env: entrypoint of a workstation container (`mlops-env up docker`), which behaves like
# a small VM: systemd as PID 1, sshd, and its own Docker engine inside.
# 1. systemd and the inner Docker engine need the cgroup hierarchy read-write.
#    cgroup v2 (Docker Desktop, modern Linux): remount /sys/fs/cgroup rw (private cgroupns).
#    cgroup v1: Docker mounts each controller read-only; unmount them and mount every
#    hierarchy listed in /proc/cgroups again, controllers sharing a hierarchy together.
#    Some (net_cls, perf_event, net_prio, hugetlb) fail with EPERM without --privileged: skipped.
# 2. SSH host keys are made on first boot (the image ships none), so every workstation has
#    its own; mlops-env reads and pins the public key.
# 3. exec systemd.
set -eu

fstype=$(stat -fc %T /sys/fs/cgroup 2>/dev/null || true)
if [ "$fstype" = cgroup2fs ]; then
    mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
elif [ "$fstype" = tmpfs ]; then
    for d in /sys/fs/cgroup/*; do
        if mountpoint -q "$d"; then umount "$d" 2>/dev/null || umount -l "$d" || true; fi
        if [ -L "$d" ]; then rm -f "$d"; fi
        if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
    done
    mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
    awk '!/^#/ && $2 != 0 && $4 == 1 { g[$2] = (g[$2] == "" ? $1 : g[$2] "," $1) }
         END { for (h in g) print g[h] }' /proc/cgroups |
    while read -r ctrls; do
        dir="/sys/fs/cgroup/$ctrls"
        mkdir -p "$dir"
        if mount -t cgroup -o "rw,nosuid,nodev,noexec,$ctrls" cgroup "$dir" 2>/dev/null; then
            case "$ctrls" in
                *,*) for c in $(echo "$ctrls" | tr , ' '); do ln -sfn "$ctrls" "/sys/fs/cgroup/$c"; done ;;
            esac
        else
            rmdir "$dir" 2>/dev/null || true
        fi
    done
    mkdir -p /sys/fs/cgroup/systemd
    mount -t cgroup -o rw,nosuid,nodev,noexec,none,name=systemd cgroup /sys/fs/cgroup/systemd
fi

ssh-keygen -A >/dev/null

exec /sbin/init "$@"
