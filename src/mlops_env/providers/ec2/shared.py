"""What the workstations of one run of ``class up`` share while ``shared_lookups()`` is active:

* lookups that are the same for every student (the instance type's facts, the zones offering
  it, the default VPC's subnets, the image, the price), made once per class instead of once per
  student. Errors are never cached (a throttled lookup is asked again by the next student);
* a bound on AWS requests in flight and a launch gate (``limits.py``).

Outside that block (``up ec2``) nothing is cached, bounded or gated."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_active: dict[tuple[Any, ...], Any] | None = None
_inflight: dict[tuple[Any, ...], threading.Lock] = {}  # one caller asks AWS, the others wait for it


@contextmanager
def shared_lookups(aws_in_flight: int | None = None) -> Iterator[None]:
    from mlops_env.providers.ec2 import limits

    global _active
    with _lock:
        outer = _active
        _active = {} if outer is None else outer
    try:
        with limits.class_run(aws_in_flight) if outer is None else nullcontext():
            yield
    finally:
        with _lock:
            _active = outer
            if outer is None:
                _inflight.clear()


def session_for(region: str | None, profile: str | None) -> Any:
    """An ``Aws`` session: a new one outside ``shared_lookups()``; inside, one per (region,
    profile) for the whole class (a boto3 session and its clients cost about 0.1-0.2 s of CPU
    each to make; the clients are thread-safe, ``Aws.client`` makes them under a lock)."""
    from mlops_env.providers.ec2.session import Aws

    return _session(Aws, region, profile)


def cached(fn: F) -> F:
    """For ``Ec2`` methods and functions whose first argument is an ``Aws`` (or has ``.aws``)."""

    @functools.wraps(fn)
    def wrapper(first: Any, *args: Any, **kw: Any) -> Any:
        store = _active
        if store is None:
            return fn(first, *args, **kw)
        aws = getattr(first, "aws", first)
        key = (getattr(aws, "region", None), getattr(aws, "profile", None), fn.__qualname__,
               repr(args), repr(sorted(kw.items())))
        with _lock:
            gate = _inflight.setdefault(key, threading.Lock())
        with gate:  # the students of the first wave all miss at once: only one asks
            with _lock:
                if key in store:
                    hit = store[key]
                    return list(hit) if isinstance(hit, list) else hit
            value = fn(first, *args, **kw)
            with _lock:
                store[key] = value
        return list(value) if isinstance(value, list) else value

    return wrapper  # type: ignore[return-value]


@cached
def _session(cls: Any, region: str | None, profile: str | None) -> Any:
    return cls(region, profile)
