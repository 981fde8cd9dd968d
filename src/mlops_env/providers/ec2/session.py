"""One AWS session per command, and every AWS failure as one clear line with the fix.

Credentials come from boto3's standard chain (environment, ``~/.aws`` profiles, SSO, container
and instance roles); mlops-env never reads, stores, logs or copies them. The region comes from
``--region``, then ``AWS_REGION``/``AWS_DEFAULT_REGION``, then the profile.

Retries: every client uses botocore's *standard* retry mode (throttling and 5xx errors are
retried with exponential backoff and jitter; ``AWS_MAX_ATTEMPTS`` overrides the number of
attempts). ``call_with_retry`` is for calls where botocore must NOT retry by itself, such as
RunInstances, whose capacity errors come back as HTTP 500: retrying the same zone is useless,
the caller moves to another zone instead; throttling is retried here with the same
ClientToken, so a retried launch can never make a second instance.

Logging: only ``service:Operation region`` is logged, never parameters or bodies (the user
data of RunInstances carries a private host key).
"""

from __future__ import annotations

import difflib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from mlops_env.errors import ConnectError, MlopsError, NotFoundError, PrereqError, UsageError
from mlops_env.providers.ec2.limits import aws_slot

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 5
THROTTLE_CODES = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException",
                            "TooManyRequestsException", "RequestThrottled",
                            "RequestThrottledException", "SlowDown", "PriorRequestNotComplete"})
TRANSIENT_CODES = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable",
                             "Unavailable", "RequestTimeout", "RequestTimeoutException"})
# "This zone/type cannot give you the instance now": try another zone, then another type.
CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "Unsupported",
                            "InsufficientCapacity", "InsufficientHostCapacity",
                            "InsufficientReservedInstanceCapacity", "SpotMaxPriceTooLow",
                            "InsufficientFreeAddressesInSubnet"})
DENIED_CODES = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException",
                          "UnauthorizedAccess", "Blocked"})
BAD_CREDENTIAL_CODES = frozenset({"AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch",
                                  "UnrecognizedClientException", "IncompleteSignature",
                                  "InvalidAccessKeyId", "MissingAuthenticationToken"})
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired",
                           "TokenRefreshRequired"})
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def aws_code(e: BaseException) -> str | None:
    """The AWS error code a translated error came from (None for non-AWS errors)."""
    return getattr(e, "aws_code", None)


def _attempts() -> int:
    try:
        n = int(os.environ.get("AWS_MAX_ATTEMPTS", "") or DEFAULT_ATTEMPTS)
    except ValueError:
        n = DEFAULT_ATTEMPTS
    return max(1, n)


