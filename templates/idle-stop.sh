#!/usr/bin/env bash
# mlops-env step "idle-stop": the idle-stop agent (templates/idle-agent.sh) installed, its
# settings (/etc/mlops-env/idle-stop.conf) as wanted and its timer enabled and active; when
# the stop is off (window=0 and max_uptime=0), the timer disabled (the files stay).
#
# usage: idle-stop.sh check  --agent-sha256 HEX [--set K=V]... [--default K=V]...
#        idle-stop.sh apply  --agent-sha256 HEX --agent-b64 BASE64 [--set K=V]... [--default K=V]...   (root)
#        idle-stop.sh status                     the agent's state as key=value lines (read-only)
# --set K=V: a value the user chose; --default K=V: used only where the box has no value yet,
# so a default never overrides what the user chose earlier (`mlops-env idle-stop NAME 30m`).
# The settings' keys, units and validation live in ONE place: the agent (`idle-agent merge`).
# Exit: 0 done, 1 not done/failed, 2 usage, 3 unsupported (no systemd), 8 integrity.
set -euo pipefail
# Test seam: a directory that stands for / (the agent honours the same variable).
ROOT=${MLOPS_ENV_IDLE_ROOT:-}
AGENT_PATH=/usr/local/lib/mlops-env/idle-agent
AGENT="$ROOT$AGENT_PATH"
UNIT_DIR="$ROOT/etc/systemd/system"
SERVICE=mlops-env-idle.service
TIMER=mlops-env-idle.timer
STATE_FILE="$ROOT/var/lib/mlops-env/idle-stop/state"

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }
say() { echo "mlops: $*"; }

mode=${1:-}; shift || true
SHA=""; B64=""; ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --agent-sha256) SHA=$2; shift 2 ;;
    --agent-b64) B64=$2; shift 2 ;;
    --set|--default) [ $# -ge 2 ] || die "$1 needs KEY=VALUE" "" 2; ARGS+=("$1" "$2"); shift 2 ;;
    *) die "unknown argument: $1" "" 2 ;;
  esac
done

has_systemd() { [ -d "$ROOT/run/systemd/system" ]; }
get() { awk -v k="$1" 'index($0, k "=") == 1 { v = substr($0, length(k) + 2) } END { print v }'; }
file_sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

