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
import itertools
import logging
import threading
import time
from collections.abc import Iterator

logger = logging.getLogger(__name__)

DELAY_SECONDS = 0.05

# The app's own modules; the plug-ins' (each source's and output's `warm_up`, listed by
# `connector.app.root.registry`) come between them, in the order the first request and the
# first message need them.
FIRST = (
    "connector.app.functions.serving",
    "connector.app.root.bootstrap",
    "connector.sources.ingest",
    "connector.queue.sender",
    "azure.servicebus",
    "connector.storage.door_rows",  # the ingest door, on the first /api/flux
)
MODULES = (
    *FIRST,
    "connector.sources",
    "connector.core.tally",
    "connector.core.processing",
    "connector.storage.tables",
    "azure.data.tables",
    "connector.storage.point_read",
)


def modules() -> Iterator[str]:
    """Every module to import, each once: the ingest path and the sources' first, then the
    processor's, then the outputs' (whose descriptions are read only when reached)."""
    from connector.app.root import registry

    seen: set[str] = set()
    for name in itertools.chain(
        FIRST, registry.source_modules(), MODULES, registry.output_modules()
    ):
        if name not in seen:
            seen.add(name)
            yield name


def _import_all() -> None:
    time.sleep(DELAY_SECONDS)  # the GIL to the worker's indexing first (see above)
    try:
        for name in modules():  # reaching the outputs' names imports their descriptions
            importlib.import_module(name)
    except Exception:  # a missing optional module shows again, with context, when used
        logger.debug("warm_up.failed", exc_info=True)


def start() -> threading.Thread:
    thread = threading.Thread(target=_import_all, name="connector-warm-up", daemon=True)
    thread.start()
    return thread
