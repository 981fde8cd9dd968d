"""`mlops-env smoke-test` (being built: see issue 3)."""
