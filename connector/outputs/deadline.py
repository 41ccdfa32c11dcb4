"""One deadline for a whole webhook delivery: connecting, sending and the response, retries and
their waits included.

Socket timeouts bound each read, not the delivery: a receiver dripping a byte every few seconds
would hold the invocation for as long as it likes. So the requests session that the webhook
client's azure-core transport uses registers the socket of every connection it opens or reuses
for the delivery running on this thread, and a timer shuts those sockets down at the deadline
(a blocked read returns at once, and the request fails). New connections after the deadline
are refused, and azure-core's retry policy gets the same deadline as its absolute `timeout`
(so it starts no attempt after it), and `connector.retries` no wait past it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError

from connector import retries


class _Delivery:
    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.expired = False
        self.lock = threading.Lock()

    def register(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self.lock:
            if self.expired:
                _shut(sock)
            else:
                self.sockets.append(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)


_current = threading.local()  # the delivery running on this thread, if any


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _delivery() -> _Delivery | None:
    return getattr(_current, "delivery", None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Run one delivery on this thread within `seconds`."""
    delivery = _Delivery()
    _current.delivery = delivery
    timer = threading.Timer(seconds, delivery.expire)
    timer.daemon = True
    timer.start()
    try:
        with retries.deadline(time.monotonic() + seconds):
            yield
    finally:
        timer.cancel()
        _current.delivery = None


class _Registering:
    """Mixed into urllib3's connections: each socket used for a delivery is registered."""

    sock: socket.socket | None

    def connect(self) -> None:
        delivery = _delivery()
        if delivery is not None and delivery.expired:
            raise ConnectTimeoutError(self, "the delivery's deadline has passed")
        super().connect()  # type: ignore[misc]
        if delivery is not None:
            delivery.register(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        delivery = _delivery()
        if delivery is not None:
            delivery.register(self.sock)  # a kept-alive connection, reused
        super().request(*args, **kwargs)  # type: ignore[misc]


class _Connection(_Registering, HTTPConnection):
    pass


class _TlsConnection(_Registering, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConnection


class _DeadlineAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}


def session() -> requests.Session:
    """A requests session whose connections honour `deadline` (proxied ones get only the
    retry policy's absolute timeout)."""
    made = requests.Session()
    adapter = _DeadlineAdapter()
    made.mount("http://", adapter)
    made.mount("https://", adapter)
    return made
