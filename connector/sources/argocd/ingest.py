"""`POST /api/argocd`: Argo CD's admission (authenticate, validate) and message, in the ingest
template (`connector.sources.ingest`), which enqueues it durably.

The order: method, configuration, size cap, the shared secret, then parsing. The body is
translated here once with the processor's own function, so a 202 means the queued message will
be read the same way; cluster, environment and object are checked against the Table key limits
as for Flux (`connector.sources.http`). A 2xx only once Service Bus acknowledged the message;
Argo CD's webhook service retries 5xx (services/webhook.md, "Retry Behavior").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opentelemetry import propagate, trace
from pydantic import TypeAdapter, ValidationError

from connector.core.names import parse_object_reference
from connector.core.tracking import ObjectRef
from connector.queue import envelope
from connector.queue.sender import OutgoingMessage
from connector.settings import Settings
from connector.sources import http, origins
from connector.sources.argocd.application import Application, IncumbentBody, Queued, Wrapped
from connector.sources.argocd.auth import CHALLENGE, SHARED, owner
from connector.sources.argocd.translate import KIND, Report, report_of
from connector.sources.http import NOT_CONFIGURED_RETRY_AFTER, KeyCheck, RejectedError
from connector.sources.plugin import Admitted
from connector.storage.rows import property_problem
from connector.web import Request

logger = logging.getLogger(__name__)

SOURCE = "argocd"
CLUSTER_LABEL = "gitops-connector/cluster"
ENV_LABEL = "gitops-connector/env"
# Argo CD's default install namespace: the Applications of an incumbent body without ?namespace=.
DEFAULT_NAMESPACE = "argocd"
_INCUMBENT_FIELDS = frozenset({"commitid", "phase", "sync_status", "health"})
_JSON_OBJECT = TypeAdapter(dict[str, Any])
_HINT = "set ?{key}= on the webhook URL, the Application label gitops-connector/{key}, or {default}"


class ArgoAdmission:
    """Argo CD's part of the ingest template (`connector.sources.ingest`)."""

    def __init__(self, settings: Settings, keys: KeyCheck) -> None:
        self._settings = settings
        self._keys = keys  # the Table key check, with Argo CD's fields (`SOURCE.key_fields`)
        self._instances = settings.argocd_instances  # parsed once, not per request
        self._secrets = tuple(
            (name, secret) for name, i in self._instances.items() for secret in i.secrets
        ) + tuple((SHARED, secret) for secret in settings.argocd_secrets)
        for warning in origins.credential_warnings(settings):
            if warning.startswith("ARGOCD"):
                logger.warning("ingest.credential_warning", extra={"warning": warning})

    def admit(self, request: Request) -> Admitted[Report]:
        http.require_post(request.method)
        if not self._secrets:
            raise RejectedError(
                503,
                "webhook not configured: set ARGOCD_INSTANCES (one secret per Argo CD instance; "
                "or the shared ARGOCD_WEBHOOK_SECRET)",
                {"Retry-After": NOT_CONFIGURED_RETRY_AFTER},
            )
        http.require_size(request.body)
        instance = owner(request.headers.get("authorization"), self._secrets)
        if instance is None:
            raise RejectedError(
                401,
                "unauthorized: send the Argo CD instance's secret (ARGOCD_INSTANCES, or "
                "ARGOCD_WEBHOOK_SECRET) as 'Authorization: Bearer <secret>' or as the basic-auth "
                "password",
                {"WWW-Authenticate": CHALLENGE},
            )
        data = _json_object(request.body)
        queued = self._queued(data, request.body, request.params)
        report = _report(queued)
        cluster, env = self._origin(instance, report.metadata, data, request.params)
        obj = _check_storable(self._keys, report, cluster, env)
        body = _queued_bytes(queued, request.body)
        return Admitted(report, cluster, env, obj, report.reason, report.commit, body)

    def message(self, admitted: Admitted[Report], received_at: datetime) -> OutgoingMessage:
        """The queued message; a 413 (`RejectedError`) when the queue could not hold it."""
        report, cluster, env = admitted.event, admitted.cluster, admitted.env
        message = build_message(admitted.queued, report, cluster, env, received_at)
        too_large = queue_size_problem(message)
        if too_large is not None:  # never 202, and never a 503 Argo CD would retry forever
            raise RejectedError(413, too_large, limit=QUEUE_MESSAGE_LIMIT)
        return message

    def _origin(
        self,
        instance: str,
        labels: Mapping[str, str],
        data: dict[str, Any],
        params: Mapping[str, str],
    ) -> tuple[str, str]:
        """Cluster and environment: ?cluster=, the label, the destination, else the default; an
        instance's secret speaks only for the clusters bound to it (403 naming the mismatch),
        and a cluster `ENVIRONMENTS` lists only for its environment (`origins`)."""
        settings = self._settings
        named = params.get("cluster") or labels.get(CLUSTER_LABEL) or _destination(data)
        bound = self._instances[instance].clusters if instance != SHARED else None
        if bound is not None and not named and len(bound) == 1:
            named = next(iter(bound))  # an instance of one cluster needs no name for it
        cluster = http.origin_name(
            "cluster",
            named or settings.default_cluster,
            "cluster",
            _HINT.format(key="cluster", default="DEFAULT_CLUSTER"),
        )
        if bound is not None:
            origins.bound_cluster(cluster, bound, f"the secret of Argo CD instance {instance!r}")
        env_hint = _HINT.format(key="env", default="DEFAULT_ENV")
        named_env = params.get("env") or labels.get(ENV_LABEL)
        env = origins.environment(settings, cluster, named_env, "env", env_hint)
        return cluster, http.origin_name("env", env, "env", env_hint)

    def _queued(self, data: dict[str, Any], body: bytes, params: Mapping[str, str]) -> Queued:
        """Which form the body is, checked field by field (422 naming them), and what the URL
        adds to it: the object of an incumbent body."""
        manifests = self._settings.azdo_gitops_repo
        if "metadata" in data or "app" in data:
            http.parse(Application if "metadata" in data else Wrapped, data, "Argo CD Application")
            return Queued(manifests=manifests, body=data)
        if not _INCUMBENT_FIELDS & set(data):
            raise RejectedError(
                422,
                "body is neither an Argo CD Application ({{.app | toJson}}, bare or as "
                '{"app": …}) nor the gitops-connector template (commitid, phase, health, …)',
                fields=[{"field": "metadata", "problem": "Field required"}],
            )
        incumbent: IncumbentBody = http.parse(IncumbentBody, data, "gitops-connector body")
        name = incumbent.config_name or params.get("app", "")
        namespace = params.get("namespace") or DEFAULT_NAMESPACE
        if not name:
            raise RejectedError(
                422,
                "the gitops-connector body names no Application: set ?app= on the webhook URL "
                "(and ?namespace= unless it is argocd)",
                fields=[{"field": "app", "problem": "missing"}],
            )
        try:
            parse_object_reference(f"{KIND}/{namespace}/{name}")
        except ValueError as exc:
            raise RejectedError(
                422,
                f"invalid Application name: {exc}",
                fields=[{"field": "app", "problem": str(exc)}],
            ) from None
        return Queued(manifests=manifests, name=name, namespace=namespace, body=data)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        return _JSON_OBJECT.validate_json(body)
    except ValidationError as exc:
        kinds = {e["type"] for e in exc.errors(include_url=False, include_input=False)}
        if "json_invalid" in kinds:
            raise RejectedError(400, "body is not valid JSON") from None
        raise RejectedError(400, "body must be a JSON object") from None


