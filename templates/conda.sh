#!/usr/bin/env bash
# mlops-env step "conda": a conda distribution in the user's home, `conda init bash` done,
# the base env able to import the course's libraries.
#
# usage: conda.sh check|verify --prefix DIR --dist NAME   (verify also imports the libraries)
#        conda.sh apply --prefix DIR --dist NAME --url URL (--sha256 HEX | --sha256-url URL)
#                       [--tos 0|1] [--packages "numpy pandas ..."]
# Runs as the login user (never root). Exit: 0 done, 1 not done/failed, 4 terms of service
# not accepted or download failed, 8 checksum mismatch.
set -euo pipefail

die() { echo "mlops-error: $1" >&2; [ -n "${2:-}" ] && echo "mlops-hint: $2" >&2; exit "${3:-1}"; }
say() { echo "mlops: $*"; }

mode=${1:-}; shift || true
PREFIX=""; DIST=""; URL=""; SHA256=""; SHA256_URL=""; TOS=0; PACKAGES="numpy pandas pyarrow scikit-learn"
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --dist) DIST=$2; shift 2 ;;
    --url) URL=$2; shift 2 ;;
    --sha256) SHA256=$2; shift 2 ;;
    --sha256-url) SHA256_URL=$2; shift 2 ;;
    --tos) TOS=$2; shift 2 ;;
    --packages) PACKAGES=$2; shift 2 ;;
    *) die "unknown argument: $1" "" 2 ;;
  esac
