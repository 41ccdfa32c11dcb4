"""`doctor`'s check of the cluster roster (`connector.storage.clusters`): clusters that stopped
reporting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError

from connector.app.doctor.check import Check
from connector.settings import SettingsError

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container

SHOWN = 10  # clusters a doctor line names


def stopped_reporting(container: Container, now: datetime | None = None) -> Check:
    """Clusters whose last report is older than `CLUSTER_REPORT_WINDOW_DAYS`: a cluster
    removed (forget it), or one whose notifications stopped (its gates will wait)."""
    name = "storage.clusters"
    try:
        roster = container.store.clusters
        reports = roster.everywhere()
    except (AzureError, SettingsError):  # storage.reachable says what is wrong, once
        return Check(name, True, "not checked: the state storage did not answer")
    moment = now or datetime.now(UTC)
    stale = [
        (env, cluster, last)
        for env, clusters in sorted(reports.items())
        for cluster, last in sorted(clusters.items())
        if last < moment - roster.window
    ]
    if not stale:
        return Check(name, True, "every cluster that has reported did so recently")
    shown = ", ".join(f"{e}/{c} (last {t:%Y-%m-%d %H:%M}Z)" for e, c, t in stale[:SHOWN])
    more = f" and {len(stale) - SHOWN} more" if len(stale) > SHOWN else ""
    return Check(
        name,
        False,
        f"{len(stale)} cluster(s) stopped reporting: {shown}{more}",
        "fix the cluster's Flux Alert / Argo CD notifications, or, if it is gone, "
        "`python -m connector clusters --env <env> --forget <cluster>`",
    )
