"""One retry policy for our outgoing HTTP (Azure DevOps, subscriber webhooks) on azure-core."""

from __future__ import annotations

from typing import Any, Final

from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest, HttpResponse

_EVERY_METHOD: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RetryEveryMethod(RetryPolicy[HttpRequest, HttpResponse]):
    """azure-core's retry, extended to POST/PATCH and with `Retry-After` capped.

    azure-core retries POST/PATCH only on 500/503/504 (not 429 without Retry-After, 502 or
    connection errors). Our writes are safe to repeat (statuses are append-only, completion is
    checked against the plan state, webhook payloads carry an id), so retry them like GETs.
    A Functions invocation cannot wait minutes: past the cap it fails as transient and the queue
    redelivers later.
    """

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)
        settings["methods"] = _EVERY_METHOD
        return settings

    def get_retry_after(self, response: PipelineResponse[Any, Any]) -> float | None:
        retry_after = super().get_retry_after(response)
        return None if retry_after is None else min(retry_after, float(self.backoff_max))


def retry_policy(total: int, backoff_factor: float, backoff_max: float) -> RetryEveryMethod:
    return RetryEveryMethod(
        retry_total=total,
        retry_connect=total,
        retry_read=total,
        retry_status=total,
        retry_backoff_factor=backoff_factor,
        retry_backoff_max=backoff_max,
    )
