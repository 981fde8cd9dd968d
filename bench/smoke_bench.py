#!/usr/bin/env python3
"""Benchmark: the course notebook's way vs ridetrain's, side by side, on the January file.

    .venv/bin/python bench/smoke_bench.py [PATH] [--rounds N] [--json]

PATH defaults to tests/data/green_tripdata_2021-01.filtered.parquet (in this repository).

What is timed: *feature building + fit + predict (+ RMSE)* on the whole month, after the data
is loaded the same way for everyone (pandas.read_parquet + the notebook's read_dataframe,
untimed) and after a warm-up on 2,000 rows:

- notebook@T: ``df[features].to_dict(orient='records')`` + ``DictVectorizer().fit_transform``
  + ``LinearRegression(tol=T).fit`` + ``predict``. T = 1e-6 is today's default ("the
  notebook's way" as it runs now), 1e-8 is what scipy used when the course was recorded,
  1e-12 is converged. PU_DO is built while loading, so it is not timed.
- ours: ``Encoder.fit_transform`` (category codes -> CSR; PU_DO built inside the timed part)
  + ``fit_ols`` (exact) + ``predict``.

Time: one process runs all methods interleaved, round after round (the order rotates), so a
busy machine slows them alike; ``time.perf_counter``; median and min over the rounds, and the
median of the per-round ratios (each method against ours in the same round).

Memory: each method in its own fresh subprocess (same loading code), two ways:
- ``tracemalloc`` peak of one run of the timed section (Python objects and numpy/scipy
  buffers; arrow buffers are not traced);
- ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the worker's peak RSS, and its growth during
  the run (the worker imports only what its method needs).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PATH = REPO / "tests" / "data" / "green_tripdata_2021-01.filtered.parquet"
FEATURE_SETS = ["PULocationID,DOLocationID,trip_distance", "PU_DO,trip_distance"]
METHODS = ["notebook@1e-6", "notebook@1e-8", "notebook@1e-12", "ours"]


def read_dataframe(path: str) -> Any:
    """The notebook's read_dataframe (plus its PU_DO column), as in 01-intro."""
    import pandas as pd

    df = pd.read_parquet(path)
    df["duration"] = df.lpep_dropoff_datetime - df.lpep_pickup_datetime
    df.duration = df.duration.apply(lambda td: td.total_seconds() / 60)
    df = df[(df.duration >= 1) & (df.duration <= 60)]
    categorical = ["PULocationID", "DOLocationID"]
    df[categorical] = df[categorical].astype(str)
    df["PU_DO"] = df["PULocationID"] + "_" + df["DOLocationID"]
    return df


def make_pipeline(method: str, df: Any, feats: list[str]) -> tuple[Callable[[Any], float], Any, Any]:
    """(pipeline, full input, 2,000-row warm-up input) for one method; nothing timed here."""
    sys.path.insert(0, str(REPO / "src"))
    from mlops_env.smoke import ridetrain as rt

    if method == "ours":
        import scipy.sparse  # noqa: F401 - imported before timing, as sklearn is for the notebook

        base = rt.prepare(df, feats, "january")  # untimed, like read_dataframe

        def ours(frame: Any) -> float:
            _enc, design = rt.Encoder.fit_transform(frame, feats)
            coef, intercept, _info = rt.fit_ols(design, frame.y)
            return rt.rmse(frame.y, rt.predict(design, coef, intercept))

        small = rt.Frame(base.y[:2000], {c: s.iloc[:2000] for c, s in base.columns.items()}, {})
        return ours, base, small

    import numpy as np
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_squared_error

    tol = float(method.split("@")[1])

    def notebook(data: Any) -> float:
        dicts = data[feats].to_dict(orient="records")
        dv = DictVectorizer()
        X = dv.fit_transform(dicts)
        y = data.duration.values
        lr = LinearRegression(tol=tol).fit(X, y)
        return float(np.sqrt(mean_squared_error(y, lr.predict(X))))

    return notebook, df, df.iloc[:2000]


