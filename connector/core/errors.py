"""The base of every error the connector raises, with its retry marker.

In the core because the core raises errors too and imports nothing above itself; whether an
error is worth retrying (ours by this marker, azure-core's by kind and status) is decided in one
place, `connector.errors.is_retryable`.
"""

from __future__ import annotations

from typing import ClassVar


class ConnectorError(Exception):
    """An error of ours. `retryable`: a later attempt (a redelivery of the message, the caller's
    retry after a 503) may succeed; False: it would meet the same error again."""

    retryable: ClassVar[bool] = False
