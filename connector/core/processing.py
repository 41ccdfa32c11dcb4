"""One observation in, state recorded, every output told: the processing core.

Idempotent by construction: the state store recognises duplicates, stale and no-change events,
and every output (status, gate completion, Spektate row, webhook) keeps its own record of what it
sent, so a redelivery after a crash repeats only what did not happen. Knows no source and no
queue: `connector.sources` translates events into observations, `connector.app` feeds them in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from opentelemetry import trace

from connector import telemetry
from connector.core.rollup import EnvironmentSpecs, Rollup
from connector.core.state import DeploymentStore, Recorded
from connector.core.tracking import EnvironmentResult, Observation, Verdict

logger = logging.getLogger(__name__)


@dataclass
class Change:
    """What outputs are told: an observation, what the store made of it, and the roll-up of its
    environment on its commit (computed on first use; `fresh` recomputes it)."""

    obs: Observation
    recorded: Recorded
    _rollup: Callable[[], EnvironmentResult] = field(repr=False)
    _latest: EnvironmentResult | None = field(default=None, repr=False)

    @property
    def commit(self) -> str:
        return self.obs.commit or ""

    def environment(self, *, fresh: bool = False) -> EnvironmentResult:
        if fresh or self._latest is None:
            self._latest = self._rollup()
        return self._latest


class ChangeListener(Protocol):
    """An output: told about every live observation of a deployed commit (statuses, gates,
    Spektate, webhooks). Raising makes Service Bus redeliver the message."""

    def on_change(self, change: Change) -> None: ...


class Processor:
    def __init__(
        self,
        environments: EnvironmentSpecs,
        store: DeploymentStore,
        listeners: Sequence[ChangeListener] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._environments = environments
        self._store = store
        self._listeners = tuple(listeners)
        self._clock = clock

    def process(self, observation: Observation) -> Verdict | None:
        """Record one observation and tell the outputs; None for a duplicate delivery."""
        message_id = observation.message_id
        if self._store.is_processed(message_id):
            logger.info("process.duplicate", extra={"message_id": message_id})
            telemetry.events_dropped.add(1, {"why": "duplicate"})
            return None
        obs = replace(observation, noticed_at=self._clock())
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
        # (each output's own records make each output happen once).
        live = recorded.verdict in (Verdict.CHANGED, Verdict.UNCHANGED)
        if obs.sets_status and obs.commit and recorded.state and live:
            self._notify(Change(obs, recorded, self._rollup_of(obs.commit, obs.env)))
        self._store.mark_processed(message_id)
        return recorded.verdict

    def _rollup_of(self, commit: str, env: str) -> Callable[[], EnvironmentResult]:
        """The environment's state on exactly this commit (for its commit status)."""
        return lambda: Rollup(self._environments, self._store).environment(commit, env)

    def _notify(self, change: Change) -> None:
        """Every listener runs even if one fails (Spektate being down must not hold up a gate);
        the first failure is raised afterwards so Service Bus redelivers, and each listener's
        own records make the redelivery repeat only what failed."""
        failure: Exception | None = None
        for listener in self._listeners:
            try:
                listener.on_change(change)
            except Exception as exc:
                logger.warning(
                    "process.listener_failed",
                    extra={"listener": type(listener).__name__, "error": type(exc).__name__},
                )
                failure = failure or exc
        if failure is not None:
            raise failure


def _attributes(obs: Observation) -> Mapping[str, str]:
    return {
        "connector.cluster": obs.cluster,
        "connector.env": obs.env,
        "connector.object": str(obs.obj),
        "connector.commit": obs.commit or "",
        "connector.phase": obs.phase.value if obs.phase else "",
        "connector.reason": obs.reason,
    }
