"""The Service Bus edges: the message we build for the SDK, send failures, unreadable messages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

import function_app
from connector.queue.sender import (
    OutgoingMessage,
    QueueUnavailableError,
    ServiceBusMessageSender,
    to_servicebus_message,
)
from connector.sources import UnreadableMessageError
from tests.world import servicebus_message

MESSAGE = OutgoingMessage(
    body=b'{"v":1}',
    message_id="a" * 64,
    session_id="dev-1/Kustomization/flux-system/apps",
    application_properties={
        "cluster": "dev-1",
        "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    },
    scheduled_at=datetime(2026, 5, 14, 9, 0, tzinfo=UTC),
)


def test_sdk_message_carries_ids_session_properties_and_schedule():
    sb = to_servicebus_message(MESSAGE)
    assert sb.message_id == MESSAGE.message_id
    assert sb.session_id == MESSAGE.session_id
    assert sb.content_type == "application/json"
    assert sb.application_properties is not None
    assert sb.application_properties["cluster"] == "dev-1"
    assert sb.scheduled_enqueue_time_utc == MESSAGE.scheduled_at
    assert b"".join(sb.body) == MESSAGE.body


class BrokenClient:
    closed = 0

    def get_queue_sender(self, name):
        return self

    def send_messages(self, message):
        raise ConnectionError("amqp link detached")

    def close(self):
        BrokenClient.closed += 1


def test_send_failure_becomes_queue_unavailable_and_the_link_is_dropped(monkeypatch):
    sender = ServiceBusMessageSender("flux-events", connection_string="Endpoint=sb://x/;a=b")
    made = []
    monkeypatch.setattr(sender, "_make_client", lambda: made.append(1) or BrokenClient())  # type: ignore[func-returns-value]
    for _ in range(2):
        with pytest.raises(QueueUnavailableError, match="ConnectionError"):
            sender.send(MESSAGE)
    assert len(made) == 2  # reopened after the failure, not reused broken
    assert BrokenClient.closed >= 2


def test_sender_needs_a_connection():
    with pytest.raises(ValueError, match="connection string or a namespace"):
        ServiceBusMessageSender("q")


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"v":1,"cluster":"c"}', b"[]", b""])
def test_unreadable_messages_raise_with_the_reason_and_touch_nothing(install, caplog, body):
    install()
    message = OutgoingMessage(body=body, message_id="m-1", session_id="s")
    with caplog.at_level(logging.ERROR), pytest.raises(UnreadableMessageError) as raised:
        function_app.process(servicebus_message(message, delivery_count=3))
    assert "unreadable message" in str(raised.value)
    record = next(r for r in caplog.records if r.getMessage() == "process.unreadable")
    assert record.message_id == "m-1"
    assert record.reason