done
if [ -z "$PREFIX" ] || [ -z "$DIST" ]; then die "--prefix and --dist are required" "" 2; fi
# "~/x" is expanded here, on the box, so callers need not know the home directory.
case "$PREFIX" in
  \~/*) PREFIX="$HOME/${PREFIX#\~/}" ;;
  /*) ;;
  *) die "--prefix must be absolute or start with ~/" "" 2 ;;
esac

CONDA="$PREFIX/bin/conda"
PY="$PREFIX/bin/python"
TOS_MARK="$PREFIX/.mlops-env-tos-accepted"
MODULES="numpy pandas pyarrow sklearn"

needs_tos() { [ "$DIST" = anaconda ] || [ "$DIST" = miniconda ]; }

conda_ok() { [ -x "$CONDA" ] && "$CONDA" --version >/dev/null 2>&1; }
init_ok() { [ -f "$HOME/.bashrc" ] && grep -q '^# >>> conda initialize >>>' "$HOME/.bashrc"; }
# The course's libraries: installed (fast: find_spec, no import) or, with "import",
# importable (slow: a cold `import sklearn` takes a second or more; used by verify).
missing_modules() {
  local how=${1:-spec} out=""
  [ -x "$PY" ] || { echo "$MODULES"; return; }
  # shellcheck disable=SC2086 # module list split on purpose
  out=$("$PY" - "$how" $MODULES <<'PYEOF' 2>/dev/null
import importlib, importlib.util, sys
bad = []
for m in sys.argv[2:]:
    try:
        ok = importlib.import_module(m) if sys.argv[1] == "import" else importlib.util.find_spec(m)
    except Exception:
        ok = None
    if not ok:
        bad.append(m)
print(" ".join(bad))
PYEOF
) || out="$MODULES"
  echo "$out"
}
tos_ok() { ! needs_tos || [ -f "$TOS_MARK" ]; }

do_check() {
  local how=${1:-spec} problems=()
  if ! conda_ok; then
    say "conda not installed in $PREFIX"; exit 1
  fi
  init_ok || problems+=("conda init bash not done")
  local miss; miss=$(missing_modules "$how")
  [ -z "$miss" ] || problems+=("base env cannot import: $miss")
  tos_ok || problems+=("Anaconda terms of service not accepted")
  if [ ${#problems[@]} -gt 0 ]; then
    say "$(IFS=';'; echo "${problems[*]}")"; exit 1
  fi
  say "$("$CONDA" --version 2>&1 | head -n1) in $PREFIX"
}

download() {
  # Cached, resumable, verified download into ~/.cache/mlops-env/installers.
  local cache="$HOME/.cache/mlops-env/installers" file want got
  mkdir -p "$cache"
  file="$cache/$(basename "${URL%%\?*}")"
  want=$SHA256
  if [ -z "$want" ] && [ -n "$SHA256_URL" ]; then
    want=$(curl -fsSL --retry 3 "$SHA256_URL" | awk '{print $1}' | head -n1) ||
      die "cannot fetch the vendor's checksum from $SHA256_URL" "check the box's internet access, or use --conda-installer with --conda-sha256" 4
    # A sha256 is exactly 64 hex digits: anything else (an error page, a truncated file) is
    # not a checksum, and nothing is downloaded against it.
    [[ "$want" =~ ^[0-9a-fA-F]{64}$ ]] ||
      die "the vendor's checksum file $SHA256_URL holds no sha256 (64 hex digits): it starts with '${want:0:70}'" \
        "nothing was installed; check the box's internet access (a proxy or captive portal?), or use --conda-installer URL --conda-sha256 HEX" 8
  fi
  [[ "$want" =~ ^[0-9a-fA-F]{64}$ ]] || die "no valid sha256 for $URL" "pass --conda-sha256 HEX (64 hex digits) with --conda-installer" 8
  want=$(printf '%s' "$want" | tr 'A-F' 'a-f')  # sha256sum prints lower case
  if [ -f "$file" ] && [ "$(sha256sum "$file" | awk '{print $1}')" = "$want" ]; then
    say "installer cached: $file" >&2
    echo "$file"; return
  fi
  say "downloading $URL" >&2
  local resumed=0
  [ -s "$file.part" ] && resumed=1
  if ! curl -fL --retry 3 --retry-delay 2 -C - -sS -o "$file.part" "$URL" >&2; then
    # A failed resume (server without ranges, changed file) is retried once from scratch.
    rm -f "$file.part"; resumed=0
    curl -fL --retry 3 --retry-delay 2 -sS -o "$file.part" "$URL" >&2 ||
      die "download of $URL failed" "check the box's internet access, or use a mirror: --conda-installer URL --conda-sha256 HEX" 4
  fi
  got=$(sha256sum "$file.part" | awk '{print $1}')
  if [ "$got" != "$want" ] && [ "$resumed" = 1 ]; then
    # The kept .part may have come from another file of the same name: start over once.
    say "resumed download does not match; downloading $URL again" >&2
    rm -f "$file.part"
    curl -fL --retry 3 --retry-delay 2 -sS -o "$file.part" "$URL" >&2 ||
      die "download of $URL failed" "check the box's internet access, or use a mirror: --conda-installer URL --conda-sha256 HEX" 4
    got=$(sha256sum "$file.part" | awk '{print $1}')
  fi
  if [ "$got" != "$want" ]; then
    rm -f "$file.part"
    die "checksum mismatch for $URL: expected $want, got $got" "the file is corrupt or not the pinned installer; nothing was installed. Check the URL and --conda-sha256" 8
  fi
  mv -f "$file.part" "$file"
  echo "$file"
}

# The install runs at a lower CPU priority: it usually runs alongside the apt work of the base
# and docker steps, which is the longer path of `up` (measured: bench/up_bench.py).
do_apply() {
  if needs_tos && [ "$TOS" != 1 ]; then
    die "Anaconda's terms of service must be accepted to install $DIST" \
      "pass --accept-anaconda-tos (see https://www.anaconda.com/legal), or use --python-dist miniforge" 4
  fi
  mkdir -p "$HOME/.mlops-env"
  # One conda apply at a time, also across runs (an interrupted run may still be working).
  exec 9>"$HOME/.mlops-env/conda.lock"
  if ! flock -n 9; then
    say "installing $DIST: an earlier run's install is still going on the box; waiting for it"
    flock -w 1800 9 || die "another conda install is still running on the box" "wait for it, then run again" 1
  fi

  if ! conda_ok; then
    [ -n "$URL" ] || die "no installer URL given" "" 2
    if [ -e "$PREFIX" ]; then say "installing $DIST into $PREFIX (resuming an interrupted install)"
    else say "installing $DIST into $PREFIX"; fi
    local installer; installer=$(download)
    if [ -e "$PREFIX" ]; then
      say "installing $DIST into $PREFIX (resuming: updating what an interrupted install left)"
      nice -n 10 bash "$installer" -b -u -p "$PREFIX" ||
        die "the $DIST installer failed (exit $?) updating $PREFIX" "see the output above; remove $PREFIX and run again" 1
    else
      say "installing $DIST into $PREFIX"
      nice -n 10 bash "$installer" -b -p "$PREFIX" ||
        die "the $DIST installer failed (exit $?)" "see the output above; remove $PREFIX and run again" 1
    fi
    conda_ok || die "the installer finished but $CONDA does not run" "see the log above; remove $PREFIX and run again" 1
  fi
  if needs_tos && [ ! -f "$TOS_MARK" ]; then
    if "$CONDA" tos --help >/dev/null 2>&1; then
      say "accepting Anaconda's terms of service for the default channels"
      "$CONDA" tos accept --override-channels --channel https://repo.anaconda.com/pkgs/main
      "$CONDA" tos accept --override-channels --channel https://repo.anaconda.com/pkgs/r
    fi
    date -u +%Y-%m-%dT%H:%M:%SZ > "$TOS_MARK"
  fi
  if ! init_ok; then
    say "conda init bash"
    "$CONDA" init bash >/dev/null
  fi
  local miss; miss=$(missing_modules)
  if [ -n "$miss" ]; then
    say "installing into the base env: $PACKAGES"
    # shellcheck disable=SC2086 # the package list is split on purpose
    nice -n 10 "$CONDA" install -y -n base $PACKAGES
  fi
  do_check import
}

case "$mode" in
  check) do_check ;;
  verify) do_check import ;;
  apply) do_apply ;;
  *) die "usage: conda.sh check|apply ..." "" 2 ;;
esac
