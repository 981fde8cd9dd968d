#!/usr/bin/env bash
# mlops-env `smoke-test NAME --serve`: the trained model as a web service in Docker on the box.
#
# usage: serve.sh up --tag TAG --port PORT --base-image IMAGE --python PY
#        serve.sh down [--tag TAG]
# up: builds mlops-env/ride-duration:TAG from a generated build context (python3 base image +
# serve_app.py + model.json, no pip), starts it with docker compose (v2 plugin or v1
# docker-compose) publishing 127.0.0.1:PORT, then runs serve_check.py with PY: /health within
# 30 s, every validation ride of serve-rides.json equal to the model's prediction to 1e-9,
# p50/p99 latency. On success the service stays up (the caller queries it through the SSH
# connection, then runs `down` unless --keep-serving). On any failure nothing is left running.
# down: stops and removes the service, its network and its image (the base image stays).
#
# Files: ~/.mlops-env/serve_app.py and serve_check.py (uploaded by mlops-env), the model and
# rides in ~/.mlops-env/smoke/report/, the generated context and compose file in
# ~/.mlops-env/serve/. A run waits for an earlier one still running on the box (flock), and
# first removes whatever a killed earlier run left (containers labelled mlops-env.serve=1,
# the compose project's network, older ride-duration images).
#
# Talks back with `mlops: ...` and `mlops-serve: KEY=VALUE` (stdout), the check's JSON line
# (stdout), `mlops-error:` / `mlops-hint:` / `mlops-code:` / `mlops-detail:` (stderr).
# Exit: 0 ok, 1 failed (build, start, not answering), 2 usage, 3 base image not found,
# 4 no Docker or compose, 8 predictions differ, 10 port busy.
set -euo pipefail

die() {
  echo "mlops-code: $1" >&2
  echo "mlops-error: $2" >&2
  [ -n "${3:-}" ] && echo "mlops-hint: $3" >&2
  exit "${4:-1}"
}
say() { echo "mlops: $*"; }
detail() { while IFS= read -r line; do echo "mlops-detail: $line" >&2; done; }

mode=${1:-}; shift || true
TAG=""; PORT=9696; BASE="python:3.11-slim"; PY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --base-image) BASE=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    *) die usage "unknown argument: $1" "" 2 ;;
  esac
