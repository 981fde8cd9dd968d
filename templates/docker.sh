#!/usr/bin/env bash
# mlops-env step "docker": Docker engine + compose, service running, the login user able to
# run containers without sudo.
#
# usage: docker.sh check  [--user USER]           (as the user, read-only; default: the caller)
#        docker.sh verify [--user USER]           (as the user, in a fresh login: runs a container)
#        docker.sh apply  --user USER [--source distro|docker]   (as root)
# Exit: 0 done, 1 not done/failed, 3 unsupported OS.
set -euo pipefail
# Test seam: unit tests point this at a fixture file; on a box it is always /etc/os-release.
OS_RELEASE=${MLOPS_ENV_OS_RELEASE:-/etc/os-release}

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }
say() { echo "mlops: $*"; }

# Docker's apt key, as Docker publishes it (https://docs.docker.com/engine/install/): the
# downloaded key is installed only when it is exactly this key.
DOCKER_KEY_FPR=9DC858229FC7DD38854AE2D88D81803C0EBFCD88

# apt_get / apt_reason: apt's own reason for a failure; mlops_tmpdir: $MLOPS_TMPD (templates/lib/apt.sh)
# shellcheck source=lib/apt.sh
. "${BASH_SOURCE[0]%/*}/lib/apt.sh"
lists_fresh() { find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | grep -q .; }
APT_HINT="fix what apt says on the box (its sources in /etc/apt, a held dpkg lock, a full disk?), then run \`mlops-env up\` again"

mode=${1:-}; shift || true
TARGET_USER=""; SOURCE=distro
while [ $# -gt 0 ]; do
  case "$1" in
    --user) TARGET_USER=$2; shift 2 ;;
    --source) SOURCE=$2; shift 2 ;;
    *) die "unknown argument: $1" "" 2 ;;
  esac
done
[ -n "$TARGET_USER" ] || TARGET_USER=$(id -un)
PROBE_IMAGE=mlops-env/probe:1
COMPOSE=""
VERIFIED="$HOME/.mlops-env/docker-verified"

compose_version() {
  docker compose version --short 2>/dev/null && return 0
  docker-compose version --short 2>/dev/null && return 0
  return 1
}

daemon_active() {
  if [ -d /run/systemd/system ]; then
    systemctl is-active --quiet docker
  else
    pgrep -x dockerd >/dev/null
  fi
}

in_group() { id -nG "$TARGET_USER" 2>/dev/null | tr ' ' '\n' | grep -qx docker; }

# Prints one line per problem (nothing when docker is usable by the user in this session).
problems() {
  if ! command -v docker >/dev/null 2>&1; then echo "docker is not installed"; return; fi
  [ -n "$COMPOSE" ] || echo "docker compose is not installed"
  daemon_active || echo "the docker daemon is not running"
  if ! in_group; then
    echo "$TARGET_USER is not in the docker group"
  elif ! docker info >/dev/null 2>&1; then
    echo "$TARGET_USER cannot reach the docker daemon in this session (log out and in again)"
  fi
}

summary() {
  say "docker $(docker version --format '{{.Server.Version}}' 2>/dev/null), compose $COMPOSE"
}

do_check() {
  COMPOSE=$(compose_version | head -n1 || true)
  local p; p=$(problems)
  # Proven once by `verify` (a container run as the user, no sudo, in a fresh login).
  if [ -z "$p" ] && [ ! -f "$VERIFIED" ]; then p="no container has been run as $TARGET_USER yet"; fi
  if [ -n "$p" ]; then
    say "$(echo "$p" | paste -sd ';' -)"; exit 1
  fi
  summary
}

probe_image() {
  # A container image made on the box itself, for boxes without a registry: the echo binary
  # and the shared libraries it needs, imported as a one-layer image.
  docker image inspect "$PROBE_IMAGE" >/dev/null 2>&1 && return 0
  local bin files
  bin=$(readlink -f /bin/echo)
  files=$(
    echo "${bin#/}"
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sed 's|^/||'
  )
  # shellcheck disable=SC2086 # one path per word
  tar -C / -chf - $files 2>/dev/null |
    docker import -c "CMD [\"$bin\", \"ok\"]" - "$PROBE_IMAGE" >/dev/null
}

