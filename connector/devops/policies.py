"""The azure-core pipeline of the Azure DevOps client: authentication (PAT, Entra token, a
pipeline job's token), headers, retries, tracing, response counting and redacted HTTP logging."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any, Final
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest, HttpResponse

from connector import USER_AGENT
from connector.devops.organization import is_loopback
from connector.retries import retry_policy

ORG_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"

# Azure DevOps-specific response headers that are safe and useful in logs (throttling, tracing).
_LOGGABLE_HEADERS: Final = (
    "X-TFS-FedAuthRedirect",
    "X-TFS-Session",
    "X-VSS-E2EID",
    "ActivityId",
    "X-RateLimit-Resource",
    "X-RateLimit-Delay",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
_LOGGABLE_QUERY: Final = (
    "searchCriteria.status",
    "searchCriteria.queryTimeRangeType",
    "searchCriteria.minTime",
    "$top",
    "$skip",
    "otherCommitId",
)


def _allows_credentials(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or is_loopback((parts.hostname or "").lower())


class _PatPolicy(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Basic auth with a PAT (empty user name), refused over http except to loopback."""

    def __init__(self, pat: str) -> None:
        super().__init__()
        self._header = "Basic " + base64.b64encode(f":{pat}".encode()).decode("ascii")

    def on_request(self, request: PipelineRequest[HttpRequest]) -> None:
        # The client passes enforce_https for BearerTokenCredentialPolicy; consume it here too,
        # since the transport would reject an unknown keyword.
        request.context.options.pop("enforce_https", None)
        if not _allows_credentials(request.http_request.url):
            raise ServiceRequestError("refusing to send a PAT over plain http")
        request.http_request.headers["Authorization"] = self._header


def auth_policy(pat: str | None, credential: TokenCredential | None) -> Any:
    if (pat is None) == (credential is None):
        raise ValueError("pass exactly one of pat or credential")
    if credential is not None:
        return BearerTokenCredentialPolicy(credential, ORG_SCOPE)
    if not pat:
        raise ValueError("pat must not be empty")
    return _PatPolicy(pat)


def policies(
    *,
    auth: Any,
    retry_total: int,
    retry_backoff_factor: float,
    retry_backoff_max: float,
) -> list[Any]:
    logging_policy: HttpLoggingPolicy = HttpLoggingPolicy(
        http_logging_level=logging.DEBUG, additional_allowed_query_params=_LOGGABLE_QUERY
    )
    # HttpLoggingPolicy redacts every header not allow-listed, Authorization included.
    # NetworkTraceLoggingPolicy is left out on purpose: it logs headers verbatim.
    logging_policy.allowed_header_names.update(_LOGGABLE_HEADERS)
    return [
        HeadersPolicy({"X-TFS-FedAuthRedirect": "Suppress", "Accept": "application/json"}),
        UserAgentPolicy(base_user_agent=USER_AGENT),
        retry_policy(retry_total, retry_backoff_factor, retry_backoff_max),
        auth,
        DistributedTracingPolicy(instrumentation_config={"library_name": "flux-azdo-connector"}),
        _CountResponses(),
        logging_policy,
    ]


class _CountResponses(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Counts every answer, retried attempts included (it sits inside the retry loop)."""

    def on_response(
        self,
        request: PipelineRequest[HttpRequest],
        response: PipelineResponse[HttpRequest, HttpResponse],
    ) -> None:
        from connector import telemetry

        status = response.http_response.status_code
        attributes: dict[str, str | int] = {
            "http.request.method": request.http_request.method,
            "http.response.status_code": status,
        }
        telemetry.azdo_requests.add(1, attributes)
        if status == 429:
            telemetry.azdo_throttled.add(1, attributes)


class JobToken:
    """A `TokenCredential` holding a pipeline job's access token (`System.AccessToken`), for
    completing a gate as the job itself; it cannot be refreshed, so it is used as it is."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)
