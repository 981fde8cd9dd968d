#!/usr/bin/env bash
# mlops-env step "smoke": the course's ride-duration training, run on the box in the conda
# base env. The training program (ridetrain.py) is uploaded by mlops-env beforehand.
#
# usage: smoke.sh check --key KEY
#        smoke.sh apply --key KEY --python PY -- RIDETRAIN-ARGS...
# PY may start with ~/. The program is ~/.mlops-env/ridetrain.py; reports go to
# ~/.mlops-env/smoke/report and downloads are cached in ~/.cache/mlops-env/tlc.
# KEY names what passed (data mode + python); a passed run is recorded in
# ~/.mlops-env/smoke/passed so that re-running `up` on a ready box does not train again.
# apply prints ridetrain's JSON report on stdout. Exit: 0 passed, 1 not passed / failed,
# other codes are ridetrain's own (see docs/smoke-test.md).
set -euo pipefail

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }

mode=${1:-}; shift || true
KEY=""; PY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --key) KEY=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --) shift; break ;;
    *) die "unknown argument: $1" "" 2 ;;
  esac
done
[ -n "$KEY" ] || die "--key is required" "" 2
STAMP="$HOME/.mlops-env/smoke/passed"
PROGRAM="$HOME/.mlops-env/ridetrain.py"
case "$PY" in \~/*) PY="$HOME/${PY#\~/}" ;; esac

case "$mode" in
  check)
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ]; then
      echo "mlops: smoke test passed ($KEY)"
    else
      echo "mlops: smoke test has not passed on this box yet"
      exit 1
    fi
    ;;
  apply)
    [ -x "$PY" ] || die "python not found at $PY" "the conda step must succeed first" 1
    [ -f "$PROGRAM" ] || die "training program not found at $PROGRAM" "" 1
    mkdir -p "$HOME/.mlops-env/smoke"
    rm -f "$STAMP"
    rc=0
    "$PY" "$PROGRAM" "$@" --report-dir "$HOME/.mlops-env/smoke/report" \
      --cache-dir "$HOME/.cache/mlops-env/tlc" --json || rc=$?
    if [ "$rc" = 0 ]; then
      printf '%s' "$KEY" > "$STAMP.tmp" && mv -f "$STAMP.tmp" "$STAMP"
    fi
    exit "$rc"
    ;;
  *) die "usage: smoke.sh check|apply ..." "" 2 ;;
esac
