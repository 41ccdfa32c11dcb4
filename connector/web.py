"""Translation between `azure.functions` HTTP objects and the connector's plain request/reply."""

from __future__ import annotations

import json

import azure.functions as func

from connector.ingest import Reply, Request


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
