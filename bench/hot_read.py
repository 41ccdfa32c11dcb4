"""CPU instructions of the fast path's Table point read, counted by callgrind.

Each variant runs in a fresh Python process under `valgrind --tool=callgrind` against Azurite (which
runs outside valgrind): once with N point reads of one state row and once with none (the floor:
interpreter, imports, client construction, the first connection). Instructions per read =
(with reads - floor) / N. Variants:

- `sdk`: `TableClient.get_entity` as the state store builds it (`TableServiceClient` from a
  connection string, default pipeline, `requests` transport);
- `sdk-trimmed`: the same SDK call with only the policies a point read needs and a transport
  that does not scan the proxy environment per call (the tuning tried first);
- `thin`: the door's reader (`connector.storage.point_read`), the documented REST call over a
  kept-alive `http.client` connection;
- `door-look`: the whole door decision (`Door.admit` on `TableStateRows` with that reader) for a
  settled re-send.

Run: `.venv/bin/python bench/hot_read.py [--reads 200]`. Needs valgrind.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("sdk", "sdk-trimmed", "thin", "door-look")
COMMIT = "c" * 40


def child(variant: str, connection: str, table: str, reads: int) -> None:
    from connector.core.door import Arrival, Door
    from connector.core.tracking import Phase
    from connector.storage.door_rows import TableStateRows
    from connector.storage.point_read import point_reader
    from connector.storage.rows import key

    row = key("obj", "dev", "dev-1", "Kustomization", "flux-system", "apps")
    if variant in ("sdk", "sdk-trimmed"):
        client = sdk_client(connection, table, trimmed=variant == "sdk-trimmed")
        client.get_entity(COMMIT, row)  # the first connection belongs to the floor
        for _ in range(reads):
            client.get_entity(COMMIT, row)
        return
    reader = point_reader(table, connection_string=connection)
    reader.read(COMMIT, row)
    if variant == "thin":
        for _ in range(reads):
            reader.read(COMMIT, row)
        return
    door = Door(TableStateRows(lambda: None, lambda: reader))  # type: ignore[arg-type,return-value]
    at = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
    arrival = Arrival(
        "dev", "dev-1", "Kustomization", "flux-system", "apps", COMMIT, Phase.SUCCEEDED, at
    )
    for _ in range(reads):
        assert door.admit(arrival, "m") is False


def sdk_client(connection: str, table: str, *, trimmed: bool) -> Any:
    """The SDK's client; `trimmed`: only the policies a point read needs (date headers, Shared
    Key, content decoding, retries) and a transport without the per-call proxy scan."""
    from azure.core.pipeline.policies import ContentDecodePolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.data.tables import TableClient, TableServiceClient
    from azure.data.tables._authentication import _configure_credential
    from azure.data.tables._base_client import parse_connection_str
    from azure.data.tables._policies import StorageHeadersPolicy, TablesRetryPolicy

    if not trimmed:
        return TableServiceClient.from_connection_string(connection).get_table_client(table)
    endpoint, key = parse_connection_str(connection, credential=None, keyword_args={})
    policies = [
        StorageHeadersPolicy(),
        _configure_credential(key),
        ContentDecodePolicy(response_encoding="utf-8"),
        TablesRetryPolicy(),
    ]
    transport = RequestsTransport(use_env_settings=False)
    return TableClient(endpoint, table, credential=key, policies=policies, transport=transport)


def instructions(variant: str, connection: str, table: str, reads: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        variant,
        "--connection",
        connection,
        "--table",
        table,
        "--reads",
        str(reads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1))


def seed(connection: str) -> str:
    from azure.data.tables import TableServiceClient

    from connector.storage.rows import key

    table = "hot" + uuid.uuid4().hex[:12]
    client = TableServiceClient.from_connection_string(connection).create_table(table)
    client.create_entity(
        {
            "PartitionKey": COMMIT,
            "RowKey": key("obj", "dev", "dev-1", "Kustomization", "flux-system", "apps"),
            "phase": "succeeded",
            "reason": "ReconciliationSucceeded",
            "summary": "Applied revision: main@sha1:" + COMMIT,
            "time": "2026-05-14T09:00:00+00:00",
            "first_seen": "2026-05-14T09:00:00+00:00",
            "failed_since": "",
            "failure_noticed": "",
            "is_source": False,
            "settled": True,
        }
    )
    return table


def per_read(variant: str, connection: str, table: str, reads: int) -> float:
    floor = instructions(variant, connection, table, 0)
    full = instructions(variant, connection, table, reads)
    return (full - floor) / reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--child", choices=VARIANTS)
    parser.add_argument("--connection")
    parser.add_argument("--table")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.connection, args.table, args.reads)
        return
    from tests.azurite import azurite_tables

    with azurite_tables() as connection:
        table = seed(connection)
        results = {v: per_read(v, connection, table, args.reads) for v in args.variants.split(",")}
    sdk = results.get("sdk")
    print(
        f"Table point read, instructions per call (callgrind, {args.reads} calls, floor subtracted)"
    )
    for variant, count in results.items():
        ratio = f"  {count / sdk:.2f} x sdk" if sdk else ""
        print(f"{variant:10s} {count / 1e6:6.2f} M{ratio}")


if __name__ == "__main__":
    main()
