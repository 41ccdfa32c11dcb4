"""Statuses on Azure DevOps: what to post, and posting each one once.

`CommitStatusSink` is the output for the manifests commit: contexts
`<cluster>/<kind>/<namespace>/<name>` per object and `env/<env>` per environment, under the genre
from `STATUS_GENRE`. Descriptions change with the phase only, so a rollout costs one `pending` and
one final write per context. `StatusPublisher` posts through a target (the commit, or a pull
request) and a ledger named after its sink, so nothing is read back from Azure DevOps and
nothing is posted twice; a second sink is never deduplicated away by the first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from connector import telemetry
from connector.core.processing import Change
from connector.core.tracking import EnvironmentResult, ObjectRef, ObjectState, Phase, Verdict
from connector.devops.types import (
    CommitStatus,
    NotSentError,
    PermanentAzureDevOpsError,
    StatusWriter,
)
from connector.outputs.sinks import environment_context, object_context
from connector.storage.ledger import StatusLedger

logger = logging.getLogger(__name__)

DESCRIPTION_LIMIT = 250
MAX_ROUNDS = 5  # posts of one context by one holder while others keep changing the roll-up
# Refusals that granting access cures (403: TF401027 "You need the Git 'GenericContribute'
# permission"). A 404 (commit not in the repository) is recorded as before, never retried.
ACCESS_REFUSALS = frozenset({401, 403})
StateMap = Mapping[Phase, str]
# GitStatusState values (REST spec 7.1, git.json definitions GitStatus.state).
DEVOPS_STATES: StateMap = {
    Phase.PROGRESSING: "pending",
    Phase.SUCCEEDED: "succeeded",
    Phase.FAILED: "failed",
}


@dataclass(frozen=True)
class DesiredStatus:
    context: str
    state: str
    description: str


def object_status(
    cluster: str, obj: ObjectRef, state: ObjectState, states: StateMap = DEVOPS_STATES
) -> DesiredStatus:
    if state.phase == Phase.SUCCEEDED:
        description = "healthy"
    elif state.phase == Phase.FAILED:
        description = f"{state.reason}: {state.summary}"
    else:
        description = "reconciling"
    return DesiredStatus(object_context(cluster, obj), states[state.phase], _cap(description))


def environment_status(
    result: EnvironmentResult, states: StateMap = DEVOPS_STATES
) -> DesiredStatus:
    failed = result.failed_cluster
    if result.phase == Phase.SUCCEEDED:
        description = f"healthy in {len(result.clusters)} of {len(result.clusters)} clusters"
    elif failed is not None:
        obj, state = failed.failed[0]
        description = f"{failed.cluster}: {obj}: {state.reason}: {state.summary}"
    else:
        description = "deploying"
    return DesiredStatus(environment_context(result.env), states[result.phase], _cap(description))


def _cap(text: str) -> str:
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


class StatusTarget(Protocol):
    """Where a sink's statuses go; `subject` is the ledger's partition (a commit for commits)."""

    def post(self, subject: str, status: CommitStatus) -> None: ...


class CommitStatuses:
    """Statuses on commits of one repository (Statuses - Create)."""

    def __init__(self, writer: StatusWriter, repository: str) -> None:
        self._writer = writer
        self._repository = repository

    def post(self, subject: str, status: CommitStatus) -> None:
        self._writer.post_commit_status(self._repository, subject, status)


class PullRequestStatuses:
    """Statuses on one pull request (Pull Request Statuses - Create)."""

    def __init__(self, writer: StatusWriter, repository: str, pull_request_id: int) -> None:
        self._writer = writer
        self._repository = repository
        self._pull_request_id = pull_request_id

    def post(self, subject: str, status: CommitStatus) -> None:
        self._writer.post_pull_request_status(self._repository, self._pull_request_id, status)


class StatusPublisher:
    def __init__(
        self,
        target: StatusTarget,
        ledger: StatusLedger,
        *,
        genre: str = "flux",
        target_url: str = "",
    ) -> None:
        self._target = target
        self._ledger = ledger
        self._genre = genre
        self._target_url = target_url

    def publish(
        self,
        commit: str,
        desired: DesiredStatus | Callable[[], DesiredStatus],
        url_fields: Mapping[str, str] | None = None,
        event_time: datetime | None = None,
        *,
        new: bool = False,
    ) -> bool:
        """Post the desired status unless it is already posted (or being posted). `desired` may
        be a function (an environment roll-up): while we hold the context, another instance's
        newer state makes us compute it again and post that too. False only when trial mode
        kept it from being sent (nothing is recorded as posted). `new`: the context has likely
        never been posted on this commit. Also False when Azure DevOps refused access: kept as
        refused, the sweep posts it again."""
        compute = desired if callable(desired) else (lambda: desired)
        status = compute()
        context, state, description = status.context, status.state, status.description
        claim = self._ledger.claim_status(commit, context, state, description, new=new)
        if claim is None:
            return True
        post = True
        for _ in range(MAX_ROUNDS):
            if post and not self._post(commit, status, url_fields or {}, event_time):
                return False  # trial mode: nothing was sent, nothing recorded as posted
            claim = self._ledger.finish_status(commit, status.context, claim)
            if claim is None:
                return True
            latest = compute()
            post = latest != status
            if post:
                status = latest
                claim = self._ledger.hold_status(
                    commit, status.context, status.state, status.description
                )
            if claim is None:
                return True
        return True

    def _post(
        self,
        commit: str,
        desired: DesiredStatus,
        url_fields: Mapping[str, str],
        event_time: datetime | None,
    ) -> bool:
        """Send one status (the claim is held). False in trial mode."""
        status = CommitStatus(
            state=desired.state,
            description=desired.description,
            genre=self._genre,
            name=desired.context,
            target_url=self._url(commit, url_fields),
        )
        try:
            self._target.post(commit, status)
        except NotSentError:
            self._ledger.release_status(commit, desired.context, trial=True)
            return False
        except PermanentAzureDevOpsError as exc:
            # Cannot succeed on retry (e.g. the commit is not in this repository): record, go on.
            logger.warning(
                "status.refused",
                extra={
                    "commit": commit,
                    "context": desired.context,
                    "status_code": exc.status_code,
                    "error": exc.message,
                },
            )
            if exc.status_code in ACCESS_REFUSALS:  # the sweep posts it again: app/root/refused.py
                self._ledger.release_status(commit, desired.context, refused=True)
                return False
            return True
        except Exception:
            self._ledger.release_status(commit, desired.context)
            raise
        telemetry.statuses_written.add(1, {"state": desired.state})
        if event_time is not None:
            telemetry.status_latency.record(telemetry.seconds_since(event_time))
        logger.info(
            "status.posted",
            extra={"commit": commit, "context": desired.context, "state": desired.state},
        )
        return True

    def _url(self, commit: str, fields: Mapping[str, str]) -> str | None:
        if not self._target_url:
            return None
        values = _Blank(commit=commit, **fields)
        return self._target_url.format_map(values)


class _Blank(dict[str, str]):
    """Template values; unknown placeholders become empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""


