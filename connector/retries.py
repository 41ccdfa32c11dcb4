"""One retry policy for our outgoing HTTP (Azure DevOps, subscriber webhooks) on azure-core,
and the ceiling on how long one invocation may spend waiting between retries."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, Final

from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest, HttpResponse

from connector.core.errors import ConnectorError

_EVERY_METHOD: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds one invocation may still sleep between retries; None outside an invocation (CLI).
_budget: ContextVar[float | None] = ContextVar("retry_wait_budget", default=None)
INVOCATION_WAIT_BUDGET: Final = 30.0
# When (time.monotonic) the operation running in this context must be over; None: no deadline.
_deadline: ContextVar[float | None] = ContextVar("operation_deadline", default=None)


class RetryBudgetExhaustedError(ConnectorError):
    """Waiting any longer would hold the invocation (and its session) too long: give the
    message back to the queue, which redelivers it later. Not an `AzureError`, so that the
    retry loop does not catch it and try once more."""

    retryable = True


class wait_budget:  # noqa: N801 - used like a function: `with wait_budget():`
    """Bound the total time the retries inside this block may sleep (Retry-After included).
    A class rather than a generator: it wraps every HTTP request and queue message."""

    def __init__(self, seconds: float = INVOCATION_WAIT_BUDGET) -> None:
        self._seconds = seconds
        self._token: Token[float | None] | None = None

    def __enter__(self) -> None:
        self._token = _budget.set(self._seconds)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _budget.reset(self._token)


class deadline:  # noqa: N801 - used like a function: `with deadline(at):`
    """No retry inside this block sleeps past `at` (a `time.monotonic()` value)."""

    def __init__(self, at: float) -> None:
        self._at = at
        self._token: Token[float | None] | None = None

    def __enter__(self) -> None:
        self._token = _deadline.set(self._at)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _deadline.reset(self._token)


def wait_within_budget(seconds: float, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Sleep `seconds` if the invocation's wait budget still holds them (and charge it); False,
    without sleeping, when it does not: the caller leaves the attempt to a later invocation.
    Outside an invocation (CLI) the budget is `INVOCATION_WAIT_BUDGET` for this one wait."""
    remaining = _budget.get()
    if seconds > (INVOCATION_WAIT_BUDGET if remaining is None else remaining):
        return False
    if remaining is not None:
        _budget.set(remaining - seconds)
    sleep(seconds)
    return True


class RetryEveryMethod(RetryPolicy[HttpRequest, HttpResponse]):
    """azure-core's retry, extended to POST/PATCH, with `Retry-After` capped and every sleep
    charged to the invocation's wait budget.

    azure-core retries POST/PATCH only on 500/503/504 (not 429 without Retry-After, 502 or
    connection errors). Our writes are safe to repeat (statuses are append-only, webhook payloads
    carry an id); the calls that are not (TaskCompleted) turn read and status retries off per call.
    """

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)
        settings["methods"] = _EVERY_METHOD
        return settings

    def get_retry_after(self, response: PipelineResponse[Any, Any]) -> float | None:
        retry_after = super().get_retry_after(response)
        return None if retry_after is None else min(retry_after, float(self.backoff_max))

    def sleep(
        self,
        settings: dict[str, Any],
        transport: Any,
        response: PipelineResponse[Any, Any] | None = None,
    ) -> None:
        remaining = _budget.get()
        until = _deadline.get()
        if until is not None and self._planned_wait(settings, response) > until - time.monotonic():
            raise RetryBudgetExhaustedError("retry would wait past the operation's deadline")
        if remaining is not None:
            wait = self._planned_wait(settings, response)
            if wait > remaining:
                raise RetryBudgetExhaustedError(
                    f"retry would wait {wait:.0f}s, past this invocation's budget"
                )
            _budget.set(remaining - wait)
        super().sleep(settings, transport, response)

    def _planned_wait(
        self, settings: dict[str, Any], response: PipelineResponse[Any, Any] | None
    ) -> float:
        retry_after = self.get_retry_after(response) if response is not None else None
        return retry_after if retry_after is not None else self.get_backoff_time(settings)


def retry_policy(total: int, backoff_factor: float, backoff_max: float) -> RetryEveryMethod:
    return RetryEveryMethod(
        retry_total=total,
        retry_connect=total,
        retry_read=total,
        retry_status=total,
        retry_backoff_factor=backoff_factor,
        retry_backoff_max=backoff_max,
    )
