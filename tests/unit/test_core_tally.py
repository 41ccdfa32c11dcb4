"""The incremental environment roll-up behind environment statuses (`connector.core.tally`), on
the memory twin of the state tables: each cluster rolled up from its own rows agrees with the
full roll-up, the tally agrees with it too, and an older result never replaces a newer one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from connector.core.environments import EnvironmentSpec
from connector.core.rollup import Rollup, cluster_of
from connector.core.tally import EnvironmentTally
from connector.core.tracking import ClusterResult, ObjectRef, ObjectState, Phase
from connector.storage import tally_rows
from connector.storage.rows import gathered_text, key
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService
from tests.unit.test_core_rollup import CASES, ENV, T0, A, Case, Seen, record

# The full roll-up's cases that use neither the gate's clusters and objects nor `follow`: the
# ones the environment status uses.
PLAIN = [c for c in CASES if not c.call]
REPORTED = [c for c in PLAIN if c.seen]  # the tally is written by events


def stored(case: Case) -> TableStore:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    for index, seen in enumerate(case.seen):
        record(store, seen, index)
    return store


@pytest.mark.parametrize("case", PLAIN, ids=[c.id for c in PLAIN])
def test_each_cluster_from_its_own_rows_is_the_full_roll_up(case: Case) -> None:
    store = stored(case)
    environments = {ENV: case.spec} if case.spec else {}
    full = {c.cluster: c for c in Rollup(environments, store).environment(A, ENV).clusters}

    for cluster, expected in full.items():
        view = store.cluster_view(A, ENV, cluster)
        assert cluster_of(cluster, view, case.spec) == expected


@pytest.mark.parametrize("case", REPORTED, ids=[c.id for c in REPORTED])
def test_the_tally_agrees_with_the_full_roll_up(case: Case) -> None:
    store = stored(case)
    environments = {ENV: case.spec} if case.spec else {}
    full = Rollup(environments, store).environment(A, ENV)
    tally = EnvironmentTally(environments, store, store)

    # Every cluster that reported records its result, as each of its events would.
    for seen in case.seen:
        result = tally.environment(A, ENV, seen.cluster)

    assert result.env == full.env == ENV
    assert result.phase == full.phase == case.env_phase
    assert [(c.cluster, c.phase) for c in result.clusters] == [
        (c.cluster, c.phase) for c in full.clusters
    ]
    if full.failed_cluster is not None:
        assert result.failed_cluster is not None
        assert result.failed_cluster.failed[0][0] == full.failed_cluster.failed[0][0]


def test_a_result_from_older_rows_never_replaces_one_from_newer_rows() -> None:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    newer = ClusterResult("c1", Phase.SUCCEEDED)
    older = replace(newer, phase=Phase.PROGRESSING)

    assert store.tally(A, ENV, newer, "2026-05-14T09:00:02.000000") == (True, {"c1": newer})
    assert store.tally(A, ENV, older, "2026-05-14T09:00:01.000000") == (False, {"c1": newer})
    assert store.tally(A, ENV, newer, "2026-05-14T09:00:03.000000") == (False, {"c1": newer})
    assert store.tally(A, ENV, older, "2026-05-14T09:00:04.000000") == (True, {"c1": older})


def test_clusters_that_have_not_reported_the_commit_are_pending() -> None:
    case = PLAIN[0]
    store = stored(case)
    tally = EnvironmentTally({}, store, store)
    reported = case.seen[0].cluster

    result = tally.environment(A, ENV, reported)

    assert tally.cluster_changed
    others = [c for c in result.clusters if c.cluster != reported]
    assert others
    assert all(c.phase == Phase.PROGRESSING for c in others)
    assert tally.environment(A, ENV, reported) == result
    assert tally.cluster_changed  # sticky for the message that moved it
    again = EnvironmentTally({}, store, store)  # the next message
    assert again.environment(A, ENV, reported) == result
    assert not again.cluster_changed  # nothing moved since


LONG_NAME = ObjectRef("Kustomization", "flux-system", "n" * 240)


def tally_many(store: TableStore, count: int) -> tuple[list[str], dict[str, ClusterResult]]:
    """`count` clusters, every tenth failed with a long summary, the others pending on five
    objects with long names: ~700 characters of JSON each."""
    failing = ObjectState(Phase.FAILED, "HealthCheckFailed", "s" * 5000, T0, T0, T0)
    clusters = [f"aks-prod-weu-{i:04d}" for i in range(count)]
    recorded: dict[str, ClusterResult] = {}
    for index, cluster in enumerate(clusters):
        if index % 10 == 0:
            result = ClusterResult(cluster, Phase.FAILED, failed=((LONG_NAME, failing),))
        else:
            result = ClusterResult(cluster, Phase.PROGRESSING, pending=(LONG_NAME,) * 5)
        changed, tallied = store.tally(A, ENV, result, f"2026-05-14T09:00:{index % 60:02d}")
        assert changed
        assert tallied is not None
        recorded = tallied
    return clusters, recorded


def test_a_tally_row_spreads_past_one_property() -> None:
    """The memory twin refuses a string over 64 KiB, as the service does."""
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    clusters, recorded = tally_many(store, 200)  # ~140,000 characters: five properties

    assert sorted(recorded) == clusters
    assert len(recorded[clusters[1]].pending) == 3
    assert len(recorded[clusters[0]].failed[0][1].summary) == 200

    # Back to fewer parts (a merge leaves the others behind; they are not read).
    calm = ClusterResult(clusters[1], Phase.SUCCEEDED)
    _, after = store.tally(A, ENV, calm, "2026-05-14T10:00:00")
    assert after is not None
    assert after[clusters[1]] == calm
    assert len(after) == 200


def test_past_its_detail_budget_a_tally_drops_the_pending_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So that thousands of clusters fit the 1 MiB entity (scaled down here)."""
    monkeypatch.setattr(tally_rows, "TALLY_DETAIL_CHARS", 50_000)
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")

    clusters, recorded = tally_many(store, 100)

    assert sorted(recorded) == clusters
    row = store.table("deployments").get_entity(A, key("tally", ENV))
    assert len(gathered_text(row, "clusters")) <= 50_000
    named = [r for r in recorded.values() if r.pending]
    assert 0 < len(named) < 90  # dropped when the row passed its budget, named again since
    assert recorded[clusters[0]].phase == Phase.FAILED


