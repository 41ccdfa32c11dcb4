"""Azurite's table service for the embedded local host: the project's own npm dev dependency
(node_modules/.bin/azurite-table), on loopback, with its data on disk so that state survives a
restart. Started in its own process group (so that Ctrl-C reaches the host first, which stops
it in order) and, on Linux, with a parent-death signal, so that it never outlives the host.
Azurite saves its tables every few seconds and when it is stopped with SIGINT; a host killed
with SIGKILL can lose the last seconds of table writes (never the queue: connector/queue/local.py).
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from connector.core.errors import ConnectorError

ACCOUNT = "devstoreaccount1"
# Azurite's published well-known development key (README of Azure/Azurite; not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class AzuriteError(ConnectorError):
    """Azurite could not be started; the message says why and what to do."""


def connection_string(port: int) -> str:
    """`UseDevelopmentStorage=true` with the table port spelled out (its endpoint needs the
    account in the path: http://127.0.0.1:<port>/devstoreaccount1)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)  # when the host dies


def start(
    root: Path, location: Path, port: int, say: Callable[[str], None]
) -> subprocess.Popen[bytes] | None:
    """The Azurite process; None when one already listens there (reused). AzuriteError
    names what went wrong."""
    if listening(port):
        say(f"Azurite: something already listens on 127.0.0.1:{port}; using it")
        return None
    binary = root / "node_modules" / ".bin" / "azurite-table"
    if not binary.exists():
        raise AzuriteError(f"Azurite is not installed ({binary}): run `npm ci` or `make install`")
    location.mkdir(parents=True, exist_ok=True)
    args = [str(binary), "--tableHost", "127.0.0.1", "--tablePort", str(port)]
    args += ["--location", str(location), "--disableTelemetry", "--skipApiVersionCheck"]
    process = subprocess.Popen(  # noqa: S603 - our own dev dependency, fixed arguments
        [*args, "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads yet: the host starts them later
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            exited = process.poll() is not None and process.stderr is not None
            error = process.stderr.read().decode(errors="replace") if exited else ""  # type: ignore[union-attr]
            stop(process, lambda _: None)
            raise AzuriteError(f"Azurite did not start on 127.0.0.1:{port}: {error.strip()[:300]}")
        time.sleep(0.1)
    say(f"Azurite tables on 127.0.0.1:{port}, data in {location}")
    return process


def stop(process: subprocess.Popen[bytes], say: Callable[[str], None]) -> None:
    # SIGINT: Azurite then saves its tables to disk and closes; on SIGTERM it exits at once and
    # loses what it had not saved yet (its store saves every few seconds).
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    say("stopped Azurite")
