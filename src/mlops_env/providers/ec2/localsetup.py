"""This machine's AWS setup, for ``doctor``'s local checks: credentials (where they come from),
the SSO login's time left, the region, and one STS call to prove the credentials work.

Pure helpers (``aws_source``, ``aws_region``, ``sso_status``) are unit-tested on captured
inputs. boto3 is imported only when credentials are configured (it costs about 0.3 s), and only
here in the EC2 provider (the ``boto3`` import contract in pyproject.toml).
"""

from __future__ import annotations

import configparser
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops_env.checks import OK, SKIP, WARN, Check, bounded

AWS_TIMEOUT = 1.5  # seconds to connect, and to read, for the STS check (one attempt)

# -- AWS ---------------------------------------------------------------------------------------
_CRED_KEYS = ("aws_access_key_id", "sso_session", "sso_start_url", "credential_process", "role_arn",
              "web_identity_token_file", "credential_source")


def _ini(text: str) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        cp.read_string(text)
    except configparser.Error:
        pass
    return cp


def aws_profile(env: Mapping[str, str]) -> str:
    return env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"


def _profile_section(cp: configparser.RawConfigParser, profile: str, config: bool) -> Mapping[str, str]:
    names = ([profile] if profile == "default" else []) + ([f"profile {profile}"] if config else [profile])
    for n in names:
        if cp.has_section(n):
            return dict(cp.items(n))
    return {}


def aws_source(env: Mapping[str, str], credentials_text: str, config_text: str) -> str | None:
    """Where boto3 would find credentials, decided without boto3; None when none is configured.
    (An EC2 instance role cannot be seen without the network: it reads as "none".)"""
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return "environment variables"
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") or env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") \
            or env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return "the environment (web identity or container credentials)"
    profile = aws_profile(env)
    creds = _profile_section(_ini(credentials_text), profile, config=False)
    if creds.get("aws_access_key_id"):
        return f"profile {profile} (credentials file)"
    conf = _profile_section(_ini(config_text), profile, config=True)
    for k in _CRED_KEYS:
        if conf.get(k):
            kind = "SSO" if k.startswith("sso") else k.replace("_", " ")
            return f"profile {profile} ({kind})"
    return None


def aws_region(env: Mapping[str, str], config_text: str) -> tuple[str | None, str]:
    """(region, where it is set)."""
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(var):
            return env[var], var
    profile = aws_profile(env)
    conf = _profile_section(_ini(config_text), profile, config=True)
    if conf.get("region"):
        return conf["region"], f"profile {profile}"
    return None, ""


def uses_sso(env: Mapping[str, str], config_text: str) -> bool:
    conf = _profile_section(_ini(config_text), aws_profile(env), config=True)
    return bool(conf.get("sso_session") or conf.get("sso_start_url"))


def _parse_time(text: str) -> datetime | None:
    s = text.strip().replace("UTC", "Z")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def sso_status(cache_docs: Iterable[Mapping[str, Any]], now: datetime) -> Check:
    """From the AWS CLI's SSO token cache (``~/.aws/sso/cache/*.json``): the latest access
    token's time left. Client-registration files (no ``accessToken``) are ignored."""
    expiries = [e for e in (_parse_time(str(d.get("expiresAt", ""))) for d in cache_docs
                            if d.get("accessToken")) if e is not None]
    if not expiries:
        return Check("local.aws-sso", WARN, "SSO is configured but there is no SSO login yet",
                     "`aws sso login`")
    left = (max(expiries) - now).total_seconds()
    if left <= 0:
        return Check("local.aws-sso", WARN, f"the SSO login expired {_ago(-left)} ago", "`aws sso login`")
    if left < 3600:
        return Check("local.aws-sso", WARN, f"the SSO login expires in {left / 60:.0f} min",
                     "`aws sso login` before a long `up ec2`")
    return Check("local.aws-sso", OK, f"SSO login valid for {left / 3600:.1f} h")


def _ago(s: float) -> str:
    return f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.0f} h" if s < 172800 else f"{s / 86400:.0f} days"


def sts_check(timeout: float = AWS_TIMEOUT, region: str | None = None) -> Check:
    """``sts get-caller-identity`` with one attempt and short timeouts."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    cfg = Config(connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1})
    try:
        sts = boto3.session.Session().client("sts", config=cfg, region_name=region or "us-east-1")
        ident = sts.get_caller_identity()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        msg = e.response.get("Error", {}).get("Message", str(e))
        hint = "`aws sso login`" if "Expired" in code or "expired" in msg else "`aws configure` (or `aws sso login`)"
        return Check("local.aws-credentials", WARN, f"AWS refused the credentials: {code}: {msg}", hint)
    except BotoCoreError as e:
        name = type(e).__name__
        if "Token" in name or "SSO" in name:
            return Check("local.aws-credentials", WARN, f"the SSO login is not usable: {e}", "`aws sso login`")
        if "NoCredentials" in name:
            return Check("local.aws-credentials", WARN, "no AWS credentials found", "`aws configure` or `aws sso login`")
        return Check("local.aws-credentials", WARN, f"cannot reach AWS STS: {e}",
                     "check the network or proxy (only `up ec2` needs AWS)")
    arn = str(ident.get("Arn", ""))
    return Check("local.aws-credentials", OK, f"valid: account {ident.get('Account')} ({arn.split(':')[-1]})")


def aws_checks(env: Mapping[str, str], home: Path, *, timeout: float = AWS_TIMEOUT,
               now: datetime | None = None) -> list[Check]:
    def read(p: str | None, default: Path) -> str:
        try:
            return Path(p).read_text(encoding="utf-8") if p else default.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return ""

    creds = read(env.get("AWS_SHARED_CREDENTIALS_FILE"), home / ".aws" / "credentials")
    conf = read(env.get("AWS_CONFIG_FILE"), home / ".aws" / "config")
    source = aws_source(env, creds, conf)
    region, region_src = aws_region(env, conf)
    if source is None:
        return [Check("local.aws-credentials", WARN, "no AWS credentials configured (only `up ec2` needs them)",
                      "`aws configure`, or `aws configure sso` and `aws sso login`"),
                Check("local.aws-sso", SKIP, "no AWS credentials"),
                Check("local.aws-region", SKIP, "no AWS credentials")]
    out: list[Check] = []
    if uses_sso(env, conf):
        docs = []
        for f in sorted((home / ".aws" / "sso" / "cache").glob("*.json")):
            try:
                d = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(d, dict):
                docs.append(d)
        out.append(sso_status(docs, now or datetime.now(timezone.utc)))
    else:
        out.append(Check("local.aws-sso", SKIP, "no SSO login configured"))
    if region:
        out.append(Check("local.aws-region", OK, f"region {region} (from {region_src})"))
    else:
        out.append(Check("local.aws-region", WARN, "no AWS region set",
                         "`aws configure set region eu-west-1` (or set AWS_REGION)"))
    sts = bounded(lambda: [sts_check(timeout, region)], timeout + 1.0, ["local.aws-credentials"],
                  "the AWS STS check")
    first = sts[0]
    out.insert(0, Check(first.id, first.status, f"{first.message} [{source}]", first.hint, first.seconds))
    return out


