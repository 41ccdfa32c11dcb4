"""One cold start, run in a fresh process by bench/ingest.py: import the app, wait like the
platform does between indexing and the first request, then time the first and second `/api/flux`
and the first and second queue message. Prints one JSON object.

`--warm-up` imports `function_app` (which starts its warm-up thread; we join it, as the worker
indexes the app before it takes requests); without it the entry points are imported directly,
which is `function_app` minus the warm-up. The queue message is processed on Azurite (the
connection string in `STATE_STORAGE`) with Azure DevOps in trial mode: storage is real, no
network leaves the machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    warm = "--warm-up" in sys.argv
    start = time.perf_counter()
    if warm:
        import function_app

        imported = time.perf_counter()
        function_app.warm_up.join()
        flux, process = function_app.flux, function_app.process
    else:
        from connector.app.functions import entrypoints

        imported = time.perf_counter()
        flux, process = entrypoints.webhook("flux"), entrypoints.process
    ready = time.perf_counter()

    import azure.functions as func
    from azure.functions.servicebus import ServiceBusMessage

    from bench.events import KEY, BuildingSender, event
    from connector.sources.flux.signature import sign

    body = event(1024)
    req = func.HttpRequest(
        method="POST",
        url="/api/flux",
        headers={"Content-Type": "application/json", "X-Signature": sign(KEY, body)},
        body=body,
    )
    sender = BuildingSender(keep=True)
    _install(sender)
    flux_ms = [_ms(lambda: flux(req)) for _ in range(2)]
    queued = sender.kept[0]
    process_ms = []
    for n in range(2):
        msg = ServiceBusMessage(
            body=queued.body,
            message_id=f"{queued.message_id[:60]}-{n}",
            session_id=queued.session_id,
            delivery_count=1,
            application_properties=dict(queued.application_properties),
            user_properties={},
        )
        process_ms.append(_ms(lambda m=msg: process(m)))
    print(
        json.dumps(
            {
                "import_ms": (imported - start) * 1000,
                "warm_up_ms": (ready - imported) * 1000,
                "flux_ms": flux_ms,
                "process_ms": process_ms,
            }
        )
    )


def _install(sender: object) -> None:
    from bench.events import KEY
    from connector.app.root import bootstrap
    from connector.app.root.bootstrap import Container
    from connector.settings import Settings

    settings = Settings.from_env(
        {
            "FLUX_HMAC_KEY": KEY.decode(),
            "DEFAULT_CLUSTER": "c",
            "DEFAULT_ENV": "e",
            "STATE_STORAGE": os.environ["STATE_STORAGE"],
            "STATE_TABLE_PREFIX": os.environ.get("STATE_TABLE_PREFIX", "cold"),
            "AZDO_ORG_URL": "https://dev.azure.com/bench/",
            "AZDO_PROJECT": "bench",
            "AZDO_GITOPS_REPO": "manifests",
            "AZDO_DRY_RUN": "true",
        }
    )
    bootstrap.override(Container(settings, sender=sender))


def _ms(call: object) -> float:
    start = time.perf_counter()
    call()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    main()
