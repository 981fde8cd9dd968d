"""The local ``ssh-config`` step: the workstation's Host block in the tool's SSH config and the
``Include`` line on top of ``~/.ssh/config`` (``ssh/config.py`` writes them)."""

from __future__ import annotations

from typing import Any

from mlops_env.checks import CheckResult
from mlops_env.paths import Paths
from mlops_env.ssh import config as sshconfig
from mlops_env.state import Endpoint, Record
from mlops_env.steps import Step, StepContext


class SshConfigStep(Step):
    """Local step: our Host block in the tool's ssh config, and the Include line on top of
    ``~/.ssh/config``."""

    id = "ssh-config"
    title = "SSH config"
    local = True

    def entry(self, ctx: StepContext) -> sshconfig.HostEntry:
        return ssh_entry(ctx.paths, ctx.record, ctx.endpoint, bool(ctx.options["forward"]))

    def check_local(self, ctx: StepContext) -> CheckResult:
        block = sshconfig.check_upsert_host(ctx.paths, self.entry(ctx))
        include = sshconfig.check_include(ctx.paths)
        if not block and include == "unchanged":
            return CheckResult("ok", f"`ssh {ctx.record.alias}` configured")
        todo = []
        if block:
            todo.append(f"write Host {ctx.record.alias} in {ctx.paths.ssh_config}")
        if include != "unchanged":
            todo.append(f"{include} the Include line in ~/.ssh/config")
        return CheckResult("fail", "; ".join(todo))

    def apply(self, ctx: StepContext) -> None:
        sshconfig.upsert_host(ctx.paths, self.entry(ctx))
        sshconfig.ensure_include(ctx.paths)

    def describe_apply(self, ctx: StepContext) -> str:
        return self.check_local(ctx).message


def _abs(path: str) -> Any:
    from pathlib import Path

    return Path(path).expanduser().absolute()


def ssh_entry(paths: Paths, record: Record, ep: Endpoint, forward: bool) -> sshconfig.HostEntry:
    return sshconfig.HostEntry(
        alias=record.alias, hostname=ep.host, port=ep.port, user=ep.user,
        identity_file=_abs(ep.identity_file), known_hosts_file=paths.known_hosts,
        host_key_alias=ep.host_key_alias,
        forwards=sshconfig.DEFAULT_FORWARDS if forward else (),
        # OpenSSH expands %-tokens in ProxyCommand: a literal % is written %%.
        extra_options=(("ProxyCommand", ep.proxy_command.replace("%", "%%")),) if ep.proxy_command else (),
    )
