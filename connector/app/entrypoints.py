"""One function per trigger: adapt the Functions object, make one call into the connector, reply.

`function_app.py` only binds these to triggers. Configuration problems become a 503 naming the
setting (Flux retries, nothing is accepted) instead of a stack trace, and so does a dependency
that cannot be reached (state store, queue, Azure DevOps); every 503 carries Retry-After.
Modules are imported inside the functions that need them, so indexing the app and `/api/health`
stay cheap on a cold start.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import azure.functions as func

from connector import __version__
from connector.web import Reply, Request, to_request, to_response

if TYPE_CHECKING:
    from connector.app.bootstrap import Container

logger = logging.getLogger(__name__)


class Handler(Protocol):
    def handle(self, request: Request) -> Reply: ...


def flux(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, lambda c: c.ingest)


def argocd(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, lambda c: c.argocd_ingest)


def gates(req: func.HttpRequest) -> func.HttpResponse:
    refused = _pipeline_refusal(req)
    if refused is not None:
        return refused
    return _serve(req, lambda c: c.registration)


def devops_events(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, lambda c: c.service_hooks)


def deployments(req: func.HttpRequest) -> func.HttpResponse:
    refused = _pipeline_refusal(req)
    if refused is not None:
        return refused
    return _serve(req, lambda c: c.deployments_view)


def doctor(req: func.HttpRequest) -> func.HttpResponse:
    from connector.app import bootstrap, doctor

    return to_response(doctor.report(bootstrap.container()))  # settings errors: a failed check


def sweep(timer: func.TimerRequest) -> None:
    from connector.app import bootstrap

    swept = bootstrap.container().gatekeeper.sweep()
    logger.info("sweep.done", extra={"gates": swept, "past_due": timer.past_due})


def cleanup(timer: func.TimerRequest) -> None:
    from connector.app import bootstrap
    from connector.storage.retention import Cleanup

    container = bootstrap.container()
    days = container.settings.state_retention_days
    Cleanup(container.store, retention_days=days).run()  # logs `cleanup.done` with the counts


def pipeline_auth_level(environ: Mapping[str, str] | None = None) -> func.AuthLevel:
    """Host auth level of the pipeline routes, read when the host indexes the app.

    Keyless pipelines (`PIPELINE_CLIENT_ID` set) present an Entra token and no function key, so
    the host must not ask for one (Learn, HTTP trigger, "Secure an HTTP endpoint in production":
    with App Service Authentication, set the level to anonymous); `_pipeline_refusal` and the
    platform then admit only the service connection. Unset: function keys, as before."""
    source = os.environ if environ is None else environ
    keyless = source.get("PIPELINE_CLIENT_ID", "").strip()
    return func.AuthLevel.ANONYMOUS if keyless else func.AuthLevel.FUNCTION


def _pipeline_refusal(req: func.HttpRequest) -> func.HttpResponse | None:
    """A 401 when keyless pipelines are on and the caller is not the service connection."""
    from connector.app import bootstrap, easyauth
    from connector.settings import SettingsError

    try:
        allowed = bootstrap.container().settings.pipeline_client_id
    except SettingsError:
        return None  # the handler answers 503 naming the setting
    if not allowed:
        return None  # function keys: the host checked the key
    try:
        easyauth.require_platform(os.environ)
        easyauth.check(req.headers, [allowed])
    except easyauth.PrincipalError as exc:
        logger.warning("http.caller_refused", extra={"error": str(exc)})
        return to_response(Reply(401, {"error": str(exc)}, {"WWW-Authenticate": "Bearer"}))
    return None


def _serve(req: func.HttpRequest, build: Callable[[Container], Handler]) -> func.HttpResponse:
    from connector.app import bootstrap
    from connector.settings import SettingsError

    try:
        handler = build(bootstrap.container())
    except SettingsError as exc:
        logger.error("config.invalid", extra={"error": str(exc)})  # noqa: TRY400
        return to_response(Reply(503, {"error": str(exc)}, {"Retry-After": "30"}))
    from connector import retries

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


def _unavailable(exc: Exception) -> str | None:
    """The dependency a handler's exception says is unreachable or overloaded, else None.

    Only failures a later retry can fix: a connection failure, a timeout, throttling or a server
    error, a credential that cannot get a token, too many concurrent writers. A storage 4xx is
    our own bug and stays a 500, not an invitation to retry forever."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

    from connector.devops.client import TransientAzureDevOpsError
    from connector.queue.sender import QueueUnavailableError
    from connector.storage.rows import ConcurrencyError

    if isinstance(exc, QueueUnavailableError):
        return "queue"
    if isinstance(exc, TransientAzureDevOpsError):
        return "Azure DevOps"
    if isinstance(exc, ConcurrencyError | ClientAuthenticationError):
        return "state store"
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        retryable = exc.status_code >= 500 or exc.status_code in (408, 429)
        return "state store" if retryable else None
    if isinstance(exc, AzureError):  # ServiceRequestError, ServiceResponseError: no answer
        return "state store"
    return None


def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"status": "ok", "version": __version__}), mimetype="application/json"
    )


def process(msg: func.ServiceBusMessage) -> None:
    """One queued message: a source's event (recorded, outputs told) or a gate check. A
    failure raises, so Service Bus redelivers (and, after `maxDeliveryCount`, dead-letters)."""
    from connector import retries, sources, telemetry
    from connector.app import bootstrap
    from connector.queue.envelope import GateCheck

    container = bootstrap.container()
    properties = msg.application_properties or {}
    with (
        telemetry.continued(properties, "queue.process", message_id=msg.message_id),
        retries.wait_budget(),
    ):
        message = sources.read(msg.get_body(), msg.message_id)
        if isinstance(message, GateCheck):
            container.gatekeeper.check(message.env, message.gate)
        else:
            container.processor.process(message)
