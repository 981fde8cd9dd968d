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

do_apply() {
  [ "$(id -u)" = 0 ] || die "docker.sh apply must run as root" "" 2
  export DEBIAN_FRONTEND=noninteractive
  local apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold -q)
  local id; id=$(os_field ID)
  if ! command -v docker >/dev/null 2>&1 || ! compose_version >/dev/null; then
    if [ "$SOURCE" = docker ]; then
      say "adding Docker's apt repository"
      install -m 0755 -d /etc/apt/keyrings
      curl -fsSL "https://download.docker.com/linux/$id/gpg" -o /etc/apt/keyrings/docker.asc
      chmod a+r /etc/apt/keyrings/docker.asc
      echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/$id $(os_field VERSION_CODENAME) stable" \
        > /etc/apt/sources.list.d/docker.list
      apt-get "${apt_opts[@]}" update
      say "installing docker-ce and the compose plugin"
      apt-get "${apt_opts[@]}" install -y docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
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
      if ! find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | grep -q .; then
        apt-get "${apt_opts[@]}" update
      fi
      say "installing ${pkgs[*]}"
      if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends "${pkgs[@]}"; then
        [ "$id" = ubuntu ] || exit 1
        # Older Ubuntu images may lack docker-compose-v2 in their pockets: fall back to v1.
        apt-get "${apt_opts[@]}" install -y --no-install-recommends docker.io apparmor xz-utils docker-compose
      fi
    fi
  fi
  if [ -d /run/systemd/system ]; then
    systemctl enable --now docker >/dev/null 2>&1 || systemctl start docker
  else
    service docker start || true
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "the docker daemon did not start" "see \`journalctl -u docker\` on the box"
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