# The value a key would get without the agent (nothing installed yet: no settings file).
wanted_without_agent() {
  local key=$1 v="" i
  for ((i = 0; i < ${#ARGS[@]}; i += 2)); do
    case "${ARGS[i]}:${ARGS[i + 1]}" in --default:"$key"=*) [ -n "$v" ] || v=${ARGS[i + 1]#*=} ;; esac
  done
  for ((i = 0; i < ${#ARGS[@]}; i += 2)); do
    case "${ARGS[i]}:${ARGS[i + 1]}" in --set:"$key"=*) v=${ARGS[i + 1]#*=} ;; esac
  done
  [ -n "$v" ] || case "$key" in window) v=3600 ;; *) v=0 ;; esac  # the agent's built-in defaults
  echo "$v"
}

is_on() { [ "$(get window <<<"$1")" != 0 ] || [ "$(get max_uptime <<<"$1")" != 0 ]; }

human() {
  local s=$1
  if [ "$s" -ge 3600 ] && [ $((s % 3600)) = 0 ]; then echo "$((s / 3600)) h"
  elif [ "$s" -ge 60 ] && [ $((s % 60)) = 0 ]; then echo "$((s / 60)) min"
  else echo "$s s"; fi
}

describe() {
  local s=$1 w m out
  w=$(get window <<<"$s"); m=$(get max_uptime <<<"$s")
  if ! is_on "$s"; then echo "idle-stop off"; return; fi
  if [ "$w" != 0 ]; then out="idle-stop after $(human "$w") idle"; else out="no idle stop"; fi
  [ "$m" = 0 ] || out+=", power-off after $(human "$m") uptime"
  local off=""
  for r in ssh jupyter load containers; do [ "$(get "$r" <<<"$s")" = on ] || off+="${off:+,}$r"; done
  [ -z "$off" ] || out+=" (rules off: $off)"
  echo "$out"
}

service_unit() {
  cat <<EOF
# Installed by mlops-env (idle-stop step). Settings: /etc/mlops-env/idle-stop.conf
[Unit]
Description=mlops-env idle-stop agent: one check (power off when idle)

[Service]
Type=oneshot
ExecStart=$AGENT_PATH tick
SyslogIdentifier=mlops-env-idle
TimeoutStartSec=120
EOF
}

timer_unit() {
  cat <<EOF
# Installed by mlops-env (idle-stop step). Settings: /etc/mlops-env/idle-stop.conf
[Unit]
Description=mlops-env idle-stop agent: a check every $1 s

[Timer]
OnBootSec=$1
OnUnitActiveSec=$1
AccuracySec=1s

[Install]
WantedBy=timers.target
EOF
}

timer_enabled() { systemctl is-enabled --quiet "$TIMER" 2>/dev/null; }
timer_active() { systemctl is-active --quiet "$TIMER" 2>/dev/null; }

# Prints one line per problem; nothing when the box is as wanted.
problems() {
  local want=$1 have=$2 eff=$3 k
  if [ "$want" != "$have" ]; then
    local diffs=""
    while IFS='=' read -r k _; do
      [ -n "$k" ] || continue
      [ "$(get "$k" <<<"$want")" = "$(get "$k" <<<"$have")" ] ||
        diffs+="${diffs:+, }$k $(get "$k" <<<"$have") -> $(get "$k" <<<"$want")"
    done <<<"$want"
    echo "settings differ ($diffs)"
  fi
  if is_on "$want"; then
    has_systemd || { echo "this box does not run systemd (the agent runs from a systemd timer)"; return; }
    [ "$(cat "$UNIT_DIR/$SERVICE" 2>/dev/null)" = "$(service_unit)" ] || echo "$SERVICE is missing or out of date"
    [ "$(cat "$UNIT_DIR/$TIMER" 2>/dev/null)" = "$(timer_unit "$(get interval <<<"$eff")")" ] ||
      echo "$TIMER is missing or out of date"
    timer_enabled || echo "$TIMER is not enabled"
    timer_active || echo "$TIMER is not active"
  elif [ -f "$UNIT_DIR/$TIMER" ] && has_systemd; then
    if timer_enabled || timer_active; then echo "$TIMER is still enabled or active"; fi
  fi
}

do_check() {
  [[ $SHA =~ ^[0-9a-f]{64}$ ]] || die "--agent-sha256 HEX is required" "" 2
  if [ ! -x "$AGENT" ]; then
    if [ "$(wanted_without_agent window)" = 0 ] && [ "$(wanted_without_agent max_uptime)" = 0 ]; then
      say "idle-stop off"; exit 0
    fi
    say "the idle-stop agent is not installed"; exit 1
  fi
  local want have p eff
  want=$("$AGENT" merge "${ARGS[@]+"${ARGS[@]}"}") || die "the wanted idle-stop settings are invalid" "" 2
  eff=$("$AGENT" effective "${ARGS[@]+"${ARGS[@]}"}")
  have=$("$AGENT" settings 2>&1) || { say "$(sed -n 's/^mlops-error: //p' <<<"$have" | head -n1)"; exit 1; }
  p=$(problems "$want" "$have" "$eff")
  if is_on "$want" && [ "$(file_sha "$AGENT")" != "$SHA" ]; then
    p="the idle-stop agent is out of date${p:+$'\n'}$p"
  fi
  if [ -n "$p" ]; then say "$(paste -sd ';' - <<<"$p" | sed 's/;/; /g')"; exit 1; fi
  if is_on "$want"; then say "$(describe "$eff"); checked every $(get interval <<<"$eff") s"
  else say "$(describe "$want")"; fi
}

write_if_changed() {  # write_if_changed FILE TEXT: 0 when the file changed
  if [ "$(cat "$1" 2>/dev/null)" = "$2" ]; then return 1; fi
  mkdir -p "$(dirname "$1")"
  printf '%s\n' "$2" >"$1.tmp"; chmod 0644 "$1.tmp"; mv -f "$1.tmp" "$1"
}

do_apply() {
  [ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "idle-stop.sh apply must run as root" "" 2
  if [[ ! $SHA =~ ^[0-9a-f]{64}$ ]] || [ -z "$B64" ]; then
    die "--agent-sha256 HEX and --agent-b64 are required" "" 2
  fi
  local want eff changed=0
  NEW_AGENT=$(mktemp)
  trap 'rm -f "$NEW_AGENT"' EXIT
  printf '%s' "$B64" | base64 -d >"$NEW_AGENT" 2>/dev/null || die "the agent did not arrive intact (bad base64)" "" 8
  [ "$(file_sha "$NEW_AGENT")" = "$SHA" ] || die "the agent did not arrive intact (sha256 mismatch)" \
    "run \`mlops-env up\` again; if it persists, see the log file" 8
  want=$(bash "$NEW_AGENT" merge "${ARGS[@]+"${ARGS[@]}"}") || exit 2
  eff=$(bash "$NEW_AGENT" effective "${ARGS[@]+"${ARGS[@]}"}")
  if is_on "$want" && ! has_systemd; then
    die "this box does not run systemd: the idle-stop agent needs a systemd timer" "use --idle-stop off on this box" 3
  fi
  if [ "$(file_sha "$AGENT")" != "$SHA" ]; then
    mkdir -p "$(dirname "$AGENT")"
    install -m 0755 "$NEW_AGENT" "$AGENT"
    say "installed the idle-stop agent in $AGENT_PATH"
  fi
  if [ "$("$AGENT" configure "${ARGS[@]+"${ARGS[@]}"}")" = changed ]; then
    say "settings written to /etc/mlops-env/idle-stop.conf"
  fi
  if is_on "$want"; then
    write_if_changed "$UNIT_DIR/$SERVICE" "$(service_unit)" && changed=1
    write_if_changed "$UNIT_DIR/$TIMER" "$(timer_unit "$(get interval <<<"$eff")")" && changed=1
    [ "$changed" = 0 ] || systemctl daemon-reload
    systemctl enable --quiet "$TIMER"
    if [ "$changed" = 1 ] || ! timer_active; then systemctl restart "$TIMER"; fi
    say "$(describe "$eff"); checked every $(get interval <<<"$eff") s"
  else
    if [ -f "$UNIT_DIR/$TIMER" ] && has_systemd; then
      systemctl disable --now --quiet "$TIMER" 2>/dev/null || systemctl stop "$TIMER" || true
    fi
    rm -f "$STATE_FILE"
    say "idle-stop off (timer disabled)"
  fi
}

do_status() {
  if [ ! -x "$AGENT" ]; then echo "agent=missing"; return 0; fi
  "$AGENT" status || true
  if has_systemd; then
    echo "timer_enabled=$(timer_enabled && echo 1 || echo 0)"
    echo "timer_active=$(timer_active && echo 1 || echo 0)"
  else
    echo "timer_enabled=0"; echo "timer_active=0"
  fi
}

case "$mode" in
  check) do_check ;;
  apply) do_apply ;;
  status) do_status ;;
  *) die "usage: idle-stop.sh check|apply|status [--agent-sha256 HEX] [--set K=V]... [--default K=V]..." "" 2 ;;
esac
