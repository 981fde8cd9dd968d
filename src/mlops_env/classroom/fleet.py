"""``mlops-env class up|status|stop|start|down``: every student's workstation through the same
pipeline and provider as ``up ec2``, side by side in a bounded pool.

    roster -> keys (inline, GitHub)      everything that can be refused, before anything is made:
           -> clashes, removed students   a name taken by a workstation outside the class, the
           -> costs, the question         vCPUs the class needs, the price
    pool   -> pipeline.up per student     tagged mlops-env:class=CLASS; a quota error stops the
                                          launches not yet started, keeps the running ones
    table  -> one row per student         exit 1 if any failed

Converges like ``up``: a student whose workstation is ready and whose instance exists is left
alone (no AWS call, no SSH), a new student is created, a run killed anywhere is finished by the
next (each workstation's own record and ``up``'s adoption of an in-flight launch), and students
no longer listed are removed after a question (or ``--yes``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_env.errors import MlopsError, PrereqError, UsageError
from mlops_env.providers.ec2 import TAG_CLASS, TAG_NAME, TAG_TOOL, TOOL_VALUE

if TYPE_CHECKING:
    from mlops_env.classroom.roster import Roster
    from mlops_env.paths import Paths
    from mlops_env.state import Record

log = logging.getLogger(__name__)

QUOTA_CODES = ("VcpuLimitExceeded", "InstanceLimitExceeded")
QUOTA_CODE = "L-1216C47A"  # Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances, vCPUs
#: TEST-ONLY seam (docs/class.md): the box side of each student is replaced by a recorded ready
#: answer; AWS is still called for real (moto). Never set it for real use.
ENV_TEST_BOX = "MLOPS_ENV_TEST_CLASS_BOX"
DEFAULT_JOBS = 50  # students at once: most of their time is waiting (instances, box installs)
AWS_IN_FLIGHT = 16  # AWS requests at once for the whole class (providers.ec2.limits)


@dataclass
class Row:
    """One student's outcome."""

    student: str
    workstation: str
    status: str  # created | unchanged | resumed | failed | not launched | removed
    detail: str = ""
    code: str | None = None
    host: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"student": self.student, "workstation": self.workstation, "status": self.status,
                "detail": self.detail, "code": self.code, "host": self.host, "seconds": round(self.seconds, 3)}


@dataclass
class Callbacks:
    progress: Callable[[str], None] = lambda msg: None
    confirm: Callable[[str], bool] = lambda question: False  # honours --yes
    warn: Callable[[str], None] = lambda msg: None


@dataclass
class UpOptions:
    flags: dict[str, Any] = field(default_factory=dict)  # python_dist, smoke_test, ...
    config: Path | None = None
    jobs: int = DEFAULT_JOBS
    dry_run: bool = False


def class_records(paths: Paths, class_name: str) -> list[Record]:
    from mlops_env.state import Store

    return [r for r in Store(paths).all() if r.provider_data.get("class") == class_name]


def _aws(roster: Roster, profile: str | None = None) -> Any:
    from mlops_env.providers.ec2.shared import session_for

    return session_for(roster.region, profile)


def _resolve(roster: Roster, paths: Paths, name: str, opts: UpOptions) -> Any:
    from mlops_env import config as cfg
    from mlops_env.state import Store

    flags = {**roster.options(), **{k: v for k, v in opts.flags.items() if v is not None}}
    known = Store(paths).find(name)
    mine = known if known is not None and known.provider == "ec2" else None
    return cfg.resolve(flags, config_path=opts.config, default_config=paths.config_file,
                       workstation=mine.options if mine else None,
                       workstation_sources=mine.option_sources if mine else None)


def _live_by_name(aws: Any, class_name: str, names: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """({workstation: instance} of the class's live instances, [names taken by instances that
    are not in the class]): one DescribeInstances per 100 names."""
    from mlops_env.providers.ec2.resources import LIVE_STATES, tags_of
    from mlops_env.providers.ec2.session import chunks

    live: dict[str, dict[str, Any]] = {}
    foreign: list[str] = []
    for batch in chunks(sorted(names), 100) if names else []:
        res = aws.paginate("ec2", "describe_instances", "Reservations", Filters=[
            {"Name": f"tag:{TAG_NAME}", "Values": batch}, {"Name": f"tag:{TAG_TOOL}", "Values": [TOOL_VALUE]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)}])
        for inst in (i for r in res for i in r.get("Instances") or []):
            t = tags_of(inst)
            if t.get(TAG_CLASS) == class_name:
                live[t[TAG_NAME]] = inst
            else:
                foreign.append(t[TAG_NAME])
    return live, foreign