def _report(queued: Queued) -> Report:
    """The processor's own reading of the body (422 if it finds what the models did not)."""
    try:
        return report_of(queued)
    except ValidationError as exc:  # pragma: no cover - the models above checked the same
        raise RejectedError(
            422, f"invalid Argo CD notification: {exc.error_count()} errors"
        ) from None


def _destination(data: dict[str, Any]) -> str | None:
    app = data.get("app", data)
    destination = app.get("spec", {}).get("destination", {}) if isinstance(app, dict) else {}
    name = destination.get("name") if isinstance(destination, dict) else None
    return name if isinstance(name, str) and name else None


def _check_storable(keys: KeyCheck, report: Report, cluster: str, env: str) -> ObjectRef:
    """The Application, once every Table key and the stored reason fit (else a 422)."""
    obj = ObjectRef(KIND, report.namespace, report.name)
    fields = keys.problems(env, cluster, obj)
    problem = property_problem(report.reason)
    if problem is not None:
        fields.append({"field": "phase/health", "problem": problem})
    http.too_large(fields)
    return obj


def _queued_bytes(queued: Queued, body: bytes) -> bytes:
    """The queued event: the body's bytes as they arrived, embedded, after what the webhook URL
    and the settings added (JSON-encoded)."""
    head = {"manifests": queued.manifests, "name": queued.name, "namespace": queued.namespace}
    return json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"body":' + body + b"}"


# Service Bus Standard refuses a message over 256 KiB, properties included (Learn, "Azure Service
# Bus quotas": "Message size for a queue ... Standard tier: 256 KB"; "The message size includes
# the size of properties (system and user) and the size of payload"); Premium takes more, so
# this limit works on both. The SDK's AMQP framing takes the allowance.
QUEUE_MESSAGE_LIMIT = 256 * 1024
_AMQP_ALLOWANCE = 1024


def queue_size_problem(message: OutgoingMessage) -> str | None:
    """Why the queue cannot hold `message` (its body is the envelope around the notification),
    or None. The shipped template sends only what the connector reads (~2 KB); the whole
    Application (`{{.app | toJson}}`) grows by ~340 bytes a resource."""
    properties = sum(len(k) + len(str(v)) for k, v in message.application_properties.items())
    ids = len(message.message_id) + len(message.session_id)
    size = len(message.body) + properties + ids + _AMQP_ALLOWANCE
    if size <= QUEUE_MESSAGE_LIMIT:
        return None
    return (
        f"notification too large for the queue: {size} bytes with its envelope, over the "
        f"{QUEUE_MESSAGE_LIMIT}-byte (256 KiB) Service Bus message limit; send the shipped "
        "template (deploy/argocd), which posts only the fields the connector reads"
    )


def build_message(
    queued: bytes, report: Report, cluster: str, env: str, received_at: datetime
) -> OutgoingMessage:
    properties = {"cluster": cluster, "env": env, "kind": KIND, "reason": report.reason}
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(properties)  # traceparent/tracestate, continued by the processor
    # A body without a time of its own (the incumbent template) is byte for byte the same when a
    # state comes back (Degraded, Healthy, Degraded): duplicate detection would drop the third
    # within its window. Its id takes the receive time too: every delivery is a message of its
    # own (a repeat costs the processor one read). Bodies with times differ when the state does.
    identity = queued if report.time is not None else queued + received_at.isoformat().encode()
    return OutgoingMessage(
        body=envelope.encode(cluster, env, received_at, queued, source=SOURCE),
        message_id=envelope.message_id(cluster, env, identity, source=SOURCE),
        session_id=envelope.session_id(cluster, KIND, report.namespace, report.name),
        application_properties=properties,
    )