do_verify() {
  COMPOSE=$(compose_version | head -n1 || true)
  local p; p=$(problems)
  [ -z "$p" ] || die "$(echo "$p" | paste -sd ';' -)" "run \`mlops-env up\` again, or see \`mlops-env doctor\`"
  local out
  if docker image inspect hello-world >/dev/null 2>&1 || timeout 60 docker pull -q hello-world >/dev/null 2>&1; then
    out=$(docker run --rm hello-world 2>&1) || die "docker run hello-world failed: ${out##*$'\n'}" "see \`journalctl -u docker\` on the box"
    say "ran hello-world as $TARGET_USER without sudo"
  else
    probe_image || die "could not build the local probe image" "see \`journalctl -u docker\` on the box"
    out=$(docker run --rm --network none "$PROBE_IMAGE" 2>&1) || die "docker run failed: ${out##*$'\n'}" "see \`journalctl -u docker\` on the box"
    [ "$out" = ok ] || die "the probe container printed ${out:0:80}, expected ok" ""
    say "ran a container (local probe image, no registry) as $TARGET_USER without sudo"
  fi
  mkdir -p "$(dirname "$VERIFIED")"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$VERIFIED"
}

os_field() { sed -n "s/^$1=//p" "$OS_RELEASE" | tr -d '"' | head -n1; }

# The engine's own last error line (why it did not start): from the journal of its unit
# under systemd (messages of dockerd itself, not systemd's about it), else from its log file.
daemon_reason() {
  local since=$1 lines=""
  if [ -d /run/systemd/system ] && command -v journalctl >/dev/null 2>&1; then
    # (with --since, journalctl's -n counts from the start: tail instead)
    lines=$(journalctl _SYSTEMD_UNIT=docker.service --since "@$since" --no-pager -o cat 2>/dev/null | tail -n 300 || true)
  fi
  if [ -z "$lines" ] && [ -r /var/log/docker.log ]; then lines=$(tail -n 300 /var/log/docker.log); fi
  {
    printf '%s\n' "$lines" | grep -E '^(failed to start daemon|Error starting daemon)|level=(fatal|error)' ||
      printf '%s\n' "$lines" | grep -iE 'error|fail' | grep -vE 'level=(info|debug|warning)'
  } | tail -n 1 | sed -E -e 's/^time="[^"]*" level=[a-z]+ msg="(.*)"( [a-zA-Z_.-]+=.*)?$/\1/' \
      -e 's/^(failed to start daemon|Error starting daemon): //' | cut -c1-400 || true
}

# Docker's apt key, checked before apt trusts it: one primary key, Docker's fingerprint.
add_docker_repo() {
  local id=$1 url="https://download.docker.com/linux/$1/gpg" fprs
  say "adding Docker's apt repository"
  mlops_tmpdir
  curl -fsSL "$url" -o "$MLOPS_TMPD/docker.asc" ||
    die "cannot download Docker's apt key from $url" "check the box's internet access (HTTPS to download.docker.com), or use --docker-source distro" 4
  if ! command -v gpg >/dev/null 2>&1; then
    say "installing gpg (to check Docker's apt key)"
    lists_fresh || apt_get update || die "apt-get update failed: $(apt_reason $?)" "$APT_HINT"
    apt_get install -y --no-install-recommends gpg || die "apt-get install gpg failed: $(apt_reason $?)" "$APT_HINT"
  fi
  mkdir -m 0700 "$MLOPS_TMPD/gnupg"
  fprs=$(GNUPGHOME="$MLOPS_TMPD/gnupg" gpg --batch --no-tty --show-keys --with-colons "$MLOPS_TMPD/docker.asc" 2>/dev/null |
    awk -F: '$1 == "pub" { want = 1; next } want && $1 == "fpr" { print $10; want = 0 }' | paste -sd ' ' - || true)
  if [ "$fprs" != "$DOCKER_KEY_FPR" ]; then
    die "the key from $url is not Docker's apt key: it has ${fprs:+fingerprint }${fprs:-no OpenPGP key}, expected $DOCKER_KEY_FPR" \
      "nothing was installed. Something between the box and download.docker.com changed the download (a proxy?); check it, or use --docker-source distro" 8
  fi
  install -m 0755 -d /etc/apt/keyrings
  install -m 0644 "$MLOPS_TMPD/docker.asc" /etc/apt/keyrings/docker.asc
  echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/$id $(os_field VERSION_CODENAME) stable" \
    > /etc/apt/sources.list.d/docker.list
}

