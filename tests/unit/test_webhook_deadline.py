"""Subscriber webhooks have one deadline for the whole delivery (connect, send, response and
retries), not one per read (`connector.outputs.deadline`): a loopback receiver that drips its
answer a byte at a time, each byte well within the read timeout, is cut off at the deadline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from connector.outputs.subscribers import Subscriber, WebhookClient, WebhookError

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class DrippingReceiver:
    """Reads a request, then answers one byte every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for byte in ANSWER:
                if self._stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up
                time.sleep(self.interval)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


@pytest.fixture
def dripping() -> Iterator[DrippingReceiver]:
    receiver = DrippingReceiver(interval=0.2)  # the whole answer takes ~14 s
    yield receiver
    receiver.close()


def test_a_dripping_receiver_is_cut_off_at_the_delivery_deadline(dripping) -> None:
    client = WebhookClient(retry_total=2, read_timeout=2, delivery_timeout=1.0)
    started = time.monotonic()

    with pytest.raises(WebhookError):
        client.post(Subscriber.parse(dripping.url()), b"{}", {})

    elapsed = time.monotonic() - started
    assert elapsed < 2.0  # each byte came within the 2 s read timeout: only the deadline ends it
    time.sleep(0.3)
    assert dripping.connections == 1  # no retry after the deadline


def test_a_receiver_that_answers_within_the_deadline_is_delivered(dripping) -> None:
    dripping.interval = 0.01  # ~0.7 s for the whole answer
    client = WebhookClient(retry_total=0, read_timeout=2, delivery_timeout=3.0)

    client.post(Subscriber.parse(dripping.url()), b"{}", {})  # no error: 200
