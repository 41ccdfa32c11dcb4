"""`Rollup.environment`, table-driven, on the memory twin of the state tables (no Azurite): which
clusters, which objects per cluster, `follow`, source objects left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.core.environments import EnvironmentSpec
from connector.core.rollup import INVENTORY_TTL, Rollup
from connector.core.tracking import ObjectRef, Observation, Phase
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService

ENV = "prod"
T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
OK, FAIL, BUSY = Phase.SUCCEEDED, Phase.FAILED, Phase.PROGRESSING
A, B = "a" * 40, "b" * 40  # B descends from A (see `descends`)
OLD = "0" * 40


def obj(name: str, kind: str = "Kustomization") -> ObjectRef:
    return ObjectRef(kind, "flux-system", name)


@dataclass(frozen=True)
class Seen:
    """One observation: `name` in `cluster` at `commit` reached `phase`, `minutes` after T0."""

    cluster: str
    name: str
    commit: str
    phase: Phase
    minutes: float = 0
    source: bool = False


@dataclass(frozen=True)
class Case:
    id: str
    seen: list[Seen]
    expected: dict[str, tuple[Phase, list[str], list[str]]]  # cluster: (phase, done, pending)
    env_phase: Phase
    call: dict[str, Any] = field(default_factory=dict)
    spec: EnvironmentSpec | None = None
    followed: bool = False  # some object counted with its state on a descendant


def descends(ancestor: str, commit: str) -> bool:
    return (ancestor, commit) == (A, B)


CASES = [
    Case(
        "clusters seen, when neither the gate nor ENVIRONMENTS names them",
        [Seen("c2", "apps", A, OK), Seen("c1", "apps", A, BUSY)],
        {"c1": (BUSY, [], ["apps"]), "c2": (OK, ["apps"], [])},
        BUSY,
    ),
    Case(
        "clusters from ENVIRONMENTS: one not seen yet is pending",
        [Seen("c1", "apps", A, OK)],
        {"c1": (OK, ["apps"], []), "c9": (BUSY, [], [])},
        BUSY,
        spec=EnvironmentSpec(clusters=("c1", "c9")),
    ),
    Case(
        "the gate's clusters win over ENVIRONMENTS and over what is seen",
        [Seen("c1", "apps", A, FAIL), Seen("c2", "apps", A, OK)],
        {"c2": (OK, ["apps"], [])},
        OK,
        call={"clusters": ["c2"]},
        spec=EnvironmentSpec(clusters=("c1",)),
    ),
    Case(
        "objects from ENVIRONMENTS: one not reported yet keeps the cluster pending",
        [Seen("c1", "apps", A, OK)],
        {"c1": (BUSY, ["apps"], ["infra"])},
        BUSY,
        spec=EnvironmentSpec(
            objects=("Kustomization/flux-system/apps", "Kustomization/flux-system/infra")
        ),
    ),
    Case(
        "the gate's objects win over ENVIRONMENTS",
        [Seen("c1", "apps", A, OK)],
        {"c1": (OK, ["apps"], [])},
        OK,
        call={"objects": ["Kustomization/flux-system/apps"]},
        spec=EnvironmentSpec(objects=("Kustomization/flux-system/infra",)),
    ),
    Case(
        "learned: without a previous commit, the objects on the commit are all there is",
        [Seen("c1", "apps", A, OK), Seen("c1", "infra", A, OK)],
        {"c1": (OK, ["apps", "infra"], [])},
        OK,
    ),
    Case(
        "learned: a sibling still on the previous commit is pending",
        [
            Seen("c1", "apps", OLD, OK),
            Seen("c1", "infra", OLD, OK),
            Seen("c1", "apps", A, OK, minutes=5),
        ],
        {"c1": (BUSY, ["apps"], ["infra"])},
        BUSY,
    ),
    Case(
        "learned: a sibling silent for longer than the inventory TTL no longer counts",
        [
            Seen("c1", "infra", OLD, OK),
            Seen("c1", "apps", OLD, OK, minutes=1),
            Seen("c1", "apps", A, OK, minutes=INVENTORY_TTL / timedelta(minutes=1) + 5),
        ],
        {"c1": (OK, ["apps"], [])},
        OK,
    ),
    Case(
        "learned: a sibling last seen exactly 24 h before the newest report still counts",
        [
            Seen("c1", "infra", OLD, OK),
            Seen("c1", "apps", OLD, OK),
            Seen("c1", "apps", A, OK, minutes=24 * 60),
        ],
        {"c1": (BUSY, ["apps"], ["infra"])},
        BUSY,
    ),
    Case(
        "learned: a sibling last seen 24 h and a minute before no longer counts (README)",
        [
            Seen("c1", "infra", OLD, OK),
            Seen("c1", "apps", OLD, OK),
            Seen("c1", "apps", A, OK, minutes=24 * 60 + 1),
        ],
        {"c1": (OK, ["apps"], [])},
        OK,
    ),
    Case(
        "one failed object fails its cluster and the environment",
        [Seen("c1", "apps", A, FAIL), Seen("c2", "apps", A, OK)],
        {"c1": (FAIL, [], []), "c2": (OK, ["apps"], [])},
        FAIL,
    ),
    Case(
        "without follow, an object that moved on to a descendant is pending on the commit",
        [Seen("c1", "apps", B, OK)],
        {"c1": (BUSY, [], ["apps"])},
        BUSY,
        call={"objects": ["Kustomization/flux-system/apps"]},
    ),
    Case(
        "with follow, it counts with its state on the descendant",
        [Seen("c1", "apps", B, OK)],
        {"c1": (OK, ["apps"], [])},
        OK,
        call={"objects": ["Kustomization/flux-system/apps"], "follow": descends},
        followed=True,
    ),
    Case(
        "follow ignores a commit that is not a descendant",
        [Seen("c1", "apps", OLD, OK)],
        {"c1": (BUSY, [], ["apps"])},
        BUSY,
        call={"objects": ["Kustomization/flux-system/apps"], "follow": descends},
    ),
    Case(
        "with follow, the state on the descendant replaces the one on the commit",
        [Seen("c1", "apps", A, FAIL), Seen("c1", "apps", B, OK, minutes=1)],
        {"c1": (OK, ["apps"], [])},
        OK,
        call={"follow": descends},
        followed=True,
    ),
    Case(
        "a source object on the commit is neither an object nor a failure of its cluster",
        [Seen("c1", "apps", A, OK), Seen("c1", "repo", A, FAIL, source=True)],
        {"c1": (OK, ["apps"], [])},
        OK,
    ),
    Case(
        "nothing seen at all: no clusters, and the environment is pending",
        [],
        {},
        BUSY,
    ),
]


def record(store: TableStore, seen: Seen, index: int) -> None:
    kind = "GitRepository" if seen.source else "Kustomization"
    store.record(
        Observation(
            cluster=seen.cluster,
            env=ENV,
            obj=obj(seen.name, kind),
            commit=seen.commit,
            phase=seen.phase,
            reason="Test",
            summary="",
            time=T0 + timedelta(minutes=seen.minutes),
            message_id=f"m{index}",
            is_source=seen.source,
        )
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_environment(case: Case) -> None:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    for index, seen in enumerate(case.seen):
        record(store, seen, index)
    environments = {ENV: case.spec} if case.spec else {}

    result = Rollup(environments, store).environment(A, ENV, **case.call)

    found = {
        c.cluster: (c.phase, [o.name for o in c.done], [o.name for o in c.pending])
        for c in result.clusters
    }
    assert found == case.expected
    assert (result.env, result.phase) == (ENV, case.env_phase)
    assert result.followed is case.followed


def test_failed_objects_name_the_object_and_its_state() -> None:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    record(store, Seen("c1", "apps", A, FAIL, minutes=2), 0)

    (cluster,) = Rollup({}, store).environment(A, ENV).clusters

    ((failed, state),) = cluster.failed
    assert failed == obj("apps")
    assert state.failed_since == T0 + timedelta(minutes=2)


def test_each_commit_is_read_once_per_roll_up() -> None:
    """`follow` looks up the descendant's states once for all clusters and objects."""
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    for index, cluster in enumerate(["c1", "c2", "c3"]):
        record(store, Seen(cluster, "apps", B, OK), 2 * index)
        record(store, Seen(cluster, "infra", B, OK), 2 * index + 1)
    reads: list[str] = []
    states = store.commit_states

    def counting(commit: str, env: str | None = None) -> Any:
        reads.append(commit)
        return states(commit, env)

    store.commit_states = counting  # type: ignore[method-assign]

    result = Rollup({}, store).environment(A, ENV, follow=descends)

    assert result.phase == OK
    assert sorted(reads) == [A, B]


def test_states_are_read_for_the_environment_only() -> None:
    """A commit's states in other environments are not read (each is a Table query)."""
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    record(store, Seen("c1", "apps", A, OK), 0)
    calls: list[tuple[str, str | None]] = []
    states = store.commit_states

    def recording(commit: str, env: str | None = None) -> Any:
        calls.append((commit, env))
        return states(commit, env)

    store.commit_states = recording  # type: ignore[method-assign]

    Rollup({}, store).environment(A, ENV)

    assert calls == [(A, ENV)]
