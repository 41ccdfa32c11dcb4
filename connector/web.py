"""Plain HTTP request/reply values, and their translation from and to `azure.functions`.

Handlers take a `Request` and return a `Reply`; only `connector.app` (`entrypoints`, `serving`)
sees Functions objects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func


# Built for every request: slotted and not frozen (a frozen dataclass sets each field through
# object.__setattr__, a cost paid per request; docs/benchmarks.md). Nothing mutates them.
@dataclass(slots=True)
class Request:
    method: str
    body: bytes
    headers: Mapping[str, str]  # case-insensitive in practice (azure.functions)
    params: Mapping[str, str]
    route: Mapping[str, str] = field(default_factory=dict)  # route parameters, e.g. {commit}


@dataclass(slots=True)
class Reply:
    status: int
    body: Any  # JSON-ready; a str is sent as it is, with `content_type`
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def to_request(req: func.HttpRequest) -> Request:
    return Request(
        method=req.method,
        body=req.get_body() or b"",
        headers=req.headers,
        params=req.params,
        route=req.route_params,
    )


def to_response(reply: Reply) -> func.HttpResponse:
    text = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
    return func.HttpResponse(
        body=text,
        status_code=reply.status,
        headers=reply.headers,
        mimetype=reply.content_type,
        charset="utf-8",
    )
