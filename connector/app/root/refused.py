"""The sweep's second job: post again the statuses Azure DevOps refused (401/403/404: the
identity had no access yet, e.g. the walkthrough's permissions granted after the first
rollout), so that they appear once access is granted, without waiting for the object to change.

Each comes from the ledger's index of refused statuses (connector/storage/ledger.py) and goes
through the same publisher as before: its claim makes the post happen once, a status that was
posted meanwhile is not posted again, and one still refused stays listed for the next sweep.
The template of STATUS_TARGET_URL is filled with the commit only (the object's fields are not
kept with the refusal).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from connector.outputs.sinks import COMMIT_STATUS_SINK, HLD_STATUS_SINK, PR_STATUS_SINK
from connector.outputs.statuses import CommitStatuses, DesiredStatus, StatusPublisher
from connector.storage.ledger import RefusedStatus, forget_refused, refused_statuses
from connector.storage.rows import unkey

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container

logger = logging.getLogger(__name__)

MAX_PER_SWEEP = 100  # a sweep's share: the rest waits for the next one


def repost(container: Container) -> int:
    """Post the refused statuses again; the number now posted (or found already posted)."""
    table = container.store.table("deployments")
    posted = 0
    for refused in refused_statuses(table)[:MAX_PER_SWEEP]:
        publisher = _publisher(container, refused)
        if publisher is None:  # a sink this version does not know: nothing can post it
            forget_refused(table, refused)
            continue
        desired = DesiredStatus(refused.context, refused.state, refused.description)
        if publisher.publish(refused.subject, desired):
            forget_refused(table, refused)
            posted += 1
            logger.info(
                "status.reposted", extra={"subject": refused.subject, "context": refused.context}
            )
    return posted


def _publisher(container: Container, refused: RefusedStatus) -> StatusPublisher | None:
    s = container.settings
    repositories = {COMMIT_STATUS_SINK: s.azdo_gitops_repo, HLD_STATUS_SINK: s.pr_repo}
    if refused.sink in repositories:
        target = CommitStatuses(container.devops, repositories[refused.sink])
        ledger = container.store.ledger(refused.sink)
        return StatusPublisher(target, ledger, genre=s.status_genre, target_url=s.status_target_url)
    parts = unkey(refused.subject)
    if refused.sink == PR_STATUS_SINK and len(parts) == 3 and parts[2].isdigit():
        return container.pull_request_statuses(parts[1], int(parts[2]))
    return None
