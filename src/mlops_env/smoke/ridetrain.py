#!/usr/bin/env python3
"""Smoke-test training: the MLOps Zoomcamp week-1 ride-duration model, reproduced exactly.

One module of about 1300 lines on purpose: it is a standalone program shipped to boxes as ONE
file (piped to ``python -``), so it cannot be split into a package. It is self-contained:
besides the standard library it imports only numpy,
pandas, pyarrow and scipy (scikit-learn is not needed), and nothing from ``mlops_env``. The
same file is imported by ``mlops-env smoke-test`` for a local run and piped to a workstation
for a remote one, where it runs with the box's own Python::

    python - --json --report-dir DIR < ridetrain.py

It must work with old and new library versions (pandas 1.3 to 3.x, numpy 1.21 to 2.x,
scipy 1.7+, Python 3.8+), so it sticks to long-stable APIs.

The model is the course notebook's: duration in minutes = dropoff - pickup, keep
1 <= duration <= 60, categorical features one-hot encoded (unseen categories ignored at
prediction, as DictVectorizer does), numeric ``trip_distance``, ordinary least squares with
an intercept, RMSE. The design matrix is built directly from category codes, and the
least-squares problem is solved exactly (to convergence) by absorbing the largest one-hot
block, so the result does not depend on an iterative solver's tolerance. Of all
least-squares solutions it returns the one scikit-learn's LinearRegression converges to
(minimum-norm coefficients of the centred problem). See docs/smoke-test.md.

Command line (``--help`` for details)::

    ridetrain.py [--train SRC] [--val SRC] [--features LIST] [--sample]
                 [--report-dir DIR] [--cache-dir DIR] [--json]

Exit codes: 0 ok, 1 failed (download failure, RMSE not finite positive), 2 usage,
3 not found (missing local file, HTTP 404), 8 data unusable (corrupt or truncated file,
missing columns, no rows left after filtering), 70 internal error, 130 interrupted.
With ``--json`` exactly one JSON object is printed on stdout, also on failure::

    {"status": "ok"|"error", "exit_code": N, "data": {...},
     "errors": [{"code": ..., "message": ..., "hint": ...}]}
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    Log = Callable[[str], None]

__version__ = "1"

# Exit codes: the same numbers as mlops_env.errors.ExitCode (copied, not imported).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTEGRITY = 8
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

TLC_BASE = "https://d37ci6vzurychx.cloudfront.net/trip-data/"
DEFAULT_TRAIN = TLC_BASE + "green_tripdata_2021-01.parquet"
DEFAULT_VAL = TLC_BASE + "green_tripdata_2021-02.parquet"
DEFAULT_FEATURES = "PU_DO,trip_distance"
MIN_MINUTES = 1.0
MAX_MINUTES = 60.0

REPORT_NAME = "smoke-report.json"
MODEL_NAME = "model.npz"
MODEL_JSON_NAME = "model.json"  # the same model for the web service (`smoke-test --serve`)
RIDES_NAME = "serve-rides.json"  # validation rides + this model's predictions, to check a service
MODEL_FORMAT = "mlops-env/ride-duration-linear/1"
SERVE_RIDES = 200

# Always one-hot, whatever their stored type (the notebook casts them to str).
ID_COLUMNS = ("PULocationID", "DOLocationID")
PU_DO = "PU_DO"
# (pickup, dropoff) column pairs, by TLC schema.
TIMESTAMP_COLUMNS = (
    ("lpep_pickup_datetime", "lpep_dropoff_datetime"),  # green
    ("tpep_pickup_datetime", "tpep_dropoff_datetime"),  # yellow
)

SAMPLE_SEED = 20210101
SAMPLE_ROWS = {1: 20000, 2: 16000}

OFFLINE_HINT = "on a box without internet access, run with --sample (synthetic data, no download)"


class SmokeError(Exception):
    """A user-facing failure: stable code, one-line message, one-line hint, exit code."""

    def __init__(self, code: str, message: str, hint: str | None = None,
                 exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


def _usage(message: str, hint: str | None = None) -> SmokeError:
    return SmokeError("usage", message, hint or "see --help", EXIT_USAGE)


def _unusable(message: str, hint: str | None = None, code: str = "data-unusable") -> SmokeError:
    return SmokeError(code, message, hint, EXIT_INTEGRITY)


def _quiet(_msg: str) -> None:
    return None


# --------------------------------------------------------------------------------------------
# Sources: URLs (downloaded, cached, resumable, checked) and local parquet files
# --------------------------------------------------------------------------------------------

class _Transient(Exception):
    """A download attempt failed in a way worth retrying (the .part file is kept)."""


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mlops-env", "tlc")


def default_report_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "mlops-env", "reports", "local")


def cache_name(url: str) -> str:
    """File name in the cache for ``url``: its base name plus a short hash of the whole URL."""
    base = os.path.basename(urllib.parse.urlsplit(url).path) or "download"
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, "parquet"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:10]
    return f"{stem}.{digest}.{ext}"


def check_parquet(path: str, label: str = "file") -> Any:
    """Check that ``path`` is a complete parquet file; return its pyarrow metadata.

    Looks for the ``PAR1`` magic at both ends and a footer that fits and parses, so a
    truncated download or an HTML error page is reported clearly instead of crashing later.
    """
    import pyarrow.parquet as pq

    hint = "delete it and run again (downloads are fetched anew), or point to a valid TLC parquet file"
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4)
            if size >= 12:
                f.seek(size - 8)
            tail = f.read(8)
    except OSError as e:
        raise _unusable(f"cannot read {label} {path}: {e}", hint, "integrity") from e
    if size < 12:
        raise _unusable(f"{label} {path} is not a parquet file (only {size} bytes)",
                        hint, "integrity")
    if head != b"PAR1":
        raise _unusable(f"{label} {path} is not a parquet file (no PAR1 magic at the start)",
                        hint, "integrity")
    if tail[4:] != b"PAR1":
        raise _unusable(f"{label} {path} is truncated or corrupt (no PAR1 magic at the end, {size} bytes)",
                        hint, "integrity")
    footer_len = int.from_bytes(tail[:4], "little")
    if footer_len + 12 > size:
        raise _unusable(f"{label} {path} has a corrupt footer (length {footer_len} in a {size}-byte file)",
                        hint, "integrity")
    try:
        return pq.read_metadata(path)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... across versions
        raise _unusable(f"{label} {path} has an unreadable parquet footer: {e}",
                        hint, "integrity") from e


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_once(url: str, part: str, log: Log, timeout: float) -> None:
    """One attempt: fetch ``url`` into ``part``, resuming from its current size via Range."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    req = urllib.request.Request(url, headers={"User-Agent": "mlops-env-smoke/" + __version__})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) URL from the user
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # Nothing left to send: the .part is complete (the check decides) or bogus.
            log(f"server says {os.path.basename(part)} is already complete ({have} bytes)")
            return
        if e.code in (404, 410):
            raise SmokeError("not-found", f"{url}: HTTP {e.code} {e.reason}",
                             "check the URL (TLC file names look like "
                             "green_tripdata_2021-01.parquet)", EXIT_NOT_FOUND) from e
        if e.code in (408, 425, 429) or e.code >= 500:
            raise _Transient(f"HTTP {e.code} {e.reason}") from e
        raise SmokeError("download-failed", f"{url}: HTTP {e.code} {e.reason}",
                         OFFLINE_HINT, EXIT_FAILED) from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", e)
        raise _Transient(str(reason)) from e
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        total = None
        mode = "wb"
        if have and status == 206:
            crange = resp.headers.get("Content-Range", "")  # "bytes START-END/TOTAL"
            try:
                start = int(crange.split()[1].split("-")[0])
                total_s = crange.rsplit("/", 1)[1]
                total = int(total_s) if total_s != "*" else None
            except (IndexError, ValueError):
                start = -1
            if start != have:  # start over rather than splice at the wrong place
                os.remove(part)
                raise _Transient(f"server resumed at the wrong offset ({crange!r})")
            mode = "ab"
            log(f"resuming {url} at {have} bytes")
        else:
            have = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            log(f"downloading {url}" + (f" ({total / 1e6:.1f} MB)" if total else ""))
        try:
            with open(part, mode) as f:
                while True:
                    block = resp.read(1 << 20)
                    if not block:
                        break
                    f.write(block)
        except (http.client.HTTPException, OSError) as e:
            raise _Transient(f"connection broke after {os.path.getsize(part)} bytes: {e}") from e
    size = os.path.getsize(part)
    if total is not None and size < total:
        raise _Transient(f"connection closed early: {size} of {total} bytes")
    if total is not None and size > total:
        os.remove(part)
        raise _Transient(f"got {size} bytes, more than the announced {total}; starting over")


