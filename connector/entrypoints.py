"""One function per trigger: adapt the Functions object, make one call into the connector, reply.

`function_app.py` only binds these to triggers. Configuration problems become a 503 naming the
setting (Flux retries, nothing is accepted) instead of a stack trace.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from connector import __version__, bootstrap
from connector.ingest import Ingest, Reply
from connector.settings import SettingsError
from connector.web import to_request, to_response

logger = logging.getLogger(__name__)


def flux(req: func.HttpRequest) -> func.HttpResponse:
    try:
        c = bootstrap.container()
        ingest = Ingest(c.settings, c.sender)
    except SettingsError as exc:
        logger.exception("config.invalid", extra={"error": str(exc)})
        return to_response(Reply(503, {"error": str(exc)}, {"Retry-After": "30"}))
    return to_response(ingest.handle(to_request(req)))


def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"status": "ok", "version": __version__}), mimetype="application/json"
    )


def process(msg: func.ServiceBusMessage) -> None:
    from connector.processing import handle_message

    handle_message(msg, bootstrap.container())
