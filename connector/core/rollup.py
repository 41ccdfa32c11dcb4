"""An environment's state on a commit, assembled from the state store.

Which clusters: the gate's, else `ENVIRONMENTS`, else every cluster seen in the environment.
Which objects per cluster: the gate's, else `ENVIRONMENTS`, else learned (see `_learned`).
With `follow` set, an object that already runs a descendant of the commit counts with its state
on that descendant (Flux skipped the commit; its change is deployed all the same).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta

from connector.core.environments import EnvironmentSpec
from connector.core.state import ClusterView, DeploymentReads, ObjectPointer
from connector.core.tracking import (
    ClusterResult,
    EnvironmentResult,
    ObjectRef,
    ObjectState,
    cluster_result,
    environment_result,
)

# How long an object that stopped reporting still counts as part of its cluster.
INVENTORY_TTL = timedelta(hours=24)

IsDescendant = Callable[[str, str], bool]  # (ancestor, commit) -> bool
EnvironmentSpecs = Mapping[str, EnvironmentSpec]  # `ENVIRONMENTS`: clusters and objects per env


class Rollup:
    def __init__(self, environments: EnvironmentSpecs, store: DeploymentReads) -> None:
        self._environments = environments
        self._store = store

    def environment(
        self,
        commit: str,
        env: str,
        *,
        clusters: Sequence[str] = (),
        objects: Sequence[str] = (),
        follow: IsDescendant | None = None,
    ) -> EnvironmentResult:
        spec = self._environments.get(env)
        inventory = self._store.cluster_objects(env)
        chosen = (
            list(clusters)
            or (list(spec.clusters) if spec else [])
            or self._store.environment_clusters(env)
        )
        configured = [ObjectRef.parse(o) for o in (objects or (spec.objects if spec else ()))]
        states = _StatesByCommit(self._store, env)
        results = []
        followed = False
        for cluster in chosen:
            pointers = inventory.get(cluster, {})
            current, moved_on = _current(commit, cluster, pointers, states, follow)
            followed = followed or moved_on
            expected = configured or _learned(current, pointers)
            results.append(cluster_result(cluster, current, expected))
        return replace(environment_result(env, results), followed=followed)


def cluster_of(
    cluster: str, view: ClusterView, spec: EnvironmentSpec | None = None
) -> ClusterResult:
    """One cluster on exactly one commit, from that cluster's own rows: the rules of
    `Rollup.environment` without `follow`, at the cost of one cluster, whatever the
    environment."""
    current = {o: s for o, s in view.states.items() if not s.is_source}
    configured = [ObjectRef.parse(o) for o in (spec.objects if spec else ())]
    expected = configured or _learned(current, view.pointers)
    return cluster_result(cluster, current, expected)


class _StatesByCommit:
    """Object states per commit for one environment, each commit read once."""

    def __init__(self, store: DeploymentReads, env: str) -> None:
        self._store = store
        self._env = env
        self._cache: dict[str, dict[tuple[str, str], dict[ObjectRef, ObjectState]]] = {}

    def get(self, commit: str, cluster: str) -> dict[ObjectRef, ObjectState]:
        if commit not in self._cache:
            self._cache[commit] = self._store.commit_states(commit, self._env)
        found = self._cache[commit].get((self._env, cluster), {})
        return {o: s for o, s in found.items() if not s.is_source}


def _current(
    commit: str,
    cluster: str,
    pointers: dict[ObjectRef, ObjectPointer],
    states: _StatesByCommit,
    follow: IsDescendant | None,
) -> tuple[dict[ObjectRef, ObjectState], bool]:
    """Each object's state on the commit, or on the descendant it has moved on to; and whether
    any has."""
    current = dict(states.get(commit, cluster))
    followed = False
    if follow is None:
        return current, followed
    for obj, pointer in pointers.items():
        if pointer.commit != commit and follow(commit, pointer.commit):
            state = states.get(pointer.commit, cluster).get(obj)
            if state is not None:
                current[obj] = state
                followed = True
    return current, followed


def _learned(
    current: dict[ObjectRef, ObjectState], pointers: dict[ObjectRef, ObjectPointer]
) -> set[ObjectRef]:
    """Without configured objects, a cluster expects the objects already on this commit plus their
    siblings: recently seen objects still on the commit those objects were on before. They read
    the same source, so they will move too; the cluster is not done until they have."""
    previous = {p.previous_commit for o, p in pointers.items() if o in current}
    previous.discard(None)
    if not previous:
        return set(current)
    # Relative to the cluster's newest report, so that replays and tests of old events agree.
    horizon = max(p.time for p in pointers.values()) - INVENTORY_TTL
    siblings = {o for o, p in pointers.items() if p.commit in previous and p.time >= horizon}
    return set(current) | siblings
