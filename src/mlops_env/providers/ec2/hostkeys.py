"""The EC2 workstation's SSH host key: where it may come from, and its rotation.

The first connection is verified with the public key mlops-env generated and handed over in
cloud-init user data; a tag or user data may only fill in a key when this machine has none
pinned, and never replaces a pinned one (a changed key is refused, exit 6). Over that first
verified connection ``after_connect`` has the box make a new key whose private half never leaves
it, pins it, switches sshd to it and retires the user-data key; a run killed at any phase still
connects next time (both keys are pinned until the switch is confirmed). docs/ec2.md "Host key".
Mixed into ``Ec2Provider`` (provider.py), which supplies ``paths``, ``warn`` and ``_aws``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlops_env.errors import MlopsError
from mlops_env.providers import Progress
from mlops_env.providers.ec2 import TAG_HOST_KEY
from mlops_env.ssh.config import host_key_alias_for
from mlops_env.state import Endpoint, Record

if TYPE_CHECKING:
    from mlops_env.paths import Paths
    from mlops_env.providers.ec2.resources import Ec2
    from mlops_env.providers.ec2.session import Aws

log = logging.getLogger(__name__)


class HostKeys:
    """Host key trust and rotation for ``Ec2Provider``."""

    paths: Paths
    warn: Callable[[str], None]  # the provider's (Provider.__init__)
    _tag_stale = False  # the instance's host-key tag still names a key our rotation retired

    def _aws(self, record: Record | None, options: Any = None) -> Aws:  # the provider's
        raise NotImplementedError

    def _host_key(self, ec2: Ec2, record: Record, inst: dict[str, Any], *, own_launch: bool) -> str:
        """The instance's public host key. What this machine pinned (the record, its known_hosts)
        is the truth; the instance's ``mlops-env:host-key`` tag must agree with it, or this is
        refused as a changed host key: anyone with ``ec2:CreateTags`` in the account could set
        the tag. Only when this machine pinned nothing (another machine's workstation, a lost
        state dir) do the tag, then the user data, fill the key in: both come through the
        authenticated AWS API. ``own_launch``: this run created (or adopted its own in-flight
        launch of) the instance, so the record's new key replaces an older pin of the name."""
        from mlops_env.errors import HostKeyError
        from mlops_env.providers.ec2 import cloudinit
        from mlops_env.providers.ec2 import resources as ec2mod
        from mlops_env.ssh.keys import fingerprint_of, split_public_key

        pd = record.provider_data
        tag_raw = ec2mod.tags_of(inst).get(TAG_HOST_KEY)
        tag = _norm_key(tag_raw) if tag_raw else None
        trusted = self._trusted_keys(record, own_launch=own_launch)
        if trusted:
            retired = [_norm_key(k) for k in pd.get("retired_host_keys") or []]
            if tag and tag not in trusted and tag not in retired:
                pinned_fps = ", ".join(fingerprint_of(k) for k in trusted)
                raise HostKeyError(
                    f"host key of {record.name} changed: this machine pinned {pinned_fps}, but the "
                    f"{TAG_HOST_KEY} tag of {inst['InstanceId']} says {fingerprint_of(tag)}; mlops-env refuses "
                    "to trust the tag (anyone allowed ec2:CreateTags in the account can set it)",
                    hint=f"find out who changed the tag (CloudTrail: CreateTags on {inst['InstanceId']}) and compare "
                    "with the box's real key (`aws ec2 get-console-output` prints its fingerprints); if the box "
                    f"was really rebuilt, `mlops-env down {record.name}` and `up` again",
                    code="host-key-changed")
            if tag and tag in retired:
                self._tag_stale = True  # our rotation did not get to re-tag: after_connect does
            current = pd.get("host_key")
            ktype, b64 = split_public_key(current if current and _norm_key(current) in trusted else trusted[0])
            pd["host_key"] = f"{ktype} {b64}"
            return f"{ktype} {b64}"
        mine = tag
        if not mine:
            try:
                attr = ec2.aws.call("ec2", "describe_instance_attribute", InstanceId=inst["InstanceId"],
                                    Attribute="userData")
                mine = cloudinit.public_host_key((attr.get("UserData") or {}).get("Value") or "")
            except MlopsError as e:
                log.debug("cannot read user data: %s", e.message)
        if not mine:
            raise MlopsError(
                f"the SSH host key of {inst['InstanceId']} is unknown (its tag and user data carry none)",
                hint=f"it was not launched by this mlops-env: `mlops-env down {record.name}` and `up` again make a "
                "new one, or use `mlops-env up ssh` with the fingerprint from `aws ec2 get-console-output`",
                code="host-key-unknown")
        ktype, b64 = split_public_key(mine)
        pd["host_key"] = f"{ktype} {b64}"
        return f"{ktype} {b64}"

    def _trusted_keys(self, record: Record, *, own_launch: bool) -> list[str]:
        """The host keys this machine pinned for the workstation, normalised ("type base64")."""
        from mlops_env.ssh import knownhosts

        pd = record.provider_data
        keys = [pd.get("host_key")]
        rot = pd.get("host_key_rotation") or {}
        keys += [rot.get("old"), rot.get("new")]
        if not own_launch:
            keys += knownhosts.lookup(self.paths, host_key_alias_for(record.name))
        out: list[str] = []
        for k in keys:
            if k and _norm_key(k) not in out:
                out.append(_norm_key(k))
        return out

    # -- host key rotation (issue 11.3, docs/ec2.md "Host key") ------------------------------------
    def after_connect(self, record: Record, transport: Any, progress: Progress) -> Any:
        """Called by the pipeline with the first verified connection: retire the host key that
        travelled in user data (readable through IMDS on the box and DescribeInstanceAttribute
        in the account). The box makes a new ED25519 key, we pin it beside the old one, sshd
        switches to it, a new connection confirms it, then the old key is unpinned and deleted
        and the instance's tag follows. Every phase is saved in the record first, so a run
        killed anywhere is finished by the next ``up``. A failure never fails ``up``: the old
        key keeps working and a warning says so. Returns the transport to go on with (a
        connection verified with the new key once the switch is confirmed)."""
        if record.endpoint is None or not record.provider_data.get("host_key"):
            return transport
        try:
            transport = self._rotate(record, transport, progress)
        except MlopsError as e:
            log.info("host key rotation: %s", e.message)
            self.warn(f"the SSH host key from user data was not replaced: {e.message}. "
                      f"{e.hint or ''} The next `mlops-env up ec2 {record.name}` tries again.".replace("  ", " "))
        _test_kill("after-rotation")
        return transport

    def _rotate(self, record: Record, transport: Any, progress: Progress) -> Any:
        from mlops_env.ssh import knownhosts
        from mlops_env.ssh.transport import SSHTransport
        from mlops_env.state import Store
        from mlops_env.steps import template

        pd = record.provider_data
        alias = host_key_alias_for(record.name)
        store = Store(self.paths)
        ep = record.endpoint
        assert ep is not None
        script = template("hostkey-rotate.sh")
        is_root = transport.user == "root"

        def box(*args: str) -> Any:
            return transport.run_script(script, list(args), sudo=True, is_root=is_root, timeout=120)

        rot = pd.get("host_key_rotation")
        if pd.get("host_key_origin") == "box" and not rot:
            if pd.get("host_key_tag_stale") or self._tag_stale:
                self._retag(record)
            return transport
        if not rot:
            progress("replacing the SSH host key from user data with one made on the box")
            res = box("prepare")
            new = _script_value(res, "new-key")
            if not res.ok or not new:
                raise MlopsError(f"making a new host key on the box failed: {_script_error(res)}",
                                 hint="", code="host-key-rotation")
            old = _norm_key(pd["host_key"])
            new = _norm_key(new)
            if new == old:
                raise MlopsError("the box's new host key is the old one", code="host-key-rotation")
            rot = pd["host_key_rotation"] = {"old": old, "new": new, "phase": "prepared"}
            store.save(record)
            knownhosts.set_pins(self.paths, alias, [old, new])  # the box serves the old one: first
            _test_kill("prepared")
        old, new = rot["old"], rot["new"]
        if rot["phase"] in ("prepared", "switching"):
            rot["phase"] = "switching"
            store.save(record)
            res = box("switch", new.split()[1])
            if not res.ok:
                self._abort(record, box, old, f"the box could not switch to the new key: {_script_error(res)}")
            _test_kill("switched")
            if _norm_key(transport.host_key) == new:
                confirmed = transport  # this run already connected with the new key
            else:
                try:
                    confirmed = SSHTransport(ep.host, ep.port, ep.user, ep.identity_file, new,
                                             timeout=60, label=alias, proxy_command=ep.proxy_command)
                except MlopsError as e:
                    self._abort(record, box, old, f"a connection with the new key failed: {e.message}")
            # Confirmed: only the new key is trusted from here on.
            knownhosts.set_pins(self.paths, alias, [new])
            pd["host_key"] = new
            pd["retired_host_keys"] = [*[k for k in pd.get("retired_host_keys") or [] if k != old], old][-5:]
            rot["phase"] = "switched"
            store.save(record)
            if confirmed is not transport:
                transport.close()
                transport = confirmed
            _test_kill("confirmed")
        res = box("retire", new.split()[1])
        if not res.ok:
            raise MlopsError(f"the box serves the new key, but deleting the old one failed: {_script_error(res)}",
                             hint="the old key is no longer trusted by this machine.", code="host-key-rotation")
        _test_kill("retired")
        self._retag(record)
        _test_kill("tagged")
        pd.pop("host_key_rotation", None)
        pd["host_key_origin"] = "box"
        store.save(record)
        from mlops_env.ssh.keys import fingerprint_of

        progress(f"SSH host key {fingerprint_of(new)} made on the box is pinned; the user-data key is retired")
        _test_kill("done")
        return transport

    def _abort(self, record: Record, box: Any, old: str, why: str) -> None:
        """Back to the old key on the box, then trust only it here; raises (the caller warns)."""
        from mlops_env.ssh import knownhosts
        from mlops_env.state import Store

        res = box("abort")
        if not res.ok:
            # The box may serve either key: keep both pinned and the phase, the next up resolves it.
            raise MlopsError(f"{why}; going back to the old key failed too: {_script_error(res)}",
                             hint="both keys stay pinned until a later up finishes the switch.",
                             code="host-key-rotation")
        knownhosts.set_pins(self.paths, host_key_alias_for(record.name), [old])
        record.provider_data.pop("host_key_rotation", None)
        Store(self.paths).save(record)
        raise MlopsError(why, hint="The box is back on the host key from user data, which stays pinned.",
                         code="host-key-rotation")

    def _retag(self, record: Record) -> None:
        """The instance's ``mlops-env:host-key`` tag follows the pinned key (another machine
        that has no pin fills it in from there)."""
        from mlops_env.providers.ec2.resources import Ec2

        pd = record.provider_data
        try:
            ec2 = Ec2(self._aws(record), record.name)
            ec2.aws.call("ec2", "create_tags", Resources=[pd["instance_id"]],
                         Tags=[{"Key": TAG_HOST_KEY, "Value": _norm_key(pd["host_key"])}])
        except MlopsError as e:
            pd["host_key_tag_stale"] = True
            self.warn(f"the {TAG_HOST_KEY} tag of {pd.get('instance_id')} still carries the retired key "
                      f"({e.message}); another machine's `up` would refuse the box until it is updated")
            return
        pd.pop("host_key_tag_stale", None)
        self._tag_stale = False

    def _order_pins_for_rotation(self, record: Record, ep: Endpoint, timeout: float) -> None:
        """A run killed between the switch and its confirmation leaves both keys pinned and the
        box serving either: look which one it presents (an unauthenticated handshake; only
        keys pinned already are accepted later) and pin that one first, so the pipeline's
        connection asks for it."""
        from mlops_env.ssh import knownhosts
        from mlops_env.ssh.transport import probe_host_key

        rot = record.provider_data.get("host_key_rotation") or {}
        if rot.get("phase") != "switching":
            return
        try:
            presented = " ".join(probe_host_key(ep.host, ep.port, timeout=timeout))
        except MlopsError as e:
            log.debug("probing the host key during a rotation: %s", e.message)
            return
        keys = [rot["old"], rot["new"]]
        if presented in keys:
            knownhosts.set_pins(self.paths, host_key_alias_for(record.name),
                                [presented, *[k for k in keys if k != presented]])

    def _host_key_status(self, record: Record, info: dict[str, Any]) -> None:
        """Which host key is pinned, and whether the key from user data is retired."""
        from mlops_env.ssh import knownhosts
        from mlops_env.ssh.keys import fingerprint_of

        pd = record.provider_data
        if not pd.get("host_key"):
            return
        fp = fingerprint_of(pd["host_key"])
        rot = pd.get("host_key_rotation")
        origin = pd.get("host_key_origin") or "user-data"
        if rot:
            text = (f"{fp}, being replaced ({rot.get('phase')}): {fingerprint_of(rot['old'])} (user data) and "
                    f"{fingerprint_of(rot['new'])} (made on the box) both accepted until the switch is confirmed")
        elif origin == "box":
            text = f"{fp}, made on the box; the key from user data is retired"
        else:
            text = f"{fp}, from cloud-init user data (the next `up` replaces it with one made on the box)"
        info["host_key"] = {"fingerprint": fp, "origin": origin, "rotation": (rot or {}).get("phase"),
                            "user_data_key_retired": origin == "box" and not rot,
                            "pinned": knownhosts.fingerprints(self.paths, host_key_alias_for(record.name))}
        info.setdefault("lines", []).append(f"host key  {text}")


def _test_kill(phase: str) -> None:
    """Test-only seam (docs/ec2.md): ``MLOPS_ENV_TEST_HOSTKEY_KILL_AT=PHASE`` kills this process
    with SIGKILL right after that phase of the host key rotation, as a crash would."""
    import os
    import signal

    if os.environ.get("MLOPS_ENV_TEST_HOSTKEY_KILL_AT") == phase:
        log.warning("MLOPS_ENV_TEST_HOSTKEY_KILL_AT=%s: killing this run", phase)
        os.kill(os.getpid(), signal.SIGKILL)


def _script_value(res: Any, key: str) -> str | None:
    for line in (res.stdout or "").splitlines():
        if line.startswith(f"mlops: {key} "):
            return line[len(f"mlops: {key} "):].strip()
    return None


def _script_error(res: Any) -> str:
    errs = [ln[len("mlops-error: "):] for ln in (res.stderr or "").splitlines() if ln.startswith("mlops-error: ")]
    return errs[-1] if errs else (res.tail(3) or f"exit code {res.exit_code}")


def _norm_key(line: str) -> str:
    from mlops_env.ssh.keys import split_public_key

    return " ".join(split_public_key(line))
