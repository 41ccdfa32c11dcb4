"""Whether an error is worth retrying, decided once: for the HTTP answer (503 with Retry-After,
else 500), for a gate's work (raised for a redelivery, else left to the sweep) and for an Azure
DevOps answer (transient, else permanent).

Our errors say it themselves (`ConnectorError.retryable`, in the core); azure-core's by kind and
status: an answer that a later attempt may not meet again (timeout, throttling, server error), no
answer at all (connection, timeout), or a credential that could not get a token.
"""

from __future__ import annotations

from typing import Final

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

from connector.core.errors import ConnectorError

# The 4xx a later attempt can cure (RFC 9110 15.5.9 Request Timeout, RFC 6585 4 Too Many
# Requests); every other 4xx is the same on every attempt.
RETRYABLE_4XX: Final = frozenset({408, 429})


def retryable_status(status: int) -> bool:
    """An HTTP status a later attempt may not meet again: timeout, throttling, server error."""
    return status >= 500 or status in RETRYABLE_4XX


def is_retryable(exc: BaseException) -> bool:
    """True when a later attempt may succeed where `exc` failed."""
    if isinstance(exc, ConnectorError):
        return exc.retryable
    if isinstance(exc, ClientAuthenticationError):
        return True  # no token (identity endpoint down, identity not yet assigned)
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return retryable_status(exc.status_code)
    return isinstance(exc, AzureError)  # ServiceRequestError, ServiceResponseError: no answer
