"""Spektate's storage errors: which are permanent (reported once, with a remedy) and which are
transient (raised so that Service Bus redelivers). Policy in `connector.outputs.spektate`."""

from __future__ import annotations

import logging
import threading
from enum import StrEnum
from typing import Final

from azure.core.exceptions import AzureError, HttpResponseError

from connector import telemetry
from connector.core.errors import ConnectorError
from connector.errors import RETRYABLE_4XX  # retrying cures these 4xx; no other

logger = logging.getLogger(__name__)

CONTRIBUTOR_ROLE: Final = "Storage Table Data Contributor (0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3)"


class SpektateError(ConnectorError):
    """Spektate's storage could not be written for a reason that may pass (outage, throttling
    past the SDK's retries, a timeout). Raised so that Service Bus redelivers the message;
    statuses and gates are unaffected (see `Processor`)."""

    retryable = True


class GaveUpError(ConnectorError):
    """A permanent error, already reported: skip what depends on the failed step."""

    def __init__(self, error: HttpResponseError) -> None:
        super().__init__(describe(error))
        self.error = error


class Step(StrEnum):
    """What the writer was doing when Spektate's storage refused; part of an error's kind."""

    CREATE_TABLE = "create table"
    READ = "read notification"
    LINK = "link deployment"
    INSERT = "insert notification"
    TOUCH = "touch deployment"


def describe(exc: AzureError) -> str:
    """Type, HTTP status and service error code: enough to tell a missing table or role from an
    outage, without the service's message text."""
    parts = [type(exc).__name__]
    status = getattr(exc, "status_code", None)
    if status is not None:
        parts.append(str(status))
    code = error_code(exc)
    if code:
        parts.append(code)
    return " ".join(parts)


def error_code(exc: AzureError) -> str:
    response = getattr(exc, "response", None)
    code = getattr(exc, "error_code", None) or (
        response.headers.get("x-ms-error-code") if response is not None else None
    )
    # azure-data-tables gives some codes as `TableErrorCode` members: their value is the wire code.
    return str(getattr(code, "value", code) or "")


def is_permanent(exc: AzureError) -> bool:
    """A 4xx answer other than timeout and throttling: redelivering would meet it again."""
    if not isinstance(exc, HttpResponseError) or exc.status_code is None:
        return False  # no answer at all: connection, timeout, credential endpoint
    return 400 <= exc.status_code < 500 and exc.status_code not in RETRYABLE_4XX


def remedy(step: Step, exc: HttpResponseError) -> str:
    """What an operator does about a permanent error: the log line's second half."""
    if exc.status_code in (401, 403):
        return (
            f"grant the Function's identity {CONTRIBUTOR_ROLE} on Spektate's storage account, "
            "or give SPEKTATE_STORAGE a key or SAS allowed to create tables and add, read and "
            "update entities"
        )
    if step is Step.CREATE_TABLE:
        return "create the table named by SPEKTATE_TABLE (Spektate's POC reads `flux`) yourself"
    if error_code(exc) == "TableNotFound":
        which = (
            "SPEKTATE_DEPLOYMENTS_TABLE" if step in (Step.LINK, Step.TOUCH) else "SPEKTATE_TABLE"
        )
        return f"create the table, or fix {which}; the table it names does not exist"
    return "check SPEKTATE_TABLE, SPEKTATE_DEPLOYMENTS_TABLE and SPEKTATE_PARTITION_KEY"


class ErrorReport:
    """Permanent Spektate errors: each kind (step, status, code) is logged once per instance
    (the container builds one writer per process), every occurrence is counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def permanent(self, step: Step, exc: HttpResponseError) -> None:
        kind = f"{step} {describe(exc)}"
        telemetry.spektate_errors.add(
            1, {"step": step.value, "status": str(exc.status_code), "code": error_code(exc)}
        )
        with self._lock:
            first = kind not in self._seen
            self._seen.add(kind)
        if first:
            logger.error(
                "spektate.gave_up",
                extra={"step": step.value, "error": describe(exc), "remedy": remedy(step, exc)},
            )
        else:
            logger.debug("spektate.gave_up_again", extra={"step": step.value})
