#!/usr/bin/env python3
"""Benchmark of prebuilt images (issue 13), side by side in one run: time to ready of
`up docker --from-image` vs a fresh `up docker` from the same base. Prints the ratio against the
fresh run measured in the same run; no thresholds are asserted (this is not a test).

    .venv/bin/python bench/image_bench.py [--json]

1. `image build docker` (once; its time is shown, it is not part of either `up`).
2. A fresh `up docker` (full bootstrap) on a new container.
3. `up docker --from-image` on another new container (goal: ratio <= 0.3, <= 10 s here).

Needs a Docker engine and the test infrastructure (tests/images, tests/standin): the base image
is mlops-env-test/debian-base with the STAND-IN Anaconda installer (130 MB; the real ~1 GB
Anaconda makes a fresh bootstrap much slower, so the real ratio is lower) and smoke test
`sample`. The workstation image of the base is prepared before timing (a one-off per base).
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
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