@dataclass
class Plan:
    create: list[str]  # students
    resume: list[str]  # a record exists but is not ready, or its instance is gone
    keep: list[str]
    update: list[str]  # ready and running, but the roster wants its box otherwise (keys, access, options)
    held: list[str]  # in keep: would be updated, but its instance is stopped
    remove: list[Record]
    hourly: float | None
    price_source: str
    disk_monthly: float | None
    vcpus_each: int
    vcpu_limit: float | None
    lines: list[str]


def box_digest(keys: tuple[str, ...], instructor_access: bool) -> str:
    """What the box side of a student's workstation was last set up for: their public keys (type
    and base64; comments do not matter) and whether the instructor's key stays."""
    import hashlib
    import json

    wanted = sorted({" ".join(k.split()[:2]) for k in keys})
    return hashlib.sha256(json.dumps([wanted, instructor_access]).encode()).hexdigest()[:16]


def _box_changed(roster: Roster, paths: Paths, opts: UpOptions, rec: Record, keys: tuple[str, ...]) -> str | None:
    """Why a ready workstation needs `up` again for the roster as it is now, or None."""
    if rec.provider_data.get("box_digest") != box_digest(keys, roster.instructor_access):
        return "keys or instructor access"
    o = _resolve(roster, paths, rec.name, opts)
    changed = [k for k in roster.options() if k != "from_image" and o.get(k) != rec.options.get(k)]
    return ", ".join(changed) if changed else None


def plan(roster: Roster, paths: Paths, opts: UpOptions, aws: Any,
         keys: dict[str, tuple[str, ...]] | None = None) -> Plan:
    """What ``class up`` would do; read-only AWS calls only. Refuses name clashes. With
    ``keys`` (each student's public keys as now), a ready workstation whose box the roster now
    wants otherwise (keys, instructor access, options) is updated (`up` again) when it runs."""
    from mlops_env.providers.ec2 import pricing
    from mlops_env.providers.ec2.resources import Ec2, state_of
    from mlops_env.state import Store

    store = Store(paths)
    names = {s.name: s.workstation(roster.name) for s in roster.students}
    for st, ws in names.items():
        rec = store.find(ws)
        if rec is not None and rec.provider_data.get("class") != roster.name:
            raise UsageError(
                f"{roster.path}:{roster.student(st).line if roster.student(st) else 1}: the workstation {ws!r} "  # type: ignore[union-attr]
                f"of student {st!r} already exists and is not in class {roster.name!r}",
                hint=f"rename the student or the class, or `mlops-env down {ws}` first", code="class-name-clash")
    live, foreign = _live_by_name(aws, roster.name, list(names.values()))
    if foreign:
        raise UsageError(
            f"{len(foreign)} instance(s) in {aws.region} already carry the names of this class's workstations "
            f"without its tag {TAG_CLASS}={roster.name}: {', '.join(sorted(foreign)[:5])}",
            hint="rename the class (class:) or remove those workstations first", code="class-name-clash")
    create, resume, keep, update, held = [], [], [], [], []
    why_update: list[str] = []
    for st, ws in names.items():
        rec = store.find(ws)
        if rec is None:
            create.append(st)
        elif rec.phase == "ready" and ws in live:
            why = _box_changed(roster, paths, opts, rec, keys[st]) if keys is not None else None
            if why is None:
                keep.append(st)
            elif state_of(live[ws]) == "running":
                update.append(st)
                why_update.append(f"{st} ({why})")
            else:  # a stopped box is not started for it: the change waits for `class start`
                keep.append(st)
                held.append(st)
        else:
            resume.append(st)
    listed = set(names.values())
    remove = [r for r in class_records(paths, roster.name) if r.name not in listed]
    first = roster.students[0].workstation(roster.name)
    o = _resolve(roster, paths, first, opts)
    itype = o["instance_type"]
    t = Ec2(aws, first).type_info(itype)
    price = pricing.price_for(aws, itype, spot=bool(o["spot"]))
    limit = vcpu_limit(aws)
    n = len(roster.students)
    hours = roster.max_hours_value()
    lines = [f"class {roster.name}: {n} student(s) in {aws.region}, {t.describe()} each",
             f"  create {len(create)}, finish or resume {len(resume)}, update {len(update)}, keep {len(keep)}, "
             f"remove {len(remove)}"
             + (f" ({', '.join(r.provider_data.get('student') or r.name for r in remove)})" if remove else "")]
    if update:
        more = f", and {len(update) - 5} more" if len(update) > 5 else ""
        lines.append(f"  update: {', '.join(why_update[:5])}{more}")
    if held:
        lines.append(f"  {len(held)} stopped workstation(s) have roster changes ({', '.join(held)}): they apply "
                     "at the next `class up` after `class start`")
    if price.hourly is not None:
        daily = price.hourly * n * (hours or 24)
        lines.append(f"  cost: ${price.hourly:.4f}/hour each x {n} = ${price.hourly * n:.2f}/hour while all run; "
                     f"${daily:.2f}/day at {f'max_hours {hours:g}' if hours else '24 hours (no max_hours)'} "
                     f"({price.hourly_source})")
    else:
        lines.append(f"  cost: price of {itype} unknown ({price.hourly_source})")
    disk = price.disk_monthly(int(o["disk_gb"]))
    if disk is not None:
        lines.append(f"  disks: {o['disk_gb']} GB gp3 each, ${disk:.2f}/month each = ${disk * n:.2f}/month "
                     "for the class, billed while stopped too")
    if roster.image:
        # Once for the class, before anything is made: an unknown image, one only in another region
        # (named with `image copy`) or of another architecture stops here, not 30 times later.
        from mlops_env.providers.ec2.imagebuild import resolve_for_up

        _, how, _ = resolve_for_up(Ec2(aws, first), roster.image, t.arch, o)
        lines.append(f"  image: {how}")
    need = t.vcpus * n
    lines.append(f"  vCPUs: {need} needed ({t.vcpus} x {n}); on-demand quota in {aws.region}: "
                 + (f"{limit:g}" if limit is not None else "unknown (Service Quotas not readable)"))
    return Plan(create, resume, keep, update, held, remove, price.hourly, price.hourly_source, disk, t.vcpus, limit, lines)