do_apply() {
  [ "$(id -u)" = 0 ] || die "docker.sh apply must run as root" "" 2
  export DEBIAN_FRONTEND=noninteractive
  local id; id=$(os_field ID)
  local t0; t0=$(date +%s)
  if ! command -v docker >/dev/null 2>&1 || ! compose_version >/dev/null; then
    if [ "$SOURCE" = docker ]; then
      add_docker_repo "$id"
      apt_get update || die "apt-get update failed: $(apt_reason $?)" "$APT_HINT"
      say "installing docker-ce and the compose plugin"
      apt_get install -y docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin ||
        die "apt-get install docker-ce failed: $(apt_reason $?)" "$APT_HINT"
    else
      # Recommends are skipped on purpose: they pull in needrestart, which restarts services
      # behind the user's back after every apt run. The useful ones are named: apparmor (the
      # engine needs its parser where the kernel enforces AppArmor), xz-utils for image import.
      local pkgs=(docker.io apparmor xz-utils)
      case "$id" in
        ubuntu) pkgs+=(docker-compose-v2) ;;
        debian) pkgs+=(docker-compose) ;;
        *) die "unsupported OS for Docker: $id" "use Ubuntu 22.04/24.04 or Debian 12" 3 ;;
      esac
      # The base step has usually just refreshed the lists: skip a second update then.
      lists_fresh || apt_get update || die "apt-get update failed: $(apt_reason $?)" "$APT_HINT"
      say "installing ${pkgs[*]}"
      local rc=0
      apt_get install -y --no-install-recommends "${pkgs[@]}" || rc=$?
      if [ "$rc" != 0 ]; then
        [ "$id" = ubuntu ] || die "apt-get install ${pkgs[*]} failed: $(apt_reason "$rc")" "$APT_HINT"
        # Older Ubuntu images may lack docker-compose-v2 in their pockets: fall back to v1.
        apt_get install -y --no-install-recommends docker.io apparmor xz-utils docker-compose ||
          die "apt-get install docker.io docker-compose failed: $(apt_reason $?)" "$APT_HINT"
      fi
    fi
  fi
  say "starting the Docker engine"
  if [ -d /run/systemd/system ]; then
    # an engine that failed before (an earlier run) may be at systemd's start limit: try afresh
    systemctl reset-failed docker >/dev/null 2>&1 || true
    systemctl enable --now docker >/dev/null 2>&1 || systemctl start docker 2>&1 || true
  else
    service docker start 2>&1 || true
  fi
  local i
  for i in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    # An engine that keeps failing is given up on by systemd (its start limit): no use waiting.
    if [ -d /run/systemd/system ]; then
      systemctl is-failed --quiet docker 2>/dev/null && break
    elif [ "$i" -ge 5 ] && ! pgrep -x dockerd >/dev/null; then
      break
    fi
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    local why; why=$(daemon_reason "$t0")
    die "the Docker engine did not start${why:+: $why}" "see \`journalctl -u docker\` on the box (\`/var/log/docker.log\` without systemd)"
  fi
  getent group docker >/dev/null || groupadd docker
  if ! in_group; then
    say "adding $TARGET_USER to the docker group"
    usermod -aG docker "$TARGET_USER"
  fi
  say "docker installed and running"
}

case "$mode" in
  check) do_check ;;
  verify) do_verify ;;
  apply) do_apply ;;
  *) die "usage: docker.sh check|verify|apply --user USER" "" 2 ;;
esac
