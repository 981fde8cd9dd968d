#!/usr/bin/env bash
# mlops-env idle-stop agent: powers an idle workstation off, so that an EC2 instance (shutdown
# behaviour "stop") stops billing for compute and keeps its disk. Installed by the idle-stop
# step (templates/idle-stop.sh) as /usr/local/lib/mlops-env/idle-agent, run as root by
# mlops-env-idle.timer (every `interval` seconds) through the oneshot mlops-env-idle.service.
#
# usage: idle-agent tick                  one check: gather, decide, warn / cancel / power off
#        idle-agent status                settings, last decision and timer, as key=value lines
#        idle-agent settings              the settings file, validated and normalised
#        idle-agent merge     [--set K=V]... [--default K=V]...   the settings these would give
#        idle-agent effective [--set K=V]... [--default K=V]...   the same with `auto` resolved
#        idle-agent configure [--set K=V]... [--default K=V]...   write them (root)
#        idle-agent gather                the activity seen now (one line per rule; read-only)
#        idle-agent rule NAME [ARGS]      one pure rule function on captured input (tests):
#            ps-sessions < `ps -eo pid=,user:32=,args=`      who-sessions < `LC_ALL=C who -u`
#            own-sessions [MARKED_PID]... < `ps -eo pid=,ppid=,user:32=,args=`
#            loadavg THRESHOLD < /proc/loadavg            cgroup-usage < cpuacct.usage|cpu.stat
#            cpu-load PREV_NS PREV_T NOW_NS NOW_T THRESHOLD
#            jupyter-server < jpserver-PID.json           jupyter-kernels < GET /api/kernels
#            containers < `docker ps --format '{{.ID}}\t{{.Image}}\t{{.Names}}\t{{.Label "mlops-env.idle"}}'`
#            uptime < "$(cat /proc/uptime) @ $(cat /proc/1/stat)"   CLK_TCK
#            decide K=V...  (now up window max_uptime warn active last idle_since deadline reason)
#
# Settings: ONE file, /etc/mlops-env/idle-stop.conf, `key=value` lines (# comments). Never
# sourced: each key is validated here (see `settings`). Keys, units and defaults:
#   window=3600        seconds without activity before power-off; 0 = no idle stop
#   max_uptime=0       seconds of uptime (since boot) before power-off regardless; 0 = no cap
#   warn=auto          seconds between the warning (wall + journal) and the power-off; auto:
#                      half the shorter of window/max_uptime, at most 300 (5 minutes)
#   interval=auto      seconds between checks (the timer's cadence); auto: a twentieth of the
#                      shorter of window/max_uptime, 1 to 30
#   load_threshold=0.5 a load at or above this is activity
#   ssh=on jupyter=on load=on containers=on        each activity rule on or off
# State: /var/lib/mlops-env/idle-stop/state (idle-since, pending deadline, last decision, the
# SSH sessions known to be mlops-env's own) and
# events (warnings, cancellations, power-offs). Each decision is one journal line (tag
# mlops-env-idle: `journalctl -t mlops-env-idle`).
set -euo pipefail
export LC_ALL=C
# Test seam: a directory that stands for / (etc, var, proc, sys, home, root, run).
ROOT=${MLOPS_ENV_IDLE_ROOT:-}
CONF="$ROOT/etc/mlops-env/idle-stop.conf"
STATE_DIR="$ROOT/var/lib/mlops-env/idle-stop"
STATE="$STATE_DIR/state"
EVENTS="$STATE_DIR/events"
TAG=mlops-env-idle
KEYS="window max_uptime warn interval load_threshold ssh jupyter load containers"
CMD_TIMEOUT=10
# How often a check looks again (0.25 s apart) at an SSH session with no process under it before
# counting it: mlops-env's connection between two commands looks like that (see own-sessions).
RESAMPLES=${MLOPS_ENV_IDLE_RESAMPLES:-4}

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }

# ----------------------------------------------------------------------------- settings
default_of() {
  case "$1" in
    window) echo 3600 ;; max_uptime) echo 0 ;; warn|interval) echo auto ;;
    load_threshold) echo 0.5 ;; ssh|jupyter|load|containers) echo on ;;
    *) return 1 ;;
  esac
}

# valid KEY VALUE: exit 0 when VALUE is allowed for KEY.
valid() {
  case "$1" in
    window|max_uptime) [[ $2 =~ ^[0-9]{1,9}$ ]] ;;
    warn) [ "$2" = auto ] || [[ $2 =~ ^[0-9]{1,6}$ ]] ;;
    interval) [ "$2" = auto ] || { [[ $2 =~ ^[0-9]{1,4}$ ]] && [ "$2" -ge 1 ]; } ;;
    load_threshold) [[ $2 =~ ^[0-9]{1,3}(\.[0-9]{1,3})?$ ]] ;;
    ssh|jupyter|load|containers) [ "$2" = on ] || [ "$2" = off ] ;;
    *) return 1 ;;
  esac
}

