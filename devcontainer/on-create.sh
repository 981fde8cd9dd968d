#!/usr/bin/env bash
# mlops-env dev container, on-create (once per container; Codespaces prebuilds snapshot it):
# the base packages and the conda distribution, installed by the workstation's own steps,
# base.sh and conda.sh with the pinned table installers.yaml, exactly as `mlops-env up`
# installs them on a box (download, sha256 check before anything runs, `bash INSTALLER -b -p`,
# `conda init bash`, the course's libraries importable).
#
# usage: on-create.sh --templates DIR [--accept-anaconda-tos]
#        on-create.sh --templates DIR --resolve-only [--arch ARCH]   (print the installer, install nothing)
#   DIR holds base.sh, conda.sh and installers.yaml: templates/ in the mlops-env repository,
#   .devcontainer/ in a repository set up by `mlops-env devcontainer init`.
#   --accept-anaconda-tos: whoever opens this dev container accepts Anaconda's terms of service
#   (needed for anaconda and miniconda, as with `mlops-env up`; miniforge needs none).
# env, the names `mlops-env up` reads: MLOPS_ENV_PYTHON_DIST (anaconda|miniconda|miniforge,
#   default anaconda); MLOPS_ENV_CONDA_INSTALLER with MLOPS_ENV_CONDA_SHA256: a mirror (http(s)://
#   or file://) instead of the pinned download, both or neither.
# Writes ~/.mlops-env/devcontainer/conda.env (DIST, LABEL, PREFIX) for post-create.sh.
# Exit: 0 ready; 2 usage; 3 no installer for this architecture; otherwise the failing step's
# code (conda.sh: 4 terms not accepted or download failed, 8 checksum mismatch).
set -euo pipefail

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }
say() { echo "mlops-env on-create: $*"; }

TEMPLATES=""; TOS=0; RESOLVE_ONLY=0; ARCH=$(uname -m)
while [ $# -gt 0 ]; do
  case "$1" in
    --templates) TEMPLATES=${2:-}; shift 2 ;;
    --accept-anaconda-tos) TOS=1; shift ;;
    --resolve-only) RESOLVE_ONLY=1; shift ;;
    --arch) ARCH=${2:-}; shift 2 ;;
    *) die "unknown argument: $1" "usage: on-create.sh --templates DIR [--accept-anaconda-tos]" 2 ;;
  esac
done
[ -n "$TEMPLATES" ] || die "--templates DIR is required" "" 2
for f in base.sh conda.sh installers.yaml; do
  [ -f "$TEMPLATES/$f" ] || die "$TEMPLATES/$f not found" "run from the workspace folder; --templates names the folder with base.sh, conda.sh and installers.yaml" 2
done

DIST=${MLOPS_ENV_PYTHON_DIST:-anaconda}
case "$DIST" in
  anaconda) LABEL=Anaconda ;;
  miniconda) LABEL=Miniconda ;;
  miniforge) LABEL=Miniforge ;;
  *) die "MLOPS_ENV_PYTHON_DIST must be anaconda, miniconda or miniforge, not '$DIST'" "" 2 ;;
esac
case "$ARCH" in
  x86_64|amd64) ARCH=x86_64 ;;
  aarch64|arm64) ARCH=aarch64 ;;
esac

# The entry for DIST and ARCH in the pinned table, as key=value lines. installers.yaml has a
# fixed shape (schema: 1, see docs/installers.md), so a small reader does; a unit test compares
# its answers with mlops_env.installers.resolve() for every entry.
read_table() {
  awk -v dist="$DIST" -v arch="$ARCH" '
    /^[[:space:]]*(#|$)/ { next }
    {
      match($0, /^ */); ind = RLENGTH
      line = substr($0, ind + 1)
      key = line; sub(/:.*/, "", key)
      val = ""
      if (index(line, ":") > 0) val = substr(line, index(line, ":") + 1)
      sub(/^[[:space:]]+/, "", val); sub(/[[:space:]]+$/, "", val)
      gsub(/^"|"$/, "", val)
    }
    ind == 0 { top = key; sect = ""; a = ""; next }
    top != dist { next }
    ind == 2 { sect = key; if (key != "files") print key "=" val; next }
    ind == 4 && sect == "files" { a = key; next }
    ind == 6 && sect == "files" && a == arch { print key "=" val }
  ' "$TEMPLATES/installers.yaml"
}

VERSION=""; PREFIX_NAME=""; NEEDS_TOS=false; PACKAGES="numpy pandas pyarrow scikit-learn"
URL=""; SHA256=""; SHA256_URL=""
while IFS='=' read -r k v; do
  case "$k" in
    version) VERSION=$v ;;
    prefix) PREFIX_NAME=$v ;;
    terms_of_service) NEEDS_TOS=$v ;;
    packages) v=${v#[}; v=${v%]}; PACKAGES=${v//,/} ;;
    url) URL=$v ;;
    sha256) SHA256=$v ;;
    sha256_url) SHA256_URL=$v ;;
  esac
