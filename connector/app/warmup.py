"""Importing, in the background, the modules the first invocations need.

Entry points import their modules lazily, to keep indexing the app cheap. The worker indexes the
app at start and only then takes requests, so a daemon thread started at the end of
`function_app` import takes ~0.3 s of imports off the first `/api/flux` and the first queue
message (`bench/cold_start.py` measures both). Imports only: no settings are read, nothing is
connected.
"""

from __future__ import annotations

import importlib
import logging
import threading

logger = logging.getLogger(__name__)

MODULES = (
    "connector.app.serving",
    "connector.app.bootstrap",
    "connector.sources.flux.ingest",
    "connector.queue.sender",
    "azure.servicebus",
    "connector.sources",
    "connector.sources.flux.translate",
    "connector.sources.argocd.ingest",
    "connector.sources.argocd.translate",
    "connector.core.tally",
    "connector.core.processing",
    "connector.storage.tables",
    "azure.data.tables",
    "connector.gates.keeper",
    "connector.outputs.statuses",
    "connector.devops.client",
    "connector.devops.dryrun",
    "connector.outputs.spektate",
    "connector.outputs.spektate_rows",
    "connector.outputs.spektate_errors",
    "connector.outputs.subscribers",
)


def _import_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module shows again, with context, when used
            logger.debug("warm_up.failed", exc_info=True)
            return


def start() -> threading.Thread:
    thread = threading.Thread(target=_import_all, name="connector-warm-up", daemon=True)
    thread.start()
    return thread