# read_conf FILE: prints the file's key=value lines, validated (unknown key or bad value: exit 1
# with mlops-error). Comments and blank lines are skipped; spaces around = are allowed.
read_conf() {
  local file=$1 line key val n=0
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%%#*}
    line=${line#"${line%%[![:space:]]*}"}
    line=${line%"${line##*[![:space:]]}"}
    [ -n "$line" ] || continue
    [[ $line == *=* ]] || die "$file:$n: expected key=value, got: $line"
    key=${line%%=*}; val=${line#*=}
    key=${key%"${key##*[![:space:]]}"}; val=${val#"${val%%[![:space:]]*}"}
    default_of "$key" >/dev/null || die "$file:$n: unknown key $key (known: $KEYS)"
    valid "$key" "$val" || die "$file:$n: invalid value for $key: $val"
    echo "$key=$val"
  done <"$file"
}

# lookup KEY < key=value lines: the last value given for KEY (empty when none).
lookup() { awk -v k="$1" 'index($0, k "=") == 1 { v = substr($0, length(k) + 2) } END { print v }'; }

# merge ARGS...: defaults (built-in < --default) < the settings file < --set; all keys.
merge() {
  local sets=() defs=() a k v file key out=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --set|--default)
        [ $# -ge 2 ] || die "$1 needs KEY=VALUE" "" 2
        a=$2; k=${a%%=*}; v=${a#*=}
        if [[ $a != *=* ]] || ! default_of "$k" >/dev/null; then die "unknown setting: $a" "" 2; fi
        valid "$k" "$v" || die "invalid value for $k: $v" "" 2
        if [ "$1" = --set ]; then sets+=("$k=$v"); else defs+=("$k=$v"); fi
        shift 2 ;;
      *) die "unknown argument: $1" "" 2 ;;
    esac
  done
  # explicit: `set -e` does not apply where merge runs in a condition (`if s=$(merge)`)
  file=$(read_conf "$CONF") || return 1
  for key in $KEYS; do
    v=$(printf '%s\n' "${sets[@]+"${sets[@]}"}" | lookup "$key")
    [ -n "$v" ] || v=$(printf '%s\n' "$file" | lookup "$key")
    [ -n "$v" ] || v=$(printf '%s\n' "${defs[@]+"${defs[@]}"}" | lookup "$key")
    [ -n "$v" ] || v=$(default_of "$key")
    out+="$key=$v"$'\n'
  done
  printf '%s' "$out"
}

# settings: the file's settings, every key (missing ones at the built-in default).
settings() { merge; }

# effective < merged settings: `auto` resolved. The shorter of window and max_uptime (when on)
# sets the pace: warn = half of it, at most 300 s (5 minutes before, for any window of 10
# minutes or more); interval = a twentieth of it, 1 to 30 s.
effective() {
  awk -F= '
    { k[NR] = $1; v[NR] = substr($0, length($1) + 2); val[$1] = v[NR] }
    END {
      w = val["window"] + 0; m = val["max_uptime"] + 0
      base = (w > 0 && (m == 0 || w <= m)) ? w : (m > 0 ? m : 3600)
      wa = int(base / 2); if (wa > 300) wa = 300
      iv = int(base / 20); if (iv < 1) iv = 1; if (iv > 30) iv = 30
      for (i = 1; i <= NR; i++) {
        if (k[i] == "warn" && v[i] == "auto") v[i] = wa
        if (k[i] == "interval" && v[i] == "auto") v[i] = iv
        print k[i] "=" v[i]
      }
    }'
}

configure() {
  [ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "configure must run as root" "" 2
  local new old
  new=$(merge "$@")
  old=$(read_conf "$CONF" 2>/dev/null || true)
  if [ "$new" = "$old" ]; then echo "unchanged"; return 0; fi
  mkdir -p "$(dirname "$CONF")"
  {
    echo "# mlops-env idle-stop settings: written by mlops-env (\`mlops-env idle-stop NAME 30m|2h|off\`)."
    echo "# Read by /usr/local/lib/mlops-env/idle-agent at every check (never sourced). Seconds;"
    echo "# window=0 turns the idle stop off, max_uptime=0 the uptime cap; each rule is on or off."
    printf '%s\n' "$new"
  } >"$CONF.tmp"
  chmod 0644 "$CONF.tmp"
  mv -f "$CONF.tmp" "$CONF"
  echo "changed"
}

# ----------------------------------------------------------------------------- pure rules
# Each rule prints one verdict line: `active RULE DETAIL`, `idle RULE [LAST-ACTIVITY-EPOCH]`
# or `unknown RULE DETAIL` (could not be evaluated: counted as activity, never as idle).

# SSH sessions from `ps -eo pid=,user:32=,args=`: OpenSSH names each authenticated session's
# process `sshd: USER@TTY` (`sshd-session:` from OpenSSH 9.8), TTY `notty` without a terminal
# (VS Code Remote-SSH, `ssh host cmd`), and plain `sshd: USER`, run as USER, while the
# connection has no session channel (`ssh -N -L 8888:...`: a Jupyter tunnel). Pre-authentication
# processes ([preauth], [net], [accepted]: port scanners), the privileged monitors ([priv]) and
# the listener never count.
# AWS SSM Session Manager sessions run as ssm-session-worker. Prints `KIND PID WHAT` lines.
rule_ps_sessions() {
  awk '
    ($3 == "sshd:" || $3 == "sshd-session:") && NF == 4 && $4 !~ /^\[/ {
      if ($4 ~ /^[^@]+@[^@]+$/) { print "ssh", $1, $4; next }
      if ($4 == $2) { print "ssh", $1, $4 "@forwarding"; next }  # no channel yet: ssh -N -L
    }
    $3 ~ /(^|\/)ssm-session-worker$/ { print "ssm", $1, $2 "@ssm" }
  '
}

# mlops-env's own SSH connections are not a person's activity (`status`, `doctor`, `up`,
# `idle-stop` connect to the box). mlops-env runs every remote command as
#     sh -c SCRIPT mlops-env ARGS...       (behind `sudo -n -H --` when it needs root)
# so that shell's $0 (argv[3] of /proc/PID/cmdline) is `mlops-env`, which no person's session
# has; the key cannot tell (`ssh mlops-NAME` logs in with the same key) and AcceptEnv is off by
# default. own-sessions MARKED_PID... < `ps -eo pid=,ppid=,user:32=,args=`, the marked PIDs
# being those processes: `own PID` for each session process (as in ps-sessions) above a marked
# process, and `bare PID` for each other session process without a terminal and with no process
# under it at all (a connection between two of mlops-env's commands, or a client holding only
# port forwards: looked at again before it counts). Sorted by PID.
rule_own_sessions() {
  awk -v marked="$*" '
    BEGIN { n = split(marked, m, " "); for (i = 1; i <= n; i++) mark[m[i]] = 1 }
    {
      parent[$1] = $2; haschild[$2] = 1
      if (($4 == "sshd:" || $4 == "sshd-session:") && NF == 5 && $5 !~ /^\[/ && ($5 ~ /^[^@]+@[^@]+$/ || $5 == $3))
        sess[$1] = ($5 ~ /@notty$/ || $5 !~ /@/)  # 0: a terminal (always a person)
    }
    END {
      for (p in mark) {
        q = p
        for (hops = 0; hops < 64 && (q in parent); hops++) { if (q in sess) { own[q] = 1; break }; q = parent[q] }
      }
      for (s in sess) { if (s in own) print "own", s; else if (sess[s] && !(s in haschild)) print "bare", s }
    }' | sort -k2,2n
}

# Logins from `LC_ALL=C who -u` (utmp: consoles, serial consoles, mosh, ssh with a terminal).
# The PID is the field two after the login time (HH:MM; the date before it has one or two
# fields). Prints `who PID USER@LINE`; the caller drops entries whose process is gone (stale
# utmp records must not keep a box up forever).
rule_who_sessions() {
  awk '{
    t = 0
    for (i = 3; i <= NF; i++) if ($i ~ /^[0-9][0-9]?:[0-9][0-9]$/) { t = i; break }
    if (t && t + 2 <= NF && $(t + 2) ~ /^[0-9]+$/) print "who", $(t + 2), $1 "@" $2
  }'
}

# /proc/loadavg: the 1-minute load average against THRESHOLD.
rule_loadavg() {
  awk -v th="$1" 'NR == 1 {
    if ($1 !~ /^[0-9.]+$/) { print "unknown load cannot read the load average"; exit }
    if ($1 + 0 >= th + 0) print "active load load average " $1 " (threshold " th ")"
    else print "idle load"
  }'
}

# A cgroup's CPU time in nanoseconds: cgroup v1 cpuacct.usage (ns) or v2 cpu.stat (usage_usec).
rule_cgroup_usage() {
  awk 'NF == 1 && $1 ~ /^[0-9]+$/ { print $1; exit } $1 == "usage_usec" { print $2 "000"; exit }'
}

# cpu-load PREV_NS PREV_T NOW_NS NOW_T THRESHOLD: CPUs busy on average between two samples of
# the box's own cgroup (a container sees the HOST's /proc/loadavg; this is its own load).
rule_cpu_load() {
  awk -v u1="$1" -v t1="$2" -v u2="$3" -v t2="$4" -v th="$5" 'BEGIN {
    if (u1 == "" || t1 == "" || t2 - t1 <= 0 || u2 - u1 < 0) { print "unknown load first CPU sample (measured at the next check)"; exit }
    l = (u2 - u1) / 1e9 / (t2 - t1)
    if (l >= th + 0) printf "active load CPU load %.2f (threshold %s)\n", l, th
    else print "idle load"
  }'
}

# A Jupyter runtime file (jpserver-PID.json / nbserver-PID.json): its scalar fields as
# key=value lines (pid, port, token, base_url, hostname, secure, sock, url).
rule_jupyter_server() {
  tr '\n' ' ' | awk '{
    n = split("pid port token base_url hostname secure sock url", keys, " ")
    for (i = 1; i <= n; i++) {
      re = "\"" keys[i] "\"[ \t]*:[ \t]*(\"[^\"]*\"|[^,} \t]+)"
      if (match($0, re)) {
        v = substr($0, RSTART, RLENGTH); sub(/^"[^"]*"[ \t]*:[ \t]*/, "", v); gsub(/^"|"$/, "", v)
        print keys[i] "=" v
      }
    }
  }'
}

# GET /api/kernels (a JSON array of objects): `active jupyter ...` when a kernel is executing
# now (execution_state busy), else `idle jupyter EPOCH` with the latest last_activity (a kernel
# that ran something 10 minutes ago has been idle for 10 minutes, not since this check), or
# `idle jupyter` when there is no kernel. A kernel left "starting" or "idle" with an old
# last_activity does not keep the box up.
rule_jupyter_kernels() {
  tr '\n' ' ' | awk '
    function civil(y, m, d,   era, yoe, doy, doe) {
      y -= (m <= 2); era = int((y >= 0 ? y : y - 399) / 400); yoe = y - era * 400
      doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
      doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
      return era * 146097 + doe - 719468
    }
    function epoch(s,   rest, off, sg) {
      if (s !~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]:[0-9][0-9]/) return -1
      rest = substr(s, 20); sub(/^[.,][0-9]+/, "", rest); off = 0
      if (rest ~ /^[+-][0-9][0-9]:?[0-9][0-9]$/) {
        sg = substr(rest, 1, 1) == "-" ? -1 : 1; gsub(/[+:-]/, "", rest)
        off = sg * (substr(rest, 1, 2) * 3600 + substr(rest, 3, 2) * 60)
      }
      return civil(substr(s, 1, 4) + 0, substr(s, 6, 2) + 0, substr(s, 9, 2) + 0) * 86400 \
        + substr(s, 12, 2) * 3600 + substr(s, 15, 2) * 60 + substr(s, 18, 2) - off
    }
    function field(obj, key,   re, v) {
      re = "\"" key "\"[ \t]*:[ \t]*\"[^\"]*\""
      if (!match(obj, re)) return ""
      v = substr(obj, RSTART, RLENGTH); sub(/^"[^"]*"[ \t]*:[ \t]*"/, "", v); sub(/"$/, "", v)
      return v
    }
    {
      text = text $0
    }
    END {
      s = text; sub(/^[ \t\r]+/, "", s)
      if (substr(s, 1, 1) != "[") { print "unknown jupyter /api/kernels did not answer with a list"; exit }
      # split the array into its top-level objects (strings may hold braces)
      depth = 0; instr = 0; esc = 0; obj = ""; nk = 0; busy = ""; last = 0
      for (i = 2; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (depth > 0) obj = obj c
        if (instr) { if (esc) esc = 0; else if (c == "\\") esc = 1; else if (c == "\"") instr = 0; continue }
        if (c == "\"") instr = 1
        else if (c == "{") { if (depth == 0) obj = "{"; depth++ }
        else if (c == "}") {
          depth--
          if (depth == 0) {
            nk++; id = substr(field(obj, "id"), 1, 8); st = field(obj, "execution_state")
            t = epoch(field(obj, "last_activity"))
            if (st == "busy" && busy == "") busy = id
            if (t > last) last = t
            obj = ""
          }
        }
      }
      if (busy != "") print "active jupyter kernel " busy " is busy"
      else if (nk == 0) print "idle jupyter"
      else printf "idle jupyter %d\n", last
    }'
}

# Running containers: each line of `docker ps` is one; mlops-env's own (its probe image, or
# label mlops-env.idle=ignore, which a user may also put on a service that should not keep the
# box up) do not count.
rule_containers() {
  awk -F '\t' '
    NF == 0 || $0 ~ /^[ \t]*$/ { next }
    $2 ~ /^mlops-env\/probe(:|$)/ || $4 == "ignore" { next }
    { n++; names = names (names == "" ? "" : ", ") $3 }
    END { if (n) print "active containers " n " running (" names ")"; else print "idle containers" }'
}

# uptime < "UPTIME_LINE @ PID1_STAT_LINE" with CLK_TCK: seconds since PID 1 started (the boot on
# a VM; the container's start in a container, whose /proc/uptime is the host's).
rule_uptime() {
  tr '\n' ' ' | awk -v hz="$1" '{
    split($0, parts, " @ "); split(parts[1], u, " "); s = parts[2]
    sub(/^.*\) /, "", s); n = split(s, f, " ")
    # after the comm field, starttime is field 20 (field 22 of the whole line)
    if (n < 20 || hz <= 0) { print int(u[1]); exit }
    up = u[1] - f[20] / hz
    print (up < 0 ? 0 : int(up))
  }'
}

