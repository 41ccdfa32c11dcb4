"""The incremental environment roll-up behind environment statuses (`connector.core.tally`), on
the memory twin of the state tables: each cluster rolled up from its own rows agrees with the
full roll-up, the tally agrees with it too, and an older result never replaces a newer one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connector.core.rollup import Rollup, cluster_of
from connector.core.tally import EnvironmentTally
from connector.core.tracking import ClusterResult, Phase
from connector.storage.memory import MemoryTableService
from connector.storage.tables import TableStore
from tests.test_core_rollup import CASES, ENV, A, Case, record

# The full roll-up's cases that use neither the gate's clusters and objects nor `follow`: the
# ones the environment status uses.
PLAIN = [c for c in CASES if not c.call]
REPORTED = [c for c in PLAIN if c.seen]  # the tally is written by events


def stored(case: Case) -> TableStore:
    store = TableStore(MemoryTableService(), prefix="t")
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
    store = TableStore(MemoryTableService(), prefix="t")
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
