"""``python -m mlops_env.devcontainer sync [--check]``: write (or check) this repository's
``.devcontainer/devcontainer.json`` from ``devcontainer/devcontainer.json`` (developers)."""

import sys

from mlops_env.devcontainer import sync

if __name__ == "__main__":  # pragma: no cover - developer entry point
    args = sys.argv[1:]
    if not args or args[0] != "sync" or set(args[1:]) - {"--check"}:
        print("usage: python -m mlops_env.devcontainer sync [--check]", file=sys.stderr)
        sys.exit(2)
    sys.exit(sync(check="--check" in args))
