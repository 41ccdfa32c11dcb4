"""Argo CD notifications as its `webhook` service posts them, for the tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path

import azure.functions as func

ARGOCD_EVENTS = Path(__file__).parent / "events" / "argocd"
SECRET = "argocd-webhook-secret-0123456789"
A = "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"  # the commit the fixtures deployed
B = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b"  # a newer commit Argo CD has seen, not synced


def application(name: str) -> dict:
    doc: dict = json.loads((ARGOCD_EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return doc


def fixture_names() -> list[str]:
    return sorted(p.stem for p in ARGOCD_EVENTS.glob("*.json"))


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def basic(password: str = SECRET, user: str = "argocd") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def argocd_request(
    body: bytes | dict,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    method: str = "POST",
) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return func.HttpRequest(
        method=method,
        url="http://localhost:7071/api/argocd",
        headers={"Content-Type": "application/json", **(bearer() if headers is None else headers)},
        params=dict(params or {}),
        route_params={},
        body=raw,
    )
