"""Who may post: Argo CD cannot sign a body, but its `webhook` service sends configured headers
and basic auth (docs/operator-manual/notifications/services/webhook.md, `headers`, `basicAuth`).
A secret comes as `Authorization: Bearer <secret>` or as the basic-auth password (RFC 7617:
base64 of `user:password`; the user name is not checked). Each Argo CD instance has its own
(`ARGOCD_INSTANCES`), which says who is speaking; the shared `ARGOCD_WEBHOOK_SECRET` of older
installs says only that the sender holds it."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Sequence

CHALLENGE = 'Bearer realm="argocd", Basic realm="argocd"'
SHARED = ""  # the owner of the shared secret: no instance, bound to no cluster


def presented_secret(authorization: str | None) -> bytes | None:
    """The secret an `Authorization` header carries, or None when it carries none we read."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value.encode()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        _, sep, password = decoded.partition(b":")
        return password if sep and password else None
    return None


def authorized(authorization: str | None, secrets: Iterable[bytes]) -> bool:
    """Whether the header carries one of `secrets`, compared in constant time, every secret
    checked (timing tells nothing about which one matched, or how much of it)."""
    presented = presented_secret(authorization)
    if presented is None:
        return False
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(presented, secret)
    return matched


def owner(authorization: str | None, secrets: Sequence[tuple[str, bytes]]) -> str | None:
    """The owner of the secret the header carries (`secrets`: owner, secret; an instance name, or
    `SHARED`), None when it carries none of them. Every secret is compared in constant time, so
    timing tells nothing about which one matched."""
    presented = presented_secret(authorization)
    if presented is None:
        return None
    found = None
    for name, secret in secrets:
        if hmac.compare_digest(presented, secret) and found is None:
            found = name
    return found