# decide K=V...: the state machine. Inputs (seconds; empty = none): now, up (uptime), window,
# max_uptime, warn, active (1 = some rule saw activity), last (latest activity epoch a rule
# reported), idle_since, deadline (power-off time announced by a warning), reason.
# Prints action (none|warn|wait|cancel|poweroff), idle_since, deadline, reason (of the pending
# deadline), stop_at and why (idle|cap: what stop_at comes from).
#   - activity resets idle_since; otherwise it starts now, or at the latest reported activity;
#   - stop_at = the earlier of idle_since + window and the moment uptime reaches max_uptime;
#   - from stop_at - warn on: warn once and fix deadline = max(stop_at, now + warn), so the
#     warning always comes at least `warn` seconds before;
#   - at every check until then, and at the deadline, re-check: when the box is no longer due
#     (activity for an idle stop, changed settings), cancel; past the deadline, power off.
rule_decide() {
  local now="" up=0 window=0 max_uptime=0 warn=0 active=0 last=0 idle_since="" deadline="" reason="" a
  for a in "$@"; do
    case "$a" in
      now=*) now=${a#*=} ;; up=*) up=${a#*=} ;; window=*) window=${a#*=} ;;
      max_uptime=*) max_uptime=${a#*=} ;; warn=*) warn=${a#*=} ;; active=*) active=${a#*=} ;;
      last=*) last=${a#*=} ;; idle_since=*) idle_since=${a#*=} ;; deadline=*) deadline=${a#*=} ;;
      reason=*) reason=${a#*=} ;; *) die "decide: unknown input $a" "" 2 ;;
    esac
  done
  for a in now up window max_uptime warn last idle_since deadline; do
    [[ ${!a} =~ ^[0-9]*$ ]] || die "decide: $a must be whole seconds: ${!a}" "" 2
  done
  [ -n "$now" ] || die "decide: now= is required" "" 2
  local stop_at="" why="" action=none idle_at="" cap_at=""
  if [ "${window:-0}" -gt 0 ]; then
    if [ "$active" = 1 ]; then
      idle_since=""
    else
      [ -n "$idle_since" ] || idle_since=$now
      if [ "${last:-0}" -gt "$idle_since" ] && [ "$last" -le "$now" ]; then idle_since=$last; fi
      idle_at=$((idle_since + window))
    fi
  else
    idle_since=""
  fi
  if [ "${max_uptime:-0}" -gt 0 ]; then cap_at=$((now + max_uptime - ${up:-0})); fi
  if [ -n "$cap_at" ] && { [ -z "$idle_at" ] || [ "$cap_at" -le "$idle_at" ]; }; then
    stop_at=$cap_at; why=cap
  elif [ -n "$idle_at" ]; then
    stop_at=$idle_at; why=idle
  fi
  if [ -n "$deadline" ]; then
    if [ -z "$stop_at" ] || [ $((stop_at - warn)) -gt "$now" ]; then
      action=cancel; deadline=""
    elif [ "$now" -ge "$deadline" ]; then
      action=poweroff; reason=$why
    else
      action="wait"; reason=$why
    fi
  elif [ -n "$stop_at" ] && [ "$now" -ge $((stop_at - warn)) ]; then
    action=warn; reason=$why
    deadline=$((now + warn)); [ "$stop_at" -gt "$deadline" ] && deadline=$stop_at
  fi
  [ -n "$deadline" ] || reason=""
  printf 'action=%s\nidle_since=%s\ndeadline=%s\nreason=%s\nstop_at=%s\nwhy=%s\n' \
    "$action" "$idle_since" "$deadline" "$reason" "$stop_at" "$why"
}

