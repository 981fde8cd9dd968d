#!/usr/bin/env python3
"""Benchmark of `smoke-test NAME --serve` (issue 15) on a systemd test box. Prints numbers; no
thresholds are asserted (this is not a test).

    .venv/bin/python bench/serve_bench.py [--rounds N] [--requests N] [--json]

1. A fresh systemd test box (tests/hosts.py), brought up with `up ssh --smoke-test off` (Docker
   from apt inside, the STAND-IN Anaconda installer), plus a python base image made on the box
   from its own python3 (tests/servebox.py; no registry here). Setup, untimed.
2. `smoke-test NAME --sample` and `smoke-test NAME --sample --serve --serve-base-image IMG`,
   alternating, N rounds each: the extra wall time --serve adds (median of the paired
   differences). Goal: <= 15 s when the base image is present.
3. From each --serve run: build_seconds (docker build), start_seconds (compose up until /health
   answers and the 200 checked predictions are done), p50/p99 of the 200 requests on the box.
4. Latency on the box alone: the service kept up (--keep-serving), then the box's own python
   sends N requests over one keep-alive connection (serve_check.py with N copies of a ride).
   Goal: p50 <= 2 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import BIN, isolated_env, test_infrastructure
from benchlib import mlops as _run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    hosts, standin, client = test_infrastructure()
    from servebox import MAKE_PY_IMAGE, PY_IMAGE  # type: ignore[import-not-found]
    installer, sha = standin.build_installer()
    tmp = Path(tempfile.mkdtemp(prefix="mlops-serve-bench-"))
    env = isolated_env(tmp)
    name = f"servebench{os.getpid() % 100000}"
    box = hosts.start_vm(client, user="ubuntu", key_dir=tmp)
    out: dict[str, Any] = {}
    try:
        url = hosts.mirror_into(client, box.container_id, installer)
        up_s, _ = _run(env, "up", "ssh", name, "--host", box.host_spec, "--identity", str(box.identity),
                       "--host-key-fingerprint", box.host_key_fingerprint, "--smoke-test", "off",
                       "--conda-installer", url, "--conda-sha256", sha, "--accept-anaconda-tos")
        hosts.exec_in(client, box.container_id, MAKE_PY_IMAGE, env={"IMG": PY_IMAGE})
        plain: list[float] = []
        served: list[float] = []
        results: list[dict[str, Any]] = []
        _run(env, "smoke-test", name, "--sample")  # warm-up: first import on the box, untimed
        for _ in range(a.rounds):
            s0, _ = _run(env, "smoke-test", name, "--sample")
            s1, d = _run(env, "smoke-test", name, "--sample", "--serve", "--serve-base-image", PY_IMAGE)
            plain.append(s0)
            served.append(s1)
            results.append(d["serve"])
        extra = [b - p for p, b in zip(plain, served, strict=True)]
        # 4: the box alone, many requests over one connection.
        _, d = _run(env, "smoke-test", name, "--sample", "--serve", "--serve-base-image", PY_IMAGE, "--keep-serving")
        script = (
            'import json, sys; d = json.load(open(sys.argv[1])); r = d["rides"][0];'
            f' d["rides"] = [r] * {a.requests}; json.dump(d, open("/tmp/bench-rides.json", "w"))')
        hosts.exec_in(client, box.container_id, ["python3", "-c", script,
                                                 "/home/ubuntu/.mlops-env/smoke/report/serve-rides.json"], user="ubuntu")
        got = hosts.exec_in(client, box.container_id, ["python3", "/home/ubuntu/.mlops-env/serve_check.py", "--url",
                                                       "http://127.0.0.1:9696", "--rides", "/tmp/bench-rides.json"],
                            user="ubuntu")
        many = json.loads(got.stdout)
        subprocess.run([str(BIN), "smoke-test", name, "--sample", "--serve", "--serve-base-image", PY_IMAGE],  # noqa: S603
                       env=env, capture_output=True, check=False)  # removes the kept service
        out = {
            "setup_up_seconds": round(up_s, 1),
            "smoke_seconds": [round(x, 2) for x in plain],
            "smoke_serve_seconds": [round(x, 2) for x in served],
            "serve_extra_seconds_median": round(statistics.median(extra), 2),
            "build_seconds": [r["build_seconds"] for r in results],
            "start_seconds": [r["start_seconds"] for r in results],
            "p50_ms_200": [r["p50_ms"] for r in results],
            "p99_ms_200": [r["p99_ms"] for r in results],
            "tunnel_ms": [r.get("tunnel_ms") for r in results],
            "box_requests": many["checked"], "box_matches": many["matches"],
            "box_p50_ms": many["p50_ms"], "box_p99_ms": many["p99_ms"],
        }
    finally:
        subprocess.run([str(BIN), "down", name, "--yes"], env=env, capture_output=True, check=False)  # noqa: S603
        client.containers.get(box.container_id).remove(force=True, v=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:28} {v}")
        print(f"\ngoal: --serve adds <= 15 s -> {out['serve_extra_seconds_median']} s; "
              f"p50 <= 2 ms on the box -> {out['box_p50_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
