"""Importing, in the background, the modules the first invocations need.

Entry points import their modules lazily, to keep indexing the app cheap. The worker indexes the
app at start and only then takes requests, so a daemon thread started at the end of
`function_app` import takes the imports off the first `/api/flux` and the first queue message
(`bench/cold_start.py` measures both; docs/benchmarks.md). Imports only: no settings are read,
nothing is connected.

The thread first sleeps `DELAY_SECONDS`, so that indexing has the GIL to itself. Indexing is on
the cold start's critical path (the host hands over no request before it has the functions) and
is a handshake: the worker's main thread waits on gRPC again and again, and each time it wants
the GIL back from a thread busy importing, it can wait a whole switch interval. Imports started
at once make indexing slower than no warm-up at all; started after the delay they do not (the
simulation and its figures: docs/benchmarks.md). The Python side of indexing is short, so the
delay covers it, and a request handed over before the imports end imports what it still needs
itself (the import lock shares the work). It also keeps the thread out of the
`import function_app` figure of `bench/ingest.py`.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

logger = logging.getLogger(__name__)

DELAY_SECONDS = 0.05

MODULES = (
    "connector.app.functions.serving",
    "connector.app.root.bootstrap",
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
    "connector.storage.door_rows",  # the ingest door, on the first /api/flux
    "connector.storage.point_read",
    "connector.gates.keeper",
    "connector.outputs.statuses",
    "connector.devops.client",
    "connector.devops.trial",
    "connector.outputs.spektate",
    "connector.outputs.spektate_rows",
    "connector.outputs.spektate_errors",
    "connector.outputs.subscribers",
)


def _import_all() -> None:
    time.sleep(DELAY_SECONDS)  # the GIL to the worker's indexing first (see above)
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
