"""`POST /api/flux`: verify, validate and durably enqueue one Flux event.

The order matters: size cap, then the signature over the raw bytes, then parsing. A 2xx is given
only after Service Bus acknowledged the message; anything else is a 4xx naming the caller's
problem, or a 503 (Flux retries 5xx) when we could not queue.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate, trace
from pydantic import ValidationError

from connector import telemetry
from connector.core.names import ORIGIN_NAME
from connector.core.tracking import ObjectRef
from connector.queue import envelope
from connector.queue.sender import MessageSender, OutgoingMessage, QueueUnavailableError
from connector.settings import Settings
from connector.sources.flux.events import FluxEvent
from connector.sources.flux.signature import SignatureError, verify
from connector.storage.rows import key_problem, property_problem
from connector.storage.tables import observation_keys
from connector.web import Reply, Request

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
RETRY_AFTER_SECONDS = "5"
NOT_CONFIGURED_RETRY_AFTER = "30"  # a setting must change first: no point in retrying sooner
_CAUSES = {
    400: "malformed",
    401: "signature",
    405: "method",
    413: "too_large",
    422: "invalid",
    503: "not_configured",
}
# Which event fields make up each Table key of `store.observation_keys`, to name them in a 422.
_KEY_FIELDS = {
    "object row": ("metadata.env", "metadata.cluster", "involvedObject"),
    "pointer partition": ("metadata.env", "metadata.cluster"),
    "pointer row": ("involvedObject",),
    "object status row": ("metadata.cluster", "involvedObject"),
    "environment status row": ("metadata.env",),
}
_OBJECT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name")
# Object names as Kubernetes makes them (DNS-1123 labels and subdomains, kinds): `key()` leaves
# these characters unescaped, so the longest such name gives the longest keys.
_PLAIN_PART = re.compile(r"[A-Za-z0-9._-]{0,63}")


def _plain_keys_fit() -> bool:
    """Whether every Table key of an object with plain parts of at most 63 characters fits, asked
    of the store's own key builder once per process: if a key format grows, the shortcut in
    `check_storable` turns itself off instead of admitting events the store cannot hold."""
    longest = "x" * 63
    keys = observation_keys(longest, longest, ObjectRef(longest, longest, longest))
    return all(key_problem(value) is None for value in keys.values())


_PLAIN_KEYS_FIT = _plain_keys_fit()


class RejectedError(Exception):
    def __init__(
        self, status: int, error: str, headers: dict[str, str] | None = None, **details: Any
    ) -> None:
        super().__init__(error)
        self.reply = Reply(status, {"error": error, **details}, headers or {})


class Ingest:
    def __init__(
        self,
        settings: Settings,
        sender: MessageSender,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._sender = sender
        self._clock = clock
        self._keys = settings.hmac_keys  # split once, not per request

    def handle(self, request: Request) -> Reply:
        with telemetry.span("flux.ingest") as span:
            try:
                event, cluster, env = self._admit(request)
            except RejectedError as rejected:
                status = rejected.reply.status
                span.set_attribute("http.response.status_code", status)
                telemetry.events_rejected.add(1, {"cause": _CAUSES.get(status, str(status))})
                logger.warning(
                    "ingest.rejected",
                    extra={"status": status, "error": rejected.reply.body["error"]},
                )
                return rejected.reply
            obj = event.involved_object
            if span.is_recording():
                span.set_attributes(
                    {
                        "connector.cluster": cluster,
                        "connector.env": env,
                        "connector.reason": event.reason,
                        "connector.object": f"{obj.kind}/{obj.namespace}/{obj.name}",
                        "connector.commit": event.commit or "",
                    }
                )
            reply = self._enqueue(request.body, event, cluster, env)
            span.set_attribute("http.response.status_code", reply.status)
            return reply

    def _admit(self, request: Request) -> tuple[FluxEvent, str, str]:
        if request.method.upper() != "POST":
            raise RejectedError(405, "method not allowed: use POST")
        self._check_signature(request)
        event = parse_event(request.body)
        cluster = _origin("cluster", event, request.params, lambda: self._settings.default_cluster)
        env = _origin("env", event, request.params, lambda: self._environment_of(cluster))
        check_storable(event, cluster, env)
        return event, cluster, env

    def _environment_of(self, cluster: str) -> str:
        """The environment when the event names none: the one `ENVIRONMENTS` lists the cluster in,
        else `DEFAULT_ENV`. A cluster listed in several is ambiguous unless `DEFAULT_ENV` is one
        of them: guessing would post statuses and complete gates of the wrong environment."""
        listed = sorted(
            name for name, spec in self._settings.environments.items() if cluster in spec.clusters
        )
        default = self._settings.default_env
        if len(listed) == 1:
            return listed[0]
        if not listed or default in listed:
            return default
        raise RejectedError(
            422,
            f"event has no env and cluster {cluster!r} is in several ENVIRONMENTS "
            f"({', '.join(listed)}): set env in the Flux Alert's eventMetadata or as ?env=",
            fields=[{"field": "metadata.env", "problem": "ambiguous", "candidates": listed}],
        )

    def _check_signature(self, request: Request) -> None:
        keys = self._keys
        if not keys and not self._settings.flux_allow_unsigned:
            raise RejectedError(
                503,
                "webhook not configured: set FLUX_HMAC_KEY "
                "(or FLUX_ALLOW_UNSIGNED=true for local trials only)",
                {"Retry-After": NOT_CONFIGURED_RETRY_AFTER},
            )
        if len(request.body) > MAX_BODY_BYTES:
            raise RejectedError(413, f"body larger than {MAX_BODY_BYTES} bytes")
        header = request.headers.get("x-signature")
        if not keys or (header is None and self._settings.flux_allow_unsigned):
            return
        try:
            verify(header, request.body, keys)
        except SignatureError as exc:
            raise RejectedError(401, f"unauthorized: {exc}") from None

    def _enqueue(self, body: bytes, event: FluxEvent, cluster: str, env: str) -> Reply:
        message = build_message(body, event, cluster, env, self._clock())
        try:
            self._sender.send(message)
        except QueueUnavailableError as exc:
            telemetry.events_rejected.add(1, {"cause": "queue_unavailable"})
            logger.error(  # noqa: TRY400 - the cause is named; SDK tracebacks add noise
                "ingest.queue_unavailable",
                extra={"message_id": message.message_id, "cause": str(exc)},
            )
            return Reply(
                503,
                {"error": "queue unavailable, retry later"},
                {"Retry-After": RETRY_AFTER_SECONDS},
            )
        obj = event.involved_object
        telemetry.events_received.add(
            1, {"cluster": cluster, "kind": obj.kind, "reason": event.reason}
        )
        if logger.isEnabledFor(logging.INFO):  # the fields cost more than a disabled call
            self._log_accepted(message, event, cluster, env)
        return Reply(202, {"id": message.message_id})

    @staticmethod
    def _log_accepted(message: OutgoingMessage, event: FluxEvent, cluster: str, env: str) -> None:
        obj = event.involved_object
        logger.info(
            "ingest.accepted",
            extra={
                "message_id": message.message_id,
                "cluster": cluster,
                "env": env,
                "object": f"{obj.kind}/{obj.namespace}/{obj.name}",
                "reason": event.reason,
            },
        )


def parse_event(body: bytes) -> FluxEvent:
    """Validate a Flux event; 400 for a body that is not a JSON object, 422 naming bad fields."""
    try:
        return FluxEvent.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise RejectedError(400, "body is not valid JSON") from None
        if any(e["type"] == "model_type" and not e["loc"] for e in errors):
            raise RejectedError(400, "body must be a JSON object") from None
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in errors
        ]
        names = ", ".join(f["field"] for f in fields)
        raise RejectedError(422, f"invalid Flux event: {names}", fields=fields) from None


def _origin(
    key: str, event: FluxEvent, params: Mapping[str, str], default: Callable[[], str]
) -> str:
    """Cluster or environment: event metadata, else query parameter, else from the settings."""
    value = event.meta(key) or params.get(key) or default()
    if not value:
        raise RejectedError(
            422,
            f"event has no {key}: set it in the Flux Alert's eventMetadata, "
            f"as the ?{key}= query parameter, or in the connector's default setting",
            fields=[{"field": f"metadata.{key}", "problem": "missing"}],
        )
    if not ORIGIN_NAME.fullmatch(value):
        raise RejectedError(
            422,
            f"invalid {key}: use letters, digits, '.', '_' or '-' (at most 63 characters)",
            fields=[{"field": f"metadata.{key}", "problem": "invalid characters or length"}],
        )
    return value


def check_storable(event: FluxEvent, cluster: str, env: str) -> None:
    """422 for an event the state store could not hold, so that a 202 means it will be processed:
    every Table key its processing builds, and the one unbounded string it stores (the reason)."""
    obj = event.involved_object
    fields: list[dict[str, str]] = []
    if not _plain_object(obj.kind, obj.namespace, obj.name):
        fields.extend(_key_problems(env, cluster, ObjectRef(obj.kind, obj.namespace, obj.name)))
    problem = property_problem(event.reason)
    if problem is not None:
        fields.append({"field": "reason", "problem": problem})
    if fields:
        unique = list(dict.fromkeys(f["field"] for f in fields))
        raise RejectedError(
            422,
            f"event too large for the state store: {', '.join(unique)} (shorten them)",
            fields=fields,
        )


def _plain_object(*parts: str) -> bool:
    """Cluster and env are plain names of at most 63 characters (`ORIGIN_NAME`); when the object's
    parts are too, every key fits and building them (the common case, 25 % of ingest) is skipped."""
    return _PLAIN_KEYS_FIT and all(_PLAIN_PART.fullmatch(part) for part in parts)


def _key_problems(env: str, cluster: str, obj: ObjectRef) -> list[dict[str, str]]:
    fields: list[dict[str, str]] = []
    for role, value in observation_keys(env, cluster, obj).items():
        problem = key_problem(value)
        if problem is not None:
            names = [n for f in _KEY_FIELDS[role] for n in _expand(f)]
            fields.extend({"field": n, "problem": f"{role}: {problem}"} for n in names)
    return fields


def _expand(field: str) -> tuple[str, ...]:
    return _OBJECT_FIELDS if field == "involvedObject" else (field,)


def build_message(
    body: bytes, event: FluxEvent, cluster: str, env: str, received_at: datetime
) -> OutgoingMessage:
    obj = event.involved_object
    properties = {
        "cluster": cluster,
        "env": env,
        "kind": obj.kind,
        "reason": event.reason,
        "severity": event.severity,
    }
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(properties)  # traceparent/tracestate, continued by the processor
    return OutgoingMessage(
        body=envelope.encode(cluster, env, received_at, body),
        message_id=envelope.message_id(cluster, env, body),
        session_id=envelope.session_id(cluster, obj.kind, obj.namespace, obj.name),
        application_properties=properties,
    )
