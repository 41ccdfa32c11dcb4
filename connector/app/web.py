"""Plain HTTP request/reply values, and their translation from and to `azure.functions`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func


@dataclass(frozen=True)
class Request:
    method: str
    body: bytes
    headers: Mapping[str, str]  # case-insensitive in practice (azure.functions)
    params: Mapping[str, str]


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def to_request(req: func.HttpRequest) -> Request:
    return Request(
        method=req.method,
        body=req.get_body() or b"",
        headers=req.headers,
        params=req.params,
    )


def to_response(reply: Reply) -> func.HttpResponse:
    return func.HttpResponse(
        body=json.dumps(reply.body),
        status_code=reply.status,
        headers=reply.headers,
        mimetype="application/json",
    )
