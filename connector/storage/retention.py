"""Retention: what the state store may forget, and a bounded cleanup that forgets it.

Age is the entity's `Timestamp`, set by the service on every write, so a row is as old as its last
change. Expired, after `STATE_RETENTION_DAYS`:
- a partition of `<p>deployments` (a commit's object states and status ledger, a pull request's
  `pr|…` ledger) whose newest row is older than the cutoff, unless it is a commit some object is
  still on (its `<p>objects` pointer): a commit deployed somewhere keeps its rows, however old;
- `<p>facts` and `<p>subscriberdeliveries` rows older than the cutoff;
- finished gates (succeeded or failed) older than the cutoff; an open gate is never deleted;
- every row of the legacy `<p>processed` table (no longer written).

Each row is deleted only while it is as we read it (If-Match): a row written meanwhile, a gate
re-opened by a re-run, stays. Deletes go in transactions of one partition (at most 100
operations); a transaction that fails is retried row by row, so one row never holds back the
others. A run deletes at most `max_rows` rows; the rest expires on the next run.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError

from connector.core.gates import GateState

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableEntity

    from connector.storage.tables import TableStore

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 30
# Deletes per run: above what the fleet of docs/scale.md expires in a day (~100,000 rows), and
# ~2,500 transactions, a few minutes at most, well inside a timer function's timeout.
MAX_ROWS_PER_RUN = 250_000
# Learn, "Performing entity group transactions": one partition, at most 100 entities.
TRANSACTION_LIMIT = 100
FINISHED_GATES = frozenset({GateState.SUCCEEDED.value, GateState.FAILED.value})
# In deletion order: the largest and most valuable first, the legacy table last.
TABLES = ("deployments", "gates", "facts", "subscriberdeliveries", "processed")


@dataclass
class CleanupReport:
    """What a run deleted (in a preview: would delete), by table (names without the prefix)."""

    cutoff: datetime
    preview: bool
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    kept_current: int = 0  # expired commit partitions kept: an object is still on the commit
    failed: int = 0  # rows not deleted: changed or gone since read, or refused by the service
    exhausted: bool = False  # the row budget ran out; the rest is for the next run

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def as_dict(self) -> dict[str, Any]:
        # `dry_run`: the former name of `preview`, kept for scripts that read it.
        data = {**asdict(self), "cutoff": self.cutoff.isoformat(), "total": self.total}
        return {**data, "dry_run": self.preview}


class Cleanup:
    """One run over the tables of a `TableStore`."""

    def __init__(
        self,
        tables: TableStore,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        max_rows: int = MAX_ROWS_PER_RUN,
    ) -> None:
        self._tables = tables
        self._retention = timedelta(days=retention_days)
        self._max_rows = max_rows

    def run(self, *, now: datetime | None = None, preview: bool = False) -> CleanupReport:
        cutoff = (now or datetime.now(UTC)) - self._retention
        report = CleanupReport(cutoff, preview)
        steps = {
            "deployments": self._deployments,
            "gates": self._gates,
            "facts": self._expired,
            "subscriberdeliveries": self._expired,
            "processed": self._processed,
        }
        for name, step in steps.items():
            if report.exhausted:
                break
            self._purge(self._tables.table(name), name, step(name, report), report)
        logger.info(
            "cleanup.done",
            extra={
                **{f"deleted_{name}": count for name, count in report.deleted.items()},
                "preview": preview,
                "kept_current": report.kept_current,
                "failed": report.failed,
                "exhausted": report.exhausted,
            },
        )
        return report

    # --- what expires -----------------------------------------------------------------------------

    def _deployments(self, name: str, report: CleanupReport) -> Iterator[list[TableEntity]]:
        table = self._tables.table(name)
        current = self._current_commits()
        for partition, rows in _by_partition(_older(table, report.cutoff)):
            if partition in current:
                report.kept_current += 1
            elif not _has_recent_row(table, partition, report.cutoff):
                yield rows

    def _gates(self, name: str, report: CleanupReport) -> Iterator[list[TableEntity]]:
        rows = _older(self._tables.table(name), report.cutoff, ["PartitionKey", "RowKey", "state"])
        finished = (row for row in rows if row.get("state") in FINISHED_GATES)
        return (group for _, group in _by_partition(finished))

    def _expired(self, name: str, report: CleanupReport) -> Iterator[list[TableEntity]]:
        return (
            group for _, group in _by_partition(_older(self._tables.table(name), report.cutoff))
        )

    def _processed(self, name: str, report: CleanupReport) -> Iterator[list[TableEntity]]:
        rows = self._tables.table(name).list_entities(select=["PartitionKey", "RowKey"])
        return (group for _, group in _by_partition(rows))

    def _current_commits(self) -> set[str]:
        pointers = self._tables.table("objects").list_entities(select=["commit"])
        return {str(p["commit"]) for p in pointers if p.get("commit")}

    # --- deleting -------------------------------------------------------------------------------

    def _purge(
        self,
        table: TableClient,
        name: str,
        groups: Iterable[list[TableEntity]],
        report: CleanupReport,
    ) -> None:
        for group in groups:
            room = self._max_rows - report.total - report.failed  # rows tried
            for chunk in _chunks(group[:room], TRANSACTION_LIMIT):
                done = len(chunk) if report.preview else _delete(table, chunk)
                report.deleted[name] += done
                report.failed += len(chunk) - done
            if len(group) > room:
                report.exhausted = True
                return


def _older(
    table: TableClient, cutoff: datetime, select: list[str] | None = None
) -> Iterator[TableEntity]:
    """Rows last written before the cutoff, keys only (their ETag comes with them)."""
    query = "Timestamp lt @cutoff"
    chosen = select or ["PartitionKey", "RowKey"]
    return iter(table.query_entities(query, parameters={"cutoff": cutoff}, select=chosen))


def _has_recent_row(table: TableClient, partition: str, cutoff: datetime) -> bool:
    query = "PartitionKey eq @pk and Timestamp ge @cutoff"
    found = table.query_entities(
        query, parameters={"pk": partition, "cutoff": cutoff}, select=["RowKey"]
    )
    return next(iter(found), None) is not None


def _by_partition(rows: Iterable[TableEntity]) -> Iterator[tuple[str, list[TableEntity]]]:
    """Consecutive rows of one partition (the service returns them in key order)."""
    for partition, group in itertools.groupby(rows, key=lambda row: str(row["PartitionKey"])):
        yield partition, list(group)


def _chunks(rows: list[TableEntity], size: int) -> Iterator[list[TableEntity]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _delete(table: TableClient, rows: list[TableEntity]) -> int:
    """Delete rows of one partition, each only while unchanged; the number deleted."""
    try:
        table.submit_transaction([_operation(row) for row in rows])
    except HttpResponseError:
        if len(rows) == 1:
            return 0
        return sum(_delete(table, [row]) for row in rows)  # one changed row spoils the batch
    return len(rows)


def _operation(row: TableEntity) -> tuple[str, TableEntity, dict[str, Any]]:
    return ("delete", row, {"match_condition": MatchConditions.IfNotModified})
