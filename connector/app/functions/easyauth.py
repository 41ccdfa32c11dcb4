"""Defence in depth for keyless pipelines: the caller App Service Authentication let through.

With the Bicep parameter `pipelineClientId` (app setting `PIPELINE_CLIENT_ID`), App Service
Authentication (authsettingsV2) validates the Entra token that `AzureFunction@2` presents from an
Azure service connection and passes the caller's claims to the app in `X-MS-CLIENT-PRINCIPAL`:
base64 of JSON `{"auth_typ": …, "claims": [{"typ": …, "val": …}], …}` (Learn: "Work with user
identities in Azure App Service authentication", configure-authentication-user-identities). The
app checks again that the caller is the service connection's identity (claim `appid` for v1
tokens, `azp` for v2), so a mistaken platform setting does not open the pipeline routes. The
platform strips any such header a client sends itself (same page), so the header is trusted only
behind it, and only while the platform says it is on (`require_platform`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping

from connector.core.errors import ConnectorError

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
CALLER_CLAIMS = ("appid", "azp")
# Injected by App Service into the app when its authentication is on (Learn: "Environment
# variables and app settings in Azure App Service", reference-app-settings, authentication
# section: read-only, Windows and Linux apps). Without it nothing strips a forged header.
PLATFORM_FLAG = "WEBSITE_AUTH_ENABLED"


class PrincipalError(ConnectorError):
    """The request does not come from an allowed identity; the message says why (no secret)."""


def caller_ids(header: str | None) -> set[str]:
    """The application ids (`appid`/`azp`) in an `X-MS-CLIENT-PRINCIPAL` value."""
    if not header:
        raise PrincipalError(f"missing {PRINCIPAL_HEADER}: App Service Authentication is off")
    try:
        principal = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError):
        raise PrincipalError(f"{PRINCIPAL_HEADER} is not base64-encoded JSON") from None
    claims = principal.get("claims") if isinstance(principal, dict) else None
    if not isinstance(claims, list):
        raise PrincipalError(f"{PRINCIPAL_HEADER} has no claims")
    return {
        str(c.get("val", "")).lower()
        for c in claims
        if isinstance(c, dict) and c.get("typ") in CALLER_CLAIMS and c.get("val")
    }


def check(headers: Mapping[str, str], allowed: Iterable[str]) -> str:
    """The caller's id when it is one of `allowed` (client ids); else PrincipalError."""
    wanted = {a.strip().lower() for a in allowed if a.strip()}
    if not wanted:
        raise PrincipalError("no allowed client id is configured")
    found = caller_ids(headers.get(PRINCIPAL_HEADER) or headers.get(PRINCIPAL_HEADER.lower()))
    matched = found & wanted
    if not matched:
        raise PrincipalError("the caller is not the pipeline's service connection")
    return matched.pop()


def check_person(headers: Mapping[str, str], client_id: str) -> str:
    """A person signed in through the pages' app registration (`UI_CLIENT_ID`): the platform
    validated their ID token, whose audience (`aud`) is that registration; another
    application's token (`appid`/`azp` naming someone else) is not a person's sign-in."""
    wanted = client_id.strip().lower()
    principal = _principal(headers.get(PRINCIPAL_HEADER) or headers.get(PRINCIPAL_HEADER.lower()))
    claims = {(c.get("typ"), str(c.get("val", "")).lower()) for c in principal}
    callers = {v for t, v in claims if t in CALLER_CLAIMS}
    if not wanted or ("aud", wanted) not in claims or callers - {wanted}:
        raise PrincipalError("the caller did not sign in to the on-call pages")
    return next((v for t, v in claims if t == "oid"), "person")


def _principal(header: str | None) -> list[dict[str, object]]:
    caller_ids(header)  # the same checks: present, base64 JSON with claims
    claims = json.loads(base64.b64decode(header or "", validate=True))["claims"]
    return [c for c in claims if isinstance(c, dict)]


def require_platform(environ: Mapping[str, str]) -> None:
    """PrincipalError unless App Service Authentication is on: only then is the header real."""
    if environ.get(PLATFORM_FLAG, "").strip().lower() != "true":
        raise PrincipalError(
            f"App Service Authentication is off ({PLATFORM_FLAG} is not true): "
            "the pipeline routes refuse every caller until it is on"
        )
