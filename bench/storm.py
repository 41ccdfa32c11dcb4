"""Replay a Flux event storm through the whole connector in-process and count Azure DevOps calls.

Three clusters, two Kustomizations each, for one commit: change-set and health-check progress,
success, periodic ReconciliationSucceeded re-sends, Flux retries of identical deliveries and
Service Bus redeliveries, delivered slightly out of order. Everything real but Service Bus:
webhook function → recording sender → queue function → Azurite tables → loopback Azure DevOps.

Prints status reads, writes, the minimum writes this delivery order allows, redundant writes,
and events per second. Run: `make bench`. No thresholds.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector.app.root import bootstrap  # noqa: E402
from connector.storage.rows import connect  # noqa: E402
from connector.storage.tables import TableStore  # noqa: E402
from tests.azurite import azurite_tables  # noqa: E402
from tests.fakes.azdo_server import FakeAzureDevOps  # noqa: E402
from tests.world import PAT, REPO, World, rollout_events  # noqa: E402

COMMIT = "c8925188500a55dad9563388e537a03dcdded446"
CLUSTERS = ("prod-eu", "prod-us", "prod-asia")
OBJECTS = ("apps", "infra")
RESENDS = 6


def storm() -> list[tuple[dict, str]]:
    events = rollout_events(COMMIT, CLUSTERS, OBJECTS, RESENDS)
    events.sort(key=lambda e: e[0]["timestamp"])
    rng = random.Random(42)
    for i in range(0, len(events) - 1, 3):  # local reordering, as concurrent dispatch does
        if rng.random() < 0.5:
            events[i], events[i + 1] = events[i + 1], events[i]
    retries = [events[i] for i in rng.sample(range(len(events)), len(events) // 10)]
    return events + retries


def minimum_writes(events: list[tuple[dict, str]]) -> int:
    """Each object context needs its final state, plus `pending` if progress came first; the
    environment likewise needs `succeeded`, plus `pending` unless its first event finished it."""
    first: dict[tuple[str, str], str] = {}
    for event, cluster in events:
        first.setdefault((cluster, event["involvedObject"]["name"]), event["reason"])
    objects = sum(1 + (reason == "Progressing") for reason in first.values())
    return objects + 2


def main() -> None:
    with azurite_tables() as conn, FakeAzureDevOps(pat=PAT) as azdo:
        azdo.add_repository(REPO)
        azdo.add_commit(REPO, COMMIT, "Merged PR 1: storm")
        world = World(azdo=azdo, store=TableStore(connect(connection_string=conn), "bench"))
        world.configure(ENVIRONMENTS='{"prod":{"clusters":["prod-eu","prod-us","prod-asia"]}}')
        events = storm()
        start = time.perf_counter()
        for event, cluster in events:
            world.post(event, cluster=cluster, env="prod")
        delivered = len(world.sender.messages)
        world.deliver_queued(redeliver=True)
        elapsed = time.perf_counter() - start
        bootstrap.override(None)
        writes = len(azdo.status_writes())
        reads = len(azdo.status_reads())
        minimum = minimum_writes(events)
    print(
        f"storm: {len(events)} webhook deliveries, {world.sender.dropped_duplicates} dropped "
        f"by duplicate detection, {delivered} queued, each delivered twice (redelivery)"
    )
    print(f"  Azure DevOps status reads   {reads}")
    print(
        f"  Azure DevOps status writes  {writes}   minimum {minimum}   redundant {writes - minimum}"
    )
    print(
        f"  throughput  {len(events) / elapsed:7.1f} events/s end to end "
        f"({elapsed:.2f} s; Azurite and the fake on loopback)"
    )


if __name__ == "__main__":
    main()
