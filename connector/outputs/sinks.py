"""The shipped outputs' descriptions (`Output`): their sink names, the ledger rows each
observation may make them write, and the modules their first change imports.

Apart from the outputs themselves on purpose: ingest checks every ledger row fits on its first
request, and the registry is read when the host indexes the app, both before any output (which
imports the SDKs) is needed. So this module imports nothing but the plug-in contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.outputs.plugin import Output
from connector.storage.keys import LedgerRow

if TYPE_CHECKING:
    from connector.core.tracking import ObjectRef

COMMIT_STATUS_SINK = "azdo"  # the ledger name of Azure DevOps commit statuses (manifests commit)
PR_STATUS_SINK = "azdo-pr"  # the ledger name of the gates' pull-request statuses
HLD_STATUS_SINK = "azdo-hld"  # the ledger name of environment statuses on HLD commits


def object_context(cluster: str, obj: ObjectRef) -> str:
    """The status context of an object in a cluster (`connector.outputs.statuses`)."""
    return f"{cluster}/{obj}"


def environment_context(env: str) -> str:
    """The status context of an environment's roll-up (`connector.outputs.statuses`)."""
    return f"env/{env}"


# One status row per object and cluster, one per environment, on the manifests commit. (The HLD
# and pull-request statuses are environment statuses keyed by commit or pull request, which
# ingest does not choose.)
COMMIT_STATUSES = Output(
    COMMIT_STATUS_SINK,
    ledger=(
        LedgerRow(
            "object status row",
            ("cluster", "object"),
            lambda env, cluster, obj: object_context(cluster, obj),
        ),
        LedgerRow(
            "environment status row", ("env",), lambda env, cluster, obj: environment_context(env)
        ),
    ),
    warm_up=("connector.outputs.statuses", "connector.devops.client", "connector.devops.trial"),
)
BOARD = Output("board")  # no ledger: the commit's board row, rewritten in place
SPEKTATE = Output(  # no ledger: Spektate's own rows, merged by change id
    "spektate",
    warm_up=(
        "connector.outputs.spektate",
        "connector.outputs.spektate_rows",
        "connector.outputs.spektate_errors",
    ),
)
# Deliveries are recorded in a table of their own (`DeliveryLedger`), keyed by change id.
SUBSCRIBERS = Output("subscribers", warm_up=("connector.outputs.subscribers",))
