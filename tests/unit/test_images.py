"""Prebuilt images (issue 13): names, the recipe and its current/stale verdict, the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_env import config as cfg
from mlops_env import images
from mlops_env.errors import UsageError


@pytest.mark.parametrize("bad", ["", "Bad", "a_b", "-x", "x-", "a" * 33, "a b", "../x"])
def test_image_names_follow_the_workstation_rule(bad: str) -> None:
    with pytest.raises(UsageError) as e:
        images.validate_image_name(bad)
    assert e.value.code == "invalid-name" and "image build docker" in (e.value.hint or "")


def _opts(tmp_path: Path, **flags: object) -> cfg.Resolved:
    return cfg.resolve(flags, config_path=None, default_config=tmp_path / "none.yaml", env={})


def _labels(rec: dict[str, str]) -> dict[str, str]:
    return {images.LABEL_PREFIX + k: v for k, v in rec.items()}


def test_recipe_is_current_today_and_stale_when_scripts_or_installer_change(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    rec = images.recipe(_opts(tmp_path), "amd64")
    assert rec["arch"] == "x86_64" and rec["distribution"] == "anaconda" and rec["base-image"] == "ubuntu:24.04"
    assert rec["installer-mirror"] == "0" and len(rec["installer-sha256"]) == 64
    assert images.recipe_status(_labels(rec)) == ("current", [])
    old = dict(rec, **{"scripts-hash": "0" * 16})
    assert images.recipe_status(_labels(old)) == ("stale", ["the step scripts changed"])
    old = dict(rec, **{"installer-sha256": "f" * 64})
    assert images.recipe_status(_labels(old)) == ("stale", ["the pinned anaconda installer changed"])
    # a step script edited today makes yesterday's image stale
    real = images.template
    monkeypatch.setattr(images, "template", lambda n: real(n) + ("\n# changed" if n == "conda.sh" else ""))
    assert images.recipe_status(_labels(rec))[0] == "stale"


def test_a_mirror_installer_is_not_compared_with_the_pinned_table(tmp_path: Path) -> None:
    rec = images.recipe(_opts(tmp_path, conda_installer="file:///opt/x.sh", conda_sha256="a" * 64), "arm64")
    assert rec["installer-mirror"] == "1" and rec["installer-sha256"] == "a" * 64 and rec["arch"] == "aarch64"
    assert images.recipe_status(_labels(rec)) == ("current", [])


@pytest.mark.parametrize("value,ok", [("auto", True), ("course-2026", True), ("Nope!", False), ("a_b", False)])
def test_from_image_option_is_validated(tmp_path: Path, value: str, ok: bool) -> None:
    if ok:
        assert _opts(tmp_path, from_image=value)["from_image"] == value
    else:
        with pytest.raises(UsageError) as e:
            _opts(tmp_path, from_image=value)
        assert "--from-image" in e.value.message
