"""mlops-env: a ready MLOps workstation in one command."""

from __future__ import annotations

__version__ = "0.1.0"