rule() {
  local name=${1:-}; shift || true
  case "$name" in
    ps-sessions) rule_ps_sessions ;;
    who-sessions) rule_who_sessions ;;
    own-sessions) rule_own_sessions "$@" ;;
    loadavg) rule_loadavg "${1:?threshold}" ;;
    cgroup-usage) rule_cgroup_usage ;;
    cpu-load) rule_cpu_load "$@" ;;
    jupyter-server) rule_jupyter_server ;;
    jupyter-kernels) rule_jupyter_kernels ;;
    containers) rule_containers ;;
    uptime) rule_uptime "${1:?CLK_TCK}" ;;
    decide) rule_decide "$@" ;;
    *) die "unknown rule: $name" "" 2 ;;
  esac
}

# ----------------------------------------------------------------------------- gathering
bounded() { if command -v timeout >/dev/null 2>&1; then timeout -k 2 "$CMD_TIMEOUT" "$@"; else "$@"; fi; }
alive() { [ -d "$ROOT/proc/$1" ]; }

# is_ours PID: the process runs `SHELL -c SCRIPT mlops-env ...` (mlops-env's command wrapper).
is_ours() {
  local a=()
  mapfile -d '' -t a <"$ROOT/proc/$1/cmdline" 2>/dev/null || return 1
  [ "${a[1]:-}" = -c ] && [ "${a[3]:-}" = mlops-env ]
}

