"""``image build ec2``, ``up ec2 --from-image``, ``image list/share/copy/delete`` for EC2 (issue 13)
on moto in-process (STAND-IN AWS). OUR flow is what is tested: the builder's resources and tags,
the phases a killed build leaves and how the next run finishes or cleans them, the recipe on
the image, ``--from-image`` resolution (name, ami-..., auto) and its refusals, in-use detection.
The steps on the builder are replaced here by a recorder (they run for real in
test_e2e_images.py on the instance stand-in)."""

from __future__ import annotations

from typing import Any

import pytest
import seed
from ec2help import Harness, options, tagged, tags

from mlops_env.errors import BusyError, MlopsError, NotFoundError, UsageError
from mlops_env.images import read_state
from mlops_env.paths import get_paths
from mlops_env.providers.ec2.imagebuild import Ec2ImageBuild, builder_name, list_images
from mlops_env.providers.ec2.images import Ec2Images
from mlops_env.providers.ec2.session import Aws

NAME = "course-2026"


@pytest.fixture
def ec2(moto_ec2: Any) -> Any:
    from moto.ec2.models import EC2Backend

    orig = EC2Backend.create_image
    seed.patch_create_image_snapshot_tags()
    yield moto_ec2
    EC2Backend.create_image = orig  # type: ignore[method-assign]


def _opts(**kw: Any) -> Any:
    base = {"python_dist": "miniforge", "smoke_test": "off"}
    base.update(kw)
    return options(**base)


class Recorder:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[Any] = []
        self.fail = fail

    def __call__(self, ep: Any, host_key: str, opts: Any, progress: Any, on_step: Any) -> None:
        self.calls.append((ep, host_key))
        if self.fail:
            raise self.fail


def build(name: str = NAME, steps: Any = None, **kw: Any) -> tuple[dict[str, Any], list[str]]:
    msgs: list[str] = []
    b = Ec2ImageBuild(get_paths(), Aws("eu-west-1", None), name)
    data = b.build(_opts(**kw), msgs.append, steps=steps or Recorder())
    return data, msgs


def image_build_tagged(ec2: Any, name: str = NAME) -> dict[str, list[Any]]:
    f = [{"Name": "tag:mlops-env:image-build", "Values": [name]}]
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    return {
        "instances": [i for r in ec2.describe_instances(Filters=[*f, {"Name": "instance-state-name", "Values": live}])
                      ["Reservations"] for i in r["Instances"]],
        "security_groups": ec2.describe_security_groups(Filters=f)["SecurityGroups"],
        "key_pairs": ec2.describe_key_pairs(Filters=f)["KeyPairs"],
        "images": ec2.describe_images(Owners=["self"], Filters=f)["Images"],
        "snapshots": ec2.describe_snapshots(OwnerIds=["self"], Filters=f)["Snapshots"],
    }


