#!/usr/bin/env bash
# Install mlops-env from this clone for the current user, then (optionally) run it:
#
#     ./scripts/install.sh                                   install (or upgrade) only
#     ./scripts/install.sh up docker --accept-anaconda-tos   install, then `mlops-env up docker ...`
#
# Needs Python >= 3.10 with its venv module (Debian/Ubuntu: the python3-venv package) and the
# network to PyPI. Installs into its own virtual environment (never into the system Python, no
# sudo): $MLOPS_ENV_VENV, default ~/.local/share/mlops-env-venv, and links the command as
# ~/.local/bin/mlops-env ($MLOPS_ENV_BIN_DIR). Running it again upgrades in place.
# Exit: 0 done (or the exit code of the mlops-env command it ran), 4 something needed is
# missing (python3, its venv module, the download), 2 bad usage.
set -euo pipefail

die() { echo "install.sh: $1" >&2; [ -n "${2:-}" ] && echo "  hint: $2" >&2; exit "${3:-4}"; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -f "$repo/pyproject.toml" ] || die "$repo is not an mlops-env clone (no pyproject.toml)" "" 2
data=${XDG_DATA_HOME:-$HOME/.local/share}
venv=${MLOPS_ENV_VENV:-$data/mlops-env-venv}
bin_dir=${MLOPS_ENV_BIN_DIR:-$HOME/.local/bin}
python=${PYTHON:-python3}

command -v "$python" >/dev/null 2>&1 ||
  die "$python is not installed" "install Python 3.10 or newer (Debian/Ubuntu: sudo apt install python3 python3-venv)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  die "mlops-env needs Python 3.10 or newer; $python is $("$python" -c 'import platform; print(platform.python_version())')" \
    "install a newer Python and run: PYTHON=python3.12 $0"

if [ ! -x "$venv/bin/python" ]; then
  err=$("$python" -m venv "$venv" 2>&1) || {
    rm -rf "$venv"
    case "$err" in
      *ensurepip*|*"No module named venv"*)
        die "$python cannot make a virtual environment: its venv module is missing" \
          "Debian/Ubuntu: sudo apt install python3-venv (then run this again)" ;;
      *) die "$python -m venv $venv failed: ${err##*$'\n'}" "see the message above" ;;
    esac
  }
fi
echo "installing mlops-env from $repo into $venv ..." >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$repo" ||
  die "pip could not install mlops-env (see its message above)" "check the network to PyPI (pypi.org) and run this again"

mkdir -p "$bin_dir"
ln -sf "$venv/bin/mlops-env" "$bin_dir/mlops-env"
echo "mlops-env $("$bin_dir/mlops-env" --version | awk '{ print $2 }') is $bin_dir/mlops-env" >&2
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) echo "note: $bin_dir is not on your PATH; add it (e.g. in ~/.profile: export PATH=\"$bin_dir:\$PATH\")," \
          "or run $bin_dir/mlops-env" >&2 ;;
esac

[ $# -eq 0 ] || exec "$bin_dir/mlops-env" "$@"
