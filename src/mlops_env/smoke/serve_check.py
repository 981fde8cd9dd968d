#!/usr/bin/env python3
"""Check a running ride-duration service against the trained model's own predictions.

Standard library only; runs on the box (``mlops-env smoke-test NAME --serve``, through
templates/serve.sh) with any Python 3.8+::

    python3 serve_check.py --url http://127.0.0.1:9696 --rides serve-rides.json
                           [--wait 30] [--tolerance 1e-9]

``--wait`` polls ``GET /health`` until it answers (exit 1 with ``not-answering`` after that
many seconds). Then every ride of ``serve-rides.json`` (ridetrain's validation rides and the
model's predictions) is sent as ``POST /predict`` over one keep-alive connection, timed one by
one. Prints one JSON object: ``{"status": "ok"|"error", "code", "message", "checked",
"matches", "p50_ms", "p99_ms", "health_seconds", "first_mismatch"}``. Exit 0 when every
answer is within the tolerance, 8 when one differs, 1 when the service does not answer.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import urllib.parse
from typing import Any


def _connect(url: str, timeout: float) -> http.client.HTTPConnection:
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=timeout)


def wait_health(url: str, seconds: float) -> tuple[bool, str]:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while True:
        try:
            conn = _connect(url, 2.0)
            conn.request("GET", "/health")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200:
                return True, body.decode("utf-8", "replace")
            last = f"HTTP {resp.status}: {body[:200].decode('utf-8', 'replace')}"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def check(url: str, rides: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    conn = _connect(url, 10.0)
    times: list[float] = []
    matches = 0
    first: dict[str, Any] | None = None
    headers = {"Content-Type": "application/json"}
    try:
        for item in rides:
            body = json.dumps(item["ride"]).encode("utf-8")
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            times.append(time.perf_counter() - t0)
            got: Any = None
            try:
                got = json.loads(raw.decode("utf-8")).get("duration") if resp.status == 200 else None
            except (ValueError, AttributeError):
                got = None
            ok = isinstance(got, (int, float)) and abs(float(got) - item["duration"]) <= tolerance
            if ok:
                matches += 1
            elif first is None:
                first = {"row": item.get("row"), "ride": item["ride"], "expected": item["duration"],
                         "got": got if got is not None else f"HTTP {resp.status}: {raw[:200].decode('utf-8', 'replace')}"}
    finally:
        conn.close()
    ms = [t * 1000.0 for t in times]
    return {"checked": len(rides), "matches": matches, "first_mismatch": first,
            "p50_ms": round(percentile(ms, 50), 3) if ms else None,
            "p99_ms": round(percentile(ms, 99), 3) if ms else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--url", required=True)
    p.add_argument("--rides", required=True)
    p.add_argument("--wait", type=float, default=30.0)
    p.add_argument("--tolerance", type=float, default=1e-9)
    args = p.parse_args(argv)
    with open(args.rides, encoding="utf-8") as f:
        doc = json.load(f)
    out: dict[str, Any] = {"status": "ok", "code": None, "message": None}
    t0 = time.monotonic()
    up, health = wait_health(args.url, args.wait)
    out["health_seconds"] = round(time.monotonic() - t0, 3)
    out["health"] = health
    if not up:
        out.update(status="error", code="not-answering",
                   message=f"the service did not answer GET /health within {args.wait:.0f} s ({health})")
        print(json.dumps(out))
        return 1
    try:
        served = json.loads(health).get("model")
    except (ValueError, AttributeError):
        served = None
    if served != doc.get("model"):
        out.update(status="error", code="wrong-model",
                   message=f"the service runs model {served!r}, expected {doc.get('model')!r}")
        print(json.dumps(out))
        return 8
    try:
        out.update(check(args.url, doc["rides"], args.tolerance))
    except (OSError, http.client.HTTPException) as e:
        out.update(status="error", code="not-answering", message=f"the service stopped answering: {e}")
        print(json.dumps(out))
        return 1
    if out["matches"] != out["checked"]:
        m = out["first_mismatch"]
        out.update(status="error", code="predictions-differ",
                   message=f"{out['checked'] - out['matches']} of {out['checked']} predictions differ; "
                   f"first: validation row {m['row']} {json.dumps(m['ride'])}: model {m['expected']!r}, "
                   f"service {m['got']!r}")
        print(json.dumps(out))
        return 8
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
