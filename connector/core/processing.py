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

from connector.core.rollup import EnvironmentSpecs
from connector.core.state import CachedReads, DeploymentStore, Recorded
from connector.core.tally import EnvironmentTally
from connector.core.tracking import (
    EnvironmentResult,
    Observation,
    Verdict,
    bounded_by_receipt,
)

logger = logging.getLogger(__name__)


@dataclass
class Change:
    """What outputs are told: an observation, what the store made of it, and the roll-up of its
    environment on its commit (computed on first use; `fresh` recomputes it)."""

    obs: Observation
    recorded: Recorded
    _rollup: Callable[[], EnvironmentResult] = field(repr=False)
    reads: CachedReads | None = field(default=None, repr=False)  # shared by the outputs
    _cluster_changed: Callable[[], bool] = field(default=lambda: True, repr=False)
    _latest: EnvironmentResult | None = field(default=None, repr=False)
    unfinished: bool = False  # an output left work for a later re-send (trial mode)

    def keep_unsettled(self) -> None:
        """An output did not do its work (and recorded nothing): the next re-send of this state
        must not take the fast path."""
        self.unfinished = True

    @property
    def commit(self) -> str:
        return self.obs.commit or ""

    def cluster_changed(self) -> bool:
        """Whether this change moved its cluster's result on the commit (pending, succeeded,
        failed, or which object failed first); an object's own progress inside a cluster that
        stays pending does not."""
        self.environment()
        return self._cluster_changed()

    def environment(self, *, fresh: bool = False) -> EnvironmentResult:
        if fresh and self.reads is not None:
            self.reads.forget()
        if fresh or self._latest is None:
            self._latest = self._rollup()
        return self._latest


class ChangeListener(Protocol):
    """An output: told about every live observation of a deployed commit (statuses, gates,
    Spektate, webhooks). Raising makes Service Bus redeliver the message."""

    def on_change(self, change: Change) -> None: ...


class Instruments(Protocol):
    """Where the processor's trace attributes and counts go. Injected so that the core imports
    no telemetry SDK: the composition root passes `connector.telemetry.ProcessingInstruments`
    (OpenTelemetry); `QUIET`, the default, drops them."""

    def describe(self, attributes: Mapping[str, str]) -> None:
        """Set `attributes` on the current span (the queue message's)."""
        ...

    def dropped(self, why: str) -> None:
        """Count an observation that changed nothing (`why`: the verdict)."""
        ...

    def skewed(self, cluster: str) -> None:
        """Count an event whose time is ahead of its receipt."""
        ...


class _Quiet:
    def describe(self, attributes: Mapping[str, str]) -> None:
        pass

    def dropped(self, why: str) -> None:
        pass

    def skewed(self, cluster: str) -> None:
        pass


QUIET: Instruments = _Quiet()


class Processor:
    def __init__(
        self,
        environments: EnvironmentSpecs,
        store: DeploymentStore,
        listeners: Sequence[ChangeListener] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        instruments: Instruments = QUIET,
    ) -> None:
        self._environments = environments
        self._store = store
        self._listeners = tuple(listeners)
        self._clock = clock
        self._instruments = instruments

    def process(self, observation: Observation) -> Verdict:
        """Record one observation and tell the outputs. The steady state (a re-send or a
        redelivery of a state every output has handled) costs the one read that recognises it."""
        obs = bounded_by_receipt(replace(observation, noticed_at=self._clock()))
        if obs.claimed_time is not None:
            self._instruments.skewed(obs.cluster)
            _note_skew(obs)
        self._instruments.describe(_attributes(obs))
        recorded = self._store.record(obs)
        verdict = recorded.verdict
        done = verdict in (Verdict.STALE, Verdict.IGNORED) or recorded.settled
        if verdict != Verdict.CHANGED:
            self._instruments.dropped(verdict.value)
        logger.info(
            "process.recorded",
            extra={
                "message_id": obs.message_id,
                "verdict": verdict.value,
                "settled": recorded.settled,
                "cluster": obs.cluster,
                "object": str(obs.obj),
                "commit": obs.commit,
            },
        )
        if done:
            return verdict
        # An unsettled UNCHANGED is a redelivery after a crash: it finishes what was not done
        # (each output's own records make each output happen once).
        if obs.sets_status and obs.commit and recorded.state:
            reads = CachedReads(self._store)
            tally = EnvironmentTally(self._environments, reads, self._store)
            commit, env, cluster = obs.commit, obs.env, obs.cluster
            change = Change(
                obs,
                recorded,
                lambda: tally.environment(commit, env, cluster),
                reads,
                lambda: tally.cluster_changed,
            )
            self._notify(change)
            if change.unfinished:
                return verdict
        self._store.settle(obs, recorded)
        return verdict

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


def _note_skew(obs: Observation) -> None:
    """A cluster's clock ahead of ours: said once per event, so that `doctor`-minded people can
    find the cluster; the state keeps the claimed time too (`claimed_time`)."""
    ahead = (obs.claimed_time - obs.time).total_seconds() if obs.claimed_time else 0.0
    logger.warning(
        "process.clock_skew",
        extra={
            "message_id": obs.message_id,
            "cluster": obs.cluster,
            "object": str(obs.obj),
            "ahead_seconds": round(ahead, 3),
        },
    )


def _attributes(obs: Observation) -> Mapping[str, str]:
    return {
        "connector.cluster": obs.cluster,
        "connector.env": obs.env,
        "connector.object": str(obs.obj),
        "connector.commit": obs.commit or "",
        "connector.phase": obs.phase.value if obs.phase else "",
        "connector.reason": obs.reason,
    }
