"""The queue-triggered side: one Service Bus message → one observation → state, statuses, gates.

Idempotent by construction: the state store recognises duplicates, stale and no-change events,
and every output (status, gate completion, Spektate row) is claimed in the store before it is
sent, so a redelivery after a crash repeats only what did not happen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from connector import envelope
from connector.envelope import Envelope
from connector.events import SOURCE_KINDS
from connector.settings import Settings
from connector.statuses import StatusPublisher, environment_status, object_status
from connector.store import DeploymentStore, ObjectPointer, Recorded
from connector.tracking import (
    EnvironmentResult,
    ObjectRef,
    ObjectState,
    Observation,
    Verdict,
    cluster_result,
    environment_result,
    observe,
)

if TYPE_CHECKING:
    import azure.functions as func

    from connector.bootstrap import Container

logger = logging.getLogger(__name__)

# How long an object that stopped reporting still counts as part of its cluster.
INVENTORY_TTL = timedelta(hours=24)


class UnreadableMessageError(Exception):
    """The message can never be processed. Raising it lets Service Bus redeliver it up to
    `maxDeliveryCount` times (cheap: parsing fails at once) and then dead-letter it, where
    `python -m connector dlq peek` shows it; the log line carries the reason."""


class ChangeListener(Protocol):
    """Told about every non-stale observation of a deployed commit (gates, Spektate, webhooks)."""

    def on_observation(
        self, obs: Observation, recorded: Recorded, env: EnvironmentResult
    ) -> None: ...


def handle_message(msg: func.ServiceBusMessage, container: Container) -> None:
    try:
        env = envelope.decode(msg.get_body())
    except ValidationError as exc:
        reason = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        logger.error(  # noqa: TRY400 - the reason says it all; a traceback would add nothing
            "process.unreadable",
            extra={"message_id": msg.message_id, "reason": reason},
        )
        raise UnreadableMessageError(f"not an envelope: {reason}") from None
    body = msg.get_body()
    message_id = msg.message_id or envelope.message_id(env.cluster, env.env, body)
    container.processor.process(env, message_id)


class Processor:
    def __init__(
        self,
        settings: Settings,
        store: DeploymentStore,
        statuses: StatusPublisher,
        listeners: Sequence[ChangeListener] = (),
    ) -> None:
        self._settings = settings
        self._store = store
        self._statuses = statuses
        self._listeners = tuple(listeners)

    def process(self, env: Envelope, message_id: str) -> Verdict | None:
        """Process one envelope; returns the verdict, or None for a duplicate delivery."""
        if self._store.is_processed(message_id):
            logger.info("process.duplicate", extra={"message_id": message_id})
            return None
        obs = observe(env, message_id)
        recorded = self._store.record(obs)
        logger.info(
            "process.recorded",
            extra={
                "message_id": message_id,
                "verdict": recorded.verdict.value,
                "cluster": obs.cluster,
                "object": str(obs.obj),
                "commit": obs.commit,
            },
        )
        # UNCHANGED is processed too: after a crash, the redelivery finishes what was not done
        # (the ledger makes each output happen once).
        live = recorded.verdict in (Verdict.CHANGED, Verdict.UNCHANGED)
        if obs.sets_status and obs.commit and recorded.state and live:
            self._publish(obs, obs.commit, recorded)
        self._store.mark_processed(message_id)
        return recorded.verdict

    def _publish(self, obs: Observation, commit: str, recorded: Recorded) -> None:
        if recorded.state is None:
            return
        fields = {"env": obs.env, "cluster": obs.cluster, "object": str(obs.obj)}
        self._statuses.publish(
            commit, object_status(obs.cluster, obs.obj, recorded.state), **fields
        )
        result = self.rollup(commit, obs.env)
        self._statuses.publish(commit, environment_status(result), env=obs.env)
        for listener in self._listeners:
            listener.on_observation(obs, recorded, result)

    def rollup(self, commit: str, env: str) -> EnvironmentResult:
        """The environment's state on a commit, from what the store knows."""
        states = self._store.commit_states(commit, env)
        inventory = self._store.cluster_objects(env)
        spec = self._settings.environments.get(env)
        clusters = list(spec.clusters) if spec and spec.clusters else sorted(inventory)
        configured = [ObjectRef.parse(o) for o in spec.objects] if spec else []
        results = []
        for cluster in clusters:
            on_commit = _deployed(states.get((env, cluster), {}))
            expected = configured or _learned(commit, on_commit, inventory.get(cluster, {}))
            results.append(cluster_result(cluster, on_commit, expected))
        return environment_result(env, results)


def _deployed(states: dict[ObjectRef, ObjectState]) -> dict[ObjectRef, ObjectState]:
    return {o: s for o, s in states.items() if o.kind not in SOURCE_KINDS}


def _learned(
    commit: str, on_commit: dict[ObjectRef, ObjectState], inventory: dict[ObjectRef, ObjectPointer]
) -> set[ObjectRef]:
    """Without configured objects, a cluster expects the objects already on this commit plus their
    siblings: recently seen objects still on the commit those objects were on before. They read
    the same source, so they will move too; the cluster is not done until they have."""
    previous = {
        p.previous_commit for o, p in inventory.items() if p.commit == commit and o in on_commit
    }
    previous.discard(None)
    if not previous:
        return set(on_commit)
    # Relative to the cluster's newest report, so that replays and tests of old events agree.
    horizon = max(p.time for p in inventory.values()) - INVENTORY_TTL
    siblings = {o for o, p in inventory.items() if p.commit in previous and p.time >= horizon}
    return set(on_commit) | siblings