def fetch(url: str, cache_dir: str, log: Log = _quiet, retries: int = 3,
          backoff: float = 2.0, timeout: float = 60.0) -> dict[str, Any]:
    """Download ``url`` into ``cache_dir`` (cached, resumable, checked); describe the result.

    A partial download is kept as ``NAME.part`` and resumed with an HTTP Range request, in
    this run (``retries`` more attempts) or the next one. A finished file is checked
    (parquet magic and footer) before it is moved to its cached name.
    """
    final = os.path.join(cache_dir, cache_name(url))
    part = final + ".part"
    if os.path.exists(final):
        try:
            md = check_parquet(final, "cached file")
            return {"path": final, "cached": True, "bytes": os.path.getsize(final),
                    "parquet_rows": md.num_rows}
        except SmokeError as e:
            log(f"{e.message}; downloading it again")
            os.remove(final)
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as e:
        raise SmokeError("cache-dir", f"cannot create the cache directory {cache_dir}: {e}",
                         "pass a writable --cache-dir", EXIT_FAILED) from e
    attempt = 0
    while True:
        try:
            _download_once(url, part, log, timeout)
            break
        except _Transient as e:
            attempt += 1
            if attempt > retries:
                kept = os.path.getsize(part) if os.path.exists(part) else 0
                raise SmokeError(
                    "download-failed",
                    f"cannot download {url}: {e} ({attempt} attempts"
                    + (f", {kept} bytes kept for resuming)" if kept else ")"),
                    "check the network and run again (it resumes); " + OFFLINE_HINT,
                    EXIT_FAILED) from e
            wait = backoff * attempt
            log(f"download interrupted ({e}); retrying in {wait:.0f} s")
            time.sleep(wait)
    try:
        md = check_parquet(part, "download of")
    except SmokeError as e:
        os.remove(part)
        e.message = e.message.replace(part, url)
        e.hint = "the server did not send a parquet file; run again to re-download, or " + OFFLINE_HINT
        raise
    os.replace(part, final)
    return {"path": final, "cached": False, "bytes": os.path.getsize(final),
            "parquet_rows": md.num_rows}


def resolve_source(src: str, cache_dir: str, log: Log = _quiet) -> dict[str, Any]:
    """Turn SRC (http(s)/file URL or local path) into a checked local parquet file."""
    parts = urllib.parse.urlsplit(src)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        info = fetch(src, cache_dir, log)
    else:
        path = urllib.request.url2pathname(parts.path) if scheme == "file" else src
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.isfile(path):
            raise SmokeError("not-found", f"no such file: {path}",
                             "give a local TLC parquet file or an http(s) URL (or --sample)",
                             EXIT_NOT_FOUND)
        md = check_parquet(path)
        info = {"path": path, "cached": False, "bytes": os.path.getsize(path),
                "parquet_rows": md.num_rows}
    info["src"] = src
    info["sha256"] = _sha256(info["path"])
    return info


# --------------------------------------------------------------------------------------------
# Synthetic data with the TLC green schema (--sample)
# --------------------------------------------------------------------------------------------

