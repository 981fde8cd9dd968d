#!/usr/bin/env python3
"""Benchmark of prebuilt images (issue 13), side by side in one run: time to ready of
`up docker --from-image` vs a fresh `up docker` from the same base. Prints the ratio against the
fresh run measured in the same run; no thresholds are asserted (this is not a test).

    .venv/bin/python bench/image_bench.py [--json] [--ec2]

1. `image build docker` (once; its time is shown, it is not part of either `up`).
2. A fresh `up docker` (full bootstrap) on a new container.
3. `up docker --from-image` on another new container (goal: ratio <= 0.3, <= 10 s here).

Needs a Docker engine and the test infrastructure (tests/images, tests/standin): the base image
is mlops-env-test/debian-base with the STAND-IN Anaconda installer (130 MB; the real ~1 GB
Anaconda makes a fresh bootstrap much slower, so the real ratio is lower) and smoke test
`sample`. The workstation image of the base is prepared before timing (a one-off per base).

``--ec2``: the same on the EC2 STAND-INS (moto over HTTP, systemd containers booted by the real
cloud-init, tests/ec2): `image build ec2`, a fresh `up ec2`, `up ec2 --from-image`, each with
its own instance stand-in, and the AWS API calls each one made (from mlops-env's own log: one
line per call, a paginated call counted once).
Times here are the stand-ins' (a container boots in seconds; an EC2 instance in 30-40 s): the
paper estimate for real EC2 is in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "mlops-env"


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    wall = time.perf_counter() - t0
    doc = json.loads(p.stdout)
    if doc["status"] != "ok":
        raise SystemExit(f"{' '.join(argv[1:4])} failed: {doc['errors']}\n{p.stderr[-2000:]}")
    return wall, doc["data"]


def run() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    import hosts  # type: ignore[import-not-found]
    from standin import make_conda_installer as standin  # type: ignore[import-not-found]

    client, why = hosts.docker_client_or_none()
    if client is None:
        raise SystemExit(f"no Docker engine: {why}")
    images = hosts.ensure_images(client)
    path, sha = standin.build_installer()
    image = hosts.image_with_files(client, images["base"], [path])
    url = f"file:///opt/mirror/{path.name}"

    from mlops_env.paths import get_paths
    from mlops_env.providers.docker.provider import DockerProvider

    DockerProvider(get_paths())._workstation_image(image, lambda m: None)  # warm-up, untimed

    tmp = Path(tempfile.mkdtemp(prefix="mlops-image-bench-"))
    (tmp / "home").mkdir()
    env = dict(os.environ, HOME=str(tmp / "home"), MLOPS_ENV_HOME=str(tmp / "mlops"), NO_COLOR="1")
    env.pop("SSH_AUTH_SOCK", None)
    pid = os.getpid()
    img, fresh, from_img = f"bench-img-{pid}", f"bench-fresh-{pid}", f"bench-fromimg-{pid}"
    common = ["--image", image, "--conda-installer", url, "--conda-sha256", sha, "--accept-anaconda-tos",
              "--smoke-test", "sample"]
    try:
        build_s, built = timed([str(BIN), "--json", "image", "build", "docker", img, *common], env)
        fresh_s, fresh_d = timed([str(BIN), "--json", "up", "docker", fresh, *common], env)
        from_s, from_d = timed([str(BIN), "--json", "up", "docker", from_img, "--from-image", img, *common], env)
    finally:
        for n in (fresh, from_img):
            subprocess.run([str(BIN), "down", n, "--yes"], env=env, capture_output=True, check=False)  # noqa: S603
        subprocess.run([str(BIN), "image", "delete", img, "--yes"], env=env, capture_output=True, check=False)  # noqa: S603
        shutil.rmtree(tmp, ignore_errors=True)

    def steps(d: dict[str, Any]) -> dict[str, str]:
        return {s["id"]: f"{s['status']} {s['seconds']:.1f}s" for s in d["steps"]}

    return {"build_s": build_s, "image_size_bytes": built.get("size_bytes"),
            "fresh_up_s": fresh_s, "fresh_steps": steps(fresh_d),
            "from_image_up_s": from_s, "from_image_steps": steps(from_d),
            "ratio": from_s / fresh_s}


def run_ec2() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "tests" / "ec2"))
    import hosts  # type: ignore[import-not-found]
    from conftest import MotoServer  # type: ignore[import-not-found]
    from instance_standin import AMI_REPO, InstanceStandIn  # type: ignore[import-not-found]
    from standin import make_conda_installer as standin  # type: ignore[import-not-found]

    client, why = hosts.docker_client_or_none()
    if client is None:
        raise SystemExit(f"no Docker engine: {why}")
    path, sha = standin.build_installer()
    moto = MotoServer()
    ec2 = moto.client()
    tmp = Path(tempfile.mkdtemp(prefix="mlops-image-bench-ec2-"))
    (tmp / "home").mkdir()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLOPS_ENV_"))}
    base_env.pop("SSH_AUTH_SOCK", None)
    base_env.update(HOME=str(tmp / "home"), MLOPS_ENV_HOME=str(tmp / "mlops"), NO_COLOR="1",
                    AWS_ENDPOINT_URL=moto.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                    AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                    AWS_EC2_METADATA_DISABLED="true", AWS_REGION="eu-west-1")
    pid = os.getpid()
    img, fresh, from_img = f"bench-img-{pid}", f"bench-fresh-{pid}", f"bench-fromimg-{pid}"
    boxes: list[Any] = []

    import logging
    import re

    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # the stand-ins' boot probes

    def phase(box: Any, argv: list[str]) -> tuple[float, dict[str, Any], int]:
        # AWS calls of mlops-env itself, from its own log (the stand-ins poll the same moto server)
        before = set((tmp / "mlops").rglob("*.log"))
        env = dict(base_env, MLOPS_ENV_TEST_SSH_ADDRESS_MAP=f"*=127.0.0.1:{box.port}")
        wall, data = timed([str(BIN), "--json", *argv], env)
        new = [f for f in (tmp / "mlops").rglob("*.log") if f not in before]
        calls = sum(len(re.findall(r"\baws (?:ec2|ssm|sts|pricing):\w+ ", f.read_text(errors="replace"))) for f in new)
        return wall, data, calls

    try:
        common = ["--smoke-test", "sample", "--conda-sha256", sha, "--accept-anaconda-tos",
                  "--allow-cidr", "203.0.113.7/32", "--ssh-timeout", "120"]
        with InstanceStandIn(client, ec2, f"image-build.{img}", capture=True) as b:
            boxes.append(b)
            url = b.put_file(path)
            build_s, built, build_n = phase(b, ["image", "build", "ec2", img, "--conda-installer", url, *common])
            b.wait_captured()
        with InstanceStandIn(client, ec2, fresh) as f:
            boxes.append(f)
            f.put_file(path)
            fresh_s, fresh_d, fresh_n = phase(f, ["up", "ec2", fresh, "--conda-installer", url, *common])
            with InstanceStandIn(client, ec2, from_img) as w:
                boxes.append(w)
                from_s, from_d, from_n = phase(w, ["up", "ec2", from_img, "--from-image", img,
                                                   "--conda-installer", url, *common])
                for n in (fresh, from_img):
                    subprocess.run([str(BIN), "down", n, "--yes"], env=base_env, capture_output=True, check=False)  # noqa: S603
    finally:
        subprocess.run([str(BIN), "image", "delete", img, "--region", "eu-west-1", "--yes"], env=base_env,  # noqa: S603
                       capture_output=True, check=False)
        for box in boxes:
            for iid in box.booted:
                for tag in (f"{AMI_REPO}:{iid}", f"{AMI_REPO}:{iid}-root"):
                    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)  # noqa: S603,S607
        moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def steps(d: dict[str, Any]) -> dict[str, str]:
        return {s["id"]: f"{s['status']} {s['seconds']:.1f}s" for s in d["steps"]}

    return {"build_s": build_s, "build_requests": build_n, "snapshot_gb": built.get("snapshot_gb"),
            "fresh_up_s": fresh_s, "fresh_requests": fresh_n, "fresh_steps": steps(fresh_d),
            "from_image_up_s": from_s, "from_image_requests": from_n, "from_image_steps": steps(from_d),
            "ratio": from_s / fresh_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ec2", action="store_true", help="the EC2 flow on the stand-ins (moto + instance containers)")
    a = ap.parse_args()
    if a.ec2:
        out = run_ec2()
        if a.json:
            print(json.dumps(out, indent=2))
            return 0
        print(f"image build ec2 (once)           {out['build_s']:.1f} s, {out['build_requests']} AWS calls")
        print(f"fresh up ec2                     {out['fresh_up_s']:.1f} s, {out['fresh_requests']} AWS calls")
        print(f"up ec2 --from-image              {out['from_image_up_s']:.1f} s, {out['from_image_requests']} AWS calls")
        print(f"ratio from-image / fresh         {out['ratio']:.2f}x   (stand-ins: container boots, not EC2's)")
        print("steps, fresh:      ", ", ".join(f"{k} {v}" for k, v in out["fresh_steps"].items()))
        print("steps, from image: ", ", ".join(f"{k} {v}" for k, v in out["from_image_steps"].items()))
        return 0
    out = run()
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"image build docker (once)        {out['build_s']:.1f} s, image {out['image_size_bytes'] / 1e9:.2f} GB")
    print(f"fresh up docker                  {out['fresh_up_s']:.1f} s")
    print(f"up docker --from-image           {out['from_image_up_s']:.1f} s")
    print(f"ratio from-image / fresh         {out['ratio']:.2f}x   (goal <= 0.3x, <= 10 s)")
    print("steps, fresh:      ", ", ".join(f"{k} {v}" for k, v in out["fresh_steps"].items()))
    print("steps, from image: ", ", ".join(f"{k} {v}" for k, v in out["from_image_steps"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