def vcpu_limit(aws: Any) -> float | None:
    try:
        r = aws.call("service-quotas", "get_service_quota", ServiceCode="ec2", QuotaCode=QUOTA_CODE)
        return float(r["Quota"]["Value"])
    except (MlopsError, KeyError, TypeError, ValueError) as e:
        log.debug("vCPU quota unknown: %s", getattr(e, "message", e))
        return None


def quota_message(aws: Any, roster: Roster, vcpus_each: int, limit: float | None) -> tuple[str, str]:
    need = vcpus_each * len(roster.students)
    have = f"{limit:g}" if limit is not None else "unknown"
    msg = (f"the EC2 vCPU quota in {aws.region} is used up: class {roster.name} needs {need} vCPUs "
           f"({vcpus_each} x {len(roster.students)} students), the limit is {have}")
    hint = (f"request more in Service Quotas: 'Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances' "
            f"({QUOTA_CODE}): aws service-quotas request-service-quota-increase --region {aws.region} "
            f"--service-code ec2 --quota-code {QUOTA_CODE} --desired-value {need}; then run `mlops-env class up` "
            "again (the running workstations are kept)")
    return msg, hint


def _is_quota(e: BaseException) -> bool:
    from mlops_env.providers.ec2.session import aws_code

    return aws_code(e) in QUOTA_CODES or getattr(e, "code", None) == "aws-vcpu-limit"