def sample_frame(month: int = 1, rows: int | None = None, seed: int = SAMPLE_SEED) -> Any:
    """A deterministic synthetic month of green-taxi trips (2021-MM), raw TLC schema.

    Zones (1..265) have fixed positions and popularity; distance follows the zone pair,
    duration follows distance and the zones' congestion, plus noise. A few percent of the
    trips fall outside 1..60 minutes (and some sit exactly on the edges) to exercise the
    filter. Uses numpy's legacy RandomState, whose streams are stable across versions.
    """
    import numpy as np
    import pandas as pd

    n = int(rows if rows is not None else SAMPLE_ROWS.get(month, 16000))
    city = np.random.RandomState(seed)  # the same city every month
    xy = city.uniform(0.0, 4.0, size=(265, 2))
    popularity = city.pareto(1.1, size=265) + 0.02
    popularity /= popularity.sum()
    slowness = city.uniform(0.75, 1.35, size=265)

    rng = np.random.RandomState(seed + month)
    pu = rng.choice(265, size=n, p=popularity)
    local = rng.uniform(size=n) < 0.25  # short hops inside the pickup's neighbourhood
    do = np.where(local, np.clip(pu + rng.randint(-3, 4, size=n), 0, 264),
                  rng.choice(265, size=n, p=popularity))
    crow = np.sqrt(((xy[pu] - xy[do]) ** 2).sum(axis=1))
    dist = np.round(crow * 1.25 + rng.gamma(2.0, 0.3, size=n), 2)
    dist[rng.uniform(size=n) < 0.01] = 0.0
    mph = 12.0 / np.sqrt(slowness[pu] * slowness[do])
    minutes = 2.0 + dist / mph * 60.0 + rng.normal(0.0, 2.5, size=n)
    minutes = np.abs(minutes)
    u = rng.uniform(size=n)
    minutes[u < 0.02] = rng.uniform(0.0, 0.98, size=int((u < 0.02).sum()))  # too short
    minutes[(u >= 0.02) & (u < 0.03)] = rng.uniform(61.0, 400.0, size=int(((u >= 0.02) & (u < 0.03)).sum()))
    seconds = np.round(minutes * 60.0).astype("int64")
    seconds[:8] = [60, 3600, 59, 3601, 0, -30, 60, 3600]  # the edges: kept, kept, dropped, ...
    start = np.datetime64(f"2021-{month:02d}-01T00:00:00", "s")
    days = 28 if month == 2 else 30
    pickup = start + rng.randint(0, days * 86400, size=n).astype("timedelta64[s]")
    dropoff = pickup + seconds.astype("timedelta64[s]")
    fare = np.round(2.5 + 2.5 * dist + 0.5 * np.clip(minutes, 0, 120), 2)
    tip = np.round(np.where(rng.uniform(size=n) < 0.4, fare * 0.18, 0.0), 2)
    return pd.DataFrame({
        "VendorID": rng.choice([1, 2], size=n, p=[0.2, 0.8]).astype("int64"),
        "lpep_pickup_datetime": pd.to_datetime(pickup.astype("datetime64[ns]")),
        "lpep_dropoff_datetime": pd.to_datetime(dropoff.astype("datetime64[ns]")),
        "store_and_fwd_flag": np.where(rng.uniform(size=n) < 0.01, "Y", "N").astype(object),
        "RatecodeID": np.ones(n),
        "PULocationID": (pu + 1).astype("int64"),
        "DOLocationID": (do + 1).astype("int64"),
        "passenger_count": rng.choice([1.0, 2.0, 3.0], size=n, p=[0.8, 0.15, 0.05]),
        "trip_distance": dist,
        "fare_amount": fare,
        "extra": np.full(n, 0.5),
        "mta_tax": np.full(n, 0.5),
        "tip_amount": tip,
        "tolls_amount": np.zeros(n),
        "ehail_fee": np.full(n, None, dtype=object),
        "improvement_surcharge": np.full(n, 0.3),
        "total_amount": np.round(fare + tip + 1.3, 2),
        "payment_type": np.where(tip > 0, 1.0, 2.0),
        "trip_type": np.ones(n),
        "congestion_surcharge": np.zeros(n),
    })


# --------------------------------------------------------------------------------------------
# Loading and filtering (the notebook's read_dataframe)
# --------------------------------------------------------------------------------------------

def parse_features(text: str | None) -> list[str]:
    names = []
    for raw in (text if text is not None else DEFAULT_FEATURES).split(","):
        name = raw.strip()
        if name and name not in names:
            names.append(name)
    if not names:
        raise _usage("no features given", "e.g. --features PU_DO,trip_distance")
    return names


def base_columns(features: list[str]) -> list[str]:
    cols: list[str] = []
    for f in features:
        for c in (ID_COLUMNS if f == PU_DO else (f,)):
            if c not in cols:
                cols.append(c)
    return cols


def _timestamp_pair(columns: list[str]) -> tuple[str, str] | None:
    for pick, drop in TIMESTAMP_COLUMNS:
        if pick in columns and drop in columns:
            return pick, drop
    return None


def _to_minutes(pickup: Any, dropoff: Any) -> Any:
    """(dropoff - pickup) in minutes as float64, NaN where a timestamp is missing.

    Same arithmetic as the notebook's ``td.total_seconds() / 60``: seconds first (one
    correctly rounded division), then minutes; exactly 60 s gives exactly 1.0.
    """
    import numpy as np
    import pandas as pd

    def as_datetime(s: Any) -> Any:
        if not pd.api.types.is_datetime64_any_dtype(s.dtype):
            s = pd.to_datetime(s, errors="coerce")
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.to_numpy()

    delta = as_datetime(dropoff) - as_datetime(pickup)  # numpy timedelta64[unit]
    seconds = delta / np.timedelta64(1, "s")  # NaT -> NaN
    return np.asarray(seconds, dtype="float64") / 60.0


class Frame:
    """One prepared data set: target minutes and the raw feature columns, filtered."""

    def __init__(self, y: Any, columns: dict[str, Any], stats: dict[str, Any]) -> None:
        self.y = y
        self.columns = columns
        self.stats = stats

    def __len__(self) -> int:
        return int(self.y.shape[0])


