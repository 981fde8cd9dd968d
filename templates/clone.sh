#!/usr/bin/env bash
# shellcheck disable=SC2088  # messages show ~/DIR on purpose (the user reads them)
# mlops-env step "clone": a git repository (the course's) checked out on the box, once.
# usage: clone.sh check|apply --url URL --dir DIR
# DIR is relative to $HOME. An existing DIR is never touched: a checkout there is accepted as
# it is (whatever its remote, branch or local changes), anything else there is refused.
# apply clones into a temporary folder beside DIR and renames it into place, so a clone cut
# off half way never looks like a checkout.
# exit: 0 present, 1 absent / failed, 2 bad usage, 4 DIR exists and is not a git checkout
set -euo pipefail

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }

mode=${1:-}; shift || true
URL=""; DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --url) URL=${2:-}; shift 2 ;;
    --dir) DIR=${2:-}; shift 2 ;;
    *) die "unknown argument: $1" "" 2 ;;
  esac
done
if [ -z "$URL" ] || [ -z "$DIR" ]; then die "--url and --dir are required" "" 2; fi
case "$URL" in -*) die "refusing a URL that starts with '-'" "" 2 ;; esac
case "$DIR" in /*|-*|*..*) die "refusing the folder $DIR" "" 2 ;; esac
TARGET="$HOME/$DIR"

present() {
  [ -e "$TARGET" ] || return 1
  if git -C "$TARGET" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
     [ "$(git -C "$TARGET" rev-parse --show-toplevel 2>/dev/null)" = "$(cd "$TARGET" && pwd -P)" ]; then
    return 0
  fi
  return 4
}

describe() {
  local origin
  origin=$(git -C "$TARGET" remote get-url origin 2>/dev/null || echo "no origin")
  if [ "$origin" = "$URL" ]; then
    echo "mlops: ~/$DIR is a checkout of $URL"
  else
    echo "mlops: ~/$DIR is a checkout of $origin (not $URL; left as it is)"
  fi
}

rc=0; present || rc=$?
case "$mode" in
  check)
    case "$rc" in
      0) describe ;;
      4) echo "mlops: ~/$DIR exists and is not a git checkout"; exit 1 ;;
      *) echo "mlops: ~/$DIR is absent"; exit 1 ;;
    esac
    ;;
  apply)
    case "$rc" in
      0) describe; exit 0 ;;
      4) die "$HOME/$DIR exists and is not a git checkout; mlops-env does not touch it" \
           "move it away, or pass another --clone-dir" 4 ;;
    esac
    command -v git >/dev/null 2>&1 || die "git is not installed" "the base step installs it: run \`mlops-env up\` again" 4
    parent=$(dirname "$TARGET")
    mkdir -p "$parent"
    tmp=$(mktemp -d "$parent/.mlops-clone.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "mlops: cloning $URL into ~/$DIR"
    # No prompt can hang the run: no terminal questions, ssh in batch mode.
    if ! GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND="ssh -o BatchMode=yes" \
         git clone --quiet -- "$URL" "$tmp/checkout" 2>&1; then
      die "git clone of $URL failed" "check the URL and that the box can reach it (a private repository needs credentials on the box)"
    fi
    mv -T "$tmp/checkout" "$TARGET" 2>/dev/null || {
      # someone made DIR meanwhile: keep theirs
      present && { describe; exit 0; }
      die "could not move the checkout to ~/$DIR" ""
    }
    describe
    ;;
  *) die "usage: clone.sh check|apply --url URL --dir DIR" "" 2 ;;
esac
