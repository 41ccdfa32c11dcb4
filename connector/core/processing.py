"""The queue-triggered side: one Service Bus message → one observation → state, statuses, gates.

Idempotent by construction: the state store recognises duplicates, stale and no-change events,
and every output (status, gate completion, Spektate row) is claimed in the store before it is
sent, so a redelivery after a crash repeats only what did not happen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from opentelemetry import trace
from pydantic import ValidationError

from connector import telemetry
from connector.core.rollup import Rollup
from connector.core.tracking import (
    EnvironmentResult,
    Observation,
    Verdict,
    observe,
)
from connector.outputs.statuses import (
    DesiredStatus,
    StatusPublisher,
    environment_status,
    object_status,
)
from connector.queue import envelope
from connector.queue.envelope import Envelope, GateCheck
from connector.settings import Settings
from connector.storage.tables import DeploymentStore, Recorded

if TYPE_CHECKING:
    import azure.functions as func

    from connector.app.bootstrap import Container

logger = logging.getLogger(__name__)


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
    properties = msg.application_properties or {}
    with telemetry.continued(properties, "flux.process", message_id=msg.message_id):
        _handle(msg, container)


def _handle(msg: func.ServiceBusMessage, container: Container) -> None:
    body = msg.get_body()
    try:
        message = envelope.decode(body)
    except (ValidationError, ValueError) as exc:
        reason = _describe(exc)
        logger.error(  # noqa: TRY400 - the reason says it all; a traceback would add nothing
            "process.unreadable",
            extra={"message_id": msg.message_id, "reason": reason},
        )
        raise UnreadableMessageError(f"unreadable message: {reason}") from None
    if isinstance(message, GateCheck):
        container.gatekeeper.check(message.env, message.gate)
        return
    message_id = msg.message_id or envelope.message_id(message.cluster, message.env, body)
    container.processor.process(message, message_id)


def _describe(exc: ValueError) -> str:
    if not isinstance(exc, ValidationError):
        return "body is not JSON"
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )


class Processor:
    def __init__(
        self,
        settings: Settings,
        store: DeploymentStore,
        statuses: StatusPublisher,
        listeners: Sequence[ChangeListener] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._store = store
        self._statuses = statuses
        self._listeners = tuple(listeners)

    def process(self, env: Envelope, message_id: str) -> Verdict | None:
        """Process one envelope; returns the verdict, or None for a duplicate delivery."""
        if self._store.is_processed(message_id):
            logger.info("process.duplicate", extra={"message_id": message_id})
            telemetry.events_dropped.add(1, {"why": "duplicate"})
            return None
        obs = replace(observe(env, message_id), noticed_at=self._clock())
        trace.get_current_span().set_attributes(_attributes(obs))
        recorded = self._store.record(obs)
        if recorded.verdict != Verdict.CHANGED:
            telemetry.events_dropped.add(1, {"why": recorded.verdict.value})
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
        desired = object_status(obs.cluster, obs.obj, recorded.state)
        self._statuses.publish(commit, desired, fields, obs.time)
        results: list[EnvironmentResult] = []

        def rolled_up() -> DesiredStatus:
            results.append(self.rollup(commit, obs.env))
            return environment_status(results[-1])

        self._statuses.publish(commit, rolled_up, {"env": obs.env}, obs.time)
        self._notify(obs, recorded, results[-1])

    def _notify(self, obs: Observation, recorded: Recorded, result: EnvironmentResult) -> None:
        """Every listener runs even if one fails (Spektate being down must not hold up a gate);
        the first failure is raised afterwards so Service Bus redelivers, and each listener's
        own records make the redelivery repeat only what failed."""
        failure: Exception | None = None
        for listener in self._listeners:
            try:
                listener.on_observation(obs, recorded, result)
            except Exception as exc:
                logger.warning(
                    "process.listener_failed",
                    extra={"listener": type(listener).__name__, "error": type(exc).__name__},
                )
                failure = failure or exc
        if failure is not None:
            raise failure

    def rollup(self, commit: str, env: str) -> EnvironmentResult:
        """The environment's state on exactly this commit (for its commit status)."""
        return Rollup(self._settings, self._store).environment(commit, env)


def _attributes(obs: Observation) -> dict[str, str]:
    return {
        "connector.cluster": obs.cluster,
        "connector.env": obs.env,
        "connector.object": str(obs.obj),
        "connector.commit": obs.commit or "",
        "connector.phase": obs.phase.value if obs.phase else "",
        "connector.reason": obs.reason,
    }
