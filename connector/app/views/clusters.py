"""`python -m connector clusters --env E [--forget C]`: the clusters an environment has seen,
with their last report and whether it still expects them (`connector.storage.clusters`); and
the `doctor` check naming clusters that stopped reporting."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError

from connector.app.doctor.report import Check
from connector.settings import SettingsError

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container

OK, NOT_FOUND = 0, 1
SHOWN = 10  # clusters a doctor line names


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "clusters",
        parents=[common],
        help="an environment's clusters, their last report; forget one",
    )
    parser.add_argument("--env", required=True, help="the environment")
    parser.add_argument("--forget", metavar="CLUSTER", help="stop expecting this cluster")
    parser.set_defaults(run=command)


def command(container: Container, args: argparse.Namespace) -> int:
    roster = container.store.clusters
    if args.forget:
        gone = roster.forget(args.env, args.forget)
        verb = "forgotten" if gone else "not known"
        print(json.dumps({"cluster": args.forget, verb: True}) if args.json else f"{verb}")
        return OK if gone else NOT_FOUND
    reports = roster.reports(args.env)
    expected = set(roster.expected(args.env))
    rows = [
        {"cluster": c, "lastReport": t.isoformat() if t else None, "expected": c in expected}
        for c, t in sorted(reports.items())
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        print(describe(args.env, rows, roster.window))
    return OK if rows else NOT_FOUND


def describe(env: str, rows: list[dict[str, Any]], window: timedelta) -> str:
    if not rows:
        return f"no cluster has reported in {env}"
    lines = [f"{'CLUSTER':<40}{'LAST REPORT':<28}EXPECTED"]
    for row in rows:
        last = row["lastReport"] or "unknown"
        lines.append(f"{row['cluster']:<40}{last:<28}{'yes' if row['expected'] else 'no'}")
    days = window.total_seconds() / 86400
    lines.append(f"(expected: reported within {days:g} day(s) of the environment's newest report)")
    return "\n".join(lines)


def stopped_reporting(container: Container, now: datetime | None = None) -> Check:
    """Clusters whose last report is older than `CLUSTER_REPORT_WINDOW_DAYS`: a cluster
    removed (forget it), or one whose notifications stopped (its gates will wait)."""
    name = "storage.clusters"
    try:
        roster = container.store.clusters
        reports = roster.everywhere()
    except (AzureError, SettingsError):  # storage.reachable says what is wrong, once
        return Check(name, True, "not checked: the state storage did not answer")
    moment = now or datetime.now(UTC)
    stale = [
        (env, cluster, last)
        for env, clusters in sorted(reports.items())
        for cluster, last in sorted(clusters.items())
        if last < moment - roster.window
    ]
    if not stale:
        return Check(name, True, "every cluster that has reported did so recently")
    shown = ", ".join(f"{e}/{c} (last {t:%Y-%m-%d %H:%M}Z)" for e, c, t in stale[:SHOWN])
    more = f" and {len(stale) - SHOWN} more" if len(stale) > SHOWN else ""
    return Check(
        name,
        False,
        f"{len(stale)} cluster(s) stopped reporting: {shown}{more}",
        "fix the cluster's Flux Alert / Argo CD notifications, or, if it is gone, "
        "`python -m connector clusters --env <env> --forget <cluster>`",
    )
