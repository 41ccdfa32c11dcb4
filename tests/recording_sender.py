"""A recording fake of the Service Bus sender with the real one's contract: `send` returns only
when the message is accepted, raises QueueUnavailableError otherwise, and a repeated message id
inside the duplicate-detection window is accepted but not enqueued again (as Service Bus does)."""

from __future__ import annotations

import threading

from connector.queue.sender import OutgoingMessage, QueueUnavailableError


class RecordingSender:
    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []
        self.dropped_duplicates = 0
        self.fail_next = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> None:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise QueueUnavailableError("ServiceBusConnectionError")
            if message.message_id in self._seen:
                self.dropped_duplicates += 1
                return
            self._seen.add(message.message_id)
            self.messages.append(message)

    def drain(self) -> list[OutgoingMessage]:
        with self._lock:
            taken, self.messages = self.messages, []
            return taken
