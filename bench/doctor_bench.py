#!/usr/bin/env python3
"""Benchmark of `mlops-env doctor` (issue 5), in one run. Prints wall times against the
targets; no threshold is asserted (this is not a test).

    .venv/bin/python bench/doctor_bench.py [--rounds N] [--local-only] [--json]

1. Local `mlops-env doctor --json` on this machine (every category, isolated HOME): median
   wall time of N runs, as a separate process each (target: under 1 s), next to
   `python -c pass` and `mlops-env --help` measured in the same run.
2. Remote `mlops-env doctor NAME --json` against a ready box over SSH (target: under 2 s, one
   connection): median wall time of N runs, with the SSH connections and round-trips the
   command reports. The box is a systemd Debian 12 container from tests/hosts.py made ready
   by the product (`up ssh` with the STAND-IN Anaconda installer, smoke test `sample`); its
   set-up is not timed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import BIN, isolated_env, load_line, mlops, print_table, test_infrastructure, timed


def runs(argv: list[str], env: dict[str, str], rounds: int) -> tuple[list[float], dict[str, Any]]:
    timed(argv, env)  # warm the page cache
    walls: list[float] = []
    last: dict[str, Any] = {}
    for _ in range(rounds):
        wall, p = timed(argv, env)
        walls.append(wall)
        last = json.loads(p.stdout) if p.stdout.startswith("{") else {"raw": p.stdout + p.stderr}
    return walls, last


def local(rounds: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="mlops-doctor-bench-"))
    try:
        env = isolated_env(tmp)
        walls, doc = runs([str(BIN), "--json", "doctor"], env, rounds)
        bare, _ = runs([sys.executable, "-c", "pass"], env, rounds)
        helps, _ = runs([str(BIN), "--help"], env, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    data = doc.get("data", {})
    return {"wall_s": statistics.median(walls), "max_s": max(walls), "inside_s": data.get("seconds"),
            "checks": len(data.get("checks", [])), "summary": data.get("summary"),
            "python_pass_s": statistics.median(bare), "help_s": statistics.median(helps)}


def remote(rounds: int) -> dict[str, Any]:
    hosts, standin, client = test_infrastructure()
    path, sha = standin.build_installer()
    tmp = Path(tempfile.mkdtemp(prefix="mlops-doctor-bench-"))
    vm = None
    try:
        vm = hosts.start_vm(client, user="ubuntu", key_dir=tmp / "keys")
        url = hosts.mirror_into(client, vm.container_id, path)
        env = isolated_env(tmp)
        setup_s, _ = mlops(env, "up", "ssh", "bench", "--host", vm.host_spec, "--identity", str(vm.identity),
                           "--host-key-fingerprint", vm.host_key_fingerprint, "--conda-installer", url,
                           "--conda-sha256", sha, "--accept-anaconda-tos", "--smoke-test", "sample")
        walls, doc = runs([str(BIN), "--json", "doctor", "bench"], env, rounds)
    finally:
        if vm is not None:
            try:
                client.containers.get(vm.container_id).remove(force=True, v=True)
            except Exception:  # noqa: BLE001 - best effort
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    data = doc.get("data", {})
    return {"setup_s": setup_s, "wall_s": statistics.median(walls), "max_s": max(walls),
            "inside_s": data.get("seconds"), "ssh_connections": data.get("ssh_connections"),
            "ssh_round_trips": data.get("ssh_round_trips"), "checks": len(data.get("checks", [])),
            "summary": data.get("summary"), "exit_code": doc.get("exit_code")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--local-only", action="store_true", help="only the local part (no Docker needed)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out: dict[str, Any] = {"local": local(a.rounds)}
    if not a.local_only:
        out["remote"] = remote(a.rounds)
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    lo = out["local"]
    rows = [("local `doctor` (this machine)", f"{lo['wall_s']:.2f} s", f"max {lo['max_s']:.2f} s",
             f"{lo['checks']} checks; python -c pass {lo['python_pass_s']:.2f} s, --help {lo['help_s']:.2f} s",
             "< 1 s")]
    if "remote" in out:
        r = out["remote"]
        rows.append(("remote `doctor NAME` (ready box)", f"{r['wall_s']:.2f} s", f"max {r['max_s']:.2f} s",
                     f"{r['checks']} checks; {r['ssh_connections']} SSH connection, "
                     f"{r['ssh_round_trips']} round-trip", "< 2 s, 1 connection"))
    print_table(("measure", "median", "worst", "detail", "target"), rows)
    print(f"\nlocal: {lo['summary']} (inside the process: {lo['inside_s']} s)")
    print(load_line())
    if "remote" in out:
        r = out["remote"]
        print(f"remote: {r['summary']}, exit {r['exit_code']} (inside the process: {r['inside_s']} s; "
              f"box set up by `up ssh` in {r['setup_s']:.1f} s, not timed above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
