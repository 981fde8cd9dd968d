#!/usr/bin/env python3
"""Benchmark: the course notebook's way vs ridetrain's, side by side, on the January file.

    .venv/bin/python bench/smoke_bench.py [PATH] [--repeat N] [--json]

PATH defaults to ../shared/data/green_tripdata_2021-01.filtered.parquet (next to the repo).

Each method runs in its own fresh subprocess, so their memory does not mix. Every worker
loads the data the same way (pandas.read_parquet + the notebook's read_dataframe, untimed),
warms up on 2,000 rows, then times *feature building + fit + predict (+ RMSE)* on the
whole month:

- notebook: ``df[features].to_dict(orient='records')`` + ``DictVectorizer().fit_transform``
  + ``LinearRegression(tol=T).fit`` + ``predict``; T = today's default 1e-6, the 1e-8 that
  scipy used when the course was recorded, and a tight 1e-12 (converged);
- ours: ``Encoder.fit_transform`` (category codes -> CSR, PU_DO built inside the timed part)
  + ``fit_ols`` (exact) + ``predict``.

Time: median (and min) of ``--repeat`` runs, ``time.perf_counter``. Memory, two ways:
- ``tracemalloc`` peak of the timed section (Python objects and numpy/scipy buffers; arrow
  buffers are not traced), in a separate run so tracing does not skew the timings;
- ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the worker's whole-process peak RSS (same
  data loading in every worker) and its growth during the first timed run.
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "green_tripdata_2021-01.filtered.parquet"
FEATURE_SETS = ["PULocationID,DOLocationID,trip_distance", "PU_DO,trip_distance"]
METHODS = ["notebook@1e-6", "notebook@1e-8", "notebook@1e-12", "ours"]


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


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


def worker(method: str, path: str, features: str, repeat: int) -> dict[str, Any]:
    import numpy as np

    sys.path.insert(0, str(REPO / "src"))
    from mlops_env.smoke import ridetrain as rt

    feats = features.split(",")
    df = read_dataframe(path)
    if method == "ours":
        import scipy.sparse  # noqa: F401 - imported before timing, as sklearn is for the notebook

        base = rt.prepare(df, feats, "january")  # untimed, like read_dataframe

        def pipeline(frame: Any) -> float:
            _enc, design = rt.Encoder.fit_transform(frame, feats)
            coef, intercept, _info = rt.fit_ols(design, frame.y)
            return rt.rmse(frame.y, rt.predict(design, coef, intercept))

        def subset(n: int | None) -> Any:
            if n is None:
                return base
            return rt.Frame(base.y[:n], {c: s.iloc[:n] for c, s in base.columns.items()}, {})
    else:
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LinearRegression
        from sklearn.metrics import mean_squared_error

        tol = float(method.split("@")[1])

        def pipeline(data: Any) -> float:
            dicts = data[feats].to_dict(orient="records")
            dv = DictVectorizer()
            X = dv.fit_transform(dicts)
            y = data.duration.values
            lr = LinearRegression(tol=tol).fit(X, y)
            return float(np.sqrt(mean_squared_error(y, lr.predict(X))))

        def subset(n: int | None) -> Any:
            return df if n is None else df.iloc[:n]

    pipeline(subset(2000))  # warm-up: first-call costs, lazy imports
    gc.collect()
    rss_before = _maxrss_mb()
    t0 = time.perf_counter()
    value = pipeline(subset(None))
    times = [time.perf_counter() - t0]
    rss_after = _maxrss_mb()
    for _ in range(repeat - 1):
        gc.collect()
        t0 = time.perf_counter()
        pipeline(subset(None))
        times.append(time.perf_counter() - t0)

    import tracemalloc

    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    pipeline(subset(None))
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"method": method, "features": features, "rows": int(len(df)), "rmse_train": value,
            "seconds_median": statistics.median(times), "seconds_min": min(times),
            "seconds_all": times, "tracemalloc_peak_mb": peak / 2**20,
            "maxrss_mb": rss_after, "maxrss_growth_mb": rss_after - rss_before,
            "numpy": np.__version__}


def run_worker(method: str, path: Path, features: str, repeat: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method,
           "--features", features, "--repeat", str(repeat), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800)  # noqa: S603 - this script
    if proc.returncode != 0:
        raise SystemExit(f"worker {method} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT_PATH))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--features", action="append", help="feature list (repeatable); "
                    f"default: {' and '.join(FEATURE_SETS)}")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.path, args.features[0], args.repeat)))
        return 0
    path = Path(args.path)
    if not path.is_file():
        print(f"no such file: {path} (see ../shared/data/PROVENANCE.md)", file=sys.stderr)
        return 3
    methods = args.methods.split(",")
    results = []
    print(f"# {path.name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"python {sys.version.split()[0]}; seconds for features + fit + predict over "
          f"{args.repeat} runs; ratio = method / ours", flush=True)
    for features in args.features or FEATURE_SETS:
        rows = [run_worker(m, path, features, args.repeat) for m in methods]
        results += rows
        ours = next((r for r in rows if r["method"] == "ours"), None)
        print(f"\nfeatures {features}  ({rows[0]['rows']:,} rows)")
        print(f"{'method':<16}{'median s':>9}{'min s':>8}{'ratio':>7}{'(min)':>7}"
              f"{'tracemalloc MB':>15}{'maxRSS MB':>10}{'(+run)':>7}  {'RMSE train':<19}{'vs ours':>9}")
        for r in rows:
            nan = float("nan")
            ratio = r["seconds_median"] / ours["seconds_median"] if ours else nan
            ratio_min = r["seconds_min"] / ours["seconds_min"] if ours else nan
            diff = r["rmse_train"] - ours["rmse_train"] if ours else nan
            print(f"{r['method']:<16}{r['seconds_median']:>9.4f}{r['seconds_min']:>8.4f}"
                  f"{ratio:>7.1f}{ratio_min:>7.1f}{r['tracemalloc_peak_mb']:>15.1f}"
                  f"{r['maxrss_mb']:>10.1f}{r['maxrss_growth_mb']:>7.1f}  "
                  f"{r['rmse_train']:<19.15f}{diff:>9.1e}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
