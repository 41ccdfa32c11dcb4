"""Start Azurite's table service from the project's own npm dev dependency, on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's published well-known development key (not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"TableEndpoint={endpoint};"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("azurite did not start listening in time")


@contextmanager
def azurite_tables() -> Iterator[str]:
    """Yield a connection string. AZURITE_TABLE_ENDPOINT reuses an Azurite already running."""
    endpoint = os.environ.get("AZURITE_TABLE_ENDPOINT")
    if endpoint:
        yield connection_string(endpoint)
        return
    binary = ROOT / "node_modules" / ".bin" / "azurite-table"
    if not binary.exists():
        raise RuntimeError("Azurite is not installed: run `make install` (npm ci)")
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own dev dependency, fixed arguments
        [
            str(binary),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(port),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        _wait_for(port, proc)
        yield connection_string(f"http://127.0.0.1:{port}/{ACCOUNT}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
