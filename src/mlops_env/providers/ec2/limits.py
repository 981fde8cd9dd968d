"""Limits of one run of ``class up`` (active inside ``shared.shared_lookups``):

* a bound on AWS requests in flight at once for the whole class (``aws_in_flight``): the
  students' pipelines run side by side (most of their time is waiting: for an instance to run,
  for a box to install), and only their AWS requests queue, so AWS sees a polite, steady rate.
  ``session.Aws`` holds ``aws_slot()`` around each request; botocore's own retries of a
  throttled request happen inside it, which slows the class down as AWS asks;
* a launch gate: after a quota error no student launches another instance (``halt_launches``);
  those already running are kept.

Outside a class run (``up ec2``) nothing is bounded or gated."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None
_halted: str | None = None
_active = False


@contextmanager
def class_run(aws_in_flight: int | None) -> Iterator[None]:
    global _slots, _halted, _active
    with _lock:
        _slots = threading.BoundedSemaphore(aws_in_flight) if aws_in_flight else None
        _halted, _active = None, True
    try:
        yield
    finally:
        with _lock:
            _slots, _halted, _active = None, None, False


@contextmanager
def aws_slot() -> Iterator[None]:
    """Held around each AWS request: a no-op outside a class run."""
    slots = _slots
    if slots is None:
        yield
        return
    with slots:
        yield


def halt_launches(why: str) -> None:
    """No student of this class run launches an instance after this."""
    global _halted
    with _lock:
        if _active and _halted is None:
            _halted = why


def launch_halted() -> str | None:
    """None, or why launching has stopped for this class run."""
    return _halted
