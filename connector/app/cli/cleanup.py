"""`python -m connector cleanup [--preview]`: the daily retention run, by hand
(`connector.storage.retention`), with the app's `STATE_RETENTION_DAYS`. `--preview` counts what
would go and deletes nothing (`--dry-run`, its former name, still works)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from connector.app.cli.arguments import add_preview, positive
from connector.storage.retention import MAX_ROWS_PER_RUN, Cleanup, CleanupReport

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container

OK = 0


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "cleanup",
        parents=[common],
        help="delete state older than STATE_RETENTION_DAYS (as the daily timer does)",
    )
    add_preview(parser, "count only, delete nothing")
    parser.add_argument(
        "--max-rows",
        type=positive,
        default=MAX_ROWS_PER_RUN,
        help=f"at most N rows in this run ({MAX_ROWS_PER_RUN})",
    )
    parser.set_defaults(run=command)


def command(container: Container, args: argparse.Namespace) -> int:
    days = container.settings.state_retention_days
    cleanup = Cleanup(container.store, retention_days=days, max_rows=args.max_rows)
    report = cleanup.run(preview=args.preview)
    print(json.dumps(report.as_dict()) if args.json else describe(report))
    return OK


def describe(report: CleanupReport) -> str:
    verb = "would be deleted" if report.preview else "deleted"
    prefix = "preview: " if report.preview else ""
    lines = [f"{prefix}state last written before {report.cutoff:%Y-%m-%d %H:%M}Z"]
    lines += [f"  {name:<22}{count:>9} {verb}" for name, count in report.deleted.items()]
    lines.append(f"  {report.total} row(s) {verb} in all")
    if report.kept_current:
        lines.append(f"  {report.kept_current} expired commit(s) kept: objects are still on them")
    if report.failed:
        lines.append(f"  {report.failed} row(s) left: changed or gone since read, or refused")
    if report.exhausted:
        lines.append("  the row budget ran out: run again for the rest")
    return "\n".join(lines)
