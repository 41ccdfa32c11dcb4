"""The ingest door: an unchanged re-send of a settled state is answered here, from one point read
of the object's state row, and never reaches the queue (the steady state of a fleet: every object
re-reports every few minutes, nothing changes).

Why a read alone is not enough: a settled Succeeded, then a Failed still queued, then the
recovery Succeeded arrives: it looks like the settled state, and dropping it would leave the
object failed. So every event the door lets through is first *marked* on the state row (its
message id, written with If-Match or as a create), and the state store removes the mark when it
records that message (in the write it makes anyway; a message that changes nothing pays one).
The door answers an event itself only when the row is settled, no mark is live, and the
processor would find nothing to do with it (the same phase again, progress over a finished
result, or an older event): then nothing in flight can change the row before this event would
have been processed, and processing it would have been a no-op. Everything else is sent exactly
as before.

A mark that is never released (the send failed and the sender gave up, a duplicate send that
Service Bus dropped, a message dead-lettered) only keeps the door open for that object: its
re-sends are queued and processed as before, until the mark expires with the queue's message
time-to-live (`MARK_LIFETIME`), after which no message it stands for can still be delivered.

Pure, in the core: the sources call it at ingest, `storage.door_rows` implements `StateRows` on
the state table, `storage.tables` releases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from connector.core.errors import ConnectorError
from connector.core.tracking import TERMINAL, Observation, Phase

# The queue's default message time-to-live (infra/main.bicep `messageTimeToLive`, P1D): a message
# marked longer ago has been delivered, dead-lettered or expired.
MARK_LIFETIME = timedelta(days=1)
# Marks kept per row before they collapse into one blanket mark (`EVERYTHING`), which no release
# removes and which expires like any mark: the row stays far below the 64 KiB property limit.
MAX_MARKS = 100
EVERYTHING = "*"
MAX_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Arrival:
    """What the door needs of an event: its state row's identity, phase and time."""

    env: str
    cluster: str
    kind: str
    namespace: str
    name: str
    commit: str | None
    phase: Phase | None
    time: datetime

    @classmethod
    def of(cls, obs: Observation) -> Arrival:
        o = obs.obj
        return cls(
            obs.env, obs.cluster, o.kind, o.namespace, o.name, obs.commit, obs.phase, obs.time
        )


@dataclass(frozen=True, slots=True)
class StateRow:
    """An object's state row as the door reads it. `phase` None: no state recorded yet (no row,
    or a row holding only marks); `version` None: no row."""

    phase: Phase | None
    time: datetime | None
    settled: bool
    marks: Mapping[str, datetime]  # message id → when it was marked
    version: str | None


class StateRows(Protocol):
    """The state rows, as the door reads and marks them."""

    def look(self, arrival: Arrival) -> StateRow:
        """One point read of the arrival's state row."""
        ...

    def mark(self, arrival: Arrival, row: StateRow, marks: Mapping[str, datetime]) -> bool:
        """Store `marks` on the row only while it is as `row` read it (a create when there was
        no row); False when it changed meanwhile."""
        ...


class DoorUnavailableError(ConnectorError):
    """The state rows could not be read or marked: the event must not be sent unmarked."""

    retryable = True


class Door:
    def __init__(
        self, rows: StateRows, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._rows = rows
        self._clock = clock

    def admit(self, arrival: Arrival, message_id: str) -> bool:
        """True: the event is marked and must be sent. False: answered here, nothing to send."""
        try:
            return self._admit(arrival, message_id)
        except DoorUnavailableError:
            raise
        except Exception as exc:  # the Table SDK's errors: the caller answers 503
            raise DoorUnavailableError(type(exc).__name__) from exc

    def _admit(self, arrival: Arrival, message_id: str) -> bool:
        for _ in range(MAX_ATTEMPTS):
            now = self._clock()
            row = self._rows.look(arrival)
            live = live_marks(row.marks, now)
            if not live and answered(row, arrival):
                return False
            if message_id in live:  # a retry of a delivery already marked
                return True
            if self._rows.mark(arrival, row, with_mark(live, message_id, now)):
                return True
        raise DoorUnavailableError("the state row kept changing")


def answered(row: StateRow, arrival: Arrival) -> bool:
    """Whether processing the arrival against this settled row would do nothing: the verdicts
    UNCHANGED and STALE of `core.tracking.transition` (a test holds the two together). An
    informational event (no phase) is left to the processor."""
    if not row.settled or row.phase is None or row.time is None or arrival.phase is None:
        return False
    if arrival.time < row.time:
        return True  # stale: recorded times only grow, so it stays stale
    return arrival.phase == row.phase or (
        arrival.phase == Phase.PROGRESSING and row.phase in TERMINAL
    )


def live_marks(marks: Mapping[str, datetime], now: datetime) -> dict[str, datetime]:
    return {m: at for m, at in marks.items() if now - at < MARK_LIFETIME}


def with_mark(live: Mapping[str, datetime], message_id: str, now: datetime) -> dict[str, datetime]:
    if EVERYTHING in live or len(live) >= MAX_MARKS:
        return {EVERYTHING: now}  # still in flight, whatever it is; expires as one mark
    return {**live, message_id: now}
