"""``mlops-env image ...`` for EC2 at the CLI (in-process moto, STAND-IN AWS): one-line errors
with a hint and the documented exit code, nothing half-made; list/share/copy/delete output.
The builder's steps are replaced by a recorder here (the e2e test runs them for real)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import seed
from typer.testing import CliRunner

from mlops_env.cli import app
from mlops_env.paths import get_paths
from mlops_env.providers.ec2.imagebuild import Ec2ImageBuild
from mlops_env.providers.ec2.session import Aws

NAME = "course-2026"


def _run(*args: str) -> tuple[int, dict[str, Any]]:
    r = CliRunner().invoke(app, ["--json", *args])
    return r.exit_code, json.loads(r.stdout)


@pytest.fixture
def built(moto_ec2: Any) -> Any:
    from ec2help import options
    from moto.ec2.models import EC2Backend

    orig = EC2Backend.create_image
    seed.patch_create_image_snapshot_tags()
    opts = options(python_dist="miniforge", smoke_test="off")
    data = Ec2ImageBuild(get_paths(), Aws("eu-west-1", None), NAME).build(opts, lambda m: None,
                                                                           steps=lambda *a: None)
    yield moto_ec2, data
    EC2Backend.create_image = orig  # type: ignore[method-assign]


@pytest.fixture
def offline(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # closed: any AWS call would fail


@pytest.mark.parametrize(("args", "code", "exit_code"), [
    (["image", "build", "ec2", "Bad_Name", "--region", "eu-west-1"], "invalid-name", 2),
    (["image", "share", "Bad_Name", "--account", "123456789012"], "invalid-name", 2),
    (["image", "share", NAME, "--account", "12345", "--region", "eu-west-1"], "invalid-account", 2),
    (["image", "share", NAME, "--account", "123456789012", "--account", "x", "--region", "eu-west-1"],
     "invalid-account", 2),
    (["image", "build", "ec2", NAME, "--region", "eu-west-1"], "terms-not-accepted", 4),
])
def test_bad_input_is_refused_before_any_aws_call(offline: None, args: list[str], code: str, exit_code: int) -> None:
    got, doc = _run(*args)
    err = doc["errors"][0]
    assert (got, err["code"]) == (exit_code, code), doc
    assert err["hint"] and "\n" not in err["message"]


def test_list_share_copy_and_delete(built: Any) -> None:
    ec2, data = built
    code, doc = _run("image", "list", "--region", "eu-west-1")
    assert code == 0, doc
    (row,) = doc["data"]["images"]
    assert (row["name"], row["provider"], row["id"], row["recipe"]) == (NAME, "ec2", data["id"], "current")
    assert row["monthly_cost_usd"] == round(row["snapshot_gb"] * 0.05, 2) and row["in_use_by"] == []
    # the plain list (no --region) looks in the regions this machine built images in
    r = CliRunner().invoke(app, ["image", "list"])
    assert NAME in r.stdout and "eu-west-1" in r.stdout and "$0.75/month" in r.stdout, r.stdout

    code, doc = _run("image", "share", NAME, "--region", "eu-west-1", "--account", "210987654321")
    assert code == 0, doc
    perms = ec2.describe_image_attribute(ImageId=data["id"], Attribute="launchPermission")["LaunchPermissions"]
    assert perms == [{"UserId": "210987654321"}]

    code, doc = _run("image", "copy", NAME, "--region", "eu-west-1", "--to-region", "us-east-1")
    assert code == 0, doc
    code, there = _run("image", "list", "--region", "us-east-1")
    assert [r["id"] for r in there["data"]["images"]] == [doc["data"]["image_id"]]

    # delete without --yes where nobody can answer: refused, kept
    code, doc = _run("image", "delete", NAME, "--region", "eu-west-1")
    assert code == 2 and doc["errors"][0]["code"] == "not-confirmed"
    assert ec2.describe_images(ImageIds=[data["id"]])["Images"]
    code, doc = _run("image", "delete", NAME, "--region", "eu-west-1", "--yes")
    assert code == 0, doc
    assert doc["data"]["verified"] == f"nothing tagged mlops-env:image-build={NAME} remains in eu-west-1"
    assert f"image {data['id']}" in doc["data"]["removed"]
    code, doc = _run("image", "list", "--region", "eu-west-1")
    assert doc["data"]["images"] == []


def test_unknown_image_and_image_in_another_region(built: Any) -> None:
    code, doc = _run("image", "delete", "nope", "--region", "eu-west-1", "--yes")
    assert code == 3 and doc["errors"][0]["code"] == "image-not-found"
    code, doc = _run("image", "share", NAME, "--region", "us-east-1", "--account", "210987654321")
    assert code == 3 and doc["errors"][0]["code"] == "image-other-region"
    assert f"image copy {NAME} --region eu-west-1 --to-region us-east-1" in doc["errors"][0]["hint"]
    code, doc = _run("up", "ec2", "ws", "--region", "us-east-1", "--from-image", NAME, "--dry-run",
                     "--allow-cidr", "203.0.113.7/32")
    assert code == 3 and doc["errors"][0]["code"] == "image-other-region", doc


def test_arch_mismatch_in_the_dry_run(built: Any) -> None:
    code, doc = _run("up", "ec2", "ws", "--region", "eu-west-1", "--from-image", NAME, "--instance-type",
                     "m7g.xlarge", "--dry-run", "--allow-cidr", "203.0.113.7/32")
    assert code == 2 and doc["errors"][0]["code"] == "image-arch-mismatch", doc


def test_delete_of_an_image_in_use_warns_and_deletes(built: Any) -> None:
    from ec2help import Harness

    ec2, data = built
    Harness().up("alice", from_image=NAME, python_dist="miniforge")
    r = CliRunner().invoke(app, ["--json", "image", "delete", NAME, "--region", "eu-west-1", "--yes"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["data"]["in_use_by"] == ["alice"]
    assert "alice" in doc["data"]["warnings"][0] and "keep running" in doc["data"]["warnings"][0]
    # the workstation is untouched
    res = ec2.describe_instances(Filters=[{"Name": "tag:mlops-env:name", "Values": ["alice"]}])
    assert [i["State"]["Name"] for r in res["Reservations"] for i in r["Instances"]] == ["running"]


def test_a_build_while_another_holds_the_lock_is_busy(built: Any) -> None:
    from mlops_env.images import image_lock

    with image_lock(get_paths(), "other"):
        code, doc = _run("image", "build", "ec2", "other", "--region", "eu-west-1", "--python-dist", "miniforge",
                         "--allow-cidr", "203.0.113.7/32")
    assert code == 10 and doc["errors"][0]["code"] == "busy", doc


def test_delete_without_region_of_an_ec2_image_says_to_pass_it(built: Any, docker_engine: Any) -> None:
    """Without --region `image delete` means the local Docker image; an EC2 image's name gets a
    hint naming --region and where this machine built EC2 images."""
    from mlops_env.providers.ec2.imagebuild import remember_region

    remember_region(get_paths(), "eu-west-1")
    code, doc = _run("image", "delete", NAME, "--yes")
    err = doc["errors"][0]
    assert (code, err["code"]) == (3, "image-not-found"), doc
    assert "pass --region REGION (this machine built EC2 images in: eu-west-1)" in err["hint"]