# marked_pids < `ps -eo pid=,ppid=,user:32=,args=`: the processes that are mlops-env's commands.
marked_pids() {
  local pid
  awk '$4 ~ /(^|\/)(ba|da)?sh$/ && $5 == "-c" && index($0, " mlops-env") { print $1 }' |
    while read -r pid; do if is_ours "$pid"; then echo "$pid"; fi; done
}

proc_start() { sed 's/^.*) //' "$ROOT/proc/$1/stat" 2>/dev/null | awk '{ print $20 }'; }

# gather_sessions KNOWN_OWN: the `ssh` verdict, then (when there are some) `mine ssh PID:START...`
# (mlops-env's own session processes, remembered in the state so that the next check knows them even between two
# of their commands). KNOWN_OWN is that line's list from the previous check.
gather_sessions() {
  local known=${1:-} snap="" tree="" own=" " bare pid start item tries=0 out what seen=" " n=0 list="" mine=""
  while :; do
    snap=$( { bounded ps -eo pid=,ppid=,user:32=,args= 2>/dev/null || true; } )
    # shellcheck disable=SC2046  # PIDs: one word each
    tree=$(printf '%s\n' "$snap" | rule_own_sessions $(printf '%s\n' "$snap" | marked_pids))
    # ours at any look is ours (between two of its commands at the last look, say)
    while read -r item pid; do if [ "$item" = own ]; then own+="$pid "; fi; done <<<"$tree"
    for item in $known; do  # remembered: still the same process (PID and start time)?
      pid=${item%%:*}; start=${item#*:}
      if [ -d "$ROOT/proc/$pid" ] && [ "$(proc_start "$pid")" = "$start" ]; then own+="$pid "; fi
    done
    known=""
    bare=""
    while read -r item pid; do
      if [ "$item" = bare ] && [[ $own != *" $pid "* ]]; then bare+="$pid "; fi
    done <<<"$tree"
    if [ -z "$bare" ] || [ "$tries" -ge "$RESAMPLES" ]; then break; fi
    tries=$((tries + 1)); sleep 0.25
  done
  out=$(printf '%s\n' "$snap" | awk 'NF { $2 = ""; print }' | rule_ps_sessions)
  while read -r _ pid what; do
    [ -n "$pid" ] || continue
    if [[ $own == *" $pid "* ]]; then
      mine+="${mine:+ }$pid:$(proc_start "$pid")"; continue
    fi
    n=$((n + 1)); list+="${list:+, }$what"; seen+="${what#*@} "
  done <<<"$out"
  out=$( { bounded who -u 2>/dev/null || true; } | rule_who_sessions)
  while read -r _ pid what; do
    [ -n "$pid" ] || continue
    alive "$pid" || continue
    case "$seen" in *" ${what#*@} "*) continue ;; esac
    n=$((n + 1)); list+="${list:+, }$what"; seen+="${what#*@} "
  done <<<"$out"
  if [ "$n" -gt 0 ]; then echo "active ssh $n session(s) ($list)"; else echo "idle ssh"; fi
  if [ -n "$mine" ]; then echo "mine ssh $mine"; fi
}

