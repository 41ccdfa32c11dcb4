"""`python -m connector cleanup [--dry-run]`: the daily retention run, by hand
(`connector.storage.retention`), with the app's `STATE_RETENTION_DAYS`."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

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
    parser.add_argument("--dry-run", action="store_true", help="count only, delete nothing")
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
    report = cleanup.run(dry_run=args.dry_run)
    print(json.dumps(report.as_dict()) if args.json else describe(report))
    return OK


def describe(report: CleanupReport) -> str:
    verb = "would be deleted" if report.dry_run else "deleted"
    prefix = "dry run: " if report.dry_run else ""
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


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
