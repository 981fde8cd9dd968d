"""providers/ec2/shared.py: per-class lookups are asked once inside shared_lookups() (also by threads that
miss at the same moment), never outside it, and errors are not kept."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlops_env.providers.ec2.shared import cached, shared_lookups


class FakeAws:
    region, profile = "eu-west-1", None


class Lookups:
    def __init__(self) -> None:
        self.aws = FakeAws()
        self.calls = 0
        self.lock = threading.Lock()
        self.fail = False

    @cached
    def zones(self, itype: str) -> list[str]:
        with self.lock:
            self.calls += 1
        time.sleep(0.05)  # long enough for every thread to miss at once
        if self.fail:
            raise RuntimeError("throttled")
        return [f"{itype}-a", f"{itype}-b"]


def test_outside_nothing_is_kept() -> None:
    lk = Lookups()
    lk.zones("t3"), lk.zones("t3")
    assert lk.calls == 2


def test_inside_one_call_per_key_even_when_threads_miss_together() -> None:
    lk = Lookups()
    with shared_lookups():
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda _: lk.zones("t3"), range(16)))
        assert lk.calls == 1 and all(g == ["t3-a", "t3-b"] for g in got)
        got[0].append("mutated")  # a caller's copy: the kept value is not changed
        assert lk.zones("t3") == ["t3-a", "t3-b"] and lk.calls == 1
        lk.zones("m6i")
        assert lk.calls == 2
    lk.zones("t3")
    assert lk.calls == 3  # the block ended: asked again


def test_errors_are_not_kept() -> None:
    lk = Lookups()
    lk.fail = True
    with shared_lookups():
        for _ in range(2):
            with pytest.raises(RuntimeError):
                lk.zones("t3")
        assert lk.calls == 2
        lk.fail = False
        assert lk.zones("t3") == ["t3-a", "t3-b"] and lk.calls == 3
