"""Retention (`connector.storage.retention`) on Azurite and on the memory twin: what expires is
deleted, what is current, recent or open stays, a run is bounded, a preview deletes nothing.

Age is the server-set `Timestamp`, which a test cannot backdate: "old" rows are rows written
before the cutoff, so a run with `now` a retention later sees every row written so far as old.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.app.cli.main import main
from connector.app.root.bootstrap import Container
from connector.core.gates import Gate, GateState, PlanRef
from connector.core.tracking import ObjectRef, Observation, Phase
from connector.gates.store import GateStore
from connector.storage.ledger import pull_request_subject
from connector.storage.retention import Cleanup, CleanupReport
from connector.storage.rows import connect, key
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService

A, B, C = "a1" * 20, "b2" * 20, "c3" * 20
APPS = ObjectRef("Kustomization", "flux-system", "apps")
INFRA = ObjectRef("Kustomization", "flux-system", "infra")
DAYS = 30
LATER = timedelta(days=DAYS + 1)


@pytest.fixture(params=["azurite", "memory"])
def store(request: pytest.FixtureRequest) -> TableStore:
    name = "r" + re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:20] + uuid.uuid4().hex[:8]
    if request.param == "memory":
        return TableStore(MemoryTableService().as_sdk(), prefix=name)
    service = connect(connection_string=request.getfixturevalue("azurite_connection"))
    return TableStore(service, prefix=name)


def observe(store: TableStore, commit: str, obj: ObjectRef = APPS, cluster: str = "c1") -> None:
    store.record(
        Observation(
            cluster=cluster,
            env="prod",
            obj=obj,
            commit=commit,
            phase=Phase.SUCCEEDED,
            reason="ReconciliationSucceeded",
            summary="",
            time=datetime.now(UTC),
            message_id=uuid.uuid4().hex,
            is_source=False,
        )
    )


def post_status(store: TableStore, subject: str, context: str = "env/prod") -> None:
    ledger = store.ledger("azdo")
    # A new description each time, so that every call writes (a re-post of the same is a no-op).
    version = ledger.claim_status(subject, context, "succeeded", uuid.uuid4().hex)
    assert version is not None
    ledger.finish_status(subject, context, version)


def partitions(store: TableStore, name: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in store.table(name).list_entities():
        found[row["PartitionKey"]] = found.get(row["PartitionKey"], 0) + 1
    return found


def run(
    store: TableStore, *, later: timedelta = LATER, cutoff: datetime | None = None, **options: Any
) -> CleanupReport:
    """A run `later` from now, or with exactly this cutoff."""
    preview = options.pop("preview", False)
    now = datetime.now(UTC) + later if cutoff is None else cutoff + timedelta(days=DAYS)
    return Cleanup(store, retention_days=DAYS, **options).run(now=now, preview=preview)


def stamp(store: TableStore, name: str, partition: str, row: str) -> datetime:
    rows = store.table(name).query_entities("PartitionKey eq @pk", parameters={"pk": partition})
    found = next(r for r in rows if r["RowKey"] == row).metadata["timestamp"]
    assert found is not None
    return found


def written_after(
    store: TableStore, moment: datetime, write: Any, where: tuple[str, ...]
) -> datetime:
    """Write until the row's Timestamp is at least 1 ms after `moment` (a cutoff between them,
    at the service's 100 ns and Python's 1 µs resolution); its Timestamp."""
    for _ in range(10_000):
        write()
        written = stamp(store, *where)
        if written >= moment + timedelta(milliseconds=1):
            return written
    raise AssertionError("the service clock did not move")


def gate(environment: str, gate_id: str, state: GateState) -> Gate:
    now = datetime.now(UTC)
    plan = PlanRef("https://dev.azure.com/org/", "p", "build", "plan", "job", "timeline", "task")
    result = state.value if state in (GateState.SUCCEEDED, GateState.FAILED) else ""
    return Gate(
        gate_id, plan, environment, now, now + timedelta(hours=1), state=state, result=result
    )


# --- deployments ---------------------------------------------------------------------------------


def test_an_old_commit_no_object_is_on_is_deleted_and_a_current_one_kept(store: TableStore) -> None:
    # GIVEN apps moved from A to B, and A has a status ledger row
    observe(store, A)
    post_status(store, A)
    observe(store, B)
    assert partitions(store, "deployments") == {A: 2, B: 1}

    # WHEN a run happens a retention later
    report = run(store)

    # THEN A (nobody is on it) is gone with its ledger; B (apps is on it) stays, however old
    assert partitions(store, "deployments") == {B: 1}
    assert report.deleted["deployments"] == 2
    assert report.kept_current == 1
    assert (report.failed, report.exhausted) == (0, False)


def test_a_commit_still_current_in_one_cluster_is_kept(store: TableStore) -> None:
    observe(store, A, cluster="c1")
    observe(store, A, cluster="c2")
    observe(store, B, cluster="c1")  # c2 is still on A

    run(store)

    assert set(partitions(store, "deployments")) == {A, B}


def test_recent_state_is_kept(store: TableStore) -> None:
    observe(store, A)
    post_status(store, A)
    observe(store, B)
    post_status(store, pull_request_subject("repo", 7), "pr/prod")

    report = run(store, later=timedelta(days=DAYS - 1))

    assert report.total == 0
    assert partitions(store, "deployments") == {A: 2, B: 1, pull_request_subject("repo", 7): 1}


def test_a_partition_whose_newest_row_is_recent_is_kept(store: TableStore) -> None:
    # GIVEN A's state row is old, but a status was posted on A after the cutoff
    observe(store, A)
    observe(store, B)
    old = stamp(
        store, "deployments", A, key("obj", "prod", "c1", APPS.kind, APPS.namespace, APPS.name)
    )
    cutoff = written_after(
        store,
        old,
        lambda: post_status(store, A),
        ("deployments", A, key("status", "azdo", "env/prod")),
    )

    # WHEN the cutoff falls between them
    report = run(store, cutoff=cutoff)

    # THEN nothing of A is deleted: the partition goes only when all of it is old
    assert partitions(store, "deployments")[A] == 2
    assert report.deleted["deployments"] == 0


def test_pull_request_ledgers_expire(store: TableStore) -> None:
    old, recent = pull_request_subject("repo", 1), pull_request_subject("repo", 2)
    post_status(store, old, "pr/prod")
    moment = stamp(store, "deployments", old, key("status", "azdo", "pr/prod"))
    cutoff = written_after(
        store,
        moment,
        lambda: post_status(store, recent, "pr/prod"),
        ("deployments", recent, key("status", "azdo", "pr/prod")),
    )

    report = run(store, cutoff=cutoff)

    assert partitions(store, "deployments") == {recent: 1}
    assert report.deleted["deployments"] == 1


# --- gates, facts, deliveries, the legacy table ---------------------------------------------------


def test_finished_gates_expire_and_open_gates_never_do(store: TableStore) -> None:
    gates = GateStore(store)
    for gate_id, state in [
        ("waiting", GateState.WAITING),
        ("completing", GateState.COMPLETING),
        ("succeeded", GateState.SUCCEEDED),
        ("failed", GateState.FAILED),
    ]:
        gates.add(gate("prod", gate_id, state))

    report = run(store, later=timedelta(days=365))

    assert sorted(g.id for g in gates.all_gates()) == ["completing", "waiting"]
    assert report.deleted["gates"] == 2


def test_facts_deliveries_and_processed_markers_expire(store: TableStore) -> None:
    GateStore(store).remember("ancestor", (A, B), True)
    store.table("subscriberdeliveries").upsert_entity({"PartitionKey": "change", "RowKey": "s1"})
    store.table("processed").upsert_entity({"PartitionKey": "m", "RowKey": "1"})

    recent = run(store, later=timedelta(0))
    assert recent.deleted == {
        "deployments": 0,
        "gates": 0,
        "facts": 0,
        "subscriberdeliveries": 0,
        "processed": 1,  # no longer used: every row goes, however recent
    }
    old = run(store)
    assert (old.deleted["facts"], old.deleted["subscriberdeliveries"]) == (1, 1)
    for name in ("facts", "subscriberdeliveries", "processed"):
        assert partitions(store, name) == {}, name


# --- bounded runs, previews, rows that change -----------------------------------------------------


def fill(store: TableStore, name: str, layout: dict[str, int]) -> None:
    table = store.table(name)
    for partition, count in layout.items():
        for index in range(count):
            table.upsert_entity({"PartitionKey": partition, "RowKey": f"{index:04}"})


def test_a_run_deletes_at_most_its_budget_and_the_next_one_the_rest(store: TableStore) -> None:
    fill(store, "facts", {"ancestor": 150, "prs": 30})  # 150: two transactions

    first = run(store, max_rows=120)
    assert (first.deleted["facts"], first.exhausted) == (120, True)
    assert sum(partitions(store, "facts").values()) == 60

    second = run(store, max_rows=120)
    assert (second.deleted["facts"], second.exhausted) == (60, False)
    assert partitions(store, "facts") == {}


def test_a_full_budget_stops_before_the_next_table(store: TableStore) -> None:
    fill(store, "facts", {"ancestor": 5})
    fill(store, "processed", {"m": 3})

    report = run(store, max_rows=5)

    assert report.deleted["facts"] == 5
    assert report.deleted["processed"] == 0
    assert report.exhausted
    assert partitions(store, "processed") == {"m": 3}


def test_a_preview_counts_and_deletes_nothing(store: TableStore) -> None:
    observe(store, A)
    observe(store, B)
    GateStore(store).add(gate("prod", "done", GateState.SUCCEEDED))
    fill(store, "processed", {"m": 2})
    before = {name: partitions(store, name) for name in ("deployments", "gates", "processed")}

    preview = run(store, preview=True)

    assert {name: partitions(store, name) for name in before} == before
    assert preview.preview
    real = run(store)
    assert preview.deleted == real.deleted
    assert preview.deleted["deployments"] == 1
    assert (preview.deleted["gates"], preview.deleted["processed"]) == (1, 2)


def test_a_row_changed_after_it_was_read_is_not_deleted(store: TableStore) -> None:
    from connector.storage.retention import _delete

    fill(store, "facts", {"k": 3})
    table = store.table("facts")
    rows = list(table.list_entities())
    table.upsert_entity({"PartitionKey": "k", "RowKey": "0001", "value": "newer"})

    deleted = _delete(table, rows)

    assert deleted == 2
    assert [(r["RowKey"], r["value"]) for r in table.list_entities()] == [("0001", "newer")]


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.azurite
def test_cli_cleanup_preview_then_for_real(azurite_connection: str, capsys: Any) -> None:
    store = TableStore(
        connect(connection_string=azurite_connection), prefix="cl" + uuid.uuid4().hex[:10]
    )
    observe(store, A)
    fill(store, "processed", {"m": 2})

    def cli(*argv: str) -> tuple[int, str]:
        code = main(list(argv), environ={}, make_container=lambda s: Container(s, store=store))
        return code, capsys.readouterr().out

    for flag in ("--preview", "--dry-run"):  # --dry-run: the former name, still taken
        code, out = cli("cleanup", flag)
        assert code == 0
        assert out.startswith("preview: state last written before")
        assert "processed                     2 would be deleted" in out
        assert partitions(store, "processed") == {"m": 2}

    code, out = cli("cleanup", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["preview"], data["total"], data["deleted"]["processed"]) == (False, 2, 2)
    assert data["dry_run"] is False  # the former name of preview, kept for scripts
    assert partitions(store, "processed") == {}
    assert partitions(store, "deployments") == {A: 1}  # recent


# --- the timer function --------------------------------------------------------------------------


def test_the_timer_function_runs_a_cleanup_with_the_app_settings(install: Any, caplog: Any) -> None:
    import logging

    from azure.functions.timer import TimerRequest

    import function_app

    store = TableStore(MemoryTableService().as_sdk(), prefix="timer")
    fill(store, "processed", {"m": 2})
    observe(store, A)
    install({"STATE_RETENTION_DAYS": "7"}, store=store)

    with caplog.at_level(logging.INFO, logger="connector.storage.retention"):
        function_app.cleanup(TimerRequest(past_due=False))

    assert partitions(store, "processed") == {}
    assert partitions(store, "deployments") == {A: 1}  # recent: kept
    done = next(r for r in caplog.records if r.getMessage() == "cleanup.done")
    assert (done.deleted_processed, done.deleted_deployments) == (2, 0)
