"""The callbacks a command gives ``up`` and ``doctor --fix``: progress, step events, questions.

The CLI renders them (``cli/up.py``, ``cli/doctor.py``); nothing below the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
@dataclass
class Events:
    """Callbacks the CLI renders. ``confirm(question) -> bool`` may raise when it cannot ask."""

    progress: Callable[[str], None] = lambda msg: None
    step: Callable[..., None] = lambda *a, **k: None
    confirm_host_key: Callable[[str], bool] = lambda question: False
    confirm_terms: Callable[[str], bool] = lambda question: False
    warn: Callable[[str], None] = lambda msg: None
    confirm: Callable[[str], bool] = lambda question: False  # a provider's question; honours --yes
