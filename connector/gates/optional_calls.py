"""Calls to Azure DevOps that a gate can do without: their failure is a warning, never a reason
to hold back the one call that matters, TaskCompleted."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from connector.core.gates import Gate
from connector.devops.types import (
    ForeignOrganizationError,
    NotSentError,
    PermanentAzureDevOpsError,
    TransientAzureDevOpsError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
PERMISSION_CODES = frozenset({401, 403})


def optional(
    what: str, gate: Gate, call: Callable[[], T], *, raise_permission: bool = False
) -> T | None:
    """The call's answer, or None when Azure DevOps refused or failed it (logged with the status
    and its message). A plan URL outside the organisation is never optional; with
    `raise_permission`, neither is a 401/403 (the caller waits for the permission instead)."""
    try:
        return call()
    except ForeignOrganizationError:
        raise
    except NotSentError:
        return None  # trial mode: already logged as what would be sent
    except PermanentAzureDevOpsError as exc:
        if raise_permission and exc.status_code in PERMISSION_CODES:
            raise
        status: int | None = exc.status_code
        error = exc.message
    except TransientAzureDevOpsError as exc:
        status, error = exc.status_code, str(exc)
    logger.warning(
        "gate.optional_call_failed",
        extra={"gate": gate.id, "call": what, "status_code": status, "error": error},
    )
    return None
