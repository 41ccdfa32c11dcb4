"""Sending envelopes to the Service Bus queue with the `azure-servicebus` SDK.

The Functions output binding cannot set MessageId or SessionId, which duplicate detection and
per-object ordering need, so ingest sends with the SDK: one client and sender per process, reused.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from connector.core.errors import ConnectorError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender

logger = logging.getLogger(__name__)


@dataclass(slots=True)  # one per event: not frozen, as connector.web says why; never mutated
class OutgoingMessage:
    body: bytes
    message_id: str
    session_id: str
    application_properties: dict[str, str] = field(default_factory=dict)
    scheduled_at: datetime | None = None  # deliver no earlier than this (UTC)


class QueueUnavailableError(ConnectorError):
    """The message was not acknowledged by the queue; the caller must not report success."""

    retryable = True


class MessageSender(Protocol):
    def send(self, message: OutgoingMessage) -> None:
        """Return once the queue acknowledged the message; else raise QueueUnavailableError."""


class ServiceBusMessageSender:
    """A lazily opened, lock-protected sender (the SDK's sender is not thread-safe)."""

    def __init__(
        self,
        queue_name: str,
        *,
        connection_string: str | None = None,
        namespace: str | None = None,
        credential: TokenCredential | None = None,
    ) -> None:
        if not connection_string and not (namespace and credential):
            raise ValueError("Service Bus needs a connection string or a namespace and credential")
        self._queue_name = queue_name
        self._connection_string = connection_string
        self._namespace = namespace
        self._credential = credential
        self._lock = threading.Lock()
        self._client: ServiceBusClient | None = None
        self._sender: ServiceBusSender | None = None

    def send(self, message: OutgoingMessage) -> None:
        sb_message = to_servicebus_message(message)
        with self._lock:
            try:
                self._open().send_messages(sb_message)
            except Exception as exc:
                # Drop the link: a broken AMQP connection is re-opened on the next send.
                self._close_locked()
                raise QueueUnavailableError(type(exc).__name__) from exc

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _open(self) -> ServiceBusSender:
        if self._sender is None:
            self._client = self._make_client()
            self._sender = self._client.get_queue_sender(self._queue_name)
        return self._sender

    def _make_client(self) -> ServiceBusClient:
        from azure.servicebus import ServiceBusClient

        if self._connection_string:
            return ServiceBusClient.from_connection_string(self._connection_string)
        return ServiceBusClient(self._namespace or "", self._credential)  # type: ignore[arg-type]

    def _close_locked(self) -> None:
        for closable in (self._sender, self._client):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # closing a broken link must not hide the original error
                    logger.debug("servicebus.close_failed", exc_info=True)
        self._sender = None
        self._client = None


def to_servicebus_message(message: OutgoingMessage) -> ServiceBusMessage:
    from azure.servicebus import ServiceBusMessage

    # The scheduled time only when there is one: the SDK's setter is a tenth of the build.
    scheduled: dict[str, Any] = {}
    if message.scheduled_at is not None:
        scheduled["scheduled_enqueue_time_utc"] = message.scheduled_at
    return ServiceBusMessage(
        message.body,
        message_id=message.message_id,
        session_id=message.session_id,
        content_type="application/json",
        application_properties=dict(message.application_properties),  # type: ignore[arg-type]
        **scheduled,
    )