in_container() {
  [ -s "$ROOT/run/systemd/container" ] && return 0
  [ -z "$ROOT" ] && command -v systemd-detect-virt >/dev/null 2>&1 && systemd-detect-virt -cq
}

cgroup_usage() {
  local f
  for f in "$ROOT/sys/fs/cgroup/cpuacct/cpuacct.usage" "$ROOT/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage" \
           "$ROOT/sys/fs/cgroup/cpu.stat"; do
    if [ -r "$f" ]; then rule_cgroup_usage <"$f"; return 0; fi
  done
  return 1
}

# In a container: "NS T", the box's own CPU time and the (host's) uptime; else nothing.
cpu_sample() {
  local usage
  if in_container && usage=$(cgroup_usage) && [ -n "$usage" ]; then
    echo "$usage $(awk '{ print $1 }' "$ROOT/proc/uptime")"
  fi
}

# gather_load THRESHOLD PREV_SAMPLE SAMPLE
gather_load() {
  local th=$1 prev_ns="" prev_t="" ns="" t=""
  read -r prev_ns prev_t <<<"${2:-}" || true
  read -r ns t <<<"${3:-}" || true
  if [ -n "$ns" ]; then
    rule_cpu_load "$prev_ns" "$prev_t" "$ns" "$t" "$th"
  else
    rule_loadavg "$th" <"$ROOT/proc/loadavg"
  fi
}

gather_containers() {
  command -v docker >/dev/null 2>&1 || { echo "idle containers"; return 0; }
  [ -S "$ROOT/var/run/docker.sock" ] || [ -S "$ROOT/run/docker.sock" ] || { echo "idle containers"; return 0; }
  local out
  if ! out=$(bounded docker ps --no-trunc --format '{{.ID}}\t{{.Image}}\t{{.Names}}\t{{.Label "mlops-env.idle"}}' 2>&1); then
    echo "unknown containers docker ps failed: ${out##*$'\n'}"; return 0
  fi
  printf '%s\n' "$out" | rule_containers
}

# Every Jupyter server of every user, from its runtime file (what `jupyter server list` reads):
# stale files (the server's process is gone) are skipped. The token goes to curl on stdin
# (`-K -`), never on a command line that `ps` would show.
gather_jupyter() {
  local f info pid port token base host secure sock url code body verdict best=0 n=0 why=""
  local files=()
  for f in "$ROOT"/root/.local/share/jupyter/runtime/*server-*.json \
           "$ROOT"/home/*/.local/share/jupyter/runtime/*server-*.json; do
    [ -f "$f" ] && files+=("$f")
  done
  for f in "${files[@]+"${files[@]}"}"; do
    case "${f##*/}" in jpserver-*.json|nbserver-*.json) ;; *) continue ;; esac
    info=$(rule_jupyter_server <"$f")
    pid=$(printf '%s\n' "$info" | lookup pid); port=$(printf '%s\n' "$info" | lookup port)
    if [[ ! $pid =~ ^[0-9]+$ ]] || ! alive "$pid"; then continue; fi
    token=$(printf '%s\n' "$info" | lookup token); base=$(printf '%s\n' "$info" | lookup base_url)
    host=$(printf '%s\n' "$info" | lookup hostname); secure=$(printf '%s\n' "$info" | lookup secure)
    sock=$(printf '%s\n' "$info" | lookup sock)
    n=$((n + 1))
    command -v curl >/dev/null 2>&1 || { why="server pid $pid: curl is not installed"; continue; }
    case "$host" in ''|0.0.0.0|'*'|localhost|'::'|'[::]') host=127.0.0.1 ;; *:*) host="[$host]" ;; esac
    base=${base:-/}; base=${base%/}/
    local proto=http opts=(-sS -m 5 -K -)
    [ "$secure" = true ] && { proto=https; opts+=(-k); }
    if [ -n "$sock" ]; then opts+=(--unix-socket "$sock"); url="http://localhost${base}api/kernels"
    else url="$proto://$host:$port${base}api/kernels"; fi
    body=$(printf 'header = "Authorization: token %s"\nwrite-out = "\\n%%{http_code}"\n' "$token" |
           bounded curl "${opts[@]}" "$url" 2>&1) || true
    code=${body##*$'\n'}; body=${body%$'\n'*}
    if [ "$code" != 200 ]; then why="server pid $pid (port $port) did not answer /api/kernels (HTTP ${code:-none})"; continue; fi
    verdict=$(printf '%s\n' "$body" | rule_jupyter_kernels)
    case "$verdict" in
      active*) echo "$verdict (server pid $pid)"; return 0 ;;
      unknown*) why="server pid $pid: ${verdict#unknown jupyter }" ;;
      "idle jupyter "*) [ "${verdict##* }" -gt "$best" ] && best=${verdict##* } ;;
    esac
  done
  if [ -n "$why" ]; then echo "unknown jupyter $why; counted as activity (turn the rule off with jupyter=off)"
  elif [ "$best" -gt 0 ]; then echo "idle jupyter $best"
  else echo "idle jupyter"; fi
}