def prepare(df: Any, features: list[str], label: str,
            available: list[str] | None = None) -> Frame:
    """The notebook's ``read_dataframe`` on a DataFrame: duration, 1..60 filter, columns.

    Works on raw TLC files (green ``lpep_*`` or yellow ``tpep_*``) and on files that were
    already filtered (a ``duration`` column; re-filtering is idempotent). When timestamps
    are present the duration is recomputed from them; otherwise ``duration`` is used.
    ``available`` lists the file's columns for messages when ``df`` holds only some.
    """
    import numpy as np

    columns = [str(c) for c in df.columns]
    missing = [c for c in base_columns(features) if c not in columns]
    if missing:
        raise _unusable(f"{label} has no column {', '.join(missing)} (it has: {', '.join(available or columns)})",
                        "use a TLC trip file (green or yellow) or choose --features from its columns",
                        "missing-columns")
    pair = _timestamp_pair(columns)
    if pair is not None:
        minutes = _to_minutes(df[pair[0]], df[pair[1]])
        source = f"{pair[1]} - {pair[0]}"
    elif "duration" in columns:
        minutes = np.asarray(df["duration"], dtype="float64")
        source = "duration column"
    else:
        raise _unusable(f"{label} has neither pickup/dropoff timestamps (lpep_*/tpep_*) nor a "
                        "duration column",
                        "use a green or yellow TLC trip file", "missing-columns")
    raw = int(minutes.shape[0])
    keep = (minutes >= MIN_MINUTES) & (minutes <= MAX_MINUTES)  # NaN compares False
    kept_duration = int(keep.sum())
    cols = {}
    for c in base_columns(features):
        cols[c] = df[c]
    # A numeric feature that is missing (NaN) cannot be fitted (scikit-learn refuses it too):
    # such rows are dropped and counted.
    dropped_missing = 0
    for name in features:
        if name in cols and _is_numeric_feature(name, cols[name]):
            values = _numeric_values(cols[name], label, name)
            bad = keep & ~np.isfinite(values)
            if bad.any():
                dropped_missing += int(bad.sum())
                keep &= ~bad
    idx = np.flatnonzero(keep)
    frame = Frame(
        y=minutes[idx],
        columns={c: s.iloc[idx].reset_index(drop=True) for c, s in cols.items()},
        stats={"raw_rows": raw, "rows": int(idx.shape[0]), "duration_from": source,
               "dropped_duration": raw - kept_duration, "dropped_missing": dropped_missing},
    )
    if len(frame) == 0:
        raise _unusable(
            f"{label} has no trips left after filtering ({raw} rows, none with 1 <= duration "
            f"<= 60 minutes{' and finite numeric features' if dropped_missing else ''})",
            "check that the file holds TLC trips with valid pickup/dropoff times",
            "empty-after-filter")
    return frame


def _is_numeric_feature(name: str, series: Any) -> bool:
    """DictVectorizer's rule after the notebook's casts: IDs and strings one-hot, numbers as is."""
    import pandas as pd

    if name in ID_COLUMNS or name == PU_DO:
        return False
    dtype = series.dtype
    return bool(pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))


def _numeric_values(series: Any, label: str, name: str) -> Any:
    import numpy as np

    try:
        return np.asarray(series.astype("float64"), dtype="float64")
    except (TypeError, ValueError) as e:
        raise _unusable(f"{label}: column {name} is not numeric ({e})") from e


def read_source(info: dict[str, Any], features: list[str], label: str) -> Frame:
    """Read only the needed columns of a checked parquet file and prepare them."""
    import pyarrow.parquet as pq

    path = info["path"]
    try:
        names = [str(n) for n in pq.read_schema(path).names]
    except Exception as e:
        raise _unusable(f"{label} {path}: cannot read the parquet schema: {e}",
                        code="integrity") from e
    wanted = [c for c in base_columns(features) if c in names]
    pair = _timestamp_pair(names)
    if pair is not None:
        wanted += list(pair)
    elif "duration" in names:
        wanted.append("duration")
    if not wanted:
        wanted = names[:1]
    try:
        df = pq.read_table(path, columns=wanted).to_pandas()
    except Exception as e:  # corrupt pages: ArrowInvalid, OSError, ... depending on version
        raise _unusable(f"{label} {path} is corrupt: {e}",
                        "delete it and run again, or use another file", "integrity") from e
    return prepare(df, features, label, available=names)


# --------------------------------------------------------------------------------------------
# Features: one-hot codes -> scipy.sparse CSR, directly (no dict records)
# --------------------------------------------------------------------------------------------

