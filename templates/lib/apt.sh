# shellcheck shell=bash
# mlops-env script library: apt-get whose output is shown as usual and kept, so that on failure
# the step's message is apt's own reason. Included by templates/*.sh with
#   . "${BASH_SOURCE[0]%/*}/lib/apt.sh"
# which steps.template() replaces by this file's text (a script reaches a box on stdin, alone).
# Provides: mlops_tmpdir (one private temporary directory, removed on exit: $MLOPS_TMPD),
# apt_get ARGS... (apt-get -q ARGS, its dpkg lock waited for), apt_reason RC.

MLOPS_TMPD=""
mlops_tmpdir() {
  if [ -z "$MLOPS_TMPD" ]; then MLOPS_TMPD=$(mktemp -d); trap 'rm -rf "$MLOPS_TMPD"' EXIT; fi
}

apt_get() {
  local rc=0
  mlops_tmpdir
  apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold -q "$@" 2>&1 | tee "$MLOPS_TMPD/apt.out" || rc=${PIPESTATUS[0]}
  return "$rc"
}

# The last apt_get's reason: its first `E:` line (for a failed package script, dpkg's line naming
# the package), else "exit code RC".
apt_reason() {
  local e d
  e=$(grep -m1 '^E: ' "$MLOPS_TMPD/apt.out" 2>/dev/null | cut -c4-400 || true)
  if [[ "$e" == "Sub-process /usr/bin/dpkg returned an error code"* ]]; then
    d=$(grep -A1 -m1 '^dpkg: error processing' "$MLOPS_TMPD/apt.out" | tr -s ' \n' ' ' | cut -c1-400 || true)
    [ -z "$d" ] || e="${d% }"
  fi
  echo "${e:-exit code $1}"
}
