from __future__ import annotations

from mlops_env.cli import main

if __name__ == "__main__":
    main()
