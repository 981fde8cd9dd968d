#!/usr/bin/env bash
# Replace the SSH host key that travelled in cloud-init user data (EC2) with one made here,
# whose private half never leaves this box. Run as root; driven by mlops-env's EC2 provider
# (providers/ec2/provider.py, docs/ec2.md "Host key"), one phase per call, each idempotent:
#
#   prepare          make the new ED25519 key (once) and print its public half
#   switch  B64      serve the new key: sshd lists both keys, the new one first (it presents
#                    the first key of a type; the old one stays configured until the end)
#   abort            back to the old key only (before the switch was confirmed)
#   retire  B64      the new key takes the standard path, the old (user-data) key is deleted
#   check   B64      read-only: exit 0 when B64 is the only ED25519 host key, as retire leaves it
#
# B64 is the base64 field of the new public key: every phase after prepare checks that the
# key on disk is the one the caller pinned. Messages: "mlops: ..." on stdout,
# "mlops-error: ..." / "mlops-hint: ..." on stderr; exit 0 done, 1 failed/not done, 2 usage,
# 3 unsupported.
set -euo pipefail

STD=/etc/ssh/ssh_host_ed25519_key
DIR=/etc/ssh/mlops-env
NEW=$DIR/ssh_host_ed25519_key
CONF=/etc/ssh/sshd_config.d/00-mlops-env-hostkey.conf

say() { printf 'mlops: %s\n' "$*"; }
fail() { printf 'mlops-error: %s\n' "$1" >&2; [ -z "${2:-}" ] || printf 'mlops-hint: %s\n' "$2" >&2; exit "${3:-1}"; }

# The base64 field of the public key derived from a private key file ("" when unreadable).
pub_b64() { ssh-keygen -y -f "$1" 2>/dev/null | awk '{print $2}'; }

reload_sshd() {
    # A running daemon re-reads its configuration on reload (sessions stay up). Socket
    # activation with Accept=yes starts one sshd per connection: nothing to reload there.
    local unit
    for unit in ssh.service sshd.service; do
        if systemctl is-active --quiet "$unit" 2>/dev/null; then
            systemctl reload "$unit" || fail "reloading $unit failed" "see journalctl -u $unit"
            say "reloaded $unit"
            return 0
        fi
    done
    say "no sshd daemon to reload (socket-activated or not running)"
}

need_key() {
    [ -n "${1:-}" ] || fail "the expected public key is missing" "" 2
}

mode=${1:-}
case "$mode" in
    prepare)
        command -v ssh-keygen >/dev/null || fail "ssh-keygen is not installed" "" 3
        if [ -z "$(pub_b64 "$NEW")" ]; then
            install -d -m 0700 -o root -g root "$DIR"
            tmp=$(mktemp -d "$DIR/.new.XXXXXX")
            ssh-keygen -q -t ed25519 -N '' -C "mlops-env-host@$(hostname)" -f "$tmp/key"
            mv -f "$tmp/key.pub" "$NEW.pub"
            mv -f "$tmp/key" "$NEW"  # last: a key file that exists is complete
            rmdir "$tmp"
            say "generated a new ED25519 host key in $NEW"
        fi
        say "new-key ssh-ed25519 $(pub_b64 "$NEW")"
        ;;
    switch)
        need_key "${2:-}"
        [ "$(pub_b64 "$NEW")" = "$2" ] || fail "the new host key on the box is missing or not the one pinned" \
            "the rotation starts again on the next up"
        [ -n "$(pub_b64 "$STD")" ] || fail "the current host key $STD is missing"
        tmp=$(mktemp "$CONF.XXXXXX")
        printf '# mlops-env: host key rotation in progress (new key first, the old one until it is retired)\nHostKey %s\nHostKey %s\n' \
            "$NEW" "$STD" >"$tmp"
        chmod 0644 "$tmp"
        mv -f "$tmp" "$CONF"
        if ! err=$(sshd -t 2>&1); then
            rm -f "$CONF"
            fail "sshd refuses the new configuration: ${err##*$'\n'}" "the old host key stays in use"
        fi
        effective=$(sshd -T 2>/dev/null || true)  # (not piped into grep -q: SIGPIPE + pipefail)
        if ! grep -qx "hostkey $NEW" <<<"$effective"; then
            rm -f "$CONF"
            fail "sshd does not read /etc/ssh/sshd_config.d/*.conf (no Include line in sshd_config)" \
                "the old host key stays in use" 3
        fi
        reload_sshd
        say "sshd serves the new host key"
        ;;
    abort)
        [ -n "$(pub_b64 "$STD")" ] || fail "the old host key $STD is gone: cannot go back to it"
        rm -f "$CONF"
        reload_sshd
        rm -rf "$DIR"
        say "back to the old host key"
        ;;
    retire)
        need_key "${2:-}"
        if [ "$(pub_b64 "$NEW")" = "$2" ]; then
            # Copy, then rename over the old key: the standard path always holds a whole key.
            install -m 0600 -o root -g root "$NEW" "$STD.mlops-new"
            mv -f "$STD.mlops-new" "$STD"
            install -m 0644 -o root -g root "$NEW.pub" "$STD.pub.mlops-new"
            mv -f "$STD.pub.mlops-new" "$STD.pub"
        fi
        [ "$(pub_b64 "$STD")" = "$2" ] || fail "neither $NEW nor $STD holds the pinned new key"
        rm -f "$CONF"
        if ! err=$(sshd -t 2>&1); then
            fail "sshd refuses its configuration after the switch: ${err##*$'\n'}"
        fi
        reload_sshd
        rm -rf "$DIR"
        say "the host key from user data is deleted; $STD is the key made on this box"
        ;;
    check)
        need_key "${2:-}"
        [ "$(pub_b64 "$STD")" = "$2" ] || { say "the pinned new key is not the standard host key"; exit 1; }
        [ ! -e "$CONF" ] || { say "rotation not finished ($CONF exists)"; exit 1; }
        [ ! -e "$DIR" ] || { say "rotation not finished ($DIR exists)"; exit 1; }
        say "the host key was made on this box; the user-data key is retired"
        ;;
    *)
        fail "usage: hostkey-rotate.sh prepare|switch B64|abort|retire B64|check B64" "" 2
        ;;
esac