def test_a_tally_names_the_first_pending_objects_of_a_cluster() -> None:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    pending = (LONG_NAME, *(ObjectRef("Kustomization", "ns", f"o{i}") for i in range(4)))
    result = ClusterResult("c1", Phase.PROGRESSING, pending=pending)

    _, recorded = store.tally(A, ENV, result, "2026-05-14T09:00:00")

    assert recorded is not None
    shown = recorded["c1"].pending
    assert [o.name for o in shown] == ["n" * 200, "o0", "o1"]  # what a progress line shows


def test_a_cluster_list_of_thousands_fits_its_row() -> None:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    clusters = [f"{'c' * 60}-{i:04d}" for i in range(1200)]  # ~80,000 characters of JSON
    for cluster in clusters:
        store.clusters.note(ENV, cluster, T0)
    assert store.environment_clusters(ENV) == clusters


class CountingStore:
    """The store, counting the cluster reads and tally writes of `EnvironmentTally`; `between`
    runs once after the first cluster read (a concurrent event of the same cluster)."""

    def __init__(self, store: TableStore, between: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.views = 0
        self.tallies = 0
        self._between = between

    def cluster_view(self, commit: str, env: str, cluster: str) -> Any:
        view = self.store.cluster_view(commit, env, cluster)
        self.views += 1
        if self.views == 1:
            self._between()
        return view

    def tally(self, commit: str, env: str, result: ClusterResult, basis: str) -> Any:
        self.tallies += 1
        return self.store.tally(commit, env, result, basis)

    def environment_clusters(self, env: str) -> list[str]:
        return self.store.environment_clusters(env)

    def commit_states(self, commit: str, env: str | None = None) -> Any:
        return self.store.commit_states(commit, env)

    def cluster_objects(self, env: str) -> Any:
        return self.store.cluster_objects(env)


def seen_in(store: TableStore, *seen: Seen) -> None:
    for index, one in enumerate(seen):
        record(store, one, index)


def test_the_event_that_moves_its_cluster_reads_it_once_more() -> None:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    seen_in(store, Seen("c1", "apps", A, Phase.SUCCEEDED))
    counting = CountingStore(store)

    result = EnvironmentTally({}, counting, counting).environment(A, ENV, "c1")

    assert (counting.views, counting.tallies) == (2, 1)
    assert result.phase == Phase.SUCCEEDED


def test_an_event_that_moves_nothing_reads_its_cluster_once() -> None:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    seen_in(store, Seen("c1", "apps", A, Phase.SUCCEEDED))
    EnvironmentTally({}, store, store).environment(A, ENV, "c1")
    counting = CountingStore(store)

    tally = EnvironmentTally({}, counting, counting)
    result = tally.environment(A, ENV, "c1")

    assert (counting.views, counting.tallies) == (1, 1)
    assert not tally.cluster_changed
    assert result.phase == Phase.SUCCEEDED


def test_a_cluster_moved_meanwhile_is_recorded_as_it_is_now() -> None:
    """A concurrent event of the cluster lands between our read and our write: its own write
    found our stale result... so ours reads again and records the cluster as it is now."""
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    seen_in(store, Seen("c1", "apps", A, Phase.SUCCEEDED))
    late = Seen("c1", "infra", A, Phase.PROGRESSING, minutes=1)
    counting = CountingStore(store, between=lambda: record(store, late, 9))

    result = EnvironmentTally({}, counting, counting).environment(A, ENV, "c1")

    assert (counting.views, counting.tallies) == (3, 2)
    assert result.phase == Phase.PROGRESSING
    again = EnvironmentTally({}, store, store).environment(A, ENV, "c1")
    assert again == result


def test_configured_objects_count_from_the_first_read() -> None:
    """With `ENVIRONMENTS` objects not yet seen, the first result is already pending: the
    recorded result does not move on the re-read."""
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    seen_in(store, Seen("c1", "apps", A, Phase.SUCCEEDED))
    spec = EnvironmentSpec(clusters=("c1",), objects=("Kustomization/flux-system/infra",))
    counting = CountingStore(store)

    result = EnvironmentTally({ENV: spec}, counting, counting).environment(A, ENV, "c1")

    assert (counting.views, counting.tallies) == (2, 1)
    assert result.phase == Phase.PROGRESSING
