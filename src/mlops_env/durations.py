"""Durations as people type them (``30m``, ``2h``, ``1h30m``, ``90s``, ``off``) and as they read
them: the values of the ``idle_stop`` and ``max_hours`` ``up`` options (``config``) and of
``mlops-env idle-stop`` (``steps.idlestop``). Pure functions; imports nothing of mlops-env.
"""

from __future__ import annotations

import re
from typing import Any

MIN_WINDOW = 5  # seconds (tests use seconds; a real window is minutes)
MAX_WINDOW = 7 * 24 * 3600

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")

def parse_duration(text: Any) -> int:
    """``30m``, ``2h``, ``1h30m``, ``90s``, ``45`` (minutes) -> seconds; ``off``/``0`` -> 0."""
    s = str(text).strip().lower().replace(" ", "")
    if s in ("off", "0", "none", "false", "no"):
        return 0
    if re.fullmatch(r"\d+(\.\d+)?", s):
        secs = float(s) * 60
    else:
        m = _DURATION.fullmatch(s)
        if not s or not m or not any(m.groups()):
            raise ValueError(f"expected a duration such as 30m, 2h, 90s or off, got {text!r}")
        h, mi, se = (float(g) if g else 0.0 for g in m.groups())
        secs = h * 3600 + mi * 60 + se
    n = int(round(secs))
    if not MIN_WINDOW <= n <= MAX_WINDOW:
        raise ValueError(f"expected {MIN_WINDOW} s to 7 days, or off, got {text!r}")
    return n


def parse_hours(text: Any) -> int:
    """``--max-hours``: hours (``8``, ``1.5``) -> seconds; ``off``/``0`` -> 0 (no cap)."""
    s = str(text).strip().lower()
    if s in ("off", "0", "none", "false", "no", "0.0"):
        return 0
    try:
        h = float(s)
    except ValueError:
        raise ValueError(f"expected a number of hours (8, 1.5) or off, got {text!r}") from None
    n = int(round(h * 3600))
    if not h > 0 or not MIN_WINDOW <= n <= 31 * 24 * 3600:
        raise ValueError(f"expected a number of hours up to 744, or off, got {text!r}")
    return n


def format_duration(seconds: int | float) -> str:
    """3600 -> ``60m``, 5400 -> ``90m``, 7200 -> ``2h``, 45 -> ``45s``, 0 -> ``off``."""
    s = int(seconds)
    if s <= 0:
        return "off"
    if s % 3600 == 0 and s >= 7200:
        return f"{s // 3600}h"
    if s % 60 == 0:
        return f"{s // 60}m"
    return f"{s}s"


def human_duration(seconds: int | float) -> str:
    """For people: ``45 s``, ``12 min``, ``3 h 5 min``."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {(s % 3600) // 60} min"