# gather SETTINGS PREV_CPU_SAMPLE CPU_SAMPLE KNOWN_OWN: one verdict line per rule that is on
# (plus the ssh rule's `mine` line).
gather() {
  local s=$1 prev=${2:-} cur=${3:-} known=${4:-}
  [ "$(printf '%s\n' "$s" | lookup ssh)" = on ] && gather_sessions "$known"
  [ "$(printf '%s\n' "$s" | lookup jupyter)" = on ] && gather_jupyter
  [ "$(printf '%s\n' "$s" | lookup load)" = on ] && gather_load "$(printf '%s\n' "$s" | lookup load_threshold)" "$prev" "$cur"
  [ "$(printf '%s\n' "$s" | lookup containers)" = on ] && gather_containers
  return 0
}

# ----------------------------------------------------------------------------- state, log
boot_marker() {
  local id start
  id=$(cat "$ROOT/proc/sys/kernel/random/boot_id" 2>/dev/null || echo none)
  start=$(sed 's/^.*) //' "$ROOT/proc/1/stat" 2>/dev/null | awk '{ print $20 }')
  echo "$id:${start:-0}"
}

uptime_s() {
  local hz
  hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
  printf '%s @ %s\n' "$(cat "$ROOT/proc/uptime")" "$(cat "$ROOT/proc/1/stat" 2>/dev/null || true)" | rule_uptime "$hz"
}

state_get() { if [ -f "$STATE" ]; then lookup "$1" <"$STATE"; fi; }

log() {
  local msg="$*"
  if [ -n "${INVOCATION_ID:-}" ] || ! command -v logger >/dev/null 2>&1; then
    echo "$msg"  # under systemd, stdout is the journal (SyslogIdentifier=mlops-env-idle)
  else
    logger -t "$TAG" -- "$msg" 2>/dev/null || echo "$msg"
  fi
}

event() {
  mkdir -p "$STATE_DIR"
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$EVENTS"
  if [ "$(wc -l <"$EVENTS")" -gt 200 ]; then
    tail -n 100 "$EVENTS" >"$EVENTS.tmp" && mv -f "$EVENTS.tmp" "$EVENTS"
  fi
}

human() {
  local s=$1
  if [ "$s" -ge 7200 ]; then echo "$((s / 3600)) h $(((s % 3600) / 60)) min"
  elif [ "$s" -ge 120 ]; then echo "$((s / 60)) min"
  else echo "$s s"; fi
}

clock() { date -u -d "@$1" +%H:%M:%S 2>/dev/null || echo "@$1"; }

broadcast() {
  if command -v wall >/dev/null 2>&1; then
    printf '%s\n' "$*" | bounded wall 2>/dev/null || true
  fi
}

write_state() {
  mkdir -p "$STATE_DIR"
  printf '%s\n' "$@" >"$STATE.tmp"
  chmod 0644 "$STATE.tmp"
  mv -f "$STATE.tmp" "$STATE"
}

