"""What the on-call index costs at fleet scale: Table requests, bytes and time of `GET /api/ui`.

An environment of N clusters (1,000 by default, one Kustomization each) is processed for real
through the registered functions (tests/world.py: `/api/flux`, the queue function, Azurite, the
fake Azure DevOps): every cluster healthy on a baseline commit, then a rollout of a new commit
that reaches a tenth of the clusters (one of them failing) while a prod gate waits. The board
rows the index reads are written by the processing itself (connector/outputs/board.py).

Counted by the TableServiceClient's transport (every request the SDK sends, continuation pages
included): the index, against two floors measured in the same run: the single query of the board
partition alone, and what reading the same "what runs where" from the state rows would cost
(the environment's pointers: one query per 1,000 objects, as `cluster_objects` reads them).
Also what keeping the board costs the processing: board requests per event.
Run: `.venv/bin/python bench/ui.py [--clusters 1000]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import BASE, ROLLOUT, CountingTransport, loopback  # noqa: E402

ENV = "prod"


class TableCounting(CountingTransport):
    """Also counts the requests that reach one table (by its name in the URL)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watched = ""
        self.watched_requests = 0

    def send(self, request: Any, **kwargs: Any) -> Any:
        if self.watched and self.watched in request.url:
            self.watched_requests += 1
        return super().send(request, **kwargs)


def world_on(connection: str, azdo: Any, clusters: int) -> tuple[Any, TableCounting]:
    import uuid

    from azure.data.tables import TableServiceClient

    from connector.storage.tables import TableStore
    from tests.world import REPO, World

    counter = TableCounting()
    service = TableServiceClient.from_connection_string(connection, transport=counter)
    prefix = "ui" + uuid.uuid4().hex[:10]
    counter.watched = prefix + "board"
    azdo.add_repository(REPO)
    azdo.add_commit(REPO, BASE, "Merged PR 41: baseline")
    azdo.add_commit(REPO, ROLLOUT, "Merged PR 42: rollout", parents=[BASE])
    world = World(azdo=azdo, store=TableStore(service, prefix=prefix))
    names = [f"c{c:04d}" for c in range(clusters)]
    world.configure(ENVIRONMENTS=json.dumps({ENV: {"clusters": names}}))
    return world, counter


def rollout(world: Any, clusters: int) -> int:
    from tests.integration.test_gates import plan, register
    from tests.world import kustomization

    events = 0
    for c in range(clusters):
        world.send(kustomization(BASE, time="2026-05-14T08:00:00Z"), cluster=f"c{c:04d}", env=ENV)
        events += 1
    register(world, plan(world), environment=ENV, commit=ROLLOUT)
    world.deliver_queued()
    for c in range(max(1, clusters // 10)):
        cluster = f"c{c:04d}"
        world.send(
            kustomization(ROLLOUT, "Progressing", time="2026-05-14T09:00:00Z"),
            cluster=cluster,
            env=ENV,
        )
        reason = "HealthCheckFailed" if c == 0 else "ReconciliationSucceeded"
        world.send(
            kustomization(ROLLOUT, reason, time="2026-05-14T09:01:00Z"), cluster=cluster, env=ENV
        )
        events += 2
    return events


def index(world: Any, counter: TableCounting) -> tuple[int, int, float, int]:
    import azure.functions as func

    import function_app
    from connector.app.root import bootstrap

    bootstrap.override(world.container)
    req = func.HttpRequest(method="GET", url="/api/ui", headers={}, params={}, body=b"")
    counter.reset()
    start = time.perf_counter()
    resp = function_app.ui(req)
    seconds = time.perf_counter() - start
    assert resp.status_code == 200, resp.get_body()[:300]
    requests, size = counter.reset()
    return requests, size, seconds, len(resp.get_body())


def board_floor(world: Any, counter: TableCounting) -> tuple[int, int, float]:
    from connector.storage.board import BoardTable

    table = BoardTable(lambda: world.store.table("board"))
    counter.reset()
    start = time.perf_counter()
    table.boards()
    seconds = time.perf_counter() - start
    return (*counter.reset(), seconds)


def state_rows(world: Any, counter: TableCounting) -> tuple[int, int, float]:
    counter.reset()
    start = time.perf_counter()
    world.store.cluster_objects(ENV)
    seconds = time.perf_counter() - start
    return (*counter.reset(), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clusters", type=int, default=1000)
    args = parser.parse_args()
    from connector.app.root import bootstrap

    with loopback() as (connection, azdo):
        world, counter = world_on(connection, azdo, args.clusters)
        try:
            start = time.perf_counter()
            counter.reset()
            counter.watched_requests = 0
            events = rollout(world, args.clusters)
            processing, _ = counter.reset()
            board_requests = counter.watched_requests
            took = time.perf_counter() - start
            ui = index(world, counter)
            floor = board_floor(world, counter)
            rows = state_rows(world, counter)
        finally:
            bootstrap.override(None)
    print(f"ui: one environment of {args.clusters} clusters, {events} events in {took:.0f} s")
    print(
        f"  processing: {processing} Table requests, of which {board_requests} keep the board"
        f" ({board_requests / events:.2f} per event, {board_requests / processing:.1%})"
    )
    print(
        f"  GET /api/ui: {ui[0]} Table requests, {ui[1] / 1024:.0f} KiB, {ui[2] * 1000:.0f} ms,"
        f" page {ui[3] / 1024:.0f} KiB"
    )
    print(
        f"  floor, the board query alone: {floor[0]} requests, {floor[1] / 1024:.0f} KiB,"
        f" {floor[2] * 1000:.0f} ms (index/floor: {ui[2] / floor[2]:.1f}x time)"
    )
    print(
        f"  the same from the state rows (pointers only): {rows[0]} requests,"
        f" {rows[1] / 1024:.0f} KiB, {rows[2] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
