#!/usr/bin/env bash
# mlops-env step "smoke": the course's ride-duration training, run on the box in the conda
# base env. The training program (ridetrain.py) is uploaded by mlops-env beforehand.
#
# usage: smoke.sh check --key KEY
#        smoke.sh apply --key KEY --python PY -- RIDETRAIN-ARGS...
#        smoke.sh run --python PY -- RIDETRAIN-ARGS...   (`mlops-env smoke-test NAME`: no stamp)
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
[ -n "$KEY" ] || [ "$mode" = run ] || die "--key is required" "" 2
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
  apply|run)
    [ -x "$PY" ] || die "python not found at $PY" "run \`mlops-env up\` for this workstation first (its conda step)" 1
    [ -f "$PROGRAM" ] || die "training program not found at $PROGRAM" "" 1
    mkdir -p "$HOME/.mlops-env/smoke"
    [ "$mode" = run ] || rm -f "$STAMP"
    rc=0
    "$PY" "$PROGRAM" "$@" --report-dir "$HOME/.mlops-env/smoke/report" \
      --cache-dir "$HOME/.cache/mlops-env/tlc" --json || rc=$?
    if [ "$rc" = 0 ] && [ "$mode" = apply ]; then
      printf '%s' "$KEY" > "$STAMP.tmp" && mv -f "$STAMP.tmp" "$STAMP"
    fi
    exit "$rc"
    ;;
  *) die "usage: smoke.sh check|apply|run ..." "" 2 ;;
esac
