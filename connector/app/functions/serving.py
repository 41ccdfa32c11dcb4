"""Serving one HTTP request: build the handler, adapt the Functions request, answer.

Configuration problems become a 503 naming the setting (Flux retries, nothing is accepted)
instead of a stack trace, and so does a dependency that cannot be reached (state store, queue,
Azure DevOps); every 503 carries Retry-After. Imported by the first request (or the warm-up
thread), not when the host indexes the app: `connector.app.functions.entrypoints` stays small.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import azure.functions as func

from connector import retries
from connector.app.root import bootstrap
from connector.settings import SettingsError
from connector.web import Reply, Request, to_request, to_response

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container

logger = logging.getLogger(__name__)


class Handler(Protocol):
    def handle(self, request: Request) -> Reply: ...


def serve(
    req: func.HttpRequest,
    build: Callable[[Container], Handler],
    *,
    pipeline: bool = False,
    people: bool = False,
) -> func.HttpResponse:
    """The handler's reply; `pipeline`: a route only the pipelines' service connection may call
    when keyless pipelines are on; `people`: also people signed in to `UI_CLIENT_ID`."""
    if pipeline:
        refused = _pipeline_refusal(req, people=people)
        if refused is not None:
            return refused
    try:
        handler = build(bootstrap.container())
    except SettingsError as exc:
        logger.error("config.invalid", extra={"error": str(exc)})  # noqa: TRY400
        return to_response(Reply(503, {"error": str(exc)}, {"Retry-After": "30"}))
    try:
        # A request must not hang on Retry-After: past the budget, 503 and the caller retries.
        with retries.wait_budget():
            reply = handler.handle(to_request(req))
    except Exception as exc:
        dependency = _unavailable(exc)
        if dependency is None:
            raise
        logger.error(  # noqa: TRY400 - the cause is named; SDK tracebacks add noise
            "http.dependency_unavailable",
            extra={"dependency": dependency, "cause": type(exc).__name__},
        )
        reply = Reply(
            503, {"error": f"{dependency} unavailable, retry later"}, {"Retry-After": "5"}
        )
    return to_response(reply)


def _pipeline_refusal(req: func.HttpRequest, *, people: bool) -> func.HttpResponse | None:
    """A 401 when keyless pipelines are on and the caller is not the service connection (nor,
    on `people` routes, a person signed in to the pages' app registration)."""
    from connector.app.functions import easyauth

    try:
        settings = bootstrap.container().settings
    except SettingsError:
        return None  # the handler answers 503 naming the setting
    allowed, person = settings.pipeline_client_id, settings.ui_client_id if people else ""
    if not allowed:
        return None  # function keys: the host checked the key
    try:
        easyauth.require_platform(os.environ)
        try:
            easyauth.check(req.headers, [allowed])
        except easyauth.PrincipalError:
            if not person:
                raise
            easyauth.check_person(req.headers, person)
    except easyauth.PrincipalError as exc:
        logger.warning("http.caller_refused", extra={"error": str(exc)})
        return to_response(Reply(401, {"error": str(exc)}, {"WWW-Authenticate": "Bearer"}))
    return None


def _unavailable(exc: Exception) -> str | None:
    """The dependency a handler's exception says is unreachable or overloaded, else None.

    Only failures a later retry can fix (`connector.errors.is_retryable`): a connection failure,
    a timeout, throttling or a server error, a credential that cannot get a token, too many
    concurrent writers. A storage 4xx is our own bug and stays a 500, not an invitation to retry
    forever."""
    from connector import errors
    from connector.devops.types import AzureDevOpsError
    from connector.queue.sender import QueueUnavailableError

    if not errors.is_retryable(exc):
        return None
    if isinstance(exc, QueueUnavailableError):
        return "queue"
    if isinstance(exc, AzureDevOpsError):
        return "Azure DevOps"
    return "state store"  # the Table SDK's errors, too many concurrent writers
