"""The sweep at fleet scale: 1,000 open gates over a 50,000-object environment.

1,000 clusters x 50 objects have reported the rollout commit; one cluster is still deploying, so
every gate stays open and each sweep evaluates all of them (the worst case: nothing completes).
Runs `GateKeeper.sweep` on the memory twin of the state tables (`tests/fakes/memory_tables.py`:
the service's limits and semantics, no network), with trial-mode Azure DevOps (writes logged,
not sent; no reader), so what is measured is the connector's own Table reads and CPU.

Counts every Table read the connector makes (point reads and queries), the rows and the bytes
they return (by the billing formula, `rows.entity_size`), and the requests the real service
would answer them in (a query returns at most 1,000 entities a page: Learn, "Query Entities").

Prints: the sweep of all gates; a floor measured in the same run (one full roll-up of the
environment, what any sweep must read once); and the sweep as it was before (each gate rolled
up on its own), measured on a sample of gates and scaled to all of them.
Run: `.venv/bin/python bench/sweep.py [--gates 1000 --clusters 1000 --objects 50 --commits 1]`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector.app.root.gates import gatekeeper  # noqa: E402
from connector.core.gates import Gate, PlanRef  # noqa: E402
from connector.core.rollup import Rollup  # noqa: E402
from connector.core.tracking import ObjectRef, Observation, Phase  # noqa: E402
from connector.devops.trial import TrialAzureDevOps  # noqa: E402
from connector.gates.config import GatePolicy  # noqa: E402
from connector.gates.keeper import GateKeeper  # noqa: E402
from connector.gates.store import GateStore  # noqa: E402
from connector.storage.rows import entity_size  # noqa: E402
from connector.storage.tables import TableStore  # noqa: E402
from tests.fakes import memory_tables as memory  # noqa: E402

ENV = "prod"
ORG = "https://dev.azure.com/fabrikam/"
T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
PAGE = 1_000  # entities per page of a query (Learn, "Query Entities")


@dataclass
class Reads:
    calls: int = 0
    requests: int = 0
    rows: int = 0
    bytes: int = 0

    def minus(self, other: Reads) -> Reads:
        return Reads(
            self.calls - other.calls,
            self.requests - other.requests,
            self.rows - other.rows,
            self.bytes - other.bytes,
        )


COUNTED = Reads()


def _counted_query(original: Any) -> Any:
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = list(original(self, *args, **kwargs))
        COUNTED.calls += 1
        COUNTED.requests += max(1, math.ceil(len(found) / PAGE))
        COUNTED.rows += len(found)
        COUNTED.bytes += sum(entity_size(e) for e in found)
        return iter(found)

    return query


def _counted_get(original: Any) -> Any:
    def get(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTED.calls += 1
        COUNTED.requests += 1
        found = original(self, *args, **kwargs)
        COUNTED.rows += 1
        COUNTED.bytes += entity_size(found)
        return found

    return get


def install_counters() -> None:
    table = memory.MemoryTable
    table.query_entities = _counted_query(table.query_entities)  # type: ignore[method-assign]
    table.list_entities = _counted_query(table.list_entities)  # type: ignore[method-assign]
    table.get_entity = _counted_get(table.get_entity)  # type: ignore[method-assign]


def commit(index: int) -> str:
    return f"{index:040x}"


def populate(store: TableStore, clusters: int, objects: int, deployed: str) -> None:
    for c in range(clusters):
        cluster = f"aks-prod-{c:04d}"
        for o in range(objects):
            phase = Phase.PROGRESSING if c == clusters - 1 else Phase.SUCCEEDED
            store.record(
                Observation(
                    cluster=cluster,
                    env=ENV,
                    obj=ObjectRef("Kustomization", "flux-system", f"app-{o:03d}"),
                    commit=deployed,
                    phase=phase,
                    reason="ReconciliationSucceeded",
                    summary="",
                    time=T0,
                    message_id=f"{cluster}-{o}",
                    is_source=False,
                )
            )


def open_gates(gates: GateStore, count: int, commits: int) -> None:
    for g in range(count):
        gates.add(
            Gate(
                id=f"gate-{g:05d}",
                plan=PlanRef(ORG, "p", "build", f"plan-{g}", f"job-{g}", "t", "i"),
                environment=ENV,
                created_at=T0,
                deadline=T0 + timedelta(days=365, minutes=g),
                commit=commit(g % commits),
            )
        )


def keeper(store: TableStore, gates: GateStore) -> GateKeeper:
    policy = GatePolicy(
        org_url=ORG,
        gitops_repo="manifests",
        pr_repo="manifests",
        status_genre="flux",
        failure_grace=timedelta(0),
        timeout=timedelta(hours=1),
        pr_number_patterns=(),
        legacy_environment="",
        environments={},
        trial=True,
    )
    devops = TrialAzureDevOps(ORG, "project")
    return gatekeeper(policy, gates, store, devops, devops, clock=lambda: T0)  # type: ignore[arg-type]


def measure(work: Any) -> tuple[Reads, float]:
    before = Reads(COUNTED.calls, COUNTED.requests, COUNTED.rows, COUNTED.bytes)
    start = time.perf_counter()
    work()
    return COUNTED.minus(before), time.perf_counter() - start


def line(name: str, reads: Reads, seconds: float) -> str:
    return (
        f"{name:<44}{reads.calls:>8}{reads.requests:>10}{reads.rows:>11}"
        f"{reads.bytes / 1e6:>10.1f}{seconds:>9.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--commits", type=int, default=1, help="distinct commits of the gates")
    parser.add_argument("--sample", type=int, default=10, help="gates of the 'before' sample")
    args = parser.parse_args()

    service = memory.MemoryTableService()
    store = TableStore(service.as_sdk(), prefix="bench")
    started = time.perf_counter()
    populate(store, args.clusters, args.objects, commit(0))
    gates = GateStore(store)
    open_gates(gates, args.gates, args.commits)
    print(
        f"{args.clusters} clusters x {args.objects} objects, {args.gates} open gates on "
        f"{args.commits} commit(s); populated in {time.perf_counter() - started:.0f} s "
        "(memory twin)"
    )
    install_counters()
    gatekeeper = keeper(store, gates)

    floor, floor_s = measure(lambda: Rollup({}, store).environment(commit(0), ENV))
    swept: list[int] = []
    now, now_s = measure(lambda: swept.append(gatekeeper.sweep()))
    sample = GateStore(store).open_gates()[: args.sample]
    old, old_s = measure(lambda: list(map(gatekeeper.evaluate, sample)))  # one roll-up each
    scale = args.gates / len(sample)
    before = Reads(*(round(v * scale) for v in (old.calls, old.requests, old.rows, old.bytes)))

    print(f"{'':<44}{'reads':>8}{'requests':>10}{'rows':>11}{'MB':>10}{'s':>9}")
    print(line("floor: one full roll-up of the environment", floor, floor_s))
    print(line(f"sweep of {swept[0]} gates (shared roll-ups)", now, now_s))
    print(line(f"before: each gate on its own (x{scale:g})", before, old_s * scale))
    print(
        f"sweep / floor: {now.bytes / floor.bytes:.2f}x bytes, {now_s / floor_s:.1f}x time; "
        f"before / sweep: {before.bytes / now.bytes:.0f}x bytes, "
        f"{old_s * scale / now_s:.0f}x time"
    )


if __name__ == "__main__":
    main()
