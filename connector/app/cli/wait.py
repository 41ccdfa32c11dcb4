"""Long CLI waits say what they wait for: a command that reaches a service which does not
answer (no Service Bus, no Azurite) can spend its SDK's whole retry budget, 12 s and more, in
silence. After a moment it says, on stderr, what it waits for and the likely cause; then how
long it has waited, every few seconds, until the command returns."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from connector.settings import Settings

FIRST_NOTICE_SECONDS = 2.0
EVERY_SECONDS = 5.0


def target(command: str, settings: Settings) -> tuple[str, str] | None:
    """What a command waits for and the likely cause when it does not answer; None for the
    commands that say so themselves (send-sample) or do not wait."""
    if command == "dlq":
        if settings.local_queue_path:
            return "the local queue file", "another process holds it locked"
        where = "the Service Bus emulator" if _emulator(settings) else "Service Bus"
        return where, (
            "nothing answers there: start the emulator (docker compose up -d) or check "
            "ServiceBusConnection / ServiceBusConnection__fullyQualifiedNamespace"
        )
    if command in {"status", "gates", "cleanup"}:
        return "the state storage", (
            "nothing answers there: is Azurite running (make run starts it)? else check "
            "AzureWebJobsStorage / STATE_STORAGE and the network"
        )
    return None


def _emulator(settings: Settings) -> bool:
    conn = settings.servicebus_connection
    return conn is not None and "usedevelopmentemulator=true" in conn.get_secret_value().lower()


@contextmanager
def announced(command: str, settings: Settings) -> Iterator[None]:
    found = target(command, settings)
    if found is None:
        yield
        return
    with progress(*found):
        yield


@contextmanager
def progress(what: str, cause: str, first: float = FIRST_NOTICE_SECONDS) -> Iterator[None]:
    done = threading.Event()
    start = time.monotonic()

    def notices() -> None:
        if done.wait(first):
            return
        print(f"waiting for {what}... if this lasts: {cause}", file=sys.stderr, flush=True)
        while not done.wait(EVERY_SECONDS):
            waited = time.monotonic() - start
            print(f"  still waiting for {what} ({waited:.0f} s)", file=sys.stderr, flush=True)

    thread = threading.Thread(target=notices, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