done
case "$PY" in \~/*) PY="$HOME/${PY#\~/}" ;; esac
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then die usage "bad port: $PORT" "" 2; fi
[ -z "$TAG" ] || [[ "$TAG" =~ ^[a-f0-9]{1,64}$ ]] || die usage "bad tag: $TAG" "" 2
[[ "$BASE" =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]] || die usage "bad base image name: $BASE" "" 2

PROJECT=mlops-env-serve
REPO=mlops-env/ride-duration
STATE="$HOME/.mlops-env"
DIR="$STATE/serve"
REPORT="$STATE/smoke/report"
COMPOSE_FILE="$DIR/compose.yaml"
INSTALL_HINT="the docker step of \`mlops-env up\` installs Docker and compose: run \`mlops-env up\` for this workstation again"

now() { echo "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

DOCKER=(docker)
COMPOSE=()
find_docker() {
  command -v docker >/dev/null 2>&1 || die no-docker "Docker is not installed on the box" "$INSTALL_HINT" 4
  if ! docker info >/dev/null 2>&1; then
    if sudo -n docker info >/dev/null 2>&1; then
      DOCKER=(sudo -n docker)
    else
      die no-docker "$(id -un) cannot reach the Docker daemon on the box" \
        "$INSTALL_HINT (it starts the service and adds $(id -un) to the docker group)" 4
    fi
  fi
  if "${DOCKER[@]}" compose version >/dev/null 2>&1; then
    COMPOSE=("${DOCKER[@]}" compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    if [ "${DOCKER[0]}" = sudo ]; then COMPOSE=(sudo -n docker-compose); else COMPOSE=(docker-compose); fi
  else
    die no-compose "docker compose is not installed on the box (neither the v2 plugin nor docker-compose)" "$INSTALL_HINT" 4
  fi
}

# Remove what any earlier run left: the project's containers and network, and every
# ride-duration image except KEEP (the tag about to be built, if any).
# GRACEFUL=1 (down): a running service is stopped by compose first; otherwise (a leftover of
# a killed run, or a failure) it is removed directly: one compose v1 start-up less (~1 s).
cleanup() {
  local keep=${1:-} ids img
  ids=$("${DOCKER[@]}" ps -aq --filter label=mlops-env.serve=1)
  if [ -n "$ids" ] && [ "${GRACEFUL:-0}" = 1 ] && [ -f "$COMPOSE_FILE" ]; then
    "${COMPOSE[@]}" -p "$PROJECT" -f "$COMPOSE_FILE" down --remove-orphans -t 3 >/dev/null 2>&1 || true
  fi
  ids=$("${DOCKER[@]}" ps -aq --filter label=mlops-env.serve=1)
  # shellcheck disable=SC2086 # one id per word
  [ -z "$ids" ] || "${DOCKER[@]}" rm -f $ids >/dev/null 2>&1 || true
  "${DOCKER[@]}" network rm "${PROJECT}_default" >/dev/null 2>&1 || true
  for img in $("${DOCKER[@]}" images --format '{{.Repository}}:{{.Tag}}' "$REPO"); do
    [ "$img" = "$REPO:$keep" ] || "${DOCKER[@]}" rmi "$img" >/dev/null 2>&1 || true
  done
}

# Who listens on PORT: a container, a named process, or "" when the port is free.
port_holder() {
  local c line proc
  c=$("${DOCKER[@]}" ps --filter "publish=$PORT" --format '{{.Names}} (image {{.Image}})' | head -n1)
  if [ -n "$c" ]; then echo "the container $c"; return; fi
  if command -v ss >/dev/null 2>&1; then
    line=$(ss -Hltnp "sport = :$PORT" 2>/dev/null | head -n1)
    if [ -n "$line" ]; then
      proc=$(grep -o 'users:(("[^"]*",pid=[0-9]*' <<<"$line" | head -n1 |
        sed 's/users:(("\([^"]*\)",pid=\([0-9]*\)/the process \1 (pid \2)/' || true)
      echo "${proc:-a process of another user (sudo ss -ltnp \"sport = :$PORT\" names it)}"
      return
    fi
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then echo "an unknown process"; fi
}

STARTED=0
on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ "$STARTED" = 1 ]; then cleanup; fi
  exit "$rc"
}

do_up() {
  [ -n "$TAG" ] || die usage "--tag is required" "" 2
  local out holder
  find_docker
  mkdir -p "$DIR"
  exec 9>"$STATE/serve.lock"
  flock -w 600 9 || die busy "another serve run on the box holds $STATE/serve.lock" "wait for it, then run again" 10
  if [ ! -f "$REPORT/model.json" ] || [ ! -f "$REPORT/serve-rides.json" ]; then
    die no-model "no exported model in $REPORT" "run the smoke test first (it exports model.json)" 1
  fi
  for f in serve_app.py serve_check.py; do
    [ -f "$STATE/$f" ] || die no-program "$STATE/$f is missing" "" 1
  done
  [ -x "$PY" ] || PY=$(command -v python3 || true)
  [ -n "$PY" ] || die no-python "no python on the box to run the check" "run \`mlops-env up\` (its conda step)" 4

  cleanup "$TAG"
  holder=$(port_holder)
  [ -z "$holder" ] || die port-busy "port $PORT on the box is in use by $holder" \
    "stop it, or choose another port with --serve-port" 10

  if ! "${DOCKER[@]}" image inspect "$BASE" >/dev/null 2>&1; then
    say "pulling the base image $BASE"
    if ! out=$(timeout 300 "${DOCKER[@]}" pull -q "$BASE" 2>&1); then
      die base-image "the base image $BASE cannot be pulled on the box: ${out##*$'\n'}" \
        "pass --serve-base-image IMAGE: a registry mirror, or an image with python3 already on the box" 3
    fi
  fi

  trap on_exit EXIT
  trap 'exit 130' INT TERM HUP
  local ctx="$DIR/context" image="$REPO:$TAG"
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp "$STATE/serve_app.py" "$REPORT/model.json" "$ctx/"
  cat > "$ctx/Dockerfile" <<EOF
# generated by mlops-env (smoke-test --serve): stdlib-only service, no pip
FROM $BASE
COPY serve_app.py model.json /srv/mlops-env/
LABEL mlops-env.serve="1" mlops-env.model="$TAG"
USER 65534:65534
EXPOSE 9696
CMD ["python3", "/srv/mlops-env/serve_app.py", "--model", "/srv/mlops-env/model.json", "--host", "0.0.0.0", "--port", "9696"]
EOF
  cat > "$COMPOSE_FILE" <<EOF
# generated by mlops-env (smoke-test --serve)
version: "3.8"
services:
  predict:
    image: $image
    ports:
      - "127.0.0.1:$PORT:9696"
    labels:
      mlops-env.serve: "1"
    restart: "no"
EOF

  say "building $image from $BASE"
  local t0 rc=0
  t0=$(now)
  STARTED=1  # from here a failure removes what was made
  "${DOCKER[@]}" build -t "$image" "$ctx" >"$DIR/build.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 12 "$DIR/build.log" | detail
    die build-failed "docker build of $image failed (exit $rc)" "the build's last lines are above; full log: $DIR/build.log on the box" 1
  fi
  echo "mlops-serve: build_seconds=$(since "$t0")"
  echo "mlops-serve: image=$image"

  say "starting the service with ${COMPOSE[*]} on 127.0.0.1:$PORT"
  t0=$(now)
  if ! out=$("${COMPOSE[@]}" -p "$PROJECT" -f "$COMPOSE_FILE" up -d --no-build 2>&1); then
    echo "$out" | tail -n 8 | detail
    holder=$(port_holder)
    [ -z "$holder" ] || die port-busy "port $PORT on the box is in use by $holder" "stop it, or choose another port with --serve-port" 10
    die start-failed "docker compose could not start the service" "its last lines are above" 1
  fi
  local check rc_check=0
  check=$("$PY" "$STATE/serve_check.py" --url "http://127.0.0.1:$PORT" --rides "$REPORT/serve-rides.json" \
    --wait 30 --tolerance 1e-9) || rc_check=$?
  echo "$check"
  echo "mlops-serve: start_seconds=$(since "$t0")"
  echo "mlops-serve: compose=${COMPOSE[*]}"
  if [ "$rc_check" != 0 ]; then
    local cid
    cid=$("${DOCKER[@]}" ps -aq --filter label=mlops-env.serve=1 | head -n1)
    if [ -n "$cid" ]; then "${DOCKER[@]}" logs --tail 15 "$cid" 2>&1 | detail; fi
    case "$rc_check" in
      8) die predictions-differ "the service's predictions differ from the model's" "see the message above" 8 ;;
      *) die not-answering "the service did not answer on 127.0.0.1:$PORT" "the container's last log lines are above" 1 ;;
    esac
  fi
  STARTED=0
  say "service up: http://127.0.0.1:$PORT"
}

do_down() {
  find_docker
  mkdir -p "$DIR"
  exec 9>"$STATE/serve.lock"
  flock -w 600 9 || true
  GRACEFUL=1 cleanup
  say "service stopped and removed"
}

case "$mode" in
  up) do_up ;;
  down) do_down ;;
  *) die usage "usage: serve.sh up|down ..." "" 2 ;;
esac