done < <(read_table)
[ -n "$PREFIX_NAME" ] || die "$DIST is not in $TEMPLATES/installers.yaml" "" 2
[ -n "$URL" ] || die "$LABEL has no installer for this architecture ($ARCH)" "use an x86_64 or aarch64 machine" 3

# A mirror replaces the pinned download, as `mlops-env up --conda-installer URL --conda-sha256 HEX`.
MIRROR_URL=${MLOPS_ENV_CONDA_INSTALLER:-}; MIRROR_SHA=${MLOPS_ENV_CONDA_SHA256:-}
if [ -n "$MIRROR_URL" ] || [ -n "$MIRROR_SHA" ]; then
  if [ -z "$MIRROR_URL" ] || [ -z "$MIRROR_SHA" ]; then
    die "MLOPS_ENV_CONDA_INSTALLER and MLOPS_ENV_CONDA_SHA256 go together" "set both (a mirror and its sha256) or neither" 2
  fi
  URL=$MIRROR_URL; SHA256=$MIRROR_SHA; SHA256_URL=""; VERSION="(mirror)"
fi
PREFIX="$HOME/$PREFIX_NAME"
CHECKSUM=(--sha256 "$SHA256")
[ -n "$SHA256" ] || CHECKSUM=(--sha256-url "$SHA256_URL")

if [ "$RESOLVE_ONLY" = 1 ]; then
  printf '%s=%s\n' dist "$DIST" label "$LABEL $VERSION" arch "$ARCH" prefix "$PREFIX" \
    terms_of_service "$NEEDS_TOS" packages "$PACKAGES" url "$URL" sha256 "$SHA256" sha256_url "$SHA256_URL"
  exit 0
fi

if [ "$NEEDS_TOS" = true ] && [ "$TOS" != 1 ]; then
  die "$LABEL needs Anaconda's terms of service accepted, and this dev container does not accept them" \
    "add --accept-anaconda-tos to onCreateCommand (see https://www.anaconda.com/legal/terms), or set MLOPS_ENV_PYTHON_DIST=miniforge" 4
fi

t0=$SECONDS
say "$LABEL $VERSION for $ARCH into $PREFIX"
SUDO=()
if [ "$(id -u)" != 0 ]; then
  sudo -n true 2>/dev/null || die "$(id -un) cannot use sudo without a password" "the image must give the dev container's user passwordless sudo (see the Dockerfile)" 7
  SUDO=(sudo -n)
fi
"${SUDO[@]}" bash "$TEMPLATES/base.sh" apply

if bash "$TEMPLATES/conda.sh" check --prefix "$PREFIX" --dist "$DIST"; then
  say "conda already installed"
else
  bash "$TEMPLATES/conda.sh" apply --prefix "$PREFIX" --dist "$DIST" --url "$URL" "${CHECKSUM[@]}" \
    --tos "$TOS" --packages "$PACKAGES"
fi

mkdir -p "$HOME/.mlops-env/devcontainer"
printf 'DIST=%q\nLABEL=%q\nPREFIX=%q\n' "$DIST" "$LABEL $VERSION" "$PREFIX" > "$HOME/.mlops-env/devcontainer/conda.env"
say "ready in $((SECONDS - t0)) s: $("$PREFIX/bin/conda" --version 2>&1 | head -n1) in $PREFIX"
