#!/bin/bash
# =============================================================================================
#  Anaconda3 STAND-IN installer: a TEST DOUBLE made by mlops-env's test suite
#  (tests/standin/make_conda_installer.py). It is NOT Anaconda. repo.anaconda.com cannot be
#  reached on the test machines, so this file copies what mlops-env relies on in the real
#  installer (a bash script with the payload appended after a marker line):
#    bash Anaconda3-STANDIN-Linux-x86_64.sh -b [-u] [-f] [-p PREFIX]   (-h: help, exit 2)
#  Without -b the real installer asks questions; this one refuses (exit 1).
#  An existing PREFIX is refused unless -u or -f is given (like the real installer).
#  Result: PREFIX/bin/python (a venv of the box's python3) with numpy, pandas, pyarrow,
#  scikit-learn and scipy from the embedded wheelhouse, PREFIX/bin/conda and
#  PREFIX/condabin/conda (a stand-in conda: see PREFIX/STANDIN-README.txt),
#  PREFIX/etc/profile.d/conda.sh, PREFIX/conda-meta/history.
# =============================================================================================
# standin-id: @STANDIN_ID@
# pad: 0
set -eu
umask 022

INSTALLER_NAME="Anaconda3"
INSTALLER_VER="@INSTALLER_VER@"
CONDA_VERSION="@CONDA_VERSION@"
PAYLOAD_SHA256="@PAYLOAD_SHA256@"
PACKAGES="@PACKAGES@"
ORIG_ARGS="$*"
THIS_PATH=$(readlink -f "$0")
THIS_FILE=$(basename "$0")
PREFIX="${HOME:-/root}/anaconda3"
BATCH=0
FORCE=0
UPDATE=0

usage() {
    cat <<EOF
usage: $THIS_FILE [options]

Installs $INSTALLER_NAME $INSTALLER_VER  (STAND-IN: mlops-env test double, not Anaconda)

-b           run install in batch mode (without manual intervention),
             it is expected the license terms (if any) are agreed upon
-f           no error if install prefix already exists
-h           print this help message and exit
-p PREFIX    install prefix, defaults to $PREFIX, must not contain spaces.
-s           skip running pre/post-link/install scripts
-u           update an existing installation
-t           run package tests after installation (may install conda-build)
EOF
}

while getopts ":bfhkp:sut" x; do
    case "$x" in
        b) BATCH=1 ;;
        f) FORCE=1 ;;
        h) usage; exit 2 ;;
        k) ;;
        p) PREFIX="$OPTARG" ;;
        s) ;;
        u) UPDATE=1 ;;
        t) ;;
        ?) echo "ERROR: did not recognize option '-$OPTARG', please try -h" >&2; exit 1 ;;
    esac
done
shift $((OPTIND - 1))

echo "STAND-IN: $THIS_FILE is a test double made by mlops-env's test suite, not the real Anaconda installer."

if [ "$BATCH" = 0 ]; then
    echo "ERROR: the STAND-IN installer runs in batch mode only (-b). The real installer" >&2
    echo "       would now show its license and ask questions on the terminal." >&2
    exit 1
fi

case "$PREFIX" in
    *" "*) echo "ERROR: Cannot install into directories with spaces" >&2; exit 1 ;;
esac
PREFIX=$(readlink -m "$PREFIX")

if [ -e "$PREFIX" ] && [ "$FORCE" = 0 ] && [ "$UPDATE" = 0 ]; then
    echo "ERROR: File or directory already exists: '$PREFIX'" >&2
    echo "If you want to update an existing installation, use the -u option." >&2
    exit 1
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "ERROR: the STAND-IN installer needs the box's python3 with venv/ensurepip" >&2
    echo "       (python3-venv); the real installer ships its own Python." >&2
    exit 1
fi

echo "PREFIX=$PREFIX"
echo "Unpacking payload ..."
WORK=$(mktemp -d "${TMPDIR:-/tmp}/anaconda-standin.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
line=$(grep -anm1 '^@@END_HEADER@@$' "$THIS_PATH" | cut -d: -f1)
tail -n +"$((line + 1))" "$THIS_PATH" > "$WORK/payload.tar"
if ! printf '%s  %s\n' "$PAYLOAD_SHA256" "$WORK/payload.tar" | sha256sum -c --status; then
    echo "ERROR: the payload is corrupted or truncated (sha256 mismatch); download the installer again" >&2
    exit 1
fi
mkdir -p "$WORK/payload"
tar -xf "$WORK/payload.tar" -C "$WORK/payload"
rm -f "$WORK/payload.tar"

mkdir -p "$PREFIX"
if [ ! -x "$PREFIX/bin/python" ]; then
    python3 -m venv --copies "$PREFIX"
fi
echo "Installing base environment (STAND-IN: pip from the embedded wheelhouse: $PACKAGES) ..."
# --no-compile: ~8 s faster here; .pyc files are written on first import instead.
# shellcheck disable=SC2086  # PACKAGES is a fixed list of names
PIP_CONFIG_FILE=/dev/null "$PREFIX/bin/python" -m pip install --quiet --no-index --no-compile \
    --disable-pip-version-check --no-warn-script-location \
    --find-links "$WORK/payload/wheels" $PACKAGES

mkdir -p "$PREFIX/condabin" "$PREFIX/etc/profile.d" "$PREFIX/conda-meta" "$PREFIX/envs" \
    "$PREFIX/pkgs" "$PREFIX/lib/conda-standin"
rm -rf "$PREFIX/pkgs/standin-wheels"
mv "$WORK/payload/wheels" "$PREFIX/pkgs/standin-wheels"
install -m 0644 "$WORK/payload/conda.py" "$PREFIX/lib/conda-standin/conda.py"
install -m 0755 "$WORK/payload/conda-wrapper.sh" "$PREFIX/bin/conda"
install -m 0755 "$WORK/payload/conda-wrapper.sh" "$PREFIX/condabin/conda"
install -m 0644 "$WORK/payload/STANDIN-README.txt" "$PREFIX/STANDIN-README.txt"
install -m 0644 "$WORK/payload/manifest.json" "$PREFIX/conda-meta/standin-manifest.json"
"$PREFIX/bin/conda" shell.posix hook --no-activate > "$PREFIX/etc/profile.d/conda.sh"
printf '==> %s <==\n# cmd: %s %s\n# conda version: %s\n# STAND-IN install (mlops-env test double)\n' \
    "$(date '+%Y-%m-%d %H:%M:%S')" "$THIS_PATH" "$ORIG_ARGS" "$CONDA_VERSION" >> "$PREFIX/conda-meta/history"

echo "installation finished."
echo "STAND-IN: $INSTALLER_NAME $INSTALLER_VER (conda $CONDA_VERSION stand-in) installed into $PREFIX"
exit 0
# shellcheck disable=SC2317  # the payload marker line; never executed
@@END_HEADER@@