def test_build_makes_a_tagged_builder_captures_it_and_removes_it(ec2: Any) -> None:
    seen: list[Any] = []

    def steps(ep: Any, host_key: str, opts: Any, progress: Any, on_step: Any) -> None:
        # While the steps run, the builder exists with all its resources tagged.
        now = image_build_tagged(ec2)
        seen.append(now)
        (inst,) = now["instances"]
        t = tags(inst)
        assert t["mlops-env:name"] == builder_name(NAME) and t["managed-by"] == "mlops-env"
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        assert " ".join(t["mlops-env:host-key"].split()[:2]) == host_key  # pinned = handed over
        assert ep.user == "ubuntu"
        assert len(now["security_groups"]) == 1 and len(now["key_pairs"]) == 1
        assert read_state(get_paths(), NAME)["phase"] == "steps"

    data, msgs = build(steps=steps)
    assert seen
    assert data["action"] == "created" and data["provider"] == "ec2" and data["region"] == "eu-west-1"
    assert data["recipe"] == "current" and data["recipe_labels"]["distribution"] == "miniforge"
    assert data["recipe_labels"]["base-image"] == seed.NOBLE_AMD64 and data["recipe_labels"]["user"] == "ubuntu"
    # (moto's CreateImage always reports a 15 GB snapshot; AWS: the builder's --disk-gb)
    assert data["monthly_cost_usd"] == round(data["snapshot_gb"] * 0.05, 2) and data["snapshot_gb"] == 15
    assert data["builder"]["instance_type"] == "t3.xlarge" and data["builder"]["hourly_usd"] > 0
    # costs shown before anything is made (storage) and for the builder
    assert any("at most $1.50/month" in m for m in msgs), msgs  # 30 GB (--disk-gb) x $0.05
    assert data["storage_estimate"]["usd_per_month_at_most"] == 1.5
    assert msgs.index(next(m for m in msgs if "at most $1.50/month" in m)) < \
        msgs.index(next(m for m in msgs if m.startswith("launching builder")))  # shown before anything is made
    assert any(m.startswith("builder compute while it runs: t3.xlarge") for m in msgs), msgs
    left = image_build_tagged(ec2)
    assert left["instances"] == [] and left["security_groups"] == [] and left["key_pairs"] == []
    (img,) = left["images"]
    assert img["ImageId"] == data["id"] and tags(img)["mlops-env:image:scripts-hash"]
    assert {s["SnapshotId"] for s in left["snapshots"]} == set(data["snapshots"])
    assert read_state(get_paths(), NAME) is None
    # a builder is no workstation: `list` does not show it
    assert tagged(ec2, NAME) == {k: [] for k in tagged(ec2, NAME)}


def test_a_second_build_of_an_existing_image_is_refused(ec2: Any) -> None:
    build()
    with pytest.raises(UsageError) as e:
        build()
    assert e.value.code == "image-exists" and "image delete course-2026 --region eu-west-1" in (e.value.hint or "")


def test_a_failed_step_removes_the_builder_and_keeps_no_image(ec2: Any) -> None:
    with pytest.raises(MlopsError, match="conda broke"):
        build(steps=Recorder(MlopsError("conda broke", code="step-failed")))
    assert all(v == [] for v in image_build_tagged(ec2).values())
    assert read_state(get_paths(), NAME) is None


class Killed(BaseException):
    """SIGKILL played in-process: nothing of the run's own cleanup may happen after it."""


