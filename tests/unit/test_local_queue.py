"""The embedded host's file-backed queue (connector/queue/local.py) keeps what the connector
needs of Service Bus: per-session order, duplicate detection within the window, redelivery and
a dead letter after the Bicep's maximum delivery count, and what it accepted across a reopen."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.app.root import bootstrap
from connector.queue import local
from connector.queue.local import LocalDeadLetters, LocalQueue, LocalQueueSender, Received
from connector.queue.sender import OutgoingMessage
from connector.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def received(message: Received | None) -> Received:
    """A message the test knows is there."""
    assert message is not None
    return message


def msg(mid: str, session: str = "s1", at: datetime | None = None) -> OutgoingMessage:
    return OutgoingMessage(b'{"x":1}', mid, session, {"traceparent": "00-x"}, scheduled_at=at)


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[LocalQueue]:
    opened = LocalQueue(tmp_path / "q.sqlite")
    yield opened
    opened.close()


def test_constants_are_the_bicep_queue_defaults() -> None:
    bicep = (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
    assert f"param maxDeliveryCount int = {local.MAX_DELIVERY_COUNT}" in bicep
    window = re.search(r"param duplicateDetectionWindow string = 'PT(\d+)H'", bicep)
    assert window, "duplicateDetectionWindow is no longer in hours"
    assert timedelta(hours=int(window.group(1))) == local.DUPLICATE_WINDOW
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    hours, minutes, seconds = (int(p) for p in host["functionTimeout"].split(":"))
    assert timedelta(hours=hours, minutes=minutes, seconds=seconds) == local.LOCK_HELD


def test_a_session_is_delivered_in_order_one_at_a_time(queue: LocalQueue) -> None:
    for mid, session in (("a1", "a"), ("b1", "b"), ("a2", "a")):
        assert queue.send(msg(mid, session), now=T0)
    first = received(queue.receive(now=T0))
    second = received(queue.receive(now=T0))
    assert (first.message_id, second.message_id) == ("a1", "b1")
    assert queue.receive(now=T0) is None  # a2 waits for a1
    queue.complete(first)
    third = received(queue.receive(now=T0))
    assert third.message_id == "a2"
    assert third.application_properties == {"traceparent": "00-x"}


def test_a_duplicate_within_the_window_is_accepted_and_dropped(queue: LocalQueue) -> None:
    assert queue.send(msg("m"), now=T0)
    assert not queue.send(msg("m"), now=T0 + local.DUPLICATE_WINDOW - timedelta(seconds=1))
    assert queue.pending() == 1
    assert queue.send(msg("m"), now=T0 + local.DUPLICATE_WINDOW + timedelta(seconds=1))
    assert queue.pending() == 2


def test_an_abandoned_message_is_redelivered_before_its_session_moves_on(queue: LocalQueue):
    queue.send(msg("m1"), now=T0)
    queue.send(msg("m2"), now=T0)
    now = T0
    for delivery in range(1, local.MAX_DELIVERY_COUNT + 1):
        got = received(queue.receive(now=now))
        assert (got.message_id, got.delivery_count) == ("m1", delivery)
        assert queue.receive(now=now) is None  # m2 never overtakes m1
        dead = queue.abandon(got, "RuntimeError: boom", now=now)
        assert dead == (delivery == local.MAX_DELIVERY_COUNT)
        if not dead:
            assert queue.receive(now=now) is None  # redelivered only after the delay
        now += local.REDELIVERY_DELAY
    [letter] = queue.dead_letters(10)
    assert (letter.message_id, letter.reason) == ("m1", local.MAX_DELIVERY_REASON)
    assert letter.delivery_count == local.MAX_DELIVERY_COUNT
    assert "boom" in letter.description
    assert received(queue.receive(now=now)).message_id == "m2"


def test_a_scheduled_message_waits_and_does_not_block_its_session(queue: LocalQueue) -> None:
    queue.send(msg("later", at=T0 + timedelta(minutes=5)), now=T0)
    queue.send(msg("now"), now=T0)
    assert received(queue.receive(now=T0)).message_id == "now"
    assert queue.receive(now=T0) is None
    assert received(queue.receive(now=T0 + timedelta(minutes=5))).message_id == "later"


def test_what_was_accepted_survives_a_reopen_and_a_lost_lock_is_redelivered(tmp_path: Path):
    path = tmp_path / "q.sqlite"
    first = LocalQueue(path)
    first.send(msg("m1"), now=T0)
    first.send(msg("m2", "other"), now=T0)
    assert received(first.receive(now=T0)).message_id == "m1"  # in progress when the host stops
    first.close()
    again = LocalQueue(path)
    assert again.release_locks() == 1
    got = received(again.receive(now=T0))
    assert (got.message_id, got.delivery_count) == ("m1", 2)
    again.close()


def test_replay_sends_dead_letters_back_under_a_new_id(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    queue = LocalQueue(path)
    queue.send(msg("m1"), now=T0)
    now = T0
    for _ in range(local.MAX_DELIVERY_COUNT):
        queue.abandon(received(queue.receive(now=now)), "boom", now=now)
        now += local.REDELIVERY_DELAY
    letters = LocalDeadLetters(path)
    assert letters.replay(10, preview=True).skipped == 1
    assert letters.replay(10).replayed == 1
    assert letters.peek(10) == []
    assert received(queue.receive(now=now)).message_id == "m1#replay1"


def test_the_setting_selects_the_local_queue_for_the_app(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    container = bootstrap.Container(Settings.from_env({"LOCAL_QUEUE_PATH": str(path)}))
    assert isinstance(container.sender, LocalQueueSender)
    container.sender.send(msg("m1"))
    reader = LocalQueue(path)
    assert received(reader.receive()).message_id == "m1"
    reader.close()
    assert isinstance(container.dead_letters, LocalDeadLetters)