def _label_of(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(f):
        return "nan"
    if f.is_integer():
        return str(int(f))
    return str(value)


def _codes_and_labels(series: Any) -> tuple[Any, list[str]]:
    """Factorize ``series`` into int64 codes and string labels, as the notebook's str cast.

    Integer IDs become "132" (integral floats too, so an int train file and a float val file
    agree); a missing ID becomes the category "nan", as ``astype(str)`` makes it.
    """
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(series, sort=False)
    codes = np.asarray(codes, dtype="int64")
    labels = [_label_of(u) for u in np.asarray(uniques, dtype=object).tolist()]
    if (codes < 0).any():
        labels.append("nan")
        codes = np.where(codes < 0, len(labels) - 1, codes)
    index: dict[str, int] = {}
    remap = np.empty(len(labels), dtype="int64")
    for i, lab in enumerate(labels):
        remap[i] = index.setdefault(lab, len(index))
    if len(index) != len(labels):
        codes = remap[codes]
        labels = list(index)
    return codes, labels


def _feature_codes(name: str, columns: dict[str, Any]) -> tuple[Any, list[str]]:
    """Codes (0..k-1, per row) and their labels for categorical feature ``name``."""
    import numpy as np
    import pandas as pd

    if name != PU_DO:
        return _codes_and_labels(columns[name])
    pu, pu_labels = _codes_and_labels(columns[ID_COLUMNS[0]])
    do, do_labels = _codes_and_labels(columns[ID_COLUMNS[1]])
    width = len(do_labels)
    codes, pairs = pd.factorize(pu * width + do)  # hash-based: no sort of all rows
    labels = [f"{pu_labels[k // width]}_{do_labels[k % width]}" for k in pairs.tolist()]
    return np.asarray(codes, dtype="int64"), labels


class Design:
    """A CSR design matrix plus where each one-hot block sits in it."""

    def __init__(self, X: Any, blocks: list[tuple[str, int, int, Any]], numeric: list[int]) -> None:
        self.X = X  # scipy.sparse.csr_matrix, n x p
        self.blocks = blocks  # (feature, first column, width, codes with -1 = unseen)
        self.numeric = numeric  # column indices of numeric features


class Encoder:
    """DictVectorizer's job without dicts: a sorted vocabulary per categorical feature."""

    def __init__(self, features: list[str], kinds: list[str], vocab: dict[str, list[str]]) -> None:
        self.features = features
        self.kinds = kinds  # "cat" or "num", per feature
        self.vocab = vocab  # categorical feature -> sorted labels (DictVectorizer order)

    @classmethod
    def fit(cls, frame: Frame, features: list[str]) -> Encoder:
        return cls.fit_transform(frame, features)[0]

    @classmethod
    def fit_transform(cls, frame: Frame, features: list[str]) -> tuple[Encoder, Design]:
        """Learn the vocabularies from ``frame`` and encode it (codes computed once)."""
        import numpy as np

        kinds = []
        vocab = {}
        local = {}
        for name in features:
            series = None if name == PU_DO else frame.columns[name]
            if name == PU_DO or not _is_numeric_feature(name, series):
                if series is not None and series.dtype.kind in "mM":
                    raise _usage(f"feature {name} is a timestamp; only categorical and numeric "
                                 "features are supported")
                kinds.append("cat")
                codes, labels = _feature_codes(name, frame.columns)
                order = sorted(range(len(labels)), key=labels.__getitem__)
                vocab[name] = [labels[i] for i in order]
                rank = np.empty(len(labels), dtype="int64")
                rank[order] = np.arange(len(labels))
                local[name] = (codes, rank)
            else:
                kinds.append("num")
        encoder = cls(features, kinds, vocab)
        return encoder, encoder.transform(frame, "training data", _codes=local)

    def items(self) -> list[tuple[str, str]]:
        """(feature, kind) pairs. (No zip(strict=...): this file runs on Python 3.8 too.)"""
        return [(self.features[i], self.kinds[i]) for i in range(len(self.features))]

    @property
    def n_columns(self) -> int:
        return sum(len(self.vocab[f]) if k == "cat" else 1 for f, k in self.items())

    def feature_names(self) -> list[str]:
        names: list[str] = []
        for f, k in self.items():
            if k == "cat":
                names.extend(f"{f}={v}" for v in self.vocab[f])
            else:
                names.append(f)
        return names

    def transform(self, frame: Frame, label: str = "data",
                  _codes: dict[str, tuple[Any, Any]] | None = None) -> Design:
        import numpy as np
        import scipy.sparse as sp

        n = len(frame)
        width = len(self.features)
        cols = np.empty((n, width), dtype="int64")
        vals = np.ones((n, width), dtype="float64")
        blocks = []
        numeric = []
        offset = 0
        for j, (name, kind) in enumerate(self.items()):
            if kind == "cat":
                if _codes and name in _codes:  # fit_transform: codes and their vocab ranks
                    local, lookup = _codes[name]
                else:
                    local, labels = _feature_codes(name, frame.columns)
                    index = {lab: i for i, lab in enumerate(self.vocab[name])}
                    lookup = np.array([index.get(lab, -1) for lab in labels], dtype="int64")
                codes = lookup[local] if n else local
                cols[:, j] = np.where(codes >= 0, offset + codes, -1)
                blocks.append((name, offset, len(self.vocab[name]), codes))
                offset += len(self.vocab[name])
            else:
                cols[:, j] = offset
                vals[:, j] = _numeric_values(frame.columns[name], label, name)
                numeric.append(offset)
                offset += 1
        present = cols >= 0  # unseen categories get no entry: ignored, as DictVectorizer does
        if present.all():
            indptr = np.arange(0, n * width + 1, width, dtype="int64")
            indices, data = cols.ravel(), vals.ravel()
        else:
            indptr = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype("int64")
            indices, data = cols[present], vals[present]
        idx_dtype = "int32" if max(offset, n * width) < 2**31 - 1 else "int64"
        X = sp.csr_matrix((data, indices.astype(idx_dtype), indptr.astype(idx_dtype)),
                          shape=(n, offset))
        return Design(X, blocks, numeric)


# --------------------------------------------------------------------------------------------
# Exact OLS with intercept, exploiting the one-hot structure
# --------------------------------------------------------------------------------------------

def _psd_solve(A: Any, r: Any, rtol: float = 1e-10) -> tuple[Any, Any]:
    """Solve the symmetric PSD system ``A b = r`` (rank-deficient allowed).

    Returns one solution and a basis of the null space of ``A`` (columns). Jacobi-scaled
    eigendecomposition; eigenvalues below ``rtol`` times the largest count as zero.
    """
    import numpy as np

    q = A.shape[0]
    if q == 0:
        return np.zeros(0), np.zeros((0, 0))
    d = np.sqrt(np.clip(np.diag(A), 0.0, None))
    dead = d <= 1e-150
    d[dead] = 1.0
    As = A / np.outer(d, d)
    As[dead, :] = 0.0
    As[:, dead] = 0.0
    w, V = np.linalg.eigh((As + As.T) / 2.0)
    top = max(float(w.max()), 0.0)
    live = w > rtol * max(top, 1e-300)
    Vl = V[:, live]
    x = Vl.dot(Vl.T.dot(r / d) / w[live])
    return x / d, V[:, ~live] / d[:, None]


BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "BLIS_NUM_THREADS")


def prefer_single_thread_blas() -> None:
    """Ask for one BLAS thread, if numpy is not loaded yet and the user did not choose.

    Our dense problems are tiny (a few hundred columns at most): BLAS threads gain nothing
    and, on a busy box, oversubscription made one fit 10-30x slower in measurements.
    """
    if "numpy" not in sys.modules:
        for var in BLAS_THREAD_VARS:
            os.environ.setdefault(var, "1")


