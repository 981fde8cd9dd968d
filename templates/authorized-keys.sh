#!/usr/bin/env bash
# mlops-env step "student-keys" (class): the login user's ~/.ssh/authorized_keys holds exactly
# the given public keys (the student's, and the instructor's mlops-env key while the roster's
# instructor_access is true). Keys are compared by type and base64 (comments do not matter).
# usage: authorized-keys.sh check|apply --key "TYPE BASE64 COMMENT" [--key ...]
# The file is replaced atomically (temp file in ~/.ssh, mode 0600, then renamed).
# exit: 0 as wanted, 1 not (yet), 2 bad usage
set -euo pipefail

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }

mode=${1:-}; shift || true
KEYS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --key)
      k=${2:-}
      case "$k" in
        ssh-*\ *|ecdsa-*\ *|sk-*\ *) ;;
        *) die "not a public key line: ${k:0:40}" "" 2 ;;
      esac
      case "$k" in *$'\n'*|*$'\r'*) die "a key must be one line" "" 2 ;; esac
      KEYS+=("$k"); shift 2 ;;
    *) die "unknown argument: $1" "" 2 ;;
  esac
done
[ "${#KEYS[@]}" -gt 0 ] || die "at least one --key is required (a box nobody can log in to)" "" 2
FILE="$HOME/.ssh/authorized_keys"

wanted() { local k; for k in "${KEYS[@]}"; do echo "$k" | awk '{print $1" "$2}'; done | sort -u; }
present() { [ -f "$FILE" ] || return 0; awk 'NF>=2 && $1 !~ /^#/ {print $1" "$2}' "$FILE" | sort -u; }

same() { [ "$(wanted)" = "$(present)" ]; }

case "$mode" in
  check)
    if same; then
      echo "mlops: authorized_keys holds exactly the ${#KEYS[@]} key(s) wanted"
    else
      n_missing=$(comm -23 <(wanted) <(present) | wc -l)
      n_extra=$(comm -13 <(wanted) <(present) | wc -l)
      echo "mlops: authorized_keys: $n_missing key(s) to add, $n_extra to remove"
      exit 1
    fi
    ;;
  apply)
    mkdir -p "$HOME/.ssh"
    chmod 700 "$HOME/.ssh"
    tmp=$(mktemp "$HOME/.ssh/.authorized_keys.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    printf '%s\n' "${KEYS[@]}" > "$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$FILE"
    same || die "authorized_keys does not hold the wanted keys after writing it" ""
    echo "mlops: authorized_keys now holds exactly the ${#KEYS[@]} key(s) wanted"
    ;;
  *) die "usage: authorized-keys.sh check|apply --key LINE [--key LINE ...]" "" 2 ;;
esac
