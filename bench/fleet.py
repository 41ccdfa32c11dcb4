"""A fleet-shaped load through the real functions, counted per message class.

Clusters x objects report a baseline commit, then a rollout of a new commit while a promotion gate
waits on it, then periodic unchanged re-sends; some messages are delivered twice and some events
arrive late (older than what is stored). Everything runs in-process on the registered functions:
ingest (`/api/flux`, `/api/gates`) and the queue function, on Azurite Table storage and the
loopback fake Azure DevOps (tests/world.py). Service Bus is the recording sender: each queued
message is handed to the queue function as the host would.

Table requests and bytes are counted by the TableServiceClient's transport (every request the SDK
sends, retries included), not by touching the connector's code.

Prints, per message class, Table requests (mean, min, max) and bytes per message, Azure DevOps
calls per message, and the events/s of the whole run. Small by default; flags make it bigger.
Run: `.venv/bin/python bench/fleet.py [--clusters 4 --objects 6 --resends 2]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.core.pipeline.transport import RequestsTransport  # noqa: E402

FIRST = "first transition"
REDELIVERY = "exact redelivery"
RESEND = "unchanged re-send"
STALE = "stale event"
GATED = "transition with an open gate"
GATE_CHECK = "gate check (registration)"
CLASSES = (FIRST, REDELIVERY, RESEND, STALE, GATED, GATE_CHECK)

BASE = "a" * 40  # the commit every cluster runs before the rollout
ROLLOUT = "b" * 40  # the commit being rolled out, child of BASE
ENV = "prod"


class CountingTransport(RequestsTransport):
    """The SDK's own HTTP transport, counting requests and bytes (request body + response body).
    A transport rather than a per-call policy: the Tables SDK builds each table client's
    pipeline from its own policy list but shares the service client's transport."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests = 0
        self.bytes = 0

    def send(self, request: Any, **kwargs: Any) -> Any:
        response = super().send(request, **kwargs)
        self.requests += 1
        self.bytes += len(request.body or b"") + len(response.body() or b"")
        return response

    def reset(self) -> tuple[int, int]:
        counted = (self.requests, self.bytes)
        self.requests = self.bytes = 0
        return counted


@dataclass
class Sample:
    requests: int
    bytes: int
    azdo_calls: int


@dataclass
class Posted:
    """One event at the ingest door: its Table requests there and the messages it queued."""

    requests: int
    sends: int
    executions: int  # queue function runs it caused (a redelivery is a second)


@dataclass
class Report:
    samples: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))
    posted: dict[str, list[Posted]] = field(default_factory=lambda: defaultdict(list))
    events: int = 0
    seconds: float = 0.0

    def per_post(self, cls: str) -> tuple[float, float, float]:
        """(Service Bus sends, queue executions, door Table requests) per event of a class."""
        posts = self.posted.get(cls, [])
        if not posts:
            return 0.0, 0.0, 0.0
        n = len(posts)
        return (
            sum(p.sends for p in posts) / n,
            sum(p.executions for p in posts) / n,
            sum(p.requests for p in posts) / n,
        )

    def requests(self, cls: str) -> list[int]:
        return [s.requests for s in self.samples[cls]]

    def lines(self) -> Iterator[str]:
        yield (
            f"{'message class':30s} {'msgs':>5s} {'Table req/msg':>14s} {'min':>4s} {'max':>4s}"
            f" {'bytes/msg':>10s} {'AzDO calls/msg':>15s}"
        )
        for cls in CLASSES:
            got = self.samples.get(cls, [])
            if not got:
                continue
            req = [s.requests for s in got]
            yield (
                f"{cls:30s} {len(got):5d} {statistics.mean(req):14.1f} {min(req):4d} {max(req):4d}"
                f" {statistics.mean(s.bytes for s in got):10.0f}"
                f" {statistics.mean(s.azdo_calls for s in got):15.2f}"
            )
        yield (
            f"{'event class (at the door)':30s} {'events':>6s} {'SB sends/ev':>12s}"
            f" {'queue execs/ev':>15s} {'door Table req/ev':>18s}"
        )
        for cls in (FIRST, GATED, RESEND, STALE):
            if cls not in self.posted:
                continue
            sends, executions, requests = self.per_post(cls)
            yield (
                f"{cls:30s} {len(self.posted[cls]):6d} {sends:12.2f} {executions:15.2f}"
                f" {requests:18.2f}"
            )
        rate = self.events / self.seconds if self.seconds else 0.0
        yield f"{self.events} Flux events in {self.seconds:.1f} s: {rate:.1f} events/s end to end"


