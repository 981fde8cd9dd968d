"""Unit tests of the AWS plumbing: error translation (credentials, SSO, permissions, quotas),
prices (Pricing API answer parsing, the dated fallback table), user data, CIDRs, the test
address map. No AWS, not even moto."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore import exceptions as bx

from mlops_env.errors import ConnectError, MlopsError, NotFoundError, PrereqError, UsageError
from mlops_env.providers.ec2 import cloudinit, netinfo, pricing
from mlops_env.providers.ec2.resources import client_token
from mlops_env.providers.ec2.session import aws_code, translate
from mlops_env.ssh.keys import generate_host_keypair


def _client_error(code: str, message: str = "msg", op: str = "RunInstances") -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message}}, op)


@pytest.mark.parametrize(("exc", "cls", "code", "hint_has"), [
    (bx.NoCredentialsError(), PrereqError, "aws-no-credentials", "aws configure"),
    (bx.UnauthorizedSSOTokenError(), PrereqError, "aws-sso-expired", "aws sso login --profile course"),
    (bx.SSOTokenLoadError(error_msg="token expired"), PrereqError, "aws-sso-expired", "aws sso login"),
    (bx.TokenRetrievalError(provider="sso", error_msg="expired"), PrereqError, "aws-sso-expired", "aws sso login"),
    (_client_error("ExpiredToken"), PrereqError, "aws-credentials-expired", "aws sso login"),
    (_client_error("AuthFailure"), PrereqError, "aws-bad-credentials", "get-caller-identity"),
    (_client_error("UnauthorizedOperation", "You are not authorized"), PrereqError, "aws-access-denied",
     "ec2:RunInstances"),
    (_client_error("OptInRequired"), PrereqError, "aws-opt-in-required", "another --region"),
    (_client_error("VcpuLimitExceeded"), PrereqError, "aws-vcpu-limit", "L-1216C47A"),
    (_client_error("MaxSpotInstanceCountExceeded"), PrereqError, "aws-spot-limit", "--spot"),
    (_client_error("InvalidAMIID.NotFound"), NotFoundError, "ami-not-found", "ubuntu-24.04"),
    (_client_error("RequestLimitExceeded"), MlopsError, "aws-throttled", "wait a minute"),
    (_client_error("InvalidParameterValue", "bad value"), UsageError, "aws-invalid-parameter", "--help"),
    (_client_error("SomethingNew", "surprise"), MlopsError, "aws-error", "log file"),
    (bx.EndpointConnectionError(endpoint_url="https://ec2.eu-west-1.amazonaws.com"), ConnectError,
     "aws-unreachable", "network"),
])
def test_every_aws_failure_is_one_clear_line(exc: Exception, cls: type, code: str, hint_has: str) -> None:
    err = translate(exc, "ec2", "run_instances", region="eu-west-1", profile="course")
    assert type(err) is cls and err.code == code  # type: ignore[attr-defined]
    assert hint_has in (err.hint or "")  # type: ignore[attr-defined]
    assert "\n" not in err.message  # type: ignore[attr-defined]


def test_access_denied_names_the_iam_action_of_the_operation() -> None:
    import boto3

    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x",
                                   region_name="eu-west-1").client("ec2")
    err = translate(_client_error("UnauthorizedOperation", op="CreateSecurityGroup"), "ec2",
                    "create_security_group", client=client, region="eu-west-1")
    assert "ec2:CreateSecurityGroup" in err.message  # type: ignore[attr-defined]
    assert aws_code(err) == "UnauthorizedOperation"
    err2 = translate(_client_error("AccessDeniedException", op="GetParameter"), "ssm", "get_parameter")
    assert "ssm:GetParameter" in err2.message  # type: ignore[attr-defined]


def test_programming_errors_are_not_hidden() -> None:
    e = bx.ParamValidationError(report="bad")
    assert translate(e, "ec2", "run_instances") is e


def test_price_list_parsing_takes_the_on_demand_hourly_usd() -> None:
    item = {"product": {"attributes": {"instanceType": "t3.xlarge"}}, "terms": {"OnDemand": {"X.Y": {
        "priceDimensions": {"X.Y.Z": {"unit": "Hrs", "pricePerUnit": {"USD": "0.1664000000"}}}}}}}
    assert pricing._on_demand_usd(json.loads(json.dumps(item)), "Hrs") == pytest.approx(0.1664)
    assert pricing._on_demand_usd(item, "GB-Mo") is None


def test_fallback_table_is_dated_sourced_and_estimates_within_a_family() -> None:
    data = pricing.fallback_table()
    assert data["retrieved"] and "skypilot-catalog" in data["sources"]["instances"]
    for family in ("t3.", "t3a.", "m5.", "m6i.", "m7g.", "t4g."):
        assert any(t.startswith(family) for t in data["instances"]["eu-west-1"]), family
    price, label = pricing.table_hourly("t3.xlarge", "eu-west-1") or (None, "")
    assert price == 0.1824 and "fallback table of" in label
    est, label = pricing.table_hourly("m7g.xlarge", "us-east-1") or (None, "")
    assert est == pytest.approx(0.1632) and label.startswith("estimated from m7g.2xlarge")
    assert pricing.table_hourly("m5.xlarge", "us-east-1")[0] == pytest.approx(0.192)  # type: ignore[index]
    assert pricing.table_hourly("t3.xlarge", "mars-central-1") is None
    gp3 = pricing.table_gp3("eu-west-1")
    assert gp3 is not None and gp3[0] == 0.088 and "fallback table of" in gp3[1]


def test_price_description_has_hourly_daily_and_disk() -> None:
    p = pricing.Price("t3.xlarge", "eu-west-1", False, 0.1824, "AWS Pricing API", 0.088, "AWS Pricing API")
    text = p.describe(30)
    assert "$0.1824/hour" in text and "$1.46 per 8-hour day" in text and "$2.64/month" in text
    assert p.as_dict(30)["disk_monthly_usd"] == 2.64


def test_user_data_installs_exactly_our_host_key_and_round_trips() -> None:
    import yaml

    hk = generate_host_keypair(comment="mlops-env-host-x")
    text = cloudinit.user_data(hk)
    doc = yaml.safe_load(text)
    assert text.startswith("#cloud-config\n")
    assert doc["ssh_deletekeys"] is True and doc["ssh_genkeytypes"] == ["ed25519"]
    assert doc["ssh_keys"]["ed25519_private"] == hk.private_pem
    assert doc["ssh_pwauth"] is False
    want = " ".join(hk.public_line.split()[:2])
    assert cloudinit.public_host_key(text) == want
    assert cloudinit.public_host_key(base64.b64encode(text.encode()).decode()) == want
    assert cloudinit.public_host_key("#cloud-config\nfoo: 1\n") is None
    assert cloudinit.public_host_key("not base64 !") is None


@pytest.mark.parametrize(("text", "want"), [
    ("203.0.113.7", "203.0.113.7/32"), ("203.0.113.7/32", "203.0.113.7/32"), ("198.51.100.0/24", "198.51.100.0/24"),
    ("2001:db8::1", "2001:db8::1/128"), ("0.0.0.0/0", "0.0.0.0/0"),
])
def test_cidr_parsing(text: str, want: str) -> None:
    assert netinfo.parse_cidr(text) == want


@pytest.mark.parametrize("text", ["203.0.113.7/24", "300.1.1.1", "me", "10.0.0.0/33"])
def test_bad_cidrs_are_refused_with_a_suggestion(text: str) -> None:
    with pytest.raises(UsageError) as e:
        netinfo.parse_cidr(text)
    assert e.value.code == "invalid-cidr" and e.value.hint


def test_address_map_is_a_test_seam_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(netinfo.ENV_ADDRESS_MAP, raising=False)
    assert netinfo.mapped_address("54.1.2.3", 22) == ("54.1.2.3", 22)
    monkeypatch.setenv(netinfo.ENV_ADDRESS_MAP, "54.1.2.3=127.0.0.1:2201,*=127.0.0.1:2299")
    assert netinfo.mapped_address("54.1.2.3", 22) == ("127.0.0.1", 2201)
    assert netinfo.mapped_address("54.9.9.9", 22) == ("127.0.0.1", 2299)
    monkeypatch.setenv(netinfo.ENV_ADDRESS_MAP, "garbage")
    with pytest.raises(UsageError):
        netinfo.mapped_address("54.1.2.3", 22)


def test_client_token_is_stable_per_launch_and_changes_with_any_parameter() -> None:
    t = client_token("base", "subnet-1", "t3.xlarge")
    assert t == client_token("base", "subnet-1", "t3.xlarge") and len(t) <= 64 and t.isascii()
    assert len({t, client_token("base", "subnet-2", "t3.xlarge"), client_token("base", "subnet-1", "t3a.xlarge"),
                client_token("other", "subnet-1", "t3.xlarge")}) == 4


def test_sdk_debug_logs_are_kept_out(caplog: Any) -> None:
    import logging

    from mlops_env.providers.ec2.session import quiet_sdk_logs

    quiet_sdk_logs()
    assert logging.getLogger("botocore").getEffectiveLevel() >= logging.WARNING


def test_a_class_run_bounds_aws_requests_in_flight_and_gates_launches() -> None:
    """Inside a class run (``shared_lookups(aws_in_flight=N)``) at most N requests are in flight
    whatever the number of threads; outside, nothing is bounded; ``halt_launches`` is for that
    run only."""
    import threading
    import time as _time

    from mlops_env.providers.ec2 import limits
    from mlops_env.providers.ec2.session import Aws
    from mlops_env.providers.ec2.shared import shared_lookups

    now, peak, lock = [0], [0], threading.Lock()

    class Client:
        meta = None

        def describe_things(self) -> dict[str, Any]:
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            _time.sleep(0.05)
            with lock:
                now[0] -= 1
            return {}

    aws = Aws.__new__(Aws)
    aws.region, aws.profile = "eu-west-1", None
    aws.client = lambda *a, **k: Client()  # type: ignore[method-assign]

    def burst() -> int:
        peak[0] = 0
        ts = [threading.Thread(target=aws.call, args=("ec2", "describe_things")) for _ in range(12)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return peak[0]

    with shared_lookups(aws_in_flight=3):
        assert burst() == 3
        assert limits.launch_halted() is None
        limits.halt_launches("the class hit the EC2 vCPU quota")
        assert limits.launch_halted() == "the class hit the EC2 vCPU quota"
    assert burst() == 12  # `up ec2`: not bounded
    assert limits.launch_halted() is None
    limits.halt_launches("outside a class run: ignored")
    assert limits.launch_halted() is None


def test_class_up_jobs_default_is_the_fleets() -> None:
    import inspect

    from mlops_env.classroom import fleet
    from mlops_env.cli import classroom

    jobs = inspect.signature(classroom.class_up).parameters["jobs"]
    assert jobs.default == fleet.DEFAULT_JOBS
    info = classroom.Jobs.__metadata__[0]  # the typer.Option(...) of its Annotated type
    assert f"default {fleet.DEFAULT_JOBS};" in info.help and f"{fleet.AWS_IN_FLIGHT} at once" in info.help
