"""What the state store answers, and the protocol the core reads it through. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from connector.core.tracking import ClusterResult, ObjectRef, ObjectState, Observation, Verdict


@dataclass(frozen=True)
class Recorded:
    """What the store made of an observation. `settled`: every output has already handled this
    state (nothing to do: the steady state); `version`: the row's version to settle it with."""

    verdict: Verdict
    state: ObjectState | None
    settled: bool = False
    version: str | None = None
    # No settled state of the object on this commit existed: where the object is (its pointer)
    # may not say this commit yet.
    new_on_commit: bool = True


@dataclass(frozen=True)
class ObjectPointer:
    """Where an object of a cluster was last seen: its current and previous commit."""

    obj: ObjectRef
    commit: str
    previous_commit: str | None
    time: datetime


CommitStates = dict[tuple[str, str], dict[ObjectRef, ObjectState]]  # by (env, cluster)
ClusterResults = dict[str, ClusterResult]  # by cluster
Inventory = dict[str, dict[ObjectRef, ObjectPointer]]  # by cluster


class DeploymentReads(Protocol):
    """What roll-ups read."""

    def commit_states(self, commit: str, env: str | None = None) -> CommitStates: ...
    def cluster_objects(self, env: str) -> Inventory: ...
    def cluster_view(self, commit: str, env: str, cluster: str) -> ClusterView: ...
    def environment_clusters(self, env: str) -> list[str]:
        """The clusters an environment not in `ENVIRONMENTS` expects: each that reported
        recently (`connector.storage.clusters`)."""
        ...


@dataclass(frozen=True)
class ClusterView:
    """One cluster's rows on a commit. `basis`: when the newest of its state rows was written
    (the store's own clock), so that of two results computed from one cluster the one computed
    from newer rows can be told apart."""

    states: dict[ObjectRef, ObjectState]
    pointers: dict[ObjectRef, ObjectPointer]
    basis: str


class Tallies(Protocol):
    """Each cluster's last computed result on a commit, one row per environment and commit."""

    def tally(
        self, commit: str, env: str, result: ClusterResult, basis: str
    ) -> tuple[bool, ClusterResults | None]:
        """Record one cluster's result unless one from newer rows is there; (whether the
        cluster's recorded result changed, every cluster's result). None instead of the
        results: the environment has too many clusters for one row (roll it up in full)."""
        ...


class DeploymentStore(DeploymentReads, Tallies, Protocol):
    def record(self, obs: Observation) -> Recorded: ...
    def settle(self, obs: Observation, recorded: Recorded) -> None: ...


class CachedReads:
    """The reads of one message, each made once: the environment status and the gates of the
    same change roll up the same rows. `forget` when a fresh view is needed."""

    def __init__(self, reads: DeploymentReads) -> None:
        self._reads = reads
        self._states: dict[tuple[str, str | None], CommitStates] = {}
        self._inventories: dict[str, Inventory] = {}
        self._clusters: dict[str, list[str]] = {}

    def commit_states(self, commit: str, env: str | None = None) -> CommitStates:
        if (commit, env) not in self._states:
            self._states[commit, env] = self._reads.commit_states(commit, env)
        return self._states[commit, env]

    def cluster_objects(self, env: str) -> Inventory:
        if env not in self._inventories:
            self._inventories[env] = self._reads.cluster_objects(env)
        return self._inventories[env]

    def cluster_view(self, commit: str, env: str, cluster: str) -> ClusterView:
        return self._reads.cluster_view(commit, env, cluster)  # the tally needs it fresh

    def environment_clusters(self, env: str) -> list[str]:
        if env not in self._clusters:
            self._clusters[env] = self._reads.environment_clusters(env)
        return self._clusters[env]

    def forget(self) -> None:
        self._states.clear()
        self._inventories.clear()
        self._clusters.clear()
