"""The tally row stays within the Table service's limits for any number of failing clusters
(`connector.storage.tally_rows`): it degrades step by step, and past what one row holds it
overflows to the full roll-up. On the memory twin, which refuses what the service refuses (a
string property over 64 KiB, an entity over 1 MiB)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError

from connector.core.processing import Change, Processor
from connector.core.tally import EnvironmentTally
from connector.core.tracking import ClusterResult, ObjectRef, ObjectState, Observation, Phase
from connector.storage import tally_rows
from connector.storage.rows import ENTITY_LIMIT_BYTES, entity_problems, entity_size, key
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService

T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
ENV = "prod"
A = "a" * 40
# The longest names ingest accepts: 63-character clusters, Kubernetes' 253-character parts.
WIDE = ObjectRef("K" * 63, "n" * 63, "o" * 253)
FAILING = ObjectState(Phase.FAILED, "R" * 5000, "s" * 5000, T0, T0, T0)


def cluster_name(index: int, width: int = 63) -> str:
    return f"{index:06d}".rjust(width, "c")


def failing(cluster: str, obj: ObjectRef = WIDE) -> ClusterResult:
    return ClusterResult(cluster, Phase.FAILED, pending=(obj,) * 3, failed=((obj, FAILING),))


def entries(count: int, width: int = 63) -> tally_rows.Entries:
    basis = "2026-05-14T09:00:00.000000"
    found = {}
    for index in range(count):
        cluster = cluster_name(index, width)
        found[cluster] = {**tally_rows.entry_of(failing(cluster)), "basis": basis}
    return found


def stored_entity(count: int, width: int = 63) -> dict[str, object]:
    row = tally_rows.row_of(entries(count, width))
    return {"PartitionKey": A, "RowKey": key("tally", ENV), **row}


@pytest.mark.parametrize("count", [1, 100, 1_350, 3_000, 6_000, 50_000])
def test_every_cluster_failing_fits_the_entity_limit(count: int) -> None:
    entity = stored_entity(count)

    assert entity_problems(entity) == []
    assert entity_size(entity) <= ENTITY_LIMIT_BYTES
    # A merge may leave parts of a longer text behind: never more than the budget's parts.
    assert int(str(entity["clusters_parts"])) <= 14


def test_undegraded_the_issue_s_1_350_failing_clusters_would_pass_1_mib() -> None:
    text = json.dumps(entries(1_350))
    assert len(text) * 2 > ENTITY_LIMIT_BYTES  # what the old row wrote
    assert entity_size(stored_entity(1_350)) < ENTITY_LIMIT_BYTES


def test_the_memory_twin_refuses_an_entity_over_1_mib() -> None:
    table = TableStore(MemoryTableService().as_sdk(), prefix="t").table("deployments")
    parts = {f"p{i}": "x" * 32_000 for i in range(17)}  # 17 x 64,000 bytes

    with pytest.raises(HttpResponseError, match="EntityTooLarge"):
        table.create_entity({"PartitionKey": A, "RowKey": "r", **parts})


def test_the_steps_keep_what_the_environment_status_and_gates_read() -> None:
    few = tally_rows.results_of(json.loads(tally_rows.row_of(entries(10))["clusters"]))
    assert all(r.pending and r.failed for r in few.values())  # step 1: everything

    many = entries(2_000)
    row = tally_rows.row_of(many)
    assert row["overflow"] is False
    results = tally_rows.results_of(many)
    assert all(r.phase == Phase.FAILED and not r.pending for r in results.values())
    described = sorted(c for c, r in results.items() if r.failed)
    assert described == sorted(results)[: tally_rows.TALLY_DESCRIBED]  # step 3
    first = results[min(results)]
    assert first.failed[0][0] == ObjectRef(WIDE.kind, WIDE.namespace, "o" * 200)
    assert first.failed[0][1].summary == "s" * tally_rows.TALLY_TEXT_CHARS


def test_a_degraded_entry_still_tells_a_re_send_from_a_new_failure() -> None:
    full = tally_rows.entry_of(failing("c1"))
    degraded = {"phase": "failed", "seen": tally_rows._digest(full["failed"])}
    other = ObjectRef("Kustomization", "flux-system", "other")

    assert tally_rows.same_result(degraded, full)
    assert not tally_rows.same_result(degraded, tally_rows.entry_of(failing("c1", other)))
    assert not tally_rows.same_result(degraded, {"phase": "succeeded"})


def largest(width: int) -> int:
    """The most failing clusters (names `width` long) one tally row holds before it overflows."""
    low, high = 1, 8_000
    while low < high:
        middle = (low + high + 1) // 2
        if tally_rows.row_of(entries(middle, width))["overflow"]:
            high = middle - 1
        else:
            low = middle
    return low


def test_the_largest_environment_a_row_holds_with_every_cluster_failing() -> None:
    """Figures for docs/scale.md: worst-case names (63 characters) and typical ones (20)."""
    worst, typical = largest(63), largest(20)
    print(f"tally holds {worst} failing clusters (63-char names), {typical} (20-char names)")
    assert 2_500 < worst < typical


def observation(cluster: str, index: int) -> Observation:
    return Observation(
        cluster=cluster,
        env=ENV,
        obj=ObjectRef("Kustomization", "flux-system", "apps"),
        commit=A,
        phase=Phase.FAILED,
        reason="HealthCheckFailed",
        summary="x" * 300,
        time=T0 + timedelta(seconds=index),
        message_id=f"m{index}",
        is_source=False,
    )


def test_past_one_row_every_event_is_processed_and_rolled_up_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scaled down (a budget of 2,000 characters) so that the full roll-up stays quick; the
    twin refuses the same sizes as the service."""
    monkeypatch.setattr(tally_rows, "TALLY_DETAIL_CHARS", 1_000)
    monkeypatch.setattr(tally_rows, "TALLY_BUDGET_CHARS", 2_000)
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    told: list[Phase] = []

    class EnvironmentStatus:  # what the status output reads of each change
        def on_change(self, change: Change) -> None:
            told.append(change.environment().phase)

    processor = Processor({}, store, [EnvironmentStatus()], clock=lambda: T0 + timedelta(hours=1))

    clusters = [cluster_name(i, 20) for i in range(60)]
    for index, cluster in enumerate(clusters):
        processor.process(observation(cluster, index))

    assert told == [Phase.FAILED] * len(clusters)
    row = store.table("deployments").get_entity(A, key("tally", ENV))
    assert row["overflow"] is True
    tally = EnvironmentTally({}, store, store)
    result = tally.environment(A, ENV, clusters[-1])
    assert [c.cluster for c in result.clusters] == clusters
    assert result.phase == Phase.FAILED
    assert all(c.phase == Phase.FAILED for c in result.clusters)
    assert result.failed_cluster is not None
    assert result.failed_cluster.failed[0][1].summary == "x" * 300  # the full roll-up's


def test_the_memory_twin_refuses_more_than_252_properties() -> None:
    table = TableStore(MemoryTableService().as_sdk(), prefix="t").table("deployments")
    table.create_entity({"PartitionKey": A, "RowKey": "r", **{f"p{i}": 1 for i in range(252)}})

    with pytest.raises(HttpResponseError, match="TooManyProperties"):
        table.create_entity({"PartitionKey": A, "RowKey": "s", **{f"p{i}": 1 for i in range(253)}})