def _no_cleanup(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlops_env.images as im
    import mlops_env.providers.ec2.imagebuild as ib

    monkeypatch.setattr(ib.Ec2ImageBuild, "cleanup", lambda self, p: [])
    monkeypatch.setattr(im, "clear_state", lambda paths, name: None)


def test_killed_during_the_steps_is_cleaned_by_the_next_build(ec2: Any) -> None:
    def steps(*a: Any) -> None:
        raise Killed()

    with pytest.MonkeyPatch.context() as mp:
        _no_cleanup(mp)
        with pytest.raises(Killed):
            build(steps=steps)
    assert read_state(get_paths(), NAME)["phase"] == "steps"
    assert len(image_build_tagged(ec2)["instances"]) == 1
    data, msgs = build()
    assert data["action"] == "created"
    assert any(c.startswith("instance ") for c in data["cleaned"]), data.get("cleaned")
    assert any(c.startswith("security group ") for c in data["cleaned"]) and any(c.startswith("key pair ") for c in data["cleaned"])
    left = image_build_tagged(ec2)
    assert left["instances"] == [] and left["security_groups"] == [] and len(left["images"]) == 1


def test_killed_after_create_image_is_finished_by_the_next_build(ec2: Any) -> None:
    from mlops_env.providers.ec2.resources import Ec2

    def killed_teardown(self: Any, progress: Any, **kw: Any) -> Any:
        raise Killed()

    with pytest.MonkeyPatch.context() as mp:
        _no_cleanup(mp)
        mp.setattr(Ec2, "teardown", killed_teardown)
        with pytest.raises(Killed):
            build()
    st = read_state(get_paths(), NAME)
    assert st["phase"] == "committed"
    assert len(image_build_tagged(ec2)["instances"]) == 1  # the stopped builder is still there
    data, _ = build()
    assert data["action"] == "finished" and data["id"] == st["image_id"]
    left = image_build_tagged(ec2)
    assert left["instances"] == [] and left["key_pairs"] == [] and len(left["images"]) == 1
    assert read_state(get_paths(), NAME) is None


def test_a_build_while_another_holds_the_lock_is_refused(ec2: Any) -> None:
    from mlops_env.images import image_lock

    with image_lock(get_paths(), NAME):
        with pytest.raises(BusyError):
            build()
    assert all(v == [] for v in image_build_tagged(ec2).values())


def test_invalid_name_and_terms_are_refused_before_any_call(ec2: Any) -> None:
    with pytest.raises(UsageError) as e:
        build(name="Bad_Name")
    assert e.value.code == "invalid-name"
    from mlops_env.errors import PrereqError

    with pytest.raises(PrereqError):
        build(python_dist="anaconda")
    assert all(v == [] for v in image_build_tagged(ec2).values())


# ------------------------------------------------------------------------- up --from-image


def test_up_from_image_boots_the_image_as_a_fresh_up_would(ec2: Any) -> None:
    data, _ = build()
    h = Harness()
    prov = h.up("alice", from_image=NAME, python_dist="miniforge")
    (inst,) = tagged(ec2, "alice")["instances"]
    assert inst["ImageId"] == data["id"]
    t = tags(inst)
    assert t["mlops-env:from-image"] == NAME and t["mlops-env:host-key"]
    assert inst["MetadataOptions"]["HttpTokens"] == "required" and inst["KeyName"] == "mlops-env-alice"
    vol = ec2.describe_volumes(VolumeIds=[inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]])["Volumes"][0]
    assert vol["Encrypted"] is True
    assert prov.provider_data["from_image"] == NAME
    assert any(m.startswith(f"from image {NAME} ({data['id']})") for m in h.progress), h.progress
    # the user-data host key handover as for a fresh up
    from ec2help import user_data_host_key

    pub, _ = user_data_host_key(ec2, inst["InstanceId"])
    assert prov.host_key.split()[:2] == pub.split()[:2]
    rows = list_images(Aws("eu-west-1", None))
    assert [r["in_use_by"] for r in rows] == [["alice"]]


def test_up_from_an_ami_id_and_auto(ec2: Any) -> None:
    data, _ = build()
    h = Harness()
    h.up("bob", from_image=data["id"])
    assert tagged(ec2, "bob")["instances"][0]["ImageId"] == data["id"]
    h.up("carol", from_image="auto", python_dist="miniforge")
    assert tagged(ec2, "carol")["instances"][0]["ImageId"] == data["id"]
    assert any("the newest of the current recipe" in m for m in h.progress)
    # auto with no image of this recipe (another distribution): a fresh bootstrap, and it says so
    h.up("dave", from_image="auto", python_dist="miniconda", accept_anaconda_tos=True)
    assert tagged(ec2, "dave")["instances"][0]["ImageId"] == seed.NOBLE_AMD64
    assert any("a fresh bootstrap" in m for m in h.progress), h.progress
    # --from-image only matters for a new instance: said so, nothing replaced
    h.up("dave", from_image=NAME, python_dist="miniconda", accept_anaconda_tos=True)
    assert any("applies only to a new instance" in w for w in h.warnings), h.warnings
    assert [i["ImageId"] for i in tagged(ec2, "dave")["instances"]] == [seed.NOBLE_AMD64]


def test_from_image_refusals_make_nothing(ec2: Any) -> None:
    h = Harness()
    with pytest.raises(NotFoundError) as e:
        h.up("eve", from_image="nope")
    assert e.value.code == "image-not-found"
    # an image that exists only in another region: say so and name `image copy`
    build()
    h2 = Harness()
    with pytest.raises(NotFoundError) as e2:
        h2.up("frank", from_image=NAME, region="us-east-1")
    assert e2.value.code == "image-other-region" and "eu-west-1" in e2.value.message
    assert "image copy course-2026 --region eu-west-1 --to-region us-east-1" in (e2.value.hint or "")
    # architecture mismatch with the instance type
    with pytest.raises(UsageError) as e3:
        h.up("eve", from_image=NAME, instance_type="m7g.xlarge")
    assert e3.value.code == "image-arch-mismatch" and "x86_64" in e3.value.message
    for n in ("eve", "frank"):
        assert tagged(ec2, n)["instances"] == []
        assert tagged(ec2, n)["security_groups"] == [] and tagged(ec2, n)["key_pairs"] == []


