"""`python -m connector clusters --env E [--forget C]`: the clusters an environment has seen,
with their last report and whether it still expects them (`connector.storage.clusters`). The
`doctor` check naming clusters that stopped reporting is `connector.app.doctor.clusters`."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container

OK, NOT_FOUND = 0, 1


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
