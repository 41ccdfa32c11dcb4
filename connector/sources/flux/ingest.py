"""`POST /api/flux`: verify, validate and durably enqueue one Flux event.

The order matters: size cap, then the signature over the raw bytes, then parsing. A 2xx is given
only after Service Bus acknowledged the message; anything else is a 4xx naming the caller's
problem, or a 503 (Flux retries 5xx) when we could not queue. The shared rules live in
`connector.sources.http`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from opentelemetry import propagate, trace

from connector import telemetry
from connector.core.door import Door
from connector.queue import envelope
from connector.queue.sender import MessageSender, OutgoingMessage
from connector.settings import Settings
from connector.sources import http, origins
from connector.sources.arrivals import flux_arrival
from connector.sources.flux.events import FluxEvent
from connector.sources.flux.signature import SignatureError, Verified, identify
from connector.sources.http import NOT_CONFIGURED_RETRY_AFTER, RejectedError
from connector.storage.rows import property_problem
from connector.web import Reply, Request

logger = logging.getLogger(__name__)

# Which event fields make up each Table key of `store.observation_keys`, to name them in a 422.
_KEY_FIELDS = {
    "object row": ("metadata.env", "metadata.cluster", "involvedObject"),
    "pointer partition": ("metadata.env", "metadata.cluster"),
    "pointer row": ("involvedObject",),
    "object status row": ("metadata.cluster", "involvedObject"),
    "environment status row": ("metadata.env",),
}
_OBJECT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name")
_ENV_HINT = "set env in the Flux Alert's eventMetadata or as ?env="
# The cluster an event's metadata names, found in the raw bytes before they are verified: only
# the order in which keys are tried (its key first), never the decision. Go's encoder writes
# `"cluster":"<name>"` with no spaces; a quote inside a JSON string is escaped, so no string
# value can fake this key.
_CLAIMED_CLUSTER = re.compile(rb'"cluster":"([A-Za-z0-9._-]{1,63})"')


class Ingest:
    def __init__(
        self,
        settings: Settings,
        sender: MessageSender,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        door: Door | None = None,
    ) -> None:
        self._door = door
        self._settings = settings
        self._sender = sender
        self._clock = clock
        self._keyring = keyring(settings)  # parsed once, not per request
        for warning in origins.credential_warnings(settings):
            if not warning.startswith("ARGOCD"):
                logger.warning("ingest.credential_warning", extra={"warning": warning})

    def handle(self, request: Request) -> Reply:
        with telemetry.span("flux.ingest") as span:
            try:
                event, cluster, env, signature = self._admit(request)
            except RejectedError as rejected:
                span.set_attribute("http.response.status_code", rejected.reply.status)
                return http.refused(rejected)
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
            reply = self._enqueue(request.body, signature, event, cluster, env)
            span.set_attribute("http.response.status_code", reply.status)
            return reply

    def _admit(self, request: Request) -> tuple[FluxEvent, str, str, Verified | None]:
        http.require_post(request.method)
        signature, signer = self._check_signature(request)
        event = parse_event(request.body)
        cluster, env = self._origin(event, request.params, signer)
        check_storable(event, cluster, env)
        return event, cluster, env, signature

    def _check_signature(self, request: Request) -> tuple[Verified | None, str]:
        """The verified signature and the cluster whose key made it ("" for the shared
        FLUX_HMAC_KEY); None for an unsigned event where those are allowed. With any key
        configured an unsigned event is a 401, whatever FLUX_ALLOW_UNSIGNED says: a key that
        can be bypassed by leaving the signature out protects nothing."""
        keyring = self._keyring
        if not keyring and not self._settings.flux_allow_unsigned:
            raise RejectedError(
                503,
                "webhook not configured: set FLUX_CLUSTER_KEYS "
                "(or FLUX_ALLOW_UNSIGNED=true for local trials only)",
                {"Retry-After": NOT_CONFIGURED_RETRY_AFTER},
            )
        http.require_size(request.body)
        if not keyring:
            return None, ""
        header = request.headers.get("x-signature")
        hint = request.params.get("cluster") or _claimed_cluster(request.body)
        try:
            return identify(header, request.body, keyring, hint)
        except SignatureError as exc:
            raise RejectedError(401, f"unauthorized: {exc}") from None

    def _origin(self, event: FluxEvent, params: Mapping[str, str], signer: str) -> tuple[str, str]:
        """Cluster and environment: a cluster key decides the cluster; the signed metadata, else
        the query string (they must agree), else the settings; `origins` says who may say what."""
        settings = self._settings
        named = origins.agreed("cluster", event.meta("cluster"), params.get("cluster"))
        if signer:
            origins.bound_cluster(named, {signer}, "the key that signed this event")
        cluster = _name("cluster", signer or named or settings.default_cluster)
        signed_env = event.meta("env")
        query_env = params.get("env")
        if signer and query_env and not signed_env and not origins.listed(settings, cluster):
            raise RejectedError(
                403,
                f"cluster {cluster!r} is not in ENVIRONMENTS: its env comes only from the signed "
                "event (the Alert's eventMetadata), not from ?env=",
                fields=[{"field": "?env", "problem": "not signed"}],
            )
        env = origins.environment(
            settings,
            cluster,
            origins.agreed("env", signed_env, query_env),
            "metadata.env",
            _ENV_HINT,
        )
        return cluster, _name("env", env)

    def _enqueue(
        self, body: bytes, signature: Verified | None, event: FluxEvent, cluster: str, env: str
    ) -> Reply:
        message = build_message(body, event, cluster, env, self._clock(), signature=signature)
        failed = http.enqueue(
            self._sender, message, self._door, lambda: flux_arrival(event, cluster, env)
        )
        if failed is not None:
            return failed
        obj = event.involved_object
        telemetry.events_received.add(
            1, {"cluster": cluster, "kind": obj.kind, "reason": event.reason}
        )
        if logger.isEnabledFor(logging.INFO):  # the fields cost more than a disabled call
            self._log_accepted(message, event, cluster, env)
        return Reply(202, f'{{"id":"{message.message_id}"}}')  # a hex id: JSON as it is

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
    event: FluxEvent = http.parse(FluxEvent, body, "Flux event")
    return event


def _claimed_cluster(body: bytes) -> str | None:
    found = _CLAIMED_CLUSTER.search(body)
    return found.group(1).decode() if found else None


def keyring(settings: Settings) -> tuple[tuple[str, bytes], ...]:
    """(owner, key) for every accepted key: each cluster's own (FLUX_CLUSTER_KEYS), then the
    shared FLUX_HMAC_KEY, whose owner "" binds it to no cluster."""
    own = tuple((cluster, key) for cluster, keys in settings.cluster_keys.items() for key in keys)
    return own + tuple(("", key) for key in settings.hmac_keys)


# The field a 422 names for each origin, and where the caller can set it (built once).
_ORIGIN_FIELDS = {
    key: (
        f"metadata.{key}",
        "set it in the Flux Alert's eventMetadata, "
        f"as the ?{key}= query parameter, or in the connector's default setting",
    )
    for key in ("cluster", "env")
}


def _name(key: str, value: str | None) -> str:
    field, hint = _ORIGIN_FIELDS[key]
    return http.origin_name(key, value, field, hint)


def check_storable(event: FluxEvent, cluster: str, env: str) -> None:
    """422 for an event the state store could not hold, so that a 202 means it will be processed:
    every Table key its processing builds, and the one unbounded string it stores (the reason)."""
    fields = http.key_problems(env, cluster, event.involved_object, _fields)
    problem = property_problem(event.reason)
    if problem is not None:
        fields.append({"field": "reason", "problem": problem})
    http.too_large(fields)


def _fields(role: str) -> list[str]:
    return [
        n for f in _KEY_FIELDS[role] for n in (_OBJECT_FIELDS if f == "involvedObject" else (f,))
    ]


def build_message(
    body: bytes,
    event: FluxEvent,
    cluster: str,
    env: str,
    received_at: datetime,
    *,
    signature: Verified | None,
) -> OutgoingMessage:
    """The queued message. Its id comes from the verified MAC when there is one (the body is
    not hashed twice), else from the body (`envelope.signed_message_id`, `message_id`)."""
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
        message_id=(
            envelope.message_id(cluster, env, body)
            if signature is None
            else envelope.signed_message_id(cluster, env, signature.algorithm, signature.digest)
        ),
        session_id=envelope.session_id(cluster, obj.kind, obj.namespace, obj.name),
        application_properties=properties,
    )
