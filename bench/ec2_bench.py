"""Time the EC2 lifecycle of the INSTALLED mlops-env against the STAND-IN AWS (moto over HTTP,
tests/ec2/moto_launcher.py), and count the AWS API requests each command makes.

    .venv/bin/python bench/ec2_bench.py [--repeat 3] [--json]

What it measures is mlops-env's own overhead (Python start-up, boto3 import, request count,
its own waits) against a local endpoint that answers at once: real AWS adds network latency per
request and the real boot time of an instance (about 30-60 s until sshd answers, not modelled
here). The full bootstrap on a box is measured by tests/ec2/test_e2e_up.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import Moto, moto_launcher
from benchlib import free_port as _free_port
from benchlib import moto_stats as _stats

ROOT = Path(__file__).resolve().parent.parent
MLOPS = str(Path(sys.executable).parent / "mlops-env")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mlops-env-ec2-bench-"))
    t0 = time.monotonic()
    with moto_launcher(tmp) as moto:
        launcher_s = time.monotonic() - t0
        rows, calls = _run(moto, tmp, a.repeat)
    out = {"launcher_start_s": round(launcher_s, 2), "repeat": a.repeat,
           "commands": {k: {"median_s": round(statistics.median(v), 3), "min_s": round(min(v), 3),
                            "aws_requests": calls[k]} for k, v in rows.items()}}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"moto launcher ready in {out['launcher_start_s']} s; {a.repeat} runs each (median, min)")
    print(f"{'command':<42} {'median':>8} {'min':>8} {'AWS requests':>13}")
    for k, v in out["commands"].items():
        print(f"{k:<42} {v['median_s']:>7.2f}s {v['min_s']:>7.2f}s {v['aws_requests']:>13}")


def _run(moto: Moto, tmp: Path, repeat: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    rows: dict[str, list[float]] = {}
    calls: dict[str, int] = {}
    url = moto.url
    for i in range(repeat):
        home = tmp / f"run{i}"
        (home / "home").mkdir(parents=True)
        env = moto.env(home, MLOPS_ENV_TEST_SSH_ADDRESS_MAP=f"*=127.0.0.1:{_free_port()}")
        name = f"bench{i}"
        plan = [
            ("up ec2 --help", ["up", "ec2", "--help"]),
            ("up ec2 --dry-run (new)", ["up", "ec2", name, "--dry-run", "--allow-cidr", "203.0.113.7/32"]),
            ("up ec2 --provision-only (create)", ["up", "ec2", name, "--provision-only", "--allow-cidr",
                                                   "203.0.113.7/32"]),
            ("up ec2 --provision-only (no-op)", ["up", "ec2", name, "--provision-only", "--allow-cidr",
                                                  "203.0.113.7/32"]),
            ("status", ["status", name]),
            ("list", ["list"]),
            ("stop", ["stop", name, "--yes"]),
            ("start (new IP, SSH config rewritten)", ["start", name]),
            ("down", ["down", name, "--yes"]),
        ]
        for label, argv in plan:
            _stats(url, reset=True)
            t = time.monotonic()
            r = subprocess.run([MLOPS, "--json", *argv] if "--help" not in argv else [MLOPS, *argv],  # noqa: S603
                               env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
            dt = time.monotonic() - t
            if r.returncode != 0:
                raise SystemExit(f"{label} failed ({r.returncode}): {r.stdout}{r.stderr}")
            rows.setdefault(label, []).append(dt)
            calls[label] = sum(_stats(url)["seen"].values())
    return rows, calls


if __name__ == "__main__":
    main()
