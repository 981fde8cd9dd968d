#!/usr/bin/env python3
"""Build the STAND-IN Anaconda installer used by the end-to-end tests.

repo.anaconda.com is not reachable on the test machines, so the tests cannot use the real
Anaconda installer. This builds ``Anaconda3-STANDIN-Linux-x86_64.sh``: a test double that
behaves like the real installer where mlops-env touches it:

* a bash script with a payload (tar) appended after a marker line, like the real one;
* ``bash FILE -b [-u] [-f] [-p PREFIX]``; ``-h`` prints usage (exit 2); no ``-b`` -> refused;
  an existing PREFIX is refused without ``-u``/``-f`` (as the real installer does);
* PREFIX/bin/python: a venv of the box's python3 (bookworm: 3.11) with numpy, pandas,
  pyarrow, scikit-learn, scipy installed offline from a wheelhouse inside the payload;
* PREFIX/bin/conda + PREFIX/condabin/conda: a stand-in conda (tests/standin/conda.py):
  ``--version`` (``conda 24.5.0``), ``init bash``, ``info --base|--json``, ``list``,
  ``run -n base ...``, ``tos accept --override-channels --channel URL``, create/install from
  the wheelhouse gated by the Terms-of-Service acceptance, ...;
* prints a line saying it is a STAND-IN.

The wheelhouse is made on the host with ``pip download`` for cp311/manylinux x86_64 (PyPI is
reachable from the host; inside containers pip fails TLS) and cached under the cache dir
(``$MLOPS_TEST_CACHE``, default /var/cache/mlops-env-test). The installer is cached too, keyed
by a hash of its inputs, so its sha256 is stable between runs.

CLI: ``python tests/standin/make_conda_installer.py [--bad] [--json]`` prints PATH and SHA256.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALLER_NAME = "Anaconda3-STANDIN-Linux-x86_64.sh"
BAD_INSTALLER_NAME = "Anaconda3-STANDIN-BAD-Linux-x86_64.sh"
INSTALLER_VER = "STANDIN-2024.06-1"
CONDA_VERSION = "24.5.0"
PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "scipy")
RECIPE_VERSION = "3"
PIP_PLATFORM_ARGS = (
    "--only-binary=:all:",
    "--python-version", "3.11",
    "--implementation", "cp",
    "--abi", "cp311",
    "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux_2_17_x86_64",
    "--platform", "manylinux2014_x86_64",
)
PAD_LINE = b"\n# pad: 0\n"  # the byte the "bad" variant flips (a comment: still installs)


class WheelhouseUnavailable(RuntimeError):
    """pip download failed (no PyPI?): the stand-in installer cannot be built."""


def _log(msg: str) -> None:
    print(f"[standin] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("MLOPS_TEST_CACHE", "/var/cache/mlops-env-test"))


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _recipe_hash(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def wheelhouse(log=_log) -> Path:  # type: ignore[no-untyped-def]
    """``pip download`` the wheels for the box (cp311, manylinux x86_64); cached and reused."""
    key = _recipe_hash("wheels", *PACKAGES, *PIP_PLATFORM_ARGS)
    d = cache_dir() / f"wheelhouse-cp311-{key}"
    done = d / ".complete"
    if done.exists():
        return d
    with _lock("wheelhouse"):
        if done.exists():
            return d
        t0 = time.monotonic()
        tmp = d.with_name(d.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               *PIP_PLATFORM_ARGS, "-d", str(tmp), *PACKAGES]
        log("pip download " + " ".join(PACKAGES) + f" -> {d}")
        r = subprocess.run(cmd, capture_output=True, text=True)  # noqa: S603
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise WheelhouseUnavailable(
                "cannot build the wheelhouse for the stand-in conda installer (pip download failed; "
                f"is PyPI reachable?): {(r.stderr or r.stdout).strip()[-800:]}"
            )
        names = sorted(p.name for p in tmp.glob("*.whl"))
        (tmp / ".complete").write_text("\n".join(names) + "\n")
        shutil.rmtree(d, ignore_errors=True)
        tmp.rename(d)
        log(f"wheelhouse ready in {time.monotonic() - t0:.1f}s ({len(names)} wheels)")
    return d


def _payload(wheels: Path) -> bytes:
    """The tar appended to the script: wheels/, conda.py, conda-wrapper.sh, README, manifest."""
    names = sorted(p.name for p in wheels.glob("*.whl"))
    manifest = {
        "standin": True,
        "installer": INSTALLER_NAME,
        "installer_version": INSTALLER_VER,
        "conda_version": CONDA_VERSION,
        "packages": list(PACKAGES),
        "wheels": names,
    }
    readme = (
        "This prefix was made by the STAND-IN Anaconda installer of mlops-env's test suite.\n"
        "It is NOT Anaconda: bin/python is a venv of the box's python3 with "
        + ", ".join(PACKAGES)
        + "\nfrom an embedded wheelhouse, and bin/conda is a small stand-in for conda\n"
        "(lib/conda-standin/conda.py lists what it supports).\n"
    )
    conda_py = (HERE / "conda.py").read_text().replace("@CONDA_VERSION@", CONDA_VERSION)
    buf = io.BytesIO()

    def add(name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, 0
        info.uid = info.gid = 0
        tf.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        add("conda.py", conda_py.encode())
        add("conda-wrapper.sh", (HERE / "conda-wrapper.sh").read_bytes(), 0o755)
        add("STANDIN-README.txt", readme.encode())
        add("manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
        for n in names:
            add(f"wheels/{n}", (wheels / n).read_bytes())
    return buf.getvalue()


def build_installer(out_dir: Path | str | None = None, *, force: bool = False, log=_log) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """Build (or reuse) the stand-in installer; returns (path, sha256 of the file)."""
    wheels = wheelhouse(log)
    header_t = (HERE / "installer-header.sh").read_text()
    key = _recipe_hash(
        RECIPE_VERSION, header_t, (HERE / "conda.py").read_text(), (HERE / "conda-wrapper.sh").read_text(),
        (wheels / ".complete").read_text(), CONDA_VERSION, INSTALLER_VER,
    )
    out = Path(out_dir) if out_dir else cache_dir() / "standin" / key
    path = out / INSTALLER_NAME
    sha_file = out / (INSTALLER_NAME + ".sha256")
    if not force and path.exists() and sha_file.exists():
        digest = sha256_file(path)  # ~0.3 s; a tampered cache entry is rebuilt
        if digest == sha_file.read_text().split()[0]:
            return path, digest
        force = True
    with _lock("standin"):
        if not force and path.exists() and sha_file.exists():
            return path, sha_file.read_text().split()[0]
        t0 = time.monotonic()
        payload = _payload(wheels)
        header = (
            header_t.replace("@STANDIN_ID@", key)
            .replace("@INSTALLER_VER@", INSTALLER_VER)
            .replace("@CONDA_VERSION@", CONDA_VERSION)
            .replace("@PAYLOAD_SHA256@", hashlib.sha256(payload).hexdigest())
            .replace("@PACKAGES@", " ".join(PACKAGES))
        )
        assert header.endswith("\n@@END_HEADER@@\n") and PAD_LINE.decode() in header
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        with open(tmp, "wb") as fh:
            fh.write(header.encode())
            fh.write(payload)
        tmp.chmod(0o755)
        tmp.replace(path)
        digest = sha256_file(path)
        sha_file.write_text(f"{digest}  {INSTALLER_NAME}\n")
        log(f"built {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - t0:.1f}s; sha256 {digest}")
        if out_dir is None:  # keep the cache small: only the current recipe
            for old in (cache_dir() / "standin").iterdir():
                if old.is_dir() and old != out:
                    shutil.rmtree(old, ignore_errors=True)
    return path, digest


def make_bad_variant(src: Path | str, dest_dir: Path | str, name: str = BAD_INSTALLER_NAME) -> tuple[Path, str]:
    """Copy SRC to DEST_DIR/NAME with one byte changed (in a comment line, so it would still
    install): a different sha256 for checksum-mismatch tests. Returns (path, its sha256)."""
    src = Path(src)
    dest = Path(dest_dir) / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fi:
        head = fi.read(1 << 16)
        i = head.find(PAD_LINE)
        if i < 0:
            raise ValueError(f"{src} has no pad line: not a stand-in installer")
        pos = i + len(PAD_LINE) - 2  # the "0" of "# pad: 0"
        fi.seek(0)
        with open(dest, "wb") as fo:
            shutil.copyfileobj(fi, fo, 1 << 20)
    with open(dest, "r+b") as fo:
        fo.seek(pos)
        fo.write(b"1")
    dest.chmod(0o755)
    return dest, sha256_file(dest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="directory for the installer (default: the cache)")
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    ap.add_argument("--bad", metavar="DIR", help="also write a one-byte-changed copy into DIR")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        path, digest = build_installer(a.out, force=a.force)
    except WheelhouseUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    res = {"path": str(path), "sha256": digest}
    if a.bad:
        bp, bd = make_bad_variant(path, a.bad)
        res.update(bad_path=str(bp), bad_sha256=bd)
    if a.json:
        print(json.dumps(res))
    else:
        print(f"{path} {digest}")
        if a.bad:
            print(f"{res['bad_path']} {res['bad_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