# ------------------------------------------------------------------------- delete


def test_delete_after_a_killed_build_removes_the_builder_and_the_state(ec2: Any) -> None:
    import json

    from typer.testing import CliRunner

    from mlops_env.cli import app

    def steps(*a: Any) -> None:
        raise Killed()

    with pytest.MonkeyPatch.context() as mp:
        _no_cleanup(mp)
        with pytest.raises(Killed):
            build(steps=steps)
    assert len(image_build_tagged(ec2)["instances"]) == 1 and read_state(get_paths(), NAME)
    r = CliRunner().invoke(app, ["--json", "image", "delete", NAME, "--region", "eu-west-1"])  # no image: no question
    doc = json.loads(r.stdout)
    assert r.exit_code == 0, doc
    assert doc["data"]["deleted"] is False and any("instance" in x for x in doc["data"]["removed"])
    assert all(v == [] for v in image_build_tagged(ec2).values())
    assert read_state(get_paths(), NAME) is None


def test_delete_removes_every_image_of_the_name_and_its_snapshots(ec2: Any) -> None:
    data, _ = build()
    imgs = Ec2Images(Aws("eu-west-1", None), NAME)
    out = imgs.delete(lambda m: None)
    assert f"image {data['id']}" in out["removed"]
    assert all(f"snapshot {sid}" in out["removed"] for sid in data["snapshots"])
    assert all(v == [] for v in image_build_tagged(ec2).values())


# ------------------------------------------------------------------------- a class from an image


def test_a_class_starts_every_student_from_the_rosters_image(ec2: Any, tmp_path: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`image:` in a roster: resolved once for the class (said in the plan), every student's
    instance boots that AMI; an image only in another region stops `class up` before anything is
    made, naming `image copy`. The box side is the TEST-ONLY recorded ready answer."""
    from mlops_env.classroom import fleet
    from mlops_env.classroom.roster import load
    from mlops_env.ssh.keys import generate_host_keypair

    monkeypatch.setenv(fleet.ENV_TEST_BOX, "ready")
    data, _ = build()

    def roster(region: str) -> Any:
        body = "".join(f"  - name: {n}\n    public_key: {generate_host_keypair(n).public_line}\n" for n in ("ann", "ben"))
        p = tmp_path / f"{region}.yaml"
        p.write_text(f"class: img26\nregion: {region}\ninstance_type: t3.large\nallow_cidr: 198.51.100.0/24\n"
                     f"image: {NAME}\nstudents:\n{body}")
        return load(p)

    opts = fleet.UpOptions(flags={"python_dist": "miniforge", "smoke_test": "off"})
    with pytest.raises(NotFoundError) as e:
        fleet.up(roster("us-east-1"), get_paths(), opts, fleet.Callbacks(confirm=lambda q: True))
    assert e.value.code == "image-other-region" and "image copy" in (e.value.hint or "")
    assert [i for r in ec2.describe_instances(Filters=[{"Name": "tag:mlops-env:class", "Values": ["img26"]}])
            ["Reservations"] for i in r["Instances"]] == []

    d = fleet.up(roster("eu-west-1"), get_paths(), opts, fleet.Callbacks(confirm=lambda q: True))
    assert d["failed"] == 0, d["students"]
    assert any(line.strip().startswith(f"image: from image {NAME}") for line in d["plan"]), d["plan"]
    insts = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:mlops-env:class", "Values": ["img26"]}])
             ["Reservations"] for i in r["Instances"]]
    assert len(insts) == 2 and {i["ImageId"] for i in insts} == {data["id"]}
    assert {tags(i)["mlops-env:from-image"] for i in insts} == {NAME}
