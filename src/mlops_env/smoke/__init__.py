"""Smoke-test training (issue 3): the course's ride-duration model as proof a box works.

``ridetrain.py`` in this package is a self-contained script (stdlib, numpy, pandas, pyarrow,
scipy) that runs here in-process and is piped to a workstation as ``python - ARGS``. Importing
this package stays cheap: nothing heavy is imported until a run starts.
"""

from __future__ import annotations

from pathlib import Path

RIDETRAIN = Path(__file__).with_name("ridetrain.py")


def ridetrain_source() -> str:
    """The text of ``ridetrain.py``, to pipe to a remote Python (``python - ARGS``)."""
    return RIDETRAIN.read_text(encoding="utf-8")