tick() {
  [ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "tick must run as root" "" 2
  mkdir -p "$STATE_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE_DIR/lock"
    flock -n 9 || { log "another check is running"; return 0; }
  fi
  local s now up window max_uptime warn boot
  if ! s=$(merge 2>&1); then
    log "settings unreadable, doing nothing: ${s#mlops-error: }"; event "error settings: ${s#mlops-error: }"
    return 0
  fi
  s=$(effective <<<"$s")
  now=${MLOPS_ENV_IDLE_NOW:-$(date +%s)}
  window=$(printf '%s\n' "$s" | lookup window)
  max_uptime=$(printf '%s\n' "$s" | lookup max_uptime)
  warn=$(printf '%s\n' "$s" | lookup warn)
  up=$(uptime_s)
  boot=$(boot_marker)
  local idle_since="" deadline="" reason="" prev_cpu="" known_own="" own_ssh=""
  if [ "$(state_get boot)" = "$boot" ]; then  # a new boot starts from scratch
    idle_since=$(state_get idle_since); deadline=$(state_get deadline)
    reason=$(state_get reason); prev_cpu=$(state_get cpu); known_own=$(state_get own_ssh)
  fi
  if [ "$window" = 0 ] && [ "$max_uptime" = 0 ]; then
    write_state "boot=$boot" "last_tick=$now" "uptime=$up" "activity=idle-stop off"
    log "off (window=0, max_uptime=0)"
    return 0
  fi

  local CPU_SAMPLE verdicts line active=0 last=0 seen="" idle_rules="" r e out
  CPU_SAMPLE=$(cpu_sample)
  verdicts=$(gather "$s" "$prev_cpu" "$CPU_SAMPLE" "$known_own")
  while IFS= read -r line; do
    case "$line" in
      "mine ssh"*) own_ssh=${line#mine ssh}; own_ssh=${own_ssh# } ;;
      active\ *|unknown\ *) active=1; seen+="${seen:+; }${line#* }" ;;
      idle\ *)
        read -r _ r e <<<"$line"  # "idle RULE [EPOCH]"
        idle_rules+="${idle_rules:+, }no $r"
        if [[ ${e:-} =~ ^[0-9]+$ ]] && [ "$e" -gt "$last" ]; then last=$e; fi ;;
    esac
  done <<<"$verdicts"

  local d action stop_at why
  d=$(rule_decide "now=$now" "up=$up" "window=$window" "max_uptime=$max_uptime" "warn=$warn" \
      "active=$active" "last=$last" "idle_since=$idle_since" "deadline=$deadline" "reason=$reason")
  action=$(lookup action <<<"$d"); idle_since=$(lookup idle_since <<<"$d")
  deadline=$(lookup deadline <<<"$d"); reason=$(lookup reason <<<"$d"); stop_at=$(lookup stop_at <<<"$d")
  why=$(lookup why <<<"$d")

  local what msg
  if [ "$window" = 0 ]; then what="uptime $(human "$up") (idle stop off)"
  elif [ "$active" = 1 ]; then what="active: $seen"
  else what="idle $(human $((now - idle_since)))/$(human "$window") (${idle_rules:-no rule on})"; fi
  write_state "boot=$boot" "last_tick=$now" "uptime=$up" "idle_since=$idle_since" "deadline=$deadline" \
    "reason=$reason" "stop_at=$stop_at" "stop_reason=$why" "cpu=$CPU_SAMPLE" "own_ssh=$own_ssh" "activity=$what"

  case "$action" in
    warn)
      if [ "$reason" = cap ]; then
        msg="mlops-env: this machine reached its uptime limit ($(human "$max_uptime"), --max-hours) and will power off at $(clock "$deadline") UTC, in $(human $((deadline - now))). Save your work now. Its disk is kept. To keep it running until the next boot: sudo systemctl stop mlops-env-idle.timer"
      else
        msg="mlops-env: this machine has been idle for $(human $((now - idle_since))) and will power off at $(clock "$deadline") UTC, in $(human $((deadline - now))), to save money. Its disk is kept. Any SSH login, busy CPU, Jupyter kernel run or running container cancels this; \`mlops-env idle-stop NAME off\` turns it off."
      fi
      broadcast "$msg"
      log "warning sent: power-off at $(clock "$deadline") UTC ($reason); $what"
      event "warn $reason deadline=$deadline"
      ;;
    cancel)
      broadcast "mlops-env: power-off cancelled ($what)."
      log "power-off cancelled: $what"
      event "cancel $what"
      ;;
    poweroff)
      log "powering off now ($reason): $what"
      event "poweroff $reason"
      broadcast "mlops-env: powering off now ($([ "$reason" = cap ] && echo "uptime limit" || echo "idle for $(human $((now - idle_since)))"))."
      if ! out=$(systemctl poweroff 2>&1); then
        log "systemctl poweroff failed: $out"; event "error poweroff failed: $out"
      fi
      ;;
    wait) log "power-off at $(clock "$deadline") UTC ($reason); $what" ;;
    *)
      if [ -n "$stop_at" ]; then log "$what; power-off at $(clock "$stop_at") UTC at the earliest ($why)"
      else log "$what"; fi
      ;;
  esac
}

status() {
  local s
  s=$(merge 2>/dev/null | effective) || s=""
  echo "agent=installed"
  printf '%s\n' "$s" | sed '/^$/d; s/^/setting_/'
  echo "now=$(date +%s)"
  echo "boot_current=$([ "$(state_get boot)" = "$(boot_marker)" ] && echo 1 || echo 0)"
  echo "uptime_now=$(uptime_s)"
  [ -f "$STATE" ] && cat "$STATE"
  if [ -f "$EVENTS" ]; then tail -n 5 "$EVENTS" | sed 's/^/event=/'; fi
  return 0
}

mode=${1:-}; shift || true
case "$mode" in
  tick) tick ;;
  status) status ;;
  settings) settings ;;
  merge) merge "$@" ;;
  effective) s=$(merge "$@") && effective <<<"$s" ;;
  configure) configure "$@" ;;
  gather) s=$(merge) && gather "$(effective <<<"$s")" "$(state_get cpu)" "$(cpu_sample)" "$(state_get own_ssh)" ;;
  rule) rule "$@" ;;
  *) die "usage: idle-agent tick|status|settings|merge|configure|gather|rule NAME" "" 2 ;;
esac
