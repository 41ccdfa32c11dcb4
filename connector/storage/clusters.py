"""Which clusters report in an environment, and when each last did: what an environment that
`ENVIRONMENTS` does not list expects.

Rows in `<p>objects`: PartitionKey = `<env>`, RowKey = `cluster|<name>`, `last` = the time of its
last report (the event's time, bounded by the receive time). A report refreshes the row at most
once an hour per process and cluster, with one write and no read: the steady state stays one
read per event and one write per cluster and hour. A cluster is expected
while it reported within `window` of the environment's newest report (relative, as the sibling
cut-off is, so replays agree): one that stopped reporting, or a `send-sample` with a wrong
`--cluster`, stops holding every later gate up once the window has passed.

Rows written before this (one `clusters` row listing every name, or none, only pointers) are
read as reports at the time of the cluster's newest pointer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from connector.storage.rows import gathered_text, iso, key, spread_text, unkey, update_row

if TYPE_CHECKING:
    from azure.data.tables import TableClient

DEFAULT_WINDOW_DAYS = 3.0  # CLUSTER_REPORT_WINDOW_DAYS
REFRESH = timedelta(hours=1)  # how often (wall clock) a process rewrites a cluster's `last`
_PREFIX = "cluster"
_LEGACY_ROW = "clusters"

Reports = dict[str, datetime | None]  # by cluster: its last report (None: not known)
NewestPointers = Callable[[str], dict[str, datetime]]  # env -> each cluster's newest pointer


class ClusterRoster:
    def __init__(
        self,
        table: Callable[[], TableClient],
        newest_pointers: NewestPointers,
        window: timedelta = timedelta(days=DEFAULT_WINDOW_DAYS),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._table = table
        self._newest_pointers = newest_pointers
        self.window = window
        self._clock = clock
        # (when, what) this process last wrote per (env, cluster)
        self._noted: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        self._lock = threading.Lock()

    def note(self, env: str, cluster: str, at: datetime) -> None:
        """A report of `cluster` at `at` (its event time): written without a read (a merge of
        `last`) when this process has not written one for the cluster within `REFRESH` of its
        own clock, and never older than what it wrote. Another process may write an older
        time, by the few minutes events of one cluster arrive apart: nothing for a window of
        days."""
        from azure.data.tables import UpdateMode

        now = self._clock()
        with self._lock:
            written = self._noted.get((env, cluster))
            if written is not None and (now < written[0] + REFRESH or at <= written[1]):
                return
            self._noted[env, cluster] = (now, at)
        entity = {"PartitionKey": key(env), "RowKey": key(_PREFIX, cluster), "last": iso(at)}
        self._table().upsert_entity(entity, mode=UpdateMode.MERGE)

    def reports(self, env: str) -> Reports:
        """Every cluster that ever reported in `env` (and was not forgotten), with its last
        report."""
        found: Reports = {}
        legacy: list[str] = []
        for entity in self._table().query_entities(
            "PartitionKey eq @pk", parameters={"pk": key(env)}
        ):
            row = str(entity["RowKey"])
            if row == _LEGACY_ROW:
                legacy = json.loads(gathered_text(entity, "names"))
            elif row.startswith(_PREFIX + "|"):
                found[unkey(row)[1]] = datetime.fromisoformat(entity["last"])
        missing = [c for c in legacy if c not in found]
        if missing or not found:
            newest = self._newest_pointers(env)
            for cluster in missing or newest:
                found[cluster] = newest.get(cluster)
        return found

    def expected(self, env: str) -> list[str]:
        """The clusters `env` expects: each that reported within `window` of its newest report
        (one whose last report is not known counts)."""
        reports = self.reports(env)
        known = [t for t in reports.values() if t is not None]
        if not known:
            return sorted(reports)
        horizon = max(known) - self.window
        return sorted(c for c, t in reports.items() if t is None or t >= horizon)

    def everywhere(self) -> dict[str, dict[str, datetime]]:
        """Every cluster's last report, by environment (a scan of the table: for `doctor`)."""
        found: dict[str, dict[str, datetime]] = {}
        query = "RowKey ge @low and RowKey lt @high"
        low, high = _PREFIX + "|", _PREFIX + "}"
        for entity in self._table().query_entities(query, parameters={"low": low, "high": high}):
            (env,) = unkey(str(entity["PartitionKey"]))
            cluster = unkey(str(entity["RowKey"]))[1]
            found.setdefault(env, {})[cluster] = datetime.fromisoformat(entity["last"])
        return found

    def forget(self, env: str, cluster: str) -> bool:
        """Stop expecting `cluster` in `env` until it reports again: its row, its name in an
        older list, and its pointers go. False when nothing was known of it."""
        table = self._table()
        gone = _delete(table, key(env), key(_PREFIX, cluster))
        gone = self._drop_legacy(env, cluster) or gone
        pointers = table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": key(env, cluster)}, select=["RowKey"]
        )
        for entity in list(pointers):
            gone = _delete(table, key(env, cluster), str(entity["RowKey"])) or gone
        with self._lock:
            self._noted.pop((env, cluster), None)
        return gone

    def _drop_legacy(self, env: str, cluster: str) -> bool:
        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
            names = json.loads(gathered_text(entity, "names")) if entity is not None else []
            if cluster not in names:
                return None, False
            kept = [n for n in names if n != cluster]
            return spread_text("names", json.dumps(kept)), True

        return update_row(self._table(), key(env), _LEGACY_ROW, change)


def _delete(table: TableClient, partition: str, row: str) -> bool:
    try:
        table.get_entity(partition, row, select=["RowKey"])
    except ResourceNotFoundError:
        return False
    table.delete_entity(partition, row)
    return True
