"""Outgoing webhooks: every recorded state change, POSTed as JSON to each `SUBSCRIBERS` URL.

Payload (`schema` names its version; receivers should ignore fields they do not know):

    {"schema": "flux-azdo-connector/state-change/v1",
     "id": "<change id: the same for every redelivery of this change>",
     "commit": "<40-char manifests commit>", "env": "prod", "cluster": "aks-prod-weu-01",
     "object": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
     "phase": "progressing|succeeded|failed", "reason": "ReconciliationSucceeded",
     "summary": "<first line of the Flux message>", "time": "<ISO 8601, UTC>",
     "environment": {"phase": "progressing|succeeded|failed",
                     "clusters": {"aks-prod-weu-01": "succeeded", ...}}}

Signed like Flux's `generic-hmac` provider signs (so Flux's verifier,
`connector.sources.flux.signature.verify`, checks it):
`X-Signature: sha256=<hex HMAC-SHA256(SUBSCRIBERS_HMAC_KEY, raw body)>`; unsigned without a key.

Delivery is at least once, and once per subscriber as far as we can tell: a `2xx` is recorded in
the delivery ledger (one row per change and subscriber), and a redelivered message posts only to
subscribers without a record. A new change (verdict CHANGED) is posted without reading the ledger.
Each delivery has one deadline (connect, send, response and retries: 15 s) besides its
connection/read timeouts, and retries 408/429/5xx and connection errors (POST included:
receivers dedupe by `id`); `Retry-After` is honoured up to the backoff cap and the deadline. When a
subscriber still fails, the others are tried anyway and then `SubscriberDeliveryError` is raised so
Service Bus redelivers. Logs and errors name a subscriber by host and a hash of its URL only:
paths and query strings of webhook URLs often hold tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from azure.core import PipelineClient
from azure.core.exceptions import AzureError
from azure.core.pipeline.policies import HeadersPolicy, UserAgentPolicy
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse

from connector import USER_AGENT
from connector.core.errors import ConnectorError
from connector.core.processing import Change
from connector.core.tracking import EnvironmentResult, ObjectState, Observation, Verdict
from connector.hmac_signing import sign
from connector.outputs import deadline
from connector.outputs.spektate_rows import change_id
from connector.retries import RetryBudgetExhaustedError, retry_policy

logger = logging.getLogger(__name__)

SCHEMA: Final = "flux-azdo-connector/state-change/v1"
# One deadline for a whole delivery (connect, send, response, retries): a slow receiver can hold
# an invocation this long at most (`connector.outputs.deadline`).
DELIVERY_TIMEOUT_SECONDS: Final = 15.0


class SubscriberDeliveryError(ConnectorError):
    """At least one subscriber did not get a change; raised after trying all of them so that the
    message is redelivered (subscribers that got it are not posted to again)."""

    retryable = True


class WebhookError(ConnectorError):
    """One POST failed after its retries. The message says how, and never quotes the URL."""


@dataclass(frozen=True)
class Subscriber:
    url: str

    @classmethod
    def parse(cls, url: str) -> Subscriber:
        """Only absolute http(s) URLs; the error does not echo the URL (it may hold a token)."""
        problem = "every SUBSCRIBERS entry must be an absolute http(s) URL"
        try:
            parts = urlsplit(url.strip())
            _ = parts.port  # raises on a malformed port
        except ValueError:
            raise ValueError(problem) from None
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(problem)
        return cls(url.strip())

    @property
    def id(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:32]

    @property
    def label(self) -> str:
        """Loggable: host and port plus a short id telling subscribers on one host apart."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        return f"{host}:{parts.port}#{self.id[:8]}" if parts.port else f"{host}#{self.id[:8]}"


# --- ledger -----------------------------------------------------------------------------------


class DeliveryTable(Protocol):
    """Where deliveries are recorded: an azure-data-tables `TableClient` fits
    (`TableStore.table("subscriberdeliveries")`)."""

    def query_entities(
        self, query_filter: str, *, parameters: dict[str, Any] | None = None
    ) -> Iterable[Mapping[str, Any]]: ...

    def upsert_entity(self, entity: Mapping[str, Any]) -> Mapping[str, Any]: ...


class DeliveryLedger:
    """One row per (change, subscriber) that answered 2xx: PartitionKey = change id, RowKey =
    subscriber id; one query tells which subscribers of a change are served."""

    def __init__(self, table: DeliveryTable) -> None:
        self._table = table

    def delivered(self, change: str) -> set[str]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": change})
        return {str(row["RowKey"]) for row in rows}

    def record(self, change: str, subscriber: Subscriber) -> None:
        # Upsert: a repeated delivery (a record lost to a crash) rewrites the same row.
        self._table.upsert_entity(
            {
                "PartitionKey": change,
                "RowKey": subscriber.id,
                "host": urlsplit(subscriber.url).hostname or "",
                "at": datetime.now(UTC).isoformat(),
            }
        )


# --- HTTP -------------------------------------------------------------------------------------