def up(roster: Roster, paths: Paths, opts: UpOptions, cb: Callbacks, *,
       box: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """``class up``; the lookups that are the same for every student (type, zones, subnets,
    image, price) are made once (``providers.ec2.shared``). ``box``: see ``_up``."""
    from mlops_env.providers.ec2.shared import shared_lookups

    with shared_lookups(aws_in_flight=AWS_IN_FLIGHT):
        return _up(roster, paths, opts, cb, box=box)


def _up(roster: Roster, paths: Paths, opts: UpOptions, cb: Callbacks, *,
        box: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """``class up``. ``box(req, paths, events)`` runs one student's ``up`` (default
    ``pipeline.up``; the TEST-ONLY seam ``MLOPS_ENV_TEST_CLASS_BOX=ready`` provisions only and
    records a ready answer). Returns the envelope data; ``data["failed"]`` counts failures."""
    from mlops_env.classroom import ghkeys
    from mlops_env.installers import DIST_LABELS, table

    t0 = time.monotonic()
    aws = _aws(roster, opts.flags.get("profile"))
    keys = ghkeys.resolve_all(roster)  # an unknown GitHub user stops the run before anything is made
    p = plan(roster, paths, opts, aws, keys)
    data: dict[str, Any] = {"class": roster.name, "region": aws.region, "plan": p.lines,
                            "create": p.create, "resume": p.resume, "update": p.update, "keep": p.keep,
                            "remove": [r.provider_data.get("student") or r.name for r in p.remove],
                            "hourly_usd_each": p.hourly, "disk_monthly_usd_each": p.disk_monthly,
                            "vcpus_needed": p.vcpus_each * len(roster.students), "vcpu_limit": p.vcpu_limit}
    for line in p.lines:
        cb.progress(line)
    if opts.dry_run:
        data["dry_run"] = True
        return data
    o = _resolve(roster, paths, roster.students[0].workstation(roster.name), opts)
    dist = o["python_dist"]
    if (table().get(dist) or {}).get("terms_of_service") and not o["accept_anaconda_tos"]:
        label = DIST_LABELS.get(dist, dist)
        raise PrereqError(f"{label} on every workstation requires accepting Anaconda's terms of service",
                          hint="pass --accept-anaconda-tos (https://www.anaconda.com/legal/terms), or "
                          "--python-dist miniforge (conda-forge, no terms)", code="terms-not-accepted")
    todo = p.create + p.resume + p.update
    if p.remove:
        who = ", ".join(r.provider_data.get("student") or r.name for r in p.remove)
        if not cb.confirm(f"Remove the workstations of {len(p.remove)} student(s) no longer in the roster ({who})?"):
            raise UsageError(f"{len(p.remove)} student(s) are no longer in {roster.path}: {who}",
                             hint="re-run with --yes to remove their workstations, or put them back in the roster",
                             code="class-remove-unconfirmed")
    made = p.create + p.resume  # what costs money is asked for; an update of running boxes is not
    if made and not cb.confirm(f"Create or finish {len(made)} workstation(s) of class {roster.name} "
                               f"(about ${(p.hourly or 0) * len(made):.2f}/hour while they run)?"):
        raise UsageError(f"class up of {roster.name} not confirmed: nothing was created",
                         hint="re-run with --yes (the costs are above), or --dry-run to look only",
                         code="class-unconfirmed")
    rows: list[Row] = [Row(st, roster.student(st).workstation(roster.name), "unchanged",  # type: ignore[union-attr]
                           "stopped; roster changes wait for `class start` and `class up`" if st in p.held
                           else "ready; instance exists") for st in p.keep]
    for rec in p.remove:
        rows.append(_remove(paths, rec, cb))
    from mlops_env.providers.ec2.limits import halt_launches, launch_halted

    instructor = _instructor_key(paths)
    quota: list[MlopsError] = []
    runner = box or _box_runner()

    def one(st: str) -> Row:
        s = roster.student(st)
        assert s is not None
        ws = s.workstation(roster.name)
        t1 = time.monotonic()

        def not_launched(seconds: float = 0.0) -> Row:
            return Row(st, ws, "not launched", "stopped after the vCPU quota error", "aws-vcpu-limit",
                       seconds=seconds)

        if launch_halted():  # the gate again, in the provider, right before each launch
            return not_launched()
        try:
            return _one(roster, paths, opts, s.name, ws, keys[st], instructor, runner, cb, t1,
                        "created" if st in p.create else "updated" if st in p.update else "resumed")
        except MlopsError as e:
            if e.code == "class-halted":
                return not_launched(time.monotonic() - t1)
            if _is_quota(e):
                halt_launches("the class hit the EC2 vCPU quota")
                quota.append(e)
            return Row(st, ws, "failed", e.message, e.code, seconds=time.monotonic() - t1)
        except Exception as e:  # noqa: BLE001 - one student's bug must not stop the others
            log.exception("class up: %s", ws)
            return Row(st, ws, "failed", f"unexpected error: {type(e).__name__}: {e}", "internal",
                       seconds=time.monotonic() - t1)

    if todo:
        with ThreadPoolExecutor(max_workers=max(1, min(opts.jobs, len(todo))), thread_name_prefix="student") as pool:
            rows += list(pool.map(one, todo))
    order = {s.name: i for i, s in enumerate(roster.students)}
    rows.sort(key=lambda r: order.get(r.student, len(order)))
    data["students"] = [r.as_dict() for r in rows]
    data["failed"] = sum(1 for r in rows if r.status in ("failed", "not launched"))
    data["seconds"] = round(time.monotonic() - t0, 3)
    if quota:
        msg, hint = quota_message(aws, roster, p.vcpus_each, p.vcpu_limit)
        data["quota"] = {"message": msg, "hint": hint}
    _save_class(paths, roster, keys)
    return data


def _one(roster: Roster, paths: Paths, opts: UpOptions, student: str, ws: str, keys: tuple[str, ...],
         instructor: str, runner: Callable[..., dict[str, Any]], cb: Callbacks, t1: float, verb: str) -> Row:
    from mlops_env.classroom.steps import StudentKeysStep
    from mlops_env.pipeline import Events, UpRequest

    options = _resolve(roster, paths, ws, opts)
    step = StudentKeysStep(keys, instructor if roster.instructor_access else None)
    req = UpRequest(name=ws, provider="ec2", options=options,
                    provider_data={"class": roster.name, "student": student,
                                   "box_digest": box_digest(keys, roster.instructor_access)},
                    jobs=2, extra_steps=[step])
    warnings: list[str] = []
    events = Events(progress=lambda m: cb.progress(f"{student}: {m}"),
                    warn=lambda m: warnings.append(m), confirm=lambda q: False)
    out = runner(req, paths, events)
    for w in warnings:
        cb.warn(f"{student}: {w}")
    return Row(student, ws, verb, "ready" + (f" ({len(warnings)} warning(s))" if warnings else ""),
               host=out.get("host"), seconds=time.monotonic() - t1)


def _box_runner() -> Callable[..., dict[str, Any]]:
    from mlops_env import pipeline

    seam = os.environ.get(ENV_TEST_BOX)
    if seam == "ready":
        log.warning("TEST SEAM %s=ready: the box side of every student is a recorded ready answer", ENV_TEST_BOX)
        return _recorded_ready
    if seam == "provision":
        log.warning("TEST SEAM %s=provision: the instances are made, no box is contacted", ENV_TEST_BOX)
        return _provision_only
    return pipeline.up


def _provision_only(req: Any, paths: Paths, events: Any) -> dict[str, Any]:
    """TEST-ONLY: ``up ec2 --provision-only`` for each student (the next ``class up`` finishes them)."""
    from dataclasses import replace

    from mlops_env import pipeline

    return pipeline.up(replace(req, provision_only=True), paths, events)


def _recorded_ready(req: Any, paths: Paths, events: Any) -> dict[str, Any]:
    """TEST-ONLY: make the instance exist (every AWS call of ``up ec2``) and pin its host key,
    then record the answer a ready box gives (its steps unchanged), without SSH."""
    from dataclasses import replace

    from mlops_env import pipeline
    from mlops_env.state import Store

    data = pipeline.up(replace(req, provision_only=True), paths, events)
    store = Store(paths)
    rec = store.load(req.name)
    rec.phase = "ready"
    rec.steps.update({s: {"id": s, "status": "unchanged", "message": "recorded ready answer (test seam)"}
                      for s in ("base", "conda", "docker", "student-keys")})
    store.save(rec)
    return data


def _instructor_key(paths: Paths) -> str:
    from mlops_env.ssh.keys import ensure_keypair

    return ensure_keypair(paths).public_line


def _remove(paths: Paths, rec: Record, cb: Callbacks) -> Row:
    t1 = time.monotonic()
    student = str(rec.provider_data.get("student") or rec.name)
    try:
        removed = remove_workstation(paths, rec, lambda m: cb.progress(f"{student}: {m}"))
        return Row(student, rec.name, "removed", "; ".join(removed[-1:]), seconds=time.monotonic() - t1)
    except MlopsError as e:
        return Row(student, rec.name, "failed", f"removing: {e.message}", e.code, seconds=time.monotonic() - t1)


def remove_workstation(paths: Paths, rec: Record, progress: Callable[[str], None]) -> list[str]:
    """What ``mlops-env down NAME --yes`` does for one workstation."""
    from mlops_env.providers import get_provider
    from mlops_env.ssh import config as sshconfig
    from mlops_env.ssh import knownhosts
    from mlops_env.state import Store

    store = Store(paths)
    with store.lock(rec.name, "down"):
        removed = get_provider(rec.provider, paths).destroy(rec, progress)
        sshconfig.remove_host(paths, rec.alias)
        if rec.endpoint:
            knownhosts.unpin(paths, rec.endpoint.host_key_alias)
        store.delete(rec.name)
    return removed


def _class_file(paths: Paths, name: str) -> Path:
    return paths.state_dir / "classes" / f"{name}.json"


def _save_class(paths: Paths, roster: Roster, keys: dict[str, tuple[str, ...]]) -> None:
    """The students' public keys as last installed (for ``class bundle`` and ``status``)."""
    import json

    from mlops_env.fsutil import atomic_write
    from mlops_env.paths import ensure_private_dir

    p = _class_file(paths, roster.name)
    ensure_private_dir(p.parent)
    doc = {"version": 1, "class": roster.name, "roster": str(roster.path.absolute()),
           "instructor_access": roster.instructor_access, "students": {k: list(v) for k, v in keys.items()}}
    atomic_write(p, json.dumps(doc, indent=2, sort_keys=True) + "\n")


# -- status, stop, start, down ---------------------------------------------------------------------
def status(roster: Roster, paths: Paths) -> dict[str, Any]:
    """One row per student: state, IP, uptime, idle, cost so far, smoke."""
    from mlops_env.providers.ec2.shared import shared_lookups

    with shared_lookups(aws_in_flight=AWS_IN_FLIGHT):
        return _status(roster, paths)


def _status(roster: Roster, paths: Paths) -> dict[str, Any]:
    from mlops_env.providers import get_provider
    from mlops_env.state import Store
    from mlops_env.steps.idlestop import read_agent

    store = Store(paths)
    prov = get_provider("ec2", paths)
    rows: list[dict[str, Any]] = []

    def one(st: Any) -> dict[str, Any]:
        ws = st.workstation(roster.name)
        rec = store.find(ws)
        row: dict[str, Any] = {"student": st.name, "workstation": ws}
        if rec is None:
            return {**row, "state": "not created", "phase": None}
        info = prov.state(rec)
        cost = info.get("cost_so_far_usd") or {}
        total = sum(v for v in cost.values() if v is not None) if cost else None
        smoke = (rec.steps.get("smoke") or {}).get("status")
        # The idle agent's state lives on the box: one SSH connection, one command (as `status`),
        # these run side by side in the pool. Unreachable: the row says why, the table goes on.
        agent = read_agent(paths, rec, info)
        idle = None if not agent or agent.get("error") else agent.get("idle_for_s")
        return {**row, "state": info.get("state"), "phase": rec.phase, "ip": info.get("public_ip"),
                "uptime_seconds": info.get("uptime_seconds"), "idle_for": idle,
                "idle_detail": (agent or {}).get("error") or ((agent or {}).get("activity") if agent else None),
                "cost_so_far_usd": None if total is None else round(total, 4),
                "smoke": {"changed": "passed", "unchanged": "passed"}.get(str(smoke), smoke or "not run"),
                "detail": info.get("detail")}

    with ThreadPoolExecutor(max_workers=DEFAULT_JOBS) as pool:
        rows = list(pool.map(one, roster.students))
    known = {s.workstation(roster.name) for s in roster.students}
    for rec in class_records(paths, roster.name):
        if rec.name not in known:
            rows.append({"student": rec.provider_data.get("student"), "workstation": rec.name,
                         "state": "not in the roster", "phase": rec.phase})
    total = sum(r.get("cost_so_far_usd") or 0 for r in rows)
    return {"class": roster.name, "students": rows, "cost_so_far_usd": round(total, 4)}


def lifecycle(roster: Roster, paths: Paths, action: str, cb: Callbacks, jobs: int = DEFAULT_JOBS) -> dict[str, Any]:
    """``stop`` / ``start`` every student's workstation (those this machine knows)."""
    from mlops_env.providers.ec2.shared import shared_lookups

    with shared_lookups(aws_in_flight=AWS_IN_FLIGHT):
        return _lifecycle(roster, paths, action, cb, jobs)


def _lifecycle(roster: Roster, paths: Paths, action: str, cb: Callbacks, jobs: int) -> dict[str, Any]:
    from mlops_env import pipeline
    from mlops_env.providers import get_provider
    from mlops_env.state import Store

    store = Store(paths)
    prov = get_provider("ec2", paths)

    def one(rec: Record) -> Row:
        st = str(rec.provider_data.get("student") or rec.name)
        try:
            with store.lock(rec.name, action):
                fn = prov.stop if action == "stop" else prov.start
                result = fn(rec, lambda m: cb.progress(f"{st}: {m}"))
                if action == "start":
                    rec.endpoint = prov.endpoint(rec) or rec.endpoint
                    store.save(rec)
                    pipeline.refresh_ssh_config(paths, rec)
            return Row(st, rec.name, action, result)
        except MlopsError as e:
            return Row(st, rec.name, "failed", e.message, e.code)

    recs = class_records(paths, roster.name)
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(recs) or 1))) as pool:
        rows = list(pool.map(one, recs))
    return {"class": roster.name, "action": action, "students": [r.as_dict() for r in rows],
            "failed": sum(1 for r in rows if r.status == "failed")}