def _one_blas_thread() -> Any:
    """A context that limits BLAS to one thread when threadpoolctl is there (else no-op)."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=1, user_api="blas")
    except Exception:  # not installed, or an old/odd version: run as is
        return contextlib.nullcontext()


def fit_ols(design: Design, y: Any) -> tuple[Any, float, dict[str, Any]]:
    """Least squares with intercept; returns (coef, intercept, solver info). See _fit_ols."""
    with _one_blas_thread():
        return _fit_ols(design, y)


def _fit_ols(design: Design, y: Any) -> tuple[Any, float, dict[str, Any]]:
    """Least squares with intercept; returns (coef, intercept, solver info).

    Exact, not iterative. The widest one-hot block D (n x g, its columns sum to the
    intercept column) is absorbed: with Z the remaining columns and M = I - D (D'D)^-1 D'
    (subtract per-category means), ``(Z'MZ) b = Z'My`` is a small dense system
    (q = columns outside the block) and the block's coefficients are per-category means of
    ``y - Zb``. The one-hot design is rank-deficient, so least-squares solutions form a
    family; we return the one scikit-learn's LinearRegression converges to: minimum-norm
    coefficients of the centred problem, intercept = mean(y) - mean(X) . coef. The family's
    directions are known in closed form (they come from the null space of Z'MZ plus the
    block's all-ones vector), so that is a small projection. One step of iterative refinement
    removes the rounding of the normal equations.
    """
    import numpy as np
    import scipy.sparse as sp

    X = design.X.tocsr()
    n, p = X.shape
    y = np.asarray(y, dtype="float64")
    if design.blocks:
        name, off, g, codes = max(design.blocks, key=lambda blk: blk[2])
        counts = np.bincount(codes, minlength=g).astype("float64")
        if (counts == 0).any():  # cannot happen for the training vocabulary
            raise _unusable(f"category of {name} without training rows")
        block = np.arange(off, off + g)
    else:  # no categorical feature: absorb the intercept (a one-column "block" of ones)
        off, g = 0, 1
        codes = np.zeros(n, dtype="int64")
        counts = np.array([float(n)])
        block = np.arange(0)
    outside = np.ones(p, dtype=bool)
    outside[block] = False
    zcols = np.flatnonzero(outside)
    Z = X[:, zcols].tocsc()
    D = sp.csr_matrix((np.ones(n), codes, np.arange(n + 1)), shape=(n, g))
    S = (D.T.dot(Z)).tocsr()  # g x q: per-category sums of Z
    SinvC = sp.diags(1.0 / counts).dot(S)
    A = Z.T.dot(Z).toarray() - S.T.dot(SinvC).toarray()
    A = np.asarray(A, dtype="float64")
    tolerance = 1e-10

    def solve(target: Any) -> tuple[Any, Any, Any]:
        dsum = np.bincount(codes, weights=target, minlength=g)
        r = Z.T.dot(target) - S.T.dot(dsum / counts)
        b, null = _psd_solve(A, np.asarray(r, dtype="float64").ravel(), tolerance)
        a = (dsum - S.dot(b)) / counts
        return a, b, null

    a, b, null = solve(y)
    full = np.zeros(p)
    full[zcols] = b
    if design.blocks:
        full[block] = a
    # One step of iterative refinement. (With a block, the block spans the intercept; without
    # one, ``a`` is the intercept.)
    resid = y - X.dot(full) - (0.0 if design.blocks else a[0])
    da, db, _ = solve(resid)
    full[zcols] += db
    if design.blocks:
        full[block] += da

    # Directions v with X v constant: the family of solutions of the centred problem.
    basis = []
    if design.blocks:
        e = np.zeros(p)
        e[block] = 1.0
        basis.append(e)
    for k in range(null.shape[1]):
        w = null[:, k]
        v = np.zeros(p)
        v[zcols] = w
        if design.blocks:
            v[block] = -S.dot(w) / counts
        basis.append(v)
    if basis:
        N = np.column_stack(basis)
        z = np.linalg.lstsq(N, full, rcond=None)[0]
        coef = full - N.dot(z)
    else:
        coef = full
    xmean = np.asarray(X.sum(axis=0)).ravel() / n
    intercept = float(y.mean() - xmean.dot(coef))
    # Optimality check: the centred gradient X_c'r relative to ||X_c||_F ||r|| (0 = exact).
    resid = y - X.dot(coef) - intercept
    grad = X.T.dot(resid) - xmean * resid.sum()
    fro = math.sqrt(max(float(np.square(X.data).sum()) - n * float(xmean.dot(xmean)), 0.0))
    scale = fro * float(np.linalg.norm(resid))
    info = {
        "method": f"exact least squares: one-hot block absorbed, {len(zcols)}x{len(zcols)} dense "
                  "normal equations, minimum-norm solution",
        "absorbed": name if design.blocks else "intercept",
        "columns": int(p),
        "rank_deficiency": int(len(basis)),
        "gradient_rel": float(np.linalg.norm(grad) / scale) if scale > 0 else 0.0,
    }
    return coef, intercept, info


def predict(design: Design, coef: Any, intercept: float) -> Any:
    return design.X.dot(coef) + intercept


def rmse(y: Any, pred: Any) -> float:
    import numpy as np

    diff = np.asarray(y, dtype="float64") - np.asarray(pred, dtype="float64")
    return float(np.sqrt(np.mean(diff * diff))) if diff.size else float("nan")


# --------------------------------------------------------------------------------------------
# Model file and report
# --------------------------------------------------------------------------------------------

def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_model(path: str, encoder: Encoder, coef: Any, intercept: float,
               meta: dict[str, Any]) -> None:
    """Vocabulary + coefficients as a plain .npz (loads with allow_pickle=False)."""
    import io

    import numpy as np

    arrays: dict[str, Any] = {
        "features": np.array(encoder.features, dtype=str),
        "kinds": np.array(encoder.kinds, dtype=str),
        "coef": np.asarray(coef, dtype="float64"),
        "intercept": np.array([intercept], dtype="float64"),
        "meta": np.array([json.dumps(meta, sort_keys=True)], dtype=str),
    }
    for name, labels in encoder.vocab.items():
        arrays["vocab:" + name] = np.array(labels, dtype=str)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _atomic_write(path, buf.getvalue())


def load_model(path: str) -> tuple[Encoder, Any, float, dict[str, Any]]:
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        features = [str(f) for f in z["features"]]
        kinds = [str(k) for k in z["kinds"]]
        vocab = {f: [str(v) for v in z["vocab:" + f]]
                 for i, f in enumerate(features) if kinds[i] == "cat"}
        return (Encoder(features, kinds, vocab), z["coef"].copy(), float(z["intercept"][0]),
                json.loads(str(z["meta"][0])))


def _json_value(value: Any) -> Any:
    """A raw input value as JSON: integral IDs as int, NaN as None, numpy scalars unwrapped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str) or value is None:
        return value
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing markers
        return None
    if isinstance(value, bool):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(f):
        return None
    if f.is_integer() and "int" in type(value).__name__:
        return int(f)
    return f


def model_document(encoder: Encoder, coef: Any, intercept: float,
                   training: dict[str, Any]) -> dict[str, Any]:
    """The model as a small JSON document (the web service's input, issue 15).

    ``features`` keeps the order of the design; a categorical feature maps each label seen in
    training to its coefficient (a label not in the map contributes 0, as DictVectorizer
    ignores unseen categories); a numeric one has one coefficient. ``inputs`` are the request
    fields a prediction needs. ``hash`` is the first 16 hex digits of the sha256 of the
    document without ``hash`` (canonical JSON: sorted keys, no spaces); floats are written
    with ``repr`` so they read back bit for bit.
    """
    feats: list[dict[str, Any]] = []
    offset = 0
    values = [float(c) for c in list(coef)]
    for name, kind in encoder.items():
        if kind == "cat":
            labels = encoder.vocab[name]
            feats.append({"name": name, "kind": "categorical",
                          "from": list(ID_COLUMNS) if name == PU_DO else [name],
                          "coef": {lab: values[offset + i] for i, lab in enumerate(labels)}})
            offset += len(labels)
        else:
            feats.append({"name": name, "kind": "numeric", "from": [name], "coef": values[offset]})
            offset += 1
    doc: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "target": "duration in minutes (dropoff - pickup), trips of 1..60 minutes",
        "inputs": base_columns(encoder.features),
        "features": feats,
        "intercept": float(intercept),
        "labels": "IDs as the notebook's str cast: 132, 132.0 and '132' are '132'; null is 'nan'; "
                  "PU_DO is PU + '_' + DO; unseen labels contribute 0",
        "training": training,
    }
    doc["hash"] = model_hash(doc)
    return doc


def model_hash(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def label_of_json(value: Any) -> str:
    """The training encoding's label for a JSON request value (None is a missing ID)."""
    return "nan" if value is None else _label_of(value)


def predict_document(doc: dict[str, Any], ride: dict[str, Any]) -> float:
    """One prediction from the JSON model, in plain Python (what the web service computes)."""
    total = float(doc["intercept"])
    for feat in doc["features"]:
        if feat["kind"] == "categorical":
            label = "_".join(label_of_json(ride[c]) for c in feat["from"])
            total += feat["coef"].get(label, 0.0)
        else:
            total += feat["coef"] * float(ride[feat["from"][0]])
    return total


def frame_sha256(frame: Frame) -> str:
    """A hash of prepared data (for synthetic data, which has no file to hash)."""
    import numpy as np

    h = hashlib.sha256(np.ascontiguousarray(frame.y, dtype="float64").tobytes())
    for name in sorted(frame.columns):
        h.update(name.encode())
        h.update("\x1f".join(_label_of(v) for v in frame.columns[name].tolist()).encode())
    return h.hexdigest()


def serve_rides(frame: Frame, features: list[str], expected: Any,
                count: int = SERVE_RIDES) -> list[dict[str, Any]]:
    """``count`` validation rides spread over the set: raw inputs and the model's prediction."""
    n = len(frame)
    if n == 0:
        return []
    step = max(1, n // count)
    rides = []
    for i in range(0, n, step)[:count]:
        ride = {c: _json_value(frame.columns[c].iloc[i]) for c in base_columns(features)}
        rides.append({"row": i, "ride": ride, "duration": float(expected[i])})
    return rides


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for mod, dist in (("numpy", "numpy"), ("pandas", "pandas"), ("pyarrow", "pyarrow"),
                      ("scipy", "scipy"), ("sklearn", "scikit-learn")):
        module = sys.modules.get(mod)
        version = getattr(module, "__version__", None) if module is not None else None
        if version is None:
            try:
                from importlib.metadata import version as dist_version

                version = dist_version(dist)
            except Exception:  # not installed (scikit-learn is optional)
                version = None
        out[dist] = version
    return out


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

def _check_rmse(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise SmokeError("bad-rmse", f"{name} RMSE is {value!r}, not a finite positive number",
                         "the data or the fit is degenerate; check the input files",
                         EXIT_FAILED)


def run(train: str | None = None, val: str | None = None, features: str | None = None,
        sample: bool = False, report_dir: str | None = None, cache_dir: str | None = None,
        log: Log = _quiet) -> dict[str, Any]:
    """Train on ``train``, validate on ``val``; write the report and model; return the data.

    Raises SmokeError for anything the user can fix.
    """
    t_start = time.perf_counter()
    prefer_single_thread_blas()
    feats = parse_features(features)
    if sample and (train or val):
        raise _usage("--sample cannot be combined with --train/--val",
                     "drop --sample to use files, or drop --train/--val for synthetic data")
    report_dir = os.path.abspath(os.path.expanduser(report_dir or default_report_dir()))
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))

    t0 = time.perf_counter()
    try:  # the libraries the box must have; imported up front so phases time only work
        import numpy  # noqa: F401
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401
        import scipy.sparse  # noqa: F401
        import scipy.sparse.linalg  # noqa: F401
    except ImportError as e:
        raise SmokeError("missing-library", f"this Python ({sys.executable}) lacks a library: {e}",
                         "install numpy, pandas, pyarrow and scipy (Anaconda has them)",
                         EXIT_FAILED) from e
    t_import = time.perf_counter() - t0

    t0 = time.perf_counter()
    sources: dict[str, Any] = {}
    frames = {}
    for role, src in (("train", train or DEFAULT_TRAIN), ("val", val or DEFAULT_VAL)):
        label = f"{role} data"
        if sample:
            month = 1 if role == "train" else 2
            info: dict[str, Any] = {"src": f"sample:2021-{month:02d}", "synthetic": True,
                                    "seed": SAMPLE_SEED}
            frames[role] = prepare(sample_frame(month), feats, label)
        else:
            info = resolve_source(src, cache_dir, log)
            info["synthetic"] = False
            frames[role] = read_source(info, feats, f"{label} ({src})")
        info.update(frames[role].stats)
        sources[role] = info
    t_load = time.perf_counter() - t0

    log(f"training on {len(frames['train'])} trips, validating on {len(frames['val'])}")
    t0 = time.perf_counter()
    encoder, d_train = Encoder.fit_transform(frames["train"], feats)
    d_val = encoder.transform(frames["val"], "val data")
    t_features = time.perf_counter() - t0

    t0 = time.perf_counter()
    coef, intercept, solver = fit_ols(d_train, frames["train"].y)
    t_fit = time.perf_counter() - t0

    t0 = time.perf_counter()
    rmse_train = rmse(frames["train"].y, predict(d_train, coef, intercept))
    rmse_val = rmse(frames["val"].y, predict(d_val, coef, intercept))
    t_predict = time.perf_counter() - t0
    _check_rmse("training", rmse_train)
    _check_rmse("validation", rmse_val)

    unseen = {name: int((codes < 0).sum()) for name, _o, _w, codes in d_val.blocks}
    data: dict[str, Any] = {
        "train_rows": len(frames["train"]),
        "val_rows": len(frames["val"]),
        "rmse_train": rmse_train,
        "rmse_val": rmse_val,
        "features": feats,
        "categorical": [f for f, k in encoder.items() if k == "cat"],
        "numerical": [f for f, k in encoder.items() if k == "num"],
        "columns": encoder.n_columns,
        "val_unseen_categories": unseen,
        "intercept": intercept,
        "synthetic": bool(sample),
        "train_source": sources["train"]["src"],
        "val_source": sources["val"]["src"],
        "sources": sources,
        "filter": {"min_minutes": MIN_MINUTES, "max_minutes": MAX_MINUTES, "inclusive": True},
        "solver": solver,
        "seconds": {"import": round(t_import, 4), "load": round(t_load, 4), "features": round(t_features, 4),
                    "fit": round(t_fit, 4), "predict": round(t_predict, 4)},
        "versions": versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "ridetrain": __version__,
        "report_dir": report_dir,
        "report": os.path.join(report_dir, REPORT_NAME),
        "model": os.path.join(report_dir, MODEL_NAME),
    }
    train_info = sources["train"]
    doc = model_document(encoder, coef, intercept, {
        "src": train_info["src"], "rows": len(frames["train"]),
        "sha256": train_info.get("sha256") or frame_sha256(frames["train"]),
        "sha256_of": "file" if train_info.get("sha256") else "prepared data",
        "rmse_train": rmse_train, "rmse_val": rmse_val})
    data["model_json"] = os.path.join(report_dir, MODEL_JSON_NAME)
    data["model_hash"] = doc["hash"]
    data["serve_rides"] = os.path.join(report_dir, RIDES_NAME)
    rides = serve_rides(frames["val"], feats, predict(d_val, coef, intercept))
    try:
        os.makedirs(report_dir, exist_ok=True)
        save_model(data["model"], encoder, coef, intercept,
                   {"features": feats, "rmse_train": rmse_train, "rmse_val": rmse_val,
                    "train_source": data["train_source"], "synthetic": bool(sample)})
        _atomic_write(data["model_json"], (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode())
        _atomic_write(data["serve_rides"], (json.dumps({"model": doc["hash"], "rides": rides},
                                                       allow_nan=False) + "\n").encode())
        data["seconds"]["total"] = round(time.perf_counter() - t_start, 4)
        write_report(data["report"], envelope(data))
    except OSError as e:
        raise SmokeError("report-dir", f"cannot write the report to {report_dir}: {e}",
                         "pass a writable --report-dir", EXIT_FAILED) from e
    return data


def envelope(data: dict[str, Any] | None = None, error: SmokeError | None = None) -> dict[str, Any]:
    if error is None:
        return {"status": "ok", "exit_code": EXIT_OK, "data": data or {}, "errors": []}
    return {"status": "error", "exit_code": int(error.exit_code), "data": data or {},
            "errors": [error.as_dict()]}


def write_report(path: str, doc: dict[str, Any]) -> None:
    _atomic_write(path, (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_failure_report(report_dir: str | None, error: SmokeError) -> None:
    """Best effort: a failed run must not leave an older successful report behind."""
    try:
        target = os.path.abspath(os.path.expanduser(report_dir or default_report_dir()))
        if os.path.isdir(target):
            write_report(os.path.join(target, REPORT_NAME), envelope(None, error))
    except OSError:
        pass


def summary(data: dict[str, Any]) -> str:
    s = data["seconds"]
    return "\n".join([
        f"smoke test ok on {data['host']}" + (" (synthetic sample data)" if data["synthetic"] else ""),
        f"  trained on   {data['train_rows']:,} trips from {data['train_source']}",
        f"  validated on {data['val_rows']:,} trips from {data['val_source']}",
        f"  features     {', '.join(data['features'])} ({data['columns']:,} columns)",
        f"  RMSE         train {data['rmse_train']:.4f} min, validation {data['rmse_val']:.4f} min",
        f"  seconds      load {s['load']:.2f}, features {s['features']:.3f}, fit {s['fit']:.3f}, "
        f"predict {s['predict']:.3f}",
        f"  report       {data['report']}",
        f"  model        {data['model']}",
    ])


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit 2 with text; we want JSON too
        raise _usage(message, "see --help")


def _parser() -> _Parser:
    p = _Parser(prog="ridetrain", description="Train the MLOps Zoomcamp week-1 ride-duration "
                "model (linear regression on NYC TLC trips) as a smoke test.")
    p.add_argument("--train", metavar="SRC", help="training data: URL (http/https/file) or "
                   "parquet path (default: TLC green 2021-01)")
    p.add_argument("--val", metavar="SRC", help="validation data (default: TLC green 2021-02)")
    p.add_argument("--features", metavar="LIST", default=DEFAULT_FEATURES,
                   help="comma-separated features (default: %(default)s); PU_DO = "
                   "PULocationID_DOLocationID")
    p.add_argument("--sample", action="store_true",
                   help="use deterministic synthetic data (no download)")
    p.add_argument("--report-dir", metavar="DIR", help=f"where to write {REPORT_NAME} and {MODEL_NAME} "
                   f"(default: {default_report_dir()})")
    p.add_argument("--cache-dir", metavar="DIR",
                   help=f"download cache (default: {default_cache_dir()})")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in args_list

    def log(msg: str) -> None:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    error: SmokeError | None = None
    data: dict[str, Any] = {}
    report_dir = None
    try:
        args = _parser().parse_args(args_list)
        report_dir = args.report_dir
        data = run(train=args.train, val=args.val, features=args.features, sample=args.sample,
                   report_dir=args.report_dir, cache_dir=args.cache_dir, log=log)
    except SmokeError as e:
        error = e
    except KeyboardInterrupt:
        error = SmokeError("interrupted", "interrupted",
                           "run again: downloads resume where they stopped", EXIT_INTERRUPTED)
    except MemoryError:
        error = SmokeError("out-of-memory", "ran out of memory",
                           "use a box with more memory or a smaller file", EXIT_FAILED)
    except Exception as e:  # a bug: say so clearly, traceback on stderr
        import traceback

        traceback.print_exc()
        error = SmokeError("internal", f"unexpected error: {type(e).__name__}: {e}",
                           "this is a bug in mlops-env's smoke test; the traceback is on stderr",
                           EXIT_INTERNAL)
    if error is not None and error.exit_code != EXIT_USAGE:
        write_failure_report(report_dir, error)
    if json_mode:
        doc = envelope(data, error)
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    elif error is None:
        sys.stdout.write(summary(data) + "\n")
    else:
        sys.stderr.write(f"error: {error.message}\n")
        if error.hint:
            sys.stderr.write(f"  hint: {error.hint}\n")
    sys.stdout.flush()
    return EXIT_OK if error is None else int(error.exit_code)


if __name__ == "__main__":
    sys.exit(main())
