"""The app-side check of App Service Authentication's `X-MS-CLIENT-PRINCIPAL` (keyless pipelines).

Principals are built as the platform sends them (Learn: configure-authentication-user-identities):
base64 of `{"auth_typ": "aad", "claims": [{"typ", "val"}…], "name_typ", "role_typ"}`.
"""

from __future__ import annotations

import base64
import json

import azure.functions as func
import pytest

from connector.app.functions.easyauth import PRINCIPAL_HEADER, PrincipalError, caller_ids, check

CONNECTION = "6f1c3a52-8d7e-4b0a-9c1e-2f4d5e6a7b8c"
OTHER = "0a1b2c3d-0000-4000-8000-000000000000"


def principal(**claims: str) -> str:
    doc = {
        "auth_typ": "aad",
        "claims": [{"typ": typ, "val": val} for typ, val in claims.items()]
        + [{"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": "t"}],
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    return base64.b64encode(json.dumps(doc).encode()).decode()


def request(header: str | None) -> func.HttpRequest:
    headers = {PRINCIPAL_HEADER: header} if header is not None else {}
    return func.HttpRequest(method="POST", url="/api/gates", headers=headers, body=b"{}")


@pytest.mark.parametrize("claim", ["appid", "azp"])  # v1 and v2 access tokens
def test_the_service_connection_is_accepted(claim: str) -> None:
    req = request(principal(**{claim: CONNECTION.upper()}))

    assert check(req.headers, [CONNECTION]) == CONNECTION


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "missing X-MS-CLIENT-PRINCIPAL"),
        ("not base64!", "not base64-encoded JSON"),
        (base64.b64encode(b"[1]").decode(), "has no claims"),
        (principal(appid=OTHER), "not the pipeline's service connection"),
        (principal(oid=CONNECTION), "not the pipeline's service connection"),  # wrong claim
    ],
)
def test_anything_else_is_refused_with_a_reason(header: str | None, why: str) -> None:
    with pytest.raises(PrincipalError, match=why):
        check(request(header).headers, [CONNECTION])


def test_no_allowed_id_refuses_everyone() -> None:
    with pytest.raises(PrincipalError, match="no allowed client id"):
        check(request(principal(appid=CONNECTION)).headers, ["", " "])


def test_both_claims_are_read() -> None:
    assert caller_ids(principal(appid=CONNECTION, azp=OTHER)) == {CONNECTION, OTHER}
