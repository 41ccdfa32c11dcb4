"""One decision on whether an error is worth retrying (`connector.errors.is_retryable`): ours by
their marker, azure-core's by kind and status, the same for every caller."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from connector import errors
from connector.core.door import DoorUnavailableError
from connector.core.errors import ConnectorError
from connector.devops.types import (
    ForeignOrganizationError,
    NotSentError,
    PermanentAzureDevOpsError,
    TransientAzureDevOpsError,
)
from connector.gates.completion import UnconfirmedCompletionError
from connector.queue.sender import QueueUnavailableError
from connector.retries import RetryBudgetExhaustedError
from connector.settings import SettingsError
from connector.sources import UnreadableMessageError
from connector.sources.flux.signature import SignatureError
from connector.storage.rows import ConcurrencyError


def answered(status: int, kind: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    exc = kind(f"answered {status}")
    exc.status_code = status
    return exc


@pytest.mark.parametrize(
    "exc",
    [
        TransientAzureDevOpsError("throttled", 429, 5.0),
        UnconfirmedCompletionError("posted, unconfirmed"),  # later, by the sweep
        QueueUnavailableError("ServiceBusConnectionError"),
        ConcurrencyError("row kept changing"),
        DoorUnavailableError("ServiceRequestError"),
        RetryBudgetExhaustedError("past the budget"),
        answered(500),
        answered(503),
        answered(408),
        answered(429),
        ClientAuthenticationError("no token"),  # the identity endpoint: no answer, no status
        answered(401, ClientAuthenticationError),
        ServiceRequestError("connection refused"),
        ServiceResponseError("read timed out"),
        HttpResponseError("no response"),  # no status: nothing was answered
        AzureError("anything else of the SDK"),
    ],
    ids=lambda exc: f"{type(exc).__name__}:{getattr(exc, 'status_code', '')}",
)
def test_worth_retrying(exc: BaseException) -> None:
    assert errors.is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        PermanentAzureDevOpsError(404, "no such plan"),
        ForeignOrganizationError("https://elsewhere.example"),
        NotSentError("trial mode"),
        SettingsError("FLUX_CLUSTER_KEYS: not JSON"),
        UnreadableMessageError("not an envelope"),
        SignatureError("bad signature"),
        ConnectorError("ours, unmarked"),
        answered(400),
        answered(403),
        answered(404, ResourceNotFoundError),
        answered(409, ResourceExistsError),
        answered(304),
        ValueError("not ours, not the SDK's"),
        KeyError("x"),
    ],
    ids=lambda exc: f"{type(exc).__name__}:{getattr(exc, 'status_code', '')}",
)
def test_not_worth_retrying(exc: BaseException) -> None:
    assert not errors.is_retryable(exc)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(200, False), (304, False), (400, False), (404, False), (407, False), (408, True)],
        *[(409, False), (428, False), (429, True), (430, False), (499, False), (500, True)],
        *[(502, True), (503, True), (504, True), (599, True)],
    ],
)
def test_retryable_statuses(status: int, retryable: bool) -> None:
    assert errors.retryable_status(status) is retryable


def test_the_marker_is_inherited_and_can_be_turned_off() -> None:
    class FlakyError(ConnectorError):
        retryable = True

    class SettledError(FlakyError):
        retryable = False

    assert errors.is_retryable(type("Child", (FlakyError,), {})("x"))
    assert not errors.is_retryable(SettledError("x"))
