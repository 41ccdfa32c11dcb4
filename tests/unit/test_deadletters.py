"""The dead-letter queue: an in-memory fake with Service Bus semantics (used by the CLI tests),
and the Service Bus implementation driven through an injected client (no network)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import ServiceBusConnectionError

from connector.queue.deadletters import (
    REPLAY_PROPERTY,
    DeadLetter,
    DeadLetterQueue,
    ReplayResult,
    ServiceBusDeadLetterQueue,
    preview,
    replay_message_id,
)
from connector.settings import Settings, SettingsError

ENQUEUED = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)


# --- in-memory fake ------------------------------------------------------------------------------


@dataclass
class Letter:
    """A message as Service Bus holds it (main queue or dead-letter queue)."""

    message_id: str
    session_id: str
    body: bytes
    application_properties: dict[str, str] = field(default_factory=dict)
    reason: str = "MaxDeliveryCountExceeded"
    description: str = "Message could not be consumed after 5 delivery attempts."
    delivery_count: int = 5
    enqueued_time: datetime = ENQUEUED


class InMemoryDeadLetterQueue:
    """A queue and its dead-letter queue. The queue has duplicate detection: a send whose
    MessageId was seen is acknowledged but not enqueued (as Service Bus does within its window).
    `fail_sends_after` makes the queue refuse sends after that many."""

    def __init__(self, letters: list[Letter] | None = None) -> None:
        self.dead: list[Letter] = list(letters or [])
        self.queue: list[Letter] = []
        self.seen_ids: set[str] = {m.message_id for m in self.dead}  # they were sent once
        self.dropped_duplicates = 0
        self.fail_sends_after: int | None = None

    def peek(self, max_count: int) -> list[DeadLetter]:
        return [
            DeadLetter(
                message_id=m.message_id,
                session_id=m.session_id,
                reason=m.reason,
                description=m.description,
                enqueued_time=m.enqueued_time,
                delivery_count=m.delivery_count,
                body_preview=preview(m.body),
                sequence_number=i + 1,
            )
            for i, m in enumerate(self.dead[:max_count])
        ]

    def replay(self, max_count: int, preview: bool = False) -> ReplayResult:
        chosen = self.dead[:max_count]
        if preview:
            return ReplayResult(len(chosen), 0, len(chosen), preview=True)
        replayed = 0
        for letter in chosen:
            if self.fail_sends_after is not None and replayed >= self.fail_sends_after:
                error = "sending to the queue failed: ServiceBusConnectionError"
                return ReplayResult(len(chosen), replayed, len(chosen) - replayed, error=error)
            self._send(_copy(letter))
            self.dead.remove(letter)  # completed only after the send was acknowledged
            replayed += 1
        return ReplayResult(len(chosen), replayed, 0)

    def _send(self, letter: Letter) -> None:
        if letter.message_id in self.seen_ids:
            self.dropped_duplicates += 1
            return
        self.seen_ids.add(letter.message_id)
        self.queue.append(letter)

    def dead_letter_all(self) -> None:
        """The processor failed every queued message again."""
        self.dead.extend(self.queue)
        self.queue.clear()


def _copy(letter: Letter) -> Letter:
    properties = {**letter.application_properties, REPLAY_PROPERTY: letter.message_id}
    return Letter(
        replay_message_id(letter.message_id),
        letter.session_id,
        letter.body,
        properties,
        reason="",
        description="",
        delivery_count=0,
    )


def letters(n: int) -> list[Letter]:
    return [
        Letter(
            f"{i:064x}",
            f"dev-1/Kustomization/flux-system/app{i}",
            b'{"v":1,"n":%d}' % i,
            {"cluster": "dev-1", "env": "dev"},
        )
        for i in range(1, n + 1)
    ]


def test_the_fake_is_a_dead_letter_queue():
    dlq: DeadLetterQueue = InMemoryDeadLetterQueue()
    assert dlq.peek(10) == []


def test_peek_shows_without_moving():
    dlq = InMemoryDeadLetterQueue(letters(3))
    found = dlq.peek(2)
    assert [d.message_id for d in found] == [f"{1:064x}", f"{2:064x}"]
    assert found[0].reason == "MaxDeliveryCountExceeded"
    assert found[0].body_preview == '{"v":1,"n":1}'
    assert len(dlq.dead) == 3
    assert dlq.queue == []


def test_a_preview_counts_and_moves_nothing():
    dlq = InMemoryDeadLetterQueue(letters(3))
    assert dlq.replay(10, preview=True) == ReplayResult(3, 0, 3, preview=True)
    assert len(dlq.dead) == 3
    assert dlq.queue == []


def test_replay_moves_copies_that_duplicate_detection_lets_through():
    dlq = InMemoryDeadLetterQueue(letters(3))
    assert dlq.replay(2) == ReplayResult(2, 2, 0)
    assert [m.message_id for m in dlq.queue] == [f"{1:064x}#replay1", f"{2:064x}#replay1"]
    assert dlq.dropped_duplicates == 0  # the originals' ids were seen, the copies' were not
    first = dlq.queue[0]
    assert first.session_id == "dev-1/Kustomization/flux-system/app1"
    assert first.body == b'{"v":1,"n":1}'
    assert first.application_properties == {
        "cluster": "dev-1",
        "env": "dev",
        REPLAY_PROPERTY: f"{1:064x}",
    }
    assert [m.message_id for m in dlq.dead] == [f"{3:064x}"]


def test_a_copy_dead_lettered_again_is_replayed_under_the_next_id():
    dlq = InMemoryDeadLetterQueue(letters(1))
    dlq.replay(10)
    dlq.dead_letter_all()
    assert dlq.replay(10) == ReplayResult(1, 1, 0)
    assert [m.message_id for m in dlq.queue] == [f"{1:064x}#replay2"]


def test_a_failed_send_leaves_the_rest_in_the_dead_letter_queue():
    dlq = InMemoryDeadLetterQueue(letters(3))
    dlq.fail_sends_after = 1
    result = dlq.replay(10)
    assert (result.count, result.replayed, result.skipped) == (3, 1, 2)
    assert "ServiceBusConnectionError" in result.error
    assert len(dlq.dead) == 2
    assert len(dlq.queue) == 1


# --- replay ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "copy"),
    [
        ("abc", "abc#replay1"),
        ("abc#replay1", "abc#replay2"),
        ("abc#replay9", "abc#replay10"),
        ("gate-check/0123", "gate-check/0123#replay1"),
        ("abc#replayX", "abc#replayX#replay1"),
    ],
)
def test_replay_message_id(original, copy):
    assert replay_message_id(original) == copy


def test_replay_message_id_stays_within_the_service_bus_limit():
    long_id = "x" * 128
    first = replay_message_id(long_id)
    second = replay_message_id(first)
    assert len(first) <= 128
    assert len(second) <= 128
    assert first.endswith("#replay1")
    assert second.endswith("#replay2")
    assert first[:-1] == second[:-1]  # same bounded base: the chain stays recognisable


# --- Service Bus implementation, with a fake client ----------------------------------------------


@dataclass
class FakeReceived:
    """The attributes of a ServiceBusReceivedMessage the implementation reads."""

    sequence_number: int
    message_id: str | None = "m1"
    session_id: str | None = "dev-1/Kustomization/flux-system/apps"
    body_parts: tuple[bytes, ...] = (b'{"v":1,', b'"x":1}')
    body_type: AmqpMessageBodyType = AmqpMessageBodyType.DATA
    application_properties: dict = field(default_factory=lambda: {b"cluster": b"dev-1"})
    content_type: str | None = "application/json"
    correlation_id: str | None = None
    subject: str | None = None
    dead_letter_reason: str | None = "MaxDeliveryCountExceeded"
    dead_letter_error_description: str | None = "too many deliveries"
    enqueued_time_utc: datetime | None = ENQUEUED
    delivery_count: int | None = 5

    @property
    def body(self):
        return iter(self.body_parts)


class FakeReceiver:
    def __init__(self, client: FakeClient) -> None:
        self._client = client

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._client.log.append(("close-receiver",))

    def peek_messages(self, max_message_count=1, *, sequence_number=0):
        self._client.log.append(("peek", max_message_count, sequence_number))
        found = [m for m in self._client.dead if m.sequence_number >= sequence_number]
        return found[: min(max_message_count, self._client.page)]

    def receive_messages(self, max_message_count=1, max_wait_time=None):
        self._client.log.append(("receive", max_message_count))
        found = [m for m in self._client.dead if m.sequence_number not in self._client.locked]
        batch = found[:max_message_count]
        self._client.locked.update(m.sequence_number for m in batch)
        return batch

    def complete_message(self, message):
        if self._client.fail_completes:
            raise ServiceBusConnectionError(message="lock lost")
        self._client.log.append(("complete", message.sequence_number))
        self._client.dead.remove(message)
        self._client.locked.discard(message.sequence_number)

    def abandon_message(self, message):
        self._client.log.append(("abandon", message.sequence_number))
        self._client.locked.discard(message.sequence_number)


class FakeSender:
    def __init__(self, client: FakeClient) -> None:
        self._client = client

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def send_messages(self, message: ServiceBusMessage):
        if self._client.fail_sends:
            raise ServiceBusConnectionError(message="link detached")
        self._client.log.append(("send", message.message_id))
        self._client.sent.append(message)


class FakeClient:
    def __init__(self, dead: list[FakeReceived], page: int = 100) -> None:
        self.dead = list(dead)
        self.page = page
        self.sent: list[ServiceBusMessage] = []
        self.locked: set[int] = set()
        self.log: list[tuple] = []
        self.receiver_kwargs: dict | None = None
        self.sender_queue: str | None = None
        self.fail_sends = False
        self.fail_completes = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.log.append(("close-client",))

    def get_queue_receiver(self, **kwargs):
        self.receiver_kwargs = kwargs
        return FakeReceiver(self)

    def get_queue_sender(self, queue_name):
        self.sender_queue = queue_name
        return FakeSender(self)


def real(client: FakeClient) -> ServiceBusDeadLetterQueue:
    # The fake speaks the part of ServiceBusClient the dead-letter queue uses.
    return ServiceBusDeadLetterQueue(
        "flux-events", lambda: cast("ServiceBusClient", client), max_wait_time=2
    )


def test_receiver_is_the_dead_letter_sub_queue_in_peek_lock_mode():
    client = FakeClient([])
    real(client).peek(5)
    assert client.receiver_kwargs == {
        "queue_name": "flux-events",
        "sub_queue": ServiceBusSubQueue.DEAD_LETTER,
        "receive_mode": ServiceBusReceiveMode.PEEK_LOCK,
        "max_wait_time": 2,
    }
    assert client.log[-2:] == [("close-receiver",), ("close-client",)]


def test_peek_pages_by_sequence_number_and_describes_each_message():
    client = FakeClient([FakeReceived(n, message_id=f"m{n}") for n in (3, 4, 7)], page=2)
    found = real(client).peek(10)
    assert [d.message_id for d in found] == ["m3", "m4", "m7"]
    assert [e for e in client.log if e[0] == "peek"] == [
        ("peek", 10, 0),
        ("peek", 8, 5),
        ("peek", 7, 8),
    ]
    assert found[0] == DeadLetter(
        message_id="m3",
        session_id="dev-1/Kustomization/flux-system/apps",
        reason="MaxDeliveryCountExceeded",
        description="too many deliveries",
        enqueued_time=ENQUEUED,
        delivery_count=5,
        body_preview='{"v":1,"x":1}',
        sequence_number=3,
    )
    assert found[0].as_dict()["enqueued_time"] == ENQUEUED.isoformat()
    assert client.sent == []


def test_peek_stops_at_max_count():
    client = FakeClient([FakeReceived(n) for n in range(1, 6)])
    assert len(real(client).peek(2)) == 2


def test_replay_sends_a_copy_before_completing_the_dead_letter():
    client = FakeClient([FakeReceived(1, message_id="m1"), FakeReceived(2, message_id="m2")])
    result = real(client).replay(10)
    assert result == ReplayResult(2, 2, 0)
    assert client.sender_queue == "flux-events"
    steps = [e for e in client.log if e[0] in ("send", "complete", "abandon")]
    assert steps == [
        ("send", "m1#replay1"),
        ("complete", 1),
        ("send", "m2#replay1"),
        ("complete", 2),
    ]
    copy = client.sent[0]
    assert copy.session_id == "dev-1/Kustomization/flux-system/apps"
    assert b"".join(copy.body) == b'{"v":1,"x":1}'
    assert copy.content_type == "application/json"
    assert copy.application_properties == {b"cluster": b"dev-1", REPLAY_PROPERTY: "m1"}
    assert client.dead == []


def test_replay_respects_max_count():
    client = FakeClient([FakeReceived(n, message_id=f"m{n}") for n in range(1, 6)])
    assert real(client).replay(2) == ReplayResult(2, 2, 0)
    assert [m.sequence_number for m in client.dead] == [3, 4, 5]


def test_a_failed_send_abandons_instead_of_completing():
    client = FakeClient([FakeReceived(1), FakeReceived(2)])
    client.fail_sends = True
    result = real(client).replay(10)
    assert (result.count, result.replayed, result.skipped) == (1, 0, 1)
    assert result.error == "sending to the queue failed: ServiceBusConnectionError"
    assert ("complete", 1) not in client.log
    assert ("abandon", 1) in client.log
    assert len(client.dead) == 2
    assert client.locked == set()  # the second one, received in the same batch, is released too


def test_a_copy_sent_but_not_completed_is_sent_again_under_the_same_id():
    client = FakeClient([FakeReceived(1, message_id="m1")])
    client.fail_completes = True
    result = real(client).replay(10)
    assert (result.count, result.replayed, result.skipped) == (1, 0, 1)
    assert result.error.startswith("copy sent, but the dead letter could not be removed")
    client.fail_completes = False
    assert real(client).replay(10) == ReplayResult(1, 1, 0)
    # Same MessageId twice: the queue's duplicate detection keeps one copy.
    assert [m.message_id for m in client.sent] == ["m1#replay1", "m1#replay1"]


def test_a_message_without_a_data_body_is_left_for_a_person():
    odd = FakeReceived(1, body_type=AmqpMessageBodyType.VALUE, body_parts=())
    client = FakeClient([odd, FakeReceived(2, message_id="m2")])
    result = real(client).replay(10)
    assert result == ReplayResult(2, 1, 1)
    assert [m.message_id for m in client.sent] == ["m2#replay1"]
    assert ("abandon", 1) in client.log
    assert [m.sequence_number for m in client.dead] == [1]
    assert real(client).peek(1)[0].body_preview == "<AmqpMessageBodyType.VALUE body>"


def test_a_preview_only_peeks():
    client = FakeClient([FakeReceived(1), FakeReceived(2)])
    assert real(client).replay(10, preview=True) == ReplayResult(2, 0, 2, preview=True)
    assert {e[0] for e in client.log} <= {"peek", "close-receiver", "close-client"}
    assert client.sender_queue is None


def test_long_bodies_are_previewed_not_dumped():
    client = FakeClient([FakeReceived(1, body_parts=(b"x" * 1000,))])
    [found] = real(client).peek(1)
    assert found.body_preview == "x" * 200 + "..."


# --- connection from settings --------------------------------------------------------------------


def test_from_settings_uses_the_connection_string_without_connecting():
    settings = Settings.from_env(
        {
            "ServiceBusConnection": "Endpoint=sb://ns-test.servicebus.windows.net/;"
            "SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0",
            "SERVICEBUS_QUEUE": "events",
        }
    )
    dlq = ServiceBusDeadLetterQueue.from_settings(settings, credential=_no_credential)
    client = dlq._client_factory()
    assert isinstance(client, ServiceBusClient)
    assert client.fully_qualified_namespace == "ns-test.servicebus.windows.net"
    assert dlq.receiver_kwargs()["queue_name"] == "events"
    client.close()


def test_from_settings_uses_the_namespace_and_asks_for_the_credential_late():
    from azure.identity import ManagedIdentityCredential

    asked = []

    def credential():
        asked.append(1)
        return ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000001")

    settings = Settings.from_env(
        {"ServiceBusConnection__fullyQualifiedNamespace": "ns-x.servicebus.windows.net"}
    )
    dlq = ServiceBusDeadLetterQueue.from_settings(settings, credential=credential)
    assert asked == []
    client = dlq._client_factory()
    assert asked == [1]
    assert client.fully_qualified_namespace == "ns-x.servicebus.windows.net"
    client.close()


def test_from_settings_names_the_missing_setting():
    with pytest.raises(SettingsError, match="ServiceBusConnection"):
        ServiceBusDeadLetterQueue.from_settings(Settings.from_env({}), credential=_no_credential)


def _no_credential():
    raise AssertionError("no credential is needed with a connection string")


def test_a_malformed_connection_string_is_reported_as_the_setting():
    settings = Settings.from_env({"ServiceBusConnection": "garbage"})
    dlq = ServiceBusDeadLetterQueue.from_settings(settings, credential=_no_credential)
    with pytest.raises(SettingsError, match=r"^ServiceBusConnection: ") as caught:
        dlq.peek(1)
    assert "garbage" not in str(caught.value)
