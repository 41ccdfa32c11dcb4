"""The Service Bus dead-letter queue (`<queue>/$deadletterqueue`): look at it, and send its
messages back to the queue. Nothing else drains it.

Replay sends a copy of each dead-lettered message to the queue (body, session id, application
properties, content type, correlation id and subject kept), and completes the dead-lettered
message only after the queue acknowledged the copy; if the send fails, the message stays.

The copy gets a new MessageId, `<original>#replay<n>` (n = 1, 2, … per round trip), because the
queue has duplicate detection (window `PT1H` by default): a message is dead-lettered within
minutes of its first send (`maxDeliveryCount` immediate redeliveries), so a copy with the same
MessageId would be accepted by the send but silently dropped, and completing the dead letter
would then lose it. The id is deterministic: if a replay sent the copy but could not complete the
dead letter, the next replay produces the same id and duplicate detection drops the second copy.
The processor keys its own idempotency on the MessageId too; a dead-lettered message was by
definition not processed, and re-processing an already recorded event changes nothing (the
state store and the status ledger make every output happen once).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from connector.core.errors import ConnectorError
from connector.queue.envelope import SERVICE_BUS_ID_LIMIT, bounded
from connector.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.servicebus import (
        ServiceBusClient,
        ServiceBusMessage,
        ServiceBusReceivedMessage,
        ServiceBusReceiver,
        ServiceBusSender,
    )

logger = logging.getLogger(__name__)

PREVIEW_CHARS = 200
RECEIVE_BATCH = 50
REPLAY_PROPERTY = "replayOf"  # application property on a copy: the dead letter's MessageId
_REPLAYED = re.compile(r"(?s)(.*)#replay([0-9]+)")


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    session_id: str
    reason: str
    description: str
    enqueued_time: datetime | None
    delivery_count: int
    body_preview: str
    sequence_number: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["enqueued_time"] = self.enqueued_time.isoformat() if self.enqueued_time else None
        return data


@dataclass(frozen=True)
class ReplayResult:
    """`count` dead letters looked at, `replayed` of them moved to the queue, `skipped` left in
    the dead-letter queue (all of them in a preview); `error` says why a replay stopped early."""

    count: int
    replayed: int
    skipped: int
    preview: bool = False
    error: str = ""


class DeadLetterQueue(Protocol):
    def peek(self, max_count: int) -> list[DeadLetter]:
        """Up to `max_count` dead letters, oldest first, without locking or moving them."""

    def replay(self, max_count: int, preview: bool = False) -> ReplayResult:
        """Move up to `max_count` dead letters back to the queue; a preview moves nothing."""


def replay_message_id(message_id: str) -> str:
    """`<id>#replay1` for a first replay, `<id>#replay<n+1>` for a copy replayed before."""
    found = _REPLAYED.fullmatch(message_id)
    base, n = (found.group(1), int(found.group(2))) if found else (message_id, 0)
    suffix = f"#replay{n + 1}"
    return bounded(base, SERVICE_BUS_ID_LIMIT - len(suffix)) + suffix


def preview(body: bytes, limit: int = PREVIEW_CHARS) -> str:
    text = body.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."


# --- Service Bus ---------------------------------------------------------------------------------


class _StopReplayError(ConnectorError):
    """The queue did not take a copy (or the dead letter could not be settled): stop here."""


class ServiceBusDeadLetterQueue:
    """The dead-letter queue of the app's queue. `client_factory` makes a ServiceBusClient (one
    per operation, closed afterwards); tests inject a fake one."""

    def __init__(
        self,
        queue_name: str,
        client_factory: Callable[[], ServiceBusClient],
        *,
        max_wait_time: float = 5.0,
    ) -> None:
        self._queue = queue_name
        self._client_factory = client_factory
        self._max_wait_time = max_wait_time

    @classmethod
    def from_settings(
        cls, settings: Settings, credential: Callable[[], TokenCredential]
    ) -> ServiceBusDeadLetterQueue:
        """Connected as the app is: `ServiceBusConnection`, else the namespace and a credential
        (asked for only when a client is made)."""
        from azure.servicebus import ServiceBusClient

        queue = settings.servicebus_queue
        if settings.servicebus_connection is not None:
            conn = settings.servicebus_connection.get_secret_value()
            return cls(queue, lambda: _from_connection_string(conn))
        namespace = settings.servicebus_namespace
        if not namespace:
            raise SettingsError(
                "Service Bus not configured: set ServiceBusConnection or "
                "ServiceBusConnection__fullyQualifiedNamespace"
            )
        return cls(queue, lambda: ServiceBusClient(namespace, credential()))

    def receiver_kwargs(self) -> dict[str, Any]:
        from azure.servicebus import ServiceBusReceiveMode, ServiceBusSubQueue

        return {
            "queue_name": self._queue,
            "sub_queue": ServiceBusSubQueue.DEAD_LETTER,
            "receive_mode": ServiceBusReceiveMode.PEEK_LOCK,
            "max_wait_time": self._max_wait_time,
        }

    @contextlib.contextmanager
    def _receiver(self) -> Iterator[tuple[ServiceBusClient, ServiceBusReceiver]]:
        with (
            self._client_factory() as client,
            client.get_queue_receiver(**self.receiver_kwargs()) as receiver,
        ):
            yield client, receiver

    def peek(self, max_count: int) -> list[DeadLetter]:
        with self._receiver() as (_, receiver):
            return [dead_letter(m) for m in _peek_all(receiver, max_count)]

    def replay(self, max_count: int, preview: bool = False) -> ReplayResult:
        if preview:
            found = len(self.peek(max_count))
            return ReplayResult(found, 0, found, preview=True)
        with (
            self._receiver() as (client, receiver),
            client.get_queue_sender(self._queue) as sender,
        ):
            return _Replay(receiver, sender, self._max_wait_time).run(max_count)


def _from_connection_string(conn: str) -> ServiceBusClient:
    from azure.servicebus import ServiceBusClient

    try:
        return ServiceBusClient.from_connection_string(conn)
    except ValueError as exc:  # the SDK's message names no setting, and echoes no value
        raise SettingsError(f"ServiceBusConnection: {exc}") from None


def _peek_all(receiver: ServiceBusReceiver, max_count: int) -> list[ServiceBusReceivedMessage]:
    """Peek returns at most a page at a time; continue after the last sequence number seen."""
    found: list[ServiceBusReceivedMessage] = []
    next_sequence = 0
    while len(found) < max_count:
        page = receiver.peek_messages(
            max_message_count=max_count - len(found), sequence_number=next_sequence
        )
        if not page:
            break
        found.extend(page)
        next_sequence = (page[-1].sequence_number or 0) + 1
    return found[:max_count]


class _Replay:
    """One replay run: receive (locked) dead letters, send a copy of each, then complete it.
    Whatever is not replayed is abandoned at the end, back to the dead-letter queue."""

    def __init__(
        self, receiver: ServiceBusReceiver, sender: ServiceBusSender, max_wait_time: float
    ) -> None:
        self._receiver = receiver
        self._sender = sender
        self._max_wait_time = max_wait_time
        self._held: list[ServiceBusReceivedMessage] = []
        self._seen: set[int] = set()
        self.count = 0
        self.replayed = 0

    def run(self, max_count: int) -> ReplayResult:
        error = ""
        try:
            self._loop(max_count)
        except _StopReplayError as exc:
            error = str(exc)
            logger.warning("dlq.replay_stopped", extra={"error": error}, exc_info=exc.__cause__)
        finally:
            self._release()
        return ReplayResult(self.count, self.replayed, self.count - self.replayed, error=error)

    def _loop(self, max_count: int) -> None:
        while self.count < max_count:
            batch = self._receiver.receive_messages(
                max_message_count=min(RECEIVE_BATCH, max_count - self.count),
                max_wait_time=self._max_wait_time,
            )
            self._held.extend(batch)  # locked: abandoned at the end unless completed
            fresh = [m for m in batch if _sequence(m) not in self._seen]
            if not fresh:
                return  # empty, or only messages looked at already (their lock expired)
            for message in fresh:
                self._one(message)

    def _one(self, message: ServiceBusReceivedMessage) -> None:
        self.count += 1
        self._seen.add(_sequence(message))
        copy = replay_copy(message)
        if copy is None:
            logger.warning("dlq.skipped", extra={"message_id": message.message_id})
            return
        try:
            self._sender.send_messages(copy)
        except Exception as exc:
            raise _StopReplayError(f"sending to the queue failed: {type(exc).__name__}") from exc
        try:
            self._receiver.complete_message(message)
        except Exception as exc:
            # The copy is queued; a later replay makes the same MessageId, which the queue drops.
            raise _StopReplayError(
                f"copy sent, but the dead letter could not be removed: {type(exc).__name__}"
            ) from exc
        self._held.remove(message)
        self.replayed += 1
        logger.info("dlq.replayed", extra={"message_id": message.message_id, "id": copy.message_id})

    def _release(self) -> None:
        for message in self._held:
            try:
                self._receiver.abandon_message(message)
            except Exception:  # an expired lock releases the message all the same
                logger.debug("dlq.abandon_failed", exc_info=True)
        self._held.clear()


def replay_copy(message: ServiceBusReceivedMessage) -> ServiceBusMessage | None:
    """The message to send back to the queue, or None when its body is not plain data (this app
    only sends data bodies; anything else is left for a person to look at)."""
    from azure.servicebus import ServiceBusMessage

    body = _data_body(message)
    if body is None:
        return None
    original = message.message_id or f"dlq-{message.sequence_number}"
    properties = dict(message.application_properties or {})
    properties[REPLAY_PROPERTY] = original
    return ServiceBusMessage(
        body,
        message_id=replay_message_id(original),
        session_id=message.session_id,
        application_properties=properties,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        subject=message.subject,
    )


def dead_letter(message: ServiceBusReceivedMessage) -> DeadLetter:
    body = _data_body(message)
    return DeadLetter(
        message_id=message.message_id or "",
        session_id=message.session_id or "",
        reason=message.dead_letter_reason or "",
        description=message.dead_letter_error_description or "",
        enqueued_time=message.enqueued_time_utc,
        delivery_count=message.delivery_count or 0,
        body_preview=preview(body) if body is not None else f"<{message.body_type} body>",
        sequence_number=message.sequence_number or 0,
    )


def _sequence(message: ServiceBusReceivedMessage) -> int:
    return message.sequence_number or 0


def _data_body(message: ServiceBusReceivedMessage) -> bytes | None:
    from azure.servicebus.amqp import AmqpMessageBodyType

    if message.body_type != AmqpMessageBodyType.DATA:
        return None
    parts: Sequence[bytes] = list(message.body)
    return b"".join(parts)
