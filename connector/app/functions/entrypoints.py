"""One function per trigger: adapt the Functions object, make one call into the connector, reply.

`function_app.py` only binds these to triggers; HTTP requests are served by
`serving` (503s naming a setting or an unreachable dependency). This module is
read when the host indexes the app, so it stays small and imports what a function needs inside
that function: indexing and `/api/health` stay cheap on a cold start.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import azure.functions as func

from connector import __version__

if TYPE_CHECKING:
    from connector.app.functions.serving import Handler
    from connector.app.root.bootstrap import Container

logger = logging.getLogger(__name__)


def webhook(source: str) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """The entry point of a registered source's webhook (`connector.app.root.registry`)."""

    def serve(req: func.HttpRequest) -> func.HttpResponse:
        return _serve(req, lambda c: c.webhook(source))

    serve.__name__ = serve.__qualname__ = source
    return serve


def gates(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, lambda c: c.registration, pipeline=True)


def devops_events(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, lambda c: c.service_hooks)


def deployments(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, lambda c: c.deployments_view, pipeline=True)


def ui(req: func.HttpRequest) -> func.HttpResponse:
    """The on-call pages; keyless: the service connection or a person signed in (UI_CLIENT_ID)."""
    return _serve(req, _ui_pages, pipeline=True, people=True)


def _ui_pages(c: Container) -> Handler:
    from connector.app.views.ui import UiPages

    return UiPages(lambda: c.store, c.settings)


def doctor(req: func.HttpRequest) -> func.HttpResponse:
    from connector import web
    from connector.app.doctor import report as doctor
    from connector.app.root import bootstrap

    return web.to_response(doctor.report(bootstrap.container()))  # settings errors: a failed check


def sweep(timer: func.TimerRequest) -> None:
    from connector.app.root import bootstrap, refused

    container = bootstrap.container()
    swept = container.gatekeeper.sweep()
    reposted = refused.repost(container)  # statuses refused before access was granted
    extra = {"gates": swept, "reposted": reposted, "past_due": timer.past_due}
    logger.info("sweep.done", extra=extra)


def cleanup(timer: func.TimerRequest) -> None:
    from connector.app.root import bootstrap
    from connector.storage.retention import Cleanup

    container = bootstrap.container()
    days = container.settings.state_retention_days
    Cleanup(container.store, retention_days=days).run()  # logs `cleanup.done` with the counts


def pipeline_auth_level(environ: Mapping[str, str] | None = None) -> func.AuthLevel:
    """Host auth level of the pipeline routes, read when the host indexes the app.

    Keyless pipelines (`PIPELINE_CLIENT_ID` set) present an Entra token and no function key, so
    the host must not ask for one (Learn, HTTP trigger, "Secure an HTTP endpoint in production":
    with App Service Authentication, set the level to anonymous); `serving` and
    the platform then admit only the service connection. Unset: function keys, as before."""
    source = os.environ if environ is None else environ
    keyless = source.get("PIPELINE_CLIENT_ID", "").strip()
    return func.AuthLevel.ANONYMOUS if keyless else func.AuthLevel.FUNCTION


def _serve(
    req: func.HttpRequest,
    build: Callable[[Container], Handler],
    *,
    pipeline: bool = False,
    people: bool = False,
) -> func.HttpResponse:
    from connector.app.functions import serving  # per request: the package form is the cheap import

    return serving.serve(req, build, pipeline=pipeline, people=people)


def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"status": "ok", "version": __version__}), mimetype="application/json"
    )


def process(msg: func.ServiceBusMessage) -> None:
    """One queued message: a source's event (recorded, outputs told) or a gate check. A
    failure raises, so Service Bus redelivers (and, after `maxDeliveryCount`, dead-letters)."""
    from connector import retries, telemetry
    from connector.app.root import bootstrap, registry
    from connector.queue.envelope import GateCheck

    container = bootstrap.container()
    properties = msg.application_properties or {}
    with (
        telemetry.continued(properties, "queue.process", message_id=msg.message_id),
        retries.wait_budget(),
    ):
        message = registry.read(msg.get_body(), msg.message_id)
        if isinstance(message, GateCheck):
            container.gatekeeper.check(message.env, message.gate)
        else:
            container.processor.process(message)
