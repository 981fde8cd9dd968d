"""Started with PYTHONPATH=tests/winsim_site:tests and MLOPS_ENV_TEST_WINSIM=<ACL store>, a Python
process (the mlops-env CLI in a test) runs as the simulated Windows laptop of tests/winsim.py."""

import os

if os.environ.get("MLOPS_ENV_TEST_WINSIM"):
    import winsim

    winsim.install(winsim.Path(os.environ["MLOPS_ENV_TEST_WINSIM"]))