def leftovers(aws: Any, class_name: str) -> list[str]:
    """Everything in the region that still carries ``mlops-env:class=CLASS`` (terminated
    instances excluded)."""
    from mlops_env.providers.ec2.resources import LIVE_STATES

    f = [{"Name": f"tag:{TAG_CLASS}", "Values": [class_name]}]
    out: list[str] = []
    res = aws.paginate("ec2", "describe_instances", "Reservations",
                       Filters=[*f, {"Name": "instance-state-name", "Values": list(LIVE_STATES)}])
    out += [f"instance {i['InstanceId']}" for r in res for i in r.get("Instances") or []]
    out += [f"volume {v['VolumeId']}" for v in aws.paginate("ec2", "describe_volumes", "Volumes", Filters=f)]
    out += [f"snapshot {s['SnapshotId']}" for s in aws.paginate("ec2", "describe_snapshots", "Snapshots",
                                                                  OwnerIds=["self"], Filters=f)]
    out += [f"network interface {n['NetworkInterfaceId']}" for n in
            aws.paginate("ec2", "describe_network_interfaces", "NetworkInterfaces", Filters=f)]
    out += [f"security group {g['GroupId']}" for g in
            aws.paginate("ec2", "describe_security_groups", "SecurityGroups", Filters=f)]
    kps = aws.call("ec2", "describe_key_pairs", Filters=f).get("KeyPairs") or []
    out += [f"key pair {k.get('KeyName')}" for k in kps]
    return out