def quiet_sdk_logs() -> None:
    """botocore logs request parameters at DEBUG; keep the SDK's loggers at WARNING."""
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Aws:
    """A boto3 session for one region, with cached clients and error translation."""

    def __init__(self, region: str | None, profile: str | None) -> None:
        import boto3
        import botocore.exceptions as bx

        quiet_sdk_logs()
        self.profile = profile or None
        # botocore reads AWS_DEFAULT_REGION only; AWS_REGION is what the other AWS SDKs (and
        # CLI v2) read, so it counts too, after --region and before the profile's region.
        region = region or os.environ.get("AWS_REGION") or None
        try:
            self.session = boto3.Session(profile_name=self.profile, region_name=region)
        except bx.ProfileNotFound:
            raise UsageError(
                f"AWS profile {profile!r} not found",
                hint=f"create it with `aws configure --profile {profile}` (or `aws configure sso "
                f"--profile {profile}`), or pass another --profile",
                code="aws-profile-not-found",
            ) from None
        except bx.BotoCoreError as e:
            raise self.translate(e, "sts", "get_caller_identity") from None
        resolved = self.session.region_name
        if not resolved:
            raise UsageError(
                "no AWS region given",
                hint="pass --region (for example --region eu-west-1), set AWS_REGION or "
                "AWS_DEFAULT_REGION, or save one in your profile: `aws configure set region eu-west-1`",
                code="aws-no-region",
            )
        self.region: str = resolved
        check_region(self.session, self.region)
        self._clients: dict[tuple[str, str, int | None], Any] = {}
        self._clients_lock = threading.Lock()  # `class up` shares one session between threads

    # -- clients ---------------------------------------------------------------------------
    def client(self, service: str, *, region: str | None = None, attempts: int | None = None) -> Any:
        key = (service, region or self.region, attempts)
        with self._clients_lock:
            if key not in self._clients:
                from botocore.config import Config

                from mlops_env import __version__

                cfg = Config(
                    retries={"mode": "standard", "total_max_attempts": attempts or _attempts()},
                    connect_timeout=10, read_timeout=60,
                    user_agent_extra=f"mlops-env/{__version__}",
                )
                self._clients[key] = self.session.client(service, region_name=key[1], config=cfg)
            return self._clients[key]

    def call(self, service: str, op: str, *, region: str | None = None, **kw: Any) -> Any:
        """``client.op(**kw)``; every failure becomes an ``MlopsError`` (see ``translate``)."""
        client = self.client(service, region=region)
        log.debug("aws %s:%s %s", service, _api_name(client, op), region or self.region)
        try:
            with aws_slot():
                return getattr(client, op)(**kw)
        except Exception as e:  # noqa: BLE001 - translated below, bugs re-raised there
            raise self.translate(e, service, op, client) from None

    def paginate(self, service: str, op: str, key: str, **kw: Any) -> list[Any]:
        client = self.client(service)
        log.debug("aws %s:%s %s (all pages)", service, _api_name(client, op), self.region)
        out: list[Any] = []
        try:
            for page in _pages(client.get_paginator(op).paginate(**kw)):
                out.extend(page.get(key) or [])
        except Exception as e:  # noqa: BLE001
            raise self.translate(e, service, op, client) from None
        return out

    def call_with_retry(self, service: str, op: str, *, attempts: int = 6,
                        sleep: Callable[[float], None] = time.sleep, **kw: Any) -> Any:
        """One attempt per botocore call; throttling, 5xx and dropped connections are retried
        here with exponential backoff and jitter. Everything else is raised at once (capacity
        errors in particular: the caller tries another zone)."""
        client = self.client(service, attempts=1)
        api = _api_name(client, op)
        for attempt in range(1, attempts + 1):
            log.debug("aws %s:%s %s (attempt %d)", service, api, self.region, attempt)
            try:
                with aws_slot():
                    return getattr(client, op)(**kw)
            except Exception as e:  # noqa: BLE001
                err = self.translate(e, service, op, client)
                code = aws_code(err)
                retry = code in THROTTLE_CODES or code in TRANSIENT_CODES or isinstance(err, ConnectError)
                if not retry or attempt == attempts:
                    raise err from None
                delay = min(20.0, 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2)  # noqa: S311
                log.debug("aws %s:%s: %s, retrying in %.1fs", service, api, code or "connection", delay)
                sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- errors ------------------------------------------------------------------------------
    def translate(self, e: BaseException, service: str, op: str, client: Any = None) -> Exception:
        return translate(e, service, op, client=client, region=getattr(self, "region", None),
                         profile=self.profile)

    def identity(self) -> dict[str, str]:
        r = self.call("sts", "get_caller_identity")
        return {"account": r.get("Account", ""), "arn": r.get("Arn", "")}


def _pages(pages: Any) -> Iterator[Any]:
    """Each page of a paginator, each request under its own ``aws_slot``."""
    it = iter(pages)
    while True:
        with aws_slot():
            page = next(it, None)
        if page is None:
            return
        yield page


def _api_name(client: Any, op: str) -> str:
    try:
        return str(client.meta.method_to_api_mapping[op])
    except (AttributeError, KeyError):
        return "".join(p.capitalize() for p in op.split("_"))


def iam_action(service: str, op: str, client: Any = None) -> str:
    """``ec2:RunInstances`` for ``("ec2", "run_instances")``."""
    prefix = {"pricing": "pricing", "sts": "sts", "ssm": "ssm"}.get(service, service)
    return f"{prefix}:{_api_name(client, op)}"


