"""The pinned conda installer table (``templates/installers.yaml``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from mlops_env.errors import UnsupportedError, UsageError
from mlops_env.paths import templates_dir

ARCH_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
DIST_LABELS = {"anaconda": "Anaconda", "miniconda": "Miniconda", "miniforge": "Miniforge"}


@dataclass(frozen=True)
class Installer:
    dist: str
    version: str
    arch: str
    url: str
    sha256: str | None  # pinned checksum
    sha256_url: str | None  # vendor-published checksum file (when no pinned value)
    prefix_name: str  # e.g. anaconda3, below the user's home
    terms_of_service: bool
    packages: tuple[str, ...]
    mirror: bool = False  # --conda-installer replaced the pinned download

    @property
    def label(self) -> str:
        return f"{DIST_LABELS.get(self.dist, self.dist)} {self.version}"


@functools.lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((templates_dir() / "installers.yaml").read_text(encoding="utf-8"))
    assert data.get("schema") == 1, "installers.yaml: unknown schema"
    return data


def resolve(dist: str, arch: str, *, url: str | None = None, sha256: str | None = None) -> Installer:
    t = table()
    if dist not in t or dist == "schema":
        raise UsageError(f"unknown Python distribution {dist!r}",
                         hint="use anaconda, miniconda or miniforge")
    entry = t[dist]
    norm = ARCH_ALIASES.get(arch)
    if norm is None or norm not in entry["files"]:
        raise UnsupportedError(f"{DIST_LABELS[dist]} has no installer for the box's architecture {arch!r}",
                               hint="use an x86_64 or aarch64 box")
    f = entry["files"][norm]
    if url is not None and sha256 is None:
        raise UsageError("--conda-installer needs --conda-sha256",
                         hint="pass the installer's sha256 (sha256sum INSTALLER) with --conda-sha256")
    if sha256 is not None and url is None:
        raise UsageError("--conda-sha256 needs --conda-installer",
                         hint="the pinned installers have their own checksums; pass both or neither")
    return Installer(
        dist=dist,
        version=str(entry["version"]) if url is None else "(from --conda-installer)",
        arch=norm,
        url=url or f["url"],
        sha256=sha256 or f.get("sha256"),
        sha256_url=None if url else f.get("sha256_url"),
        prefix_name=entry["prefix"],
        terms_of_service=bool(entry.get("terms_of_service")),
        packages=tuple(entry.get("packages") or ("numpy", "pandas", "pyarrow", "scikit-learn")),
        mirror=url is not None,
    )
