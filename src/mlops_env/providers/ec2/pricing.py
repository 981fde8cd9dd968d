"""What a workstation costs: the instance per hour and the disk per month.

Sources, in order: the AWS Pricing API (``pricing:GetProducts``, served from us-east-1) for
on-demand prices and gp3 storage; ``DescribeSpotPriceHistory`` for ``--spot``; the dated
fallback table ``templates/ec2-prices.yaml`` when the API cannot be asked. Every price says
where it came from. Nothing here fails ``up``: an unknown price is shown as unknown.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_env.errors import MlopsError
from mlops_env.providers.ec2.shared import cached

if TYPE_CHECKING:
    from mlops_env.providers.ec2.session import Aws

log = logging.getLogger(__name__)

HOURS_PER_MONTH = 730  # AWS's own convention for monthly estimates
_SIZE = re.compile(r"^(?P<family>[a-z0-9-]+)\.(?:(?P<n>\d*)xlarge|(?P<word>nano|micro|small|medium|large))$")
_UNITS = {"nano": 0.25, "micro": 0.5, "small": 1.0, "medium": 2.0, "large": 4.0}


@dataclass(frozen=True)
class Price:
    """``hourly``: USD per instance-hour (None when unknown); ``disk_gb_month``: USD per GB-month."""

    instance_type: str
    region: str
    spot: bool
    hourly: float | None
    hourly_source: str
    disk_gb_month: float | None
    disk_source: str

    def disk_monthly(self, gb: int) -> float | None:
        return None if self.disk_gb_month is None else self.disk_gb_month * gb

    def as_dict(self, disk_gb: int) -> dict[str, Any]:
        return {"instance_type": self.instance_type, "region": self.region, "spot": self.spot,
                "hourly_usd": self.hourly, "hourly_source": self.hourly_source,
                "disk_gb": disk_gb, "disk_monthly_usd": _round(self.disk_monthly(disk_gb)),
                "disk_source": self.disk_source}

    def describe(self, disk_gb: int) -> str:
        kind = "spot" if self.spot else "on-demand"
        if self.hourly is None:
            inst = f"{self.instance_type}: price unknown ({self.hourly_source})"
        else:
            inst = (f"{self.instance_type} {kind} ${self.hourly:.4f}/hour = ${self.hourly * 8:.2f} per "
                    f"8-hour day ({self.hourly_source})")
        monthly = self.disk_monthly(disk_gb)
        disk = (f"disk {disk_gb} GB gp3 ${monthly:.2f}/month, billed while stopped too ({self.disk_source})"
                if monthly is not None else f"disk {disk_gb} GB gp3: price unknown ({self.disk_source})")
        return f"{inst}; {disk}"


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


@functools.cache
def fallback_table() -> dict[str, Any]:
    import yaml

    from mlops_env.paths import templates_dir

    with open(templates_dir() / "ec2-prices.yaml", encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def _units(instance_type: str) -> tuple[str, float] | None:
    m = _SIZE.match(instance_type)
    if not m:
        return None
    if m.group("word"):
        return m.group("family"), _UNITS[m.group("word")]
    n = int(m.group("n") or 1)
    return m.group("family"), 8.0 * n


def table_hourly(instance_type: str, region: str) -> tuple[float, str] | None:
    """(price, label) from the fallback table: listed, or estimated from a same-family sibling."""
    data = fallback_table()
    rows: dict[str, float] = (data.get("instances") or {}).get(region) or {}
    when = data.get("retrieved", "?")
    if instance_type in rows:
        return float(rows[instance_type]), f"fallback table of {when}, not a live quote"
    want = _units(instance_type)
    if want is None:
        return None
    for other, price in rows.items():
        have = _units(other)
        if have and have[0] == want[0]:
            est = float(price) / have[1] * want[1]
            return round(est, 4), f"estimated from {other} in the fallback table of {when}"
    return None


def table_gp3(region: str) -> tuple[float, str] | None:
    data = fallback_table()
    v = (data.get("gp3_gb_month") or {}).get(region)
    if v is None:
        return None
    return float(v), f"fallback table of {data.get('retrieved', '?')}, not a live quote"


def _price_list(aws: Aws, filters: dict[str, str]) -> list[dict[str, Any]]:
    client = aws.client("pricing", region="us-east-1", attempts=1)
    resp = client.get_products(
        ServiceCode="AmazonEC2", MaxResults=20,
        Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()])
    return [json.loads(p) if isinstance(p, str) else p for p in resp.get("PriceList") or []]


def _on_demand_usd(item: dict[str, Any], unit: str) -> float | None:
    for offer in ((item.get("terms") or {}).get("OnDemand") or {}).values():
        for dim in (offer.get("priceDimensions") or {}).values():
            if dim.get("unit") == unit:
                usd = (dim.get("pricePerUnit") or {}).get("USD")
                if usd is not None and float(usd) > 0:
                    return float(usd)
    return None


def api_hourly(aws: Aws, instance_type: str, region: str) -> float | None:
    items = _price_list(aws, {"instanceType": instance_type, "regionCode": region,
                              "operatingSystem": "Linux", "tenancy": "Shared",
                              "preInstalledSw": "NA", "capacitystatus": "Used",
                              "licenseModel": "No License required"})
    prices = [p for p in (_on_demand_usd(i, "Hrs") for i in items) if p]
    return min(prices) if prices else None


def api_gp3(aws: Aws, region: str) -> float | None:
    items = _price_list(aws, {"productFamily": "Storage", "volumeApiName": "gp3", "regionCode": region})
    prices = [p for p in (_on_demand_usd(i, "GB-Mo") for i in items) if p]
    return min(prices) if prices else None


def spot_hourly(aws: Aws, instance_type: str, zone: str | None = None) -> float | None:
    import datetime as dt

    kw: dict[str, Any] = {"InstanceTypes": [instance_type], "ProductDescriptions": ["Linux/UNIX"],
                          "StartTime": dt.datetime.now(dt.timezone.utc), "MaxResults": 50}
    if zone:
        kw["AvailabilityZone"] = zone
    hist = aws.call("ec2", "describe_spot_price_history", **kw).get("SpotPriceHistory") or []
    prices = [float(h["SpotPrice"]) for h in hist if h.get("SpotPrice")]
    return min(prices) if prices else None


def _api_or_none(what: str, fn: Any, *args: Any) -> tuple[float | None, str | None]:
    """(value, why-not): the Pricing API is optional, every failure means "use the table"."""
    try:
        return fn(*args), None
    except MlopsError as e:
        return None, e.message
    except Exception as e:  # noqa: BLE001 - botocore errors from the raw pricing client
        log.debug("pricing API unavailable for %s: %s", what, str(e).splitlines()[0][:300] if str(e) else e)
        err = getattr(e, "response", {}).get("Error", {}) if hasattr(e, "response") else {}
        reason = str(err.get("Code") or type(e).__name__)
        if reason.isdigit():
            reason = f"HTTP {reason}"
        return None, reason


@cached
def price_for(aws: Aws, instance_type: str, *, spot: bool, zone: str | None = None) -> Price:
    region = aws.region
    hourly: float | None = None
    source = ""
    if spot:
        try:
            hourly = spot_hourly(aws, instance_type, zone)
            source = "EC2 spot price history, changes over time"
        except MlopsError as e:
            source = f"spot price history unavailable: {e.message}"
    else:
        hourly, why = _api_or_none("instance", api_hourly, aws, instance_type, region)
        if hourly is not None:
            source = "AWS Pricing API"
        else:
            row = table_hourly(instance_type, region)
            if row:
                hourly, source = row
                source += f"; Pricing API unavailable ({why})" if why else "; not in the Pricing API"
            else:
                source = f"not in the Pricing API ({why or 'no match'}) nor the fallback table"
    gp3, why = _api_or_none("gp3", api_gp3, aws, region)
    if gp3 is not None:
        disk_source = "AWS Pricing API"
    else:
        row2 = table_gp3(region)
        gp3, disk_source = row2 if row2 else (None, "not in the Pricing API nor the fallback table")
    return Price(instance_type, region, spot, hourly, source, gp3, disk_source)
