"""`POST /api/flux`: Flux's admission (verify, validate) and message, in the ingest template.

The order matters: size cap, then the signature over the raw bytes, then parsing. A 2xx is given
only after Service Bus acknowledged the message (`connector.sources.ingest`); anything else is a
4xx naming the caller's problem, or a 503 (Flux retries 5xx) when we could not queue. The shared
rules live in `connector.sources.http`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime

from opentelemetry import propagate, trace

from connector.queue import envelope
from connector.queue.sender import OutgoingMessage
from connector.settings import Settings
from connector.sources import http, origins
from connector.sources.flux.events import FluxEvent
from connector.sources.flux.signature import SignatureError, Verified, identify
from connector.sources.http import NOT_CONFIGURED_RETRY_AFTER, KeyCheck, RejectedError
from connector.sources.plugin import Admitted
from connector.storage.rows import property_problem
from connector.web import Request

logger = logging.getLogger(__name__)

_ENV_HINT = "set env in the Flux Alert's eventMetadata or as ?env="
# The cluster an event's metadata names, found in the raw bytes before they are verified: only
# the order in which keys are tried (its key first), never the decision. Go's encoder writes
# `"cluster":"<name>"` with no spaces; a quote inside a JSON string is escaped, so no string
# value can fake this key.
_CLAIMED_CLUSTER = re.compile(rb'"cluster":"([A-Za-z0-9._-]{1,63})"')


class FluxAdmission:
    """Flux's part of the ingest template (`connector.sources.ingest`)."""

    def __init__(self, settings: Settings, keys: KeyCheck) -> None:
        self._settings = settings
        self._keys = keys  # the Table key check, with Flux's fields (`SOURCE.key_fields`)
        self._keyring = keyring(settings)  # parsed once, not per request
        for warning in origins.credential_warnings(settings):
            if not warning.startswith("ARGOCD"):
                logger.warning("ingest.credential_warning", extra={"warning": warning})

    def admit(self, request: Request) -> Admitted[FluxEvent]:
        http.require_post(request.method)
        signature, signer = self._check_signature(request)
        event = parse_event(request.body)
        cluster, env = self._origin(event, request.params, signer)
        check_storable(self._keys, event, cluster, env)
        obj = event.involved_object
        return Admitted(
            event, cluster, env, obj, event.reason, event.commit, request.body, signature
        )

    def message(self, admitted: Admitted[FluxEvent], received_at: datetime) -> OutgoingMessage:
        return build_message(
            admitted.queued,
            admitted.event,
            admitted.cluster,
            admitted.env,
            received_at,
            signature=admitted.signature,
        )

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


def check_storable(keys: KeyCheck, event: FluxEvent, cluster: str, env: str) -> None:
    """422 for an event the state store could not hold, so that a 202 means it will be processed:
    every Table key its processing builds, and the one unbounded string it stores (the reason)."""
    fields = keys.problems(env, cluster, event.involved_object)
    problem = property_problem(event.reason)
    if problem is not None:
        fields.append({"field": "reason", "problem": problem})
    http.too_large(fields)


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
