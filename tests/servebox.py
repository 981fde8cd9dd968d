"""A python base image made ON a test box, for `smoke-test --serve` without a registry.

Shared by tests/e2e/test_smoke_serve.py and bench/serve_bench.py. Run ``MAKE_PY_IMAGE`` on
the box as root with ``IMG`` in the environment (``hosts.exec_in(..., env={"IMG": PY_IMAGE})``).
"""

PY_IMAGE = "mlops-env-test/box-python:local"

# The box's python3 as a one-layer image: no registry, no pip (what a mirror would give).
MAKE_PY_IMAGE = r"""
set -eu
docker image inspect "$IMG" >/dev/null 2>&1 && exit 0
bin=$(readlink -f /usr/bin/python3)
lib=/usr/lib/$(basename "$bin")
files=$( { echo "$bin"; ldd "$bin" "$lib"/lib-dynload/*.so 2>/dev/null |
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'; } | sort -u | sed 's|^/||')
ln -sf "$(basename "$bin")" /tmp/python3
# shellcheck disable=SC2086
tar -C / -chf - $files "${lib#/}" --exclude="${lib#/}/test" --exclude="${lib#/}/idlelib" \
  --exclude="${lib#/}/tkinter" --exclude="${lib#/}/ensurepip" --exclude="*/__pycache__" \
  --transform="s|^${bin#/}\$|usr/bin/python3|" --show-transformed-names |
  docker import -c 'CMD ["python3"]' - "$IMG" >/dev/null
"""
