"""Wall time and AWS request count of `mlops-env class up` for N students, on the STAND-IN AWS
(moto over HTTP, tests/ec2/moto_launcher.py), the box side of every student replaced by a
recorded ready answer (TEST-ONLY seam MLOPS_ENV_TEST_CLASS_BOX=ready).

    .venv/bin/python bench/class_bench.py [--sizes 1,10,50] [--jobs 50] [--latency 0.1] [--json]
    .venv/bin/python bench/class_bench.py --standins 1,3      # real boxes (needs root + Docker)

``--standins``: the same `class up` with the box side for real, on instance STAND-INs (systemd
containers booted by the real cloud-init, tests/ec2/instance_standin.py; the full bootstrap with
the STAND-IN Anaconda installer, smoke test `sample`), N = each size: the time of the provisioning
run, of the run that sets every box up side by side, and their ratio against the smallest N.

Goal (issue 14): N=50 within 1.5x the wall time of N=1, AWS requests per student constant.
What it measures is the fan-out: mlops-env's own overhead and its request count, against an
endpoint that answers at once. Each row also gives the CPU seconds of the mlops-env run and
of the moto server during it: on a small machine both share the same cores, and the stand-in's
own CPU (moto answers every request in Python, slower as its store fills) is part of the wall
time there, which real AWS does not add to the caller's machine. ``--latency S`` adds S seconds
to every answer of the stand-in (a model of the network round trip to AWS: on real AWS a
request mostly waits, and the class's students wait side by side, AWS_IN_FLIGHT requests at a time). On real AWS each request adds network latency (paid in
parallel, up to --jobs at once) and each instance its boot time (also in parallel); the full
bootstrap on real boxes is measured by tests/ec2/test_e2e_class_boxes.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import Moto, moto_launcher
from benchlib import free_port as _free_port
from benchlib import moto_stats as _stats

ROOT = Path(__file__).resolve().parent.parent
MLOPS = str(Path(sys.executable).parent / "mlops-env")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench"


def _roster(d: Path, cls: str, n: int) -> Path:
    p = d / f"{cls}.yaml"
    students = "".join(f"  - name: s{i:03d}\n    public_key: {KEY}\n" for i in range(n))
    p.write_text(f"class: {cls}\nregion: eu-west-1\ninstance_type: t3.large\nallow_cidr: 198.51.100.0/24\n"
                 f"students:\n{students}")
    return p


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: the mlops-env runs."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) used so far by the running process PID (the moto server)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def standins(sizes: list[int], jobs: int) -> list[dict[str, Any]]:
    """class up for real on instance stand-ins (see the module docstring)."""
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ec2")]
    import logging

    import hosts  # type: ignore[import-not-found]
    from instance_standin import InstanceStandIn  # type: ignore[import-not-found]
    from standin import make_conda_installer as standin  # type: ignore[import-not-found]

    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # the stand-ins' early probes while sshd boots
    client, why = hosts.docker_client_or_none()
    if client is None:
        raise SystemExit(f"no Docker engine: {why}")
    installer, sha = standin.build_installer()
    tmp = Path(tempfile.mkdtemp(prefix="mlops-env-class-bench-boxes-"))
    with moto_launcher(tmp) as moto:
        return _standins(sizes, jobs, tmp, moto, client, installer, sha, InstanceStandIn)


def _standins(sizes: list[int], jobs: int, tmp: Path, moto: Moto, client: Any, installer: Any, sha: str,
              standin_cls: Any) -> list[dict[str, Any]]:
    import boto3

    ec2 = boto3.client("ec2", region_name="eu-west-1", endpoint_url=moto.url, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    rows: list[dict[str, Any]] = []

    def run(env: dict[str, str], *argv: str) -> float:
        t = time.monotonic()
        r = subprocess.run([MLOPS, "--json", *argv], env=env, capture_output=True, text=True,  # noqa: S603
                           check=False, stdin=subprocess.DEVNULL, timeout=3600)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:2])} failed ({r.returncode}): {r.stdout[-3000:]}{r.stderr[-2000:]}")
        return time.monotonic() - t

    for n in sizes:
        cls = f"sb{n}"
        home = tmp / f"n{n}"
        (home / "home" / ".ssh").mkdir(parents=True)
        env = moto.env(home, NO_COLOR="1")
        roster = _roster(home, cls, n)
        names = [f"{cls}-s{i:03d}" for i in range(n)]
        boxes = [standin_cls(client, ec2, nm) for nm in names]
        try:
            for b in boxes:
                b.__enter__()
                file_url = b.put_file(installer)
            cfg = home / "config.yaml"
            cfg.write_text(f"conda_installer: {file_url}\nconda_sha256: {sha}\naccept_anaconda_tos: true\n"
                           "smoke_test: sample\nssh_timeout: 120\n")
            up = ["class", "up", str(roster), "--yes", "--config", str(cfg), "--jobs", str(jobs)]
            t_prov = run({**env, "MLOPS_ENV_TEST_CLASS_BOX": "provision"}, *up)
            for b in boxes:
                b.wait_booted()
            ips = {next(t["Value"] for t in i["Tags"] if t["Key"] == "mlops-env:name"): i["PublicIpAddress"]
                   for r in ec2.describe_instances(Filters=[{"Name": "tag:mlops-env:class", "Values": [cls]}])
                   ["Reservations"] for i in r["Instances"]}
            env["MLOPS_ENV_TEST_SSH_ADDRESS_MAP"] = ",".join(f"{ips[b.name]}=127.0.0.1:{b.port}" for b in boxes)
            t_boxes = run(env, *up)
            run(env, "class", "down", str(roster), "--yes")
        finally:
            for b in boxes:
                b.__exit__(None, None, None)
        rows.append({"n": n, "provision_seconds": round(t_prov, 1), "boxes_seconds": round(t_boxes, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--jobs", type=int, default=50, help="class up --jobs (the product's default: 50)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every AWS answer")
    ap.add_argument("--standins", metavar="N,N", help="real boxes on instance stand-ins, e.g. 1,3")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.standins:
        got = standins([int(x) for x in a.standins.split(",")], a.jobs)
        base = got[0]
        for r in got:
            r["boxes_ratio"] = round(r["boxes_seconds"] / base["boxes_seconds"], 2)
        if a.json:
            print(json.dumps(got, indent=2))
            return
        print(f"class up on instance stand-ins (real cloud-init, full bootstrap, sample smoke test), --jobs {a.jobs}")
        print(f"{'N':>4} {'provision':>10} {'boxes set up':>13} {'ratio':>7}")
        for r in got:
            print(f"{r['n']:>4} {r['provision_seconds']:>9.1f}s {r['boxes_seconds']:>12.1f}s {r['boxes_ratio']:>6}x")
        load = os.getloadavg()
        print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
        return
    sizes = [int(x) for x in a.sizes.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="mlops-env-class-bench-"))
    rows: list[dict[str, Any]] = []
    with moto_launcher(tmp) as moto:
        for n in sizes:
            home = tmp / f"n{n}"
            (home / "home").mkdir(parents=True)
            env = moto.env(home, MLOPS_ENV_TEST_SSH_ADDRESS_MAP=f"*=127.0.0.1:{_free_port()}",
                           MLOPS_ENV_TEST_CLASS_BOX="ready")
            roster = _roster(home, f"bench{n}", n)
            for label, argv in (("class up", ["class", "up", str(roster), "--yes", "--python-dist", "miniforge",
                                              "--smoke-test", "off", "--jobs", str(a.jobs)]),
                                ("class up (again: no-op)", ["class", "up", str(roster), "--yes", "--python-dist",
                                                             "miniforge", "--smoke-test", "off"]),
                                ("class down", ["class", "down", str(roster), "--yes"])):
                _stats(moto.url, reset=True, latency=a.latency)
                m0, c0, t = _cpu_of(moto.pid), _children_cpu(), time.monotonic()
                r = subprocess.run([MLOPS, "--json", *argv], env=env, capture_output=True, text=True,  # noqa: S603
                                   check=False, stdin=subprocess.DEVNULL)
                dt = time.monotonic() - t
                client_cpu, moto_cpu = _children_cpu() - c0, _cpu_of(moto.pid) - m0
                if r.returncode != 0:
                    raise SystemExit(f"N={n} {label} failed ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-2000:]}")
                seen = _stats(moto.url)["seen"]
                total = sum(seen.values())
                rows.append({"n": n, "command": label, "seconds": round(dt, 2), "aws_requests": total,
                             "client_cpu_seconds": round(client_cpu, 2), "standin_cpu_seconds": round(moto_cpu, 2),
                             "requests_per_student": round(total / n, 1),
                             "by_action": dict(sorted(seen.items(), key=lambda kv: -kv[1]))})
    ups = {r["n"]: r for r in rows if r["command"] == "class up"}
    base = ups[min(ups)]
    ratios = {n: round(r["seconds"] / base["seconds"], 2) for n, r in ups.items()}
    out = {"jobs": a.jobs, "latency": a.latency, "rows": rows, "wall_ratio_vs_smallest": ratios}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"class up on moto (box side: recorded ready answer), --jobs {a.jobs}, "
          f"{a.latency * 1000:.0f} ms added to every AWS answer")
    print(f"{'N':>4} {'command':<26} {'wall':>8} {'AWS requests':>13} {'per student':>12} "
          f"{'mlops-env CPU':>14} {'stand-in CPU':>13}")
    for r in rows:
        print(f"{r['n']:>4} {r['command']:<26} {r['seconds']:>7.2f}s {r['aws_requests']:>13} "
              f"{r['requests_per_student']:>12} {r['client_cpu_seconds']:>13.2f}s {r['standin_cpu_seconds']:>12.2f}s")
    for n, ratio in ratios.items():
        print(f"class up wall time N={n} vs N={min(ups)}: {ratio}x (goal for N=50: <= 1.5x)")


if __name__ == "__main__":
    main()