def down(roster: Roster, paths: Paths, cb: Callbacks, jobs: int = DEFAULT_JOBS) -> dict[str, Any]:
    """Remove every workstation of the class, then prove nothing tagged for it is left."""
    from mlops_env.providers.ec2.shared import shared_lookups

    with shared_lookups(aws_in_flight=AWS_IN_FLIGHT):
        return _down(roster, paths, cb, jobs)


def _down(roster: Roster, paths: Paths, cb: Callbacks, jobs: int) -> dict[str, Any]:
    from mlops_env.ssh import config as sshconfig

    recs = class_records(paths, roster.name)
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(recs) or 1))) as pool:
        rows = list(pool.map(lambda r: _remove(paths, r, cb), recs))
    aws = _aws(roster)
    left = leftovers(aws, roster.name)
    sshconfig.remove_include(paths)
    failed = sum(1 for r in rows if r.status == "failed")
    if not left and not failed:
        _class_file(paths, roster.name).unlink(missing_ok=True)
    return {"class": roster.name, "students": [r.as_dict() for r in rows], "failed": failed,
            "leftovers": left, "verified": not left,
            "verdict": (f"verified: nothing tagged {TAG_CLASS}={roster.name} remains in {aws.region}" if not left
                        else f"still tagged {TAG_CLASS}={roster.name} in {aws.region}: {', '.join(left)}")}