def check_region(session: Any, region: str) -> None:
    known: set[str] = set()
    try:
        for partition in session.get_available_partitions():
            known.update(session.get_available_regions("ec2", partition_name=partition))
    except Exception as e:  # noqa: BLE001 - endpoint data unreadable: let AWS decide
        log.debug("cannot list regions: %s", e)
        return
    if region in known:
        return
    close = difflib.get_close_matches(region, sorted(known), n=3, cutoff=0.6)
    hint = ("did you mean " + " or ".join(close) + "?") if close else (
        "for example --region eu-west-1 or --region us-east-1 (`aws ec2 describe-regions` lists yours)")
    if _REGION_RE.match(region):
        hint += "; a region newer than this boto3 needs `pip install -U boto3`"
    raise UsageError(f"unknown AWS region {region!r}", hint=hint, code="aws-unknown-region")


def _attach(err: MlopsError, code: str | None, service: str, op: str) -> MlopsError:
    err.aws_code = code  # type: ignore[attr-defined]
    err.aws_operation = f"{service}:{op}"  # type: ignore[attr-defined]
    return err


def translate(e: BaseException, service: str, op: str, *, client: Any = None,
              region: str | None = None, profile: str | None = None) -> Exception:
    """Map a botocore/boto3 exception to a one-line ``MlopsError`` with the fix.

    Programming errors (``ParamValidationError``, anything not from botocore) are returned
    unchanged so they surface as bugs.
    """
    import botocore.exceptions as bx

    login = f"aws sso login --profile {profile}" if profile else "aws sso login --profile NAME"
    where = f" in {region}" if region else ""
    if isinstance(e, MlopsError):
        return e
    if isinstance(e, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return _attach(PrereqError(
            "no AWS credentials found",
            hint="run `aws configure` (access keys) or `aws configure sso` then `aws sso login`; "
            "mlops-env uses the standard AWS chain (AWS_PROFILE/--profile, env variables, ~/.aws)",
            code="aws-no-credentials"), None, service, op)
    if isinstance(e, (bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError, bx.TokenRetrievalError, bx.SSOError)):
        return _attach(PrereqError(
            "your AWS SSO session has expired (or was never started)",
            hint=f"run `{login}`, then the same command again",
            code="aws-sso-expired"), None, service, op)
    if isinstance(e, bx.CredentialRetrievalError):
        return _attach(PrereqError(
            f"AWS credentials could not be loaded: {_first_line(e)}",
            hint="check the credential_process / role settings of your profile (`aws sts get-caller-identity`)",
            code="aws-credentials"), None, service, op)
    if isinstance(e, bx.ProfileNotFound):
        return _attach(UsageError(f"AWS profile not found: {_first_line(e)}",
                                  hint="`aws configure list-profiles` shows yours; pass --profile NAME",
                                  code="aws-profile-not-found"), None, service, op)
    if isinstance(e, bx.NoRegionError):
        return _attach(UsageError("no AWS region given", hint="pass --region, or set AWS_REGION",
                                  code="aws-no-region"), None, service, op)
    if isinstance(e, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                      bx.ConnectionClosedError, bx.ProxyConnectionError, bx.SSLError)):
        return _attach(ConnectError(
            f"cannot reach AWS ({service}{where}): {_first_line(e)}",
            hint="check your network, proxy (HTTPS_PROXY) and the region name; then run the same command again",
            code="aws-unreachable"), None, service, op)
    if not isinstance(e, bx.ClientError):
        # A bug (ParamValidationError...) or something we do not know: not hidden.
        return e if isinstance(e, Exception) else RuntimeError(str(e))
    err = e.response.get("Error", {}) if hasattr(e, "response") else {}
    code = str(err.get("Code") or "")
    message = _first_line(err.get("Message") or str(e))
    action = iam_action(service, op, client)
    if code in DENIED_CODES:
        return _attach(PrereqError(
            f"your AWS identity is not allowed to call {action}{where}",
            hint=f"grant {action} (docs/ec2.md lists the whole IAM policy mlops-env needs); "
            "an encoded reason can be read with `aws sts decode-authorization-message`",
            code="aws-access-denied"), code, service, op)
    if code in BAD_CREDENTIAL_CODES:
        return _attach(PrereqError(
            f"AWS rejected the credentials ({code})",
            hint="check them with `aws sts get-caller-identity`; fix with `aws configure` or "
            f"`{login}`", code="aws-bad-credentials"), code, service, op)
    if code in EXPIRED_CODES:
        return _attach(PrereqError(
            "your AWS credentials have expired",
            hint=f"refresh them (`{login}` for SSO, or new session credentials) and run the same command again",
            code="aws-credentials-expired"), code, service, op)
    if code == "OptInRequired":
        return _attach(PrereqError(
            f"the AWS account is not opted in to this service or region{where}: {message}",
            hint="enable the region in the AWS console (Account > AWS Regions) or pick another --region; "
            "a brand-new account may still be activating (wait a few minutes)",
            code="aws-opt-in-required"), code, service, op)
    if code in ("VcpuLimitExceeded", "InstanceLimitExceeded"):
        return _attach(PrereqError(
            f"your EC2 vCPU quota{where} is used up: {message}",
            hint="stop or terminate other instances, pick a smaller --instance-type, or request more "
            "'Running On-Demand Standard instances' vCPUs in Service Quotas (quota L-1216C47A)",
            code="aws-vcpu-limit"), code, service, op)
    if code == "MaxSpotInstanceCountExceeded":
        return _attach(PrereqError(
            f"your EC2 Spot quota{where} is used up: {message}",
            hint="drop --spot, or request more 'All Standard Spot Instance Requests' vCPUs in "
            "Service Quotas (quota L-34B43A08)", code="aws-spot-limit"), code, service, op)
    if code.startswith("InvalidAMIID"):
        return _attach(NotFoundError(
            f"AMI not found{where}: {message}",
            hint="AMI ids differ per region: use --ami ubuntu-24.04 / ubuntu-22.04, or an ami-... id "
            "from this region", code="ami-not-found"), code, service, op)
    if code == "InvalidSubnetID.NotFound":
        return _attach(NotFoundError(f"subnet not found{where}: {message}",
                                     hint="check --subnet (`aws ec2 describe-subnets`)",
                                     code="subnet-not-found"), code, service, op)
    if code in THROTTLE_CODES:
        return _attach(MlopsError(
            f"AWS kept throttling {action}{where} after several retries",
            hint="wait a minute and run the same command again (it resumes where it stopped)",
            code="aws-throttled"), code, service, op)
    if code in CAPACITY_CODES:
        return _attach(MlopsError(f"AWS has no capacity for this request{where}: {message}",
                                  hint="try another --instance-type or --region, or later",
                                  code="aws-capacity"), code, service, op)
    if code in ("InvalidParameterValue", "InvalidParameterCombination", "InvalidParameter",
                "ValidationException", "InvalidInstanceType", "MissingParameter"):
        return _attach(UsageError(f"AWS refused {action}: {message}",
                                  hint="check the options you passed (`mlops-env up ec2 --help`)",
                                  code="aws-invalid-parameter"), code, service, op)
    return _attach(MlopsError(f"AWS {action} failed{where}: {code or 'error'}: {message}",
                              hint="run the same command again; if it keeps failing, the log file "
                              "has the details", code="aws-error"), code, service, op)


def _first_line(e: Any) -> str:
    text = str(e).strip()
    return (text.splitlines() or [""])[0][:300]


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], *, timeout: float, what: str,
         interval: float = 2.0, first: float = 0.5,
         sleep: Callable[[float], None] = time.sleep) -> Any:
    """Call ``fetch`` until ``done(result)``; ``MlopsError`` naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    delay = first
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() + delay > deadline:
            raise MlopsError(f"timed out after {timeout:.0f}s waiting for {what}",
                             hint="run the same command again: it picks up where it stopped",
                             code="aws-timeout")
        sleep(delay)
        delay = min(interval, delay * 2)


def chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