class Fleet:
    """Drives a tests.world.World whose store counts its Table requests with `counter`."""

    def __init__(self, world: Any, counter: CountingTransport) -> None:
        self.world = world
        self.counter = counter
        self.report = Report()

    def post(
        self, event: dict[str, Any], cluster: str, cls: str, *, redeliver: bool = False
    ) -> None:
        self.counter.reset()
        assert self.world.post(event, cluster=cluster, env=ENV) == 202
        self.report.events += 1
        messages = self.world.sender.drain()
        runs = len(messages) * (2 if redeliver else 1)
        self.report.posted[cls].append(Posted(self.counter.reset()[0], len(messages), runs))
        for message in messages:
            self.process(message, cls)
            if redeliver:
                self.process(message, REDELIVERY, delivery_count=2)

    def process(self, message: Any, cls: str, delivery_count: int = 1) -> None:
        calls = len(self.world.azdo.calls())
        self.counter.reset()
        self.world.process(message, delivery_count=delivery_count)
        requests, size = self.counter.reset()
        self.report.samples[cls].append(
            Sample(requests, size, len(self.world.azdo.calls()) - calls)
        )

    def register_gate(self) -> None:
        import json

        import azure.functions as func

        import function_app

        plan, job, timeline = (str(uuid.uuid4()) for _ in range(3))
        self.world.azdo.add_plan(
            plan, timeline_id=timeline, state="inProgress", records={job: "inProgress"}
        )
        headers = {
            "PlanUrl": self.world.azdo.org_url,
            "ProjectId": str(uuid.uuid4()),
            "HubName": "build",
            "PlanId": plan,
            "JobId": job,
            "TimelineId": timeline,
            "TaskInstanceId": str(uuid.uuid4()),
            "AuthToken": "job-access-token",
        }
        body = json.dumps({"environment": ENV, "commit": ROLLOUT}).encode()
        req = func.HttpRequest(method="POST", url="/api/gates", headers=headers, body=body)
        assert function_app.gates(req).status_code == 200
        for message in self.world.sender.drain():
            self.process(message, GATE_CHECK)

    def run(self, clusters: int, objects: int, resends: int) -> Report:
        from tests.world import kustomization

        names = [f"c{c:03d}" for c in range(clusters)]
        apps = [f"app{o:03d}" for o in range(objects)]
        start = time.perf_counter()
        for cluster in names:  # the fleet as it runs today
            for app in apps:
                self.post(
                    kustomization(BASE, name=app, time="2026-05-14T08:00:00Z"), cluster, FIRST
                )
        self.register_gate()
        for cluster in names:  # the rollout, gate open until the last object succeeds
            for app in apps:
                for reason, at in (
                    ("Progressing", "09:12:00"),
                    ("ReconciliationSucceeded", "09:12:31"),
                ):
                    event = kustomization(ROLLOUT, reason, name=app, time=f"2026-05-14T{at}Z")
                    self.post(event, cluster, GATED, redeliver=app == apps[0])
        for i in range(resends):  # every reconcile interval, the same healthy state again
            for cluster in names:
                for app in apps:
                    event = kustomization(ROLLOUT, name=app, time=f"2026-05-14T{10 + i:02d}:00:00Z")
                    self.post(event, cluster, RESEND)
        for cluster in names:  # a late copy of the rollout's first step
            event = kustomization(
                ROLLOUT, "Progressing", name=apps[-1], time="2026-05-14T09:11:00Z"
            )
            self.post(event, cluster, STALE)
        self.report.seconds = time.perf_counter() - start
        return self.report


def counting_world(connection: str, azdo: Any, clusters: int) -> tuple[Any, CountingTransport]:
    """A World on Azurite whose TableServiceClient sends through a counting transport."""
    import json

    from azure.data.tables import TableServiceClient

    from connector.storage.tables import TableStore
    from tests.world import REPO, World

    counter = CountingTransport()
    service = TableServiceClient.from_connection_string(connection, transport=counter)
    store = TableStore(service, prefix="fleet" + uuid.uuid4().hex[:10])
    azdo.add_repository(REPO)
    azdo.add_commit(REPO, BASE, "Merged PR 41: baseline")
    azdo.add_commit(REPO, ROLLOUT, "Merged PR 42: rollout", parents=[BASE])
    world = World(azdo=azdo, store=store)
    clusters_json = json.dumps({ENV: {"clusters": [f"c{c:03d}" for c in range(clusters)]}})
    world.configure(ENVIRONMENTS=clusters_json)
    return world, counter


@contextmanager
def loopback() -> Iterator[tuple[str, Any]]:
    from tests.azurite import azurite_tables
    from tests.fakes.azdo_server import FakeAzureDevOps
    from tests.world import PAT

    with azurite_tables() as connection, FakeAzureDevOps(pat=PAT) as azdo:
        yield connection, azdo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--objects", type=int, default=6, help="Kustomizations per cluster")
    parser.add_argument("--resends", type=int, default=2, help="unchanged re-sends per object")
    args = parser.parse_args()
    from connector.app.root import bootstrap

    with loopback() as (connection, azdo):
        world, counter = counting_world(connection, azdo, args.clusters)
        try:
            report = Fleet(world, counter).run(args.clusters, args.objects, args.resends)
        finally:
            bootstrap.override(None)
    print(f"fleet: {args.clusters} clusters x {args.objects} objects, {args.resends} re-sends each")
    for line in report.lines():
        print(line)


if __name__ == "__main__":
    main()