class LinkedCommits(Protocol):
    """The HLD commits a manifests commit was verified to be rendered from (none without an
    HLD repository): `devops.links.CommitLinks`."""

    def hld_commits(self, commit: str) -> tuple[str, ...]: ...


class CommitStatusSink:
    """The output that puts object and environment statuses on the manifests commit, and the
    environment's status also on the HLD commits it was rendered from (`hld`: their links and
    a publisher on the HLD repository with a ledger of its own), where people merged."""

    def __init__(
        self,
        publisher: StatusPublisher,
        states: StateMap = DEVOPS_STATES,
        *,
        hld: tuple[LinkedCommits, StatusPublisher] | None = None,
    ) -> None:
        self._publisher = publisher
        self._states = states
        self._hld = hld

    def on_change(self, change: Change) -> None:
        obs, state = change.obs, change.recorded.state
        if state is None or not change.commit:
            return
        fields = {"env": obs.env, "cluster": obs.cluster, "object": str(obs.obj)}
        desired = object_status(obs.cluster, obs.obj, state, self._states)
        changed = change.recorded.verdict == Verdict.CHANGED
        # The object's first state on the commit: its status row on the commit does not exist yet.
        new = changed and change.recorded.new_on_commit
        sent = self._publisher.publish(change.commit, desired, fields, obs.time, new=new)
        if changed and not change.cluster_changed():
            # The environment's tally did not move: its status is what the last event that
            # moved it published (a redelivery publishes again, in case that one failed).
            if not sent:
                change.keep_unsettled()
            return

        computed: list[DesiredStatus] = []

        def rolled_up() -> DesiredStatus:
            # The publisher asks again when another instance moved the environment on while
            # we held the context: then the roll-up is computed afresh.
            fresh = bool(computed)
            computed.append(environment_status(change.environment(fresh=fresh), self._states))
            return computed[-1]

        fields = {"env": obs.env}
        sent = self._publisher.publish(change.commit, rolled_up, fields, obs.time) and sent
        if self._hld is not None:
            sent = self._publish_on_hld(change, rolled_up, computed) and sent
        if not sent:
            change.keep_unsettled()  # trial mode: real mode posts these on the next re-send

    def _publish_on_hld(
        self,
        change: Change,
        rolled_up: Callable[[], DesiredStatus],
        computed: list[DesiredStatus],
    ) -> bool:
        """The environment's status on each HLD commit the manifests commit carries."""
        if self._hld is None:
            return True
        links, publisher = self._hld
        sent = True
        for hld_commit in links.hld_commits(change.commit):
            fields = {"env": change.obs.env, "hld_commit": hld_commit}
            desired = _latest_then_fresh(computed, rolled_up)
            sent = publisher.publish(hld_commit, desired, fields, change.obs.time) and sent
        return sent


def _latest_then_fresh(
    computed: list[DesiredStatus], rolled_up: Callable[[], DesiredStatus]
) -> Callable[[], DesiredStatus]:
    """First the roll-up just posted on the manifests commit; when asked again, afresh."""
    asked: list[bool] = []

    def desired() -> DesiredStatus:
        if asked or not computed:
            return rolled_up()
        asked.append(True)
        return computed[-1]

    return desired
