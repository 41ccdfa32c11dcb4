"""The door's view of the object state rows (`core.door.StateRows`) on `<p>deployments`.

The marks live on the state row itself, in `inflight` (JSON: message id → ISO time), so that the
door decides from the one point read it makes anyway. A mark on an object with no state yet is a
row holding only `inflight`; the state store reads such a row as no state (`TableStore`). Marks
are merged (`UpdateMode.MERGE`) with If-Match, so they never overwrite a state written meanwhile,
and the state store's own writes merge too, so they keep the marks. The state store removes a
message's mark when it records that message (`storage.marks.released`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from connector.core.door import Arrival, StateRow
from connector.core.tracking import Phase
from connector.storage.marks import MARKS, marks_of, marks_text
from connector.storage.rows import key
from connector.storage.tables import NO_COMMIT

if TYPE_CHECKING:
    from azure.data.tables import TableClient


class Reader(Protocol):
    def read(self, partition: str, row: str) -> tuple[dict[str, Any], str]: ...


class TableStateRows:
    """`read`: the hot point read (`storage.point_read`), else the SDK's `get_entity`."""

    def __init__(
        self, table: Callable[[], TableClient], read: Callable[[], Reader] | None = None
    ) -> None:
        self._table = table  # `TableStore.table("deployments")`, created on first use
        self._read = read
        self._reader: Reader | None = None

    def look(self, arrival: Arrival) -> StateRow:
        partition, row = _keys(arrival)
        try:
            entity, etag = self._fetch(partition, row)
        except ResourceNotFoundError:
            return StateRow(None, None, False, {}, None)
        return state_row(entity, etag)

    def _fetch(self, partition: str, row: str) -> tuple[Mapping[str, Any], str]:
        if self._read is None:
            found = self._table().get_entity(partition, row)
            return found, str(found.metadata["etag"])
        if self._reader is None:
            self._reader = self._read()
        return self._reader.read(partition, row)

    def mark(self, arrival: Arrival, row: StateRow, marks: Mapping[str, datetime]) -> bool:
        from azure.data.tables import UpdateMode

        partition, key = _keys(arrival)
        body = {"PartitionKey": partition, "RowKey": key, MARKS: marks_text(marks)}
        table = self._table()
        try:
            if row.version is None:
                table.create_entity(body)
            else:
                table.update_entity(
                    body,
                    mode=UpdateMode.MERGE,
                    etag=row.version,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False
        return True


def state_row(entity: Mapping[str, Any], version: str) -> StateRow:
    phase = entity.get("phase")
    time = entity.get("time")
    return StateRow(
        phase=Phase(phase) if phase else None,
        time=datetime.fromisoformat(time) if time else None,
        settled=bool(entity.get("settled", False)),
        marks=marks_of(entity),
        version=version,
    )


def _keys(arrival: Arrival) -> tuple[str, str]:
    """The state row's keys, as `connector.storage.keys` builds its "object row" (a test holds
    them together), without building the others."""
    a = arrival
    return a.commit or NO_COMMIT, key("obj", a.env, a.cluster, a.kind, a.namespace, a.name)
