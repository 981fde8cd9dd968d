#!/usr/bin/env python3
"""Benchmark of the pipeline (issue 2), side by side in one run. Prints ratios against a
baseline measured in the same run; no thresholds are asserted (this is not a test).

    .venv/bin/python bench/up_bench.py [--rounds N] [--skip-up] [--json]

1. CLI start-up: `mlops-env --help` wall time vs `python -c pass` (median of N rounds), and
   which heavy modules `import mlops_env.cli` loads (target: none of boto3/paramiko/docker).
2. `up docker` on a fresh container, full run, steps applied side by side (the default).
3. `up` again on that now-ready box (target: under 3 s, one SSH connection, checks batched):
   wall time, SSH connections and round-trips, vs the first run.
4. The same full run on another fresh container with `--jobs 1` (steps one after another):
   the parallel first run vs this one (target: at most 0.7x).

Parts 2-4 need a Docker engine and the test infrastructure (tests/images, tests/standin):
the base image is mlops-env-test/debian-base with the STAND-IN Anaconda installer baked in
(repo.anaconda.com is unreachable here) and smoke test `sample`. The workstation image is
prepared before timing (a one-off per base image, not part of `up`'s steady cost).
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

from benchlib import BIN, isolated_env, mlops, print_table, test_infrastructure, timed


def median_time(argv: list[str], rounds: int) -> float:
    timed(argv)  # warm the page cache
    return statistics.median(timed(argv)[0] for _ in range(rounds))


def startup(rounds: int) -> dict[str, Any]:
    help_s = median_time([str(BIN), "--help"], rounds)
    bare_s = median_time([sys.executable, "-c", "pass"], rounds)
    probe = ("import sys, mlops_env.cli; print(' '.join(m for m in ('boto3', 'botocore', 'paramiko', "
             "'docker', 'rich', 'pandas', 'yaml') if m in sys.modules))")
    loaded = timed([sys.executable, "-c", probe])[1].stdout.split()
    return {"help_s": help_s, "python_pass_s": bare_s, "heavy_modules_at_startup": loaded}


def _up(env: dict[str, str], name: str, mirror: Any, *extra: str) -> tuple[float, dict[str, Any]]:
    return mlops(env, "up", "docker", name, "--image", mirror.image, "--conda-installer", mirror.url,
                 "--conda-sha256", mirror.sha256, "--accept-anaconda-tos", "--smoke-test", "sample", *extra)


def pipeline() -> dict[str, Any]:
    hosts, standin, client = test_infrastructure()
    images = hosts.ensure_images(client)
    path, sha = standin.build_installer()
    image = hosts.image_with_files(client, images["base"], [path])

    class Mirror:
        pass

    mirror = Mirror()
    mirror.image, mirror.url, mirror.sha256 = image, f"file:///opt/mirror/{path.name}", sha  # type: ignore[attr-defined]

    from mlops_env.paths import get_paths
    from mlops_env.providers.docker import DockerProvider

    DockerProvider(get_paths())._workstation_image(image, lambda m: None)  # warm-up, untimed

    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    env = isolated_env(tmp)
    names = [f"bench-par-{os.getpid()}", f"bench-seq-{os.getpid()}"]
    try:
        first_s, first = _up(env, names[0], mirror)
        noop_s, noop = _up(env, names[0], mirror)
        seq_s, seq = _up(env, names[1], mirror, "--jobs", "1")
    finally:
        for n in names:
            subprocess.run([str(BIN), "down", n, "--yes"], env=env, capture_output=True, check=False)  # noqa: S603
        shutil.rmtree(tmp, ignore_errors=True)

    def steps(d: dict[str, Any]) -> dict[str, float]:
        return {s["id"]: s["seconds"] for s in d["steps"]}

    return {
        "first_up_s": first_s, "first_steps": steps(first),
        "noop_up_s": noop_s, "noop_ssh_connections": noop["ssh_connections"],
        "noop_ssh_round_trips": noop["ssh_round_trips"], "noop_statuses": sorted({s["status"] for s in noop["steps"]}),
        "sequential_up_s": seq_s, "sequential_steps": steps(seq),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--skip-up", action="store_true", help="only the start-up part (no Docker needed)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out: dict[str, Any] = {"startup": startup(a.rounds)}
    if not a.skip_up:
        out["up"] = pipeline()
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    s = out["startup"]
    rows = [("mlops-env --help", f"{s['help_s']:.3f} s", f"python -c pass {s['python_pass_s']:.3f} s",
             f"{s['help_s'] / s['python_pass_s']:.1f}x", "< 0.15 s")]
    if "up" in out:
        u = out["up"]
        rows.append(("up, ready box (no-op)", f"{u['noop_up_s']:.2f} s", f"first up {u['first_up_s']:.1f} s",
                     f"{u['noop_up_s'] / u['first_up_s']:.3f}x",
                     f"< 3 s; {u['noop_ssh_connections']} conn, {u['noop_ssh_round_trips']} round-trip"))
        rows.append(("first up, steps side by side", f"{u['first_up_s']:.1f} s",
                     f"one after another {u['sequential_up_s']:.1f} s",
                     f"{u['first_up_s'] / u['sequential_up_s']:.2f}x", "<= 0.7x"))
    print_table(("measure", "value", "baseline (same run)", "ratio", "target"), rows)
    print(f"\nheavy modules loaded by `import mlops_env.cli`: {', '.join(s['heavy_modules_at_startup']) or 'none'}")
    if "up" in out:
        u = out["up"]
        print("per-step seconds, first up (parallel):   ",
              ", ".join(f"{k} {v:.1f}" for k, v in u["first_steps"].items()))
        print("per-step seconds, first up (sequential): ",
              ", ".join(f"{k} {v:.1f}" for k, v in u["sequential_steps"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
