"""What a codespace costs and how long GitHub keeps it: core-hours at GitHub's list prices, the
idle timeout and the retention period in words, the storage note. Pure functions of the
codespace's API data (no pricing API exists).
"""

from __future__ import annotations

from typing import Any

# GitHub's list prices for Codespaces (docs.github.com/billing: "About billing for GitHub
# Codespaces"; the README's Codespaces table uses the same): compute $0.18/hour for 2 cores,
# i.e. $0.09 per core-hour; storage $0.07 per GB-month. Included every month: 120 core-hours
# and 15 GB-month (GitHub Free), 180 and 20 (GitHub Pro). Organisations' plans differ. A fixed
# table (GitHub has no pricing API): update it when GitHub's prices change.
CORE_HOUR_USD = 0.09
STORAGE_GB_MONTH_USD = 0.07
INCLUDED_CORE_HOURS = {"GitHub Free": 120, "GitHub Pro": 180}
PRICES_AS_OF = "GitHub's list prices (docs.github.com: About billing for GitHub Codespaces)"

def cost_of(machine: dict[str, Any] | None) -> dict[str, Any]:
    """What a machine type costs: core-hours per running hour, at GitHub's list prices."""
    m = machine or {}
    cores = int(m.get("cpus") or 0)
    return {
        "machine": m.get("name"), "cores": cores or None, "core_hours_per_hour": cores or None,
        "compute_usd_per_hour": round(cores * CORE_HOUR_USD, 2) if cores else None,
        "storage_usd_per_gb_month": STORAGE_GB_MONTH_USD,
        "included_core_hours_per_month": dict(INCLUDED_CORE_HOURS),
        "prices": PRICES_AS_OF,
    }


def describe_cost(cost: dict[str, Any]) -> str:
    cores = cost.get("cores")
    if not cores:
        return "core-hours: unknown machine type"
    free = INCLUDED_CORE_HOURS["GitHub Free"]
    return (f"{cores} cores = {cores} core-hours per running hour (${cost['compute_usd_per_hour']:.2f}/h at list "
            f"price beyond the included {free} core-hours a month of GitHub Free: {free / cores:.0f} h of this machine)")


def describe_retention(cs: dict[str, Any]) -> str:
    idle = cs.get("idle_timeout_minutes")
    keep = cs.get("retention_period_minutes")
    parts = [f"stops after {_mins(idle)} idle" if idle else "stops after your idle timeout (GitHub default 30 min)"]
    if keep == 0:
        parts.append("deleted as soon as it stops")
    elif keep:
        parts.append(f"deleted {_mins(keep)} after it stops" + (
            f" (on {str(cs['retention_expires_at'])[:10]} if not used)" if cs.get("retention_expires_at") else ""))
    else:
        parts.append("deleted after your retention period (GitHub default 30 days) once stopped")
    return "; ".join(parts)


def _after_stop(cs: dict[str, Any]) -> str:
    keep = cs.get("retention_period_minutes")
    if keep == 0:
        return "GitHub deletes it now that it is stopped"
    when = f" (on {str(cs['retention_expires_at'])[:10]})" if cs.get("retention_expires_at") else ""
    return (f"GitHub deletes it {_mins(keep)} after this stop{when} unless it is started again" if keep else
            "GitHub deletes it after your retention period unless it is started again")


STORAGE_NOTE = ("a stopped codespace still bills storage ($0.07 per GB-month at list price) until it is "
                "deleted: `mlops-env down NAME` when the course is over")


def _mins(n: Any) -> str:
    n = int(n)
    if n and n % 1440 == 0:
        return f"{n // 1440} day{'s' if n // 1440 != 1 else ''}"
    if n and n % 60 == 0:
        return f"{n // 60} h"
    return f"{n} min"
