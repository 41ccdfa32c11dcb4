"""`CachedReads`: the reads of one message, each made once, for exactly what was asked, on the
memory twin of the state tables (no Azurite)."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.core.state import CachedReads, ClusterView, CommitStates, Inventory
from connector.core.tracking import ObjectRef, Observation, Phase
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService

A = "a" * 40
T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
APPS = ObjectRef("Kustomization", "flux-system", "apps")


class CountedReads:
    """The real store's reads, each call written down."""

    def __init__(self, store: TableStore) -> None:
        self._store = store
        self.calls: list[tuple[str, ...]] = []

    def commit_states(self, commit: str, env: str | None = None) -> CommitStates:
        self.calls.append(("commit_states", commit, str(env)))
        return self._store.commit_states(commit, env)

    def cluster_objects(self, env: str) -> Inventory:
        self.calls.append(("cluster_objects", env))
        return self._store.cluster_objects(env)

    def cluster_view(self, commit: str, env: str, cluster: str) -> ClusterView:
        self.calls.append(("cluster_view", commit, env, cluster))
        return self._store.cluster_view(commit, env, cluster)

    def environment_clusters(self, env: str) -> list[str]:
        self.calls.append(("environment_clusters", env))
        return self._store.environment_clusters(env)


def store_with(*where: tuple[str, str]) -> TableStore:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    for index, (env, cluster) in enumerate(where):
        store.record(
            Observation(
                cluster=cluster,
                env=env,
                obj=APPS,
                commit=A,
                phase=Phase.SUCCEEDED,
                reason="ReconciliationSucceeded",
                summary="",
                time=T0,
                message_id=f"m{index}",
                is_source=False,
            )
        )
    return store


def test_each_read_is_made_once_until_forgotten() -> None:
    store = store_with(("dev", "c1"), ("prod", "c2"))
    reads = CountedReads(store)
    cached = CachedReads(reads)

    first = cached.commit_states(A, "dev")
    assert cached.commit_states(A, "dev") == first
    assert cached.cluster_objects("dev") == cached.cluster_objects("dev")
    assert reads.calls == [("commit_states", A, "dev"), ("cluster_objects", "dev")]

    cached.forget()
    assert cached.commit_states(A, "dev") == first
    assert cached.cluster_objects("dev") == store.cluster_objects("dev")
    assert len(reads.calls) == 4


def test_reads_are_for_what_was_asked_and_cached_apart() -> None:
    reads = CountedReads(store_with(("dev", "c1"), ("prod", "c2")))
    cached = CachedReads(reads)

    assert set(cached.commit_states(A, "dev")) == {("dev", "c1")}
    assert set(cached.commit_states(A)) == {("dev", "c1"), ("prod", "c2")}
    assert set(cached.commit_states(A, "prod")) == {("prod", "c2")}
    assert set(cached.cluster_objects("prod")) == {"c2"}
    assert set(cached.cluster_objects("dev")) == {"c1"}
    assert reads.calls == [
        ("commit_states", A, "dev"),
        ("commit_states", A, "None"),
        ("commit_states", A, "prod"),
        ("cluster_objects", "prod"),
        ("cluster_objects", "dev"),
    ]


def test_a_cluster_view_is_always_read_afresh_for_exactly_that_cluster() -> None:
    # The tally orders results by the rows they were computed from: never from a cached view.
    reads = CountedReads(store_with(("dev", "c1"), ("dev", "c2")))
    cached = CachedReads(reads)

    first = cached.cluster_view(A, "dev", "c1")
    second = cached.cluster_view(A, "dev", "c1")

    assert set(first.states) == set(second.states) == {APPS}
    assert first.basis == second.basis != ""
    assert set(cached.cluster_view(A, "dev", "c2").pointers) == {APPS}
    assert reads.calls == [
        ("cluster_view", A, "dev", "c1"),
        ("cluster_view", A, "dev", "c1"),
        ("cluster_view", A, "dev", "c2"),
    ]
