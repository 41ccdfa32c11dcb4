"""How often one completing event writes a gate's row: three times (the claim, the count of the
POST with the task log's id, the result), where it wrote 4, 5 and 6 times in these cases before
issue #24 (the progress, the log id and a descendant seen each a write of their own). Counted on
the gates table the app's GateStore uses, through Azurite and the loopback Azure DevOps."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from connector.app.root import bootstrap
from connector.app.root.bootstrap import Container
from connector.gates.store import GateStore
from tests.integration.test_gates import A, B, completions, plan, register, repo  # noqa: F401
from tests.world import World, kustomization

pytestmark = pytest.mark.azurite

WRITES = ("create_entity", "update_entity", "upsert_entity", "delete_entity", "submit_transaction")


class CountingTable:
    """The gates table client, counting the calls that write."""

    def __init__(self, table: Any, counts: Counter[str]) -> None:
        self._table = table
        self._counts = counts
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._table, name)
        if name not in WRITES:
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._counts[name] += 1
            return attribute(*args, **kwargs)

        return counted


class CountingTables:
    """The app's TableStore, its gates table counted."""

    def __init__(self, tables: Any) -> None:
        self._tables = tables
        self.counts: Counter[str] = Counter()

    def table(self, name: str) -> Any:
        table = self._tables.table(name)
        return CountingTable(table, self.counts) if name == "gates" else table


def counted(world: World) -> CountingTables:
    """The world's container, its GateStore on the counting tables."""
    tables = CountingTables(world.store)
    c = world.container
    assert c is not None
    world.container = Container(
        c.settings,
        sender=world.sender,
        store=world.store,
        devops=c.devops,
        gate_store=GateStore(tables),  # type: ignore[arg-type]
    )
    bootstrap.override(world.container)
    return tables


def test_one_completing_event_writes_the_gate_row_three_times(repo):  # noqa: F811
    world = repo
    tables = counted(world)
    headers = plan(world)
    assert register(world, headers, environment="dev", commit=A)[0] == 200
    world.deliver_queued()  # the gate check: nothing deployed yet
    world.send(kustomization(A, "Progressing", time="2026-05-14T09:12:00Z"))
    assert completions(world) == []
    tables.counts.clear()

    world.send(kustomization(A, time="2026-05-14T09:12:50Z"))  # healthy: the gate completes

    [done] = completions(world, headers)
    assert done["result"] == "succeeded"
    # The claim (a conditional write before TaskCompleted, so one instance posts), the count
    # of the POST with the task log's id (before it: at most one more POST when its answer is
    # lost), and the result (after it).
    assert sum(tables.counts.values()) == 3, tables.counts


def test_a_gate_whose_first_event_completes_it_writes_its_row_three_times(repo):  # noqa: F811
    world = repo
    tables = counted(world)
    headers = plan(world)
    world.send(kustomization(A, time="2026-05-14T09:12:50Z"))  # healthy before it registers
    assert register(world, headers, environment="dev", commit=A)[0] == 200
    tables.counts.clear()

    world.deliver_queued()  # the gate check finds it healthy: the task log is created now

    [done] = completions(world, headers)
    assert done["result"] == "succeeded"
    assert sum(tables.counts.values()) == 3, tables.counts


def test_a_descendant_that_completes_the_gate_is_recorded_by_the_claim(repo):  # noqa: F811
    world = repo
    tables = counted(world)
    headers = plan(world)
    assert register(world, headers, environment="dev", commit=A)[0] == 200
    world.deliver_queued()  # the gate check: nothing deployed yet (the task log is created)
    tables.counts.clear()

    world.send(kustomization(B, time="2026-05-14T09:12:50Z"))  # a child of A, healthy

    [done] = completions(world, headers)
    assert done["result"] == "succeeded"
    assert sum(tables.counts.values()) == 3, tables.counts
    [gate] = world.container.gate_store.all_gates()
    assert gate.descendant_seen