class WebhookClient:
    """POSTs bodies with timeouts and retries. No logging or tracing policy: both would record
    the URL, whose path or query may carry a token."""

    def __init__(
        self,
        *,
        retry_total: int = 3,
        retry_backoff_factor: float = 0.5,
        retry_backoff_max: float = 8,
        connection_timeout: float = 5,
        read_timeout: float = 10,
        delivery_timeout: float = DELIVERY_TIMEOUT_SECONDS,
        transport: HttpTransport | None = None,  # type: ignore[type-arg]
    ) -> None:
        retry = retry_policy(retry_total, retry_backoff_factor, retry_backoff_max)
        policies = [
            HeadersPolicy({"Content-Type": "application/json"}),
            UserAgentPolicy(base_user_agent=USER_AGENT),
            retry,
        ]
        if transport is None:
            from azure.core.pipeline.transport import RequestsTransport

            transport = RequestsTransport(session=deadline.session(), session_owner=True)
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            base_url="", policies=policies, transport=transport
        )
        self._delivery_timeout = delivery_timeout
        self._timeouts: dict[str, Any] = {
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
            "timeout": delivery_timeout,  # azure-core's retry: no attempt starts after it
        }

    def post(self, subscriber: Subscriber, body: bytes, headers: Mapping[str, str]) -> None:
        request = HttpRequest("POST", subscriber.url, content=body, headers=dict(headers))
        try:
            with deadline.deadline(self._delivery_timeout):
                response = self._client.send_request(request, **self._timeouts)
        except (AzureError, RetryBudgetExhaustedError) as exc:
            # Not chained: the cause's message quotes the URL, query string included.
            raise WebhookError(type(exc).__name__) from None
        if not 200 <= response.status_code < 300:
            raise WebhookError(f"answered {response.status_code}")

    def close(self) -> None:
        self._client.close()


# --- payload ----------------------------------------------------------------------------------


def payload(
    change: str, commit: str, obs: Observation, state: ObjectState, env: EnvironmentResult
) -> dict[str, Any]:
    """The change as recorded (reason and summary of the event that made it, not of a re-send)."""
    return {
        "schema": SCHEMA,
        "id": change,
        "commit": commit,
        "env": obs.env,
        "cluster": obs.cluster,
        "object": {"kind": obs.obj.kind, "namespace": obs.obj.namespace, "name": obs.obj.name},
        "phase": state.phase.value,
        "reason": state.reason,
        "summary": state.summary,
        "time": state.time.astimezone(UTC).isoformat(),
        "environment": {
            "phase": env.phase.value,
            "clusters": {c.cluster: c.phase.value for c in env.clusters},
        },
    }


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- listener ---------------------------------------------------------------------------------


class SubscriberNotifier:
    """A `ChangeListener` posting each recorded state change to every subscriber, once."""

    def __init__(
        self,
        urls: Sequence[str],
        ledger: DeliveryLedger,
        *,
        key: bytes | None = None,
        client: WebhookClient | None = None,
    ) -> None:
        self._subscribers = tuple(Subscriber.parse(u) for u in urls)
        if len({s.id for s in self._subscribers}) != len(self._subscribers):
            raise ValueError("SUBSCRIBERS lists a URL twice")
        self._ledger = ledger
        self._key = key or None
        self._client = client or WebhookClient()

    def on_change(self, change: Change) -> None:
        obs, recorded = change.obs, change.recorded
        state = recorded.state
        if obs.commit is None or state is None or not self._subscribers:
            return
        change_key = change_id(obs.commit, obs, state)
        pending = self._pending(change_key, recorded.verdict)
        if not pending:
            return
        body = encode(payload(change_key, obs.commit, obs, state, change.environment()))
        errors = [(s, self._deliver(change_key, s, body)) for s in pending]
        failed = [f"{s.label} ({error})" for s, error in errors if error is not None]
        if failed:
            raise SubscriberDeliveryError(
                f"{len(failed)} of {len(pending)} subscribers failed: {', '.join(failed)}"
            )

    def _pending(self, change: str, verdict: Verdict) -> list[Subscriber]:
        """Everyone for a new change; for a repeat, those without a recorded delivery."""
        if verdict == Verdict.CHANGED:
            return list(self._subscribers)
        try:
            done = self._ledger.delivered(change)
        except AzureError as exc:
            raise SubscriberDeliveryError(
                f"delivery ledger unreadable: {type(exc).__name__}"
            ) from exc
        return [s for s in self._subscribers if s.id not in done]

    def _deliver(self, change: str, subscriber: Subscriber, body: bytes) -> str | None:
        """Post and record; what went wrong (logged), or None."""
        try:
            self._client.post(subscriber, body, self._headers(body))
        except WebhookError as exc:
            return _failed(subscriber, change, str(exc))
        try:
            self._ledger.record(change, subscriber)
        except AzureError as exc:
            # Delivered but not recorded: the redelivery posts again (at least once).
            return _failed(subscriber, change, f"ledger: {type(exc).__name__}")
        logger.info(
            "subscriber.delivered", extra={"subscriber": subscriber.label, "change": change}
        )
        return None

    def _headers(self, body: bytes) -> dict[str, str]:
        return {"X-Signature": sign(self._key, body)} if self._key else {}


def _failed(subscriber: Subscriber, change: str, error: str) -> str:
    logger.warning(
        "subscriber.delivery_failed",
        extra={"subscriber": subscriber.label, "change": change, "error": error},
    )
    return error