def timing_worker(methods: list[str], path: str, features: str, rounds: int) -> dict[str, Any]:
    feats = features.split(",")
    df = read_dataframe(path)
    pipes = {m: make_pipeline(m, df, feats) for m in methods}
    rmse = {}
    for m, (fn, full, small) in pipes.items():
        fn(small)  # warm-up: first-call costs, lazy imports
        rmse[m] = fn(full)
    times: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(rounds):
        order = methods[r % len(methods):] + methods[: r % len(methods)]
        for m in order:
            fn, full, _small = pipes[m]
            gc.collect()
            t0 = time.perf_counter()
            fn(full)
            times[m].append(time.perf_counter() - t0)
    return {"rows": int(len(df)), "times": times, "rmse_train": rmse}


def memory_worker(method: str, path: str, features: str) -> dict[str, Any]:
    import resource
    import tracemalloc

    def maxrss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

    feats = features.split(",")
    fn, full, small = make_pipeline(method, read_dataframe(path), feats)
    fn(small)
    gc.collect()
    before = maxrss_mb()
    fn(full)
    after = maxrss_mb()
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(full)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"tracemalloc_peak_mb": peak / 2**20, "maxrss_mb": after,
            "maxrss_growth_mb": after - before}


def _subprocess(args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)  # noqa: S603 - this script
    if proc.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def measure(path: Path, features: str, methods: list[str], rounds: int) -> list[dict[str, Any]]:
    timing = _subprocess(["--worker", "timing", "--methods", ",".join(methods),
                          "--features", features, "--rounds", str(rounds), str(path)])
    rows = []
    ours_times = timing["times"].get("ours")
    for m in methods:
        t = timing["times"][m]
        row: dict[str, Any] = {
            "method": m, "features": features, "rows": timing["rows"],
            "rmse_train": timing["rmse_train"][m], "seconds_all": t,
            "seconds_median": statistics.median(t), "seconds_min": min(t),
        }
        if ours_times:
            row["ratio_median_paired"] = statistics.median(a / b for a, b in zip(t, ours_times, strict=True))
            row["ratio_min"] = min(t) / min(ours_times)
        row.update(_subprocess(["--worker", "memory:" + m, "--features", features, str(path)]))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT_PATH))
    ap.add_argument("--rounds", type=int, default=7, help="timed runs per method (default 7)")
    ap.add_argument("--features", action="append",
                    help=f"feature list (repeatable); default: {' and '.join(FEATURE_SETS)}")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    methods = args.methods.split(",")
    if args.worker == "timing":
        print(json.dumps(timing_worker(methods, args.path, args.features[0], args.rounds)))
        return 0
    if args.worker:
        print(json.dumps(memory_worker(args.worker.split(":", 1)[1], args.path, args.features[0])))
        return 0
    path = Path(args.path)
    if not path.is_file():
        print(f"no such file: {path} (see tests/data/PROVENANCE.md)", file=sys.stderr)
        return 3
    print(f"# {path.name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"python {sys.version.split()[0]}; seconds for features + fit + predict, "
          f"{args.rounds} interleaved rounds; ratio = method / ours", flush=True)
    results = []
    for features in args.features or FEATURE_SETS:
        rows = measure(path, features, methods, args.rounds)
        results += rows
        ours = next((r for r in rows if r["method"] == "ours"), None)
        print(f"\nfeatures {features}  ({rows[0]['rows']:,} rows)")
        print(f"{'method':<16}{'median s':>9}{'min s':>8}{'ratio':>7}{'(min)':>7}"
              f"{'tracemalloc MB':>15}{'maxRSS MB':>10}{'(+run)':>7}  {'RMSE train':<19}{'vs ours':>9}")
        for r in rows:
            nan = float("nan")
            diff = r["rmse_train"] - ours["rmse_train"] if ours else nan
            print(f"{r['method']:<16}{r['seconds_median']:>9.4f}{r['seconds_min']:>8.4f}"
                  f"{r.get('ratio_median_paired', nan):>7.1f}{r.get('ratio_min', nan):>7.1f}"
                  f"{r['tracemalloc_peak_mb']:>15.1f}{r['maxrss_mb']:>10.1f}"
                  f"{r['maxrss_growth_mb']:>7.1f}  {r['rmse_train']:<19.15f}{diff:>9.1e}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
