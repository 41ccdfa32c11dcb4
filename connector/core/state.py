"""What the state store answers, and the protocol the core reads it through. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from connector.core.tracking import ObjectRef, ObjectState, Observation, Verdict


@dataclass(frozen=True)
class Recorded:
    verdict: Verdict
    state: ObjectState | None


@dataclass(frozen=True)
class ObjectPointer:
    """Where an object of a cluster was last seen: its current and previous commit."""

    obj: ObjectRef
    commit: str
    previous_commit: str | None
    time: datetime


class DeploymentStore(Protocol):
    def is_processed(self, message_id: str) -> bool: ...
    def mark_processed(self, message_id: str) -> None: ...
    def record(self, obs: Observation) -> Recorded: ...
    def commit_states(
        self, commit: str, env: str | None = None
    ) -> dict[tuple[str, str], dict[ObjectRef, ObjectState]]: ...
    def cluster_objects(self, env: str) -> dict[str, dict[ObjectRef, ObjectPointer]]: ...
