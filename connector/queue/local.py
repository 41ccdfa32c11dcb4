"""A file-backed queue for the embedded local host (`python -m connector serve`), in SQLite.

It keeps the three Service Bus properties the connector relies on (infra/main.bicep, the
queue resource): per-session order (one message of a session at a time, the oldest first; an
abandoned message is redelivered before the session's later ones), duplicate detection (a
MessageId seen within `DUPLICATE_WINDOW` is accepted and dropped) and dead-lettering after
`MAX_DELIVERY_COUNT` deliveries. Why SQLite and not Azurite's Queue service: Azurite's queues
have no sessions, no duplicate detection and no dead-letter queue, so all three would be built
on top anyway, and each would need a second store to be atomic with the enqueue; one SQLite
transaction does it, from the standard library, and a send returns only after the commit
reached the disk (`synchronous=FULL`), so what was answered 202 survives a stop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.queue.deadletters import DeadLetter, ReplayResult, preview, replay_message_id
from connector.queue.sender import OutgoingMessage, QueueUnavailableError

# infra/main.bicep: `param duplicateDetectionWindow string = 'PT1H'`, `param maxDeliveryCount
# int = 5` (tests/unit/test_local_queue.py reads them there).
DUPLICATE_WINDOW = timedelta(hours=1)
MAX_DELIVERY_COUNT = 5
# How long a received message stays locked: the host renews a message's lock while its function
# runs, and host.json's functionTimeout (10 min) ends the run. A host that stopped mid-message
# gives its locks back at the next start (`release_locks`).
LOCK_HELD = timedelta(minutes=10)
# Service Bus redelivers an abandoned message at once; a second here keeps a failing message
# from spinning the laptop's CPU through its deliveries.
REDELIVERY_DELAY = timedelta(seconds=1)
MAX_DELIVERY_REASON = "MaxDeliveryCountExceeded"  # Service Bus's own dead-letter reason

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  body BLOB NOT NULL,
  properties TEXT NOT NULL,
  enqueued_at TEXT NOT NULL,
  available_at TEXT NOT NULL,
  retry_at TEXT NOT NULL,
  locked_until TEXT,
  delivery_count INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0,
  reason TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS messages_session ON messages (dead, session_id, seq);
CREATE TABLE IF NOT EXISTS seen (message_id TEXT PRIMARY KEY, at TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Received:
    """A locked message: complete it, or abandon it (redelivered, or dead-lettered)."""

    seq: int
    message_id: str
    session_id: str
    body: bytes
    application_properties: dict[str, str]
    enqueued_at: datetime
    delivery_count: int


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


class LocalQueue:
    """One queue in one SQLite file; safe across threads and processes (SQLite's own locks)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise QueueUnavailableError(f"local queue {self.path}: {exc}") from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def send(self, message: OutgoingMessage, now: datetime | None = None) -> bool:
        """Enqueue durably; False when duplicate detection dropped it (still a success)."""
        now = now or datetime.now(UTC)
        try:
            with self._tx() as db:
                db.execute("DELETE FROM seen WHERE at < ?", (_iso(now - DUPLICATE_WINDOW),))
                seen = db.execute(
                    "INSERT OR IGNORE INTO seen VALUES (?, ?)", (message.message_id, _iso(now))
                )
                if seen.rowcount == 0:
                    return False
                available = message.scheduled_at or now
                db.execute(
                    "INSERT INTO messages (message_id, session_id, body, properties, "
                    "enqueued_at, available_at, retry_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        message.message_id,
                        message.session_id,
                        message.body,
                        json.dumps(message.application_properties),
                        _iso(now),
                        _iso(available),
                        _iso(now),
                    ),
                )
                return True
        except sqlite3.Error as exc:
            raise QueueUnavailableError(f"local queue: {exc}") from None

    def receive(self, now: datetime | None = None) -> Received | None:
        """Lock the oldest message that heads its session, or None. A session whose head is
        locked or waiting for its redelivery gives nothing (its order is kept)."""
        now = now or datetime.now(UTC)
        stamp = _iso(now)
        with self._tx() as db:
            row = db.execute(
                "SELECT m.seq, m.message_id, m.session_id, m.body, m.properties, m.enqueued_at,"
                " m.delivery_count FROM messages m WHERE m.dead = 0 AND m.available_at <= ?"
                " AND m.retry_at <= ? AND (m.locked_until IS NULL OR m.locked_until <= ?)"
                " AND NOT EXISTS (SELECT 1 FROM messages e WHERE e.dead = 0"
                "   AND e.session_id = m.session_id AND e.seq < m.seq AND e.available_at <= ?)"
                " ORDER BY m.seq LIMIT 1",
                (stamp, stamp, stamp, stamp),
            ).fetchone()
            if row is None:
                return None
            count = int(row[6]) + 1  # Service Bus counts a delivery when it locks the message
            db.execute(
                "UPDATE messages SET delivery_count = ?, locked_until = ? WHERE seq = ?",
                (count, _iso(now + LOCK_HELD), row[0]),
            )
        return Received(
            seq=int(row[0]),
            message_id=str(row[1]),
            session_id=str(row[2]),
            body=bytes(row[3]),
            application_properties=json.loads(row[4]),
            enqueued_at=datetime.fromisoformat(row[5]),
            delivery_count=count,
        )

    def complete(self, message: Received) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM messages WHERE seq = ?", (message.seq,))

    def abandon(self, message: Received, error: str, now: datetime | None = None) -> bool:
        """Unlock for redelivery; True when it was dead-lettered instead (deliveries used up)."""
        now = now or datetime.now(UTC)
        dead = message.delivery_count >= MAX_DELIVERY_COUNT
        with self._tx() as db:
            db.execute(
                "UPDATE messages SET locked_until = NULL, retry_at = ?, dead = ?, reason = ?,"
                " description = ? WHERE seq = ?",
                (
                    _iso(now + REDELIVERY_DELAY),
                    int(dead),
                    MAX_DELIVERY_REASON if dead else "",
                    error[:500] if dead else "",
                    message.seq,
                ),
            )
        return dead

    def release_locks(self) -> int:
        """At start-up: the locks of a host that stopped mid-message (redelivered now, as
        Service Bus does when a lock expires; the delivery was counted)."""
        with self._tx() as db:
            db.execute(
                "UPDATE messages SET dead = 1, reason = ?, description = 'lock lost',"
                " locked_until = NULL WHERE locked_until IS NOT NULL AND delivery_count >= ?",
                (MAX_DELIVERY_REASON, MAX_DELIVERY_COUNT),
            )
            return db.execute(
                "UPDATE messages SET locked_until = NULL WHERE locked_until IS NOT NULL"
            ).rowcount

    def pending(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM messages WHERE dead = 0").fetchone()
        return int(row[0])

    def dead_letters(self, max_count: int) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT message_id, session_id, reason, description, enqueued_at,"
                " delivery_count, body, seq FROM messages WHERE dead = 1 ORDER BY seq LIMIT ?",
                (max_count,),
            ).fetchall()
        return [
            DeadLetter(
                message_id=r[0],
                session_id=r[1],
                reason=r[2],
                description=r[3],
                enqueued_time=datetime.fromisoformat(r[4]),
                delivery_count=int(r[5]),
                body_preview=preview(bytes(r[6])),
                sequence_number=int(r[7]),
            )
            for r in rows
        ]

    def requeue(self, letters: list[DeadLetter]) -> None:
        """Dead letters back to the queue, in one transaction, under the Service Bus replay's
        ids (connector/queue/deadletters.py: duplicate detection would drop the old id)."""
        with self._tx() as db:
            for letter in letters:
                db.execute(
                    "UPDATE messages SET dead = 0, delivery_count = 0, reason = '',"
                    " description = '', message_id = ? WHERE seq = ?",
                    (replay_message_id(letter.message_id), letter.sequence_number),
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class LocalQueueSender:
    """The app's `MessageSender` when `LOCAL_QUEUE_PATH` is set (the embedded host sets it)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._queue: LocalQueue | None = None
        self._lock = threading.Lock()

    def _open(self) -> LocalQueue:
        with self._lock:
            if self._queue is None:
                self._queue = LocalQueue(self._path)
            return self._queue

    def send(self, message: OutgoingMessage) -> None:
        self._open().send(message)


class LocalDeadLetters:
    """`dlq peek` / `dlq replay` on the local queue, with the Service Bus replay's ids."""

    def __init__(self, path: str | Path) -> None:
        self._queue = LocalQueue(path)

    def peek(self, max_count: int) -> list[DeadLetter]:
        return self._queue.dead_letters(max_count)

    def replay(self, max_count: int, preview: bool = False) -> ReplayResult:
        letters = self._queue.dead_letters(max_count)
        if preview:
            return ReplayResult(len(letters), 0, len(letters), preview=True)
        self._queue.requeue(letters)
        return ReplayResult(len(letters), len(letters), 0)
