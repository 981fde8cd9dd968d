"""Small generated TLC-like trip frames for the smoke-test tests (no files from ../shared)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def trips(minutes: Sequence[float], pu: Sequence[Any], do: Sequence[Any],
          dist: Sequence[float] | None = None, *, schema: str = "green",
          start: str = "2021-01-01 08:00:00") -> pd.DataFrame:
    """A TLC-shaped frame: one row per trip with the given duration in minutes.

    ``minutes`` may hold NaN (a missing dropoff). ``schema`` is "green" (lpep_*) or
    "yellow" (tpep_*). IDs are used as given (ints, floats or strings).
    """
    n = len(minutes)
    prefix = {"green": "lpep", "yellow": "tpep"}[schema]
    pickup = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * 600, unit="s")
    secs = np.asarray(minutes, dtype="float64") * 60.0
    dropoff = pickup + pd.to_timedelta(np.round(secs * 1e6), unit="us")
    return pd.DataFrame({
        "VendorID": np.full(n, 2, dtype="int64"),
        f"{prefix}_pickup_datetime": pickup,
        f"{prefix}_dropoff_datetime": dropoff,
        "PULocationID": list(pu),
        "DOLocationID": list(do),
        "passenger_count": np.ones(n),
        "trip_distance": np.asarray(dist if dist is not None else np.ones(n), dtype="float64"),
        "fare_amount": np.full(n, 10.0),
    })


def random_trips(n: int, zones: int, seed: int, *, schema: str = "green") -> pd.DataFrame:
    """Random trips with a real signal: duration grows with distance and depends on zones."""
    rng = np.random.RandomState(seed)
    pu = rng.randint(1, zones + 1, size=n)
    do = rng.randint(1, zones + 1, size=n)
    dist = np.round(rng.gamma(2.0, 1.2, size=n), 2)
    effect = np.linspace(-3, 3, zones + 1)
    minutes = 3 + 3.5 * dist + effect[pu] - effect[do] + rng.normal(0, 2, size=n)
    return trips(np.round(minutes, 3), pu.astype("int64"), do.astype("int64"), dist,
                 schema=schema)
